/**
 * Resuming checkpoints whose layout needs more than `--load <save dir>`, on a real Temporal dev server
 * with the emulator: a LoRA fine-tune with the distributed optimizer (linkflow's default), whose
 * optimizer state Megatron reads through `--load`'s tracker, and a MoE run with expert parallelism,
 * whose shards carry an expert rank (mp_rank_XX_EEE).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO, EMULATOR, fiveStageSpec, tempDir, writeSpec, type RawSpec } from '../testkit/specs.ts';
import { runSpec, startTestTemporal, type TestTemporal } from '../testkit/temporal.ts';

let t: TestTemporal;
beforeAll(async () => {
  t = await startTestTemporal();
});
afterAll(async () => {
  await t?.stop();
});

/** Every file under a directory with its size and mtime: what "untouched" means for a checkpoint. */
function snapshotFiles(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (!e.name.startsWith('.mlemu-fired')) {
        const st = fs.statSync(p);
        out[path.relative(dir, p)] = `${st.size}:${st.mtimeMs}`;
      }
    }
  };
  walk(dir);
  return out;
}

function argvOf(logFile: string): string[] {
  return JSON.parse(/# argv: (.*)/.exec(fs.readFileSync(logFile, 'utf8'))![1]) as string[];
}

/** When an attempt started, from its log's name (attempt-N-2026-11-30T18-04-02-983Z.log). */
function startedAt(logFile: string): number {
  const [, date, h, m, sec, ms] = /attempt-\d+-(\d{4}-\d\d-\d\d)T(\d\d)-(\d\d)-(\d\d)-(\d{3})Z\.log$/.exec(logFile)!;
  return Date.parse(`${date}T${h}:${m}:${sec}.${ms}Z`);
}

const valueOf = (argv: string[], flag: string) => argv[argv.indexOf(flag) + 1];

/** A LoRA fine-tune of `base` (a stage name) that crashes at iteration 15 of 30, saving every 10. */
function loraSpec(name: string, base: 'weights' | 'pretrain'): string {
  const dir = tempDir(name);
  const spec = fiveStageSpec(name, path.join(dir, 'ws'), { trainIters: 10, saveInterval: 10 });
  const keep = base === 'weights' ? ['sft-data', 'weights', 'finetune'] : ['data', 'sft-data', 'weights', 'pretrain', 'finetune'];
  spec.stages = spec.stages.filter((s) => keep.includes(s.name as string));
  Object.assign(
    spec.stages.find((s) => s.name === 'finetune')!,
    {
      load: base,
      trainIters: 30,
      saveInterval: 10,
      lora: { r: 8, alpha: 16 },
      env: { MLEMU_FAULTS: 'crash@15' },
    },
  );
  return writeSpec(dir, spec);
}

describe('a LoRA fine-tune with the distributed optimizer resumes its own checkpoint', () => {
  it.each([
    ['converted weights', 'lora-converted', 'weights'],
    ['a pretraining checkpoint', 'lora-pretrained', 'pretrain'],
  ] as const)('on %s: a crash at 15 resumes at iteration 10 with optimizer, scheduler and iteration restored', async (_, name, base) => {
    const { state, failure } = await runSpec(t, loraSpec(name, base));
    expect(state.status, failure).toBe('succeeded');
    const finetune = state.stages.find((s) => s.name === 'finetune')!;
    expect(finetune.attempts.map((a) => a.outcome)).toEqual(['failed', 'succeeded']);
    expect(finetune.attempts[0].failureClass).toBe('exception');
    expect(finetune.attempts[1].loadedIteration).toBe(10);
    expect(finetune.finalIteration).toBe(30);

    // The first attempt ran with the distributed optimizer (linkflow's default) from the base weights.
    const first = argvOf(finetune.attempts[0].logFile!);
    expect(first).toContain('--use-distributed-optimizer');
    const baseDir = valueOf(first, '--load');
    // The resume: --lora-load at the save directory, --load at a view of links under <stage>/resume/.
    const second = argvOf(finetune.attempts[1].logFile!);
    expect(second).not.toContain('--finetune');
    expect(second).not.toContain('--no-load-optim');
    expect(valueOf(second, '--lora-load')).toBe(finetune.output);
    const view = valueOf(second, '--load');
    expect(view).toBe(path.join(path.dirname(finetune.output), 'resume', 'lora-iter_0000010'));
    expect(fs.readFileSync(path.join(view, 'latest_checkpointed_iteration.txt'), 'utf8').trim()).toBe('10');
    const shard = path.join(view, 'iter_0000010', 'mp_rank_00');
    const baseIteration = fs.readFileSync(path.join(baseDir, 'latest_checkpointed_iteration.txt'), 'utf8').trim();
    expect(fs.readlinkSync(path.join(shard, 'model_optim_rng.pt'))).toBe(
      path.join(baseDir, `iter_${baseIteration.padStart(7, '0')}`, 'mp_rank_00', 'model_optim_rng.pt'),
    );
    expect(fs.readlinkSync(path.join(shard, 'distrib_optim.pt'))).toBe(path.join(finetune.output, 'iter_0000010', 'mp_rank_00', 'distrib_optim.pt'));

    // Megatron restored iteration 10 (and with it the consumed samples and the LR schedule) and went on at 11.
    const log = fs.readFileSync(finetune.attempts[1].logFile!, 'utf8');
    expect(log).toContain(`  successfully loaded checkpoint from ${view} [ t 0, p 0 ] at iteration 10`);
    expect(log).toMatch(/iteration {7}11\/ {6}30 \| consumed samples: {11}88 \|/);
    const lrAt = (text: string, it: number) => new RegExp(`iteration +${it}/ +30 \\|.*learning rate: (\\S+) \\|`).exec(text)?.[1];
    expect(lrAt(log, 11)).toBeDefined();
    // The same learning rate as the first attempt would have had at 11: the scheduler was restored, not restarted.
    expect(lrAt(log, 11)).not.toBe(lrAt(fs.readFileSync(finetune.attempts[0].logFile!, 'utf8'), 1));
    expect(fs.readFileSync(path.join(finetune.output, 'latest_checkpointed_iteration.txt'), 'utf8').trim()).toBe('30');
    // Nothing under the base weights was written after the fine-tune started.
    const started = startedAt(finetune.attempts[0].logFile!);
    const touched = Object.entries(snapshotFiles(baseDir)).filter(([, sig]) => Number(sig.split(':')[1]) >= started);
    expect(touched).toEqual([]);
  });

  it('a torn newest LoRA checkpoint: --lora-load and --load both show the previous complete iteration', async () => {
    const file = loraSpec('lora-torn', 'weights');
    const first = await runSpec(t, file);
    expect(first.state.status, first.failure).toBe('succeeded');
    const saveDir = first.state.stages.find((s) => s.name === 'finetune')!.output;
    // A save that never finished: iteration 40's shard directory is empty, yet the tracker names it.
    fs.mkdirSync(path.join(saveDir, 'iter_0000040', 'mp_rank_00'), { recursive: true });
    fs.writeFileSync(path.join(saveDir, 'latest_checkpointed_iteration.txt'), '40');
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace('trainIters: 30', 'trainIters: 50'));
    const { state, failure } = await runSpec(t, file);
    expect(state.status, failure).toBe('succeeded');
    const attempt = state.stages.find((s) => s.name === 'finetune')!.attempts[0];
    expect(attempt.loadedIteration).toBe(30);
    const argv = argvOf(attempt.logFile!);
    expect(valueOf(argv, '--lora-load')).toBe(path.join(path.dirname(saveDir), 'resume', 'iter_0000030'));
    expect(valueOf(argv, '--load')).toBe(path.join(path.dirname(saveDir), 'resume', 'lora-iter_0000030'));
    expect(fs.readFileSync(attempt.logFile!, 'utf8')).toMatch(/iteration {7}31\/ {6}50 \|/);
  });
});

