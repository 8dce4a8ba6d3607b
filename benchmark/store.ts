/**
 * Benchmark history in an embedded SQLite database (better-sqlite3), by default
 * `<workspace>/.linkflow/benchmarks.sqlite`.
 *
 * Insert-only: every run and every case result is kept. Writing the same row again with the same content is
 * a no-op (an activity that retries after its write landed must not fail); with different content it is an
 * error, never an overwrite. The only update is `finishRun`, which sets a running run's own status and
 * finish time once.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { FAILURE_CLASSES, type FailureClass } from '../failures/failures.ts';
import { VERDICTS, type CaseResult, type Comparison, type EnvironmentFingerprint } from './core.ts';
import { MIGRATIONS, MIGRATIONS_TABLE, SCHEMA_VERSION } from './schema.ts';
import {
  RUN_STATUSES,
  type CaseRecord,
  type HistoryNight,
  type NewRun,
  type RunRecord,
  type RunStatus,
  type RunSummary,
  type SeriesPoint,
  type VerdictCounts,
} from './records.ts';

export function defaultStorePath(workspace: string): string {
  return path.join(workspace, '.linkflow', 'benchmarks.sqlite');
}

type SqlValue = string | number | null;

interface RunRow {
  id: string;
  suite_name: string;
  cluster_name: string;
  started_at: string;
  finished_at: string | null;
  status: string;
  fingerprint_json: string;
}

interface CaseRow {
  run_id: string;
  case_id: string;
  position: number;
  title: string;
  preset: string | null;
  impl: string;
  train_precision: string;
  seq_length: number;
  nodes: number;
  devices_per_node: number;
  tp: number | null;
  pp: number | null;
  cp: number | null;
  ep: number | null;
  vpp: number | null;
  num_layer_list: string | null;
  micro_batch_size: number | null;
  global_batch_size: number | null;
  baseline: number | null;
  tokens_per_s_per_device: number | null;
  tokens_min: number | null;
  tokens_max: number | null;
  tokens_mad: number | null;
  ms_per_iteration: number | null;
  measured_iterations: number | null;
  tflops_per_device: number | null;
  verdict: string;
  failure_class: string | null;
  reason: string;
  log_excerpt: string | null;
  compared_with: string;
  history_nights: number;
  history_median: number | null;
  history_mad: number | null;
  noise_low: number | null;
  noise_high: number | null;
  change_vs_history_percent: number | null;
  change_vs_baseline_percent: number | null;
  recorded_at: string;
}

/** UTC with milliseconds, so that comparing the text compares the time. */
function isoTime(t: string | Date): string {
  const d = typeof t === 'string' ? new Date(t) : t;
  if (Number.isNaN(d.getTime())) throw new Error(`not a timestamp: ${String(t)}`);
  return d.toISOString();
}

function oneOf<T extends string>(allowed: readonly T[], value: string, what: string): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new Error(`benchmark store: unknown ${what} "${value}"`);
}

function runToRow(run: NewRun): RunRow {
  return {
    id: run.id,
    suite_name: run.suiteName,
    cluster_name: run.cluster,
    started_at: isoTime(run.startedAt),
    finished_at: null,
    status: 'running',
    fingerprint_json: JSON.stringify(run.fingerprint),
  };
}

function rowToRun(r: RunRow): RunRecord {
  return {
    id: r.id,
    suiteName: r.suite_name,
    cluster: r.cluster_name,
    startedAt: r.started_at,
    ...(r.finished_at !== null ? { finishedAt: r.finished_at } : {}),
    status: oneOf(RUN_STATUSES, r.status, 'run status'),
    fingerprint: JSON.parse(r.fingerprint_json) as EnvironmentFingerprint,
  };
}

function caseToRow(runId: string, c: CaseResult, position: number, recordedAt: string): CaseRow {
  const p = c.parallel;
  const t = c.throughput;
  const k = c.comparison;
  return {
    run_id: runId,
    case_id: c.caseId,
    position,
    title: c.title,
    preset: c.preset ?? null,
    impl: c.shape.impl,
    train_precision: c.shape.precision,
    seq_length: c.shape.seqLength,
    nodes: c.shape.nodes,
    devices_per_node: c.shape.devicesPerNode,
    tp: p?.tp ?? null,
    pp: p?.pp ?? null,
    cp: p?.cp ?? null,
    ep: p?.ep ?? null,
    vpp: p?.vpp ?? null,
    num_layer_list: p?.numLayerList ? JSON.stringify(p.numLayerList) : null,
    micro_batch_size: p?.microBatchSize ?? null,
    global_batch_size: p?.globalBatchSize ?? null,
    baseline: c.baseline ?? null,
    tokens_per_s_per_device: t?.tokensPerSecondPerDevice ?? null,
    tokens_min: t?.min ?? null,
    tokens_max: t?.max ?? null,
    tokens_mad: t?.mad ?? null,
    ms_per_iteration: t?.msPerIteration ?? null,
    measured_iterations: t?.iterations ?? null,
    tflops_per_device: t?.tflopsPerDevice ?? null,
    verdict: c.verdict,
    failure_class: c.failureClass ?? null,
    reason: c.reason,
    log_excerpt: c.excerpt ? c.excerpt.join('\n') : null,
    compared_with: k.comparedWith,
    history_nights: k.historyNights,
    history_median: k.historyMedian ?? null,
    history_mad: k.historyMad ?? null,
    noise_low: k.noiseLow ?? null,
    noise_high: k.noiseHigh ?? null,
    change_vs_history_percent: k.changeVsHistoryPercent ?? null,
    change_vs_baseline_percent: k.changeVsBaselinePercent ?? null,
    recorded_at: isoTime(recordedAt),
  };
}

