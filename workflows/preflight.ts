/**
 * `linkflow validate --on-node`: the client cannot run an activity itself, so this workflow runs
 * preflightOnNode on the node's own queue. A node without a worker fails fast (schedule-to-start).
 */
import { proxyActivities } from '@temporalio/workflow';
import type * as activities from '../activities/index.ts';
import type { NodePreflightInput } from '../contracts/workflows.ts';

export async function preflightOnNodeWorkflow({ nodeQueue, stages }: NodePreflightInput): ReturnType<typeof activities.preflightOnNode> {
  const { preflightOnNode } = proxyActivities<typeof activities>({
    taskQueue: nodeQueue,
    scheduleToStartTimeout: '15s',
    startToCloseTimeout: '2 minutes',
    retry: { maximumAttempts: 1 },
  });
  return preflightOnNode({ stages });
}
