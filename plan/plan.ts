/**
 * Spec → plan: validates a pipeline spec as a whole and resolves it into plain data the
 * workflow can carry — per stage the exact command, its inputs, its output directory and,
 * for training stages, what a resume needs. Pure: paths are resolved, never touched.
 * Each stage kind has its planner (plan/preprocess.ts, convert.ts, training.ts, evaluate.ts, inference.ts).
 */
import path from 'node:path';
import { applyOverrides, commandArgv, type Command } from '../frameworks/modellink/commands.ts';
import { allFrameworks, defaultVersion, frameworkName, versionsWith, type Framework } from '../frameworks/index.ts';
import { checkFrameworkRules, checkStageOnVersion, chooseConverter, resolveFramework } from './versions.ts';
import { launchOf, type LaunchCarrier } from '../frameworks/launch.ts';
import { notifySettings } from '../spec/notify.ts';
import { customPreset, type Preset } from '../frameworks/modellink/presets.ts';
import { presetFor, presetNamesFor } from '../frameworks/presets.ts';
import { checkHosts, checkLayout, checkStageRules } from '../frameworks/modellink/rules.ts';
import { checkSlurm } from '../executors/slurm/rules.ts';
import { checkKubernetes, kubernetesSettings } from '../executors/kubernetes/rules.ts';
import { formatPath } from '../common/issue-path.ts';
import { pipelineSpecSchema, type PipelineSpec, type SpecProblem, type Stage } from '../spec/spec.ts';
import { stageContext, type StageContext, type StageDraft } from './context.ts';
import { planConvert } from './convert.ts';
import { planEvaluate } from './evaluate.ts';
import { planInference } from './inference.ts';
import { planPreprocess } from './preprocess.ts';
import { planTraining } from './training.ts';
import type { OutputKind, PlanOptions, PlanResult, SecretRef, StageInput, StagePlan } from './types.ts';
import type { SecretEnvEntry } from '../spec/schema-parts.ts';

export type { PipelinePlan, PlanOptions, PlanResult, SecretRef, StageInput, StagePlan } from './types.ts';

export function planPipeline(raw: unknown, options: PlanOptions): PlanResult {
  const parsed = pipelineSpecSchema.safeParse(raw);
  if (!parsed.success) {
    return { ok: false, problems: parsed.error.issues.map((i) => ({ path: formatPath(i.path), message: i.message })) };
  }
  const spec = parsed.data;
  const problems: SpecProblem[] = [];
  const warnings: SpecProblem[] = [];
  const framework = resolveFramework(spec, problems);
  const preset = checkPipeline(spec, framework?.megatron ?? 'core_r0.6.0', problems, warnings);
  if (!preset || !framework) return { ok: false, problems };
  checkFrameworkRules(spec, framework, problems, warnings);
  const converter = chooseConverter(spec, framework, preset, problems);

  const resolve = (p: string) => path.resolve(options.baseDir, p);
  const workspace = options.workspace ? path.resolve(options.workspace) : resolve(spec.workspace);
  const pipelineDir = path.join(workspace, spec.name);
  const resolvedSpec = withResolvedPrograms(spec, resolve);
  const tokenizer = resolveTokenizer(spec, preset, resolve, problems);
  const plans: StagePlan[] = [];
  spec.stages.forEach((stage, i) => {
    const inputs: StageInput[] = [];
    const ctx = stageContext({ spec, preset, framework, converter, tokenizer, earlier: plans, resolve, problems }, stage, i, resolvedSpec, pipelineDir, inputs);
    const draft = planStage(ctx, stage);
    checkStageRules(spec, preset, stage, ctx.specPath, framework, problems, warnings);
    checkStageOnVersion(spec, framework, stage, ctx.specPath, problems, warnings);
    plans.push(
      draft.command
        ? stagePlan(ctx, stage, { ...draft, command: draft.command }, inputs)
        : { ...placeholder(stage, ctx.specPath, ctx.dir, draft.output, draft.outputKind), format: draft.format },
    );
  });

  if (problems.length > 0) return { ok: false, problems };
  warnPlainSecrets(spec, warnings);
  return {
    ok: true,
    spec,
    warnings,
    plan: {
      name: spec.name,
      framework: { flavour: framework.flavour, version: framework.version },
      model: preset.name,
      nodes: spec.cluster.nodes,
      hosts: spec.cluster.hosts,
      workspace,
      dir: pipelineDir,
      taskQueue: spec.cluster.taskQueue,
      stages: plans,
      ...(spec.notify ? { notify: notifySettings(spec.notify) } : {}),
    },
  };
}

