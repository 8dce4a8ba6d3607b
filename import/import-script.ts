/**
 * `linkflow import`: a ModelLink example-style script → a one-stage pipeline spec.
 *
 * What linkflow models as typed options (layout, features, iterations, batch sizes, paths…) is read
 * into those options; the spec is then rendered and whatever still differs from the script becomes
 * the stage's `args` overrides (and `env` entries), so rendering the import gives back the script's
 * command. The number of overrides says how much of the script linkflow's typed options explain.
 */
import path from 'node:path';
import type { Arg } from '../frameworks/modellink/args.ts';
import { acceptsValue, FEATURE_FLAGS } from '../frameworks/modellink/features.ts';
import { withNewNames } from '../frameworks/dialect.ts';
import { getFramework, type Entrypoint, type Framework, type FrameworkChoice } from '../frameworks/index.ts';
import { EVALUATION_TASKS } from '../spec/spec.ts';
import { frameworkOfScript } from './framework-of-script.ts';
import { planPipeline, type StagePlan } from '../plan/plan.ts';
import { renderLaunch } from '../frameworks/launch.ts';
import type { Impl, Preset } from '../frameworks/modellink/presets.ts';
import { presetFor, presetNamesFor } from '../frameworks/presets.ts';
import type { ParsedScript } from './shell-script.ts';

type Json = Record<string, unknown>;

export interface ImportOptions {
  /** The pipeline (and stage) name. */
  name: string;
  /** The ModelLink checkout the script ran in (its relative paths are relative to it). */
  root: string;
  /** A preset id; otherwise chosen by the script's architecture (and its file name). */
  preset?: string;
  /** The script's path, used to tell presets of the same shape apart (e.g. examples/llama2/…). */
  scriptPath?: string;
  workspace?: string;
  /** The framework version the script is for; by default read from the script (framework-of-script.ts). */
  framework?: FrameworkChoice;
}

export interface ImportResult {
  spec: Json;
  kind: string;
  preset: string;
  framework: FrameworkChoice;
  /** `args` overrides needed beyond the typed options. */
  overrides: number;
  notes: string[];
}

/** Flags whose values linkflow manages (outputs live in the workspace): compared by presence only. */
export const MANAGED_OUTPUT_FLAGS = new Set(['--save', '--save-dir', '--output-prefix']);

function value(args: Arg[], flag: string): string | string[] | null | undefined {
  const hit = args.find(([f]) => f === flag);
  return hit ? hit[1] : undefined;
}
const str = (args: Arg[], flag: string): string | undefined => {
  const v = value(args, flag);
  return typeof v === 'string' ? v : Array.isArray(v) ? v.join(' ') : undefined;
};
const int = (args: Arg[], flag: string): number | undefined => {
  const v = str(args, flag);
  return v !== undefined && /^-?\d+$/.test(v) ? Number(v) : undefined;
};
const numberOf = (args: Arg[], flag: string): number | undefined => {
  const v = str(args, flag);
  return v !== undefined && v !== '' && !Number.isNaN(Number(v)) ? Number(v) : undefined;
};
const has = (args: Arg[], flag: string) => args.some(([f]) => f === flag);
const list = (args: Arg[], flag: string): string[] | undefined => {
  const v = value(args, flag);
  return v === undefined || v === null ? undefined : Array.isArray(v) ? v : [v];
};

