/** Where the API serves each kind a gang is made of (their REST paths). */
import type { Flavour } from '../plan.ts';
import type { KubeObject } from '../manifests.ts';

/** The plural resource of each kind linkflow creates, by apiVersion and kind. */
const RESOURCES: Record<string, string> = {
  'v1/Service': 'services',
  'v1/Secret': 'secrets',
  'batch/v1/Job': 'jobs',
  'scheduling.k8s.io/v1beta1/PodGroup': 'podgroups',
  'batch.volcano.sh/v1alpha1/Job': 'jobs',
  'mindxdl.gitee.com/v1/AscendJob': 'ascendjobs',
};

/** The collection an object is created in (named: the object itself). */
export function objectPath(obj: Pick<KubeObject, 'apiVersion' | 'kind' | 'metadata'>, namespace: string, named: boolean): string {
  const resource = RESOURCES[`${obj.apiVersion}/${obj.kind}`];
  if (!resource) throw new Error(`linkflow does not create ${obj.kind} (${obj.apiVersion})`);
  const base = obj.apiVersion.includes('/') ? `/apis/${obj.apiVersion}` : `/api/${obj.apiVersion}`;
  return `${base}/namespaces/${namespace}/${resource}${named ? `/${obj.metadata.name}` : ''}`;
}

/** The object that owns a flavour's pods: the Job, Volcano's Job, the AscendJob. */
export interface Controller {
  kind: string;
  collection(namespace: string): string;
  path(namespace: string, name: string): string;
}

export function controllerOf(flavour: Flavour): Controller {
  const [apiVersion, kind] =
    flavour === 'pods' ? ['batch/v1', 'Job'] : flavour === 'volcano' ? ['batch.volcano.sh/v1alpha1', 'Job'] : ['mindxdl.gitee.com/v1', 'AscendJob'];
  const at = (namespace: string, name = '') => objectPath({ apiVersion, kind, metadata: { name } }, namespace, name !== '');
  return { kind: `${kind} (${apiVersion})`, collection: (ns) => at(ns), path: (ns, name) => at(ns, name) };
}
