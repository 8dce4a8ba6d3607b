/**
 * The pool workflow (one per pool: the owner of which node runs what) and what crosses to and from it:
 * node workers renew and leave by signal, attempts ask for nodes by update and release them by signal,
 * the pool tells a waiting pipeline its grant by signal, `linkflow nodes` reads it by query.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { AcquireAnswer, NodeAction, NodeRequestInput, PoolSettings, PoolState } from '../pool/allocator.ts';
import type { PoolView } from '../pool/view.ts';

export const poolWorkflowType = 'poolWorkflow';

export interface PoolInput {
  pool: string;
  settings: PoolSettings;
  /** Carried over a continue-as-new. */
  state?: PoolState;
}

export type PoolWorkflow = (input: PoolInput) => Promise<void>;

/** One pool workflow per pool, found by its id. */
export function poolWorkflowId(pool: string): string {
  return `linkflow-pool/${pool}`;
}

export interface NodeRenewal {
  name: string;
  address: string;
  /** Commands the node's worker runs now. */
  running: number;
  /** Which worker process renews (pid and start): another one under the same name is a worker that came back. */
  worker?: string;
  /** The worker's pool settings: the latest renewal's apply (the workers of a pool share a configuration). */
  settings: PoolSettings;
}

export const nodeRenewSignal = defineSignal<[NodeRenewal]>('nodeRenew');
export const nodeLeaveSignal = defineSignal<[{ name: string; reason: string }]>('nodeLeave');

export const acquireNodesUpdate = defineUpdate<AcquireAnswer, [NodeRequestInput]>('acquireNodes');

export interface ReleaseNodes {
  requestId: string;
  /** Nodes that failed their health check: quarantined, and the request goes back to its place in the queue. */
  unhealthy?: { node: string; reason: string }[];
}
export const releaseNodesSignal = defineSignal<[ReleaseNodes]>('releaseNodes');

/** An attempt failed for a reason of the machines, and this node is the one that explains it. */
export const blameNodeSignal = defineSignal<[{ node: string; reason: string; job?: string }]>('blameNode');

export const nodeActionUpdate = defineUpdate<string, [{ action: NodeAction; node: string }]>('nodeAction');

export const poolQuery = defineQuery<PoolView>('pool');

/** Sent by the pool to a pipeline waiting in its queue: its request was granted (the pipeline then asks for the grant). */
export const nodesGrantedSignal = defineSignal<[{ requestId: string }]>('nodesGranted');