function scriptKind(parsed: ParsedScript): 'preprocess' | 'convert' | 'pretrain' | 'finetune' | 'dpo' | 'evaluate' | 'inference' {
  const entry = path.basename(parsed.entrypoint);
  if (entry === 'preprocess_data.py') return 'preprocess';
  if (entry === 'convert_ckpt.py' || entry === 'convert_ckpt_v2.py') return 'convert';
  if (entry === 'posttrain_gpt.py' || entry === 'trainer.py') {
    const stage = str(parsed.args, '--stage');
    if (stage === 'dpo') return 'dpo';
    if (stage === 'sft') return 'finetune';
    if (stage === undefined && entry === 'posttrain_gpt.py')
      // Every version's --stage defaults to None, and AutoTrainer then has no trainer to run (mindspeed_llm/tasks/posttrain/launcher.py get_trainer; post_train/ in 1.0.0).
      throw new Error(
        `cannot import ${entry} without --stage: linkflow runs the sft and dpo stages (add --stage sft or --stage dpo); without one MindSpeed-LLM's posttrain_gpt.py runs no trainer (launcher.py get_trainer returns None and train() fails)`,
      );
    throw new Error(`cannot import ${entry} --stage ${stage ?? '(none)'}: linkflow runs the sft and dpo stages (${stage ?? 'this'} is not a linkflow stage)`);
  }
  if (entry === 'evaluation.py') return 'evaluate';
  if (entry === 'inference.py') return 'inference';
  if (entry === 'pretrain_gpt.py') {
    const a = parsed.args;
    // --finetune alone only loads weights without their iteration and optimizer (Megatron training/checkpointing.py
    // load_checkpoint): continued pretraining on the pretrain dataset (deepseek2_lite's pretrain_*_ptd_8p.sh), kept as a flag.
    return has(a, '--is-instruction-dataset') || has(a, '--lora-r') || has(a, '--lora-target-modules') ? 'finetune' : 'pretrain';
  }
  throw new Error(
    `cannot import ${parsed.entrypoint || 'a script without a ModelLink launch'}: linkflow runs preprocess_data.py, convert_ckpt.py, convert_ckpt_v2.py, pretrain_gpt.py, posttrain_gpt.py, trainer.py, evaluation.py and inference.py`,
  );
}

/**
 * The preset whose shape the script uses: same layers, hidden size and heads; the script's own preset first.
 * A preset matched by shape alone must have the implementation the script builds (impl): a legacy-only
 * preset must not turn a script's --use-mcore-models into a legacy model.
 */
function matchPreset(parsed: ParsedScript, choice: FrameworkChoice, impl: Impl, scriptPath?: string): Preset | undefined {
  const layers = int(parsed.args, '--num-layers');
  const hidden = int(parsed.args, '--hidden-size');
  const all = presetNamesFor(choice)
    .map((n) => presetFor(n, choice)!)
    .filter((p) => p.name !== 'tiny');
  if (scriptPath) {
    // The presets that list this script (by file name) among their sources.
    const base = path.basename(scriptPath);
    const named = (v: unknown) => (Array.isArray(v) ? v : Object.values(v ?? {})).some((s) => typeof s === 'string' && path.basename(s) === base);
    const exact = all.filter((p) =>
      Object.values(p.sources).some((v) => (Array.isArray(v) ? v.includes(scriptPath) : Object.values(v ?? {}).includes(scriptPath))),
    );
    const own = exact.length > 0 ? exact : all.filter((p) => Object.values(p.sources).some(named));
    if (own.length === 1) return own[0];
    const shaped = own.find((p) => p.architecture.numLayers === layers && p.architecture.hiddenSize === hidden);
    if (shaped) return shaped;
    // A convert script without a size (ckpt_convert_qwen3_hf2mcore.sh) is for the model whose layers its target layout can hold.
    if (own.length > 0) return own.find((p) => holdsTargetLayout(p, parsed.args, impl)) ?? own[0];
  }
  const shaped = all.filter((p) => p.architecture.numLayers === layers && p.architecture.hiddenSize === hidden && p.impls.includes(impl));
  // Same heads and query groups first: a preset whose groups tp cannot divide would fail a layout the script runs.
  const heads = int(parsed.args, '--num-attention-heads');
  const groups = int(parsed.args, '--num-query-groups');
  const sameHeads = (p: Preset) =>
    (heads === undefined || p.architecture.numAttentionHeads === heads) && (groups === undefined || p.architecture.numQueryGroups === groups);
  const candidates = [...shaped.filter(sameHeads), ...shaped.filter((p) => !sameHeads(p))];
  const base = scriptPath
    ? path
        .basename(scriptPath)
        .toLowerCase()
        .replace(/[^a-z0-9]/g, '')
    : '';
  return candidates.find((p) => base.includes(p.name.replace(/[^a-z0-9]/g, ''))) ?? candidates[0];
}

/**
 * Whether a convert script's target layout fits the preset's layers as the converter counts them: the HF
 * model's plus the script's --noop-layers (plan/convert.ts checkTargetLayout has the rules and their sources).
 */
