/**
 * The emulator's throughput model (emulator/mlemu/throughput.py, data in emulator/mlemu/throughput.json):
 * a pretraining job of ModelLink's performance table logs the table's time per iteration (so linkflow's
 * benchmark measures the table's tokens/s per device), MLEMU_SLOWDOWN slows a chosen case, and jobs
 * outside the table keep MLEMU_ITER_TIME_MS. Jobs are built as linkflow's benchmark builds them: the
 * preset's architecture flags, the table case's layout, mock data, no checkpoint, NullTokenizer.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { measureThroughput, tableCases, type BenchmarkCase } from '../benchmark/core.ts';
import { getPreset, type Impl } from '../frameworks/modellink/presets.ts';
import { parseLogLine } from '../frameworks/modellink/training-log.ts';
import { EMULATOR } from '../testkit/specs.ts';

const PYTHON = process.env.PYTHON ?? 'python3';

let tmp: string;

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'linkflow-emulator-throughput-'));
});

afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/** The model's flags as its example script passes them, with the case's sequence length and a NullTokenizer (no tokenizer files). */
function modelFlags(presetName: string, impl: Impl, seqLength: number): string[] {
  const preset = getPreset(presetName);
  if (!preset) throw new Error(`no preset ${presetName}`);
  const out: string[] = [];
  for (const [flag, value] of preset.architectureArgs[impl] ?? []) {
    if (flag === '--tokenizer-type' || flag === '--seq-length' || flag === '--max-position-embeddings') continue;
    out.push(flag, ...(value === null ? [] : Array.isArray(value) ? value : [value]));
  }
  out.push(
    '--seq-length',
    String(seqLength),
    '--max-position-embeddings',
    String(Math.max(seqLength, preset.architecture.maxPositionEmbeddings)),
    '--tokenizer-type',
    'NullTokenizer',
    '--vocab-size',
    String(preset.architecture.vocabSize ?? 32000),
  );
  if (impl === 'mcore') out.push('--use-mcore-models');
  return out;
}

/** A benchmark job of a table case: mock data, no --save, --eval-iters 0, --log-throughput, log every iteration. */
function caseFlags(c: BenchmarkCase, iters: number): string[] {
  const p = c.parallel!;
  return [
    ...modelFlags(c.preset!, c.shape.impl, c.shape.seqLength),
    `--${c.shape.precision}`,
    '--tensor-model-parallel-size',
    String(p.tp),
    '--pipeline-model-parallel-size',
    String(p.pp),
    '--context-parallel-size',
    String(p.cp),
    '--expert-model-parallel-size',
    String(p.ep),
    '--micro-batch-size',
    String(p.microBatchSize),
    '--global-batch-size',
    String(p.globalBatchSize),
    '--mock-data',
    '--train-iters',
    String(iters),
    '--eval-iters',
    '0',
    '--log-interval',
    '1',
    '--log-throughput',
    '--lr',
    '1.0e-5',
    '--min-lr',
    '1.0e-6',
    '--lr-decay-style',
    'cosine',
  ];
}

const worldOf = (c: BenchmarkCase) => c.shape.nodes * c.shape.devicesPerNode;

function tableCase(id: string): BenchmarkCase {
  const c = tableCases().find((t) => t.id === id);
  if (!c) throw new Error(`no table case ${id}`);
  return c;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  wallMs: number;
}

