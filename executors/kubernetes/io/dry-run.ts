/**
 * `linkflow validate` with a cluster: each object of each Kubernetes stage's first gang is sent to
 * the API server as a server-side dry run (dryRun=All, fieldValidation=Strict), so the cluster's
 * own schemas, CRDs and admission check it and nothing is stored. Without a cluster that answers,
 * the caller checks the objects against the schemas the repository carries (../schema.ts).
 */
import type { KubeObject } from '../manifests.ts';
import { KubeApi, KubeApiError } from './api.ts';
import { objectPath } from './kinds.ts';

export interface DryRunResult {
  /** Where the cluster was found, or why none answered. */
  cluster: string;
  reached: boolean;
  /** "stage S: Kind name: the API's message". */
  problems: string[];
}

export async function dryRunGangs(gangs: { stage: string; objects: KubeObject[] }[]): Promise<DryRunResult> {
  let api: KubeApi;
  try {
    api = KubeApi.fromEnvironment();
  } catch (e) {
    return { cluster: (e as Error).message, reached: false, problems: [] };
  }
  try {
    const version = await api.raw('GET', '/version').catch((e: Error) => ({ status: 0, body: e.message }));
    if (version.status !== 200) return { cluster: `${api.source}: the cluster did not answer (${version.body.slice(0, 200)})`, reached: false, problems: [] };
    const problems: string[] = [];
    for (const { stage, objects } of gangs) {
      for (const obj of objects) {
        const ns = obj.metadata.namespace ?? 'default';
        try {
          await api.create(objectPath(obj, ns, false), obj, { dryRun: 'All', fieldValidation: 'Strict' });
        } catch (e) {
          if (!(e instanceof KubeApiError)) throw e;
          const notServed = e.status === 404 && !/namespaces ".*" not found/.test(e.apiMessage);
          problems.push(
            `stage ${stage}: ${obj.kind} ${ns}/${obj.metadata.name}: ${notServed ? `the cluster does not serve ${obj.kind} (${obj.apiVersion}); install its controller and CRD or choose another cluster.kubernetes.flavour` : e.apiMessage}`,
          );
        }
      }
    }
    return { cluster: api.source, reached: true, problems };
  } finally {
    api.close();
  }
}
