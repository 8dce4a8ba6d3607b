/**
 * Frameworks and versions (issue 19): a pipeline names ModelLink or a MindSpeed-LLM version, and every
 * plan, flag check and rule follows it. Pure: plans only, no Temporal.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { allFrameworks, FRAMEWORK_VERSIONS, getFramework, type Entrypoint, type Framework } from '../frameworks/index.ts';
import { dpoResumeArgs, resumeArgs, warmLoraResumeArgs } from '../frameworks/modellink/commands.ts';
import { iterationOfDirName, resumePoint, type SaveDirView } from '../frameworks/modellink/checkpoint.ts';
import { parseLogLine } from '../frameworks/modellink/training-log.ts';
import { planPipeline, type StagePlan } from '../plan/plan.ts';
import { DEMO, dpoSpec, fiveStageSpec, onFramework, ROOT, tempDir, type RawSpec } from '../testkit/specs.ts';
import { findWarmResumePoint, warmOutputDir } from '../activities/checkpoints.ts';

const MSL = FRAMEWORK_VERSIONS['mindspeed-llm'];

function plan(spec: RawSpec) {
  const r = planPipeline(spec, { baseDir: '/tmp' });
  if (!r.ok) throw new Error(r.problems.map((p) => `${p.path}: ${p.message}`).join('\n'));
  return r.plan;
}

function problems(spec: RawSpec): string[] {
  const r = planPipeline(spec, { baseDir: '/tmp' });
  return r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.message}`);
}

const stage = (stages: StagePlan[], name: string) => stages.find((s) => s.name === name)!;
const flags = (s: StagePlan) => s.args.map(([f]) => f);
const arg = (s: StagePlan, f: string) => s.args.find(([g]) => g === f)?.[1];

/** Every flag of every stage exists in the version's parser of that stage's entrypoint. */
function expectKnownFlags(framework: Framework, stages: StagePlan[]): void {
  for (const s of stages) {
    const unknown = flags(s).filter((f) => !framework.isKnownFlag(s.entrypoint, f));
    expect(unknown, `${framework.name} ${s.name} (${s.entrypoint})`).toEqual([]);
  }
}

