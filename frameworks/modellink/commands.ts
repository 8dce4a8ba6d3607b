/**
 * Command builders: a stage of a spec → the argv ModelLink's own example scripts would run.
 *
 * Arguments are kept as ordered [flag, value] pairs (the shape of examples.json) so they can
 * be checked against ModelLink's flag list, compared with the examples, and quoted for `render --sh`.
 * The order follows examples/mcore/llama2/*_7b_*.sh.
 */
import { float, num, type Arg } from './args.ts';
import type { Preset } from './presets.ts';
import type { ArgOverrides, ConvertStage, EvaluateStage, InferenceStage, PipelineSpec, PreprocessStage, TrainingStage, WeightFormat } from '../../spec/spec.ts';
import { DETERMINISTIC_ENV, featureArgs, type Features } from './features.ts';
import flagNames from './flag-names.json' with { type: 'json' };
import { pythonLaunch, renderLaunch, torchrunLaunch, type Launch, type TorchrunLaunch } from '../launch.ts';
import { FIRST_LOAD_ONLY_FLAGS } from '../dialect.ts';
import type { Entrypoint } from '../framework.ts';

export type { Entrypoint } from '../framework.ts';

export interface Command {
  entrypoint: Entrypoint;
  /** How the entrypoint starts: torchrun and its distributed options, or the Python interpreter. */
  launch: Launch;
  args: Arg[];
  env: Record<string, string>;
}

const knownFlags: Record<string, ReadonlySet<string>> = Object.fromEntries(
  Object.entries(flagNames as Record<string, string[]>).map(([entry, names]) => [entry, new Set(names)]),
);

/** A flag of ModelLink's parsers (frameworks/index.ts: any version's, through its Framework). */
export function isKnownFlag(entrypoint: Entrypoint, flag: string): boolean {
  return knownFlags[entrypoint]?.has(flag) ?? false;
}

export function flattenArgs(args: Arg[]): string[] {
  const out: string[] = [];
  for (const [flag, value] of args) {
    out.push(flag);
    if (value === null) continue;
    if (Array.isArray(value)) out.push(...value);
    else out.push(value);
  }
  return out;
}

export function commandArgv(cmd: Command): string[] {
  return [...renderLaunch(cmd.launch), cmd.entrypoint, ...flattenArgs(cmd.args)];
}

/**
 * Applies a stage's `args` overrides: a value replaces the flag's value in place (or appends the
 * flag), `true` makes it a bare flag, `null` removes it.
 */
export function applyOverrides(args: Arg[], overrides: ArgOverrides): Arg[] {
  let out = [...args];
  for (const [flagName, value] of Object.entries(overrides)) {
    if (value === null) {
      out = out.filter(([f]) => f !== flagName);
      continue;
    }
    const arg: Arg = [flagName, value === true ? null : value];
    const at = out.findIndex(([f]) => f === flagName);
    if (at >= 0) out[at] = arg;
    else out.push(arg);
  }
  return out;
}

/** A valued flag: the stage's value, else the default (written as ModelLink's scripts write it); null (or no default) leaves it out. */
function opt(name: string, value: string | number | null | undefined, fallback: string | number | undefined): Arg[] {
  const v = value === undefined ? fallback : value;
  if (v === null || v === undefined) return [];
  return [[name, typeof v === 'number' ? float(v) : v]];
}

function flag(on: boolean | undefined, name: string): Arg[] {
  return on ? [[name, null]] : [];
}

/**
 * Evaluation and inference run exactly tp × pp ranks (ModelLink forbids data parallelism there):
 * on as few nodes as hold them, a single node unless they need more devices than one has.
 */
function modelParallelLaunch(spec: PipelineSpec, devicesPerNode: number | undefined): TorchrunLaunch {
  // A stage's own `devices` is its processes per node on every node of the cluster, as in ModelLink's scripts.
  if (devicesPerNode !== undefined) return distributedLaunch(spec, devicesPerNode);
  const ranks = spec.parallel.tp * spec.parallel.pp;
  // The fewest nodes that hold the ranks in equal shares (torchrun starts the same number on each).
  let nodes = Math.max(1, Math.ceil(ranks / spec.cluster.devicesPerNode));
  while (nodes < spec.cluster.nodes && ranks % nodes !== 0) nodes++;
  if (ranks % nodes !== 0) nodes = 1;
  return distributedLaunch(spec, ranks / nodes, nodes);
}

