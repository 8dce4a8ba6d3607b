/**
 * Multi-node gangs: a stage on N nodes runs as N attempts, one per node rank, that torchrun joins
 * into one job. Pure helpers: where a rank's activity goes, which rank's failure explains the
 * gang's, and what the gang's result is (a rank's launch is launch.ts's launchForRank).
 */
import type { AttemptResult, AttemptTimings } from '../contracts/run-state.ts';
import { ECHO_CLASSES, type FailureClass } from '../failures/failures.ts';

/** A node's own task queue in a pool: `linkflow worker --queue POOL --node NAME` polls it beside POOL. */
export function nodeQueue(pool: string, node: string): string {
  return `${pool}@${node}`;
}

/** Worker identities carry the node name, so the Web UI's pollers say which node a worker is. */
export function nodeIdentity(node: string, host: string, pid: number): string {
  return `${pid}@${host} node=${node}`;
}

/** Which node rank k runs on, and where rank 0 listens: the same for every rank of an attempt. */
export interface RankAssignment {
  nodeRank: number;
  nodes: number;
  node: string;
  masterAddr: string;
  masterPort: number;
}

/** Megatron prints the training log on the last rank, so the last node is the one that sees iterations. */
export function logsIterations(rank: RankAssignment | undefined): boolean {
  return !rank || rank.nodeRank === rank.nodes - 1;
}

export interface RankFailure {
  nodeRank: number;
  failureClass: FailureClass;
  /** The rank stopped because another did (the gang's exit signal handler stopped it with its peer). */
  followsPeer?: boolean;
  /** How its class was established: an `echo` only says that a peer was gone. */
  evidence?: string;
}

/**
 * When one rank dies, the others fail too: they lose their peer (communication), stop with it, or
 * are cancelled. The rank that explains the gang's failure is the first one that failed for another reason.
 */
export function rootCauseRank<T extends RankFailure>(failures: T[]): T | undefined {
  const own = (f: T) => f.evidence !== 'echo' && !f.followsPeer;
  return failures.find((f) => own(f) && !ECHO_CLASSES.has(f.failureClass)) ?? failures.find(own) ?? failures.find((f) => !f.followsPeer) ?? failures[0];
}

/**
 * One result for the gang: iterations come from the last node (the one that logs them), saved
 * checkpoints from node 0 (which prints the saving lines), the rest from whichever rank knows.
 */
export function mergeRankResults(results: AttemptResult[]): AttemptResult {
  const last = results.at(-1)!;
  const first = results[0];
  const max = (xs: (number | undefined)[]) => {
    const known = xs.filter((x): x is number => x !== undefined);
    return known.length ? Math.max(...known) : undefined;
  };
  const checkpoints = results.map((r) => r.lastCheckpoint).filter((c) => c !== undefined);
  const timings = mergeRankTimings(results.map((r) => r.timings));
  return {
    loadedIteration: first.loadedIteration ?? last.loadedIteration,
    resumeNote: first.resumeNote ?? last.resumeNote,
    finalIteration: max(results.map((r) => r.finalIteration)),
    lastCheckpoint: checkpoints.sort((a, b) => b.iteration - a.iteration)[0],
    evalResults: results.find((r) => r.evalResults?.length)?.evalResults ?? last.evalResults,
    logFile: last.logFile,
    logFiles: results.map((r) => r.logFile),
    ...(last.iterationSamples ? { iterationSamples: last.iterationSamples } : {}),
    timings,
  };
}

/** A gang's timings, one per node rank (undefined where a rank reported none): iterations from the last node, saves from node 0. */
export function mergeRankTimings(byRank: (AttemptTimings | undefined)[]): AttemptTimings {
  const first = byRank[0];
  const last = byRank.at(-1);
  return {
    startupMs: last?.startupMs,
    loadMs: first?.loadMs ?? last?.loadMs,
    msPerIteration: last?.msPerIteration,
    saveMsTotal: first?.saveMsTotal ?? last?.saveMsTotal,
    saves: first?.saves ?? last?.saves,
  };
}
