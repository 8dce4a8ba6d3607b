/** The benchmark store: SQLite file in the workspace, migrations, insert-only history and its queries. */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { judgeCase } from '../benchmark/core.ts';
import { BenchmarkStore, defaultStorePath, openBenchmarkStore } from '../benchmark/store.ts';
import { SCHEMA_VERSION } from '../benchmark/schema.ts';
import { tempDir } from '../testkit/specs.ts';
import { fingerprint, simulateNight, tableCase, throughputOf } from '../testkit/benchmarks.ts';

const A = 'llama2-7b-seq4k-mcore-1x8-bf16';
const B = 'qwen15-7b-seq8k-legacy-1x8-bf16';
const open: BenchmarkStore[] = [];

function newStore(): { store: BenchmarkStore; file: string } {
  const file = defaultStorePath(tempDir('bench-store'));
  const store = openBenchmarkStore(file);
  open.push(store);
  return { store, file };
}

afterEach(() => {
  while (open.length > 0) open.pop()!.close();
});

function night(n: number): string {
  return `2024-10-0${n}T18:00:00.000Z`;
}

describe('benchmark store', () => {
  it('lives in <workspace>/.linkflow/benchmarks.sqlite and migrates once', () => {
    const { store, file } = newStore();
    expect(file).toMatch(/\.linkflow\/benchmarks\.sqlite$/);
    expect(fs.existsSync(file)).toBe(true);
    expect(store.schemaVersion()).toBe(SCHEMA_VERSION);
    store.close();
    open.pop();
    const again = openBenchmarkStore(file);
    open.push(again);
    expect(again.schemaVersion()).toBe(SCHEMA_VERSION);
    const db = new Database(file, { readonly: true });
    try {
      expect(db.prepare('SELECT COUNT(*) AS n FROM schema_migrations').get()).toEqual({ n: SCHEMA_VERSION });
      const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((t) => t.name);
      expect(tables).toEqual(['case_results', 'runs', 'schema_migrations']);
    } finally {
      db.close();
    }
  });

  it('refuses a database from a newer linkflow', () => {
    const { store, file } = newStore();
    store.close();
    open.pop();
    const db = new Database(file);
    db.prepare('INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)').run(SCHEMA_VERSION + 1, 'future', new Date().toISOString());
    db.close();
    expect(() => openBenchmarkStore(file)).toThrow(/schema version 2 is newer than this linkflow knows \(1\)/);
  });

  it('history: the last N measured nights of a case on the same cluster, before the run, oldest first', () => {
    const { store } = newStore();
    simulateNight(store, { runId: 'n1', startedAt: night(1), cases: { [A]: 4600, [B]: 2800 } });
    simulateNight(store, { runId: 'n2', startedAt: night(2), cases: { [A]: 4700, [B]: 2850 } });
    simulateNight(store, { runId: 'other-pool', startedAt: night(2), cluster: 'pool-b', cases: { [A]: 100 } });
    simulateNight(store, {
      runId: 'n3',
      startedAt: night(3),
      cases: { [A]: { kind: 'failed', failureClass: 'communication', reason: 'HCCL timeout', excerpt: ['EI0002'] }, [B]: 2900 },
    });
    simulateNight(store, { runId: 'n4', startedAt: night(4), cases: { [A]: 4650, [B]: 2870 } });
    simulateNight(store, { runId: 'n5', startedAt: night(5), cases: { [A]: 4680 } });

    const history = store.caseHistory({ caseId: A, cluster: 'pool-a', nights: 7, beforeRunId: 'n5' });
    // n3 failed (no figure) and pool-b is another cluster: neither is history.
    expect(history.map((h) => [h.runId, h.tokensPerSecondPerDevice])).toEqual([
      ['n1', 4600],
      ['n2', 4700],
      ['n4', 4650],
    ]);
    expect(store.caseHistory({ caseId: A, cluster: 'pool-a', nights: 2, beforeRunId: 'n5' }).map((h) => h.runId)).toEqual(['n2', 'n4']);
    expect(store.caseHistory({ caseId: A, cluster: 'pool-a', nights: 7, beforeRunId: 'n2' }).map((h) => h.runId)).toEqual(['n1']);
    expect(store.caseHistory({ caseId: A, cluster: 'pool-a', nights: 7 }).map((h) => h.runId)).toEqual(['n1', 'n2', 'n4', 'n5']);
    expect(store.caseHistory({ caseId: A, cluster: 'pool-b', nights: 7 }).map((h) => h.runId)).toEqual(['other-pool']);

    // The chart's series keeps the failed night.
    const series = store.caseSeries({ caseId: A, cluster: 'pool-a', nights: 30, upToRunId: 'n4' });
    expect(series.map((p) => [p.runId, p.verdict, p.tokensPerSecondPerDevice])).toEqual([
      ['n1', 'ok', 4600],
      ['n2', 'ok', 4700],
      ['n3', 'failed', undefined],
      ['n4', 'ok', 4650],
    ]);
    expect(series[0].baseline).toBe(4672);
  });

  it('the fourth night 15 % slower is stored as a regression with the numbers it was judged by', () => {
    const { store } = newStore();
    for (const n of [1, 2, 3]) simulateNight(store, { runId: `n${n}`, startedAt: night(n), cases: { [A]: 4672 + (n - 2) * 10, [B]: 2862 } });
    simulateNight(store, { runId: 'n4', startedAt: night(4), cases: { [A]: 4672 * 0.85, [B]: 2860 } });
    const last = store.lastRun({ cluster: 'pool-a' });
    expect(last?.run).toMatchObject({ id: 'n4', status: 'completed', finishedAt: '2024-10-04T19:00:00.000Z' });
    expect(last?.cases.map((c) => [c.caseId, c.verdict])).toEqual([
      [A, 'regression'],
      [B, 'ok'],
    ]);
    const a = last!.cases[0];
    expect(a.comparison).toMatchObject({ comparedWith: 'history', historyNights: 3, historyMedian: 4672, historyMad: 10 });
    expect(a.comparison.changeVsHistoryPercent).toBeCloseTo(-15, 9);
    expect(a.throughput?.tokensPerSecondPerDevice).toBeCloseTo(3971.2, 9);
    expect(a).toMatchObject({
      preset: 'llama2-7b',
      baseline: 4672,
      shape: { nodes: 1, devicesPerNode: 8, seqLength: 4096 },
      parallel: { tp: 1, pp: 2, globalBatchSize: 256 },
    });
  });

  it('keeps every row: a second run with the same case adds rows, nothing is overwritten', () => {
    const { store, file } = newStore();
    simulateNight(store, { runId: 'n1', startedAt: night(1), cases: { [A]: 4600 } });
    simulateNight(store, { runId: 'n2', startedAt: night(2), cases: { [A]: 4700 } });
    const count = () => {
      const db = new Database(file, { readonly: true });
      try {
        return db.prepare('SELECT run_id, tokens_per_s_per_device AS t FROM case_results WHERE case_id = ? ORDER BY run_id').all(A);
      } finally {
        db.close();
      }
    };
    expect(count()).toEqual([
      { run_id: 'n1', t: 4600 },
      { run_id: 'n2', t: 4700 },
    ]);

    const c = tableCase(A);
    const thresholds = { regressionPercent: 5, improvementPercent: 5, historyNights: 7, minHistoryNights: 3, noiseBandMads: 3 };
    store.startRun({ id: 'n3', suiteName: 's', cluster: 'pool-a', startedAt: night(3), fingerprint: fingerprint() });
    const first = judgeCase(c, { kind: 'measured', throughput: throughputOf(4650) }, [], thresholds);
    store.recordCase('n3', first, { position: 0, recordedAt: night(3) });
    // An activity that retries after its write landed: the same content is a no-op.
    store.recordCase('n3', first, { position: 0, recordedAt: '2024-10-03T18:05:00.000Z' });
    store.startRun({ id: 'n3', suiteName: 's', cluster: 'pool-a', startedAt: night(3), fingerprint: fingerprint() });
    // Another result for the same case of the same run is refused, and the first one stays.
    const other = judgeCase(c, { kind: 'measured', throughput: throughputOf(1) }, [], thresholds);
    expect(() => store.recordCase('n3', other, { position: 0 })).toThrow(/already recorded with another result/);
    expect(() => store.startRun({ id: 'n3', suiteName: 'other', cluster: 'pool-a', startedAt: night(3), fingerprint: fingerprint() })).toThrow(
      /never overwritten/,
    );
    expect(store.runCases('n3').map((r) => r.throughput?.tokensPerSecondPerDevice)).toEqual([4650]);

    // A run finishes once; after that no case can be added.
    store.finishRun('n3', 'completed', night(4));
    store.finishRun('n3', 'completed', night(5));
    expect(store.getRun('n3')).toMatchObject({ status: 'completed', finishedAt: night(4) });
    expect(() => store.finishRun('n3', 'failed')).toThrow(/already finished as completed/);
    expect(() => store.recordCase('n3', judgeCase(tableCase(B), { kind: 'skipped', reason: 'x' }, [], thresholds), { position: 1 })).toThrow(
      /is completed: no more cases/,
    );
    expect(() => store.recordCase('nope', first, { position: 0 })).toThrow(/not recorded: start it first/);
    expect(count()).toHaveLength(3);
  });

  it('gives back everything it was given', () => {
    const { store } = newStore();
    store.startRun({ id: 'r', suiteName: 's', cluster: 'c', startedAt: '2024-10-01T02:00:00+08:00', fingerprint: fingerprint({ extra: { host: 'node-1' } }) });
    const failed = judgeCase(
      tableCase('llama2-70b-seq4k-legacy-4x8-bf16'),
      { kind: 'failed', failureClass: 'out-of-memory', reason: 'NPU out of memory', excerpt: ['line 1', 'RuntimeError: NPU out of memory'] },
      [420, 421, 419],
      { regressionPercent: 5, improvementPercent: 5, historyNights: 7, minHistoryNights: 3, noiseBandMads: 3 },
    );
    store.recordCase('r', failed, { position: 0, recordedAt: '2024-10-01T02:30:00Z' });
    const run = store.getRun('r')!;
    // Stored as UTC so that text order is time order.
    expect(run.startedAt).toBe('2024-09-30T18:00:00.000Z');
    expect(run.status).toBe('running');
    expect(run.fingerprint).toEqual(fingerprint({ extra: { host: 'node-1' } }));
    const [back] = store.runCases('r');
    expect(back).toEqual({ ...failed, runId: 'r', position: 0, recordedAt: '2024-10-01T02:30:00.000Z' });
    expect(back.parallel).toMatchObject({ vpp: 5 });
  });

  it('lists runs newest first with their verdict counts', () => {
    const { store } = newStore();
    simulateNight(store, { runId: 'n1', startedAt: night(1), cases: { [A]: 4672, [B]: { kind: 'skipped', reason: 'needs 1 node' } } });
    simulateNight(store, { runId: 'n2', startedAt: night(2), cluster: 'pool-b', cases: { [A]: 4672 } });
    simulateNight(store, { runId: 'n3', startedAt: night(3), cases: { [A]: 4672 * 0.5 } });
    expect(store.listRuns().map((r) => r.id)).toEqual(['n3', 'n2', 'n1']);
    const pool = store.listRuns({ cluster: 'pool-a' });
    expect(pool.map((r) => [r.id, r.counts.ok, r.counts.regression, r.counts.skipped])).toEqual([
      ['n3', 0, 1, 0],
      ['n1', 1, 0, 1],
    ]);
    expect(store.listRuns({ limit: 1 })).toHaveLength(1);
    expect(store.previousRun('n3')?.id).toBe('n1');
    expect(store.lastRun({ cluster: 'nowhere' })).toBeUndefined();
  });

  it('the schema is plain SQL a server database also accepts', () => {
    const sql = fs.readFileSync(path.join(import.meta.dirname, '..', 'benchmark', 'schema.ts'), 'utf8');
    expect(sql).not.toMatch(/AUTOINCREMENT|WITHOUT ROWID|STRICT|\bBLOB\b|\bREAL\b|datetime\(|json_/i);
  });
});