function launcherArgv(spec: PipelineSpec): string[] {
  return Array.isArray(spec.modellink.launcher) ? [...spec.modellink.launcher] : [spec.modellink.launcher];
}

function distributedLaunch(spec: PipelineSpec, nprocPerNode: number, nnodes = spec.cluster.nodes): TorchrunLaunch {
  return torchrunLaunch(launcherArgv(spec), {
    nprocPerNode,
    nnodes,
    nodeRank: spec.cluster.nodeRank ?? 0,
    masterAddr: spec.cluster.masterAddr,
    masterPort: spec.cluster.masterPort,
  });
}

/**
 * The model's shape exactly as its ModelLink example script passes it (preset.architectureArgs,
 * --tokenizer-type included), plus where the tokenizer is: Llama2Tokenizer and SentencePiece read a
 * tokenizer.model file, PretrainedFromHF the HF directory.
 */
function modelArgs(spec: PipelineSpec, preset: Preset, tokenizer: string, overrides: { maxPositionEmbeddings?: number; tokenizerType?: string } = {}): Arg[] {
  const type = overrides.tokenizerType ?? preset.architecture.tokenizerType;
  const shape = (preset.architectureArgs[spec.model.impl] ?? []).map(([f, v]): Arg => {
    if (f === '--max-position-embeddings' && overrides.maxPositionEmbeddings !== undefined) return [f, num(overrides.maxPositionEmbeddings)];
    if (f === '--tokenizer-type') return [f, type];
    return [f, v];
  });
  const pathFlag = type === 'PretrainedFromHF' ? '--tokenizer-name-or-path' : '--tokenizer-model';
  return [...shape.map(([f, v]) => [f, Array.isArray(v) ? [...v] : v] as Arg), [pathFlag, tokenizer]];
}

export interface PreprocessPaths {
  input: string;
  tokenizer: string;
  outputPrefix: string;
}

export function buildPreprocess(spec: PipelineSpec, preset: Preset, stage: PreprocessStage, paths: PreprocessPaths): Command {
  // ModelLink's defaults (GeneralPretrainHandler, --json-keys text) are left unwritten, as its scripts mostly do.
  const args: Arg[] = [
    ['--input', paths.input],
    ['--tokenizer-name-or-path', paths.tokenizer],
    ['--tokenizer-type', 'PretrainedFromHF'],
    ...(stage.handler ? ([['--handler-name', stage.handler]] as Arg[]) : []),
    ['--output-prefix', paths.outputPrefix],
    ...(stage.jsonKeys ? ([['--json-keys', stage.jsonKeys.length === 1 ? stage.jsonKeys[0] : stage.jsonKeys]] as Arg[]) : []),
    ['--workers', num(stage.workers)],
    ['--log-interval', num(stage.logInterval)],
    ...flag(stage.overwriteCache, '--overwrite-cache'),
    ...(stage.promptType ? ([['--prompt-type', stage.promptType]] as Arg[]) : []),
    ...(stage.mapKeys ? ([['--map-keys', JSON.stringify(stage.mapKeys)]] as Arg[]) : []),
    ...flag(stage.appendEod, '--append-eod'),
    ...flag(stage.pack, '--pack'),
    ...(stage.seqLength ? ([['--seq-length', num(stage.seqLength)]] as Arg[]) : []),
  ];
  return { entrypoint: 'preprocess_data.py', launch: pythonLaunch(spec.modellink.python), args, env: {} };
}

/** Model-shape flags that convert_ckpt.py's loaders also define (flags.json convert combinations). */
const CONVERTER_SHAPE_FLAGS = ['--add-qkv-bias', '--add-dense-bias', '--post-norm', '--embed-layernorm'];

/** The flags of the model's shape (preset.architectureArgs) for the pipeline's implementation. */
function shapeFlags(preset: Preset, spec: PipelineSpec): Set<string> {
  return new Set((preset.architectureArgs[spec.model.impl] ?? []).map(([f]) => f));
}

