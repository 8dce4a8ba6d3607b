/**
 * Spec → plan: validates a pipeline spec as a whole and resolves it into plain data the
 * workflow can carry — per stage the exact command, its inputs, its output directory and,
 * for training stages, what a resume needs. Pure: paths are resolved, never touched.
 */
import path from 'node:path';
import { applyOverrides, buildConvert, buildEvaluate, buildInference, buildPreprocess, buildTraining, commandArgv, isKnownFlag, type Arg, type Command, type ConvertPaths, type Entrypoint, type LoraOptions } from './commands.ts';
import { customPreset, getPreset, presetNames, type Preset } from './presets.ts';
import type { FailureClass } from './failures.ts';
import type { HangWindows } from './hang.ts';
import type { Launch } from './launch.ts';
import { checkEvaluationDataPaths, checkHosts, checkLayout, checkStageRules } from './rules.ts';
import { durationToMs, formatPath, pipelineSpecSchema, type PipelineSpec, type SpecProblem, type Stage, type StageKind } from './spec.ts';

export type OutputKind = 'pretrain-data' | 'instruction-data' | 'pairwise-data' | 'checkpoint' | 'hf-model' | 'results';

/** What a checkpoint output holds: which implementation, at which layout. */
export interface WeightsFormat {
  impl: 'mcore' | 'legacy';
  tp: number;
  pp: number;
  /** Expert parallel size: MoE shards carry an expert rank in their names. */
  ep: number;
}

export interface StageInput {
  /** Which field of the stage this came from, e.g. "stages[2].data". */
  specPath: string;
  path: string;
  kind: 'file' | 'dir' | 'file-or-dir' | OutputKind;
  /** Set when the input is an earlier stage's output. */
  fromStage?: string;
}

export interface TrainingPlan {
  saveDir: string;
  trainIters: number;
  saveInterval: number;
  /** Apply save-interval advice (Young/Daly) from the attempt log at the next attempt. */
  autoSaveInterval: boolean;
  /** A benchmark case: the job runs its iterations and saves nothing, so there is nothing to resume from or to fence. */
  measureOnly?: boolean;
  seqLength: number;
  globalBatchSize: number;
  worldSize: number;
  tp: number;
  pp: number;
  /** Expert parallel size (MoE): its checkpoints have TP × PP × EP shards. */
  ep: number;
  lora: boolean;
  /** LoRA: the base weights the first attempt's --load names; a resume loads them through a view (see loraResumeView). */
  loraBase?: string;
  hang: HangWindows;
}

export interface StagePlan {
  name: string;
  kind: StageKind;
  specPath: string;
  /** <workspace>/<pipeline>/<stage>: output, logs and manifest live here. */
  dir: string;
  logDir: string;
  manifestFile: string;
  output: string;
  outputKind: OutputKind;
  entrypoint: Entrypoint;
  /** How the entrypoint starts (torchrun and its options, or python): rendered to argv only where it runs or is shown. */
  launch: Launch;
  args: Arg[];
  /** The argv of the first attempt; training resumes rewrite --load (see resumeArgs). */
  argv: string[];
  /** The stage's own variables (ModelLink's defaults, then modellink.env, then stage env); the worker's environment is underneath. */
  env: Record<string, string>;
  cwd: string;
  setupScript?: string;
  inputs: StageInput[];
  training?: TrainingPlan;
  evaluate?: { tasks: string[]; resultsFile: string };
  /** Checkpoint outputs: their implementation and layout, so later stages are checked against them. */
  format?: WeightsFormat;
  /** The TP/PP/EP layout this stage loads weights in (training, evaluation, inference). */
  loadLayout?: { tp: number; pp: number; ep: number };
  /** The pipeline's own failure patterns (regular expression sources), checked before the built-in ones. */
  failureRules: { class: FailureClass; pattern: string }[];
  /** Written to the process's standard input (chat prompts), then closed. */
  stdin?: string;
  /** Conversions to hf: ModelLink writes into a directory holding the original HF files; this one links to them. */
  hfView?: { from: string; dir: string };
  maxAttempts?: number;
}