/**
 * A MoE model (the tiny preset with 4 experts, top-2 routing) on two devices with EP 2: pretraining that
 * crashes at 15 of 30: from scratch, or from weights converted outside the pipeline to TP 1 × PP 1 × EP `weightsEp`.
 */
function moeSpec(name: string, weightsEp?: number): string {
  const dir = tempDir(name);
  const weights = path.join(dir, 'moe-weights');
  const convert =
    weightsEp === undefined
      ? undefined
      : spawnSync(
          'python3',
          [
            path.join(EMULATOR, 'convert_ckpt.py'),
            '--model-type',
            'GPT',
            '--load-model-type',
            'hf',
            '--save-model-type',
            'mg',
            '--target-tensor-parallel-size',
            '1',
            '--target-pipeline-parallel-size',
            '1',
            '--target-expert-parallel-size',
            String(weightsEp),
            '--use-mcore-models',
            '--model-type-hf',
            'mixtral',
            '--load-dir',
            path.join(DEMO, 'hf-tiny'),
            '--save-dir',
            weights,
            '--tokenizer-model',
            path.join(DEMO, 'hf-tiny', 'tokenizer.model'),
          ],
          { encoding: 'utf8', env: { ...process.env, MLEMU_CONVERT_TIME_MS: '5' } },
        );
  if (convert) expect(convert.status, convert.stderr).toBe(0);
  const base = fiveStageSpec(name, path.join(dir, 'ws'));
  const spec: RawSpec = {
    ...base,
    cluster: { nodes: 1, devicesPerNode: 2 },
    parallel: { tp: 1, pp: 1, ep: 2 },
    stages: [
      { name: 'data', kind: 'preprocess', input: path.join(DEMO, 'corpus.jsonl') },
      {
        name: 'pretrain',
        kind: 'pretrain',
        data: 'data',
        ...(convert ? { load: weights } : {}),
        trainIters: 30,
        saveInterval: 10,
        globalBatchSize: 8,
        args: { '--num-experts': '4', '--moe-router-topk': '2' },
        env: { MLEMU_FAULTS: 'crash@15' },
      },
    ],
  };
  return writeSpec(dir, spec);
}

