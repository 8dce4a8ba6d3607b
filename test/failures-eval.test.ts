/**
 * Failures and results as ModelLink prints them, in pipelines on a real Temporal dev server with the
 * emulator: a NaN loss that ModelLink's own check does not catch, and AGIEval's result line.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO, fiveStageSpec, tempDir, writeSpec } from '../testkit/specs.ts';
import { runSpec, startTestTemporal, type TestTemporal } from '../testkit/temporal.ts';
import { runCli } from '../testkit/cli.ts';

let t: TestTemporal;
beforeAll(async () => {
  t = await startTestTemporal();
});
afterAll(async () => {
  await t?.stop();
});

/** AGIEval's jsonl: passage, question, options, label, answer (agi_eval.py reads each). */
function agievalData(dir: string): string {
  const data = path.join(dir, 'agieval', 'test');
  fs.mkdirSync(data, { recursive: true });
  const item = (i: number) =>
    JSON.stringify({
      passage: i % 2 ? `Passage ${i}.` : null,
      question: `Question ${i}?`,
      options: ['(A)one', '(B)two', '(C)three', '(D)four'],
      label: 'ABCD'[i % 4],
      answer: null,
    });
  fs.writeFileSync(path.join(data, 'logiqa-en.jsonl'), Array.from({ length: 6 }, (_, i) => item(i)).join('\n') + '\n');
  fs.writeFileSync(path.join(data, 'sat-math.jsonl'), Array.from({ length: 4 }, (_, i) => item(i + 6)).join('\n') + '\n');
  return data;
}

describe('evaluation results as ModelLink prints them', () => {
  it('an agieval evaluate stage succeeds with its accuracy (AGIEval acc = a/b=x)', async () => {
    const dir = tempDir('agieval');
    const spec = fiveStageSpec('agieval', path.join(dir, 'ws'));
    spec.stages = [
      { name: 'weights', kind: 'convert', from: path.join(DEMO, 'hf-tiny') },
      { name: 'evaluate', kind: 'evaluate', load: 'weights', tasks: [{ name: 'agieval', dataPath: agievalData(dir) }] },
    ];
    const { state, failure } = await runSpec(t, writeSpec(dir, spec));
    expect(state.status, failure).toBe('succeeded');
    const evaluate = state.stages.find((s) => s.name === 'evaluate')!;
    const results = JSON.parse(fs.readFileSync(evaluate.output, 'utf8'));
    expect(results.results).toHaveLength(1);
    const [agieval] = results.results;
    expect(agieval).toMatchObject({ task: 'agieval', total: 10 });
    expect(agieval.accuracy).toBeCloseTo(agieval.correct / 10, 6);
    const log = fs.readFileSync(evaluate.attempts[0].logFile!, 'utf8');
    expect(log).toMatch(new RegExp(`AGIEval acc = ${agieval.correct}/10=\\d\\.\\d{6}e[-+]\\d\\d`));
  });
});

describe('NaN loss without ModelLink’s NaN check', () => {
  it('bf16 with --no-check-for-nan-in-loss-and-grad: the attempt is killed as nan-loss and the next resumes', async () => {
    const dir = tempDir('nan-unchecked');
    const spec = fiveStageSpec('nan-unchecked', path.join(dir, 'ws'), {
      trainIters: 30,
      saveInterval: 10,
      pretrainEnv: { MLEMU_FAULTS: 'nan@15', MLEMU_ITER_TIME_MS: '60' },
    });
    spec.stages = spec.stages.slice(0, 4).filter((s) => s.name !== 'sft-data');
    Object.assign(spec.stages[2], { args: { '--no-check-for-nan-in-loss-and-grad': true } });
    const { state, failure } = await runSpec(t, writeSpec(dir, spec));
    expect(state.status, failure).toBe('succeeded');
    const pretrain = state.stages.find((s) => s.name === 'pretrain')!;
    expect(pretrain.attempts.map((a) => [a.outcome, a.failureClass])).toEqual([
      ['failed', 'nan-loss'],
      ['succeeded', undefined],
    ]);
    expect(pretrain.attempts[0].reason).toContain('the loss became NaN at iteration 15');
    // Killed at the first line without a loss, before the checkpoint of iteration 20.
    expect(pretrain.attempts[0].lastIteration).toBeLessThan(20);
    expect(pretrain.attempts[1].loadedIteration).toBe(10);
    const firstLog = fs.readFileSync(pretrain.attempts[0].logFile!, 'utf8');
    expect(firstLog).toMatch(/iteration\s+15\/\s+30 \|(?!.*lm loss).*number of nan iterations:\s+0 \|/);
    // `linkflow diagnose` on the attempt's log says what the attempt said, with the status linkflow wrote.
    const diagnosed = await runCli(['diagnose', pretrain.attempts[0].logFile!, '--json']);
    expect(JSON.parse(diagnosed.stdout)).toMatchObject({ class: 'nan-loss', reason: pretrain.attempts[0].reason, exitStatus: { source: 'linkflow' } });
  });
});

describe('a root cause wins over its echoes', () => {
  it('rank 0 runs out of device memory and rank 1 then logs HCCL errors: the attempt is out-of-memory, not communication', async () => {
    const dir = tempDir('oom-echo');
    const spec = fiveStageSpec('oom-echo', path.join(dir, 'ws'), { trainIters: 20, saveInterval: 10, pretrainEnv: { MLEMU_FAULTS: 'oom@15' } });
    spec.cluster = { nodes: 1, devicesPerNode: 2 };
    spec.stages = spec.stages.slice(0, 4).filter((s) => s.name !== 'sft-data');
    const { state, failure } = await runSpec(t, writeSpec(dir, spec));
    expect(state.status, failure).toBe('succeeded');
    const pretrain = state.stages.find((s) => s.name === 'pretrain')!;
    expect(pretrain.attempts.map((a) => [a.outcome, a.failureClass])).toEqual([
      ['failed', 'out-of-memory'],
      ['succeeded', undefined],
    ]);
    expect(pretrain.attempts[0].reason).toMatch(/^RuntimeError: NPU out of memory/);
    // The echo is in the same log, after the cause.
    const log = fs.readFileSync(pretrain.attempts[0].logFile!, 'utf8');
    expect(log.search(/RuntimeError: \[Rank 1\] HCCL AllReduce (failed|timeout)/)).toBeGreaterThan(log.indexOf('NPU out of memory'));
    const diagnosed = await runCli(['diagnose', pretrain.attempts[0].logFile!, '--json']);
    expect(JSON.parse(diagnosed.stdout)).toMatchObject({
      class: 'out-of-memory',
      reason: pretrain.attempts[0].reason,
      exitStatus: { exitCode: 1, source: 'linkflow' },
    });
  });
});