export interface PipelinePlan {
  name: string;
  /** cluster.nodes: stages launched with torchrun run as a gang of this many node ranks. */
  nodes: number;
  /** Named hosts, rank k on hosts[k]; otherwise free workers of the pool (the task queue). */
  hosts?: string[];
  workspace: string;
  dir: string;
  taskQueue?: string;
  stages: StagePlan[];
}

export type PlanResult = { ok: true; plan: PipelinePlan; spec: PipelineSpec; warnings: SpecProblem[] } | { ok: false; problems: SpecProblem[] };

export interface PlanOptions {
  /** Relative paths in the spec are relative to this directory (the spec file's). */
  baseDir: string;
  /** Overrides spec.workspace (the demo runs each time in a fresh one). */
  workspace?: string;
}

const OUTPUT_KINDS: Record<StageKind, OutputKind> = {
  preprocess: 'pretrain-data',
  convert: 'checkpoint',
  pretrain: 'checkpoint',
  finetune: 'checkpoint',
  evaluate: 'results',
  inference: 'results',
};

export function planPipeline(raw: unknown, options: PlanOptions): PlanResult {
  const parsed = pipelineSpecSchema.safeParse(raw);
  if (!parsed.success) {
    return { ok: false, problems: parsed.error.issues.map((i) => ({ path: formatPath(i.path), message: i.message })) };
  }
  const spec = parsed.data;
  const problems: SpecProblem[] = [];
  const warnings: SpecProblem[] = [];
  const preset = resolvePreset(spec, problems);
  if (preset) checkLayout(spec, preset, problems, warnings);
  checkHosts(spec, problems);
  const names = new Map<string, number>();
  spec.stages.forEach((s, i) => {
    if (names.has(s.name)) problems.push({ path: `stages[${i}].name`, message: `"${s.name}" is already the name of stages[${names.get(s.name)}]; stage names must be unique` });
    else names.set(s.name, i);
  });
  if (!preset) return { ok: false, problems };

  const resolve = (p: string) => path.resolve(options.baseDir, p);
  const workspace = options.workspace ? path.resolve(options.workspace) : resolve(spec.workspace);
  const pipelineDir = path.join(workspace, spec.name);
  const root = resolve(spec.modellink.root);
  const launcher = Array.isArray(spec.modellink.launcher) ? spec.modellink.launcher : [spec.modellink.launcher];
  const resolvedSpec: PipelineSpec = {
    ...spec,
    modellink: {
      ...spec.modellink,
      // A launcher or python given as a relative path (./emulator/torchrun) is relative to the spec; bare names stay for PATH lookup.
      launcher: launcher.map((l) => (l.includes('/') ? resolve(l) : l)),
      python: spec.modellink.python.includes('/') ? resolve(spec.modellink.python) : spec.modellink.python,
    },
  };
  const tokenizer = resolveTokenizer(spec, preset, resolve, problems);
  const plans: StagePlan[] = [];

  spec.stages.forEach((stage, i) => {
    const specPath = `stages[${i}]`;
    // A stage may launch differently from the pipeline (launcher, master port).
    const stageSpec: PipelineSpec = {
      ...resolvedSpec,
      modellink: { ...resolvedSpec.modellink, launcher: stage.launcher ? (Array.isArray(stage.launcher) ? stage.launcher : [stage.launcher]).map((l) => (l.includes('/') ? resolve(l) : l)) : resolvedSpec.modellink.launcher },
      cluster: { ...resolvedSpec.cluster, masterPort: stage.masterPort ?? resolvedSpec.cluster.masterPort },
    };
    const dir = path.join(pipelineDir, stage.name);
    const inputs: StageInput[] = [];
    const ref = (field: string, value: string, accepts: OutputKind[], kind: StageInput['kind']): string | undefined => {
      const fieldPath = `${specPath}.${field}`;
      const earlier = plans.find((p) => p.name === value);
      if (earlier) {
        if (!accepts.includes(earlier.outputKind)) {
          problems.push({ path: fieldPath, message: `stage "${value}" produces ${earlier.outputKind}, but this field needs ${accepts.join(' or ')}` });
          return undefined;
        }
        inputs.push({ specPath: fieldPath, path: earlier.output, kind: earlier.outputKind, fromStage: earlier.name });
        return earlier.output;
      }
      const later = spec.stages.findIndex((s, j) => j >= i && s.name === value);
      if (later >= 0) {
        problems.push({ path: fieldPath, message: `stage "${value}" (stages[${later}]) does not run before this one; a stage can only use earlier stages' outputs` });
        return undefined;
      }
      const p = resolve(value);
      inputs.push({ specPath: fieldPath, path: p, kind });
      return p;
    };

    let command: Command | undefined;
    let output = '';
    let outputKind = OUTPUT_KINDS[stage.kind];
    let training: TrainingPlan | undefined;
    let evaluate: StagePlan['evaluate'];
    let formatOut: WeightsFormat | undefined;
    let extra: Partial<StagePlan> = {};
    /**
     * A training or evaluation stage must load weights in its own implementation and layout. Training
     * stages run the pipeline's expert parallel size; evaluation and inference pass none (ModelLink's
     * evaluate/generate scripts run TP × PP processes), so their EP is not compared here.
     */
    const checkLoadFormat = (field: string, value: string | undefined, compareEp: boolean) => {
      const producer = plans.find((p) => p.name === value);
      const f = producer?.format;
      const own = { impl: spec.model.impl, tp: spec.parallel.tp, pp: spec.parallel.pp, ep: spec.parallel.ep };
      if (f && (f.impl !== own.impl || f.tp !== own.tp || f.pp !== own.pp || (compareEp && f.ep !== own.ep))) {
        const ep = (x: { ep: number }) => (compareEp && (f.ep > 1 || own.ep > 1) ? ` EP ${x.ep}` : '');
        problems.push({
          path: `${specPath}.${field}`,
          message: `stage "${value}" holds ${f.impl} weights at TP ${f.tp} PP ${f.pp}${ep(f)}, but this stage runs ${own.impl} at TP ${own.tp} PP ${own.pp}${ep(own)}: ` +
            `convert them first (a stage { kind: convert, from: ${value}, to: ${own.impl}, tp: ${own.tp}, pp: ${own.pp}${compareEp && own.ep > 1 ? `, ep: ${own.ep}` : ''} })`,
        });
      }
    };

    switch (stage.kind) {
      case 'preprocess': {
        const input = ref('input', stage.input, [], 'file-or-dir');
        const outputPrefix = path.join(dir, 'data', stage.name);
        if (input && tokenizer) command = buildPreprocess(stageSpec, preset, stage, { input, tokenizer, outputPrefix });
        const handler = stage.handler ?? 'GeneralPretrainHandler';
        if (handler === 'GeneralPretrainHandler') {
          output = `${outputPrefix}_${stage.jsonKeys?.[0] ?? 'text'}_document`;
        } else if (handler.includes('Pairwise')) {
          // Chosen/rejected pairs for DPO or reward models, which linkflow does not train yet.
          outputKind = 'pairwise-data';
          output = outputPrefix;
        } else {
          outputKind = 'instruction-data';
          output = outputPrefix;
        }
        break;
      }
      case 'convert': {
        const earlier = plans.find((p) => p.name === stage.from);
        const from = earlier ? (earlier.outputKind === 'hf-model' ? 'hf' : earlier.format?.impl ?? 'mcore') : stage.fromFormat ?? 'hf';
        const to = stage.to ?? spec.model.impl;
        if (from === to && to === 'hf') problems.push({ path: `${specPath}.to`, message: 'from and to are both hf: nothing to convert' });
        const loadDir = ref('from', stage.from, ['checkpoint', 'hf-model'], from === 'hf' ? 'dir' : 'checkpoint');
        const layout = to === 'hf'
          ? { tp: 1, pp: 1, ep: 1 }
          : { tp: stage.tp ?? spec.parallel.tp, pp: stage.pp ?? spec.parallel.pp, ep: stage.ep ?? spec.parallel.ep, numLayerList: stage.numLayerList ?? spec.parallel.numLayerList, vpp: stage.vpp ?? spec.parallel.vpp };
        let saveDir = path.join(dir, 'weights');
        let hfView: StagePlan['hfView'];
        if (to === 'hf') {
          const firstHf = spec.stages.find((s) => s.kind === 'convert' && (s.fromFormat ?? 'hf') === 'hf' && !spec.stages.some((t) => t.name === s.from));
          const hfSource = stage.hfDir !== undefined ? ref('hfDir', stage.hfDir, ['hf-model'], 'dir') : firstHf?.kind === 'convert' ? resolve(firstHf.from) : undefined;
          if (!hfSource) problems.push({ path: `${specPath}.hfDir`, message: 'required for a conversion to hf: the original HuggingFace model directory (its config and tokenizer)' });
          saveDir = path.join(dir, 'hf');
          output = path.join(saveDir, 'mg2hf');
          outputKind = 'hf-model';
          if (hfSource) hfView = { from: hfSource, dir: saveDir };
        } else {
          output = saveDir;
          formatOut = { impl: to, tp: layout.tp, pp: layout.pp, ep: layout.ep };
        }
        let lora: ConvertPaths['lora'];
        if (stage.lora) {
          const loraLoad = ref('lora.load', stage.lora.load, ['checkpoint'], 'checkpoint');
          const trained = spec.stages.find((s) => s.name === stage.lora!.load);
          const trainedLora = trained?.kind === 'finetune' ? trained.lora : undefined;
          const r = stage.lora.r ?? trainedLora?.r;
          const alpha = stage.lora.alpha ?? trainedLora?.alpha;
          if (r === undefined || alpha === undefined) problems.push({ path: `${specPath}.lora`, message: 'give r and alpha (or load from a LoRA fine-tuning stage, whose settings are used)' });
          if (loraLoad && r !== undefined && alpha !== undefined) lora = { load: loraLoad, options: { r, alpha, fusion: false, targetModules: stage.lora.targetModules ?? trainedLora?.targetModules } };
        }
        if (loadDir) {
          const tokenizerModel = from === 'hf' ? (stage.tokenizerModel ? resolve(stage.tokenizerModel) : path.join(loadDir, 'tokenizer.model')) : undefined;
          command = buildConvert(stageSpec, preset, stage, { loadDir, saveDir, from, to, layout, tokenizerModel, lora });
        }
        extra = { hfView };
        break;
      }
      case 'pretrain':
      case 'finetune': {
        const data = ref('data', stage.data, [stage.kind === 'finetune' ? 'instruction-data' : 'pretrain-data'], stage.kind === 'finetune' ? 'instruction-data' : 'pretrain-data');
        const load = stage.load !== undefined ? ref('load', stage.load, ['checkpoint'], 'checkpoint') : undefined;
        checkLoadFormat('load', stage.load, true);
        output = path.join(dir, 'checkpoints');
        formatOut = { impl: spec.model.impl, tp: spec.parallel.tp, pp: spec.parallel.pp, ep: spec.parallel.ep };
        const lora = stage.kind === 'finetune' && stage.lora !== undefined;
        if (lora && stage.load === undefined) problems.push({ path: `${specPath}.lora`, message: 'LoRA fine-tuning needs base weights: set load to a convert or training stage' });
        if (data && tokenizer && (stage.load === undefined || load)) {
          const loraLoad = stage.kind === 'finetune' && stage.lora?.load !== undefined ? ref('lora.load', stage.lora.load, ['checkpoint'], 'checkpoint') : undefined;
          command = buildTraining(stageSpec, preset, stage, { data, tokenizer, save: output, load, loraLoad });
        }
        training = {
          saveDir: output,
          trainIters: stage.trainIters,
          saveInterval: stage.saveInterval,
          autoSaveInterval: stage.autoSaveInterval,
          seqLength: stage.seqLength ?? preset.architecture.seqLength,
          globalBatchSize: stage.globalBatchSize,
          worldSize: spec.cluster.nodes * spec.cluster.devicesPerNode,
          tp: spec.parallel.tp,
          pp: spec.parallel.pp,
          ep: spec.parallel.ep,
          lora,
          loraBase: lora ? load : undefined,
          hang: {
            minMs: durationToMs(stage.noProgressTimeout),
            factor: stage.noProgressFactor,
            startupMs: durationToMs(stage.startupTimeout),
            checkpointMs: durationToMs(stage.checkpointTimeout),
            logInterval: stage.logInterval,
          },
        };
        break;
      }
      case 'evaluate':
      case 'inference': {
        const load = ref('load', stage.load, ['checkpoint'], 'checkpoint');
        checkLoadFormat('load', stage.load, false);
        const loraLoad = stage.loraLoad !== undefined ? ref('loraLoad', stage.loraLoad, ['checkpoint'], 'checkpoint') : undefined;
        const loraStage = spec.stages.find((s) => s.name === stage.loraLoad);
        const loraOptions: LoraOptions | undefined = loraStage?.kind === 'finetune' ? loraStage.lora : undefined;
        if (stage.loraLoad !== undefined && loraLoad && !loraOptions) {
          problems.push({ path: `${specPath}.loraLoad`, message: `stage "${stage.loraLoad}" is not a LoRA fine-tuning stage (a finetune stage with lora settings)` });
        }
        const lora = loraLoad && loraOptions ? { load: loraLoad, options: loraOptions } : undefined;
        if (stage.kind === 'inference') {
          // Inference prints answers, it does not write files: its log is its output.
          output = path.join(dir, 'logs');
          outputKind = 'results';
          if (load && tokenizer) command = buildInference(stageSpec, preset, stage, { load, tokenizer, lora });
          if (stage.prompts) extra = { stdin: [...stage.prompts, 'exit'].map((line) => `${line}\n`).join('') };
          break;
        }
        const tasks = stage.tasks.map((t, j) => ({ name: t.name, dataPath: ref(`tasks[${j}].dataPath`, t.dataPath, [], 'dir') ?? '' }));
        // A verbatim --task-data-path in args replaces the tasks' paths: that is what evaluation.py gets.
        if (!(stage.args && '--task-data-path' in stage.args)) checkEvaluationDataPaths(tasks, specPath, problems);
        output = path.join(dir, 'results.json');
        evaluate = { tasks: stage.tasks.map((t) => t.name), resultsFile: output };
        if (load && tokenizer) command = buildEvaluate(stageSpec, preset, stage, { load, tokenizer, tasks, lora });
        break;
      }
    }

    checkStageRules(spec, preset, stage, specPath, problems, warnings);
    if (!command) {
      plans.push({ ...placeholder(stage, specPath, dir, output, outputKind), format: formatOut });
      return;
    }
    checkFlags(command, stage, specPath, problems);
    const args = applyOverrides(command.args, stage.args);
    command = { ...command, args };
    plans.push({
      name: stage.name,
      kind: stage.kind,
      specPath,
      dir,
      logDir: path.join(dir, 'logs'),
      manifestFile: path.join(dir, 'manifest.json'),
      output,
      outputKind,
      entrypoint: command.entrypoint,
      launch: command.launch,
      args: command.args,
      argv: commandArgv(command),
      env: withoutNulls({ ...command.env, ...spec.modellink.env, ...stage.env }),
      cwd: root,
      setupScript: spec.modellink.setupScript ? resolve(spec.modellink.setupScript) : undefined,
      inputs,
      training,
      evaluate,
      format: formatOut,
      failureRules: spec.failureRules,
      // Training runs the pipeline's expert parallel size; evaluation and inference run without one.
      loadLayout: ['pretrain', 'finetune', 'evaluate', 'inference'].includes(stage.kind)
        ? { tp: spec.parallel.tp, pp: spec.parallel.pp, ep: stage.kind === 'pretrain' || stage.kind === 'finetune' ? spec.parallel.ep : 1 }
        : undefined,
      ...extra,
      maxAttempts: stage.maxAttempts,
    });
  });

  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, spec, warnings, plan: { name: spec.name, nodes: spec.cluster.nodes, hosts: spec.cluster.hosts, workspace, dir: pipelineDir, taskQueue: spec.cluster.taskQueue, stages: plans } };
}

