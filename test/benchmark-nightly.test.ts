/**
 * The nightly benchmark on a real dev server with the emulator: nights stored and judged against
 * history, a 15 % slowdown caught, a case too big for the pool skipped, a failing case reported
 * with its class, a Schedule triggered, the webhook called, the HTML report written.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { parse } from 'node-html-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrUpdateSchedule } from '../client/schedules.ts';
import { report } from '../benchmark/report.ts';
import { loadSuite } from '../benchmark/suite-file.ts';
import { defaultStorePath, openBenchmarkStore } from '../benchmark/store.ts';
import { benchmarkWorkflowType, type BenchmarkOutcome, type BenchmarkWorkflow } from '../contracts/workflows.ts';
import { EMULATOR, tempDir } from '../testkit/specs.ts';
import { startTestTemporal, type TestTemporal } from '../testkit/temporal.ts';
import { until, within } from '../testkit/wait.ts';
import { spawnGroup } from '../testkit/processes.ts';
import { getFreePort } from '../node/free-port.ts';
import { runCli } from '../testkit/cli.ts';

let t: TestTemporal;
beforeAll(async () => {
  t = await startTestTemporal();
});
afterAll(async () => {
  await t?.stop();
});

const FAST = 'llama2-7b-seq4k-mcore-1x8-bf16';
const SLOWED = 'qwen-7b-seq8k-legacy-1x8-bf16';
const TWO_NODES = 'aquila2-34b-seq4k-legacy-2x8-bf16';

function writeSuite(dir: string, extra: Record<string, unknown> = {}, env: Record<string, string> = {}): string {
  const file = path.join(dir, `suite-${Math.random().toString(36).slice(2)}.json`);
  fs.writeFileSync(
    file,
    JSON.stringify({
      name: 'nightly-test',
      cluster: 'emulator',
      taskQueue: t.config.taskQueue,
      workspace: './bench',
      modellink: { root: EMULATOR, python: 'python3', launcher: path.join(EMULATOR, 'torchrun'), env },
      rows: [FAST, SLOWED, TWO_NODES],
      iterations: { warmup: 2, measured: 6 },
      ...extra,
    }),
  );
  return file;
}

async function runNight(suiteFile: string): Promise<BenchmarkOutcome> {
  const suite = loadSuite(suiteFile);
  const handle = await t.client.workflow.start<BenchmarkWorkflow>(benchmarkWorkflowType, {
    workflowId: `bench-test-${Date.now()}-${Math.random().toString(36).slice(2)}`,
    taskQueue: t.config.taskQueue,
    args: [{ suite }],
  });
  return (await handle.result()) as BenchmarkOutcome;
}

describe('nightly benchmark', () => {
  it('three nights, then a fourth with one case 15 % slower: that case regresses, the others are ok; a 2-node case is skipped; the webhook hears of it; the HTML report shows every case', async () => {
    const dir = tempDir('nightly');
    const received: unknown[] = [];
    const hook = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        received.push(JSON.parse(body));
        res.end('ok');
      });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
    const webhook = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`;
    try {
      for (let night = 1; night <= 3; night++) {
        const outcome = await runNight(writeSuite(dir, { webhook }));
        expect(outcome.counts).toMatchObject({ ok: 2, skipped: 1 });
      }
      // Nothing regressed or failed: no notification.
      expect(received).toEqual([]);

      const suiteFile = writeSuite(dir, { webhook }, { MLEMU_SLOWDOWN: `${SLOWED}=1.15` });
      const outcome = await runNight(suiteFile);
      expect(outcome.counts).toMatchObject({ ok: 1, regression: 1, skipped: 1 });
      expect(outcome.notified).toBe(webhook);

      const suite = loadSuite(suiteFile);
      const store = openBenchmarkStore(defaultStorePath(suite.workspace));
      const runs = store.listRuns({ cluster: 'emulator' });
      const cases = store.runCases(outcome.runId);
      store.close();
      expect(runs).toHaveLength(4);
      const byId = Object.fromEntries(cases.map((c) => [c.caseId, c]));
      expect(byId[SLOWED].verdict).toBe('regression');
      expect(byId[SLOWED].comparison.changeVsHistoryPercent).toBeLessThan(-10);
      expect(byId[FAST].verdict).toBe('ok');
      expect(byId[TWO_NODES].verdict).toBe('skipped');
      expect(byId[TWO_NODES].reason).toContain('needs 2 nodes');

      expect(received).toHaveLength(1);
      const summary = received[0] as { runId: string; regressions: { caseId: string }[] };
      expect(summary.runId).toBe(outcome.runId);
      expect(summary.regressions.map((r) => r.caseId)).toEqual([SLOWED]);

      // The terminal table and the HTML page, with a chart per case.
      const html = path.join(dir, 'report.html');
      const table = report(suite, { html });
      for (const id of [FAST, SLOWED, TWO_NODES]) expect(table).toContain(id);
      expect(table).toMatch(new RegExp(`${SLOWED}.*regression`));
      const page = parse(fs.readFileSync(html, 'utf8'));
      const text = page.textContent;
      for (const id of [FAST, SLOWED, TWO_NODES]) expect(text).toContain(id);
      expect(page.querySelectorAll('svg').length).toBeGreaterThanOrEqual(3);
      expect(page.querySelectorAll('script').length).toBe(0);
      const chromium = ['chromium', 'chromium-browser', 'google-chrome'].find((b) => spawnSync('which', [b]).status === 0);
      if (chromium) {
        // Where a headless browser is installed, the page renders; the screenshot is kept as an artifact.
        const shot = path.join(process.cwd(), 'test-artifacts', 'bench-report.png');
        fs.mkdirSync(path.dirname(shot), { recursive: true });
        // Its own process group: chromium's helper processes go with it if it has to be stopped.
        const browser = spawnGroup(
          chromium,
          ['--headless', '--no-sandbox', '--disable-gpu', `--screenshot=${shot}`, '--window-size=1280,2000', `file://${html}`],
          {
            stdio: ['ignore', 'ignore', 'pipe'],
          },
        );
        let stderr = '';
        browser.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
        const status = await within(new Promise<number | null>((resolve) => browser.once('close', resolve)), 60_000, 'the headless screenshot');
        expect(status, stderr).toBe(0);
        expect(fs.statSync(shot).size).toBeGreaterThan(1000);
      }
    } finally {
      hook.close();
    }
  });

  it('a case whose job fails is reported failed with its class and log excerpt, and the others go on', async () => {
    const dir = tempDir('nightly-fail');
    const file = writeSuite(dir, {
      name: 'failing',
      cluster: 'emulator-failing',
      rows: [FAST],
      // The job saves nothing: its fault marker goes to the test's directory, not the emulator's.
      cases: [{ id: 'crashing', preset: 'llama2-7b', impl: 'mcore', seqLength: 4096, env: { MLEMU_FAULTS: 'oom@4', MLEMU_MARKER_DIR: dir } }],
      // Nobody listens there: the night still completes, and says the summary did not get through.
      webhook: `http://127.0.0.1:${await getFreePort()}/hook`,
    });
    const outcome = await runNight(file);
    expect(outcome.counts).toMatchObject({ ok: 1, failed: 1 });
    expect(outcome.notified).toBeUndefined();
    expect(outcome.notifyError).toMatch(/fetch failed|ECONNREFUSED/);
    const store = openBenchmarkStore(defaultStorePath(loadSuite(file).workspace));
    const crashing = store.runCases(outcome.runId).find((c) => c.caseId === 'crashing')!;
    store.close();
    expect(crashing.verdict).toBe('failed');
    expect(crashing.failureClass).toBe('out-of-memory');
    expect(crashing.excerpt?.join('\n')).toMatch(/out of memory/i);
  });

  it('a Schedule is created and triggered; its run completes and is stored', async () => {
    const dir = tempDir('nightly-schedule');
    const file = writeSuite(dir, { name: 'scheduled', cluster: 'emulator-scheduled', rows: [FAST] });
    const suite = loadSuite(file);
    expect(
      await createOrUpdateSchedule(t.client, suite, {
        cron: '0 2 * * *',
        timezone: 'Asia/Shanghai',
        catchupWindow: '1h',
        pauseOnFailure: false,
        taskQueue: t.config.taskQueue,
      }),
    ).toBe('created');
    expect(
      await createOrUpdateSchedule(t.client, suite, {
        cron: '30 2 * * *',
        timezone: 'Asia/Shanghai',
        catchupWindow: '1h',
        pauseOnFailure: true,
        taskQueue: t.config.taskQueue,
      }),
    ).toBe('updated');
    const handle = t.client.schedule.getHandle('linkflow-bench-scheduled');
    const described = await handle.describe();
    expect(described.spec.timezone).toBe('Asia/Shanghai');
    expect(described.policies.overlap).toBe('SKIP');
    expect(described.policies.pauseOnFailure).toBe(true);
    await handle.trigger();
    const workflowId = await until('the schedule to start a run', async () => (await handle.describe()).info.recentActions.at(-1)?.action.workflow.workflowId);
    const outcome = (await t.client.workflow.getHandle(workflowId).result()) as BenchmarkOutcome;
    expect(outcome.counts).toMatchObject({ ok: 1 });
    const store = openBenchmarkStore(defaultStorePath(suite.workspace));
    const run = store.getRun(workflowId);
    store.close();
    expect(run?.status).toBe('completed');
    expect(run?.fingerprint.suite.name).toBe('scheduled');
    await handle.delete();
  });

  it('the bench commands: run once now with its report, schedule, list, pause, unpause, delete; a bad suite is refused with its path', async () => {
    const dir = tempDir('nightly-cli');
    const file = writeSuite(dir, { name: 'cli', cluster: 'emulator-cli', rows: [FAST, TWO_NODES] });
    const env = { TEMPORAL_ADDRESS: t.config.address, LINKFLOW_TASK_QUEUE: t.config.taskQueue };
    const run = await runCli(['bench', 'run', '--suite', file], env);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(new RegExp(`${FAST}.*ok`));
    expect(run.stdout).toMatch(new RegExp(`${TWO_NODES}.*skipped`));
    const json = await runCli(['bench', 'report', '--suite', file, '--json'], env);
    expect(JSON.parse(json.stdout)).toMatchObject({ suite: 'cli', counts: { ok: 1, skipped: 1 } });
    // Without --suite, report reads the suite `bench run --suite` last ran here (its results are in its own workspace).
    const last = await runCli(['bench', 'report', '--json'], env);
    expect(last.code, last.stderr).toBe(0);
    expect(last.stderr).toContain(`suite ${file} (the last \`bench run --suite\``);
    expect(JSON.parse(last.stdout)).toMatchObject({ suite: 'cli', counts: { ok: 1, skipped: 1 } });

    expect((await runCli(['bench', 'schedule', '--suite', file, '--cron', '0 2 * * *', '--timezone', 'Asia/Shanghai'], env)).stdout).toContain(
      'created schedule linkflow-bench-cli',
    );
    expect((await runCli(['bench', 'list'], env)).stdout).toMatch(/linkflow-bench-cli\s+active\s+timezone Asia\/Shanghai/);
    expect((await runCli(['bench', 'pause', '--suite', file], env)).code).toBe(0);
    expect((await runCli(['bench', 'list'], env)).stdout).toMatch(/linkflow-bench-cli\s+paused/);
    expect((await runCli(['bench', 'unpause', '--id', 'linkflow-bench-cli'], env)).code).toBe(0);
    expect((await runCli(['bench', 'delete', '--suite', file], env)).code).toBe(0);
    const gone = await runCli(['bench', 'pause', '--suite', file], env);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain('no schedule linkflow-bench-cli');

    const bad = path.join(dir, 'bad.json');
    fs.writeFileSync(bad, JSON.stringify({ name: 'bad', rows: ['llama2-7b-seq4k-mcore-1x8-bf61'] }));
    const refused = await runCli(['bench', 'run', '--suite', bad], env);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('rows[0]: no table case "llama2-7b-seq4k-mcore-1x8-bf61"');
    expect(refused.stderr).toContain('llama2-7b-seq4k-mcore-1x8-bf16');
  });
});