export interface ConvertPaths {
  loadDir: string;
  saveDir: string;
  from: WeightFormat;
  to: WeightFormat;
  layout: { tp: number; pp: number; ep: number; numLayerList?: number[]; vpp?: number };
  /** The tokenizer.model file (or tokenizer.json) of the HF model; read when loading hf. */
  tokenizerModel?: string;
  lora?: { load: string; options: LoraOptions };
}

/**
 * convert_ckpt.py across ModelLink's conversion matrix (seed-features.json "conversion"):
 * hf → legacy/mcore, legacy ↔ mcore, legacy/mcore → hf, with the target layout, and a LoRA merge.
 */
export function buildConvert(spec: PipelineSpec, preset: Preset, stage: ConvertStage, paths: ConvertPaths): Command {
  const { from, to, layout } = paths;
  const mcoreModel = from === 'mcore' || (from === 'hf' && to === 'mcore') || (from === 'legacy' && to === 'mcore');
  const shape = shapeFlags(preset, spec);
  const args: Arg[] = [
    ...flag(mcoreModel, '--use-mcore-models'),
    ['--model-type-hf', preset.architecture.hfModelType],
    ['--model-type', 'GPT'],
    ['--load-model-type', from === 'hf' ? 'hf' : 'mg'],
    ['--save-model-type', to === 'hf' ? 'hf' : 'mg'],
    ...flag(from === 'legacy' && to === 'mcore', '--load-from-legacy'),
    ...flag(from === 'mcore' && to === 'legacy', '--save-to-legacy'),
    ['--target-tensor-parallel-size', num(layout.tp)],
    ['--target-pipeline-parallel-size', num(layout.pp)],
    ...(layout.ep > 1 || (to === 'hf' && spec.parallel.ep > 1) ? ([['--target-expert-parallel-size', num(layout.ep)]] as Arg[]) : []),
    ...(layout.numLayerList ? ([['--num-layer-list', layout.numLayerList.join(',')]] as Arg[]) : []),
    ...(layout.vpp ? ([['--num-layers-per-virtual-pipeline-stage', num(layout.vpp)]] as Arg[]) : []),
    ...flag(spec.moe.groupedGemm && mcoreModel, '--moe-grouped-gemm'),
    ...(stage.paramsDtype ? ([['--params-dtype', stage.paramsDtype]] as Arg[]) : []),
    // The converter must know the model's biases and norms; they come from the preset's shape.
    ...CONVERTER_SHAPE_FLAGS.filter((f) => shape.has(f)).map((f): Arg => [f, null]),
    ['--load-dir', paths.loadDir],
    ['--save-dir', paths.saveDir],
    // The HF loader requires it.
    ...(from === 'hf' && paths.tokenizerModel ? ([['--tokenizer-model', paths.tokenizerModel]] as Arg[]) : []),
    ...(paths.lora ? ([['--lora-load', paths.lora.load], ...loraArgs({ ...paths.lora.options, fusion: false }, from === 'mcore')] as Arg[]) : []),
  ];
  return { entrypoint: 'convert_ckpt.py', launch: pythonLaunch(spec.modellink.python), args, env: {} };
}

/** The spec's feature sections with the preset's defaults filled in (its example script's fused kernels). */
export function resolveFeatures(spec: PipelineSpec, preset: Preset): Features {
  const a = preset.architecture;
  const k = spec.kernels;
  return {
    parallel: spec.parallel,
    memory: spec.memory,
    kernels: {
      flashAttn: k.flashAttn ?? preset.fused.flashAttn,
      fusedRmsnorm: k.fusedRmsnorm ?? (preset.fused.rmsnorm && a.normalization === 'RMSNorm'),
      fusedSwiglu: k.fusedSwiglu ?? (preset.fused.swiglu && a.swiglu),
      fusedRotaryPosEmb: k.fusedRotaryPosEmb ?? (preset.fused.rotaryPosEmb && a.positionEmbeddingType === 'rope'),
      slidingWindow: k.slidingWindow,
    },
    communication: { ...spec.communication, overlapGradReduce: spec.communication.overlapGradReduce ?? spec.parallel.distributedOptimizer },
    moe: spec.moe,
    profiling: spec.profiling,
    deterministic: spec.deterministic,
    highAvailability: spec.highAvailability,
  };
}

