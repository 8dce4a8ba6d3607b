/** Spec validation: every problem reported with its path, before anything starts. */
import { describe, expect, it } from 'vitest';
import { planPipeline } from '../plan/plan.ts';
import { fiveStageSpec } from '../testkit/specs.ts';

function problemsOf(raw: unknown): string[] {
  const r = planPipeline(raw, { baseDir: '/tmp' });
  if (r.ok) throw new Error('expected the spec to be rejected');
  return r.problems.map((p) => `${p.path}: ${p.message}`);
}

describe('pipeline spec validation', () => {
  it('accepts the five-stage spec and resolves stage references to outputs', () => {
    const r = planPipeline(fiveStageSpec('ok', '/tmp/ws'), { baseDir: '/tmp' });
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    const pretrain = r.plan.stages.find((s) => s.name === 'pretrain')!;
    expect(pretrain.inputs.map((i) => i.fromStage)).toEqual(['data', 'weights']);
    expect(pretrain.argv).toContain('/tmp/ws/ok/data/data/data_text_document');
    expect(pretrain.training).toMatchObject({ trainIters: 100, saveInterval: 10, saveDir: '/tmp/ws/ok/pretrain/checkpoints' });
  });

  it('lists every schema problem with its path', () => {
    const spec = fiveStageSpec('bad', '/tmp/ws');
    (spec.stages[3] as Record<string, unknown>).trainIters = -5;
    (spec.stages[4] as Record<string, unknown>).saveInterval = 'ten';
    (spec.stages[1] as Record<string, unknown>).kind = 'transmogrify';
    (spec.modellink as Record<string, unknown>).root = '';
    const problems = problemsOf(spec);
    expect(problems).toContain('stages[3].trainIters: expected a positive integer');
    expect(problems).toContain('stages[4].saveInterval: expected a positive integer');
    expect(problems.some((p) => p.startsWith('stages[1].kind: ') || p.startsWith('stages[1]: expected kind'))).toBe(true);
    expect(problems).toContain('modellink.root: expected a non-empty string');
  });

  it('rejects unknown fields, unknown presets, bad layouts and references to later stages', () => {
    const spec = fiveStageSpec('bad', '/tmp/ws');
    (spec.stages[3] as Record<string, unknown>).trainItrs = 5;
    expect(problemsOf(spec).some((p) => p.startsWith('stages[3]: ') && p.includes('trainItrs'))).toBe(true);

    const preset = fiveStageSpec('bad', '/tmp/ws');
    (preset.model as Record<string, unknown>).preset = 'llama9';
    expect(problemsOf(preset)[0]).toMatch(/^model\.preset: unknown preset "llama9"; known presets: .*llama2-7b/);

    const layout = fiveStageSpec('bad', '/tmp/ws');
    layout.parallel = { tp: 3, pp: 1 };
    layout.cluster = { nodes: 1, devicesPerNode: 3 };
    expect(problemsOf(layout)).toContain('parallel.tp: tensor parallel size 3 must divide the 4 attention heads of tiny');

    const order = fiveStageSpec('bad', '/tmp/ws');
    (order.stages[3] as Record<string, unknown>).data = 'evaluate';
    expect(problemsOf(order).some((p) => p.startsWith('stages[3].data: stage "evaluate" (stages[5]) does not run before this one'))).toBe(true);

    const kinds = fiveStageSpec('bad', '/tmp/ws');
    (kinds.stages[3] as Record<string, unknown>).data = 'sft-data';
    expect(problemsOf(kinds)).toContain('stages[3].data: stage "sft-data" produces instruction-data, but this field needs pretrain-data');
  });

  it("rejects an evaluation data path that ModelLink's evaluation.py would not use for its task", () => {
    const unnamed = fiveStageSpec('bad', '/tmp/ws');
    (unnamed.stages[5] as Record<string, unknown>).tasks = [{ name: 'agieval', dataPath: '/data/eval/test' }];
    expect(problemsOf(unnamed).some((p) => p.startsWith('stages[5].tasks[0].dataPath: /data/eval/test does not contain "agieval"'))).toBe(true);

    // mmlu would be read from the last path containing "mmlu": ceval's.
    const shadowed = fiveStageSpec('bad', '/tmp/ws');
    (shadowed.stages[5] as Record<string, unknown>).tasks = [
      { name: 'mmlu', dataPath: '/data/mmlu/test' },
      { name: 'ceval', dataPath: '/data/ceval-like-mmlu/val' },
    ];
    const problems = problemsOf(shadowed);
    expect(problems.some((p) => p.startsWith("stages[5].tasks[0].dataPath: ModelLink's evaluation.py would read mmlu from /data/ceval-like-mmlu/val"))).toBe(
      true,
    );
    expect(problems.some((p) => p.startsWith('stages[5].tasks[1]'))).toBe(false);

    const named = fiveStageSpec('ok', '/tmp/ws');
    (named.stages[5] as Record<string, unknown>).tasks = [
      { name: 'agieval', dataPath: '/data/agieval/test' },
      { name: 'mmlu', dataPath: '/data/mmlu/test' },
    ];
    expect(planPipeline(named, { baseDir: '/tmp' }).ok).toBe(true);
  });

  it('checks batch arithmetic and duplicate names', () => {
    const spec = fiveStageSpec('bad', '/tmp/ws');
    spec.cluster = { nodes: 1, devicesPerNode: 8 };
    (spec.stages[3] as Record<string, unknown>).globalBatchSize = 12;
    (spec.stages[4] as Record<string, unknown>).name = 'pretrain';
    const problems = problemsOf(spec);
    expect(problems).toContain('stages[3].globalBatchSize: global batch size 12 must be divisible by micro batch size 1 × data-parallel size 8');
    expect(problems.some((p) => p.startsWith('stages[4].name: "pretrain" is already the name of stages[3]'))).toBe(true);
  });

  it('rejects args flags that ModelLink does not define, unless allowed', () => {
    const spec = fiveStageSpec('bad', '/tmp/ws');
    (spec.stages[3] as Record<string, unknown>).args = { '--use-fused-rmsnorm': true, '--bogus-flag': 1 };
    expect(problemsOf(spec)).toEqual([
      "stages[3].args.--bogus-flag: --bogus-flag is not a flag of ModelLink d4feda79's pretrain_gpt.py; set allowUnknownFlags: true if your checkout has it",
    ]);
    (spec.stages[3] as Record<string, unknown>).allowUnknownFlags = true;
    expect(planPipeline(spec, { baseDir: '/tmp' }).ok).toBe(true);
  });

  it('args override, add and remove flags; env null removes a variable', () => {
    const spec = fiveStageSpec('ov', '/tmp/ws');
    Object.assign(spec.stages[3], {
      args: { '--lr': 3e-4, '--use-flash-attn': null, '--use-mc2': true, '--profile-ranks': [0, 1] },
      env: { PYTORCH_NPU_ALLOC_CONF: null, HCCL_CONNECT_TIMEOUT: '1200' },
    });
    const r = planPipeline(spec, { baseDir: '/tmp' });
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    const stage = r.plan.stages[3];
    expect(stage.args).toContainEqual(['--lr', '0.0003']);
    expect(stage.args.filter(([f]) => f === '--lr')).toHaveLength(1);
    expect(stage.args.some(([f]) => f === '--use-flash-attn')).toBe(false);
    expect(stage.args).toContainEqual(['--use-mc2', null]);
    expect(stage.args).toContainEqual(['--profile-ranks', ['0', '1']]);
    expect(stage.env).not.toHaveProperty('PYTORCH_NPU_ALLOC_CONF');
    expect(stage.env.HCCL_CONNECT_TIMEOUT).toBe('1200');
  });
});

