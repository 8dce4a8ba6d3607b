/**
 * Multi-node gangs, workflow side: place N node ranks (named hosts or free nodes of the pool), run
 * them as one attempt, and when one fails cancel the others and report the rank that explains it.
 */
import { ActivityCancellationType, CancellationScope, CancelledFailure, isCancellation, proxyActivities, sleep, workflowInfo } from '@temporalio/workflow';
import type * as activities from '../activities/index.ts';
import { launchOf, nodesOf } from '../modellink/launch.ts';
import { chooseNodes, mergeRankResults, mergeRankTimings, nodeQueue, rootCauseRank, type RankAssignment } from '../modellink/gang.ts';
import type { PipelinePlan, StagePlan } from '../modellink/plan.ts';
import type { AttemptFailureDetails, AttemptResult, AttemptTimings, RetrySettingsInput, StageState } from '../contracts/run-state.ts';
import { attemptFailure, failureDetails } from './attempts.ts';

const bookkeeping = proxyActivities<typeof activities>({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 5, initialInterval: '2s' },
});

/** How the Web UI names an attempt: "pretrain · attempt 2 · from 30" (a gang's rank adds " · on NODE"). */
export function attemptSummary(stage: string, attempt: number, from: number | undefined): string {
  return [stage, `attempt ${attempt}`, ...(from !== undefined ? [`from ${from}`] : [])].join(' · ');
}

