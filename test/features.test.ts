/** Typed feature options: emitted as ModelLink's flags, and validated before anything runs. */
import { describe, expect, it } from 'vitest';
import { planPipeline } from '../plan/plan.ts';
import { fiveStageSpec, type RawSpec } from '../testkit/specs.ts';

function llamaSpec(patch: Record<string, unknown> = {}): RawSpec {
  const spec = fiveStageSpec('feat', '/tmp/ws');
  spec.model = { preset: 'llama2-7b', impl: 'mcore', tokenizer: '/tmp/tok' };
  spec.cluster = { nodes: 1, devicesPerNode: 8 };
  spec.parallel = { tp: 2, pp: 2 };
  spec.stages = spec.stages.filter((s) => s.kind !== 'evaluate');
  for (const s of spec.stages) if (s.globalBatchSize) s.globalBatchSize = 64;
  return Object.assign(spec, patch);
}

function plan(spec: RawSpec) {
  const r = planPipeline(spec, { baseDir: '/tmp' });
  if (!r.ok) throw new Error(r.problems.map((p) => `${p.path}: ${p.message}`).join('\n'));
  return r;
}

function problems(spec: RawSpec): string[] {
  const r = planPipeline(spec, { baseDir: '/tmp' });
  return r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.message}`);
}

const pretrainArgv = (spec: RawSpec) => plan(spec).plan.stages.find((s) => s.kind === 'pretrain')!;

describe('feature options', () => {
  it('emit their flags, and deterministic computation sets HCCL_DETERMINISTIC too', () => {
    const pretrainOnly = (spec: RawSpec) => Object.assign(spec, { stages: spec.stages.filter((s) => s.kind !== 'finetune') });
    const stage = pretrainArgv(
      pretrainOnly(
        llamaSpec({
          parallel: { tp: 2, pp: 2, cp: 2, cpAlgo: 'megatron_cp_algo', numLayerList: [15, 17] },
          memory: { recomputeGranularity: 'full', recomputeMethod: 'uniform', recomputeNumLayers: 1 },
          kernels: { flashAttn: false },
          communication: { overlapParamGather: true },
          profiling: { stepStart: 3, stepEnd: 5, ranks: [0, 7], level: 'level1', withMemory: true },
          deterministic: true,
        }),
      ),
    );
    const argv = stage.argv.join(' ');
    expect(argv).toContain('--context-parallel-size 2 --context-parallel-algo megatron_cp_algo');
    expect(argv).toContain('--num-layer-list 15,17');
    expect(argv).toContain('--recompute-granularity full --recompute-method uniform --recompute-num-layers 1');
    expect(argv).not.toContain('--use-flash-attn');
    expect(argv).toContain('--use-fused-rmsnorm');
    expect(argv).toContain('--overlap-param-gather');
    expect(argv).toContain(
      '--profile --profile-step-start 3 --profile-step-end 5 --profile-ranks 0 7 --profile-level level1 --profile-with-memory --profile-save-path ./profile_dir',
    );
    expect(argv).toContain('--use-deter-comp');
    expect(stage.env.HCCL_DETERMINISTIC).toBe('True');
    expect(argv).not.toContain('--use-mc2');
  });

  it('rejects Megatron-core-only features on legacy models, naming each', () => {
    const p = problems(
      llamaSpec({
        model: { preset: 'llama2-7b', impl: 'legacy', tokenizer: '/tmp/tok' },
        parallel: { tp: 1, pp: 2, cp: 2, ep: 2 },
        communication: { overlapParamGather: true },
        moe: { permutationAsyncComm: true },
      }),
    );
    expect(p).toEqual(
      expect.arrayContaining([
        'parallel.cp: --context-parallel-size is supported only by Megatron-core models; set model.impl: mcore or remove it',
        'parallel.ep: --expert-model-parallel-size is supported only by Megatron-core models; set model.impl: mcore or remove it',
        'communication.overlapParamGather: --overlap-param-gather is supported only by Megatron-core models; set model.impl: mcore or remove it',
        'moe.permutationAsyncComm: --moe-permutation-async-comm is supported only by Megatron-core models; set model.impl: mcore or remove it',
      ]),
    );
  });

  it('checks layouts: layer list, devices for tp × pp × cp, expert parallel, context parallel rules', () => {
    expect(problems(llamaSpec({ parallel: { tp: 2, pp: 2, numLayerList: [10, 10] } }))).toContain(
      'parallel.numLayerList: sums to 20; it must sum to the 32 layers of llama2-7b',
    );
    expect(problems(llamaSpec({ parallel: { tp: 2, pp: 2, numLayerList: [32] } }))).toContain(
      'parallel.numLayerList: has 1 entries; it needs one per pipeline stage (pp = 2)',
    );
    expect(problems(llamaSpec({ parallel: { tp: 2, pp: 2, cp: 4 } }))).toContain(
      'parallel: nodes × devicesPerNode = 8 devices must be divisible by tp × pp × cp = 16',
    );
    expect(problems(llamaSpec({ parallel: { tp: 2, pp: 1, ep: 3 } }))).toContain(
      'parallel.ep: expert parallel size 3 must divide data-parallel × context-parallel size 4 × 1 = 4 (data-parallel size = devices ÷ (tp × pp × cp))',
    );
    expect(problems(llamaSpec({ parallel: { tp: 1, pp: 1, cp: 8, cpAlgo: 'hybrid_cp_algo' } }))).toContain(
      'parallel.ulyssesDegreeInCp: required with cpAlgo hybrid_cp_algo (ModelLink: --ulysses-degree-in-cp must be specified in hybrid_cp_algo)',
    );
    expect(problems(llamaSpec({ parallel: { tp: 1, pp: 2, cp: 2 } })).some((p) => p.includes('variable sequence lengths'))).toBe(true);
  });

  it('checks batch arithmetic with context parallelism and bf16-only memory reuse; warns about recompute settings without full recompute', () => {
    const spec = llamaSpec({ parallel: { tp: 2, pp: 1, cp: 2 }, memory: { reuseFp32Param: true, recomputeNumLayers: 2 } });
    spec.stages = spec.stages.filter((s) => s.kind !== 'finetune');
    Object.assign(
      spec.stages.find((s) => s.kind === 'pretrain')!,
      { globalBatchSize: 3, precision: 'fp16' },
    );
    const p = problems(spec);
    expect(p).toContain('stages[3].globalBatchSize: global batch size 3 must be divisible by micro batch size 1 × data-parallel size 2');
    expect(p).toContain('stages[3].precision: memory.reuseFp32Param works only with bf16 (ModelLink: --reuse-fp32-param only support for `bf16`)');
    const r = planPipeline(Object.assign(llamaSpec({ memory: { recomputeNumLayers: 2 } }), {}), { baseDir: '/tmp' });
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    expect(r.warnings.map((w) => `${w.path}: ${w.message}`)).toContain(
      'memory.recomputeGranularity: recomputeMethod and recomputeNumLayers take effect only with recomputeGranularity: full',
    );
  });

  it('warns about MC2 and high availability prerequisites, and sequence parallel with tp = 1', () => {
    const r = plan(llamaSpec({ parallel: { tp: 1, pp: 2, sequenceParallel: true }, communication: { mc2: true }, highAvailability: { enabled: true } }));
    const warnings = r.warnings.map((w) => `${w.path}: ${w.message}`);
    expect(warnings).toContain('communication.mc2: MC2 needs CANN 8.0.RC2 (24RC2) or newer with matching drivers; it is off by default in ModelLink');
    expect(warnings).toContain('highAvailability: ModelLink high availability needs the mindio_ttp package installed on every node');
    expect(warnings).toContain('parallel.sequenceParallel: sequence parallel has no effect with tp = 1');
    const argv = r.plan.stages.find((s) => s.kind === 'pretrain')!.argv;
    expect(argv).toContain('--use-mc2');
    expect(argv).toContain('--enable-high-availability');
  });
});

describe('high availability, as ModelLink and MindSpeed check it', () => {
  const ha = (patch: Record<string, unknown> = {}) => llamaSpec({ highAvailability: { enabled: true }, ...patch });

  it('does not need the distributed optimizer (its replica optimizer replaces either)', () => {
    expect(problems(ha({ parallel: { tp: 2, pp: 2, distributedOptimizer: false } }))).toEqual([]);
  });

  it('is refused with reuseFp32Param and with --use-dist-ckpt, naming the spec path', () => {
    expect(problems(ha({ memory: { reuseFp32Param: true } }))).toContain(
      'memory.reuseFp32Param: cannot be used with highAvailability.enabled (ModelLink: reuse-fp32-param and enable-high-availability do not support enabling together)',
    );
    const spec = ha();
    spec.stages.find((s) => s.kind === 'pretrain')!.args = { '--use-dist-ckpt': true };
    expect(problems(spec)).toContain(
      'stages[3].args.--use-dist-ckpt: cannot be used with high availability (ModelLink: --enable-high-availability with --use-dist-ckpt is unsupported)',
    );
  });

  it('needs a data-parallel size above 1 and divisible by its 2 replicas', () => {
    const one = problems(ha({ parallel: { tp: 4, pp: 2 } }));
    expect(one).toContain(
      'highAvailability.enabled: the replica optimizer of high availability splits the data-parallel group (data-parallel size × cp = 1) into 2 replicas: it needs a size above 1 divisible by 2 (more devices, or smaller tp × pp)',
    );
    const three = problems(ha({ cluster: { nodes: 1, devicesPerNode: 6 }, parallel: { tp: 2, pp: 1 } }));
    expect(three.some((p) => p.startsWith('highAvailability.enabled: the replica optimizer') && p.includes('= 3)'))).toBe(true);
    expect(problems(ha({ parallel: { tp: 2, pp: 2 } }))).toEqual([]);
  });

  it('optimizerStateLocalCopy needs high availability', () => {
    expect(problems(llamaSpec({ highAvailability: { enabled: false, optimizerStateLocalCopy: true } }))).toContain(
      'highAvailability.optimizerStateLocalCopy: needs highAvailability.enabled (ModelLink: --enable-optimizer-state-local-copy without --enable-high-availability is unsupported)',
    );
  });

  it('training stages pass --exit-signal-handler by default, so stop and drain save (high availability is not relied on)', () => {
    const spec = ha();
    expect(plan(spec).plan.stages.find((s) => s.kind === 'pretrain')!.argv).toContain('--exit-signal-handler');
    Object.assign(
      spec.stages.find((s) => s.kind === 'pretrain')!,
      { exitSignalHandler: false },
    );
    expect(plan(spec).plan.stages.find((s) => s.kind === 'pretrain')!.argv).not.toContain('--exit-signal-handler');
  });
});