describe('a pipeline per framework version', () => {
  it('defaults to ModelLink and plans the demo exactly as before', () => {
    const p = plan(fiveStageSpec('ml', '/tmp/ws'));
    expect(p.framework).toEqual({ flavour: 'modellink', version: 'd4feda79' });
    expect(stage(p.stages, 'finetune').entrypoint).toBe('pretrain_gpt.py');
    expect(flags(stage(p.stages, 'finetune'))).not.toContain('--stage');
    expect(flags(stage(p.stages, 'pretrain'))).not.toContain('--ckpt-format');
  });

  it.each(MSL)('MindSpeed-LLM %s: every flag each stage of the demo and of a DPO pipeline emits is in that version’s parser', (version) => {
    const framework = getFramework({ flavour: 'mindspeed-llm', version })!;
    const demo = plan(onFramework(fiveStageSpec('msl', '/tmp/ws'), 'mindspeed-llm', version));
    expectKnownFlags(framework, demo.stages);
    const dpo = plan(onFramework(dpoSpec('dpo', '/tmp/ws'), 'mindspeed-llm', version));
    expectKnownFlags(framework, dpo.stages);
    expect(stage(demo.stages, 'finetune').entrypoint).toBe('posttrain_gpt.py');
    expect(arg(stage(demo.stages, 'finetune'), '--stage')).toBe('sft');
    expect(stage(dpo.stages, 'dpo').entrypoint).toBe('posttrain_gpt.py');
    expect(arg(stage(dpo.stages, 'dpo'), '--stage')).toBe('dpo');
    expect(flags(stage(dpo.stages, 'dpo'))).toEqual(expect.arrayContaining(['--is-pairwise-dataset', '--dpo-loss-type', '--is-instruction-dataset']));
  });

  it('ModelLink runs DPO through trainer.py --stage dpo, with its own flags', () => {
    const p = plan(dpoSpec('dpo', '/tmp/ws'));
    const dpo = stage(p.stages, 'dpo');
    expect(dpo.entrypoint).toBe('trainer.py');
    expect(arg(dpo, '--stage')).toBe('dpo');
    expectKnownFlags(getFramework({ flavour: 'modellink', version: 'd4feda79' })!, p.stages);
    // Pairwise data is its own kind: a finetune stage cannot read it, a dpo stage needs it.
    const wrong = dpoSpec('dpo', '/tmp/ws');
    wrong.stages[2] = { ...wrong.stages[2], kind: 'finetune' };
    expect(problems(wrong).join('\n')).toMatch(/stages\[2\]\.data: stage "pairs" produces pairwise-data, but this field needs instruction-data/);
  });

  it('plans a DPO resume that keeps the reference model at the first load (and --no-load-rng where the reference needs it)', () => {
    for (const [spec, keepNoLoadRng] of [
      [dpoSpec('dpo', '/tmp/ws'), true],
      [onFramework(dpoSpec('dpo', '/tmp/ws'), 'mindspeed-llm', '1.0.0'), true],
      [onFramework(dpoSpec('dpo', '/tmp/ws'), 'mindspeed-llm', '2.3.0'), false],
    ] as const) {
      const dpo = stage(plan(spec).stages, 'dpo');
      const weights = stage(plan(spec).stages, 'weights');
      expect(dpo.training?.dpoReference).toEqual({ load: weights.output, keepNoLoadRng });
      const resumed = dpoResumeArgs(resumeArgs(dpo.args, dpo.output, false), dpo.training!.dpoReference!);
      const names = resumed.map(([f]) => f);
      expect(resumed[names.indexOf('--load')][1]).toBe(dpo.output);
      expect(resumed[names.indexOf('--ref-model')][1]).toBe(weights.output);
      expect(names.includes('--no-load-rng')).toBe(keepNoLoadRng);
      expect(names).not.toContain('--finetune');
    }
    // A fine-tuning stage has no reference model.
    expect(stage(plan(fiveStageSpec('ft', '/tmp/ws')).stages, 'finetune').training?.dpoReference).toBeUndefined();
  });

  it('asks for mcore before MindSpeed-LLM 2.3.0 (2.2.0) and for legacy from it (the default flips)', () => {
    const on = (version: string, impl: 'mcore' | 'legacy') => {
      const spec = onFramework(fiveStageSpec('m', '/tmp/ws'), 'mindspeed-llm', version);
      (spec.model as Record<string, unknown>).impl = impl;
      return flags(stage(plan(spec).stages, 'pretrain'));
    };
    expect(on('2.1.0', 'mcore')).toContain('--use-mcore-models');
    expect(on('2.1.0', 'legacy')).not.toContain('--use-mcore-models');
    expect(on('2.3.0', 'mcore')).not.toContain('--use-mcore-models');
    expect(on('2.3.0', 'mcore')).not.toContain('--use-legacy-models');
    expect(on('2.3.0', 'legacy')).toContain('--use-legacy-models');
  });

  it('pins --ckpt-format torch on core_v0.12.1; torch_dist is passed when asked (pretraining only), with a warning where the version writes torch anyway', () => {
    const spec = onFramework(fiveStageSpec('f', '/tmp/ws'), 'mindspeed-llm', '2.3.0');
    const p = plan(spec);
    expect(arg(stage(p.stages, 'pretrain'), '--ckpt-format')).toBe('torch');
    expect(arg(stage(p.stages, 'finetune'), '--ckpt-format')).toBe('torch');
    expect(arg(stage(p.stages, 'evaluate'), '--ckpt-format')).toBeUndefined();
    expect(flags(stage(plan(onFramework(fiveStageSpec('f', '/tmp/ws'), 'mindspeed-llm', '2.1.0')).stages, 'pretrain'))).not.toContain('--ckpt-format');
    // Asked for: emitted, and validated with a warning naming the reset (2.3.0 _add_dummy_args_v2).
    for (const [version, at] of [
      ['2.2.0', 'mindspeed_llm/training/arguments.py#L1321-1322'],
      ['2.3.0', 'mindspeed_llm/training/arguments.py#L1289-1290'],
      ['26.0.0', 'mindspeed_llm/training/arguments.py#L112-113'],
    ]) {
      const dist = onFramework(fiveStageSpec('f', '/tmp/ws'), 'mindspeed-llm', version);
      Object.assign(dist.stages[3], { checkpointFormat: 'torch_dist' });
      const r = planPipeline(dist, { baseDir: '/tmp' });
      if (!r.ok) throw new Error(r.problems.map((x) => x.message).join('\n'));
      expect(arg(stage(r.plan.stages, 'pretrain'), '--ckpt-format')).toBe('torch_dist');
      const warned = r.warnings.filter((w) => w.path === 'stages[3].checkpointFormat').map((w) => w.message);
      expect(warned).toHaveLength(1);
      expect(warned[0]).toContain(`MindSpeed-LLM ${version} validates --ckpt-format torch_dist but writes torch checkpoints: ${at}`);
    }
    Object.assign(spec.stages[3], { checkpointFormat: 'torch_dist', asyncSave: true });
    Object.assign(spec.stages[4], { checkpointFormat: 'torch_dist', asyncSave: true });
    expect(problems(spec)).toEqual([
      'stages[3].asyncSave: MindSpeed-LLM 2.3.0 turns use_dist_ckpt off after validation (mindspeed_llm/training/arguments.py#L1289-1290 (_add_dummy_args_v2, called at #L1507)), so the first save raises "NotImplementedError: Async checkpoint save not implemented for legacy checkpoints" (Megatron core_v0.12.1 megatron/training/checkpointing.py#L396-397); remove asyncSave',
      'stages[4].checkpointFormat: torch_dist is for pretraining only (MindSpeed-LLM async_save_torch_dist.md); stage finetune is finetune',
      'stages[4].asyncSave: async save is for pretraining only (MindSpeed-LLM async_save_torch_dist.md: not LoRA, SFT or DPO)',
    ]);
    Object.assign(spec.stages[4], { checkpointFormat: undefined });
    expect(problems(spec)).toContain('stages[4].asyncSave: async save writes torch_dist checkpoints only: set checkpointFormat: torch_dist');
    const ml = fiveStageSpec('f', '/tmp/ws');
    Object.assign(ml.stages[3], { checkpointFormat: 'torch_dist' });
    expect(problems(ml)).toEqual([
      "stages[3].checkpointFormat: --ckpt-format is Megatron core_v0.12.1's; ModelLink d4feda79 runs core_r0.6.0 (linkflow passes torch_dist on MindSpeed-LLM 2.2.0, MindSpeed-LLM 2.3.0, MindSpeed-LLM 26.0.0, MindSpeed-LLM 26.1.0)",
    ]);
  });

  it('a mindspeed-llm pipeline without a version is planned as the maintained release, with a warning to name the checkout', () => {
    const r = planPipeline(onFramework(fiveStageSpec('f', '/tmp/ws'), 'mindspeed-llm'), { baseDir: '/tmp' });
    if (!r.ok) throw new Error(r.problems.map((x) => x.message).join('\n'));
    expect(r.warnings.filter((w) => w.path === 'modellink.version').map((w) => w.message)).toEqual([
      `no version given: planned as MindSpeed-LLM 26.1.0, the release MindSpeed-LLM maintains; set modellink.version to your checkout's (${FRAMEWORK_VERSIONS['mindspeed-llm'].join(', ')}) so flags and resume rules match it`,
    ]);
    const named = planPipeline(onFramework(fiveStageSpec('f', '/tmp/ws'), 'mindspeed-llm', '2.3.0'), { baseDir: '/tmp' });
    if (!named.ok) throw new Error(named.problems.map((x) => x.message).join('\n'));
    expect(named.warnings.filter((w) => w.path === 'modellink.version')).toEqual([]);
  });

  it('on 26.1.0, which honours --ckpt-format, pins torch and takes torch_dist and async save for pretraining; a convert or LoRA stage reading that checkpoint is refused', () => {
    const spec = onFramework(fiveStageSpec('f', '/tmp/ws'), 'mindspeed-llm', '26.1.0');
    expect(arg(stage(plan(spec).stages, 'pretrain'), '--ckpt-format')).toBe('torch');
    Object.assign(spec.stages[3], { checkpointFormat: 'torch_dist', asyncSave: true });
    // A fine-tune loading it with the pinned --ckpt-format torch: Megatron refuses a distributed checkpoint without auto-detection.
    const loadsDist =
      'stages[4].load: stage finetune loads stage pretrain\'s torch_dist checkpoint with linkflow\'s --ckpt-format torch, and Megatron core_v0.12.1 refuses that ("Detected load from a distributed checkpoint, but neither --use-dist-ckpt nor --auto-detect-ckpt-format is set", megatron/training/checkpointing.py _load_global_dist_base_checkpoint): set checkpointFormat: torch on stage pretrain (and drop asyncSave)';
    expect(problems(spec)).toEqual([loadsDist]);
    spec.stages = spec.stages.slice(0, 4);
    const r = planPipeline(spec, { baseDir: '/tmp' });
    if (!r.ok) throw new Error(r.problems.map((x) => x.message).join('\n'));
    const pretrain = stage(r.plan.stages, 'pretrain');
    expect(arg(pretrain, '--ckpt-format')).toBe('torch_dist');
    expect(flags(pretrain)).toContain('--async-save');
    expect(r.warnings.filter((w) => w.path.startsWith('stages[3]'))).toEqual([]);
    // Fine-tuning keeps its refusal.
    const ft = onFramework(fiveStageSpec('f', '/tmp/ws'), 'mindspeed-llm', '26.1.0');
    Object.assign(ft.stages[4], { checkpointFormat: 'torch_dist', asyncSave: true });
    expect(problems(ft)).toEqual([
      'stages[4].checkpointFormat: torch_dist is for pretraining only (MindSpeed-LLM async_save_torch_dist.md); stage finetune is finetune',
      'stages[4].asyncSave: async save is for pretraining only (MindSpeed-LLM async_save_torch_dist.md: not LoRA, SFT or DPO)',
    ]);
    // An export of the pretrained checkpoint: the converters read mp_rank_* only.
    const exp = onFramework(fiveStageSpec('f', '/tmp/ws'), 'mindspeed-llm', '26.1.0');
    Object.assign(exp.stages[3], { checkpointFormat: 'torch_dist' });
    exp.stages.push({ name: 'export', kind: 'convert', from: 'pretrain', to: 'hf', hfDir: path.join(DEMO, 'hf-tiny') });
    expect(problems(exp)).toEqual([
      loadsDist,
      "stages[7].from: stage export converts stage pretrain's checkpoint, which MindSpeed-LLM 26.1.0 writes as torch_dist (.distcp files), and MindSpeed-LLM 26.1.0's convert_ckpt_v2.py reads the per-rank torch layout only (mindspeed_llm/tasks/checkpoint/convert_mg2hf.py#L416-424), and linkflow runs convert_ckpt.py with its --ckpt-format default torch (convert_ckpt.py#L134) and has not verified its torch_dist loading: set checkpointFormat: torch on stage pretrain (and drop asyncSave)",
    ]);
    // The same export on 2.3.0, which writes torch whatever was asked, is fine.
    const old = onFramework(fiveStageSpec('f', '/tmp/ws'), 'mindspeed-llm', '2.3.0');
    Object.assign(old.stages[3], { checkpointFormat: 'torch_dist' });
    old.stages.push({ name: 'export', kind: 'convert', from: 'pretrain', to: 'hf', hfDir: path.join(DEMO, 'hf-tiny') });
    expect(problems(old)).toEqual([]);
    // LoRA on it: its resume view links the base's per-rank files.
    Object.assign(exp.stages[4], { lora: { r: 8, alpha: 16 } });
    exp.stages.pop();
    expect(problems(exp)).toEqual([
      "stages[4].load: stage finetune is LoRA on stage pretrain's torch_dist checkpoint; a LoRA resume shows the base's mp_rank_*/model_optim_rng.pt under the LoRA checkpoint (loraResumeView), which torch_dist does not have: set checkpointFormat: torch on stage pretrain (and drop asyncSave)",
    ]);
  });

  it('checks --use-torch-fsdp2 against Megatron core_v0.12.1: torch_dist, no distributed optimizer, pp and ep 1, CUDA_DEVICE_MAX_CONNECTIONS above 1', () => {
    const spec = onFramework(fiveStageSpec('f', '/tmp/ws'), 'mindspeed-llm', '2.3.0');
    spec.stages = spec.stages.filter((s) => s.kind !== 'finetune' && s.kind !== 'evaluate' && s.kind !== 'inference');
    const pretrain = spec.stages.find((s) => s.kind === 'pretrain')!;
    const i = spec.stages.indexOf(pretrain);
    Object.assign(pretrain, { args: { '--use-torch-fsdp2': null } });
    spec.parallel = { tp: 1, pp: 2, ep: 1, distributedOptimizer: true };
    const why = '(Megatron core_v0.12.1 megatron/training/arguments.py#L510-528)';
    expect(problems(spec).filter((p) => p.includes('fsdp2') || p.includes('FSDP'))).toEqual([
      `parallel.pp: --use-torch-fsdp2 is not supported with pipeline parallelism ${why}`,
      `parallel.distributedOptimizer: --use-torch-fsdp2 is not supported with Megatron's distributed optimizer: set it to false ${why}`,
      `stages[${i}].checkpointFormat: --use-torch-fsdp2 requires --ckpt-format torch_dist: set checkpointFormat: torch_dist ${why}`,
      `stages[${i}].env.CUDA_DEVICE_MAX_CONNECTIONS: FSDP needs CUDA_DEVICE_MAX_CONNECTIONS above 1 and linkflow's training stages set 1: set it (e.g. "2", as the examples' fsdp2 scripts do) ${why}`,
    ]);
    spec.parallel = { tp: 1, pp: 1, ep: 1, distributedOptimizer: false };
    Object.assign(pretrain, { checkpointFormat: 'torch_dist', env: { CUDA_DEVICE_MAX_CONNECTIONS: '2' } });
    const p = plan(spec);
    expect(arg(stage(p.stages, 'pretrain'), '--ckpt-format')).toBe('torch_dist');
    expect(stage(p.stages, 'pretrain').env.CUDA_DEVICE_MAX_CONNECTIONS).toBe('2');
  });

  it('refuses a verbatim argument outside its parser’s choices, as argparse would', () => {
    const spec = onFramework(fiveStageSpec('f', '/tmp/ws'), 'mindspeed-llm', '1.0.0');
    const convert = spec.stages.findIndex((s) => s.kind === 'convert');
    const pretrain = spec.stages.findIndex((s) => s.kind === 'pretrain');
    Object.assign(spec.stages[convert], { args: { '--save-model-type': 'save_huggingface_llama' } });
    Object.assign(spec.stages[pretrain], { args: { '--prompt-type': '${PROMPT}' } });
    expect(problems(spec).filter((p) => p.includes('is not one of'))).toEqual([
      `stages[${convert}].args.--save-model-type: save_huggingface_llama is not one of hf, mg (MindSpeed-LLM 1.0.0's convert_ckpt.py parser)`,
    ]);
  });

  it('names an unknown version with the ones linkflow knows', () => {
    expect(problems(onFramework(fiveStageSpec('v', '/tmp/ws'), 'mindspeed-llm', '9.9.9'))).toEqual([
      `modellink.version: linkflow does not know mindspeed-llm 9.9.9; the versions it drives: ${MSL.join(', ')}`,
    ]);
  });

  it('refuses what the version lacks and names the versions that have it', () => {
    const cmmlu = fiveStageSpec('e', '/tmp/ws');
    Object.assign(cmmlu.stages[5], { tasks: [{ name: 'cmmlu', dataPath: path.join(DEMO, 'cmmlu', 'test') }] });
    expect(problems(cmmlu)).toContain(
      "stages[5].tasks[0].name: ModelLink d4feda79's evaluation.py has no task cmmlu; MindSpeed-LLM 2.1.0, MindSpeed-LLM 2.2.0, MindSpeed-LLM 2.3.0, MindSpeed-LLM 26.0.0, MindSpeed-LLM 26.1.0 have it",
    );
    expect(problems(onFramework(cmmlu, 'mindspeed-llm', '2.3.0'))).toEqual([]);
    const logProbs = onFramework(fiveStageSpec('i', '/tmp/ws'), 'mindspeed-llm', '2.3.0');
    Object.assign(logProbs.stages[6], { tasks: ['return_output_log_probs'] });
    expect(problems(logProbs)).toEqual([
      "stages[6].tasks[0]: MindSpeed-LLM 2.3.0's inference.py has no task return_output_log_probs; ModelLink d4feda79 have it",
    ]);
  });

  it('accepts a renamed flag under its old name and passes the new one', () => {
    const spec = onFramework(fiveStageSpec('r', '/tmp/ws'), 'mindspeed-llm', '2.3.0');
    Object.assign(spec.stages[3], { args: { '--use-mc2': true } });
    (spec as Record<string, unknown>).deterministic = true;
    const pretrain = stage(plan(spec).stages, 'pretrain');
    expect(flags(pretrain)).toEqual(expect.arrayContaining(['--use-ascend-mc2', '--npu-deterministic']));
    expect(flags(pretrain)).not.toEqual(expect.arrayContaining(['--use-mc2']));
    expect(flags(pretrain)).not.toEqual(expect.arrayContaining(['--use-deter-comp']));
  });

  it('checks high availability against the version: its flags, LoRA', () => {
    const spec = onFramework(fiveStageSpec('ha', '/tmp/ws'), 'mindspeed-llm', '2.3.0');
    Object.assign(spec, { cluster: { nodes: 1, devicesPerNode: 4 }, highAvailability: { enabled: true, optimizerStateLocalCopy: true } });
    Object.assign(spec.stages[4], { lora: { r: 8, alpha: 16 } });
    const found = problems(spec);
    expect(found).toContain(
      'highAvailability.optimizerStateLocalCopy: MindSpeed-LLM 2.3.0 has no --enable-optimizer-state-local-copy; it exists in ModelLink d4feda79, MindSpeed-LLM 2.1.0',
    );
    expect(found).toContain(
      'stages[4].lora: MindSpeed-LLM 2.3.0 refuses high availability with LoRA (high_availability.py: base models only); turn highAvailability off or train without lora',
    );
  });

  it('passes HA flags and HIGH_AVAILABILITY where the version has them, and names the versions that do otherwise', () => {
    const ha = (version: string, highAvailability: Record<string, unknown>) => {
      const spec = onFramework(fiveStageSpec('ha', '/tmp/ws'), 'mindspeed-llm', version);
      return Object.assign(spec, { cluster: { nodes: 1, devicesPerNode: 4 }, highAvailability: { enabled: true, ...highAvailability } });
    };
    const pretrain = stage(plan(ha('2.3.0', { strategies: ['dump', 'retry'], hbmFaultRepair: true })).stages, 'pretrain');
    expect(pretrain.env.HIGH_AVAILABILITY).toBe('dump,retry');
    expect(flags(pretrain)).toEqual(expect.arrayContaining(['--enable-high-availability', '--enable-hbmfault-repair', '--ckpt-format']));
    expect(arg(pretrain, '--ckpt-format')).toBe('torch');
    expect(problems(ha('2.1.0', { strategies: ['dump'] }))).toEqual([
      'highAvailability.strategies: MindSpeed-LLM 2.1.0 does not read HIGH_AVAILABILITY; MindSpeed-LLM 2.2.0, MindSpeed-LLM 2.3.0, MindSpeed-LLM 26.0.0, MindSpeed-LLM 26.1.0 do (or set the flags: hbmFaultRepair, workerReboot, elasticTraining)',
    ]);
    expect(problems(ha('1.0.0', { noReplica: true }))).toContain(
      "stages[3]: this stage needs --distributed-optimizer-no-replica, which MindSpeed-LLM 1.0.0's pretrain_gpt.py does not define; it exists in MindSpeed-LLM 2.2.0, MindSpeed-LLM 2.3.0, MindSpeed-LLM 26.0.0, MindSpeed-LLM 26.1.0",
    );
    // One device: the replica optimizer has no data-parallel group to split.
    const single = ha('2.3.0', {});
    Object.assign(single, { cluster: { nodes: 1, devicesPerNode: 1 } });
    expect(problems(single).join('\n')).toMatch(/highAvailability\.enabled: the replica optimizer of high availability splits the data-parallel group/);
  });
});

