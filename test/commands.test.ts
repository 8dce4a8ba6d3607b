/** Command builders: shaped like ModelLink's example scripts, and never a flag ModelLink does not define. */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Arg } from '../frameworks/modellink/args.ts';
import { resumeArgs } from '../frameworks/modellink/commands.ts';
import { renderLaunch } from '../frameworks/launch.ts';
import { planPipeline, type StagePlan } from '../plan/plan.ts';
import { getPreset, presetNames } from '../frameworks/modellink/presets.ts';
import { fiveStageSpec, ROOT } from '../testkit/specs.ts';

const REFERENCE = path.join(ROOT, 'reference', 'modellink');
const flagsJson = JSON.parse(fs.readFileSync(path.join(REFERENCE, 'flags.json'), 'utf8')) as {
  entrypoints: Record<string, { flag: string }[]>;
  convert_ckpt_plugin_combinations: Record<string, { flags: { flag: string }[] }>;
};
const examples = JSON.parse(fs.readFileSync(path.join(REFERENCE, 'examples.json'), 'utf8')) as {
  scripts: { script: string; entrypoint: string; args: Arg[]; distributed: Record<string, unknown>; env: Record<string, string> }[];
};

function referenceFlags(entrypoint: string): Set<string> {
  const names = new Set(flagsJson.entrypoints[entrypoint].map((f) => f.flag));
  if (entrypoint === 'convert_ckpt.py') for (const c of Object.values(flagsJson.convert_ckpt_plugin_combinations)) for (const f of c.flags) names.add(f.flag);
  return names;
}

/** Every combination of options a builder branches on, over every preset and both implementations. */
function allPlans(): StagePlan[] {
  const plans: StagePlan[] = [];
  for (const preset of presetNames()) {
    // Each preset in the implementations ModelLink has it in, at tp 2 / pp 2 where its heads, query groups and layers allow.
    const { architecture: a, impls } = getPreset(preset)!;
    const tp = a.numAttentionHeads % 2 === 0 && (a.numQueryGroups ?? 2) % 2 === 0 ? 2 : 1;
    const pp = a.numLayers % 2 === 0 ? 2 : 1;
    for (const impl of impls) {
      for (const sequenceParallel of [false, true]) {
        for (const lora of [undefined, { r: 8, alpha: 16 }]) {
          const spec = fiveStageSpec('flags', '/tmp/ws');
          spec.model = { preset, impl, tokenizer: '/tmp/tok' };
          spec.parallel = { tp, pp, sequenceParallel, distributedOptimizer: !sequenceParallel };
          spec.cluster = { nodes: 1, devicesPerNode: 8 };
          Object.assign(spec.stages[4], { lora, globalBatchSize: 16 });
          Object.assign(spec.stages[3], { globalBatchSize: 16, logThroughput: sequenceParallel, precision: sequenceParallel ? 'fp16' : 'bf16' });
          Object.assign(spec.stages[5], { loraLoad: lora ? 'finetune' : undefined });
          if (impl === 'mcore' && sequenceParallel) {
            // Every typed feature at once: each must map to a flag ModelLink defines.
            spec.parallel = {
              ...(spec.parallel as object),
              tp: 1,
              pp,
              cp: 2,
              cpAlgo: 'megatron_cp_algo',
              cpSendRecvOverlap: true,
              ep: 2,
              ...(pp > 1 ? { vpp: 1 } : {}),
              distributedOptimizer: true,
            };
            Object.assign(spec, {
              // ModelLink refuses reuse-fp32-param with high availability: each in one of the two LoRA variants.
              memory: {
                recomputeGranularity: 'full',
                recomputeMethod: 'block',
                recomputeNumLayers: 1,
                recomputeActivationFunction: true,
                reuseFp32Param: !!lora,
              },
              kernels: { flashAttn: true, fusedRmsnorm: true, fusedSwiglu: true, fusedRotaryPosEmb: true, slidingWindow: 4096 },
              communication: { overlapGradReduce: true, overlapParamGather: true, mc2: true },
              moe: {
                permutationAsyncComm: true,
                groupedGemm: true,
                tokenDispatcherType: 'alltoall',
                routerLoadBalancingType: 'aux_loss',
                auxLossCoeff: 0.01,
                expertCapacityFactor: 1.0,
              },
              profiling: { stepStart: 2, stepEnd: 4, ranks: [0, 1], level: 'level1', withCpu: true, withStack: true, withMemory: true, recordShapes: true },
              deterministic: true,
              highAvailability: { enabled: !lora, optimizerStateLocalCopy: !lora },
            });
            Object.assign(spec.stages[3], { precision: 'bf16', globalBatchSize: 16 });
            spec.stages = spec.stages.filter((st) => st.kind !== 'finetune' && st.kind !== 'evaluate');
          }
          const r = planPipeline(spec, { baseDir: '/tmp' });
          if (!r.ok) throw new Error(`${preset}/${impl}: ${JSON.stringify(r.problems)}`);
          plans.push(...r.plan.stages);
        }
      }
    }
  }
  return plans;
}