function holdsTargetLayout(p: Preset, a: Arg[], impl: 'mcore' | 'legacy'): boolean {
  const pp = int(a, '--target-pipeline-parallel-size');
  if (pp === undefined) return true;
  const count = (v: unknown) => (typeof v === 'string' ? v.split(',').filter((x) => x.trim() !== '').length : 0);
  const own = p.architectureArgs[impl]?.find(([f]) => f === '--noop-layers')?.[1];
  const layers = p.architecture.numLayers - count(own) + count(str(a, '--noop-layers'));
  const list = str(a, '--num-layer-list');
  if (list && /^\d+(,\d+)*$/.test(list)) return list.split(',').reduce((x, y) => x + Number(y), 0) === layers;
  const vpp = int(a, '--num-layers-per-virtual-pipeline-stage');
  return layers % pp === 0 && (vpp === undefined || ((layers / pp) % vpp === 0 && vpp < layers / pp));
}

function launcherOf(parsed: ParsedScript): string | string[] {
  const l = parsed.launcher.trim();
  return l.includes(' ') ? l.split(/\s+/) : l;
}

/** Training hyper-parameters: spec key, flag, value kind. */
const HYPER: [string, string, 'string' | 'number'][] = [
  ['lrDecayStyle', '--lr-decay-style', 'string'],
  ['lrWarmupFraction', '--lr-warmup-fraction', 'number'],
  ['lrWarmupIters', '--lr-warmup-iters', 'number'],
  ['lrDecayIters', '--lr-decay-iters', 'number'],
  ['weightDecay', '--weight-decay', 'number'],
  ['clipGrad', '--clip-grad', 'number'],
  ['adamBeta1', '--adam-beta1', 'number'],
  ['adamBeta2', '--adam-beta2', 'number'],
  ['initialLossScale', '--initial-loss-scale', 'number'],
  ['initMethodStd', '--init-method-std', 'number'],
  ['attentionDropout', '--attention-dropout', 'number'],
  ['hiddenDropout', '--hidden-dropout', 'number'],
  ['seed', '--seed', 'number'],
  ['minLr', '--min-lr', 'number'],
];