describe('converters by version', () => {
  /** A model convert_ckpt_v2.py knows (qwen3), written as an architecture. */
  const qwen3 = (spec: RawSpec): RawSpec => ({
    ...spec,
    model: {
      architecture: {
        numLayers: 2,
        hiddenSize: 64,
        ffnHiddenSize: 128,
        numAttentionHeads: 4,
        maxPositionEmbeddings: 256,
        seqLength: 128,
        hfModelType: 'qwen3',
      },
      impl: 'mcore',
      tokenizer: path.join(DEMO, 'hf-tiny'),
    },
  });
  const roundTrip = (spec: RawSpec): RawSpec => ({
    ...spec,
    stages: [...spec.stages.slice(0, 5), { name: 'export', kind: 'convert', from: 'finetune', to: 'hf', hfDir: path.join(DEMO, 'hf-tiny') }],
  });

  it('ModelLink and MindSpeed-LLM before 2.3.0 convert with convert_ckpt.py; 2.3.0 on with v2 where it knows the model', () => {
    expect(stage(plan(roundTrip(fiveStageSpec('c', '/tmp/ws'))).stages, 'weights').entrypoint).toBe('convert_ckpt.py');
    // tiny is a llama2: 2.3.0's v2 does not know it, so v1 does every conversion.
    const v1 = plan(roundTrip(onFramework(fiveStageSpec('c', '/tmp/ws'), 'mindspeed-llm', '2.3.0'))).stages;
    expect([stage(v1, 'weights').converter, stage(v1, 'export').converter]).toEqual(['convert_ckpt.py', 'convert_ckpt.py']);
    const v2 = plan(roundTrip(qwen3(onFramework(fiveStageSpec('c', '/tmp/ws'), 'mindspeed-llm', '2.3.0')))).stages;
    const [toMg, toHf] = [stage(v2, 'weights'), stage(v2, 'export')];
    expect([toMg.entrypoint, toHf.entrypoint]).toEqual(['convert_ckpt_v2.py', 'convert_ckpt_v2.py']);
    expect(flags(toMg)).not.toContain('--model-type');
    expect(flags(toMg)).not.toContain('--use-mcore-models');
    expect(arg(toMg, '--model-type-hf')).toBe('qwen3');
    // HF output straight into --save-dir (v1: its mg2hf/), beside links to the original's config, never its weights.
    expect(toHf.output).toBe(arg(toHf, '--save-dir'));
    expect(toHf.hfView).toEqual({ from: path.join(DEMO, 'hf-tiny'), dir: toHf.output, weights: false });
    expectKnownFlags(getFramework({ flavour: 'mindspeed-llm', version: '2.3.0' })!, v2);
  });

  it('v2 has no mg → mg, no legacy and (before 26.0.0) no LoRA merge, and is refused where the version lacks it', () => {
    const spec = qwen3(onFramework(fiveStageSpec('c', '/tmp/ws'), 'mindspeed-llm', '2.3.0'));
    spec.stages.push({ name: 'reshard', kind: 'convert', from: 'pretrain', to: 'mcore', tp: 1, pp: 1 });
    expect(problems(spec).join('\n')).toMatch(/stages\[7\]\.to: convert_ckpt_v2\.py converts only between hf and mcore \(no mg → mg resharding\)/);
    const lora = qwen3(onFramework(fiveStageSpec('c', '/tmp/ws'), 'mindspeed-llm', '2.3.0'));
    Object.assign(lora.stages[4], { lora: { r: 8, alpha: 16 } });
    lora.stages.push({ name: 'merged', kind: 'convert', from: 'pretrain', to: 'hf', hfDir: path.join(DEMO, 'hf-tiny'), lora: { load: 'finetune' } });
    expect(problems(lora).join('\n')).toMatch(
      /stages\[7\]\.lora: MindSpeed-LLM 2\.3\.0's convert_ckpt_v2\.py cannot merge LoRA weights \(MindSpeed-LLM 26\.0\.0, MindSpeed-LLM 26\.1\.0 can\)/,
    );
    const asked = onFramework(fiveStageSpec('c', '/tmp/ws'), 'mindspeed-llm', '2.1.0');
    (asked.modellink as Record<string, unknown>).converter = 'convert_ckpt_v2.py';
    expect(problems(asked)).toEqual([
      'modellink.converter: MindSpeed-LLM 2.1.0 has no convert_ckpt_v2.py; MindSpeed-LLM 2.2.0, MindSpeed-LLM 2.3.0, MindSpeed-LLM 26.0.0, MindSpeed-LLM 26.1.0 have it',
    ]);
  });

  it('exports a LoRA fine-tuned model back to HF with the LoRA merged (HF → mcore → HF)', () => {
    const spec = onFramework(fiveStageSpec('rt', '/tmp/ws'), 'mindspeed-llm', '2.3.0');
    Object.assign(spec.stages[4], { lora: { r: 8, alpha: 16 } });
    spec.stages.push({ name: 'export', kind: 'convert', from: 'pretrain', to: 'hf', hfDir: path.join(DEMO, 'hf-tiny'), lora: { load: 'finetune' } });
    const exported = stage(plan(spec).stages, 'export');
    expect(exported.entrypoint).toBe('convert_ckpt.py');
    expect(exported.args).toEqual(
      expect.arrayContaining([
        ['--load-model-type', 'mg'],
        ['--save-model-type', 'hf'],
        ['--lora-r', '8'],
        ['--lora-alpha', '16'],
      ]),
    );
    expect(arg(exported, '--lora-load')).toMatch(/finetune\/checkpoints$/);
  });
});

