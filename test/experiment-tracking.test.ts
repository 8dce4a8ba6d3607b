/**
 * TensorBoard and W&B continuous across attempts: the flags and the run id a training stage gets, and
 * the emulator's real event files read back with TensorBoard's reader after a crash and resume.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { planPipeline, type StagePlan } from '../plan/plan.ts';
import { eventRecords, rewindOffset } from '../plan/tensorboard-events.ts';
import { fiveStageSpec, tempDir, writeSpec } from '../testkit/specs.ts';
import { readEventFile, readTensorBoard } from '../testkit/tensorboard.ts';
import { runSpec, startTestTemporal, type TestTemporal } from '../testkit/temporal.ts';

function planned(mutate: (spec: ReturnType<typeof fiveStageSpec>) => void, dir = tempDir('tracking-plan')): StagePlan[] {
  const spec = fiveStageSpec('tracking', path.join(dir, 'ws'));
  mutate(spec);
  const result = planPipeline(spec, { baseDir: dir });
  if (!result.ok) throw new Error(JSON.stringify(result.problems));
  return result.plan.stages;
}

const flagsOf = (s: StagePlan) => Object.fromEntries(s.args.map(([f, v]) => [f, v]));

describe('tracking flags', () => {
  it('training stages write TensorBoard events into <stage>/tensorboard by default; tensorboard: false turns it off', () => {
    const stages = planned(() => undefined);
    const pretrain = stages.find((s) => s.name === 'pretrain')!;
    expect(flagsOf(pretrain)).toMatchObject({ '--tensorboard-dir': path.join(pretrain.dir, 'tensorboard'), '--log-timers-to-tensorboard': null });
    // Not in the checkpoint directory, and nothing for other kinds of stage.
    expect(pretrain.training!.saveDir).not.toBe(path.join(pretrain.dir, 'tensorboard'));
    expect(stages.filter((s) => s.args.some(([f]) => f === '--tensorboard-dir')).map((s) => s.name)).toEqual(['pretrain', 'finetune']);
    const off = planned((spec) => Object.assign(spec.stages[3]!, { tensorboard: false })).find((s) => s.name === 'pretrain')!;
    expect(off.args.some(([f]) => f.includes('tensorboard'))).toBe(false);
  });

  it('wandb sets the W&B flags and a run id that is the same for a stage every time it is planned, different per stage', () => {
    const dir = tempDir('tracking-wandb');
    const withWandb = (spec: ReturnType<typeof fiveStageSpec>) => {
      Object.assign(spec.stages[3]!, { wandb: { project: 'llama' } });
      Object.assign(spec.stages[4]!, { wandb: { project: 'llama', name: 'sft-run' } });
    };
    const [a, b] = [planned(withWandb, dir), planned(withWandb, dir)];
    const pretrain = a.find((s) => s.name === 'pretrain')!;
    const finetune = a.find((s) => s.name === 'finetune')!;
    expect(flagsOf(pretrain)).toMatchObject({
      '--wandb-project': 'llama',
      '--wandb-exp-name': 'tracking-pretrain',
      '--wandb-save-dir': path.join(pretrain.dir, 'wandb'),
    });
    expect(flagsOf(finetune)['--wandb-exp-name']).toBe('sft-run');
    expect(pretrain.env).toMatchObject({ WANDB_RUN_ID: expect.stringMatching(/^linkflow-[0-9a-f]{16}$/), WANDB_RESUME: 'allow' });
    expect(b.find((s) => s.name === 'pretrain')!.env.WANDB_RUN_ID).toBe(pretrain.env.WANDB_RUN_ID);
    expect(finetune.env.WANDB_RUN_ID).not.toBe(pretrain.env.WANDB_RUN_ID);
    // Every flag exists in ModelLink's parser: the emulator (strict argparse) accepts them in the run below.
  });
});

describe('rewinding an event file', () => {
  /** A TFRecord of an Event { step, summary { value { tag, simple_value } } } (CRCs left zero: the reader does not need them). */
  const record = (step: number, tag: string): Buffer => {
    const value = Buffer.concat([Buffer.from([0x0a, tag.length]), Buffer.from(tag), Buffer.from([0x15, 0, 0, 0x80, 0x3f])]);
    const summary = Buffer.concat([Buffer.from([0x0a, value.length]), value]);
    const event = Buffer.concat([Buffer.from([0x10, step]), Buffer.from([0x2a, summary.length]), summary]);
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(event.length));
    return Buffer.concat([length, Buffer.alloc(4), event, Buffer.alloc(4)]);
  };

  it('cuts at the first record of an iteration after the loaded one; "vs samples" steps do not decide; a torn record ends the file', () => {
    const records = [record(29, 'lm loss'), record(120, 'lm loss vs samples'), record(30, 'lm loss'), record(124, 'lm loss vs samples'), record(31, 'lm loss')];
    const file = Buffer.concat([...records, record(32, 'lm loss').subarray(0, 10)]);
    const parsed = eventRecords(file);
    expect(parsed.map((r) => [r.step, r.tags[0]])).toEqual([
      [29, 'lm loss'],
      [120, 'lm loss vs samples'],
      [30, 'lm loss'],
      [124, 'lm loss vs samples'],
      [31, 'lm loss'],
    ]);
    expect(rewindOffset(parsed, 30)).toBe(records.slice(0, 4).reduce((n, r) => n + r.length, 0));
    expect(rewindOffset(parsed, 31)).toBeUndefined();
  });
});