/** A planned stage's command line, rendered from its launch, entrypoint and arguments (`linkflow render`). */
export function plannedArgv(stage: Pick<StagePlan, 'entrypoint' | 'args'> & LaunchCarrier): string[] {
  return commandArgv({ entrypoint: stage.entrypoint, launch: launchOf(stage), args: stage.args, env: {} });
}

/** Checks of the pipeline as a whole: its model preset (returned when it resolves), layout, hosts and unique stage names. */
function checkPipeline(spec: PipelineSpec, megatron: string, problems: SpecProblem[], warnings: SpecProblem[]): Preset | undefined {
  const preset = resolvePreset(spec, problems);
  if (preset) checkLayout(spec, preset, megatron, problems, warnings);
  checkHosts(spec, problems);
  checkSlurm(spec, problems);
  checkKubernetes(spec, problems);
  const names = new Map<string, number>();
  spec.stages.forEach((s, i) => {
    if (names.has(s.name))
      problems.push({ path: `stages[${i}].name`, message: `"${s.name}" is already the name of stages[${names.get(s.name)}]; stage names must be unique` });
    else names.set(s.name, i);
  });
  return preset;
}

/**
 * A `modellink` section with its programs resolved: a launcher or python given as a relative path
 * (./emulator/torchrun) is relative to the file that names it (a spec, a benchmark suite); bare names
 * stay for PATH lookup. The launcher becomes an argv array.
 */
export function resolvePrograms<M extends { launcher: string | string[]; python: string }>(
  modellink: M,
  resolve: (p: string) => string,
): M & { launcher: string[] } {
  const launcher = Array.isArray(modellink.launcher) ? modellink.launcher : [modellink.launcher];
  const program = (p: string) => (p.includes('/') ? resolve(p) : p);
  return { ...modellink, launcher: launcher.map(program), python: program(modellink.python) };
}

function withResolvedPrograms(spec: PipelineSpec, resolve: (p: string) => string): PipelineSpec {
  return { ...spec, modellink: resolvePrograms(spec.modellink, resolve) };
}

function planStage(ctx: StageContext, stage: Stage): StageDraft {
  switch (stage.kind) {
    case 'preprocess':
      return planPreprocess(ctx, stage);
    case 'convert':
      return planConvert(ctx, stage);
    case 'pretrain':
    case 'finetune':
    case 'dpo':
      return planTraining(ctx, stage);
    case 'evaluate':
      return planEvaluate(ctx, stage);
    case 'inference':
      return planInference(ctx, stage);
  }
}

/** A planned stage: its command with the stage's `args` overrides applied, its environment, where it runs and what it loads. */
function stagePlan(ctx: StageContext, stage: Stage, draft: StageDraft & { command: Command }, inputs: StageInput[]): StagePlan {
  const { spec, specPath, dir, framework } = ctx;
  checkEmittedFlags(framework, draft.command, specPath, ctx.problems);
  checkFlags(framework, draft.command, stage, specPath, ctx.problems);
  // A flag the version renamed is accepted under its old name and passed under the new one.
  const overrides = Object.fromEntries(Object.entries(stage.args).map(([f, v]) => [framework.renamed[f] ?? f, v]));
  const command = { ...draft.command, args: applyOverrides(draft.command.args, overrides) };
  return {
    name: stage.name,
    kind: stage.kind,
    specPath,
    dir,
    logDir: path.join(dir, 'logs'),
    manifestFile: path.join(dir, 'manifest.json'),
    output: draft.output,
    outputKind: draft.outputKind,
    entrypoint: command.entrypoint,
    launch: command.launch,
    args: command.args,
    argv: commandArgv(command),
    env: withoutNulls({ ...command.env, ...spec.modellink.env, ...stage.env }),
    ...secretsOf(ctx, stage),
    cwd: ctx.resolve(spec.modellink.root),
    setupScript: spec.modellink.setupScript ? ctx.resolve(spec.modellink.setupScript) : undefined,
    inputs,
    training: draft.training,
    evaluate: draft.evaluate,
    format: draft.format,
    failureRules: spec.failureRules,
    framework: { flavour: framework.flavour, version: framework.version },
    ...(stage.kind === 'convert' ? { converter: ctx.converter } : {}),
    // Training runs the pipeline's expert parallel size; evaluation and inference run without one.
    loadLayout: ['pretrain', 'finetune', 'dpo', 'evaluate', 'inference'].includes(stage.kind)
      ? { tp: spec.parallel.tp, pp: spec.parallel.pp, ep: stage.kind === 'evaluate' || stage.kind === 'inference' ? 1 : spec.parallel.ep }
      : undefined,
    ...(stage.kind === 'convert' ? { hfView: draft.hfView } : {}),
    ...(draft.stdin !== undefined ? { stdin: draft.stdin } : {}),
    maxAttempts: stage.maxAttempts,
    // Slurm places the attempt (one batch job of the launch's nodes); without it, linkflow's node workers do.
    ...(spec.cluster.executor === 'slurm' && spec.cluster.slurm?.partition
      ? { slurm: { ...spec.cluster.slurm, partition: spec.cluster.slurm.partition } }
      : {}),
    // Kubernetes places the attempt (one gang of pods, executors/kubernetes/).
    ...(kubernetesSettings(spec) ? { kubernetes: kubernetesSettings(spec) } : {}),
  };
}