describe('resume on each version', () => {
  it('drops first-load flags and online conversion, and points --load at the save directory', () => {
    const args = resumeArgs(
      [
        ['--finetune', null],
        ['--no-load-optim', null],
        ['--no-load-rng', null],
        ['--enable-hf2mg-convert', null],
        ['--model-type-hf', 'qwen3'],
        ['--load', '/hf/qwen3'],
        ['--save', '/run/ckpt'],
      ],
      '/run/ckpt',
      false,
    );
    expect(args).toEqual([
      ['--model-type-hf', 'qwen3'],
      ['--load', '/run/ckpt'],
      ['--save', '/run/ckpt'],
    ]);
  });

  it('a second warm restart resumes from the newest warm folder holding a checkpoint, and that folder is the stage output', () => {
    const saveDir = tempDir('warm-scan');
    const save = (dir: string, iteration: number) => {
      fs.mkdirSync(path.join(dir, `iter_${String(iteration).padStart(7, '0')}`, 'mp_rank_00'), { recursive: true });
      fs.writeFileSync(path.join(dir, `iter_${String(iteration).padStart(7, '0')}`, 'mp_rank_00', 'model_optim_rng.pt'), 'x');
      fs.writeFileSync(path.join(dir, 'latest_checkpointed_iteration.txt'), `${iteration}\n`);
    };
    const layout = { tp: 1, pp: 1, ep: 1 };
    save(saveDir, 10);
    expect(findWarmResumePoint(saveDir, layout)).toMatchObject({ source: saveDir, offset: 0, point: { kind: 'tracker', iteration: 10 } });
    expect(warmOutputDir(saveDir)).toBe(saveDir);
    save(path.join(saveDir, 'warm-10'), 5);
    // warm-15 crashed before its first save: the scan passes over it.
    fs.mkdirSync(path.join(saveDir, 'warm-15'));
    const again = findWarmResumePoint(saveDir, layout);
    expect(again).toMatchObject({ source: path.join(saveDir, 'warm-10'), offset: 10, point: { kind: 'tracker', iteration: 5 } });
    expect(warmOutputDir(saveDir)).toBe(path.join(saveDir, 'warm-10'));
  });

  it('resumes LoRA on MindSpeed-LLM as a warm restart: the same command with --lora-load at the newest LoRA checkpoint', () => {
    const first: [string, string | string[] | null][] = [
      ['--finetune', null],
      ['--no-load-optim', null],
      ['--lora-r', '8'],
      ['--lora-target-modules', ['linear_qkv']],
      ['--load', '/base'],
      ['--save', '/run/ckpt'],
    ];
    expect(warmLoraResumeArgs(first, '/run/ckpt')).toEqual([...first.slice(0, 4), ['--lora-load', '/run/ckpt'], ...first.slice(4)]);
    // Counting from 0 again, a warm restart saves into its own folder and trains what is left.
    const withIters: [string, string | string[] | null][] = [...first, ['--train-iters', '20']];
    expect(warmLoraResumeArgs(withIters, '/run/ckpt', { save: '/run/ckpt/warm-10', trainIters: 10 })).toEqual([
      ...first.slice(0, 4),
      ['--lora-load', '/run/ckpt'],
      ...first.slice(4, 5),
      ['--save', '/run/ckpt/warm-10'],
      ['--train-iters', '10'],
    ]);
    const spec = onFramework(fiveStageSpec('l', '/tmp/ws'), 'mindspeed-llm', '2.3.0');
    Object.assign(spec.stages[4], { lora: { r: 8, alpha: 16 } });
    expect(stage(plan(spec).stages, 'finetune').training?.loraResume).toBe('warm');
    const ml = fiveStageSpec('l', '/tmp/ws');
    Object.assign(ml.stages[4], { lora: { r: 8, alpha: 16 } });
    expect(stage(plan(ml).stages, 'finetune').training?.loraResume).toBe('exact');
  });

  it('skips iter_*_tmp and mg2hf_iteration* directories, and finds a dying-gasp checkpoint between save intervals', () => {
    expect(['iter_0000010', 'iter_0000013_tmp', 'mg2hf_iteration10', 'megatron_cache_tp1pp1ep1'].map(iterationOfDirName)).toEqual([
      10,
      undefined,
      undefined,
      undefined,
    ]);
    // TTP's dump at iteration 13 (save interval 5): renamed from iter_0000013_tmp, then the tracker updated (tft_dump.py).
    const view: SaveDirView = { tracker: () => 13, iterations: () => [5, 10, 13], missingShards: () => [] };
    expect(resumePoint('/run/ckpt', view)).toEqual({ kind: 'tracker', iteration: 13, dir: '/run/ckpt' });
    // Killed during the rename: the tracker still names 10.
    expect(resumePoint('/run/ckpt', { ...view, tracker: () => 10, iterations: () => [5, 10] })).toEqual({ kind: 'tracker', iteration: 10, dir: '/run/ckpt' });
  });
});

