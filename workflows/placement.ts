/**
 * Nodes for one attempt, from the pool's allocator: ask, wait in the queue (showing where), check
 * the granted nodes' health (a node that fails is quarantined and placement moves on, without using
 * the job's budget), run the attempt, and release the nodes however it ends.
 */
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  getExternalWorkflowHandle,
  isCancellation,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type * as activities from '../activities/index.ts';
import type { NodeCheck } from '../activities/pool.ts';
import { blameNodeSignal, nodesGrantedSignal, poolWorkflowId, releaseNodesSignal } from '../contracts/pool.ts';
import type { StageState } from '../contracts/run-state.ts';
import { nodeQueue } from '../plan/gang.ts';
import type { Holder } from '../pool/allocator.ts';

const pool = proxyActivities<typeof activities>({ startToCloseTimeout: '1 minute', retry: { maximumAttempts: 10, initialInterval: '1s' } });

/** While queued, ask again this often even without a signal (the pool's signal may be lost with a restart). */
const ASK_AGAIN = '30s';

/** Waiting for nodes made the history long: the pipeline continues as new and goes on waiting there, keeping its place. */
export class PlacementDeferred extends Error {}

export interface Placement {
  requestId: string;
  /** Rank k runs on nodes[k]. */
  nodes: { name: string; address: string }[];
  /** A free port on the first node, for a gang's rendezvous. */
  masterPort?: number;
}

export interface PlacementRequest {
  pool: string;
  holder: Holder;
  count: number;
  hosts?: string[];
  avoid?: string[];
  /** Take a free port on the first node (a gang's master). */
  masterPort: boolean;
}

const grantedRequests = new Set<string>();

/** Runs `attempt` on nodes granted by the pool, and gives them back whatever happens. */
export async function onPoolNodes<T>(request: PlacementRequest, s: StageState, attempt: (placement: Placement) => Promise<T>): Promise<T> {
  setHandler(nodesGrantedSignal, ({ requestId }) => void grantedRequests.add(requestId));
  const id = `${request.holder.workflowId}/${request.holder.stage}/attempt-${request.holder.attempt}`;
  let result: T;
  try {
    result = await attempt(await acquire(id, request, s));
  } catch (err) {
    // Continuing as new while queued: the next run asks with the same id and keeps this place.
    if (!(err instanceof PlacementDeferred)) await releaseAnyway(request.pool, id);
    throw err;
  }
  await releaseAnyway(request.pool, id);
  return result;
}

/** Released even when the attempt was cancelled, and when still queued (the request is withdrawn). */
async function releaseAnyway(poolName: string, requestId: string): Promise<void> {
  await CancellationScope.nonCancellable(() => release(poolName, { requestId })).catch(() => undefined);
}

async function acquire(id: string, request: PlacementRequest, s: StageState): Promise<Placement> {
  for (;;) {
    const answer = await pool.requestPoolNodes({
      pool: request.pool,
      request: { id, holder: request.holder, count: request.count, hosts: request.hosts, avoid: request.avoid },
    });
    if ('refused' in answer) {
      throw ApplicationFailure.create({ type: 'PlacementRefused', nonRetryable: true, message: `pool ${request.pool} refused the request: ${answer.refused}` });
    }
    if ('queued' in answer) {
      s.status = 'waiting-for-nodes';
      s.note = `waiting for ${answer.queued.waitingFor} in pool ${request.pool}: position ${answer.queued.position} in the queue`;
      // The Web UI shows it on the workflow's page.
      setCurrentDetails(`**${request.holder.stage}** attempt ${request.holder.attempt}: ${s.note}`);
      if (workflowInfo().continueAsNewSuggested) throw new PlacementDeferred(s.note);
      // The timer is named in the Web UI's timeline ("waiting for a node") instead of an anonymous timer.
      await condition(() => grantedRequests.has(id), ASK_AGAIN, { summary: `waiting for ${request.count === 1 ? 'a node' : `${request.count} nodes`}` });
      continue;
    }
    const nodes = answer.granted.nodes;
    const checks = await Promise.all(nodes.map((n, k) => checkNode(request.pool, n.name, request.masterPort && k === 0)));
    const unhealthy = checks.filter((c): c is Extract<NodeCheck, { healthy: false }> => !c.healthy);
    if (unhealthy.length === 0) {
      setCurrentDetails(`**${request.holder.stage}** attempt ${request.holder.attempt} on ${nodes.map((n) => n.name).join(', ')}`);
      const first = checks[0] as Extract<NodeCheck, { healthy: true }>;
      return {
        requestId: id,
        nodes: nodes.map((n, k) => ({ name: n.name, address: (checks[k] as { address?: string }).address ?? n.address })),
        masterPort: first.port,
      };
    }
    // Quarantined by the pool; the request keeps its place and is served by other nodes.
    grantedRequests.delete(id);
    s.note = `${unhealthy.map((u) => `node ${u.node}: ${u.reason}`).join('; ')}; placement moves on`;
    await release(request.pool, { requestId: id, unhealthy: unhealthy.map((u) => ({ node: u.node, reason: u.reason })) });
  }
}

/** A node's health check on its own queue; a node whose worker does not answer in time is unhealthy too. */
async function checkNode(poolName: string, node: string, reservePort: boolean): Promise<NodeCheck> {
  const onNode = proxyActivities<typeof activities>({
    taskQueue: nodeQueue(poolName, node),
    // A node whose worker died within the pool's node timeout is still listed: it does not pick this up.
    scheduleToStartTimeout: '20s',
    startToCloseTimeout: '5 minutes',
    retry: { maximumAttempts: 1 },
  });
  try {
    return await onNode.checkNode({ reservePort });
  } catch (err) {
    if (isCancellation(err)) throw err;
    return { healthy: false, node, reason: `its worker did not answer the health check (${err instanceof Error ? err.message : String(err)})` };
  }
}

function release(poolName: string, what: { requestId: string; unhealthy?: { node: string; reason: string }[] }): Promise<void> {
  return getExternalWorkflowHandle(poolWorkflowId(poolName)).signal(releaseNodesSignal, what);
}

/** An attempt failed for a reason of the machines and this node explains it: the pool counts it toward a quarantine. */
export async function blameNode(poolName: string, node: string, reason: string, job?: string): Promise<void> {
  await getExternalWorkflowHandle(poolWorkflowId(poolName))
    .signal(blameNodeSignal, { node, reason, ...(job ? { job } : {}) })
    .catch(() => undefined);
}
