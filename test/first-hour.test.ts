/**
 * Issue 20's "done when": a new user's first hour, replayed through the real `linkflow` command against
 * the real `linkflow dev` (dev server, Web UI, worker) and the emulator. A real ModelLink script
 * (examples.json's llama2 7B pretraining, which lacks --exit-signal-handler) is imported; validate finds
 * every placeholder, a mistyped stage and HF weights of another model before anything runs; the run
 * crashes (MLEMU_FAULTS) and retries; Ctrl-C detaches; watch reattaches; stop waits for the next save;
 * the rerun resumes with the attempt count going on; status and list say it in words; Ctrl-C stops dev.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Arg } from '../frameworks/modellink/args.ts';
import { getFreePort } from '../node/free-port.ts';
import { DEMO, EMULATOR, ROOT, tempDir } from '../testkit/specs.ts';
import { untilTrue } from '../testkit/wait.ts';

interface Example {
  script: string;
  env: Record<string, string>;
  sources: string[];
  launcher: string;
  entrypoint: string;
  distributed: Record<string, number | string | null>;
  args: Arg[];
  placeholders: Record<string, { script_value: string }>;
}

const SCRIPT = 'examples/llama2/pretrain_llama2_7b_ptd.sh';

/** The script as ModelLink ships it, written back from its examples.json entry (placeholders included). */
function scriptText(e: Example): string {
  const quote = (v: string) => (/^[A-Za-z0-9_@%+=:,./${}-]+$/.test(v) ? v : `'${v.replace(/'/g, `'\\''`)}'`);
  const lines = ['#!/bin/bash', ...Object.entries(e.env).map(([k, v]) => `export ${k}=${v}`), ...e.sources.map((s) => `source ${s}`)];
  for (const [name, p] of Object.entries(e.placeholders)) lines.push(`${name}=${p.script_value}`);
  const dist = Object.entries(e.distributed)
    .filter(([k, v]) => k !== 'world_size' && v !== null)
    .map(([k, v]) => `--${k} ${v}`)
    .join(' ');
  const args = e.args.map(([f, v]) => `    ${f}${v === null ? '' : ' ' + (Array.isArray(v) ? v.map(quote).join(' ') : quote(v))}`);
  return [...lines, `${e.launcher === 'python' ? 'python' : `${e.launcher} ${dist}`} ${e.entrypoint} \\`, args.join(' \\\n'), ''].join('\n');
}

/** A `linkflow` process in its own process group, as a terminal runs it: Ctrl-C is SIGINT to the group. */
class Linkflow {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;

  constructor(args: string[], env: Record<string, string>) {
    this.child = spawn(process.execPath, [path.join(ROOT, 'bin', 'linkflow.js'), ...args], { cwd: ROOT, env: { ...process.env, ...env }, detached: true });
    started.push(this.child);
    this.child.stdout!.on('data', (d: Buffer) => (this.stdout += d.toString()));
    this.child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => this.child.on('close', (code, signal) => resolve(code ?? (signal ? -1 : null))));
  }

  async until(pattern: RegExp, ms: number): Promise<RegExpMatchArray> {
    const end = Date.now() + ms;
    while (!pattern.test(this.stdout + this.stderr)) {
      if (Date.now() > end) throw new Error(`${pattern} not seen within ${ms} ms in:\n${this.stdout}\n${this.stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return (this.stdout + this.stderr).match(pattern)!;
  }

  ctrlC(): void {
    process.kill(-this.child.pid!, 'SIGINT');
  }
}

const started: ChildProcess[] = [];
const env: Record<string, string> = {};
let dev: Linkflow;

function linkflow(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'linkflow.js'), ...args], { cwd: ROOT, env: { ...process.env, ...env }, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(async () => {
  const dir = tempDir('first-hour-dev');
  Object.assign(env, {
    TEMPORAL_ADDRESS: `127.0.0.1:${await getFreePort()}`,
    LINKFLOW_DEV_DB: path.join(dir, 'temporal-dev.db'),
    LINKFLOW_DEV_UI_PORT: String(await getFreePort()),
    LINKFLOW_TASK_QUEUE: `first-hour-${process.pid}`,
    // A crash is retried after 2 s instead of 10 s: the test's only concession to time.
    LINKFLOW_RETRY_INITIAL_INTERVAL: '2s',
  });
  dev = new Linkflow(['dev'], env);
  await dev.until(/worker polling task queue/, 120_000);
}, 150_000);

afterAll(async () => {
  for (const child of started) {
    try {
      if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

describe("a new user's first hour", () => {
  const dir = tempDir('first-hour');
  const specFile = path.join(dir, 'pretrain.yaml');
  let workflowId = '';

  it('import a real script; validate lists every placeholder, a mistyped stage and weights of another model before anything runs', async () => {
    const examples = JSON.parse(fs.readFileSync(path.join(ROOT, 'reference', 'modellink', 'examples.json'), 'utf8')) as { scripts: Example[] };
    const example = examples.scripts.find((s) => s.script === SCRIPT)!;
    expect(example.args.some(([f]) => f === '--exit-signal-handler')).toBe(false);
    const script = path.join(dir, path.basename(SCRIPT));
    fs.writeFileSync(script, scriptText(example));
    const imported = linkflow('import', script, '--root', EMULATOR, '-o', specFile);
    expect(imported.code, imported.stderr).toBe(0);

    const first = linkflow('validate', specFile);
    expect(first.code).toBe(2);
    for (const [at, variable] of [
      ['model.tokenizer', '${TOKENIZER_MODEL}'],
      ['stages[0].data', '${DATA_PATH}'],
      ['stages[0].load', '${CKPT_LOAD_DIR}'],
    ])
      expect(first.stderr).toContain(`${at}: ${variable} is a shell variable`);
    expect(first.stderr).toMatch(/warning: stages\[0\]: stage \S+ runs without --exit-signal-handler/);

    // The user fills the placeholders for the emulator: a preprocess and a convert stage in front, one load mistyped.
    const spec = YAML.parse(fs.readFileSync(specFile, 'utf8')) as Record<string, Record<string, unknown>> & { stages: Record<string, unknown>[] };
    const model = spec.model.preset as string;
    spec.workspace = path.join(dir, 'ws') as never;
    Object.assign(spec.modellink, { root: EMULATOR, python: 'python3', launcher: path.join(EMULATOR, 'torchrun'), env: { MLEMU_ITER_TIME_MS: '200' } });
    spec.model.tokenizer = path.join(DEMO, 'hf-tiny');
    const pretrain = spec.stages[0];
    spec.stages = [
      { name: 'data', kind: 'preprocess', input: path.join(DEMO, 'corpus.jsonl') },
      { name: 'weights', kind: 'convert', from: path.join(DEMO, 'hf-tiny') },
      Object.assign(pretrain, { data: 'data', load: 'weight' }),
    ];
    fs.writeFileSync(specFile, YAML.stringify(spec));
    const second = linkflow('validate', specFile);
    expect(second.code).toBe(2);
    expect(second.stderr).toContain('stages[2].load: "weight" is neither a stage nor an existing path');
    expect(second.stderr).toContain('did you mean `weights`?');
    expect(second.stderr).toContain(`stages[1].from: ${path.join(DEMO, 'hf-tiny', 'config.json')} is not a ${model}: layers 2 (num_hidden_layers)`);

    // Weights of the tiny model, then: its preset, on 2 devices, and a crash at iteration 35.
    spec.model = { preset: 'tiny', impl: 'mcore', tokenizer: path.join(DEMO, 'hf-tiny') };
    spec.cluster.devicesPerNode = 2;
    for (const key of ['seqLength', 'maxPositionEmbeddings', 'tokenizerType', 'evalInterval', 'evalIters']) delete pretrain[key];
    Object.assign(pretrain, { load: 'weights', trainIters: 200, saveInterval: 10, env: { MLEMU_FAULTS: 'crash@35' } });
    fs.writeFileSync(specFile, YAML.stringify(spec));
    const third = linkflow('validate', specFile);
    expect(third.code, third.stderr).toBe(0);
    expect(third.stdout).toContain('3 stages: data (preprocess), weights (convert)');
    expect(third.stderr).toContain('`linkflow stop` then waits for its next save (every 10 iterations)');

    // The same checks where the stages will run: through the dev worker's node queue.
    const onNode = linkflow('validate', specFile, '--on-node', os.hostname());
    expect(onNode.code, onNode.stderr).toBe(0);
    expect(onNode.stdout).toContain(`on node ${os.hostname()}: checked ModelLink checkout ${EMULATOR}`);
    expect(onNode.stdout).toContain('its devices are free');
    const elsewhere = linkflow('validate', specFile, '--on-node', 'no-such-node');
    expect(elsewhere.code).toBe(1);
    expect(elsewhere.stderr).toContain('is `linkflow worker --node no-such-node` running?');
    // A pool no worker polls: said at once instead of waiting for a workflow no one runs.
    const noPool = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'linkflow.js'), 'validate', specFile, '--on-node', os.hostname()], {
      cwd: ROOT,
      env: { ...process.env, ...env, LINKFLOW_TASK_QUEUE: `nobody-polls-${process.pid}` },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(noPool.status, noPool.stderr).toBe(1);
    expect(noPool.stderr).toContain(`no worker polls the pool's task queue nobody-polls-${process.pid}`);
  });

  it('run --wait shows the crash and the retry; Ctrl-C detaches and says how to watch and stop', async () => {
    const run = new Linkflow(['run', specFile, '--wait'], env);
    workflowId = (await run.until(/started (\S+)/, 60_000))[1];
    await run.until(/Web UI: http:\/\/\S+\/workflows\//, 1000);
    // With pp = 2 the crash of rank 0 in iteration 35 comes after the last stage logged iteration 35.
    await run.until(/attempt 1 failed after iteration 35 \(exception: EZ9999: [^\n]{1,200}\); retrying after a backoff/, 120_000);
    await run.until(/\[\S+\] running \| attempt 2 \| iteration \d+/, 60_000);
    run.ctrlC();
    expect(await run.exited).toBe(130);
    expect(run.stderr).toContain(`detached: pipeline ${workflowId} keeps running`);
    expect(run.stderr).toContain(`linkflow watch ${workflowId}`);
    expect(run.stderr).toContain(`linkflow stop ${workflowId}`);

    const status = linkflow('status', workflowId);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/: running\n {2}now: stage \S+ running, attempt 2(, on node \S+)?, at iteration \d+ of 200/);
    expect(status.stdout).not.toContain('live: {');
  });

  it('watch reattaches to the live view; stop waits for the next save of a trainer without the exit signal handler', async () => {
    const watch = new Linkflow(['watch', workflowId], env);
    await watch.until(/watching \S+/, 60_000);
    await watch.until(/attempt 2 \| iteration \d+/, 30_000);
    watch.ctrlC();
    expect(await watch.exited).toBe(130);
    expect(watch.stderr).toContain('detached');

    const stop = linkflow('stop', workflowId);
    expect(stop.code, stop.stderr).toBe(0);
    expect(stop.stdout).toContain('runs without --exit-signal-handler');
    expect(stop.stdout).toMatch(/waiting for its next save \(iteration (\d+), every 10\)/);
    expect(stop.stdout).toMatch(/saved checkpoint at iteration \d+0; stopping/);
    await untilTrue(() => (JSON.parse(linkflow('status', workflowId, '--json').stdout) as { status: string }).status === 'stopped', 120_000, 'stopped');
    const status = linkflow('status', workflowId);
    expect(status.stdout).toMatch(/: stopped\n/);
    expect(status.stdout).toMatch(/attempt 1: failed .*\(exception/);
    expect(status.stdout).toMatch(/attempt 2: stopped from 30/);
  });

  it('running it again resumes; attempts go on counting; status and list say so in words', async () => {
    const rerun = new Linkflow(['run', specFile, '--wait'], env);
    expect(await rerun.exited, rerun.stderr).toBe(0);
    expect(rerun.stdout).toMatch(/: succeeded\n/);
    expect(rerun.stdout).toMatch(/attempts 3 resumed from 30, \d+ iteration 200\/200/);
    expect(rerun.stdout).toMatch(/attempt 3: succeeded from \d+0 to 200/);

    const list = linkflow('list');
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(new RegExp(`${workflowId}\\s+pipeline\\s+succeeded\\s+tiny`));

    const status = linkflow('status', workflowId);
    expect(status.stdout).toMatch(/: succeeded\n/);
    expect(status.stdout).not.toContain('live:');

    // advise reads both runs: the crash of the first, the iteration times of all three attempts.
    const advise = linkflow('advise', workflowId);
    expect(advise.code, advise.stderr).toBe(0);
    expect(advise.stdout).toMatch(/1 failure\(s\) in [\d.]+ s of training over 2 run\(s\)/);
  });

  it('Ctrl-C stops linkflow dev within seconds and says what it stops', async () => {
    const t0 = Date.now();
    dev.ctrlC();
    expect(await dev.exited).toBe(0);
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect(dev.stdout).toContain('stopping the worker');
    expect(dev.stdout).toMatch(/stopped\n$/);
  });
});
