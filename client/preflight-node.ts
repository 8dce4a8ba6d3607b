/** `linkflow validate --on-node`: a node's own checks of a plan, through its worker (workflows/preflight.ts). */
import { ActivityFailure, WorkflowFailedError, type Client } from '@temporalio/client';
import proto from '@temporalio/proto';
import { randomUUID } from 'node:crypto';
import { nodeQueue } from '../plan/gang.ts';
import type { PipelinePlan } from '../plan/types.ts';
import { preflightOnNodeWorkflowType, type PreflightOnNodeWorkflow } from '../contracts/workflows.ts';
import { ExitError } from '../errors.ts';

const { TaskQueueKind, TaskQueueType } = proto.temporal.api.enums.v1;

/** Whether any worker polls the pool's workflow queue: without one the checks' workflow would never start. */
async function poolHasWorker(client: Client, pool: string): Promise<boolean> {
  const response = await client.workflowService.describeTaskQueue({
    namespace: client.options.namespace,
    taskQueue: { name: pool, kind: TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
    taskQueueType: TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
  });
  return (response.pollers ?? []).length > 0;
}

/** The node's own checks, through its worker (workflows/preflight.ts); a pool or node without a worker is reported as such. */
export async function preflightThroughNode(
  client: Client,
  pool: string,
  node: string,
  plan: PipelinePlan,
): Promise<Awaited<ReturnType<PreflightOnNodeWorkflow>>> {
  if (!(await poolHasWorker(client, pool)))
    throw new ExitError(
      `no worker polls the pool's task queue ${pool}, so node ${node} cannot run the checks: start \`linkflow worker --node ${node}\` (or \`linkflow dev\`)`,
      1,
    );
  try {
    return await client.workflow.execute<PreflightOnNodeWorkflow>(preflightOnNodeWorkflowType, {
      taskQueue: pool,
      workflowId: `linkflow-preflight-${node}-${randomUUID()}`,
      args: [{ nodeQueue: nodeQueue(pool, node), stages: plan.stages }],
      // A backstop if the pool's worker goes away after the check above: the node's checks take seconds.
      workflowExecutionTimeout: '5 minutes',
    });
  } catch (e) {
    if (!(e instanceof WorkflowFailedError)) throw e;
    const why = e.cause instanceof ActivityFailure && e.cause.cause ? e.cause.cause.message : (e.cause?.message ?? e.message);
    throw new ExitError(
      `node ${node} did not run the checks: ${why}${/schedule_?to_?start/i.test(why) ? ` (no worker polls its queue ${nodeQueue(pool, node)}: is \`linkflow worker --node ${node}\` running?)` : ''}`,
      1,
    );
  }
}