describe('LoRA fine-tuning', () => {
  it('a training stage loads weights of its own expert-parallel layout', () => {
    const spec = fiveStageSpec('ep', '/tmp/ws');
    Object.assign(spec, {
      model: { preset: 'mixtral-8x7b', impl: 'mcore', tokenizer: '/tmp/tok' },
      cluster: { nodes: 1, devicesPerNode: 2 },
      parallel: { tp: 1, pp: 1, ep: 2 },
    });
    spec.stages = spec.stages.filter((s) => ['data', 'weights', 'pretrain'].includes(s.name as string));
    Object.assign(
      spec.stages.find((s) => s.name === 'weights')!,
      { ep: 1 },
    );
    expect(problemsOf(spec)).toContain(
      'stages[2].load: stage "weights" holds mcore weights at TP 1 PP 1 EP 1, but this stage runs mcore at TP 1 PP 1 EP 2: convert them first (a stage { kind: convert, from: weights, to: mcore, tp: 1, pp: 1, ep: 2 })',
    );
    Object.assign(
      spec.stages.find((s) => s.name === 'weights')!,
      { ep: 2 },
    );
    const r = planPipeline(spec, { baseDir: '/tmp' });
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    expect(r.plan.stages.find((s) => s.name === 'pretrain')).toMatchObject({ training: { tp: 1, pp: 1, ep: 2 }, loadLayout: { tp: 1, pp: 1, ep: 2 } });
  });

  it('continues from existing LoRA weights on the first attempt, and from its own save directory after', async () => {
    const { resumeArgs } = await import('../frameworks/modellink/commands.ts');
    const spec = fiveStageSpec('lora', '/tmp/ws');
    Object.assign(spec.stages[4], { lora: { r: 8, alpha: 16, load: '/data/lora-v1' } });
    const r = planPipeline(spec, { baseDir: '/tmp' });
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    const stage = r.plan.stages[4];
    expect(stage.args).toContainEqual(['--lora-load', '/data/lora-v1']);
    const resumed = resumeArgs(stage.args, stage.training!.saveDir, true);
    expect(resumed.filter(([f]) => f === '--lora-load')).toEqual([['--lora-load', stage.training!.saveDir]]);
    expect(resumed.some(([f]) => f === '--finetune')).toBe(false);
  });
});