function stageFromScript(kind: string, a: Arg[], name: string, parsed: ParsedScript): Json {
  const stage: Json = { name, kind };
  const set = (key: string, v: unknown) => {
    if (v !== undefined) stage[key] = v;
  };
  switch (kind) {
    case 'preprocess':
      set('input', str(a, '--input'));
      set('handler', str(a, '--handler-name'));
      set('jsonKeys', list(a, '--json-keys'));
      set('promptType', str(a, '--prompt-type'));
      set('workers', int(a, '--workers'));
      set('logInterval', int(a, '--log-interval'));
      set('appendEod', has(a, '--append-eod') || undefined);
      set('pack', has(a, '--pack') || undefined);
      set('seqLength', int(a, '--seq-length'));
      set('overwriteCache', has(a, '--overwrite-cache') || undefined);
      {
        const mapKeys = str(a, '--map-keys');
        try {
          const parsedKeys = mapKeys ? (JSON.parse(mapKeys) as unknown) : undefined;
          if (parsedKeys && typeof parsedKeys === 'object' && Object.values(parsedKeys).every((v) => typeof v === 'string')) stage.mapKeys = parsedKeys;
        } catch {
          // Not JSON as written: the render's override keeps the script's text.
        }
      }
      break;
    case 'convert': {
      const v2 = path.basename(parsed.entrypoint) === 'convert_ckpt_v2.py';
      // convert_ckpt_v2.py: --load-model-type defaults to hf, --save-model-type to mg; mcore only.
      const loadHf = str(a, '--load-model-type') === 'hf' || /_hf$/.test(str(a, '--loader') ?? '') || (v2 && !has(a, '--load-model-type'));
      const saveHf = str(a, '--save-model-type') === 'hf' || /huggingface/.test(str(a, '--save-model-type') ?? '');
      const mcore = has(a, '--use-mcore-models') || v2;
      const from = loadHf ? 'hf' : has(a, '--load-from-legacy') ? 'legacy' : mcore ? 'mcore' : 'legacy';
      const to = saveHf ? 'hf' : has(a, '--save-to-legacy') ? 'legacy' : mcore || (from === 'legacy' && has(a, '--load-from-legacy')) ? 'mcore' : 'legacy';
      set('from', str(a, '--load-dir'));
      stage.fromFormat = from;
      stage.to = to;
      if (to !== 'hf') {
        set('tp', int(a, '--target-tensor-parallel-size'));
        set('pp', int(a, '--target-pipeline-parallel-size'));
        set('ep', int(a, '--target-expert-parallel-size'));
        set('vpp', int(a, '--num-layers-per-virtual-pipeline-stage'));
        const nll = str(a, '--num-layer-list');
        if (nll && /^\d+(,\d+)*$/.test(nll)) stage.numLayerList = nll.split(',').map(Number);
      } else {
        set('hfDir', str(a, '--save-dir'));
      }
      if (has(a, '--lora-load'))
        stage.lora = { load: str(a, '--lora-load'), r: int(a, '--lora-r'), alpha: int(a, '--lora-alpha'), targetModules: list(a, '--lora-target-modules') };
      if (!v2) set('tokenizerModel', str(a, '--tokenizer-model'));
      set('paramsDtype', str(a, '--params-dtype'));
      break;
    }
    case 'pretrain':
    case 'finetune':
    case 'dpo':
      set('data', str(a, '--data-path'));
      set('load', str(a, '--load'));
      set('trainIters', int(a, '--train-iters'));
      set('saveInterval', int(a, '--save-interval') ?? int(a, '--train-iters'));
      set('logInterval', int(a, '--log-interval'));
      set('microBatchSize', int(a, '--micro-batch-size'));
      set('globalBatchSize', int(a, '--global-batch-size'));
      set('seqLength', int(a, '--seq-length'));
      set('maxPositionEmbeddings', int(a, '--max-position-embeddings'));
      set('lr', numberOf(a, '--lr'));
      stage.precision = has(a, '--fp16') ? 'fp16' : 'bf16';
      // Hyper-parameters the script leaves out stay out (null), so ModelLink's defaults apply as in the script.
      for (const [key, flagName, kindOf] of HYPER) {
        const v = kindOf === 'string' ? str(a, flagName) : numberOf(a, flagName);
        stage[key] = v === undefined ? null : v;
      }
      stage.jitCompile = has(a, '--jit-compile');
      if (has(a, '--no-save-optim')) stage.saveOptimizer = false;
      if (has(a, '--no-save-rng')) stage.saveRng = false;
      if (has(a, '--no-shared-storage')) stage.sharedStorage = false;
      // linkflow's default is on (stop and drain save); a script without the flag keeps it off.
      stage.exitSignalHandler = has(a, '--exit-signal-handler');
      // linkflow's TensorBoard default stays off too: a script's own --tensorboard-dir is kept in args as written.
      stage.tensorboard = false;
      set('tokenizerType', str(a, '--tokenizer-type'));
      set('evalInterval', int(a, '--eval-interval'));
      set('evalIters', int(a, '--eval-iters'));
      set('split', str(a, '--split'));
      stage.logThroughput = has(a, '--log-throughput');
      if (has(a, '--ckpt-format')) set('checkpointFormat', str(a, '--ckpt-format') === 'torch_dist' ? 'torch_dist' : 'torch');
      if (kind === 'dpo') {
        set('lossType', str(a, '--dpo-loss-type'));
        set('beta', numberOf(a, '--dpo-beta'));
      }
      if (kind === 'finetune' || kind === 'dpo') {
        set('promptType', str(a, '--prompt-type'));
        if (has(a, '--lora-r') || has(a, '--lora-target-modules')) {
          stage.lora = {
            r: int(a, '--lora-r') ?? 16,
            alpha: int(a, '--lora-alpha') ?? 32,
            targetModules: list(a, '--lora-target-modules'),
            fusion: has(a, '--lora-fusion'),
            ...(has(a, '--lora-load') ? { load: str(a, '--lora-load') } : {}),
          };
        }
      }
      break;
    case 'evaluate': {
      set('load', str(a, '--load'));
      const tasks = list(a, '--task') ?? [];
      const paths = list(a, '--task-data-path') ?? [];
      // A task spelled as a script variable (${TASK}) is not a task linkflow knows: the render's override carries it.
      const known: readonly string[] = EVALUATION_TASKS;
      // A script without a data path evaluates nothing (evaluation.py skips a task without one): left for the user to fill in.
      stage.tasks = (tasks.length ? tasks : ['mmlu']).map((t, i) => ({
        name: known.includes(t) ? t : 'mmlu',
        dataPath: paths[i] ?? paths[0] ?? '${TASK_DATA_PATH}',
      }));
      set('maxNewTokens', int(a, '--max-new-tokens'));
      set('evaluationBatchSize', int(a, '--evaluation-batch-size'));
      set('seqLength', int(a, '--seq-length'));
      set('tokenizerType', str(a, '--tokenizer-type'));
      set('devices', typeof parsed.distributed.nproc_per_node === 'number' ? parsed.distributed.nproc_per_node : undefined);
      stage.precision = has(a, '--fp16') ? 'fp16' : 'bf16';
      break;
    }
    case 'inference':
      set('load', str(a, '--load'));
      set('tasks', list(a, '--task')?.length ? list(a, '--task') : undefined);
      set('promptType', str(a, '--prompt-type'));
      set('maxNewTokens', int(a, '--max-new-tokens'));
      set('microBatchSize', int(a, '--micro-batch-size'));
      set('globalBatchSize', int(a, '--global-batch-size'));
      set('seqLength', int(a, '--seq-length'));
      set('topP', numberOf(a, '--top-p'));
      set('topK', int(a, '--top-k'));
      set('temperature', numberOf(a, '--temperature'));
      set('tokenizerType', str(a, '--tokenizer-type'));
      stage.kvCache = has(a, '--use-kv-cache');
      set('devices', typeof parsed.distributed.nproc_per_node === 'number' ? parsed.distributed.nproc_per_node : undefined);
      stage.precision = has(a, '--fp16') ? 'fp16' : 'bf16';
      if (stage.tasks && (stage.tasks as string[]).includes('chat')) stage.prompts = ['(your prompt)'];
      break;
  }
  return stage;
}

