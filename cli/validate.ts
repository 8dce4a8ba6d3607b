/** `linkflow validate` (and `run`, before it starts anything): every problem of a spec with its path and the fix. */
import type { PipelinePlan } from '../plan/types.ts';
import type { PipelineSpec, SpecProblem } from '../spec/spec.ts';
import { preflightSpecFile } from '../client/preflight.ts';
import { ExitError } from '../errors.ts';
import { plural } from './progress.ts';

function lines(problems: SpecProblem[], prefix = ''): string {
  return problems.map((p) => `${prefix}${p.path}: ${p.message}`).join('\n');
}

/** The plan of a spec that passes every check, the warnings printed; otherwise exit 2 with every problem. */
export async function preflightOrExit(file: string, workspace?: string): Promise<{ plan: PipelinePlan; spec: PipelineSpec }> {
  const result = preflightSpecFile(file, { workspace });
  if (result.warnings.length) console.error(lines(result.warnings, 'warning: '));
  if (!result.ok) throw new ExitError(`${file}: invalid pipeline spec (${plural(result.problems.length, 'problem')}):\n${lines(result.problems)}`, 2);
  return result;
}

export async function validateCommand(file: string, opts: { onNode?: string; workspace?: string }): Promise<void> {
  const { plan } = await preflightOrExit(file, opts.workspace);
  // Kubernetes stages: their gangs by server-side dry run, or offline against the schemas linkflow carries.
  const gangs = plan.stages.some((s) => s.kubernetes) ? await (await import('./validate-kubernetes.ts')).validateKubernetes(plan) : undefined;
  console.log(
    `${file}: valid; pipeline ${plan.name}, ${plural(plan.stages.length, 'stage')}: ${plan.stages.map((s) => `${s.name} (${s.kind})`).join(', ')}${gangs ? `\n${gangs}` : ''}`,
  );
  if (!opts.onNode) return;
  const [{ connectClient }, { preflightThroughNode }, { loadConfig }] = await Promise.all([
    import('../client/connect.ts'),
    import('../client/preflight-node.ts'),
    import('../temporal.config.ts'),
  ]);
  const config = loadConfig();
  const client = await connectClient(config);
  const pool = plan.taskQueue ?? config.taskQueue;
  const result = await preflightThroughNode(client, pool, opts.onNode, plan);
  if (result.problems.length) throw new ExitError(`on node ${result.node} (${plural(result.problems.length, 'problem')}):\n${lines(result.problems)}`, 2);
  console.log(`on node ${result.node}: checked ${result.checked.join('; ')}`);
}
