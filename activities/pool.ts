/**
 * The pool's side effects: asking the pool workflow for nodes (started if it is not running yet),
 * reading it, checking which of its holders still run, and a node's health check before a rank starts.
 */
import { Context } from '@temporalio/activity';
import { WithStartWorkflowOperation, WorkflowNotFoundError } from '@temporalio/client';
import { acquireNodesUpdate, poolQuery, poolWorkflowId, poolWorkflowType, type PoolWorkflow } from '../contracts/pool.ts';
import type { AcquireAnswer, NodeRequestInput, PoolSettings } from '../pool/allocator.ts';
import { freeCount } from '../pool/view.ts';
import { runHealthCheck } from '../node/health-check.ts';
import { getFreePort } from '../node/free-port.ts';
import { nodeName, thisNodeAddress } from './node.ts';

let configured: { settings: PoolSettings; healthCheck?: string[]; healthCheckTimeoutMs: number } | undefined;

/** Called once by the worker: the pool's rules it starts the allocator with, and this node's health check. */
export function configurePool(pool: NonNullable<typeof configured>): void {
  configured = pool;
}

function settingsOrThrow(): PoolSettings {
  if (!configured) throw new Error('this worker was not configured with pool settings (createLinkflowWorker does it)');
  return configured.settings;
}

/** Asks the pool for nodes; starts the pool's workflow if it is not running. Asking again with the same id answers the same request. */
export async function requestPoolNodes(input: { pool: string; request: NodeRequestInput }): Promise<AcquireAnswer> {
  const client = Context.current().client;
  const start = new WithStartWorkflowOperation<PoolWorkflow>(poolWorkflowType, {
    workflowId: poolWorkflowId(input.pool),
    taskQueue: input.pool,
    args: [{ pool: input.pool, settings: settingsOrThrow() }],
    workflowIdConflictPolicy: 'USE_EXISTING',
  });
  return client.workflow.executeUpdateWithStart(acquireNodesUpdate, { args: [input.request], startWorkflowOperation: start });
}

/** How many nodes the pool could grant now (none when it has no allocator yet). */
export async function poolFreeNodes(input: { pool: string }): Promise<number> {
  const client = Context.current().client;
  try {
    return freeCount(await client.workflow.getHandle(poolWorkflowId(input.pool)).query(poolQuery));
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return 0;
    throw err;
  }
}

/** Which of these workflows no longer run (closed or unknown): their grants are reclaimed. */
export async function closedWorkflows(input: { workflowIds: string[] }): Promise<string[]> {
  const client = Context.current().client;
  const closed = await Promise.all(
    input.workflowIds.map(async (id) => {
      try {
        const d = await client.workflow.getHandle(id).describe();
        return d.status.name === 'RUNNING' ? undefined : id;
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return id;
        throw err;
      }
    }),
  );
  return closed.filter((id): id is string => id !== undefined);
}

export type NodeCheck = { healthy: true; node: string; address: string; port?: number } | { healthy: false; node: string; reason: string };

/** Before a rank starts here: the pool's health check (when one is configured), and rank 0's free port for the rendezvous. */
export async function checkNode(input: { reservePort?: boolean }): Promise<NodeCheck> {
  const node = nodeName();
  if (configured?.healthCheck) {
    const result = await runHealthCheck(configured.healthCheck, configured.healthCheckTimeoutMs);
    if (!result.healthy) return { healthy: false, node, reason: result.reason! };
  }
  const address = thisNodeAddress();
  const port = input.reservePort ? await getFreePort(address) : undefined;
  return { healthy: true, node, address, ...(port !== undefined ? { port } : {}) };
}
