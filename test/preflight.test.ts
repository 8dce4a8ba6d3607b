/**
 * Issue 20's checks before anything runs (plan/preflight.ts, client/preflight.ts), what `stop` says it
 * will do (cli/stop-plan.ts), how status reads a pipeline that ended from outside (cli/progress.ts), and
 * the save-interval advice a user is given (plan/advise.ts). No server: plain functions and files.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { preflightSpecFile } from '../client/preflight.ts';
import { settledState, summaryText } from '../cli/progress.ts';
import { stopPlan, stopPlanText } from '../cli/stop-plan.ts';
import type { PipelineState, StageState } from '../contracts/run-state.ts';
import { adviseForUser, adviseSaveInterval, wallClockIterationMs, type RunObservations } from '../plan/advise.ts';
import { didYouMean, hfConfigMismatches, unfilledVariables } from '../plan/preflight.ts';
import { DEMO, fiveStageSpec, tempDir, writeSpec } from '../testkit/specs.ts';

describe('preflight', () => {
  it('lists every shell variable left by import, with its path', () => {
    const problems = unfilledVariables({
      model: { tokenizer: '${TOKENIZER_MODEL}' },
      stages: [{ data: '${DATA_PATH}/x', load: '$CKPT_LOAD_DIR' }, { input: 'plain' }],
    });
    expect(problems.map((p) => p.path)).toEqual(['model.tokenizer', 'stages[0].data', 'stages[0].load']);
    expect(problems[2].message).toContain('${CKPT_LOAD_DIR}');
  });

  it('guesses the stage a mistyped reference meant', () => {
    expect(didYouMean('weight', ['data', 'weights'])).toBe('weights');
    expect(didYouMean('./pretrian', ['pretrain', 'data'])).toBe('pretrain');
    expect(didYouMean('/data/llama-2-7b-hf', ['data', 'weights'])).toBeUndefined();
  });

  it('compares a HF config.json with the architecture: layers, hidden size, heads, vocabulary', () => {
    const arch = { numLayers: 32, hiddenSize: 4096, numAttentionHeads: 32, numQueryGroups: undefined, vocabSize: 32000 };
    const same = { num_hidden_layers: 32, hidden_size: 4096, num_attention_heads: 32, num_key_value_heads: 32, vocab_size: 32000 };
    expect(hfConfigMismatches('stages[1].from', 'c.json', same, arch, 'llama2-7b')).toEqual([]);
    const [problem] = hfConfigMismatches('stages[1].from', 'c.json', { ...same, num_hidden_layers: 40, vocab_size: 125696 }, arch, 'llama2-7b');
    expect(problem.path).toBe('stages[1].from');
    expect(problem.message).toContain('layers 40 (num_hidden_layers), llama2-7b has 32');
    expect(problem.message).toContain('vocabulary 125696 (vocab_size), llama2-7b has 32000');
    expect(problem.message).not.toContain('hidden size');
  });

  it('a spec file: a mistyped load is an error with "did you mean", HF weights of another model too, a missing absolute path a warning', () => {
    const dir = tempDir('preflight');
    const spec = fiveStageSpec('pf', path.join(dir, 'ws'));
    spec.stages = spec.stages.slice(0, 4);
    spec.stages[3].load = 'weight';
    spec.stages[0].input = path.join(dir, 'not-here.jsonl');
    const hf = path.join(dir, 'hf');
    fs.cpSync(path.join(DEMO, 'hf-tiny'), hf, { recursive: true });
    fs.writeFileSync(path.join(hf, 'config.json'), JSON.stringify({ num_hidden_layers: 4, hidden_size: 64, num_attention_heads: 4, vocab_size: 1000 }));
    spec.stages[2].from = hf;
    const result = preflightSpecFile(writeSpec(dir, spec));
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems.map((p) => p.path)).toEqual(['stages[3].load', 'stages[2].from']);
    expect(result.problems[0].message).toContain('did you mean `weights`?');
    expect(result.problems[1].message).toContain('layers 4 (num_hidden_layers), tiny has 2');
    expect(result.warnings.some((w) => w.path === 'stages[0].input')).toBe(false); // an input file, not a reference
  });

  it('a training stage without the exit signal handler is a warning that says what stop will do', () => {
    const dir = tempDir('preflight');
    const spec = fiveStageSpec('pf', path.join(dir, 'ws'));
    spec.stages = spec.stages.slice(0, 4);
    spec.stages[3].exitSignalHandler = false;
    const result = preflightSpecFile(writeSpec(dir, spec));
    expect(result.ok).toBe(true);
    const warning = result.warnings.find((w) => w.path === 'stages[3]');
    expect(warning?.message).toContain('`linkflow stop` then waits for its next save (every 10 iterations)');
  });
});

const stage = (over: Partial<StageState>): StageState => ({ name: 'pretrain', kind: 'pretrain', status: 'running', output: '/o', attempts: [], ...over });

describe('stop and status', () => {
  it('stop without the exit signal handler: waits for the next save, or --now says what is lost', () => {
    const plan = { stages: [{ name: 'pretrain', argv: ['pretrain_gpt.py'], training: { saveInterval: 10 } }] } as never;
    const snap = {
      workflowId: 'w',
      workflowStatus: 'RUNNING',
      state: { pipeline: 'p', status: 'running', currentStage: 'pretrain', stages: [stage({})] } as PipelineState,
      live: { stage: 'pretrain', attempt: 2, logFile: 'l', iteration: 47, lastCheckpoint: { iteration: 40, dir: 'd' } },
    };
    const stop = stopPlan(snap as never, plan);
    expect(stop).toMatchObject({ kind: 'no-handler', iteration: 47, lastCheckpoint: 40, saveInterval: 10 });
    expect(stopPlanText('w', stop, false)).toContain('waiting for its next save (iteration 50, every 10)');
    expect(stopPlanText('w', stop, false)).toContain('stopping now would lose 7 iterations since its last checkpoint (iteration 40)');
    expect(stopPlanText('w', stop, true)).toContain('stopping now: the 7 iterations since its last checkpoint (iteration 40) are lost');
    const saves = stopPlan(snap as never, { stages: [{ name: 'pretrain', argv: ['--exit-signal-handler'], training: { saveInterval: 10 } }] } as never);
    expect(saves.kind).toBe('saves');
  });

  it('a pipeline cancelled during a backoff shows its stage cancelled, not retrying', () => {
    const state: PipelineState = { pipeline: 'p', status: 'running', stages: [stage({ status: 'retrying' })] };
    expect(settledState({ workflowStatus: 'CANCELLED', state })?.stages[0].status).toBe('cancelled');
    expect(settledState({ workflowStatus: 'RUNNING', state })?.stages[0].status).toBe('retrying');
    expect(summaryText('w', state, undefined, { workflowId: 'w', workflowStatus: 'CANCELLED', state })).toMatch(/: cancelled\n.*cancelled/);
  });
});

describe('advice a user is given', () => {
  const observed: RunObservations = { runMs: 600_000, failures: 3, saveMs: 2_000, recoveryMs: 20_000, iterationMs: 200, saveInterval: 10 };

  it('never recommends an interval its own figures rank worse than the current one', () => {
    for (const saveInterval of [1, 5, 10, 50, 100, 200, 400, 1000]) {
      const a = adviseForUser({ ...observed, saveInterval })!;
      expect(a.wasteRecommended).toBeLessThanOrEqual(a.wasteNow);
      if (a.keep) expect(a.recommendedIterations).toBe(saveInterval);
    }
    // Daly's own recommendation can rank worse under the first-order model near the optimum; the user's is not.
    const raw = adviseSaveInterval({ ...observed, saveInterval: 150 })!;
    const user = adviseForUser({ ...observed, saveInterval: 150 })!;
    expect(user.wasteRecommended).toBeLessThanOrEqual(Math.min(raw.wasteNow, raw.wasteRecommended));
  });

  it('iteration time from the wall clock: iterations over running time less startup and saves', () => {
    const s = stage({
      attempts: [
        { attempt: 1, outcome: 'failed', startedAt: 0, endedAt: 12_000, lastIteration: 50, timings: { startupMs: 1_000, saveMsTotal: 1_000 } },
        { attempt: 2, outcome: 'succeeded', startedAt: 20_000, endedAt: 32_000, loadedIteration: 50, lastIteration: 100, timings: { startupMs: 2_000 } },
      ],
    });
    expect(wallClockIterationMs(s)).toBe((10_000 + 10_000) / 100);
  });
});