/** Feature sections from the flags the script uses (see frameworks/modellink/features.ts). */
function featuresFromScript(a: Arg[], runsModel: boolean, renamed: Readonly<Record<string, string>>): Json {
  const sections: Record<string, Json> = {};
  for (const f of FEATURE_FLAGS) {
    // The script's flags carry the version's new names (--use-mc2 is read as --use-ascend-mc2 on 2.3.0).
    const name = renamed[f.flag] ?? f.flag;
    if (!has(a, name)) continue;
    const v = value(a, name);
    const parsed =
      f.kind === 'bool'
        ? true
        : f.kind === 'int'
          ? Number(v)
          : f.kind === 'float'
            ? Number(v)
            : f.kind === 'ints'
              ? (Array.isArray(v) ? v : [v]).map(Number)
              : f.kind === 'csv'
                ? String(v).split(',').map(Number)
                : v;
    if (f.kind !== 'bool' && (v === null || (typeof parsed === 'number' && Number.isNaN(parsed)))) continue;
    // A value the typed option does not take (alltoall_seq, a newer router) stays a verbatim flag.
    if (!acceptsValue(f, parsed)) continue;
    (sections[f.section] ??= {})[f.key] = parsed;
  }
  if (!runsModel && sections.parallel) {
    // A converter's --num-layer-list and --num-layers-per-virtual-pipeline-stage are its target layout (the convert
    // stage's numLayerList and vpp, with its --target-pipeline-parallel-size), not the pipeline's training layout.
    delete sections.parallel.numLayerList;
    delete sections.parallel.vpp;
    if (!Object.keys(sections.parallel).length) delete sections.parallel;
  }
  if (runsModel) {
    // Kernels and overlap are explicit in an imported spec: absent in the script means off.
    sections.kernels = { flashAttn: false, fusedRmsnorm: false, fusedSwiglu: false, fusedRotaryPosEmb: false, ...sections.kernels };
    sections.communication = { overlapGradReduce: false, ...sections.communication };
  }
  if (sections.profiling) sections.profiling = { enabled: true, ...sections.profiling };
  if (sections.highAvailability) sections.highAvailability = { enabled: true, ...sections.highAvailability };
  return sections;
}

/** Values compared as the script means them: paths resolved against the ModelLink root. */
export function normalizeValue(v: string | string[] | null, root: string): string {
  const one = (x: string) =>
    x.includes('${')
      ? x.slice(x.indexOf('${'))
      : /^-?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(x)
        ? String(Number(x))
        : x.startsWith('./') || x.startsWith('../') || x.startsWith('${') || (x.includes('/') && !x.includes(' ') && !x.startsWith('/'))
          ? path.resolve(root, x)
          : x.startsWith('/')
            ? path.normalize(x)
            : x;
  if (v === null) return 'null';
  return Array.isArray(v) ? JSON.stringify(v.map(one)) : one(v);
}

