/** A pool's allocator from the client side: what `linkflow nodes` shows and the operator's actions on a node. */
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { nodeActionUpdate, poolQuery, poolWorkflowId } from '../contracts/pool.ts';
import type { NodeAction } from '../pool/allocator.ts';
import type { PoolView } from '../pool/view.ts';

export class NoPoolError extends Error {}

function noPool(pool: string): NoPoolError {
  return new NoPoolError(`pool ${pool} has no allocator yet: no node worker has joined it (start \`linkflow worker --queue ${pool}\` on a node)`);
}

export async function poolView(client: Client, pool: string): Promise<PoolView> {
  try {
    return await client.workflow.getHandle(poolWorkflowId(pool)).query(poolQuery);
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw noPool(pool);
    throw err;
  }
}

/** Drains, undrains or releases a node; the answer says what happened, an unknown node is an error naming the known ones. */
export async function actOnNode(client: Client, pool: string, action: NodeAction, node: string): Promise<string> {
  try {
    return await client.workflow.getHandle(poolWorkflowId(pool)).executeUpdate(nodeActionUpdate, { args: [{ action, node }] });
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw noPool(pool);
    const cause = (err as { cause?: unknown }).cause;
    throw new Error(cause instanceof Error ? cause.message : (err as Error).message);
  }
}