/** Keeps later stages resolvable after an earlier problem, so one run reports every problem. */
function placeholder(stage: Stage, specPath: string, dir: string, output: string, outputKind: OutputKind): StagePlan {
  return {
    name: stage.name,
    kind: stage.kind,
    specPath,
    dir,
    logDir: '',
    manifestFile: '',
    output,
    outputKind,
    entrypoint: 'pretrain_gpt.py',
    launch: { kind: 'python', program: [] },
    args: [],
    argv: [],
    env: {},
    cwd: '',
    inputs: [],
    failureRules: [],
  };
}

function resolvePreset(spec: PipelineSpec, problems: SpecProblem[]): Preset | undefined {
  const { preset: name, architecture } = spec.model;
  const choice = { flavour: spec.modellink.flavour, version: spec.modellink.version ?? defaultVersion(spec.modellink.flavour) };
  if (name && architecture) {
    problems.push({ path: 'model', message: 'give either preset or architecture, not both' });
    return undefined;
  }
  if (!name && !architecture) {
    problems.push({ path: 'model', message: `give a preset (one of ${presetNamesFor(choice).join(', ')}) or an architecture` });
    return undefined;
  }
  const preset = name ? presetFor(name, choice) : customPreset(architecture!);
  if (!preset) {
    problems.push({
      path: 'model.preset',
      message: `unknown preset "${name}"; known presets: ${presetNamesFor(choice).join(', ')} (those of ${frameworkName(choice)}; run \`linkflow presets\`)`,
    });
    return undefined;
  }
  if (!preset.impls.includes(spec.model.impl)) {
    problems.push({
      path: 'model.impl',
      message: `preset ${preset.name} exists only as ${preset.impls.join(', ')} in ${preset.framework ? frameworkName(preset.framework) : 'ModelLink'}`,
    });
  }
  return preset;
}

function checkFlags(framework: Framework, command: Command, stage: Stage, specPath: string, problems: SpecProblem[]): void {
  for (const [old, renamed] of Object.entries(framework.renamed)) {
    // Both would become one flag, and which value wins would depend on the order they were written in.
    if (old in stage.args && renamed in stage.args)
      problems.push({
        path: `${specPath}.args.${old}`,
        message: `${old} is ${framework.name}'s old name of ${renamed}, which args also gives; keep one (${renamed})`,
      });
  }
  // A value outside the parser's choices: argparse exits with "invalid choice" before anything runs.
  for (const [f, v] of Object.entries(stage.args)) {
    const choices = framework.choices[framework.renamed[f] ?? f];
    const values = typeof v === 'string' ? [v] : Array.isArray(v) ? v : [];
    const wrong = values.find((x) => typeof x === 'string' && !x.includes('${') && choices && !choices.includes(x));
    if (wrong !== undefined)
      problems.push({
        path: `${specPath}.args.${f}`,
        message: `${wrong} is not one of ${choices!.join(', ')} (${framework.name}'s ${command.entrypoint} parser)`,
      });
  }
  if (stage.allowUnknownFlags) return;
  for (const f of Object.keys(stage.args)) {
    if (!framework.isKnownFlag(command.entrypoint, framework.renamed[f] ?? f)) {
      const elsewhere = allFrameworks().filter((fw) => fw.isKnownFlag(command.entrypoint, f));
      const hint = elsewhere.length > 0 ? ` (${elsewhere.map((fw) => fw.name).join(', ')} define it: set modellink.flavour and version)` : '';
      problems.push({
        path: `${specPath}.args.${f}`,
        message: `${f} is not a flag of ${framework.name}'s ${command.entrypoint}${hint}; set allowUnknownFlags: true if your checkout has it`,
      });
    }
  }
}

