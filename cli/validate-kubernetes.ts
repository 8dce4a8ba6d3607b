/** `linkflow validate` for Kubernetes stages: their first gang, by server-side dry run when a cluster answers, else against the schemas linkflow carries. */
import { ExitError } from '../errors.ts';
import { dryRunGangs } from '../executors/kubernetes/io/dry-run.ts';
import { checkOffline } from '../executors/kubernetes/io/schemas.ts';
import type { PipelinePlan } from '../plan/plan.ts';
import { plannedGangObjects } from './render.ts';

/** What was checked, in one line; throws (exit 2) with every problem. */
export async function validateKubernetes(plan: PipelinePlan): Promise<string | undefined> {
  const gangs = plan.stages.filter((s) => s.kubernetes).map((s) => ({ stage: s.name, objects: plannedGangObjects(plan.name, s) }));
  if (gangs.length === 0) return undefined;
  const count = gangs.reduce((n, g) => n + g.objects.length, 0);
  const dry = await dryRunGangs(gangs);
  const offline = dry.reached ? undefined : checkOffline(gangs);
  const problems = dry.reached ? dry.problems : offline!.problems;
  if (problems.length > 0)
    throw new ExitError(
      `the Kubernetes objects of ${gangs.length} stage(s) were refused (${dry.reached ? `server-side dry run on ${dry.cluster}` : offline!.how}):\n${problems.map((p) => `  ${p}`).join('\n')}`,
      2,
    );
  return dry.reached
    ? `kubernetes: ${count} objects of ${gangs.length} stage(s) accepted by a server-side dry run (${dry.cluster})`
    : `kubernetes: ${count} objects of ${gangs.length} stage(s) match ${offline!.how}; no cluster answered (${dry.cluster})`;
}
