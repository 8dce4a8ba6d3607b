/** Simulated benchmark nights for the store and report tests: what the benchmark workflow does per run, minus Temporal. */
import {
  defaultSuite,
  judgeCase,
  tableCases,
  type BenchmarkCase,
  type BenchmarkSuite,
  type CaseOutcome,
  type EnvironmentFingerprint,
  type Throughput,
} from '../benchmark/core.ts';
import type { BenchmarkStore } from '../benchmark/store.ts';

export function throughputOf(tokensPerSecondPerDevice: number): Throughput {
  return {
    tokensPerSecondPerDevice,
    min: tokensPerSecondPerDevice * 0.99,
    max: tokensPerSecondPerDevice * 1.01,
    mad: tokensPerSecondPerDevice * 0.002,
    msPerIteration: 1000,
    iterations: 20,
    tflopsPerDevice: 150,
  };
}

export function fingerprint(overrides: Partial<EnvironmentFingerprint> = {}, suite: BenchmarkSuite = defaultSuite()): EnvironmentFingerprint {
  return { linkflowVersion: '0.1.0', modellinkCommit: 'd4feda79', cannVersion: '8.0.RC2', driverVersion: '24.1.rc2', suite, ...overrides };
}

export function tableCase(id: string): BenchmarkCase {
  const c = tableCases().find((t) => t.id === id);
  if (!c) throw new Error(`no table case ${id}`);
  return c;
}

/** A night's outcome per case: a figure, or a failure/skip. */
export type NightPlan = Record<string, number | Exclude<CaseOutcome, { kind: 'measured' }>>;

/** Starts a run, judges each case against the store's history (as the workflow will), records it, finishes the run. */
export function simulateNight(
  store: BenchmarkStore,
  opts: { runId: string; startedAt: string; cluster?: string; suite?: BenchmarkSuite; fingerprint?: EnvironmentFingerprint; cases: NightPlan },
): void {
  const suite = opts.suite ?? defaultSuite();
  const cluster = opts.cluster ?? 'pool-a';
  store.startRun({ id: opts.runId, suiteName: suite.name, cluster, startedAt: opts.startedAt, fingerprint: opts.fingerprint ?? fingerprint({}, suite) });
  Object.entries(opts.cases).forEach(([caseId, plan], position) => {
    const c = tableCase(caseId);
    const history = store
      .caseHistory({ caseId, cluster, nights: suite.thresholds.historyNights, beforeRunId: opts.runId })
      .map((h) => h.tokensPerSecondPerDevice);
    const outcome: CaseOutcome = typeof plan === 'number' ? { kind: 'measured', throughput: throughputOf(plan) } : plan;
    store.recordCase(opts.runId, judgeCase(c, outcome, history, suite.thresholds), { position });
  });
  store.finishRun(opts.runId, 'completed', new Date(Date.parse(opts.startedAt) + 3_600_000).toISOString());
}
