/**
 * The verdict on one case of one night: compared with its history (the previous nights of the same case on
 * the same cluster) when there is enough of it, else with its baseline (the table's figure).
 *
 * A regression must be both outside the noise band (history median − k·MAD) and more than
 * regressionPercent below the history median: the band alone fires on a quiet case whose MAD is ~0,
 * the percentage alone fires on a noisy one.
 */
import type { FailureClass } from '../failures/failures.ts';
import { median, medianAbsoluteDeviation, type Throughput } from './throughput.ts';
import type { BenchmarkCase, CaseParallel, CaseShape, Thresholds } from './suite.ts';

export const VERDICTS = ['ok', 'regression', 'improvement', 'failed', 'skipped'] as const;
export type Verdict = (typeof VERDICTS)[number];

/** The numbers a verdict was decided with, kept so a report can show them. */
export interface Comparison {
  /** What the last figure was judged against. */
  comparedWith: 'history' | 'baseline' | 'nothing';
  historyNights: number;
  historyMedian?: number;
  historyMad?: number;
  /** history median − k·MAD and + k·MAD. */
  noiseLow?: number;
  noiseHigh?: number;
  changeVsHistoryPercent?: number;
  changeVsBaselinePercent?: number;
}

/** What happened to a case in a run, before it is judged. */
export type CaseOutcome =
  | { kind: 'measured'; throughput: Throughput }
  | { kind: 'failed'; failureClass: FailureClass; reason: string; excerpt: string[] }
  | { kind: 'skipped'; reason: string };

export interface CaseResult {
  caseId: string;
  title: string;
  preset?: string;
  shape: CaseShape;
  parallel?: CaseParallel;
  baseline?: number;
  verdict: Verdict;
  throughput?: Throughput;
  failureClass?: FailureClass;
  /** One line a person reads first: why the verdict, why it failed, or why it was skipped. */
  reason: string;
  /** The log lines that prove a failure. */
  excerpt?: string[];
  comparison: Comparison;
}

function percentChange(value: number, against: number): number {
  return ((value - against) / against) * 100;
}

function fmt(n: number): string {
  return Math.abs(n) >= 100 ? n.toFixed(0) : n.toPrecision(3);
}

function pct(n: number): string {
  return `${n >= 0 ? '+' : ''}${n.toFixed(1)} %`;
}

/** History statistics, whether or not a figure was measured tonight (a failed case still shows them). */
function compareWithHistory(last: number | undefined, baseline: number | undefined, history: readonly number[], thresholds: Thresholds): Comparison {
  const nights = history.filter((h) => Number.isFinite(h) && h > 0);
  const c: Comparison = { comparedWith: 'nothing', historyNights: nights.length };
  if (nights.length > 0) {
    c.historyMedian = median(nights);
    c.historyMad = medianAbsoluteDeviation(nights);
    c.noiseLow = c.historyMedian - thresholds.noiseBandMads * c.historyMad;
    c.noiseHigh = c.historyMedian + thresholds.noiseBandMads * c.historyMad;
  }
  if (last !== undefined && c.historyMedian !== undefined) c.changeVsHistoryPercent = percentChange(last, c.historyMedian);
  if (last !== undefined && baseline !== undefined) c.changeVsBaselinePercent = percentChange(last, baseline);
  if (nights.length >= thresholds.minHistoryNights) c.comparedWith = 'history';
  else if (baseline !== undefined) c.comparedWith = 'baseline';
  return c;
}

/** ok, regression or improvement for a measured figure, with the numbers and a one-line reason. */
export function decideVerdict(
  last: number,
  baseline: number | undefined,
  history: readonly number[],
  thresholds: Thresholds,
): { verdict: 'ok' | 'regression' | 'improvement'; comparison: Comparison; reason: string } {
  const c = compareWithHistory(last, baseline, history, thresholds);
  const { regressionPercent, improvementPercent } = thresholds;
  if (c.comparedWith === 'history') {
    const change = c.changeVsHistoryPercent!;
    const band = `noise band ${fmt(c.noiseLow!)}–${fmt(c.noiseHigh!)}`;
    const vs = `${fmt(last)} tokens/s/device is ${pct(change)} vs the median ${fmt(c.historyMedian!)} of ${c.historyNights} nights`;
    if (last < c.noiseLow! && change < -regressionPercent)
      return { verdict: 'regression', comparison: c, reason: `${vs}, below the ${band} and more than ${regressionPercent} % slower` };
    if (last > c.noiseHigh! && change > improvementPercent)
      return { verdict: 'improvement', comparison: c, reason: `${vs}, above the ${band} and more than ${improvementPercent} % faster` };
    return { verdict: 'ok', comparison: c, reason: `${vs} (${band}, threshold ${regressionPercent} %)` };
  }
  if (c.comparedWith === 'baseline') {
    const change = c.changeVsBaselinePercent!;
    const vs = `${fmt(last)} tokens/s/device is ${pct(change)} vs the baseline ${fmt(baseline!)} (history: ${c.historyNights} of ${thresholds.minHistoryNights} nights needed)`;
    if (change < -regressionPercent) return { verdict: 'regression', comparison: c, reason: `${vs}, more than ${regressionPercent} % slower` };
    if (change > improvementPercent) return { verdict: 'improvement', comparison: c, reason: `${vs}, more than ${improvementPercent} % faster` };
    return { verdict: 'ok', comparison: c, reason: vs };
  }
  return {
    verdict: 'ok',
    comparison: c,
    reason: `${fmt(last)} tokens/s/device; nothing to compare with yet (no baseline, ${c.historyNights} of ${thresholds.minHistoryNights} nights of history)`,
  };
}

/**
 * A case's result for one run. `history` holds the tokens/s per device of the previous measured nights of the
 * same case on the same cluster (this run excluded; failed and skipped nights have no figure and are not in it).
 */
export function judgeCase(c: BenchmarkCase, outcome: CaseOutcome, history: readonly number[], thresholds: Thresholds): CaseResult {
  const base = {
    caseId: c.id,
    title: c.title,
    ...(c.preset !== undefined ? { preset: c.preset } : {}),
    shape: c.shape,
    ...(c.parallel !== undefined ? { parallel: c.parallel } : {}),
    ...(c.baseline !== undefined ? { baseline: c.baseline } : {}),
  };
  switch (outcome.kind) {
    case 'measured': {
      const v = decideVerdict(outcome.throughput.tokensPerSecondPerDevice, c.baseline, history, thresholds);
      return { ...base, verdict: v.verdict, throughput: outcome.throughput, reason: v.reason, comparison: v.comparison };
    }
    case 'failed':
      return {
        ...base,
        verdict: 'failed',
        failureClass: outcome.failureClass,
        reason: outcome.reason,
        excerpt: outcome.excerpt,
        comparison: compareWithHistory(undefined, c.baseline, history, thresholds),
      };
    case 'skipped':
      return { ...base, verdict: 'skipped', reason: outcome.reason, comparison: compareWithHistory(undefined, c.baseline, history, thresholds) };
  }
}

/** Why a case cannot run on a pool of this size now (undefined: it can). Reported as skipped, not failed. */
export function capacitySkipReason(c: BenchmarkCase, pool: { nodes: number; devicesPerNode: number }): string | undefined {
  if (c.skipReason) return c.skipReason;
  if (c.shape.devicesPerNode > pool.devicesPerNode) return `needs ${c.shape.devicesPerNode} devices per node; the pool's nodes have ${pool.devicesPerNode}`;
  if (c.shape.nodes > pool.nodes) return `needs ${c.shape.nodes} nodes; the pool has ${pool.nodes} free`;
  return undefined;
}
