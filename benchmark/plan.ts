/**
 * A benchmark case as a pipeline: one short pretraining stage on mock data (a few warm-up
 * iterations, then the measured ones) that saves no checkpoint. Planned like any pipeline, so its
 * command is checked against ModelLink's flags and runs, retries and places nodes the same way.
 */
import path from 'node:path';
import type { BenchmarkCase, BenchmarkSuite } from './suite.ts';
import { defaultVersion } from '../frameworks/index.ts';
import { presetFor } from '../frameworks/presets.ts';
import { planPipeline, type PipelinePlan } from '../plan/plan.ts';
import { formatProblems } from '../spec/spec.ts';

const BENCHMARK_STAGE = 'benchmark';
/** Exported to every case's job, so tools on the node (profilers, the emulator) can tell cases apart. */
const CASE_ENV = 'LINKFLOW_BENCH_CASE';

export type CasePlan = { ok: true; plan: PipelinePlan; iterations: number } | { ok: false; reason: string };

/** The pipeline that measures one case of one run, in `<workspace>/<run>/<case>/`. */
export function planBenchmarkCase(suite: BenchmarkSuite, c: BenchmarkCase, options: { runDir: string; taskQueue?: string }): CasePlan {
  if (c.skipReason) return { ok: false, reason: c.skipReason };
  if (!c.preset || !c.parallel) return { ok: false, reason: 'preset missing' };
  if (!suite.modellink) return { ok: false, reason: 'the suite has no modellink section (where ModelLink is on the nodes)' };
  // The preset the case's pipeline will plan with: its framework's (frameworks/presets.ts).
  const flavour = c.framework?.flavour ?? suite.modellink.flavour;
  const preset = presetFor(c.preset, { flavour, version: c.framework?.version ?? suite.modellink.version ?? defaultVersion(flavour) });
  if (!preset) return { ok: false, reason: `preset missing: no preset named ${c.preset}` };
  const p = c.parallel;
  const iterations = suite.iterations.warmup + suite.iterations.measured;
  const tokenizer = suite.tokenizers[c.preset];
  const args: Record<string, string | true | null> = {
    // Mock data: the measurement is of the model and the devices, not of a dataset's I/O.
    '--data-path': null,
    '--split': null,
    '--mock-data': true,
    // Nothing is saved: a benchmark must not spend its time writing checkpoints.
    '--save': null,
    '--save-interval': null,
    '--eval-interval': null,
    '--eval-iters': '0',
  };
  if (!tokenizer) {
    args['--tokenizer-type'] = 'NullTokenizer';
    args['--tokenizer-name-or-path'] = null;
    args['--tokenizer-model'] = null;
    args['--vocab-size'] = String(preset.architecture.vocabSize ?? 32000);
  }
  const raw = {
    name: c.id,
    workspace: options.runDir,
    // A case may run another framework version than the suite's (its own checkout, when given).
    modellink: c.framework
      ? { ...suite.modellink, flavour: c.framework.flavour, version: c.framework.version, ...(c.framework.root ? { root: c.framework.root } : {}) }
      : suite.modellink,
    cluster: {
      nodes: c.shape.nodes,
      devicesPerNode: c.shape.devicesPerNode,
      ...(options.taskQueue ? { taskQueue: options.taskQueue } : {}),
      // The suite says where its cases run: Slurm jobs, or the pool's node workers.
      ...(suite.slurm ? { executor: 'slurm', slurm: suite.slurm } : {}),
    },
    // Without a tokenizer the path is never passed (NullTokenizer); the spec still wants one.
    model: { preset: c.preset, impl: c.shape.impl, tokenizer: tokenizer ?? path.join(options.runDir, 'no-tokenizer') },
    parallel: {
      tp: p.tp,
      pp: p.pp,
      cp: p.cp,
      ep: p.ep,
      ...(p.vpp !== undefined ? { vpp: p.vpp } : {}),
      ...(p.numLayerList ? { numLayerList: p.numLayerList } : {}),
    },
    stages: [
      {
        name: BENCHMARK_STAGE,
        kind: 'pretrain',
        // Replaced by --mock-data; the spec needs a data reference.
        data: path.join(options.runDir, 'mock-data'),
        trainIters: iterations,
        saveInterval: iterations,
        globalBatchSize: p.globalBatchSize,
        microBatchSize: p.microBatchSize,
        seqLength: c.shape.seqLength,
        // Long-sequence rows run past the model's usual positions, as their scripts do.
        ...(c.shape.seqLength > preset.architecture.maxPositionEmbeddings ? { maxPositionEmbeddings: c.shape.seqLength } : {}),
        precision: c.shape.precision,
        logInterval: 1,
        logThroughput: true,
        // A measurement saves nothing and is never stopped to resume: no per-iteration signal all-gather.
        exitSignalHandler: false,
        // A measurement: no event files to write.
        tensorboard: false,
        env: { ...c.env, [CASE_ENV]: c.id },
        args,
      },
    ],
  };
  const planned = planPipeline(raw, { baseDir: options.runDir });
  if (!planned.ok) return { ok: false, reason: `cannot plan the case: ${formatProblems(planned.problems).replace(/\n/g, '; ')}` };
  const stage = planned.plan.stages[0];
  return {
    ok: true,
    iterations,
    plan: {
      ...planned.plan,
      stages: [{ ...stage, inputs: [], training: stage.training && { ...stage.training, measureOnly: true } }],
    },
  };
}