function rowToCase(r: CaseRow): CaseRecord {
  const comparison: Comparison = {
    comparedWith: oneOf(['history', 'baseline', 'nothing'] as const, r.compared_with, 'comparison'),
    historyNights: r.history_nights,
  };
  const numbers = {
    historyMedian: r.history_median,
    historyMad: r.history_mad,
    noiseLow: r.noise_low,
    noiseHigh: r.noise_high,
    changeVsHistoryPercent: r.change_vs_history_percent,
    changeVsBaselinePercent: r.change_vs_baseline_percent,
  };
  for (const [key, value] of Object.entries(numbers)) if (value !== null) comparison[key as keyof typeof numbers] = value;
  const rec: CaseRecord = {
    runId: r.run_id,
    caseId: r.case_id,
    position: r.position,
    title: r.title,
    shape: {
      impl: oneOf(['mcore', 'legacy'] as const, r.impl, 'impl'),
      precision: oneOf(['bf16', 'fp16'] as const, r.train_precision, 'precision'),
      seqLength: r.seq_length,
      nodes: r.nodes,
      devicesPerNode: r.devices_per_node,
    },
    verdict: oneOf(VERDICTS, r.verdict, 'verdict'),
    reason: r.reason,
    comparison,
    recordedAt: r.recorded_at,
  };
  if (r.preset !== null) rec.preset = r.preset;
  if (r.tp !== null && r.pp !== null && r.global_batch_size !== null) {
    rec.parallel = { tp: r.tp, pp: r.pp, cp: r.cp ?? 1, ep: r.ep ?? 1, microBatchSize: r.micro_batch_size ?? 1, globalBatchSize: r.global_batch_size };
    if (r.vpp !== null) rec.parallel.vpp = r.vpp;
    if (r.num_layer_list !== null) rec.parallel.numLayerList = JSON.parse(r.num_layer_list) as number[];
  }
  if (r.baseline !== null) rec.baseline = r.baseline;
  if (r.tokens_per_s_per_device !== null) {
    rec.throughput = {
      tokensPerSecondPerDevice: r.tokens_per_s_per_device,
      min: r.tokens_min ?? r.tokens_per_s_per_device,
      max: r.tokens_max ?? r.tokens_per_s_per_device,
      mad: r.tokens_mad ?? 0,
      msPerIteration: r.ms_per_iteration ?? Number.NaN,
      iterations: r.measured_iterations ?? 0,
    };
    if (r.tflops_per_device !== null) rec.throughput.tflopsPerDevice = r.tflops_per_device;
  }
  if (r.failure_class !== null) rec.failureClass = oneOf<FailureClass>(FAILURE_CLASSES, r.failure_class, 'failure class');
  if (r.log_excerpt !== null) rec.excerpt = r.log_excerpt.split('\n');
  return rec;
}

function sameRow<T extends object>(a: T, b: T, ignore: readonly (keyof T)[] = []): boolean {
  return (Object.keys(a) as (keyof T)[]).every((k) => ignore.includes(k) || a[k] === b[k]);
}

function emptyCounts(): VerdictCounts {
  return Object.fromEntries(VERDICTS.map((v) => [v, 0])) as VerdictCounts;
}

export class BenchmarkStore {
  private readonly db: Database.Database;

  constructor(readonly file: string) {
    if (file !== ':memory:') fs.mkdirSync(path.dirname(file), { recursive: true });
    this.db = new Database(file);
    // Several workers and the CLI may open the same file: wait for a writer instead of failing at once.
    // No WAL: the workspace is often shared storage (NFS), where WAL's shared memory does not work.
    this.db.pragma('busy_timeout = 5000');
    this.db.pragma('foreign_keys = ON');
    this.migrate();
  }

