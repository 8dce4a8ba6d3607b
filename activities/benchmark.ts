/**
 * The benchmark workflow's activities: record a run with what it ran on, turn a case into a
 * pipeline (or a reason to skip it), measure a finished case from its log and judge it against its
 * history, and finish the run (with a webhook when something regressed or failed).
 */
import fs from 'node:fs';
import path from 'node:path';
import { durationToMs } from '../common/duration.ts';
import {
  capacitySkipReason,
  judgeCase,
  measureThroughput,
  planSuite,
  suiteCluster,
  type BenchmarkCase,
  type BenchmarkSuite,
  type CaseOutcome,
  type CaseResult,
  type EnvironmentFingerprint,
} from '../benchmark/core.ts';
import { planBenchmarkCase } from '../benchmark/plan.ts';
import type { PipelinePlan } from '../plan/plan.ts';
import type { CaseRunOutcome } from '../contracts/workflows.ts';
import type { RetrySettingsInput } from '../contracts/run-state.ts';
import { defaultStorePath, openBenchmarkStore, type BenchmarkStore } from '../benchmark/store.ts';
import { loadRunReport, needsNotification, webhookSummary, type WebhookSummary } from '../benchmark/report.ts';
import type { RunStatus } from '../benchmark/records.ts';
import { PROJECT_ROOT } from '../common/project-root.ts';
import { gitCommit } from '../node/git.ts';
import { loadConfig, retrySettings } from '../temporal.config.ts';

export interface BenchmarkRunInput {
  suite: BenchmarkSuite;
  /** Unique per run: the benchmark workflow's id. */
  runId: string;
}

function withStore<T>(suite: BenchmarkSuite, fn: (store: BenchmarkStore) => T): T {
  const store = openBenchmarkStore(defaultStorePath(suite.workspace));
  try {
    return fn(store);
  } finally {
    store.close();
  }
}

function firstLine(file: string, pattern?: RegExp): string | undefined {
  try {
    const lines = fs
      .readFileSync(file, 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
    return pattern ? lines.map((l) => pattern.exec(l)?.[1]).find((x) => x !== undefined) : lines[0];
  } catch {
    return undefined;
  }
}

/** What the run ran on: ModelLink's commit, CANN and driver versions where the node says, linkflow's version, the suite. */
function environmentFingerprint(suite: BenchmarkSuite): EnvironmentFingerprint {
  const toolkit = process.env.ASCEND_TOOLKIT_HOME ?? '/usr/local/Ascend/ascend-toolkit/latest';
  const pkg = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string };
  const root = suite.modellink?.root;
  const cann =
    process.env.LINKFLOW_CANN_VERSION ??
    firstLine(path.join(toolkit, 'version.cfg'), /version=\[?([^\]\s]+)/i) ??
    firstLine(path.join(toolkit, 'compiler', 'version.info'), /^Version=(.+)$/);
  const driver = process.env.LINKFLOW_DRIVER_VERSION ?? firstLine('/usr/local/Ascend/driver/version.info', /^Version=(.+)$/);
  const linkflowCommit = gitCommit(PROJECT_ROOT);
  const fingerprint: EnvironmentFingerprint = { linkflowVersion: `${pkg.version}${linkflowCommit ? `+${linkflowCommit.slice(0, 12)}` : ''}`, suite };
  const commit = root ? gitCommit(root) : undefined;
  if (commit) fingerprint.modellinkCommit = commit;
  if (cann) fingerprint.cannVersion = cann;
  if (driver) fingerprint.driverVersion = driver;
  return fingerprint;
}

/** Starts the run's record (idempotent: a retried activity writes the same row) and lists its cases. */
export async function beginBenchmarkRun({ suite, runId }: BenchmarkRunInput): Promise<{ cases: BenchmarkCase[] }> {
  withStore(suite, (store) => {
    if (!store.getRun(runId)) {
      store.startRun({
        id: runId,
        suiteName: suite.name,
        cluster: suiteCluster(suite),
        startedAt: new Date().toISOString(),
        fingerprint: environmentFingerprint(suite),
      });
    }
  });
  return { cases: planSuite(suite) };
}