export interface LoraOptions {
  r: number;
  alpha: number;
  fusion: boolean;
  targetModules?: string[];
}

/** The LoRA flags, with ModelLink's default target modules of each implementation. */
function loraArgs(lora: LoraOptions, mcore: boolean): Arg[] {
  return [
    ['--lora-r', num(lora.r)],
    ['--lora-alpha', num(lora.alpha)],
    ...flag(lora.fusion, '--lora-fusion'),
    [
      '--lora-target-modules',
      lora.targetModules ??
        (mcore ? ['linear_qkv', 'linear_proj', 'linear_fc1', 'linear_fc2'] : ['query_key_value', 'dense', 'dense_h_to_4h', 'dense_4h_to_h']),
    ],
  ];
}

export interface TrainingPaths {
  data: string;
  tokenizer: string;
  save: string;
  /** What the first attempt loads (converted weights or an earlier stage's checkpoints); later attempts load `save`. */
  load?: string;
  /** LoRA weights the first attempt continues from. */
  loraLoad?: string;
}

export function buildTraining(spec: PipelineSpec, preset: Preset, stage: TrainingStage, paths: TrainingPaths): Command {
  const a = preset.architecture;
  const p = spec.parallel;
  const mcore = spec.model.impl === 'mcore';
  // DPO trains on instruction-formatted pairs, as fine-tuning does (examples/mcore/llama2/dpo_llama2_7b_full_ptd.sh).
  const finetune = stage.kind === 'finetune' || stage.kind === 'dpo';
  const lora = finetune ? stage.lora : undefined;
  const seqLength = stage.seqLength ?? a.seqLength;
  const lr = stage.lr ?? preset.training.lr;
  const minLr = preset.training.minLr;
  const loadsWeights = paths.load !== undefined;
  const features = resolveFeatures(spec, preset);
  const shape = shapeFlags(preset, spec);
  const args: Arg[] = [
    ...flag(mcore, '--use-mcore-models'),
    ['--tensor-model-parallel-size', num(p.tp)],
    ['--pipeline-model-parallel-size', num(p.pp)],
    ...flag(p.sequenceParallel, '--sequence-parallel'),
    ...modelArgs(spec, preset, paths.tokenizer, { maxPositionEmbeddings: stage.maxPositionEmbeddings, tokenizerType: stage.tokenizerType }),
    ...(finetune ? ([['--tokenizer-not-use-fast', null]] as Arg[]) : []),
    ...(finetune && stage.promptType ? ([['--prompt-type', stage.promptType]] as Arg[]) : []),
    ...(stage.kind === 'finetune' ? ([['--variable-seq-lengths', null]] as Arg[]) : []),
    ['--seq-length', num(seqLength)],
    ['--micro-batch-size', num(stage.microBatchSize)],
    ['--global-batch-size', num(stage.globalBatchSize)],
    ['--lr', float(lr)],
    ['--train-iters', num(stage.trainIters)],
    ...opt('--lr-decay-style', stage.lrDecayStyle, 'cosine'),
    ...opt('--lr-decay-iters', stage.lrDecayIters, undefined),
    ...opt('--attention-dropout', stage.attentionDropout, '0.0'),
    ...opt('--init-method-std', stage.initMethodStd, 0.01),
    ...opt('--hidden-dropout', stage.hiddenDropout, '0.0'),
    ['--no-masked-softmax-fusion', null],
    ['--attention-softmax-in-fp32', null],
    ...opt('--min-lr', stage.minLr === undefined ? minLr : stage.minLr, undefined),
    ...opt('--weight-decay', stage.weightDecay, '1e-1'),
    ...opt('--lr-warmup-fraction', stage.lrWarmupFraction, stage.lrWarmupIters ? undefined : '0.01'),
    ...opt('--lr-warmup-iters', stage.lrWarmupIters, undefined),
    ...opt('--clip-grad', stage.clipGrad, '1.0'),
    ...opt('--adam-beta1', stage.adamBeta1, '0.9'),
    ...opt('--initial-loss-scale', stage.initialLossScale, preset.training.initialLossScale),
    ...opt('--adam-beta2', stage.adamBeta2, preset.training.adamBeta2),
    ...opt('--seed', stage.seed, undefined),
    ['--no-gradient-accumulation-fusion', null],
    ...(loadsWeights
      ? ([
          ['--no-load-optim', null],
          ['--no-load-rng', null],
        ] as Arg[])
      : []),
    ...flag(p.distributedOptimizer, '--use-distributed-optimizer'),
    ...flag(stage.saveOptimizer === false, '--no-save-optim'),
    ...flag(stage.saveRng === false, '--no-save-rng'),
    ...flag(stage.sharedStorage === false, '--no-shared-storage'),
    ...flag(stage.exitSignalHandler, '--exit-signal-handler'),
    // The model's own flags (e.g. its MoE router) come from the preset; features do not repeat them.
    ...featureArgs(features).filter(([f]) => !shape.has(f)),
    ...flag(stage.logThroughput, '--log-throughput'),
    [`--${stage.precision}`, null],
    ...(finetune && loadsWeights ? ([['--finetune', null]] as Arg[]) : []),
    ...(finetune ? ([['--is-instruction-dataset', null]] as Arg[]) : []),
    ...(lora && paths.loraLoad ? ([['--lora-load', paths.loraLoad]] as Arg[]) : []),
    ...(lora ? loraArgs(lora, mcore) : []),
    ['--data-path', paths.data],
    ['--split', stage.split ?? (finetune ? '100,0,0' : '949,50,1')],
    ['--log-interval', num(stage.logInterval)],
    ['--save-interval', num(stage.saveInterval)],
    ['--eval-interval', num(stage.evalInterval ?? Math.max(stage.trainIters, 1))],
    ['--eval-iters', num(stage.evalIters)],
    ['--distributed-backend', 'nccl'],
    ...flag(stage.jitCompile ?? !mcore, '--jit-compile'),
    ...(paths.load !== undefined ? ([['--load', paths.load]] as Arg[]) : []),
    ['--save', paths.save],
  ];
  const env: Record<string, string> = {
    CUDA_DEVICE_MAX_CONNECTIONS: '1',
    PYTORCH_NPU_ALLOC_CONF: 'expandable_segments:True',
    ...(features.deterministic ? DETERMINISTIC_ENV : {}),
  };
  return { entrypoint: 'pretrain_gpt.py', launch: distributedLaunch(spec, spec.cluster.devicesPerNode), args, env };
}