/** Overrides that turn `rendered` into `script` (flag → value, true for bare, null to remove). */
function argDifferences(rendered: Arg[], script: Arg[], root: string): Record<string, string | string[] | true | null> {
  const out: Record<string, string | string[] | true | null> = {};
  const renderedByFlag = new Map(rendered.map(([f, v]) => [f, v] as const));
  const scriptFlags = new Set(script.map(([f]) => f));
  for (const [f, v] of script) {
    const r = renderedByFlag.get(f);
    const same = renderedByFlag.has(f) && (MANAGED_OUTPUT_FLAGS.has(f) || normalizeValue(r ?? null, root) === normalizeValue(v, root));
    if (!same) out[f] = v === null ? true : Array.isArray(v) ? [...v] : v;
  }
  for (const [f] of rendered) if (!scriptFlags.has(f)) out[f] = null;
  return out;
}

/** The arguments as argparse reads them: a flag given twice keeps its last value (scripts do repeat flags). */
export function lastWins(args: Arg[]): Arg[] {
  const last = new Map(args.map(([f], i) => [f, i]));
  return args.filter(([f], i) => last.get(f) === i);
}

/** Layout flags with no typed option that the plan's rules read from `args`. */
function layoutArgs(kind: string, a: Arg[], presetLayers: number | undefined): Record<string, string | null> {
  const etp = str(a, '--expert-tensor-parallel-size');
  const layers = str(a, '--num-layers');
  const trimmed = presetLayers !== undefined && layers !== undefined && layers !== String(presetLayers);
  // A converter counts its --noop-layers into the layers it lays out (plan/convert.ts checkTargetLayout reads them from args).
  const noop = kind === 'convert' ? str(a, '--noop-layers') : undefined;
  // A fine-tune with context parallelism but without --variable-seq-lengths: the rule on CP with variable lengths must not apply.
  const fixedLengths = kind === 'finetune' && (int(a, '--context-parallel-size') ?? 1) > 1 && !has(a, '--variable-seq-lengths');
  return {
    ...(etp === undefined ? {} : { '--expert-tensor-parallel-size': etp }),
    ...(fixedLengths ? { '--variable-seq-lengths': null } : {}),
    ...(trimmed ? { '--num-layers': layers } : {}),
    ...(noop === undefined ? {} : { '--noop-layers': noop }),
  };
}

