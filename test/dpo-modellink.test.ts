/**
 * A DPO pipeline as ModelLink d4feda79 runs it (the emulator's top-level root: trainer.py --stage dpo), crashing once
 * and resuming, on a real Temporal dev server; and the demo pipeline as ModelLink, a fine-tuning crash resumed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dpoSpec, fiveStageSpec, tempDir, writeSpec, type RawSpec } from '../testkit/specs.ts';
import { runSpec, startTestTemporal, type TestTemporal } from '../testkit/temporal.ts';

let t: TestTemporal;
beforeAll(async () => {
  t = await startTestTemporal();
});
afterAll(async () => {
  await t?.stop();
});

function argvOf(logFile: string): string[] {
  return JSON.parse(/^# argv: (.*)$/m.exec(fs.readFileSync(logFile, 'utf8'))![1]) as string[];
}

describe('ModelLink on the emulator', () => {
  it('runs a DPO pipeline through trainer.py --stage dpo; a crash resumes with the first reference model', async () => {
    const dir = tempDir('ml-dpo');
    const spec = dpoSpec('ml-dpo', path.join(dir, 'ws'), { trainIters: 20, saveInterval: 10, dpoEnv: { MLEMU_FAULTS: 'crash@13' } });
    const { state, failure } = await runSpec(t, writeSpec(dir, spec));
    expect(state.status, failure).toBe('succeeded');
    const pairs = state.stages.find((s) => s.name === 'pairs')!;
    for (const side of ['chosen', 'rejected'])
      for (const part of ['input_ids', 'labels']) expect(fs.existsSync(`${pairs.output}_packed_${side}_${part}_document.bin`)).toBe(true);
    const weights = state.stages.find((s) => s.name === 'weights')!;
    const dpo = state.stages.find((s) => s.name === 'dpo')!;
    expect(dpo.attempts.map((a) => a.outcome)).toEqual(['failed', 'succeeded']);
    const first = argvOf(dpo.attempts[0].logFile!);
    expect(first).toEqual(expect.arrayContaining(['trainer.py', '--stage', 'dpo', '--is-pairwise-dataset', '--finetune']));
    expect(first).not.toContain('posttrain_gpt.py');
    expect(dpo.attempts[1].loadedIteration).toBe(10);
    const resumed = argvOf(dpo.attempts[1].logFile!);
    // The policy resumes from its own checkpoints; the reference model stays the converted weights (without
    // --ref-model trainer.py would load the policy as reference), and --no-load-rng stays for those weights.
    expect(resumed).not.toContain('--finetune');
    expect(resumed[resumed.indexOf('--load') + 1]).toBe(dpo.output);
    expect(resumed[resumed.indexOf('--ref-model') + 1]).toBe(weights.output);
    expect(resumed).toContain('--no-load-rng');
    const log = fs.readFileSync(dpo.attempts[1].logFile!, 'utf8');
    expect(log).toMatch(/successfully loaded checkpoint from .*\/dpo\/checkpoints \[ t 0, p 0 \] at iteration 10/);
    expect(log).toContain(`successfully loaded checkpoint from ${weights.output} [ t 0, p 0 ] at iteration 1`);
    expect(log).toMatch(/\| rewards\/accuracies: .*\| lm loss: /);
    expect(dpo.finalIteration).toBe(20);
    const evaluate = state.stages.find((s) => s.name === 'evaluate')!;
    expect(JSON.parse(fs.readFileSync(evaluate.output, 'utf8')).results[0]).toMatchObject({ task: 'mmlu' });
  });

  it('runs the demo pipeline; a crash in fine-tuning resumes from its checkpoint', async () => {
    const dir = tempDir('ml-demo');
    const base = fiveStageSpec('ml-demo', path.join(dir, 'ws'), { trainIters: 20, saveInterval: 10 });
    const spec: RawSpec = {
      ...base,
      stages: base.stages.map((s) => (s.name === 'finetune' ? { ...s, env: { MLEMU_FAULTS: 'crash@15' } } : s)),
    };
    const { state, failure } = await runSpec(t, writeSpec(dir, spec));
    expect(state.status, failure).toBe('succeeded');
    const finetune = state.stages.find((s) => s.name === 'finetune')!;
    expect(finetune.attempts.map((a) => a.outcome)).toEqual(['failed', 'succeeded']);
    expect(finetune.attempts[1].loadedIteration).toBe(10);
    expect(argvOf(finetune.attempts[1].logFile!)).toEqual(expect.arrayContaining(['pretrain_gpt.py', '--is-instruction-dataset']));
    expect(finetune.finalIteration).toBe(20);
  });
});