/**
 * Every flag linkflow itself emits must exist in the version's parser: a spec option the version lacks
 * (a feature, a high-availability flag) is reported here, naming the versions that have it.
 */
function checkEmittedFlags(framework: Framework, command: Command, specPath: string, problems: SpecProblem[]): void {
  for (const [f] of command.args) {
    if (framework.isKnownFlag(command.entrypoint, f)) continue;
    problems.push({
      path: specPath,
      message: `this stage needs ${f}, which ${framework.name}'s ${command.entrypoint} does not define; it exists in ${versionsWith((fw) => fw.isKnownFlag(command.entrypoint, f))}`,
    });
  }
}

/** The pipeline's secrets, then the stage's (a stage's entry for the same name wins); none of them may also be a plain variable. */
function secretsOf(ctx: StageContext, stage: Stage): { secretEnv?: SecretRef[] } {
  const refs = new Map<string, SecretRef>();
  const add = (entries: SecretEnvEntry[], at: string) =>
    entries.forEach((e, j) => {
      const ref: SecretRef =
        typeof e === 'string' ? { name: e, specPath: `${at}[${j}]` } : { name: e.name, file: ctx.resolve(e.file), specPath: `${at}[${j}]` };
      refs.set(ref.name, ref);
    });
  add(ctx.spec.secretEnv, 'secretEnv');
  add(stage.secretEnv, `${ctx.specPath}.secretEnv`);
  for (const ref of refs.values()) {
    const plain = [['modellink.env', ctx.spec.modellink.env] as const, [`${ctx.specPath}.env`, stage.env] as const].find(([, env]) => ref.name in env);
    if (plain)
      ctx.problems.push({
        path: `${plain[0]}.${ref.name}`,
        message: `${ref.name} is a secret (${ref.specPath}); remove it from env, whose values are written into the workflow's history`,
      });
  }
  return refs.size > 0 ? { secretEnv: [...refs.values()] } : {};
}

/** Plain env values are written into the workflow's history: a name that looks like a secret is worth a warning. */
const SECRET_LIKE = /TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL/i;

function warnPlainSecrets(spec: PipelineSpec, warnings: SpecProblem[]): void {
  const envs: [string, Record<string, string | null>][] = [
    ['modellink.env', spec.modellink.env],
    ...spec.stages.map((s, i) => [`stages[${i}].env`, s.env] as [string, Record<string, string | null>]),
  ];
  for (const [at, env] of envs)
    for (const [name, value] of Object.entries(env))
      if (value !== null && SECRET_LIKE.test(name))
        warnings.push({
          path: `${at}.${name}`,
          message: `looks like a secret: env values are stored in the workflow's history in plain text; list ${name} in secretEnv instead`,
        });
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
  problems.push({
    path: 'model.tokenizer',
    message: 'required: the HuggingFace tokenizer directory (or tokenizer.model file), unless a convert stage names the HF model directory',
  });
  return undefined;
}

/**
 * Llama2Tokenizer / SentencePiece want the tokenizer.model file, MagistralTokenizer the tekken.json file
 * (MindSpeed-LLM 2.3.0 mindspeed_llm/training/tokenizer/magistral_tokenizer.py: MistralTokenizer.from_file), PretrainedFromHF the HF directory.
 */
function tokenizerFile(preset: Preset, hfDir: string): string {
  const t = preset.architecture.tokenizerType;
  if (t === 'MagistralTokenizer') return path.join(hfDir, 'tekken.json');
  return t === 'Llama2Tokenizer' || t === 'SentencePieceTokenizer' ? path.join(hfDir, 'tokenizer.model') : hfDir;
}