/** Keeps later stages resolvable after an earlier problem, so one run reports every problem. */
function placeholder(stage: Stage, specPath: string, dir: string, output: string, outputKind: OutputKind): StagePlan {
  return {
    name: stage.name, kind: stage.kind, specPath, dir, logDir: '', manifestFile: '', output, outputKind,
    entrypoint: 'pretrain_gpt.py', launch: { kind: 'python', program: [] }, args: [], argv: [], env: {}, cwd: '', inputs: [], failureRules: [],
  };
}

function resolvePreset(spec: PipelineSpec, problems: SpecProblem[]): Preset | undefined {
  const { preset: name, architecture } = spec.model;
  if (name && architecture) {
    problems.push({ path: 'model', message: 'give either preset or architecture, not both' });
    return undefined;
  }
  if (!name && !architecture) {
    problems.push({ path: 'model', message: `give a preset (one of ${presetNames().join(', ')}) or an architecture` });
    return undefined;
  }
  const preset = name ? getPreset(name) : customPreset(architecture!);
  if (!preset) {
    problems.push({ path: 'model.preset', message: `unknown preset "${name}"; known presets: ${presetNames().join(', ')} (run \`linkflow presets\`)` });
    return undefined;
  }
  if (!preset.impls.includes(spec.model.impl)) {
    problems.push({ path: 'model.impl', message: `preset ${preset.name} exists only as ${preset.impls.join(', ')} in ModelLink` });
  }
  return preset;
}