describe('command builders', () => {
  it('emit only flags that flags.json defines for the entrypoint, in every option combination', () => {
    const unknown: string[] = [];
    for (const stage of allPlans()) {
      const known = referenceFlags(stage.entrypoint);
      const argsVariants = [stage.args];
      if (stage.training) argsVariants.push(resumeArgs(stage.args, '/tmp/save', stage.training.lora));
      for (const args of argsVariants) for (const [flag] of args) if (!known.has(flag)) unknown.push(`${stage.entrypoint} ${flag}`);
    }
    expect([...new Set(unknown)]).toEqual([]);
  });

  it('ships a flag list equal to the reference', () => {
    const shipped = JSON.parse(fs.readFileSync(path.join(ROOT, 'frameworks', 'modellink', 'flag-names.json'), 'utf8')) as Record<string, string[]>;
    for (const entry of Object.keys(flagsJson.entrypoints)) expect(new Set(shipped[entry])).toEqual(referenceFlags(entry));
  });

  it('renders llama2-7b pretraining with the arguments of examples/mcore/llama2/pretrain_llama2_7b_ptd.sh', () => {
    const script = examples.scripts.find((s) => s.script === 'examples/mcore/llama2/pretrain_llama2_7b_ptd.sh')!;
    const spec = fiveStageSpec('llama', '/tmp/ws');
    spec.model = { preset: 'llama2-7b', impl: 'mcore', tokenizer: '/tmp/tok' };
    spec.parallel = { tp: 1, pp: 2, sequenceParallel: true };
    spec.cluster = { nodes: 1, devicesPerNode: 8, masterPort: 6000 };
    spec.modellink = { root: '/opt/ModelLink', launcher: 'torchrun' };
    Object.assign(spec.stages[3], { trainIters: 5000, saveInterval: 10000, evalInterval: 1000, evalIters: 10, globalBatchSize: 256, logThroughput: false });
    const r = planPipeline(spec, { baseDir: '/tmp' });
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    const stage = r.plan.stages.find((s) => s.name === 'pretrain')!;
    // Placeholders of the script (paths) aside, the flags and values are the script's, in its order.
    // Order aside (as ModelLink's parser sees them), and placeholders (paths) aside.
    const normalize = (args: Arg[]) =>
      args.map(([f, v]) => JSON.stringify([f, typeof v === 'string' && (v.startsWith('${') || v.startsWith('/')) ? '<path>' : v])).sort();
    // Deliberate additions: training stages pass --exit-signal-handler by default, so a stop or drain saves,
    // and write TensorBoard events into the stage (tensorboard: false turns that off).
    expect(normalize(stage.args)).toEqual(
      normalize([
        ...script.args,
        ['--exit-signal-handler', null],
        ['--tensorboard-dir', '/tmp/ws/llama/pretrain/tensorboard'],
        ['--log-timers-to-tensorboard', null],
      ]),
    );
    expect(stage.launch).toMatchObject({
      kind: 'torchrun',
      program: ['torchrun'],
      nprocPerNode: 8,
      nnodes: 1,
      nodeRank: 0,
      masterAddr: 'localhost',
      masterPort: 6000,
    });
    expect(renderLaunch(stage.launch)).toEqual([
      'torchrun',
      '--nproc_per_node',
      '8',
      '--nnodes',
      '1',
      '--node_rank',
      '0',
      '--master_addr',
      'localhost',
      '--master_port',
      '6000',
    ]);
    expect(stage.env).toMatchObject(script.env);
  });

  it('resume drops the first-load flags and points --load (or --lora-load for LoRA) at the save directory', () => {
    const args: Arg[] = [
      ['--finetune', null],
      ['--no-load-optim', null],
      ['--no-load-rng', null],
      ['--lora-target-modules', ['a', 'b']],
      ['--load', '/w'],
      ['--save', '/s'],
    ];
    expect(resumeArgs(args, '/s', false)).toEqual([
      ['--lora-target-modules', ['a', 'b']],
      ['--load', '/s'],
      ['--save', '/s'],
    ]);
    expect(resumeArgs(args, '/s', true)).toEqual([
      ['--lora-target-modules', ['a', 'b']],
      ['--lora-load', '/s'],
      ['--load', '/w'],
      ['--save', '/s'],
    ]);
    expect(resumeArgs([['--save', '/s']], '/s', false)).toEqual([
      ['--load', '/s'],
      ['--save', '/s'],
    ]);
    // LoRA with the distributed optimizer: --load at the resume view (see loraResumeView).
    expect(resumeArgs(args, '/s', true, '/v')).toEqual([
      ['--lora-target-modules', ['a', 'b']],
      ['--lora-load', '/s'],
      ['--load', '/v'],
      ['--save', '/s'],
    ]);
  });
});
