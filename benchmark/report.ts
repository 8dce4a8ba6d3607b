/**
 * Reports of a benchmark run: the terminal table (`linkflow bench report`), the HTML page (report-html.ts)
 * and the JSON summary a webhook receives. All are functions of a RunReport, plain data that
 * `loadRunReport` reads from the store.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ExitError } from '../errors.ts';
import { fingerprintChanges, suiteCluster, type BenchmarkSuite, type Comparison, type EnvironmentFingerprint, type FingerprintChange } from './core.ts';
import { defaultStorePath, openBenchmarkStore, type BenchmarkStore } from './store.ts';
import type { CaseRecord, RunReport, VerdictCounts } from './records.ts';
import { caseLine, countVerdicts, formatCounts, formatPercent, formatThroughput } from './report-format.ts';

import { htmlReport } from './report-html.ts';

export { htmlReport, caseChart } from './report-html.ts';

/** The report of one run (default: the newest of the cluster), with up to `nights` nights per case chart. */
export function loadRunReport(store: BenchmarkStore, options: { runId?: string; cluster?: string; nights?: number } = {}): RunReport | undefined {
  const run = options.runId !== undefined ? store.getRun(options.runId) : store.lastRun(options.cluster !== undefined ? { cluster: options.cluster } : {})?.run;
  if (!run) return undefined;
  const cases = store.runCases(run.id);
  const nights = options.nights ?? 30;
  const series = Object.fromEntries(cases.map((c) => [c.caseId, store.caseSeries({ caseId: c.caseId, cluster: run.cluster, nights, upToRunId: run.id })]));
  const previous = store.previousRun(run.id);
  return { run, cases, series, ...(previous ? { previous: { runId: previous.id, fingerprint: previous.fingerprint } } : {}) };
}