function checkFlags(command: Command, stage: Stage, specPath: string, problems: SpecProblem[]): void {
  if (stage.allowUnknownFlags) return;
  for (const f of Object.keys(stage.args)) {
    if (!isKnownFlag(command.entrypoint, f)) {
      problems.push({ path: `${specPath}.args.${f}`, message: `${f} is not a flag of ModelLink's ${command.entrypoint}; set allowUnknownFlags: true if your ModelLink version has it` });
    }
  }
}

function withoutNulls(env: Record<string, string | null>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== null));
}

function resolveTokenizer(spec: PipelineSpec, preset: Preset, resolve: (p: string) => string, problems: SpecProblem[]): string | undefined {
  if (spec.model.tokenizer) return resolve(spec.model.tokenizer);
  const convert = spec.stages.find((s) => s.kind === 'convert');
  if (convert && convert.kind === 'convert' && !spec.stages.some((s) => s.name === convert.from)) {
    return tokenizerFile(preset, resolve(convert.from));
  }
  problems.push({ path: 'model.tokenizer', message: 'required: the HuggingFace tokenizer directory (or tokenizer.model file), unless a convert stage names the HF model directory' });
  return undefined;
}

/** Llama2Tokenizer / SentencePiece want the tokenizer.model file, PretrainedFromHF the HF directory. */
function tokenizerFile(preset: Preset, hfDir: string): string {
  const t = preset.architecture.tokenizerType;
  return t === 'Llama2Tokenizer' || t === 'SentencePieceTokenizer' ? path.join(hfDir, 'tokenizer.model') : hfDir;
}