describe('evaluation output by version', () => {
  it('reads the score lines of the new tasks and MindSpeed-LLM’s Human Eval line', () => {
    expect(parseLogLine('INFO:__main__:cmmlu acc = 3/8=0.375')).toEqual({ type: 'eval-result', task: 'cmmlu', correct: 3, total: 8, accuracy: 0.375 });
    expect(parseLogLine('INFO:__main__:needlebench acc = 6/8')).toEqual({ type: 'eval-result', task: 'needlebench', correct: 6, total: 8, accuracy: 0.75 });
    expect(parseLogLine('INFO:mindspeed_llm:Human Eval accuracy = 0.25')).toEqual({ type: 'human-eval-result', accuracy: 0.25 });
    // The save line of core_r0.8.0 on (2.1.0+) and of core_r0.6.0 (ModelLink, 1.0.0).
    expect(parseLogLine('  successfully saved checkpoint from iteration      10 to /run/ckpt')).toEqual({
      type: 'checkpoint-saved',
      iteration: 10,
      dir: '/run/ckpt',
    });
    expect(parseLogLine('  successfully saved checkpoint at iteration      10 to /run/ckpt')).toEqual({
      type: 'checkpoint-saved',
      iteration: 10,
      dir: '/run/ckpt',
    });
    // mmlu_ppl.py prints mmlu's line: the stage waits for it under mmlu.
    const spec = onFramework(fiveStageSpec('e', '/tmp/ws'), 'mindspeed-llm', '2.3.0');
    Object.assign(spec.stages[5], { tasks: [{ name: 'mmlu_ppl', dataPath: path.join(DEMO, 'mmlu', 'test') }] });
    expect(stage(plan(spec).stages, 'evaluate').evaluate?.tasks).toEqual(['mmlu']);
  });

  it('on MindSpeed-LLM 2.1.0 on, every task reads the last data path: one path per evaluate stage (ModelLink picks by name)', () => {
    const two = (spec: RawSpec) => {
      Object.assign(spec.stages[5], {
        tasks: [
          { name: 'mmlu', dataPath: path.join(DEMO, 'mmlu', 'test') },
          { name: 'ceval', dataPath: path.join(DEMO, 'ceval', 'test') },
        ],
      });
      return spec;
    };
    expect(problems(two(fiveStageSpec('e', '/tmp/ws')))).toEqual([]);
    expect(problems(two(onFramework(fiveStageSpec('e', '/tmp/ws'), 'mindspeed-llm', '1.0.0')))).toEqual([]);
    expect(problems(two(onFramework(fiveStageSpec('e', '/tmp/ws'), 'mindspeed-llm', '2.3.0')))).toEqual([
      `stages[5].tasks: MindSpeed-LLM 2.3.0's evaluation.py reads every task from the last --task-data-path (${path.join(DEMO, 'ceval', 'test')}): give each task its own evaluate stage`,
    ]);
  });

  it('always passes a non-interactive inference task', () => {
    for (const f of allFrameworks()) {
      const spec = onFramework(fiveStageSpec('g', '/tmp/ws'), f.flavour, f.version);
      Object.assign(spec.stages[6], { tasks: undefined, prompts: undefined });
      expect(arg(stage(plan(spec).stages, 'generate'), '--task'), f.name).toBe('greedy');
    }
  });
});