export function importScript(parsed: ParsedScript, options: ImportOptions): ImportResult {
  const kind = scriptKind(parsed);
  const choice = options.framework ?? frameworkOfScript(parsed.entrypoint, lastWins(parsed.args));
  const framework = getFramework(choice);
  if (!framework) throw new Error(`linkflow does not know ${choice.flavour} ${choice.version}`);
  // A deprecated name (--moe-intermediate-size) is read as the flag it sets (--moe-ffn-hidden-size), as linkflow renders it.
  const a = lastWins(withNewNames(framework, parsed.args));
  const impl = implOfScript(framework, kind, a);
  const preset = options.preset ? presetFor(options.preset, choice) : matchPreset(parsed, choice, impl, options.scriptPath);
  // Preprocessing and conversion pass no shape: a model without a preset is then known by its HF type only.
  const architecture = preset ? undefined : (architectureOfScript(a) ?? (kind === 'preprocess' || kind === 'convert' ? shapelessArchitecture(a) : undefined));
  if (!preset && !architecture)
    throw new Error(`no preset has this script's shape (--num-layers ${str(a, '--num-layers')}, --hidden-size ${str(a, '--hidden-size')}); pass --preset`);
  const d = parsed.distributed;
  const asInt = (x: unknown, fallback: number) => (typeof x === 'number' ? x : typeof x === 'string' && /^\d+$/.test(x) ? Number(x) : fallback);
  const features = featuresFromScript(a, kind !== 'convert' && kind !== 'preprocess', framework.renamed);
  const stage = stageFromScript(kind, a, options.name, parsed);
  // The plan's expert-parallel rule reads expert-TP from the stage's args (frameworks/modellink/rules.ts), so it goes in before the first render.
  const seeded = layoutArgs(kind, a, preset?.architecture.numLayers);
  if (Object.keys(seeded).length) stage.args = seeded;
  const spec: Json = {
    name: options.name,
    workspace: options.workspace ?? './linkflow-workspace',
    modellink: {
      root: options.root,
      ...(framework.flavour !== 'modellink' ? { flavour: framework.flavour, version: framework.version } : {}),
      ...(kind === 'convert' && framework.converters.length > 1 ? { converter: path.basename(parsed.entrypoint) } : {}),
      python: 'python',
      launcher: parsed.launcher && parsed.launcher !== 'python' ? launcherOf(parsed) : 'torchrun',
      ...(parsed.sources[0] ? { setupScript: parsed.sources[0] } : {}),
    },
    cluster: {
      nodes: asInt(d.nnodes, 1),
      devicesPerNode: asInt(d.nproc_per_node, 8),
      ...(typeof d.master_addr === 'string' && d.master_addr ? { masterAddr: d.master_addr } : {}),
      ...(d.node_rank !== undefined && d.node_rank !== null && d.node_rank !== 0 ? { nodeRank: d.node_rank } : {}),
      masterPort: typeof d.master_port === 'string' && d.master_port.startsWith('${') ? d.master_port : asInt(d.master_port, 6000),
    },
    model: {
      ...(preset ? { preset: preset.name } : { architecture }),
      impl: !preset || preset.impls.includes(impl) ? impl : preset.impls[0],
      tokenizer: str(a, '--tokenizer-name-or-path') ?? str(a, '--tokenizer-model') ?? str(a, '--load-dir') ?? '.',
    },
    parallel: {
      tp: int(a, '--tensor-model-parallel-size') ?? 1,
      pp: int(a, '--pipeline-model-parallel-size') ?? 1,
      sequenceParallel: has(a, '--sequence-parallel'),
      distributedOptimizer: has(a, '--use-distributed-optimizer'),
      ...(features.parallel ?? {}),
    },
    ...Object.fromEntries(Object.entries(features).filter(([k]) => k !== 'parallel')),
    ...(has(a, framework.renamed['--use-deter-comp'] ?? '--use-deter-comp') ? { deterministic: true } : {}),
    stages: [stage],
  };

  // Render once, then record what the typed options did not reproduce.
  const first = renderStage(spec, options.root);
  const notes: string[] = [];
  let overrides: Record<string, unknown> = {};
  if (first.ok) {
    overrides = argDifferences(first.stage.args, a, options.root);
    const envDiff: Record<string, string | null> = {};
    for (const [k, v] of Object.entries(parsed.env)) if (first.stage.env[k] !== v) envDiff[k] = v;
    for (const k of Object.keys(first.stage.env)) if (!(k in parsed.env)) envDiff[k] = null;
    if (Object.keys(envDiff).length) stage.env = envDiff;
  } else {
    notes.push(...first.problems);
  }
  if (Object.keys(overrides).length) {
    stage.args = { ...seeded, ...overrides };
    const entry = first.ok ? first.stage.entrypoint : undefined;
    const unknown = entry ? Object.keys(overrides).filter((f) => !framework.isKnownFlag(entry as Entrypoint, f)) : [];
    if (unknown.length) {
      // The script itself passes flags its version does not define (examples.json lists such scripts as broken).
      stage.allowUnknownFlags = true;
      notes.push(`the script passes ${unknown.join(', ')}, which ${framework.name}'s ${entry} does not define`);
    }
  }
  if (parsed.warnings.length) notes.push(...parsed.warnings.map((w) => `script: ${w}`));
  const repeated = [...new Set(parsed.args.map(([f]) => f).filter((f, i, all) => all.indexOf(f) !== i))];
  if (repeated.length) notes.push(`script: passes ${repeated.join(', ')} more than once; argparse keeps the last, and so does the import`);
  return { spec, kind, preset: preset?.name ?? 'custom', framework: choice, overrides: Object.keys(overrides).length, notes };
}

/** The imported spec's one stage as linkflow would run it, with its launcher rendered to argv (what the script wrote). */
export function renderStage(spec: Json, root: string): { ok: true; stage: StagePlan & { launcher: string[] } } | { ok: false; problems: string[] } {
  const r = planPipeline(spec, { baseDir: root });
  if (!r.ok) return { ok: false, problems: r.problems.map((p) => `${p.path}: ${p.message}`) };
  const stage = r.plan.stages[0];
  return { ok: true, stage: { ...stage, launcher: renderLaunch(stage.launch) } };
}

/**
 * The imported stage's paths made absolute against the ModelLink checkout the script ran in, so
 * the spec means the same wherever it is saved. Script variables (${NAME}) are left for the user.
 */
export function absolutizePaths(spec: Json, root: string): Json {
  const fix = (v: unknown) => (typeof v === 'string' && !v.startsWith('/') && !v.includes('${') ? path.resolve(root, v) : v);
  const model = spec.model as Json;
  model.tokenizer = fix(model.tokenizer);
  const modellink = spec.modellink as Json;
  modellink.root = path.resolve(root);
  for (const stage of spec.stages as Json[]) {
    for (const key of ['input', 'from', 'data', 'load', 'hfDir', 'loraLoad', 'tokenizerModel']) if (key in stage) stage[key] = fix(stage[key]);
    if (Array.isArray(stage.tasks) && typeof stage.tasks[0] === 'object') for (const t of stage.tasks as Json[]) t.dataPath = fix(t.dataPath);
    if (stage.lora && typeof stage.lora === 'object') (stage.lora as Json).load = fix((stage.lora as Json).load);
  }
  return spec;
}