describe('TensorBoard across a crash and a resume (real dev server, emulator)', () => {
  let t: TestTemporal;
  beforeAll(async () => {
    t = await startTestTemporal();
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('one series per scalar, every step once, after a crash at 35 and a resume from 30', async () => {
    const dir = tempDir('tracking');
    const spec = fiveStageSpec('tracking', path.join(dir, 'ws'), { trainIters: 60, saveInterval: 10, pretrainEnv: { MLEMU_FAULTS: 'crash@35' } });
    spec.stages = spec.stages.filter((s) => ['data', 'weights', 'pretrain'].includes(s.name as string));
    // W&B flags too: the emulator's argparse (ModelLink's flag list) must accept them.
    Object.assign(spec.stages[2]!, { wandb: { project: 'linkflow-test' }, evalInterval: 20, evalIters: 1 });
    const { state } = await runSpec(t, writeSpec(dir, spec));
    expect(state.status).toBe('succeeded');
    const pretrain = state.stages.find((s) => s.name === 'pretrain')!;
    expect(pretrain.attempts.map((a) => a.loadedIteration)).toEqual([undefined, 30]);

    const tbDir = path.join(dir, 'ws', 'tracking', 'pretrain', 'tensorboard');
    const files = fs.readdirSync(tbDir).sort();
    expect(files).toHaveLength(2);
    for (const f of files) expect(f).toMatch(/^events\.out\.tfevents\.\d{10}\.[^.]+/);
    // The raw files. The crashed attempt logged up to 34; before the resume from 30 linkflow moved its
    // file aside whole and left a copy up to 30; the resumed trainer's file starts right after 30.
    const superseded = fs.readdirSync(`${tbDir}-superseded`);
    expect(superseded).toHaveLength(1);
    expect(files[0]).toBe(`${superseded[0]}.upto-30`);
    const lmLoss = (file: string) => readEventFile(file).filter(([tag]) => tag === 'lm loss');
    expect(lmLoss(path.join(`${tbDir}-superseded`, superseded[0]!)).at(-1)![1]).toBe(34);
    expect(lmLoss(path.join(tbDir, files[0]!)).at(-1)![1]).toBe(30);
    expect(lmLoss(path.join(tbDir, files[1]!))[0]![1]).toBe(31);

    // What TensorBoard shows: one series per scalar, steps strictly increasing, none twice.
    const series = readTensorBoard(tbDir);
    const tags = Object.keys(series).sort();
    expect(tags).toEqual(
      [
        'grad-norm',
        'grad-norm vs samples',
        'iteration-time',
        'learning-rate',
        'learning-rate vs samples',
        'lm loss',
        'lm loss validation',
        'lm loss validation vs samples',
        'lm loss vs samples',
        'loss-scale',
        'loss-scale vs samples',
        'throughput',
      ].sort(),
    );
    // Megatron itself writes the last step of validation three times: the loop's evaluation at 60, then
    // the final validation and test evaluations under the same tags (core_r0.6.0 training.py pretrain()).
    expect(series['lm loss validation']!.map(([s]) => s)).toEqual([20, 40, 60, 60, 60]);
    for (const tag of tags.filter((t) => !t.startsWith('lm loss validation'))) {
      const steps = series[tag]!.map(([s]) => s);
      expect(new Set(steps).size, `${tag} has a step twice`).toBe(steps.length);
      expect(
        [...steps].sort((x, y) => x - y),
        `${tag} out of order`,
      ).toEqual(steps);
    }
    // Converted weights carry iteration 1 (ModelLink's convert_ckpt.py), so training logs 2..60.
    expect(series['lm loss']!.map(([s]) => s)).toEqual(Array.from({ length: 59 }, (_, i) => i + 2));
    // Against samples: the global batch (8) per iteration run.
    expect(series['lm loss vs samples']!.map(([s]) => s)).toEqual(Array.from({ length: 59 }, (_, i) => (i + 1) * 8));
    // The curve continues: the loss falls from the first iterations to the last.
    expect(series['lm loss']!.at(-1)![1]).toBeLessThan(series['lm loss']![0]![1]);
  });
});
