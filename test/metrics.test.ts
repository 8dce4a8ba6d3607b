/**
 * Metrics: a `linkflow worker --metrics` process serves linkflow's metrics and the Temporal SDK's at one
 * endpoint; a real Prometheus server scrapes it every second during a pipeline with a crash and reads
 * them back through its query API; every metric the Grafana dashboard queries is one the worker exports.
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Counter, Gauge, Histogram, Registry } from '../common/prometheus.ts';
import { metrics } from '../activities/metrics.ts';
import { outcomeOf, startPipeline } from '../client/pipeline.ts';
import { getFreePort } from '../node/free-port.ts';
import { fiveStageSpec, ROOT, tempDir, writeSpec } from '../testkit/specs.ts';
import { planFile, startTestTemporal, type TestTemporal } from '../testkit/temporal.ts';
import { prometheusInstalled, startPrometheus, type TestPrometheus } from '../testkit/prometheus.ts';
import { until } from '../testkit/wait.ts';
import { runCli } from '../testkit/cli.ts';
import { spawnGroup } from '../testkit/processes.ts';

const DASHBOARD = path.join(ROOT, 'grafana', 'linkflow.json');

/** The metric names a PromQL expression reads (functions, keywords, labels and durations left out). */
export function metricsOf(expr: string): string[] {
  const withoutLabels = expr.replace(/\{[^}]*\}/g, '').replace(/\[[^\]]*\]/g, '');
  const withoutGrouping = withoutLabels.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '');
  const names = withoutGrouping.match(/\b[a-zA-Z_:][a-zA-Z0-9_:]*\b(?!\s*\()/g) ?? [];
  const keywords = new Set(['by', 'without', 'on', 'ignoring', 'and', 'or', 'unless', 'bool', 'offset']);
  return [...new Set(names.filter((n) => !keywords.has(n) && !/^\d/.test(n)))];
}

function dashboardExprs(): string[] {
  const dashboard = JSON.parse(fs.readFileSync(DASHBOARD, 'utf8')) as { panels: { targets: { expr: string }[] }[] };
  return dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr));
}

/** The metric names a scrape exposes (a histogram's _bucket, _sum and _count series count as its name too). */
function exportedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const m = /^# TYPE (\S+) (\S+)/.exec(line);
    if (!m) continue;
    names.add(m[1]);
    if (m[2] === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(m[1] + suffix);
  }
  return names;
}

describe('the Prometheus registry', () => {
  it('renders counters, gauges and histograms in the text format, and refuses unknown labels', () => {
    const r = new Registry();
    const c = r.register(new Counter('x_total', 'help', ['a']));
    const g = r.register(new Gauge('y', 'help', ['a']));
    const h = r.register(new Histogram('z_seconds', 'help', ['a'], [1, 5]));
    c.inc({ a: 'q"1' }, 2);
    g.set({ a: 'p' }, 1.5);
    h.observe({ a: 'p' }, 3);
    const text = r.render();
    expect(text).toContain('# TYPE x_total counter\nx_total{a="q\\"1"} 2');
    expect(text).toContain('y{a="p"} 1.5');
    expect(text).toContain(
      'z_seconds_bucket{a="p",le="1"} 0\nz_seconds_bucket{a="p",le="5"} 1\nz_seconds_bucket{a="p",le="+Inf"} 1\nz_seconds_sum{a="p"} 3\nz_seconds_count{a="p"} 1',
    );
    g.remove({ a: 'p' });
    expect(r.render()).not.toContain('y{a="p"}');
    expect(() => c.inc({ b: 'x' })).toThrow(/labels/);
  });

  it('no linkflow metric takes a label of unbounded values', () => {
    const allowed = new Set(['pipeline', 'stage', 'node', 'pool', 'outcome', 'failure_class', 'state']);
    for (const m of metrics.names()) for (const l of m.labelNames) expect(allowed.has(l), `${m.name} label ${l}`).toBe(true);
  });

  it('the dashboard parser finds the metrics of an expression', () => {
    expect(metricsOf('histogram_quantile(0.9, sum by (le, stage) (rate(linkflow_checkpoint_save_seconds_bucket{stage=~"$stage"}[15m])))')).toEqual([
      'linkflow_checkpoint_save_seconds_bucket',
    ]);
    expect(metricsOf('a_total{x="1"} - b / on(stage) c')).toEqual(['a_total', 'b', 'c']);
  });

  it('every linkflow metric the dashboard queries is one linkflow defines', () => {
    const defined = exportedNames(metrics.render());
    const used = dashboardExprs()
      .flatMap(metricsOf)
      .filter((n) => n.startsWith('linkflow_'));
    expect(used.length).toBeGreaterThan(10);
    for (const name of used) expect(defined.has(name), name).toBe(true);
  });
});