export type PreparedCase = { plan: PipelinePlan; retry: RetrySettingsInput; timeoutMs: number } | { skip: string };

/**
 * The case's pipeline, or why it cannot run here now (not enough free nodes in the pool, preset
 * missing): skipped, not failed. `freeNodes` are the nodes the pool's allocator could grant now.
 */
export async function prepareBenchmarkCase({
  suite,
  runId,
  benchmarkCase,
  taskQueue,
  freeNodes,
}: BenchmarkRunInput & { benchmarkCase: BenchmarkCase; taskQueue: string; freeNodes: number }): Promise<PreparedCase> {
  const capacity = capacitySkipReason(benchmarkCase, { nodes: freeNodes, devicesPerNode: suite.devicesPerNode });
  if (capacity) return { skip: capacity };
  const runDir = path.join(suite.workspace, 'runs', runId.replace(/[^A-Za-z0-9_.-]/g, '_'));
  const planned = planBenchmarkCase(suite, benchmarkCase, { runDir, taskQueue });
  if (!planned.ok) return { skip: planned.reason };
  // A benchmark is not a training run: one attempt for errors of the job, one more for a fault of the machines.
  const retry = { ...retrySettings(loadConfig()), maximumAttempts: 1, infrastructureAttempts: 2 };
  return { plan: planned.plan, retry, timeoutMs: durationToMs(suite.caseTimeout) };
}

/** Measures (from the log), judges against the case's history on this cluster, and stores the result. */
export async function recordBenchmarkCase({
  suite,
  runId,
  benchmarkCase,
  position,
  outcome,
}: BenchmarkRunInput & { benchmarkCase: BenchmarkCase; position: number; outcome: CaseRunOutcome }): Promise<CaseResult> {
  let judged: CaseOutcome;
  if (outcome.kind === 'ran') {
    const training = outcome.plan.stages[0].training!;
    const measured = measureThroughput(outcome.samples, training, { warmup: suite.iterations.warmup });
    judged = measured.ok
      ? { kind: 'measured', throughput: measured.throughput }
      : { kind: 'failed', failureClass: 'no-result', reason: `${measured.reason}${outcome.logFile ? ` (log: ${outcome.logFile})` : ''}`, excerpt: [] };
  } else {
    judged = outcome;
  }
  return withStore(suite, (store) => {
    const history = store
      .caseHistory({ caseId: benchmarkCase.id, cluster: suiteCluster(suite), nights: suite.thresholds.historyNights, beforeRunId: runId })
      .map((n) => n.tokensPerSecondPerDevice);
    const result = judgeCase(benchmarkCase, judged, history, suite.thresholds);
    const existing = store.runCases(runId).find((c) => c.caseId === benchmarkCase.id);
    // A retried activity finds its row already written: the first judgement stands.
    if (existing) return existing;
    store.recordCase(runId, result, { position });
    return result;
  });
}

/** Ends the run's record; the summary says whether anyone should hear of it. */
export async function finishBenchmarkRun({
  suite,
  runId,
  status,
}: BenchmarkRunInput & { status: Exclude<RunStatus, 'running'> }): Promise<{ summary: WebhookSummary; notify: boolean }> {
  const summary = withStore(suite, (store) => {
    if (store.getRun(runId)?.status === 'running') store.finishRun(runId, status);
    return webhookSummary(loadRunReport(store, { runId })!);
  });
  return { summary, notify: suite.webhook !== undefined && needsNotification(summary) };
}

/** Posts the summary to the suite's webhook. Retried POSTs carry the run id as an idempotency key, so a receiver can drop duplicates. */
export async function notifyBenchmarkWebhook({ suite, runId, summary }: BenchmarkRunInput & { summary: WebhookSummary }): Promise<string> {
  if (!suite.webhook) throw new Error('the suite has no webhook');
  const response = await fetch(suite.webhook, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': runId },
    body: JSON.stringify(summary),
    signal: AbortSignal.timeout(30_000),
  });
  if (!response.ok) throw new Error(`webhook ${suite.webhook} answered ${response.status} ${response.statusText}`);
  return suite.webhook;
}
