/** What can be checked of a Slurm submission before it is made (`linkflow validate`): each problem with its spec path. */
import { gresCount, MANAGED_OPTIONS } from './plan.ts';
import type { PipelineSpec, SpecProblem } from '../../spec/spec.ts';

export function checkSlurm(spec: PipelineSpec, problems: SpecProblem[]): void {
  const { executor, slurm, hosts, nodes, devicesPerNode } = spec.cluster;
  if (executor !== 'slurm') {
    if (slurm) problems.push({ path: 'cluster.slurm', message: 'is only used with executor: slurm; add cluster.executor: slurm or remove it' });
    return;
  }
  if (!slurm?.partition) problems.push({ path: 'cluster.slurm.partition', message: 'expected the Slurm partition the jobs are submitted to' });
  if (hosts) problems.push({ path: 'cluster.hosts', message: 'Slurm places the jobs itself; use cluster.slurm.exclude or constraint instead of hosts' });
  if (slurm?.gresPerNode) {
    const count = gresCount(slurm.gresPerNode);
    if (count !== undefined && count < devicesPerNode)
      problems.push({
        path: 'cluster.slurm.gresPerNode',
        message: `asks for ${count} devices per node, but each of the ${nodes} node${nodes === 1 ? '' : 's'} runs ${devicesPerNode} processes (cluster.devicesPerNode); ask for at least ${devicesPerNode}`,
      });
  }
  slurm?.extraArgs?.forEach((arg, i) => {
    const option = arg.split('=')[0];
    if (MANAGED_OPTIONS.includes(option))
      problems.push({
        path: `cluster.slurm.extraArgs[${i}]`,
        message: `${option} is set by linkflow for every job (its nodes, tasks, log and name); remove it`,
      });
  });
}
