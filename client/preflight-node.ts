/** `linkflow validate --on-node`: a node's own checks of a plan, through its worker (workflows/preflight.ts). */
import { ActivityFailure, WorkflowFailedError, type Client } from '@temporalio/client';
import { randomUUID } from 'node:crypto';
import { nodeQueue } from '../plan/gang.ts';
import type { PipelinePlan } from '../plan/types.ts';
import { preflightOnNodeWorkflowType, type PreflightOnNodeWorkflow } from '../contracts/workflows.ts';
import { ExitError } from '../errors.ts';

/** The node's own checks, through its worker (workflows/preflight.ts); a node without a worker is reported as such. */
export async function preflightThroughNode(
  client: Client,
  pool: string,
  node: string,
  plan: PipelinePlan,
): Promise<Awaited<ReturnType<PreflightOnNodeWorkflow>>> {
  try {
    return await client.workflow.execute<PreflightOnNodeWorkflow>(preflightOnNodeWorkflowType, {
      taskQueue: pool,
      workflowId: `linkflow-preflight-${node}-${randomUUID()}`,
      args: [{ nodeQueue: nodeQueue(pool, node), stages: plan.stages }],
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