/**
 * The argv of an attempt that resumes from the stage's own save directory: `--load` points at it
 * (for LoRA: `--lora-load`, and `--load` at `loraLoadView` when given: the base weights seen through
 * a view whose tracker and distributed-optimizer files are the LoRA checkpoint's, see
 * loraResumeView), and the first-load-only flags go, so the iteration, optimizer and RNG state come
 * back from the checkpoint.
 */
export function resumeArgs(args: Arg[], saveDir: string, lora: boolean, loraLoadView?: string): Arg[] {
  const kept = args.filter(([f]) => !(FIRST_LOAD_ONLY_FLAGS as readonly string[]).includes(f));
  if (lora) {
    const withoutLoraLoad = kept
      .filter(([f]) => f !== '--lora-load')
      .map((arg): Arg => (loraLoadView !== undefined && arg[0] === '--load' ? ['--load', loraLoadView] : arg));
    const at = withoutLoraLoad.findIndex(([f]) => f === '--lora-target-modules');
    const loraLoad: Arg = ['--lora-load', saveDir];
    return at >= 0 ? [...withoutLoraLoad.slice(0, at + 1), loraLoad, ...withoutLoraLoad.slice(at + 1)] : [...withoutLoraLoad, loraLoad];
  }
  const at = kept.findIndex(([f]) => f === '--load');
  if (at >= 0) return kept.map((arg, i) => (i === at ? (['--load', saveDir] as Arg) : arg));
  const saveAt = kept.findIndex(([f]) => f === '--save');
  return [...kept.slice(0, saveAt), ['--load', saveDir], ...kept.slice(saveAt)];
}