describe('a MoE run with expert parallelism 2', () => {
  it.each([
    ['from scratch', undefined],
    ['from EP-sharded weights (mp_rank_00_000, mp_rank_00_001)', 2],
  ])('%s: resumes from its newest checkpoint, not from the start, and its output passes the check; a rerun skips it', async (_, weightsEp) => {
    const file = moeSpec(`moe-ep2-${weightsEp ?? 'scratch'}`, weightsEp);
    if (weightsEp) expect(fs.readdirSync(path.join(path.dirname(file), 'moe-weights', 'iter_0000001')).sort()).toEqual(['mp_rank_00_000', 'mp_rank_00_001']);
    const { state, failure } = await runSpec(t, file);
    expect(state.status, failure).toBe('succeeded');
    const pretrain = state.stages.find((s) => s.name === 'pretrain')!;
    expect(argvOf(pretrain.attempts[0].logFile!)).toEqual(expect.arrayContaining(['--expert-model-parallel-size', '2', '--num-experts', '4']));
    expect(pretrain.attempts.map((a) => a.outcome)).toEqual(['failed', 'succeeded']);
    expect(pretrain.attempts[0].failureClass).toBe('exception');
    // Not from scratch: the second attempt loaded iteration 10 from the save directory.
    expect(pretrain.attempts[1].loadedIteration).toBe(10);
    expect(valueOf(argvOf(pretrain.attempts[1].logFile!), '--load')).toBe(pretrain.output);
    expect(fs.readFileSync(pretrain.attempts[1].logFile!, 'utf8')).toMatch(/iteration {7}11\/ {6}30 \|/);
    expect(fs.readdirSync(path.join(pretrain.output, 'iter_0000030')).sort()).toEqual(['mp_rank_00_000', 'mp_rank_00_001']);
    expect(pretrain.finalIteration).toBe(30);

    // The finished stage's output is whole: running the pipeline again skips it.
    const again = await runSpec(t, file);
    expect(again.state.status, again.failure).toBe('succeeded');
    expect(again.state.stages.map((s) => s.status)).toEqual(['skipped', 'skipped']);
  });

  it('rejects weights without the expert shards before launch, naming the layout it needs', async () => {
    const { state } = await runSpec(t, moeSpec('moe-ep-mismatch', 1));
    expect(state.status).toBe('failed');
    const attempt = state.stages.find((s) => s.name === 'pretrain')!.attempts[0];
    expect(attempt.failureClass).toBe('missing-input');
    expect(attempt.reason).toMatch(
      /holds shards mp_rank_00 at iter_0000001, not the TP 1 × PP 1 × EP 2 layout this stage runs \(mp_rank_00_000, mp_rank_00_001\); add a convert stage that reshards it/,
    );
  });
});