/** The attempt activity, on the pool's queue or on one node's queue. */
export function attemptActivities(retry: RetrySettingsInput, taskQueue?: string, summary?: string) {
  return proxyActivities<typeof activities>({
    taskQueue,
    ...(summary ? { summary } : {}),
    startToCloseTimeout: retry.startToCloseTimeoutMs,
    heartbeatTimeout: retry.heartbeatTimeoutMs,
    // A node's rank must start soon after placement; if its worker went away meanwhile, the gang re-forms.
    ...(taskQueue ? { scheduleToStartTimeout: '2 minutes' } : {}),
    // Retries are the pipeline's own loop: each attempt re-reads the checkpoints and is recorded.
    retry: { maximumAttempts: 1 },
    // Cancelling waits until the activity has killed the process group.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  });
}

/** Asks a node's worker about itself; a node that does not answer within seconds is not up. */
async function probeNode(pool: string, node: string, reservePort = false) {
  const { nodeInfo } = proxyActivities<typeof activities>({ taskQueue: nodeQueue(pool, node), scheduleToCloseTimeout: '15s', retry: { maximumAttempts: 1 } });
  try {
    return await nodeInfo({ reservePort });
  } catch (err) {
    if (isCancellation(err)) throw err;
    return undefined;
  }
}

/** The nodes of the pool (or the given ones) that answer now and run nothing. */
export async function freeNodes(pool: string, candidates?: string[]): Promise<string[]> {
  const names = candidates ?? (await bookkeeping.poolNodes({ pool }));
  const answers = await Promise.all(names.map((node) => probeNode(pool, node)));
  return answers.filter((a) => a !== undefined && a.running === 0).map((a) => a!.node);
}

/** Waiting for nodes made the history long: the pipeline continues as new and goes on waiting there. */
export class PlacementDeferred extends Error {}

interface GangPlacement {
  /** Rank k runs on nodes[k]. */
  nodes: string[];
  masterAddr: string;
  masterPort: number;
}

/** Nodes for one attempt of a gang: the named hosts or free workers of the pool, and rank 0's address and a free port. */
async function placeGang(plan: PipelinePlan, stage: StagePlan, pool: string, s: StageState): Promise<GangPlacement> {
  // A stage may span fewer nodes than the job (evaluation runs tp × pp ranks): the first hosts.
  const count = nodesOf(launchOf(stage));
  const hosts = plan.hosts?.slice(0, count);
  // Poll often at first, then every 5 minutes: a busy pool may stay busy for hours.
  for (let waitS = 15; ; waitS = Math.min(300, waitS * 2)) {
    const choice = chooseNodes({ hosts, count }, await freeNodes(pool, hosts));
    if ('nodes' in choice) {
      const master = await probeNode(pool, choice.nodes[0], true);
      if (master?.port !== undefined) return { nodes: choice.nodes, masterAddr: master.address, masterPort: master.port };
    }
    s.status = 'waiting-for-nodes';
    s.note = `waiting for ${count} nodes in pool ${pool}: ${'missing' in choice ? choice.missing : `node ${choice.nodes[0]} did not answer`}`;
    if (workflowInfo().continueAsNewSuggested) throw new PlacementDeferred(s.note);
    await sleep(`${waitS}s`);
  }
}

export interface GangOutcome {
  nodes?: string[];
  failedNode?: string;
  lastIteration?: number;
  /** When the ranks were placed: the attempt's run time starts here, not while it waited for nodes. */
  placedAt?: number;
  timings?: AttemptTimings;
}

type RankOutcome = { nodeRank: number; node: string } & ({ result: AttemptResult } | { error: unknown; arrival: number });

/**
 * One attempt of a gang: every node rank at once, all pointed at rank 0's address and port. When
 * one rank fails the others are cancelled (their process groups killed) instead of waiting out a
 * collective's timeout, and the rank that explains the failure is the one reported.
 */
export async function runGangAttempt(
  plan: PipelinePlan,
  pool: string,
  s: StageState,
  retry: RetrySettingsInput,
  input: { pipeline: string; stage: StagePlan; attempt: number; saveInterval?: number },
  placed: GangOutcome,
  summary?: string,
): Promise<AttemptResult> {
  const attemptScope = CancellationScope.current();
  const placement = await placeGang(plan, input.stage, pool, s);
  placed.nodes = placement.nodes;
  placed.placedAt = Date.now();
  s.status = 'running';
  s.note = `node ranks on ${placement.nodes.join(', ')}; master ${placement.masterAddr}:${placement.masterPort}`;
  const gangScope = new CancellationScope();
  let arrivals = 0;
  const outcomes = await gangScope.run(() =>
    Promise.all(
      placement.nodes.map((node, nodeRank): Promise<RankOutcome> => {
        const rank: RankAssignment = { nodeRank, nodes: placement.nodes.length, node, masterAddr: placement.masterAddr, masterPort: placement.masterPort };
        return attemptActivities(retry, nodeQueue(pool, node), summary && `${summary} · on ${node}`)
          .runStageAttempt({ ...input, rank })
          .then(
            (result) => ({ nodeRank, node, result }),
            (error: unknown) => {
              if (!isCancellation(error)) gangScope.cancel();
              return { nodeRank, node, error, arrival: arrivals++ };
            },
          );
      }),
    ),
  );
  const errors = outcomes.flatMap((o) => {
    if (!('error' in o)) return [];
    const details = failureDetails(o.error);
    return [{ ...o, details, failureClass: attemptFailure(input.attempt, o.error).failureClass ?? 'unknown', followsPeer: details?.followsPeer }];
  });
  // Only the last node logs iterations, only node 0 saves: what the gang got to comes from all ranks.
  const reached = errors.map((e) => e.details?.lastIteration).filter((x): x is number => x !== undefined);
  if (reached.length > 0) placed.lastIteration = Math.max(...reached);
  placed.timings = mergeRankTimings(outcomes.map((o) => ('error' in o ? failureDetails(o.error)?.timings : o.result.timings)));
  if (attemptScope.consideredCancelled) {
    // Stopped or cancelled from outside: whatever the ranks reported on the way out (a peer gone,
    // an early clean exit), this attempt was stopped, not failed.
    const last = errors.at(-1)?.details;
    const details: Partial<AttemptFailureDetails> = {
      ...last,
      lastIteration: placed.lastIteration,
      loadedIteration: errors[0]?.details?.loadedIteration ?? last?.loadedIteration,
    };
    throw new CancelledFailure('CANCELLED', [details]);
  }
  // In the order the failures arrived: the first rank that failed for its own reason explains the gang's failure.
  const failed = errors.filter((o) => !isCancellation(o.error)).sort((a, b) => a.arrival - b.arrival);
  if (failed.length > 0) {
    const root = rootCauseRank(failed)!;
    placed.failedNode = root.node;
    throw root.error;
  }
  if (errors.length > 0) throw errors.at(-1)!.error;
  return mergeRankResults(outcomes.map((o) => (o as { result: AttemptResult }).result));
}