// Outside CI a machine without Debian's prometheus skips this; in CI (.ci/run installs it) a missing one fails it.
describe.skipIf(!prometheusInstalled() && !process.env.CI)('a worker scraped by a real Prometheus during a pipeline', () => {
  let t: TestTemporal;
  let prometheus: TestPrometheus;
  let worker: ChildProcess;
  let workerExited: Promise<unknown>;
  let endpoint: string;
  const pool = `metrics-${process.pid}`;

  beforeAll(async () => {
    t = await startTestTemporal();
    const port = await getFreePort();
    endpoint = `127.0.0.1:${port}`;
    worker = spawnGroup(process.execPath, [path.join(ROOT, 'bin', 'linkflow.js'), 'worker', '--queue', pool, '--node', 'm1', '--address', '127.0.0.1'], {
      cwd: ROOT,
      env: { ...process.env, TEMPORAL_ADDRESS: t.config.address, LINKFLOW_METRICS: endpoint, LINKFLOW_HEARTBEAT_TIMEOUT: '10s' },
      stdio: 'ignore',
    });
    workerExited = new Promise((r) => worker.once('exit', r));
    await until('the worker serving metrics', async () => (await fetch(`http://${endpoint}/metrics`).catch(() => undefined))?.ok, { timeoutMs: 60_000 });
    prometheus = await startPrometheus([endpoint]);
  }, 180_000);

  afterAll(async () => {
    await prometheus?.stop();
    worker?.kill('SIGTERM');
    await workerExited;
    await t?.stop();
  }, 120_000);

  it("Prometheus reads linkflow's metrics back: live progress while training, then attempts, failure class, recomputed iterations, checkpoint and stage timings", async () => {
    const dir = tempDir('metrics');
    const spec = fiveStageSpec('metrics', path.join(dir, 'ws'), {
      trainIters: 60,
      saveInterval: 10,
      pretrainEnv: { MLEMU_FAULTS: 'crash@35', MLEMU_ITER_TIME_MS: '100' },
    });
    spec.stages = spec.stages.slice(0, 4).filter((s) => s.name !== 'sft-data');
    spec.cluster = { ...(spec.cluster as object), taskQueue: pool };
    const handle = await startPipeline(t.client, t.config, planFile(writeSpec(dir, spec)));
    const labels = `pipeline="metrics", stage="pretrain", node="m1", pool="${pool}"`;

    // While pretraining runs: its iteration, loss and throughput, scraped and stored by Prometheus.
    const live = await until(
      'a live iteration in Prometheus',
      async () => {
        const r = await prometheus.query(`linkflow_stage_iteration{${labels}}`);
        return r.length === 1 && r[0].value >= 5 && r;
      },
      { timeoutMs: 120_000, everyMs: 500 },
    );
    expect(live[0].metric).toMatchObject({ pipeline: 'metrics', stage: 'pretrain', node: 'm1', pool });
    expect((await prometheus.query(`linkflow_stage_loss{${labels}}`))[0].value).toBeGreaterThan(0);
    expect((await prometheus.query(`linkflow_stage_tokens_per_second_per_device{${labels}}`))[0].value).toBeGreaterThan(0);
    await until('a checkpoint iteration', async () => ((await prometheus.query(`linkflow_stage_last_checkpoint_iteration{${labels}}`))[0]?.value ?? 0) >= 10, {
      timeoutMs: 60_000,
    });

    const { state } = await outcomeOf(handle);
    expect(state?.status).toBe('succeeded');
    const pretrain = state!.stages.find((s) => s.name === 'pretrain')!;
    expect(pretrain.attempts.map((a) => a.failureClass ?? a.outcome)).toEqual(['exception', 'succeeded']);

    // After the pipeline: counters and histograms, read through the query API once scraped.
    const value = async (expr: string) => (await prometheus.query(expr))[0]?.value;
    await until('the last attempt scraped', async () => (await value(`linkflow_attempts_total{${labels}, outcome="succeeded"}`)) === 1, { timeoutMs: 30_000 });
    expect(await value(`linkflow_attempts_total{${labels}, outcome="failed", failure_class="exception"}`)).toBe(1);
    expect(await value(`sum(linkflow_attempts_total{pipeline="metrics", outcome="succeeded"})`)).toBe(3); // data, weights, pretrain
    expect(await value(`linkflow_iterations_recomputed_total{${labels}}`)).toBe(pretrain.attempts[0].lastIteration! - pretrain.attempts[1].loadedIteration!);
    expect(await value(`linkflow_checkpoint_save_seconds_count{${labels}}`)).toBeGreaterThanOrEqual(6); // 10, 20, 30, then 40, 50, 60
    // Attempt 1 loads the converted weights, attempt 2 the checkpoint at 30.
    expect(await value(`linkflow_checkpoint_load_seconds_count{${labels}}`)).toBe(2);
    expect(await value(`linkflow_stage_duration_seconds_count{${labels}}`)).toBe(1);
    expect(await value(`linkflow_stage_duration_seconds_sum{${labels}}`)).toBeGreaterThan(
      await value(`linkflow_attempt_duration_seconds_sum{${labels}, outcome="succeeded"}`),
    );
    // The pool's nodes by state, as its allocator sees them: the one node, free again.
    await until('the pool gauge', async () => (await value(`linkflow_pool_nodes{pool="${pool}", state="free"}`)) === 1, { timeoutMs: 60_000 });
    expect(await value(`sum(linkflow_pool_nodes{pool="${pool}"})`)).toBe(1);
    // The SDK's own worker metrics come through the same endpoint.
    expect((await prometheus.query(`temporal_worker_task_slots_available{task_queue="${pool}"}`)).length).toBeGreaterThan(0);
    // A stage that no longer runs leaves no gauge behind.
    const scrape = await (await fetch(`http://${endpoint}/metrics`)).text();
    expect(scrape).not.toMatch(/^linkflow_stage_iteration\{/m);

    // Every metric a dashboard panel queries is one this worker exports (linkflow's and the SDK's).
    const exported = exportedNames(scrape);
    for (const name of dashboardExprs().flatMap(metricsOf)) expect(exported.has(name), `${name} (queried by the dashboard) is not exported`).toBe(true);
  }, 300_000);

  it('a bad --metrics address is refused before anything starts', async () => {
    const r = await runCli(['worker', '--metrics', 'nowhere'], { TEMPORAL_ADDRESS: '127.0.0.1:1' });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--metrics: expected HOST:PORT/);
    const dev = await runCli(['dev'], { TEMPORAL_ADDRESS: '127.0.0.1:1', LINKFLOW_METRICS: '9464' });
    expect(dev.code).toBe(2);
    expect(dev.stderr).toMatch(/--metrics: expected HOST:PORT \(e\.g\. 0\.0\.0\.0:9464\), got "9464"/);
  });
});