/**
 * A DPO attempt that resumes: its reference model must stay the weights the first attempt loaded. DPOTrainer
 * loads it from --ref-model, else from --load (ModelLink modellink/tasks/rl/dpo.py _init_reference_model;
 * MindSpeed-LLM 2.3.0 mindspeed_llm/tasks/posttrain/dpo/dpo_trainer.py#L372), which now names the stage's own
 * checkpoints. Where the reference loads under the run's flags, converted weights (no RNG state) need --no-load-rng.
 */
export function dpoResumeArgs(args: Arg[], reference: { load: string; keepNoLoadRng: boolean }, step?: { dir: string; iteration: number }): Arg[] {
  const added: Arg[] = [];
  if (!args.some(([f]) => f === '--ref-model')) added.push(['--ref-model', step?.dir ?? reference.load]);
  // 2.1.0 loads iteration --refer-model-iter of it, whatever its tracker names (frameworks/mindspeed-llm/versions.ts).
  if (step && !args.some(([f]) => f === '--refer-model-iter')) added.push(['--refer-model-iter', num(step.iteration)]);
  if (reference.keepNoLoadRng && !args.some(([f]) => f === '--no-load-rng')) added.push(['--no-load-rng', null]);
  const at = args.findIndex(([f]) => f === '--load');
  return at < 0 ? [...args, ...added] : [...args.slice(0, at + 1), ...added, ...args.slice(at + 1)];
}

/**
 * A LoRA attempt that resumes as a warm restart (MindSpeed-LLM: nothing there points the optimizer's
 * state at --lora-load): the first attempt's command, with --lora-load at the newest LoRA checkpoint.
 * The iteration count, optimizer and learning-rate schedule start again; the LoRA weights go on.
 * Counting from 0 again, it must save elsewhere (`save`, its own folder) and train only what is left
 * (`trainIters`), or it rewrites the earlier attempt's checkpoints.
 */
export function warmLoraResumeArgs(args: Arg[], loraDir: string, target?: { save: string; trainIters: number }): Arg[] {
  const withoutLoraLoad = args
    .filter(([f]) => f !== '--lora-load')
    .map(([f, v]): Arg => (target && f === '--save' ? [f, target.save] : target && f === '--train-iters' ? [f, num(target.trainIters)] : [f, v]));
  const at = withoutLoraLoad.findIndex(([f]) => f === '--lora-target-modules');
  const loraLoad: Arg = ['--lora-load', loraDir];
  return at >= 0 ? [...withoutLoraLoad.slice(0, at + 1), loraLoad, ...withoutLoraLoad.slice(at + 1)] : [...withoutLoraLoad, loraLoad];
}

export interface EvaluatePaths {
  load: string;
  tokenizer: string;
  tasks: { name: string; dataPath: string }[];
  /** LoRA weights on top of `load`, with the settings they were trained with. */
  lora?: { load: string; options: LoraOptions };
}