function pretrain(args: string[], env: Record<string, string>): Run {
  const started = Date.now();
  const r = spawnSync(PYTHON, [path.join(EMULATOR, 'pretrain_gpt.py'), ...args], {
    cwd: tmp,
    // The test must not inherit a slowdown or a case from the shell that runs it.
    env: { ...process.env, MLEMU_SLOWDOWN: '', LINKFLOW_BENCH_CASE: '', MLEMU_TIME_SCALE: '', MLEMU_ITER_TIME_MS: '5', ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', wallMs: Date.now() - started };
}

function iterationLines(stdout: string) {
  return stdout
    .split('\n')
    .map(parseLogLine)
    .filter((e) => e?.type === 'iteration')
    .map((e) => e as Extract<NonNullable<ReturnType<typeof parseLogLine>>, { type: 'iteration' }>);
}

/** What linkflow's benchmark computes from the log: the median over the iterations after warm-up. */
function measured(run: Run, c: BenchmarkCase, warmup = 2) {
  expect(run.code, run.stderr).toBe(0);
  const result = measureThroughput(
    iterationLines(run.stdout),
    { seqLength: c.shape.seqLength, globalBatchSize: c.parallel!.globalBatchSize, worldSize: worldOf(c) },
    { warmup },
  );
  if (!result.ok) throw new Error(result.reason);
  return result.throughput;
}

const relative = (value: number, expected: number) => Math.abs(value / expected - 1);

describe('the table jobs', () => {
  it('recognises every table case linkflow can run as its own row, with its table figure (one python process)', () => {
    const runnable = tableCases().filter((c) => !c.skipReason && c.preset && c.parallel);
    expect(runnable.length).toBeGreaterThanOrEqual(40);
    const jobs = runnable.map((c) => ({ id: c.id, world: worldOf(c), argv: caseFlags(c, 10) }));
    const script = [
      'import json, sys',
      `sys.path.insert(0, ${JSON.stringify(EMULATOR)})`,
      'from mlemu import args, throughput',
      'out = {}',
      'for job in json.load(sys.stdin):',
      "    row = throughput.recognise(args.parse('pretrain_gpt.py', job['argv']), job['world'])",
      "    out[job['id']] = row and [row['case'], row['tokens_per_s_per_device']]",
      'print(json.dumps(out))',
    ].join('\n');
    const r = spawnSync(PYTHON, ['-c', script], { input: JSON.stringify(jobs), encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    const found = JSON.parse(r.stdout) as Record<string, [string, number] | null>;
    for (const c of runnable) expect(found[c.id], c.id).toEqual([c.id, c.baseline]);
  });

  it('logs the table time per iteration: the median gives the table figure within 1 %, with TFLOP/s, in little wall time', () => {
    const c = tableCase('llama2-7b-seq4k-mcore-1x8-bf16');
    const run = pretrain(caseFlags(c, 14), { WORLD_SIZE: String(worldOf(c)) });
    const t = measured(run, c);
    expect(t.iterations).toBe(12);
    expect(relative(t.tokensPerSecondPerDevice, c.baseline!)).toBeLessThan(0.01);
    // Deterministic noise of at most ±0.5 % per iteration.
    expect(t.min).toBeGreaterThan(c.baseline! * 0.994);
    expect(t.max).toBeLessThan(c.baseline! * 1.006);
    expect(t.max).toBeGreaterThan(t.min);
    expect(t.tflopsPerDevice).toBeGreaterThan(0);
    // 14 modelled iterations of ~28 s each, slept as min(modelled, MLEMU_ITER_TIME_MS = 5 ms).
    expect(t.msPerIteration).toBeGreaterThan(20_000);
    expect(run.wallMs).toBeLessThan(15_000);
    // Mock data and no --save: nothing is written to the working directory.
    expect(fs.readdirSync(tmp)).toEqual([]);
  });

  it('tells apart rows of the same shape (LLaMA 7B vs Aquila2 7B by batch) and models multi-node rows', () => {
    for (const id of ['llama-7b-seq2k-legacy-1x8-fp16', 'aquila2-7b-seq2k-legacy-1x8-fp16', 'chatglm3-6b-seq64k-mcore-2x8-fp16']) {
      const c = tableCase(id);
      const t = measured(pretrain(caseFlags(c, 8), { WORLD_SIZE: String(worldOf(c)) }), c);
      expect(relative(t.tokensPerSecondPerDevice, c.baseline!), id).toBeLessThan(0.01);
    }
  });

  it('stops at --exit-interval with status 0', () => {
    const c = tableCase('qwen15-0point5b-seq8k-legacy-1x8-bf16');
    const run = pretrain([...caseFlags(c, 30), '--exit-interval', '6'], { WORLD_SIZE: '8' });
    expect(run.code, run.stderr).toBe(0);
    expect(iterationLines(run.stdout).map((e) => e.iteration)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(run.stdout).toContain('exiting program at iteration 6');
  });
});

describe('MLEMU_SLOWDOWN', () => {
  const c = tableCase('llama2-7b-seq4k-mcore-1x8-bf16');

  it('slows the case LINKFLOW_BENCH_CASE names by its factor (throughput ÷ 1.15), and only that case', () => {
    const slow = measured(pretrain(caseFlags(c, 10), { WORLD_SIZE: '8', LINKFLOW_BENCH_CASE: c.id, MLEMU_SLOWDOWN: `other-case=3, ${c.id}=1.15` }), c);
    expect(relative(slow.tokensPerSecondPerDevice, c.baseline! / 1.15)).toBeLessThan(0.01);
    const other = measured(pretrain(caseFlags(c, 10), { WORLD_SIZE: '8', LINKFLOW_BENCH_CASE: 'another-case', MLEMU_SLOWDOWN: `${c.id}-x=1.15` }), c);
    expect(relative(other.tokensPerSecondPerDevice, c.baseline!)).toBeLessThan(0.01);
    expect(relative(slow.tflopsPerDevice! * 1.15, other.tflopsPerDevice!)).toBeLessThan(0.01);
  });

  it('also matches the row by its model name, and * matches every job', () => {
    const byModel = measured(pretrain(caseFlags(c, 10), { WORLD_SIZE: '8', MLEMU_SLOWDOWN: 'llama2-7b=1.5' }), c);
    expect(relative(byModel.tokensPerSecondPerDevice, c.baseline! / 1.5)).toBeLessThan(0.01);
    const all = measured(pretrain(caseFlags(c, 10), { WORLD_SIZE: '8', MLEMU_SLOWDOWN: '*=2' }), c);
    expect(relative(all.tokensPerSecondPerDevice, c.baseline! / 2)).toBeLessThan(0.01);
  });

  it('rejects an invalid value with exit 2 before training', () => {
    for (const spec of ['llama2-7b', 'x=0', 'x=fast', '=1.1', 'x=1.1,x=1.2']) {
      const run = pretrain(caseFlags(c, 10), { WORLD_SIZE: '8', MLEMU_SLOWDOWN: spec });
      expect(run.code, spec).toBe(2);
      expect(run.stderr).toMatch(/^mlemu: invalid MLEMU_SLOWDOWN: /);
      expect(run.stdout).toBe('');
    }
  });
});

describe('jobs outside the table', () => {
  /** The tiny preset (2 layers, hidden 64): no table row, so its iterations take MLEMU_ITER_TIME_MS. */
  const tiny = () => [
    ...modelFlags('tiny', 'mcore', 256),
    '--bf16',
    '--micro-batch-size',
    '1',
    '--global-batch-size',
    '8',
    '--mock-data',
    '--train-iters',
    '6',
    '--eval-iters',
    '0',
    '--log-interval',
    '1',
    '--log-throughput',
    '--lr',
    '1.0e-4',
  ];
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

  it('keep MLEMU_ITER_TIME_MS timing, which MLEMU_SLOWDOWN * scales', () => {
    const plain = pretrain(tiny(), { MLEMU_ITER_TIME_MS: '40' });
    expect(plain.code, plain.stderr).toBe(0);
    const ms = iterationLines(plain.stdout).map((e) => e.elapsedMsPerIteration);
    expect(ms).toHaveLength(6);
    for (const m of ms) expect(m).toBeGreaterThanOrEqual(39.9);
    expect(median(ms)).toBeLessThan(400);
    const slowed = pretrain(tiny(), { MLEMU_ITER_TIME_MS: '40', MLEMU_SLOWDOWN: '*=3' });
    expect(slowed.code, slowed.stderr).toBe(0);
    for (const m of iterationLines(slowed.stdout).map((e) => e.elapsedMsPerIteration)) expect(m).toBeGreaterThanOrEqual(119.9);
  });
});
