/**
 * What the benchmark store keeps and gives back, as plain data: a run (one night of a suite on a cluster)
 * and the result of each of its cases. Reports are built from these types only.
 */
import type { CaseResult, EnvironmentFingerprint, Verdict } from './core.ts';

export const RUN_STATUSES = ['running', 'completed', 'failed', 'cancelled'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

export interface NewRun {
  /** The benchmark workflow's id makes a good one: unique, and the same when an activity retries. */
  id: string;
  suiteName: string;
  /** History is compared within one cluster name (the suite's cluster, else its task queue). */
  cluster: string;
  /** ISO 8601; stored as UTC with milliseconds so that text order is time order. */
  startedAt: string;
  fingerprint: EnvironmentFingerprint;
}

export interface RunRecord extends NewRun {
  status: RunStatus;
  finishedAt?: string;
}

export type VerdictCounts = Record<Verdict, number>;

export interface RunSummary extends RunRecord {
  counts: VerdictCounts;
}

export interface CaseRecord extends CaseResult {
  runId: string;
  /** The case's place in the run's suite. */
  position: number;
  recordedAt: string;
}

/** One earlier night of a case: what its verdict was compared with. */
export interface HistoryNight {
  runId: string;
  startedAt: string;
  tokensPerSecondPerDevice: number;
  verdict: Verdict;
}

/** One night of a case for a chart: failed and skipped nights have no figure but are shown. */
export interface SeriesPoint {
  runId: string;
  startedAt: string;
  verdict: Verdict;
  tokensPerSecondPerDevice?: number;
  baseline?: number;
}

/** Everything a report of one run needs. */
export interface RunReport {
  run: RunRecord;
  cases: CaseRecord[];
  /** Per case id, its nights up to and including this run, oldest first. */
  series: Record<string, SeriesPoint[]>;
  /** The fingerprint of the run before this one on the same cluster, to show what changed. */
  previous?: { runId: string; fingerprint: EnvironmentFingerprint };
}
