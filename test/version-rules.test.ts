/** Layout and preprocess rules that differ between MindSpeed-LLM versions (frameworks/modellink/rules.ts, plan/versions.ts). */
import { describe, expect, it } from 'vitest';
import { planPipeline } from '../plan/plan.ts';
import { fiveStageSpec, type RawSpec } from '../testkit/specs.ts';

function mslSpec(version: string, parallel: Record<string, unknown>, args: Record<string, unknown> = {}): RawSpec {
  const spec = fiveStageSpec('rules', '/tmp/ws');
  spec.modellink = { ...(spec.modellink as object), flavour: 'mindspeed-llm', version };
  spec.model = { preset: 'llama2-7b', impl: 'mcore', tokenizer: '/tmp/tok' };
  spec.cluster = { nodes: 1, devicesPerNode: 8 };
  spec.parallel = parallel;
  spec.stages = spec.stages.filter((s) => s.kind !== 'evaluate');
  for (const s of spec.stages) {
    if (s.globalBatchSize) s.globalBatchSize = 64;
    if (s.kind === 'pretrain' || s.kind === 'finetune') s.args = { ...(s.args as object), ...args };
  }
  return spec;
}

function problems(spec: RawSpec): string[] {
  const r = planPipeline(spec, { baseDir: '/tmp' });
  return r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.message}`);
}

const about = (spec: RawSpec, word: string) => problems(spec).filter((p) => p.includes(word));

describe('rules per MindSpeed-LLM version', () => {
  it('expert parallelism: EP divides data × context parallelism on core_r0.8.0, world ÷ (expert-TP × EP × PP) on core_v0.12.1', () => {
    // dp = 8 / 2 = 4: EP 8 does not divide it; on core_v0.12.1, 8 devices ÷ (expert-TP × 8) needs expert-TP 1.
    expect(about(mslSpec('2.1.0', { tp: 2, pp: 1, ep: 8 }), 'parallel.ep')).toEqual([
      'parallel.ep: expert parallel size 8 must divide data-parallel × context-parallel size 4 × 1 = 4 (data-parallel size = devices ÷ (tp × pp × cp))',
    ]);
    expect(about(mslSpec('2.3.0', { tp: 2, pp: 1, ep: 8 }), 'expert-tensor parallel 2 × expert parallel 8').length).toBeGreaterThan(0);
    // The expert groups span data × context parallel ranks (2.1.0 mindspeed_llm/core/parallel_state.py): dp 2 × cp 4 holds EP 8, dp 2 × cp 2 does not.
    expect(about(mslSpec('2.1.0', { tp: 1, pp: 1, cp: 4, ep: 8 }), 'parallel.ep')).toEqual([]);
    expect(about(mslSpec('1.0.0', { tp: 1, pp: 1, cp: 4, ep: 8 }), 'parallel.ep')).toEqual([]);
    expect(about(mslSpec('2.1.0', { tp: 2, pp: 1, cp: 2, ep: 8 }), 'parallel.ep')).toEqual([
      'parallel.ep: expert parallel size 8 must divide data-parallel × context-parallel size 2 × 2 = 4 (data-parallel size = devices ÷ (tp × pp × cp))',
    ]);
    // The generate stage passes no --expert-tensor-parallel-size, so its expert-TP is tp (2): refused once, for it.
    const etp1 = (version: string) => mslSpec(version, { tp: 2, pp: 1, ep: 8 }, { '--expert-tensor-parallel-size': '1' });
    expect(about(etp1('2.3.0'), 'expert')).toEqual([
      'parallel.ep: 8 devices must be divisible by expert-tensor parallel 2 × expert parallel 8 × pp 1 (Megatron core_v0.12.1 parallel_state.py; expert-TP is tp unless args set --expert-tensor-parallel-size)',
    ]);
    const trainingOnly = (spec: RawSpec) => Object.assign(spec, { stages: spec.stages.filter((s) => s.kind !== 'inference') });
    expect(about(trainingOnly(etp1('2.3.0')), 'expert')).toEqual([]);
    expect(about(trainingOnly(etp1('26.0.0')), 'expert')).toEqual([]);
    expect(about(trainingOnly(etp1('26.1.0')), 'expert')).toEqual([]);
    expect(about(trainingOnly(etp1('2.1.0')), 'parallel.ep')).toHaveLength(1);
  });

  it('context parallelism with variable sequence lengths: refused by 1.0.0 and 2.3.0, padded on 2.1.0, allowed on 26.0.0 and 26.1.0', () => {
    const cp = { tp: 1, pp: 2, cp: 2 };
    expect(about(mslSpec('1.0.0', cp), 'variable sequence lengths').length).toBe(1);
    expect(about(mslSpec('2.3.0', cp), 'variable sequence lengths').length).toBe(1);
    expect(about(mslSpec('2.2.0', cp), 'variable sequence lengths').length).toBe(1);
    expect(about(mslSpec('2.3.0', cp, { '--variable-seq-lengths': null }), 'variable sequence lengths')).toEqual([]);
    expect(about(mslSpec('26.0.0', cp), 'variable sequence lengths')).toEqual([]);
    expect(about(mslSpec('26.1.0', cp), 'variable sequence lengths')).toEqual([]);
    expect(about(mslSpec('2.1.0', cp), 'variable sequence lengths')).toEqual([]);
    const padded = about(mslSpec('2.1.0', cp, { '--pad-to-multiple-of': '3' }), 'pad-to-multiple-of');
    expect(padded).toHaveLength(1);
    expect(padded[0]).toMatch(/args\.--pad-to-multiple-of: .*mindspeed-llm 2\.1\.0 needs --pad-to-multiple-of \(3\) divisible by tp × cp = 2/);
  });

  it("layer rules count a stage's --num-layers", () => {
    expect(about(mslSpec('2.3.0', { tp: 2, pp: 2, numLayerList: [14, 16] }), 'numLayerList').length).toBe(1);
    expect(about(mslSpec('2.3.0', { tp: 2, pp: 2, numLayerList: [14, 16] }, { '--num-layers': '30' }), 'numLayerList')).toEqual([]);
  });

  it('preprocess handlers exist where the version’s data_handler.py has them', () => {
    const withHandler = (version: string, handler: string) => {
      const spec = mslSpec(version, { tp: 2, pp: 2 });
      const pre = spec.stages.find((s) => s.kind === 'preprocess')!;
      Object.assign(pre, { handler, promptType: 'llama2' });
      return about(spec, '.handler');
    };
    expect(withHandler('1.0.0', 'PPOAlpacaStyleInstructionHandler')[0]).toMatch(/has no PPOAlpacaStyleInstructionHandler; .*2\.1\.0/);
    expect(withHandler('2.3.0', 'PPOAlpacaStyleInstructionHandler')).toEqual([]);
    expect(withHandler('26.0.0', 'AlpacaStyleProcessRewardHandler')[0]).toMatch(/has no AlpacaStyleProcessRewardHandler/);
    expect(withHandler('2.1.0', 'AlpacaStyleProcessRewardHandler')).toEqual([]);
    // The lists are generated from each branch's data_handler.py (frameworks/mindspeed-llm/flag-names/<version>.json).
    expect(withHandler('26.1.0', 'SharegptPretrainHandler')).toEqual([]);
    expect(withHandler('26.1.0', 'AlpacaStyleProcessRewardHandler')[0]).toMatch(
      /26\.1\.0's data_handler\.py has no AlpacaStyleProcessRewardHandler; MindSpeed-LLM 2\.1\.0, MindSpeed-LLM 2\.2\.0 have it/,
    );
  });
});
