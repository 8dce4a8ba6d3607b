/**
 * Multi-node gangs, workflow side: run N node ranks on the nodes the pool granted as one attempt,
 * and when one fails cancel the others and report the rank that explains it.
 */
import { ActivityCancellationType, CancellationScope, CancelledFailure, isCancellation, proxyActivities } from '@temporalio/workflow';
import type * as activities from '../activities/index.ts';
import { mergeRankResults, mergeRankTimings, nodeQueue, rootCauseRank, type RankAssignment } from '../plan/gang.ts';
import type { StagePlan } from '../plan/plan.ts';
import type { AttemptFailureDetails, AttemptResult, AttemptTimings, RetrySettingsInput, StageState } from '../contracts/run-state.ts';
import { attemptFailure, failureDetails } from './attempts.ts';
import type { Placement } from './placement.ts';

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

export interface GangOutcome {
  nodes?: string[];
  /** A single-node attempt's granted node. */
  node?: string;
  failedNode?: string;
  lastIteration?: number;
  /** When the nodes were granted: the attempt's run time starts here, not while it waited for nodes. */
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
  pool: string,
  s: StageState,
  retry: RetrySettingsInput,
  input: { pipeline: string; stage: StagePlan; attempt: number; saveInterval?: number },
  placement: Placement,
  placed: GangOutcome,
  summary?: string,
): Promise<AttemptResult> {
  const attemptScope = CancellationScope.current();
  const nodes = placement.nodes.map((n) => n.name);
  const masterAddr = placement.nodes[0].address;
  const masterPort = placement.masterPort!;
  placed.nodes = nodes;
  s.status = 'running';
  s.note = `node ranks on ${nodes.join(', ')}; master ${masterAddr}:${masterPort}`;
  const gangScope = new CancellationScope();
  let arrivals = 0;
  const outcomes = await gangScope.run(() =>
    Promise.all(
      nodes.map((node, nodeRank): Promise<RankOutcome> => {
        const rank: RankAssignment = { nodeRank, nodes: nodes.length, node, masterAddr, masterPort };
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
    return [
      {
        ...o,
        details,
        failureClass: attemptFailure(input.attempt, o.error).failureClass ?? 'unknown',
        followsPeer: details?.followsPeer,
        evidence: details?.evidence,
      },
    ];
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