/** evaluation.py as evaluate_llama2_7b_mmlu_ptd.sh runs it, on TP×PP devices (the checkpoint's layout). */
export function buildEvaluate(spec: PipelineSpec, preset: Preset, stage: EvaluateStage, paths: EvaluatePaths): Command {
  const a = preset.architecture;
  const p = spec.parallel;
  const seqLength = stage.seqLength ?? a.seqLength;
  const args: Arg[] = [
    // One task is written as one value, as ModelLink's scripts do.
    ['--task-data-path', paths.tasks.length === 1 ? paths.tasks[0].dataPath : paths.tasks.map((t) => t.dataPath)],
    ['--task', paths.tasks.length === 1 ? paths.tasks[0].name : paths.tasks.map((t) => t.name)],
    ['--seq-length', num(seqLength)],
    ['--max-new-tokens', num(stage.maxNewTokens)],
    ...(stage.evaluationBatchSize !== undefined ? ([['--evaluation-batch-size', num(stage.evaluationBatchSize)]] as Arg[]) : []),
    ['--tensor-model-parallel-size', num(p.tp)],
    ['--pipeline-model-parallel-size', num(p.pp)],
    ...modelArgs(spec, preset, paths.tokenizer, { tokenizerType: stage.tokenizerType }),
    ['--load', paths.load],
    ['--tokenizer-not-use-fast', null],
    [`--${stage.precision}`, null],
    ['--micro-batch-size', '1'],
    ...flag(resolveFeatures(spec, preset).kernels.fusedRmsnorm, '--use-fused-rmsnorm'),
    ['--exit-on-missing-checkpoint', null],
    ['--no-load-rng', null],
    ['--no-load-optim', null],
    ...(paths.lora ? ([['--lora-load', paths.lora.load], ...loraArgs(paths.lora.options, spec.model.impl === 'mcore')] as Arg[]) : []),
    ['--no-masked-softmax-fusion', null],
    ...flag(spec.model.impl === 'mcore', '--use-mcore-models'),
    ['--seed', '42'],
  ];
  const env: Record<string, string> = { CUDA_DEVICE_MAX_CONNECTIONS: '1' };
  return { entrypoint: 'evaluation.py', launch: modelParallelLaunch(spec, stage.devices), args, env };
}

export interface InferencePaths {
  load: string;
  tokenizer: string;
  lora?: { load: string; options: LoraOptions };
}

/** inference.py as generate_*.sh and chat_*.sh run it. */
export function buildInference(spec: PipelineSpec, preset: Preset, stage: InferenceStage, paths: InferencePaths): Command {
  const a = preset.architecture;
  const p = spec.parallel;
  const kernels = resolveFeatures(spec, preset).kernels;
  const args: Arg[] = [
    ['--tensor-model-parallel-size', num(p.tp)],
    ['--pipeline-model-parallel-size', num(p.pp)],
    ...flag(spec.model.impl === 'mcore', '--use-mcore-models'),
    ['--task', stage.tasks.length === 1 ? stage.tasks[0] : [...stage.tasks]],
    ...(stage.promptType ? ([['--prompt-type', stage.promptType]] as Arg[]) : []),
    ...flag(stage.kvCache, '--use-kv-cache'),
    ...flag(kernels.flashAttn, '--use-flash-attn'),
    ...(stage.topP !== undefined ? ([['--top-p', String(stage.topP)]] as Arg[]) : []),
    ...(stage.topK !== undefined ? ([['--top-k', String(stage.topK)]] as Arg[]) : []),
    ...(stage.temperature !== undefined ? ([['--temperature', String(stage.temperature)]] as Arg[]) : []),
    ...flag(kernels.fusedSwiglu, '--use-fused-swiglu'),
    ...flag(kernels.fusedRmsnorm, '--use-fused-rmsnorm'),
    ...flag(kernels.fusedRotaryPosEmb, '--use-fused-rotary-pos-emb'),
    ...modelArgs(spec, preset, paths.tokenizer, { tokenizerType: stage.tokenizerType }),
    ['--seq-length', num(stage.seqLength ?? a.seqLength)],
    ['--max-new-tokens', num(stage.maxNewTokens)],
    ['--micro-batch-size', num(stage.microBatchSize)],
    ...(stage.globalBatchSize !== undefined ? ([['--global-batch-size', num(stage.globalBatchSize)]] as Arg[]) : []),
    ['--load', paths.load],
    ['--tokenizer-not-use-fast', null],
    [`--${stage.precision}`, null],
    ['--attention-softmax-in-fp32', null],
    ['--no-load-optim', null],
    ['--no-load-rng', null],
    ['--no-masked-softmax-fusion', null],
    ['--no-gradient-accumulation-fusion', null],
    ['--exit-on-missing-checkpoint', null],
    ...(paths.lora ? ([['--lora-load', paths.lora.load], ...loraArgs(paths.lora.options, spec.model.impl === 'mcore')] as Arg[]) : []),
  ];
  const env: Record<string, string> = { CUDA_DEVICE_MAX_CONNECTIONS: '1' };
  return { entrypoint: 'inference.py', launch: modelParallelLaunch(spec, stage.devices), args, env };
}