describe('the versions’ flag lists', () => {
  it('are the reference’s (reference/mindspeed-llm/flags, from the real parsers), one per version linkflow drives', () => {
    const dir = path.join(ROOT, 'reference', 'mindspeed-llm', 'flags');
    const versions = fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => f.replace(/\.json$/, ''));
    expect([...MSL].sort()).toEqual(versions.sort());
    for (const version of versions) {
      const ref = JSON.parse(fs.readFileSync(path.join(dir, `${version}.json`), 'utf8')) as {
        entrypoints: Record<string, { flag: string }[]>;
        convert_ckpt_plugin_combinations?: Record<string, { flags: { flag: string }[] }>;
        sources: { mindspeed_llm: { commit: string } };
      };
      const framework = getFramework({ flavour: 'mindspeed-llm', version })!;
      expect(framework.source).toBe(`Ascend/MindSpeed-LLM@${ref.sources.mindspeed_llm.commit.slice(0, 8)}`);
      for (const [entry, records] of Object.entries(ref.entrypoints)) {
        const plugins = entry === 'convert_ckpt.py' ? Object.values(ref.convert_ckpt_plugin_combinations ?? {}).flatMap((c) => c.flags) : [];
        for (const { flag } of [...records, ...plugins]) expect(framework.isKnownFlag(entry as Entrypoint, flag), `${version} ${entry} ${flag}`).toBe(true);
      }
      expect(framework.isKnownFlag('pretrain_gpt.py', '--no-such-flag')).toBe(false);
    }
  });
});