/** Plain text, columns padded to the widest cell; numbers right-aligned. Reasons follow the table. */
export function terminalReport(report: RunReport): string {
  const { run, cases } = report;
  const header = ['case', 'baseline', 'last', 'history median', 'change', 'verdict'];
  const rows = cases.map((c) => {
    const l = caseLine(c);
    return [l.caseId, l.baseline, l.last, l.historyMedian, l.change, l.verdict];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const right = [false, true, true, true, true, false];
  const line = (cells: string[]) =>
    cells.map((cell, i) => (right[i] ? cell.padStart(widths[i]) : i === cells.length - 1 ? cell : cell.padEnd(widths[i]))).join('  ');
  const out = [
    `Benchmark ${run.suiteName} on ${run.cluster}: run ${run.id}, started ${run.startedAt}${run.finishedAt ? `, finished ${run.finishedAt}` : ''} (${run.status})`,
    formatCounts(countVerdicts(cases)),
    '',
    line(header),
    ...rows.map(line),
  ];
  const notes = cases.filter((c) => c.verdict !== 'ok');
  if (notes.length > 0) {
    out.push('');
    for (const c of notes) out.push(`${c.caseId}: ${c.verdict}${c.failureClass ? ` (${c.failureClass})` : ''}: ${c.reason}`);
  }
  if (report.previous) {
    const changes = fingerprintChanges(report.previous.fingerprint, run.fingerprint);
    out.push(
      '',
      changes.length > 0
        ? `Changed since run ${report.previous.runId}: ${changes.map((ch) => (ch.field === 'suite' ? 'the suite' : `${ch.field} ${ch.before ?? '—'} → ${ch.after ?? '—'}`)).join('; ')}`
        : `Nothing in the environment changed since run ${report.previous.runId}.`,
    );
  }
  return out.join('\n') + '\n';
}

export interface CaseFigures {
  caseId: string;
  title: string;
  preset?: string;
  baseline?: number;
  last?: number;
  historyMedian?: number;
  historyMad?: number;
  historyNights: number;
  changeVsHistoryPercent?: number;
  changeVsBaselinePercent?: number;
  comparedWith: Comparison['comparedWith'];
  reason: string;
}

export interface FailedCase {
  caseId: string;
  title: string;
  preset?: string;
  failureClass?: string;
  reason: string;
  /** The last lines of the log excerpt. */
  logExcerpt: string[];
}

/** What the suite's webhook receives (POST, application/json) when a run has regressions or failures. */
export interface WebhookSummary {
  kind: 'linkflow.benchmark';
  /** One line for chat tools that show a `text` field. */
  text: string;
  runId: string;
  suite: string;
  cluster: string;
  status: string;
  startedAt: string;
  finishedAt?: string;
  counts: VerdictCounts;
  regressions: CaseFigures[];
  improvements: CaseFigures[];
  failed: FailedCase[];
  fingerprint: EnvironmentFingerprint;
  /** What changed since the previous run on the cluster (empty when nothing or no previous run). */
  changes: FingerprintChange[];
}

const EXCERPT_LINES = 20;

function figures(c: CaseRecord): CaseFigures {
  const k = c.comparison;
  const f: CaseFigures = { caseId: c.caseId, title: c.title, historyNights: k.historyNights, comparedWith: k.comparedWith, reason: c.reason };
  if (c.preset !== undefined) f.preset = c.preset;
  if (c.baseline !== undefined) f.baseline = c.baseline;
  if (c.throughput) f.last = c.throughput.tokensPerSecondPerDevice;
  if (k.historyMedian !== undefined) f.historyMedian = k.historyMedian;
  if (k.historyMad !== undefined) f.historyMad = k.historyMad;
  if (k.changeVsHistoryPercent !== undefined) f.changeVsHistoryPercent = k.changeVsHistoryPercent;
  if (k.changeVsBaselinePercent !== undefined) f.changeVsBaselinePercent = k.changeVsBaselinePercent;
  return f;
}

function change(f: CaseFigures): string {
  return f.comparedWith === 'history' ? formatPercent(f.changeVsHistoryPercent) : formatPercent(f.changeVsBaselinePercent);
}

export function webhookSummary(report: RunReport): WebhookSummary {
  const { run, cases } = report;
  const counts = countVerdicts(cases);
  const regressions = cases.filter((c) => c.verdict === 'regression').map(figures);
  const improvements = cases.filter((c) => c.verdict === 'improvement').map(figures);
  const failed: FailedCase[] = cases
    .filter((c) => c.verdict === 'failed')
    .map((c) => ({
      caseId: c.caseId,
      title: c.title,
      ...(c.preset !== undefined ? { preset: c.preset } : {}),
      ...(c.failureClass !== undefined ? { failureClass: c.failureClass } : {}),
      reason: c.reason,
      logExcerpt: (c.excerpt ?? []).slice(-EXCERPT_LINES),
    }));
  const changes = report.previous ? fingerprintChanges(report.previous.fingerprint, run.fingerprint) : [];
  const what = [
    regressions.length > 0
      ? `${regressions.length} regression${regressions.length > 1 ? 's' : ''} (${regressions.map((r) => `${r.caseId} ${change(r)} at ${formatThroughput(r.last)}`).join(', ')})`
      : '',
    failed.length > 0 ? `${failed.length} failed (${failed.map((f) => `${f.caseId}${f.failureClass ? `: ${f.failureClass}` : ''}`).join(', ')})` : '',
  ].filter(Boolean);
  const text =
    `linkflow benchmark ${run.suiteName} on ${run.cluster}, run ${run.id}: ${what.length > 0 ? what.join('; ') : formatCounts(counts)}` +
    (changes.length > 0 ? `; changed: ${changes.map((c) => c.field).join(', ')}` : '');
  return {
    kind: 'linkflow.benchmark',
    text,
    runId: run.id,
    suite: run.suiteName,
    cluster: run.cluster,
    status: run.status,
    startedAt: run.startedAt,
    ...(run.finishedAt !== undefined ? { finishedAt: run.finishedAt } : {}),
    counts,
    regressions,
    improvements,
    failed,
    fingerprint: run.fingerprint,
    changes,
  };
}

/** The issue's rule: the webhook hears about a run only when something regressed or failed. */
export function needsNotification(summary: WebhookSummary): boolean {
  return summary.counts.regression > 0 || summary.counts.failed > 0;
}

function storeOf(suite: BenchmarkSuite, db?: string) {
  const file = db ?? defaultStorePath(suite.workspace);
  if (!fs.existsSync(file)) throw new ExitError(`no benchmark results yet at ${file}; run \`linkflow bench run\` first`, 1);
  return openBenchmarkStore(file);
}

/** The terminal report of a run (default: the newest of the suite's cluster), `--html` and `--json` as asked. */
export function report(suite: BenchmarkSuite, options: { db?: string; runId?: string; html?: string; json?: boolean }): string {
  const store = storeOf(suite, options.db);
  try {
    const r = loadRunReport(store, { cluster: suiteCluster(suite), ...(options.runId ? { runId: options.runId } : {}) });
    if (!r) throw new ExitError(`no benchmark run${options.runId ? ` ${options.runId}` : ''} recorded for cluster ${suiteCluster(suite)}`, 1);
    if (options.html) {
      fs.mkdirSync(path.dirname(path.resolve(options.html)), { recursive: true });
      fs.writeFileSync(options.html, htmlReport(r));
      console.error(`wrote ${options.html}`);
    }
    return options.json ? JSON.stringify(webhookSummary(r), null, 2) : terminalReport(r);
  } finally {
    store.close();
  }
}