  /** Applies the migrations the file has not seen, each in its own transaction. */
  private migrate(): void {
    this.db.exec(MIGRATIONS_TABLE);
    const current = this.schemaVersion();
    if (current > SCHEMA_VERSION)
      throw new Error(`${this.file}: benchmark database schema version ${current} is newer than this linkflow knows (${SCHEMA_VERSION})`);
    for (const m of MIGRATIONS) {
      if (m.version <= current) continue;
      this.db
        .transaction(() => {
          for (const s of m.statements) this.db.exec(s);
          this.db
            .prepare('INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)')
            .run(m.version, m.description, new Date().toISOString());
        })
        .immediate();
    }
  }

  schemaVersion(): number {
    const row = this.db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number | null };
    return row.v ?? 0;
  }

  /** Records a run as running. The same run again (an activity retry) is a no-op; a different one with its id is an error. */
  startRun(run: NewRun): void {
    const row = runToRow(run);
    this.db
      .transaction(() => {
        const existing = this.db.prepare('SELECT * FROM runs WHERE id = ?').get(run.id) as RunRow | undefined;
        if (existing) {
          if (!sameRow(existing, row, ['status', 'finished_at']))
            throw new Error(`benchmark run ${run.id} is already recorded with other details; runs are never overwritten`);
          return;
        }
        this.insert('runs', row);
      })
      .immediate();
  }

  /**
   * Records one case of a run: `position` is the case's place in the suite (reports list cases in it),
   * `recordedAt` defaults to now. The same content again is a no-op, other content an error.
   */
  recordCase(runId: string, result: CaseResult, options: { position: number; recordedAt?: string }): void {
    const row = caseToRow(runId, result, options.position, options.recordedAt ?? new Date().toISOString());
    this.db
      .transaction(() => {
        const run = this.db.prepare('SELECT status FROM runs WHERE id = ?').get(runId) as { status: string } | undefined;
        if (!run) throw new Error(`benchmark run ${runId} is not recorded: start it first`);
        const existing = this.db.prepare('SELECT * FROM case_results WHERE run_id = ? AND case_id = ?').get(runId, result.caseId) as CaseRow | undefined;
        if (existing) {
          if (!sameRow(existing, row, ['recorded_at']))
            throw new Error(`case ${result.caseId} of run ${runId} is already recorded with another result; results are never overwritten`);
          return;
        }
        if (run.status !== 'running') throw new Error(`benchmark run ${runId} is ${run.status}: no more cases can be added`);
        this.insert('case_results', row);
      })
      .immediate();
  }

  /** Sets the run's status and finish time, once: the only update the store makes. */
  finishRun(runId: string, status: Exclude<RunStatus, 'running'>, finishedAt: string = new Date().toISOString()): void {
    const at = isoTime(finishedAt);
    this.db
      .transaction(() => {
        const run = this.db.prepare('SELECT status, finished_at FROM runs WHERE id = ?').get(runId) as
          { status: string; finished_at: string | null } | undefined;
        if (!run) throw new Error(`benchmark run ${runId} is not recorded`);
        if (run.finished_at !== null) {
          if (run.status === status) return; // a retried finish
          throw new Error(`benchmark run ${runId} already finished as ${run.status}`);
        }
        this.db.prepare('UPDATE runs SET status = ?, finished_at = ? WHERE id = ? AND finished_at IS NULL').run(status, at, runId);
      })
      .immediate();
  }

  getRun(runId: string): RunRecord | undefined {
    const r = this.db.prepare('SELECT * FROM runs WHERE id = ?').get(runId) as RunRow | undefined;
    return r ? rowToRun(r) : undefined;
  }

  /** A run's case results, in the suite's order. */
  runCases(runId: string): CaseRecord[] {
    return (this.db.prepare('SELECT * FROM case_results WHERE run_id = ? ORDER BY position, case_id').all(runId) as CaseRow[]).map(rowToCase);
  }

  /** The most recently started run (of a cluster, of a suite), with its cases. */
  lastRun(filter: { cluster?: string; suiteName?: string } = {}): { run: RunRecord; cases: CaseRecord[] } | undefined {
    const run = this.listRuns({ ...filter, limit: 1 })[0];
    return run ? { run: this.getRun(run.id)!, cases: this.runCases(run.id) } : undefined;
  }

  /** Runs, newest first, with how many cases got each verdict. */
  listRuns(filter: { cluster?: string; suiteName?: string; limit?: number } = {}): RunSummary[] {
    const where: string[] = [];
    const args: SqlValue[] = [];
    if (filter.cluster !== undefined) {
      where.push('cluster_name = ?');
      args.push(filter.cluster);
    }
    if (filter.suiteName !== undefined) {
      where.push('suite_name = ?');
      args.push(filter.suiteName);
    }
    const sql = `SELECT * FROM runs${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY started_at DESC, id DESC LIMIT ?`;
    const runs = (this.db.prepare(sql).all(...args, filter.limit ?? 20) as RunRow[]).map(rowToRun);
    const count = this.db.prepare('SELECT verdict, COUNT(*) AS n FROM case_results WHERE run_id = ? GROUP BY verdict');
    return runs.map((run) => {
      const counts = emptyCounts();
      for (const { verdict, n } of count.all(run.id) as { verdict: string; n: number }[]) counts[oneOf(VERDICTS, verdict, 'verdict')] = n;
      return { ...run, counts };
    });
  }

  /** The started_at bound for "before this run", when one is given. */
  private before(runId: string | undefined): { clause: string; args: SqlValue[] } {
    if (runId === undefined) return { clause: '', args: [] };
    const run = this.getRun(runId);
    if (!run) throw new Error(`benchmark run ${runId} is not recorded`);
    return { clause: ' AND r.id <> ? AND r.started_at <= ?', args: [runId, run.startedAt] };
  }

  /**
   * The measured nights of a case on a cluster before `beforeRunId` (that run excluded; failed and skipped
   * nights have no figure), the newest `nights` of them, oldest first: what a verdict compares with.
   */
  caseHistory(q: { caseId: string; cluster: string; nights: number; beforeRunId?: string }): HistoryNight[] {
    const b = this.before(q.beforeRunId);
    const rows = this.db
      .prepare(
        `SELECT r.id AS run_id, r.started_at AS started_at, c.tokens_per_s_per_device AS t, c.verdict AS verdict
       FROM case_results c JOIN runs r ON r.id = c.run_id
       WHERE c.case_id = ? AND r.cluster_name = ? AND c.tokens_per_s_per_device IS NOT NULL${b.clause}
       ORDER BY r.started_at DESC, r.id DESC LIMIT ?`,
      )
      .all(q.caseId, q.cluster, ...b.args, q.nights) as { run_id: string; started_at: string; t: number; verdict: string }[];
    return rows
      .reverse()
      .map((r) => ({ runId: r.run_id, startedAt: r.started_at, tokensPerSecondPerDevice: r.t, verdict: oneOf(VERDICTS, r.verdict, 'verdict') }));
  }

  /** A case's nights for a chart, failed and skipped ones included, up to and including `upToRunId`, oldest first. */
  caseSeries(q: { caseId: string; cluster: string; nights: number; upToRunId?: string }): SeriesPoint[] {
    let clause = '';
    const args: SqlValue[] = [];
    if (q.upToRunId !== undefined) {
      const run = this.getRun(q.upToRunId);
      if (!run) throw new Error(`benchmark run ${q.upToRunId} is not recorded`);
      clause = ' AND (r.started_at < ? OR r.id = ?)';
      args.push(run.startedAt, run.id);
    }
    const rows = this.db
      .prepare(
        `SELECT r.id AS run_id, r.started_at AS started_at, c.tokens_per_s_per_device AS t, c.verdict AS verdict, c.baseline AS baseline
       FROM case_results c JOIN runs r ON r.id = c.run_id
       WHERE c.case_id = ? AND r.cluster_name = ?${clause}
       ORDER BY r.started_at DESC, r.id DESC LIMIT ?`,
      )
      .all(q.caseId, q.cluster, ...args, q.nights) as { run_id: string; started_at: string; t: number | null; verdict: string; baseline: number | null }[];
    return rows.reverse().map((r) => ({
      runId: r.run_id,
      startedAt: r.started_at,
      verdict: oneOf(VERDICTS, r.verdict, 'verdict'),
      ...(r.t !== null ? { tokensPerSecondPerDevice: r.t } : {}),
      ...(r.baseline !== null ? { baseline: r.baseline } : {}),
    }));
  }

  /** The run started just before this one on the same cluster (for what changed in between). */
  previousRun(runId: string): RunRecord | undefined {
    const run = this.getRun(runId);
    if (!run) return undefined;
    const r = this.db
      .prepare('SELECT * FROM runs WHERE cluster_name = ? AND id <> ? AND started_at <= ? ORDER BY started_at DESC, id DESC LIMIT 1')
      .get(run.cluster, run.id, run.startedAt) as RunRow | undefined;
    return r ? rowToRun(r) : undefined;
  }

  close(): void {
    this.db.close();
  }

  private insert(table: 'runs' | 'case_results', row: RunRow | CaseRow): void {
    const cols = Object.keys(row);
    const values = Object.values(row) as SqlValue[];
    this.db.prepare(`INSERT INTO ${table} (${cols.join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`).run(...values);
  }
}

export function openBenchmarkStore(file: string): BenchmarkStore {
  return new BenchmarkStore(file);
}
