/**
 * A pool's allocator: one long-running workflow per pool that knows its nodes and grants them, so
 * no node ever runs two attempts. Nodes renew by signal and leave when silent; attempts ask by
 * update and release by signal; a pipeline waiting in the queue is told of its grant by signal.
 * Holders that no longer run are reclaimed. The history stays bounded by continuing as new with the state.
 */
import {
  allHandlersFinished,
  ApplicationFailure,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  isCancellation,
  patched,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type * as activities from '../activities/index.ts';
import {
  acquireNodesUpdate,
  blameNodeSignal,
  nodeActionUpdate,
  nodeLeaveSignal,
  nodeRenewSignal,
  nodesGrantedSignal,
  poolQuery,
  releaseNodesSignal,
  type PoolInput,
} from '../contracts/pool.ts';
import {
  answerFor,
  blameNode,
  emptyPool,
  endQuarantines,
  enqueueRequest,
  forgiveSilence,
  expireSilentNodes,
  holders,
  nextDeadline,
  nodeAction,
  quarantineNode,
  reclaim,
  releaseRequest,
  requestIds,
  removeNode,
  renewNode,
  requeueRequest,
  schedule,
  type Grant,
  type PoolState,
} from '../pool/allocator.ts';
import { describePool } from '../pool/view.ts';

/** Issue 17's grant rules (blame quarantines granted last, cleared when a worker restarts; a job's blames count once). */
const POOL_BLAME_EVIDENCE = 'pool-blame-evidence';

const { closedWorkflows } = proxyActivities<typeof activities>({ startToCloseTimeout: '1 minute', retry: { maximumAttempts: 3 } });

export async function poolWorkflow({ pool, settings: initialSettings, state: carried }: PoolInput): Promise<void> {
  const state = carried ?? emptyPool(pool);
  // Read once per run, before any handler runs: a run begun on the old code keeps the old rules to its end
  // when replayed; the next run (continue-as-new) records the marker in its own history and takes the new ones.
  // Not taken from the carried state: each run's history alone decides, so a run is replayed as it ran.
  state.blameEvidence = patched(POOL_BLAME_EVIDENCE);
  let settings = initialSettings;
  let wake = true;
  const granted: Grant[] = [];
  const changed = () => {
    wake = true;
  };
  const serve = () => granted.push(...schedule(state, Date.now()));

  setHandler(nodeRenewSignal, (r) => {
    const known = state.nodes[r.name];
    // A renewal that changes nothing leaves the loop asleep: with many nodes renewing, each wake-up is history.
    const workerChanged = state.blameEvidence && known?.worker !== r.worker;
    if (!known || known.running !== r.running || known.address !== r.address || workerChanged) changed();
    renewNode(state, r, Date.now());
    if (JSON.stringify(r.settings) !== JSON.stringify(settings)) settings = r.settings;
  });
  setHandler(nodeLeaveSignal, ({ name, reason }) => {
    if (removeNode(state, name, reason, Date.now())) changed();
  });
  setHandler(acquireNodesUpdate, (request) => {
    const now = Date.now();
    const problem = enqueueRequest(state, request, now);
    if (problem) return { refused: problem };
    serve();
    changed();
    return answerFor(state, request.id, now);
  });
  setHandler(releaseNodesSignal, ({ requestId, unhealthy }) => {
    const now = Date.now();
    for (const u of unhealthy ?? []) quarantineNode(state, settings, u.node, u.reason, now);
    if (unhealthy?.length) requeueRequest(state, requestId, now);
    else releaseRequest(state, requestId, now, undefined, true);
    changed();
  });
  setHandler(blameNodeSignal, ({ node, reason, job }) => {
    blameNode(state, settings, node, reason, Date.now(), job);
    changed();
  });
  setHandler(nodeActionUpdate, ({ action, node }) => {
    try {
      const said = nodeAction(state, action, node, Date.now());
      changed();
      return said;
    } catch (err) {
      throw ApplicationFailure.create({ type: 'NodeActionRefused', nonRetryable: true, message: (err as Error).message });
    }
  });
  setHandler(poolQuery, () => describePool(state, settings, Date.now()));

  state.nextReclaimAt ??= Date.now() + settings.reclaimIntervalMs;
  let lastWake = Date.now();
  for (;;) {
    await condition(() => wake, Math.max(1, Math.min(state.nextReclaimAt, nextDeadline(state, settings) ?? Infinity) - Date.now()));
    wake = false;
    const now = Date.now();
    // Asleep far past its own deadlines: the pool was away (the server was down), not its nodes.
    if (now - lastWake > 1.5 * settings.nodeTimeoutMs) forgiveSilence(state, now);
    lastWake = now;
    expireSilentNodes(state, settings, now);
    endQuarantines(state, now);
    serve();
    if (now >= state.nextReclaimAt) {
      state.nextReclaimAt = now + settings.reclaimIntervalMs;
      await reclaimGone(state);
      serve();
    }
    await tellHolders(granted.splice(0));
    // A pool nobody uses any more (its last node left, nothing held or asked) ends; the next node or request starts it again.
    if (idle(state) && (await condition(() => !idle(state), settings.nodeTimeoutMs))) continue;
    if (idle(state)) return;
    // Well before Temporal's own limits: every signal and timer is a few events.
    if (workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > settings.historyLimit) {
      await condition(allHandlersFinished);
      await tellHolders(granted.splice(0));
      await continueAsNew<typeof poolWorkflow>({ pool, settings, state });
    }
  }
}

/** Releases what workflows that no longer run hold; a check that fails is tried again at the next interval. */
async function reclaimGone(state: PoolState): Promise<void> {
  const ids = holders(state);
  if (ids.length === 0) return;
  const asked = requestIds(state);
  try {
    reclaim(state, await closedWorkflows({ workflowIds: ids }), Date.now(), asked);
  } catch (err) {
    if (isCancellation(err)) throw err;
  }
}

function idle(state: PoolState): boolean {
  return Object.keys(state.nodes).length === 0 && state.queue.length === 0 && Object.keys(state.grants).length === 0;
}

/** Wakes the pipelines whose requests were granted; one that is gone is reclaimed later, and a waiting one also asks again by itself. */
async function tellHolders(grants: Grant[]): Promise<void> {
  await Promise.all(
    grants.map((g) =>
      getExternalWorkflowHandle(g.request.holder.workflowId)
        .signal(nodesGrantedSignal, { requestId: g.request.id })
        .catch(() => undefined),
    ),
  );
}
