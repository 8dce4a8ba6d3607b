/** What can be checked of a Kubernetes gang before it is submitted (`linkflow validate`): each problem with its spec path. */
import type { PipelineSpec, SpecProblem } from '../../spec/spec.ts';
import { MANAGED_POD_FIELDS } from './manifests.ts';
import type { KubernetesSettings } from './plan.ts';

export function checkKubernetes(spec: PipelineSpec, problems: SpecProblem[]): void {
  const { executor, kubernetes, hosts, devicesPerNode } = spec.cluster;
  if (executor !== 'kubernetes') {
    if (kubernetes)
      problems.push({ path: 'cluster.kubernetes', message: 'is only used with executor: kubernetes; add cluster.executor: kubernetes or remove it' });
    return;
  }
  if (!kubernetes) {
    problems.push({ path: 'cluster.kubernetes', message: 'expected the Kubernetes settings (at least image and volumes) for executor: kubernetes' });
    return;
  }
  if (hosts) problems.push({ path: 'cluster.hosts', message: 'Kubernetes places the pods itself; use cluster.kubernetes.nodeSelector instead of hosts' });
  const perNode = kubernetes.devices.perNode;
  if (perNode !== undefined && perNode < devicesPerNode)
    problems.push({
      path: 'cluster.kubernetes.devices.perNode',
      message: `asks for ${perNode} devices per pod, but each pod runs ${devicesPerNode} processes (cluster.devicesPerNode); ask for at least ${devicesPerNode}`,
    });
  for (const field of Object.keys(kubernetes.pod ?? {}))
    if (MANAGED_POD_FIELDS.includes(field))
      problems.push({
        path: `cluster.kubernetes.pod.${field}`,
        message: `${field} is set by linkflow for every gang; use the cluster.kubernetes field for it or remove it`,
      });
  if (kubernetes.flavour === 'pods' && kubernetes.queue)
    problems.push({ path: 'cluster.kubernetes.queue', message: 'a queue is Volcano’s: use flavour volcano or ascendjob, or remove it' });
  if (kubernetes.flavour !== 'ascendjob' && (kubernetes.faultScheduling !== 'off' || kubernetes.faultRetryTimes))
    problems.push({ path: 'cluster.kubernetes.faultScheduling', message: 'fault scheduling is MindCluster’s (flavour ascendjob)' });
  if (kubernetes.faultRetryTimes && kubernetes.faultScheduling === 'off')
    problems.push({
      path: 'cluster.kubernetes.faultRetryTimes',
      message: 'MindCluster retries only with fault scheduling on (faultScheduling: grace or force)',
    });
}

/** The plan's settings: the devices per pod default to the processes each node runs. */
export function kubernetesSettings(spec: PipelineSpec): KubernetesSettings | undefined {
  const k = spec.cluster.kubernetes;
  if (spec.cluster.executor !== 'kubernetes' || !k) return undefined;
  return { ...k, devices: { resource: k.devices.resource, perNode: k.devices.perNode ?? spec.cluster.devicesPerNode } };
}