/** Megatron-core or legacy, as the version reads the script: before 2.2.0 mcore is asked for, from it legacy is. */
function implOfScript(framework: Framework, kind: string, a: Arg[]): 'mcore' | 'legacy' {
  if (framework.mcoreDefault) return has(a, '--use-legacy-models') ? 'legacy' : 'mcore';
  return has(a, '--use-mcore-models') || (kind === 'convert' && has(a, '--load-from-legacy')) ? 'mcore' : 'legacy';
}

/** A model without a preset, written out from the script's shape flags (model.architecture); undefined without them. */
function architectureOfScript(a: Arg[]): Json | undefined {
  const numLayers = int(a, '--num-layers');
  const hiddenSize = int(a, '--hidden-size');
  const numAttentionHeads = int(a, '--num-attention-heads');
  if (numLayers === undefined || hiddenSize === undefined || numAttentionHeads === undefined) return undefined;
  const seqLength = int(a, '--seq-length') ?? 4096;
  const out: Json = {
    numLayers,
    hiddenSize,
    ffnHiddenSize: int(a, '--ffn-hidden-size') ?? 4 * hiddenSize,
    numAttentionHeads,
    maxPositionEmbeddings: int(a, '--max-position-embeddings') ?? seqLength,
    seqLength,
    makeVocabSizeDivisibleBy: int(a, '--make-vocab-size-divisible-by') ?? 1,
    positionEmbeddingType: str(a, '--position-embedding-type') ?? 'learned_absolute',
    normalization: str(a, '--normalization') ?? 'LayerNorm',
    swiglu: has(a, '--swiglu'),
    untieEmbeddingsAndOutputWeights: has(a, '--untie-embeddings-and-output-weights'),
    disableBiasLinear: has(a, '--disable-bias-linear'),
  };
  const set = (key: string, v: unknown) => {
    if (v !== undefined) out[key] = v;
  };
  set('numQueryGroups', int(a, '--num-query-groups'));
  set('vocabSize', int(a, '--vocab-size'));
  set('normEpsilon', numberOf(a, '--norm-epsilon'));
  set('rotaryBase', numberOf(a, '--rotary-base'));
  set('tokenizerType', str(a, '--tokenizer-type'));
  set('hfModelType', str(a, '--model-type-hf'));
  return out;
}

/**
 * 120 layers, or as many as the target layout needs (the converter lays out the model's layers plus its
 * --noop-layers: whole virtual stages, fewer per virtual stage than per pipeline stage).
 */
function standInLayers(a: Arg[]): number {
  const pp = int(a, '--target-pipeline-parallel-size') ?? 1;
  const vpp = int(a, '--num-layers-per-virtual-pipeline-stage');
  const noop = (str(a, '--noop-layers') ?? '').split(',').filter((x) => x.trim() !== '').length;
  const gcd = (x: number, y: number): number => (y === 0 ? x : gcd(y, x % y));
  const unit = vpp === undefined ? pp : pp * vpp * 2;
  const total = (120 * unit) / gcd(120, unit);
  return total - noop;
}

/**
 * The stand-in shape of a model a preprocess or convert script names without its shape: those commands
 * pass none of it (convert_ckpt*.py reads it from the HF config), so it only has to satisfy the layout
 * checks (120 layers and heads divide by every TP and PP the scripts use, or their --num-layer-list).
 */
function shapelessArchitecture(a: Arg[]): Json {
  const layerList = str(a, '--num-layer-list');
  const numLayers = layerList && /^\d+(,\d+)*$/.test(layerList) ? layerList.split(',').reduce((x, y) => x + Number(y), 0) : standInLayers(a);
  const hfModelType = str(a, '--model-type-hf');
  return {
    numLayers,
    hiddenSize: 7680,
    ffnHiddenSize: 20480,
    numAttentionHeads: 120,
    maxPositionEmbeddings: 4096,
    seqLength: int(a, '--seq-length') ?? 4096,
    ...(hfModelType && !hfModelType.includes('${') ? { hfModelType } : {}),
  };
}
