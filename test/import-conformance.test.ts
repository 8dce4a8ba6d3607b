/**
 * Fixes found by the MindSpeed-LLM conformance run (test/conformance-mindspeed.test.ts), each on the real
 * example script it came from (reference/mindspeed-llm/examples/<version>.json): pure, no servers.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { MINDSPEED_VERSIONS } from '../frameworks/mindspeed-llm/versions.ts';
import { getMindspeedPreset, mindspeedPresetNames } from '../frameworks/mindspeed-llm/presets.ts';
import { getPreset, presetNames } from '../frameworks/modellink/presets.ts';
import { resumeArgs } from '../frameworks/modellink/commands.ts';
import { importScript, renderStage } from '../import/import-script.ts';
import { planPipeline } from '../plan/plan.ts';
import { difference, parsedOf, type Example } from '../testkit/conformance.ts';
import { ROOT } from '../testkit/specs.ts';

const MSL = '/opt/MindSpeed-LLM';
type Json = Record<string, unknown>;

function example(version: string, script: string): Example {
  const doc = JSON.parse(fs.readFileSync(path.join(ROOT, 'reference', 'mindspeed-llm', 'examples', `${version}.json`), 'utf8')) as { scripts: Example[] };
  const e = doc.scripts.find((s) => s.script === script);
  if (!e) throw new Error(`${script} is not in ${version}.json`);
  return e;
}

function imported(version: string, script: string) {
  const e = example(version, script);
  return { e, r: importScript(parsedOf(e), { name: 'imported', root: MSL, scriptPath: e.script, framework: { flavour: 'mindspeed-llm', version } }) };
}

const problemsOf = (spec: Json) => {
  const r = planPipeline(spec, { baseDir: MSL });
  return r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.message}`);
};

describe('presets render each shape flag once', () => {
  it('no preset of either zoo repeats a flag in its architectureArgs (a script that repeats one gives it once, as argparse reads it)', () => {
    const all = [
      ...presetNames().map((n) => getPreset(n)!),
      ...MINDSPEED_VERSIONS.flatMap((v) => mindspeedPresetNames(v).map((n) => getMindspeedPreset(v, n)!)),
    ];
    expect(all.length).toBeGreaterThan(100);
    for (const p of all)
      for (const [impl, args] of Object.entries(p.architectureArgs)) {
        const flags = args.map(([f]) => f);
        expect(
          flags.filter((f, i) => flags.indexOf(f) !== i),
          `${p.name} ${impl}`,
        ).toEqual([]);
      }
  });

  it.each([
    ['2.3.0', 'examples/mcore/kimi2/pretrain_kimi2_18b_4k_8p_ptd.sh', '--use-rotary-position-embeddings'],
    ['26.0.0', 'examples/mcore/longcat/pretrain_longcat_flash_560b_4k_A3_ptd.sh', '--qk-layernorm'],
  ])('%s %s (passes %s twice) renders back', (version, script, repeated) => {
    const e = example(version, script);
    expect(e.args.filter(([f]) => f === repeated).length).toBe(2);
    expect(difference(e, MSL, { flavour: 'mindspeed-llm', version }).why).toBe('');
    const { r } = imported(version, script);
    const rendered = renderStage(r.spec, MSL);
    if (!rendered.ok) throw new Error(rendered.problems.join('\n'));
    expect(rendered.stage.args.filter(([f]) => f === repeated).length).toBe(1);
  });
});

describe('a deprecated flag name in a script', () => {
  const script = 'examples/mcore/qwen3_moe/dpo_qwen3_30b_a3b_16K_A3_ptd.sh';
  it.each(['2.3.0', '26.0.0'])(
    '%s: --moe-intermediate-size 768 is kept, passed as --moe-ffn-hidden-size (deprecated_args.py sets it from the old name)',
    (version) => {
      const { e, r } = imported(version, script);
      expect(e.args).toContainEqual(['--moe-intermediate-size', '768']);
      const rendered = renderStage(r.spec, MSL);
      if (!rendered.ok) throw new Error(rendered.problems.join('\n'));
      expect(rendered.stage.args).toContainEqual(['--moe-ffn-hidden-size', '768']);
      const args = ((r.spec.stages as Json[])[0].args ?? {}) as Json;
      expect(Object.keys(args)).not.toContain('--moe-intermediate-size');
      expect(difference(e, MSL, { flavour: 'mindspeed-llm', version }).why).toBe('');
    },
  );

  it('args giving both the old and the new name is a problem at the old one (which value wins would depend on their order)', () => {
    const { r } = imported('2.3.0', script);
    const stage = (r.spec.stages as Json[])[0];
    stage.args = { ...(stage.args as Json), '--moe-intermediate-size': '768', '--moe-ffn-hidden-size': null };
    expect(problemsOf(r.spec).join('\n')).toMatch(
      /stages\[0\]\.args\.--moe-intermediate-size: --moe-intermediate-size is MindSpeed-LLM 2\.3\.0's old name of --moe-ffn-hidden-size/,
    );
  });
});

describe('--tokenizer-type follows the version', () => {
  const script = 'examples/mcore/magistral/pretrain_magistral_small_24b_A3_ptd.sh';
  it.each(['2.3.0', '26.0.0', '26.1.0'])('%s: the magistral scripts import with MagistralTokenizer, on the magistral-24b preset', (version) => {
    for (const s of [
      script,
      'examples/mcore/magistral/tune_magistral_small_24b_full_A3_ptd.sh',
      'examples/mcore/magistral/generate_magistral_small_24b_ptd.sh',
    ]) {
      const { e, r } = imported(version, s);
      expect(r.preset, s).toBe('magistral-24b');
      expect(difference(e, MSL, { flavour: 'mindspeed-llm', version }).why, s).toBe('');
    }
    expect(getMindspeedPreset(version, 'magistral-24b')!.architecture.tokenizerType).toBe('MagistralTokenizer');
  });

  it('a tokenizer type the version does not have names the versions that do', () => {
    const { r } = imported('2.3.0', script);
    (r.spec.modellink as Json).version = '2.1.0';
    const stage = (r.spec.stages as Json[])[0];
    // The preset is 2.3.0's; on 2.1.0 a ModelLink-shaped preset of the zoo plans, with the stage asking for Magistral.
    (r.spec.model as Json).preset = 'llama2-7b';
    stage.tokenizerType = 'MagistralTokenizer';
    const problems = problemsOf(r.spec).join('\n');
    expect(problems).toMatch(
      /stages\[0\]\.tokenizerType: MindSpeed-LLM 2\.1\.0 has no --tokenizer-type MagistralTokenizer \(it takes [^)]*PretrainedFromHF[^)]*\); MindSpeed-LLM 2\.3\.0, MindSpeed-LLM 26\.0\.0, MindSpeed-LLM 26\.1\.0 have it/,
    );
    stage.tokenizerType = 'NoSuchTokenizer';
    expect(problemsOf(r.spec).join('\n')).toMatch(/has no --tokenizer-type NoSuchTokenizer .*; no version linkflow knows have it/);
    stage.tokenizerType = 'PretrainedFromHF';
    expect(problemsOf(r.spec).join('\n')).not.toMatch(/tokenizerType/);
  });

  it("a model written out (model.architecture) is checked too, and ModelLink takes its parser's eight", () => {
    const { r } = imported('2.3.0', script);
    r.spec.modellink = { root: MSL, python: 'python', launcher: 'torchrun' };
    const preset = getMindspeedPreset('2.3.0', 'magistral-24b')!;
    r.spec.model = { architecture: { ...preset.architecture }, impl: 'mcore', tokenizer: '/models/magistral' };
    const stage = (r.spec.stages as Json[])[0];
    stage.args = {};
    delete stage.tokenizerType;
    expect(problemsOf(r.spec).join('\n')).toMatch(/model\.architecture\.tokenizerType: ModelLink d4feda79 has no --tokenizer-type MagistralTokenizer/);
  });
});

describe('--position-embedding-type follows the version', () => {
  const script = 'examples/mcore/deepseek4_flash/tune_deepseek4_flash_4k_A3_ptd.sh';
  it('26.1.0: the deepseek4_flash tune script imports with positionEmbeddingType deepseek4 and renders back', () => {
    const { e, r } = imported('26.1.0', script);
    expect((r.spec.model as Json).architecture).toMatchObject({ positionEmbeddingType: 'deepseek4' });
    expect(difference(e, MSL, { flavour: 'mindspeed-llm', version: '26.1.0' }).why).toBe('');
  });

  it('a position embedding type the version does not have names the versions that do', () => {
    const { r } = imported('26.1.0', script);
    (r.spec.modellink as Json).version = '26.0.0';
    expect(problemsOf(r.spec).join('\n')).toMatch(
      /model\.architecture\.positionEmbeddingType: MindSpeed-LLM 26\.0\.0 has no --position-embedding-type deepseek4 \(it takes learned_absolute, rope, mrope, relative, none, alibi\); MindSpeed-LLM 26\.1\.0 have it/,
    );
    ((r.spec.model as Json).architecture as Json).positionEmbeddingType = 'mrope';
    r.spec.modellink = { root: MSL, python: 'python', launcher: 'torchrun' };
    expect(problemsOf(r.spec).join('\n')).toMatch(
      /model\.architecture\.positionEmbeddingType: ModelLink d4feda79 has no --position-embedding-type mrope \(it takes learned_absolute, rope, alibi\); MindSpeed-LLM 2\.2\.0, MindSpeed-LLM 2\.3\.0, MindSpeed-LLM 26\.0\.0, MindSpeed-LLM 26\.1\.0 have it/,
    );
  });
});

describe('preset matching by shape', () => {
  it('prefers a preset the script’s model type can run (an mcore 40 × 5120 script on 2.3.0 is not given legacy-only baichuan-13b)', () => {
    const e = example('2.3.0', 'examples/mcore/magistral/pretrain_magistral_small_24b_A3_ptd.sh');
    const r = importScript(parsedOf(e), { name: 'x', root: MSL, framework: { flavour: 'mindspeed-llm', version: '2.3.0' } });
    expect((r.spec.model as Json).impl).toBe('mcore');
    expect(r.preset).not.toBe('baichuan-13b');
  });
});

describe('pretrain_gpt.py with --finetune but no instruction data or LoRA', () => {
  it.each([
    ['1.0.0', 'examples/mcore/deepseek2_lite/pretrain_deepseek2_lite_16b_ptd_8p.sh'],
    ['2.1.0', 'examples/mcore/deepseek2_lite/pretrain_deepseek2_lite_16b_ptd_16p.sh'],
    ['2.3.0', 'examples/mcore/plm/pretrain_plm_1point8b_ptd.sh'],
    ['26.0.0', 'examples/mcore/deepseek2_lite/pretrain_deepseek2_lite_16b_ptd_8p.sh'],
  ])('%s %s is continued pretraining: a pretrain stage on pretrain_gpt.py that keeps --finetune, dropped on resume', (version, script) => {
    const { e, r } = imported(version, script);
    expect(r.kind).toBe('pretrain');
    const rendered = renderStage(r.spec, MSL);
    if (!rendered.ok) throw new Error(rendered.problems.join('\n'));
    expect(rendered.stage.entrypoint).toBe('pretrain_gpt.py');
    expect(rendered.stage.args).toContainEqual(['--finetune', null]);
    expect(rendered.stage.args.map(([f]) => f)).not.toContain('--is-instruction-dataset');
    expect(difference(e, MSL, { flavour: 'mindspeed-llm', version }).why).toBe('');
    // A resume continues from the stage's own checkpoint: its iteration and optimizer come back.
    const resumed = resumeArgs(rendered.stage.args, '/ws/checkpoints', false).map(([f]) => f);
    expect(resumed).not.toContain('--finetune');
    expect(resumed).not.toContain('--no-load-optim');
  });

  it('with --is-instruction-dataset it is still fine-tuning (1.0.0 baichuan2 tune script)', () => {
    const { r } = imported('1.0.0', 'examples/mcore/baichuan2/tune_baichuan2_13b_full_ptd.sh');
    expect(r.kind).toBe('finetune');
  });
});

describe("a converter's target layout", () => {
  it.each([
    ['2.1.0', 'examples/mcore/internlm3/ckpt_convert_internlm3_hf2mcore.sh', 4, 1],
    ['2.3.0', 'examples/mcore/internlm3/ckpt_convert_internlm3_hf2mcore.sh', 4, 1],
    ['2.3.0', 'examples/mcore/qwen3_moe/ckpt_convert_qwen3_moe_235b_hf2mcore.sh', 4, 8],
    ['26.0.0', 'examples/mcore/qwen3_moe/ckpt_convert_qwen3_moe_480b_hf2mcore.sh', 4, 2],
    ['26.0.0', 'examples/mcore/glm5/ckpt_convert_glm5_hf2mcore.sh', 8, 2],
  ])('%s %s: --num-layers-per-virtual-pipeline-stage is the convert stage’s (pp %i, vpp %i), not the pipeline’s', (version, script, pp, vpp) => {
    const { e, r } = imported(version, script);
    expect((r.spec.parallel as Json).vpp).toBeUndefined();
    expect((r.spec.stages as Json[])[0]).toMatchObject({ kind: 'convert', pp, vpp });
    expect(difference(e, MSL, { flavour: 'mindspeed-llm', version }).why).toBe('');
  });
});

describe('process-reward preprocessing', () => {
  it.each(['examples/mcore/llama2/data_convert_llama2_process_reward.sh', 'examples/mcore/mixtral/data_convert_mixtral_process_reward.sh'])(
    '2.1.0 %s needs no prompt type (AlpacaStyleProcessRewardHandler uses no chat template)',
    (script) => {
      const { e, r } = imported('2.1.0', script);
      expect((r.spec.stages as Json[])[0]).toMatchObject({ handler: 'AlpacaStyleProcessRewardHandler' });
      expect((r.spec.stages as Json[])[0].promptType).toBeUndefined();
      expect(difference(e, MSL, { flavour: 'mindspeed-llm', version: '2.1.0' }).why).toBe('');
    },
  );

  it('the templated handlers still need one', () => {
    const { r } = imported('2.1.0', 'examples/mcore/llama2/data_convert_llama2_process_reward.sh');
    (r.spec.stages as Json[])[0].handler = 'AlpacaStyleInstructionHandler';
    expect(problemsOf(r.spec).join('\n')).toMatch(/stages\[0\]\.promptType: AlpacaStyleInstructionHandler needs a prompt type/);
  });
});

describe('posttrain_gpt.py without --stage', () => {
  it.each([
    ['2.1.0', 'examples/mcore/mixtral/train_prm_mixtral_8x7B_full_ptd.sh'],
    ['1.0.0', 'examples/mcore/llama3/tune_llama3_8b_full_ptd.sh'],
  ])('%s %s is refused: no trainer runs (get_trainer returns None)', (version, script) => {
    const e = example(version, script);
    expect(e.args.map(([f]) => f)).not.toContain('--stage');
    expect(() => imported(version, script)).toThrow(
      /^cannot import posttrain_gpt\.py without --stage: linkflow runs the sft and dpo stages \(add --stage sft or --stage dpo\); .*runs no trainer/,
    );
  });

  it('a stage linkflow does not run is refused by name', () => {
    const e = example('2.1.0', 'examples/mcore/llama2/train_prm_llama2_7b_full_ptd.sh');
    expect(() => importScript(parsedOf(e), { name: 'x', root: MSL, framework: { flavour: 'mindspeed-llm', version: '2.1.0' } })).toThrow(
      /--stage prm: linkflow runs the sft and dpo stages \(prm is not a linkflow stage\)/,
    );
  });
});

describe('a convert stage’s target layout is checked as the converter lays it out', () => {
  const glm5 = () => imported('26.0.0', 'examples/mcore/glm5/ckpt_convert_glm5_hf2mcore.sh').r.spec;
  const stageOf = (spec: Json) => (spec.stages as Json[])[0];

  it('the layers are the HF model’s plus the stage’s --noop-layers (glm5: 78 + 2 over pp 8, vpp 2)', () => {
    const spec = glm5();
    expect(stageOf(spec).args).toMatchObject({ '--noop-layers': '78,79' });
    expect(problemsOf(spec)).toEqual([]);
    delete (stageOf(spec).args as Json)['--noop-layers'];
    expect(problemsOf(spec).join('\n')).toMatch(/stages\[0\]\.pp: target pipeline parallel size 8 must divide the 78 layers of glm5-744b/);
  });

  it('convert_ckpt_v2.py wants fewer layers per virtual stage than per pipeline stage, dividing them', () => {
    const spec = glm5();
    stageOf(spec).vpp = 10;
    expect(problemsOf(spec).join('\n')).toMatch(
      /stages\[0\]\.vpp: a virtual pipeline needs target pp > 1 and 10 layers per virtual stage fewer than and dividing the 10 layers/,
    );
    stageOf(spec).vpp = 3;
    expect(problemsOf(spec).join('\n')).toMatch(/stages\[0\]\.vpp: .*3 layers per virtual stage/);
    stageOf(spec).vpp = 5;
    expect(problemsOf(spec)).toEqual([]);
  });

  it('convert_ckpt_v2.py refuses a layer list with a virtual pipeline or noop layers; the list must fit pp and the layers', () => {
    const spec = glm5();
    stageOf(spec).numLayerList = [10, 10, 10, 10, 10, 10, 10, 10];
    const problems = problemsOf(spec).join('\n');
    expect(problems).toMatch(/stages\[0\]\.vpp: convert_ckpt_v2\.py refuses --num-layer-list with a virtual pipeline/);
    expect(problems).toMatch(/stages\[0\]\.args\.--noop-layers: convert_ckpt_v2\.py refuses --num-layer-list with --noop-layers/);
    stageOf(spec).numLayerList = [10, 10];
    expect(problemsOf(spec).join('\n')).toMatch(/stages\[0\]\.numLayerList: has 2 entries; the converter needs one per pipeline stage \(pp = 8\)/);
  });

  it('a virtual pipeline needs target pp > 1 (Megatron validate_args), also on convert_ckpt.py', () => {
    const { r } = imported('2.3.0', 'examples/mcore/internlm3/ckpt_convert_internlm3_hf2mcore.sh');
    expect(r.spec.modellink).toMatchObject({ converter: 'convert_ckpt.py' });
    expect(problemsOf(r.spec)).toEqual([]);
    stageOf(r.spec).pp = 1;
    expect(problemsOf(r.spec).join('\n')).toMatch(
      /stages\[0\]\.vpp: a virtual pipeline needs target pp > 1 and 1 layers per virtual stage dividing the 48 layers/,
    );
    // v1 runs Megatron's rule only: as many layers per virtual stage as per pipeline stage is allowed.
    stageOf(r.spec).pp = 4;
    stageOf(r.spec).vpp = 12;
    expect(problemsOf(r.spec)).toEqual([]);
  });

  it.each([
    ['examples/mcore/qwen3/ckpt_convert_qwen3_hf2mcore.sh', 8],
    ['examples/mcore/qwen3_moe/ckpt_convert_qwen3_moe_hf2mcore.sh', 8],
  ])('26.0.0 %s (no size in its name) is given a preset whose layers its target pp %i divides', (script, pp) => {
    const { e, r } = imported('26.0.0', script);
    expect(getMindspeedPreset('26.0.0', r.preset)!.architecture.numLayers % pp).toBe(0);
    expect(difference(e, MSL, { flavour: 'mindspeed-llm', version: '26.0.0' }).why).toBe('');
  });
});

describe('typed options read under the version’s new flag names', () => {
  it.each([
    ['examples/mcore/qwen3_moe/dpo_qwen3_30b_a3b_16K_A3_ptd.sh', '--npu-deterministic', (spec: Json) => spec.deterministic],
    ['examples/mcore/qwen25/tune_qwen25_3b_4k_lora_ptd.sh', '--use-ascend-mc2', (spec: Json) => (spec.communication as Json).mc2],
  ])('2.3.0 %s: %s is the typed option, not a verbatim flag', (script, flag, typed) => {
    const { e, r } = imported('2.3.0', script);
    expect(e.args.map(([f]) => f)).toContain(flag);
    expect(typed(r.spec)).toBe(true);
    expect(Object.keys(((r.spec.stages as Json[])[0].args ?? {}) as Json)).not.toContain(flag);
    expect(difference(e, MSL, { flavour: 'mindspeed-llm', version: '2.3.0' }).why).toBe('');
  });
});
