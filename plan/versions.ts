/**
 * The framework version a pipeline drives (spec `modellink.flavour` / `modellink.version`) and the
 * rules that depend on it: each problem names the version that has what the spec asks for.
 */
import { defaultVersion, FRAMEWORK_VERSIONS, getFramework, versionsWith, type Converter, type Framework } from '../frameworks/index.ts';
import { trainerOf } from '../frameworks/dialect.ts';
import type { Preset } from '../frameworks/modellink/presets.ts';
import { MINDSPEED_ONLY_HANDLERS, type PipelineSpec, type SpecProblem, type Stage } from '../spec/spec.ts';

type Problems = SpecProblem[];

export function resolveFramework(spec: PipelineSpec, problems: Problems): Framework | undefined {
  const { flavour } = spec.modellink;
  const version = spec.modellink.version ?? defaultVersion(flavour);
  const framework = getFramework({ flavour, version });
  if (!framework)
    problems.push({
      path: 'modellink.version',
      message: `linkflow does not know ${flavour} ${version}; the versions it drives: ${FRAMEWORK_VERSIONS[flavour].join(', ')}`,
    });
  return framework;
}

/** Rules of the pipeline as a whole on this version: model type, high availability. */
export function checkFrameworkRules(spec: PipelineSpec, framework: Framework, problems: Problems, warnings: Problems): void {
  // Nothing reads the checkout's version: a spec written against an older install would be planned as the newest one.
  if (spec.modellink.flavour === 'mindspeed-llm' && spec.modellink.version === undefined)
    warnings.push({
      path: 'modellink.version',
      message: `no version given: planned as ${framework.name}, the release MindSpeed-LLM maintains; set modellink.version to your checkout's (${FRAMEWORK_VERSIONS['mindspeed-llm'].join(', ')}) so flags and resume rules match it`,
    });
  checkHighAvailability(spec, framework, problems, warnings);
  checkTokenizerType(framework, spec.model.architecture?.tokenizerType, 'model.architecture.tokenizerType', problems);
  checkPositionEmbeddingType(framework, spec.model.architecture?.positionEmbeddingType, problems);
}

/** Whether the version's parsers take this --position-embedding-type (their choices). */
function takesPositionEmbedding(framework: Framework, type: string): boolean {
  const choices = framework.choices['--position-embedding-type'];
  return !choices || choices.includes(type);
}

function checkPositionEmbeddingType(framework: Framework, type: string | undefined, problems: Problems): void {
  if (type === undefined || takesPositionEmbedding(framework, type)) return;
  problems.push({
    path: 'model.architecture.positionEmbeddingType',
    message: `${framework.name} has no --position-embedding-type ${type} (it takes ${(framework.choices['--position-embedding-type'] ?? []).join(', ')}); ${versionsWith((f) => takesPositionEmbedding(f, type))} have it`,
  });
}

/** Whether the version's training/evaluation/inference parsers take this --tokenizer-type (their choices). */
function takesTokenizerType(framework: Framework, type: string): boolean {
  const choices = framework.choices['--tokenizer-type'];
  return !choices || choices.includes(type);
}

function checkTokenizerType(framework: Framework, type: string | undefined, at: string, problems: Problems): void {
  if (type === undefined || takesTokenizerType(framework, type)) return;
  problems.push({
    path: at,
    message: `${framework.name} has no --tokenizer-type ${type} (it takes ${(framework.choices['--tokenizer-type'] ?? []).join(', ')}); ${versionsWith((f) => takesTokenizerType(f, type))} have it`,
  });
}

function checkHighAvailability(spec: PipelineSpec, framework: Framework, problems: Problems, warnings: Problems): void {
  const ha = spec.highAvailability;
  if (!ha?.enabled) return;
  const support = framework.highAvailability;
  if (ha.optimizerStateLocalCopy && !support.flags.includes('--enable-optimizer-state-local-copy'))
    problems.push({
      path: 'highAvailability.optimizerStateLocalCopy',
      message: `${framework.name} has no --enable-optimizer-state-local-copy; it exists in ${versionsWith((f) => f.highAvailability.flags.includes('--enable-optimizer-state-local-copy'))}`,
    });
  if (support.refusesLora) {
    spec.stages.forEach((s, i) => {
      if ((s.kind === 'finetune' || s.kind === 'dpo') && s.lora)
        problems.push({
          path: `stages[${i}].lora`,
          message: `${framework.name} refuses high availability with LoRA (high_availability.py: base models only); turn highAvailability off or train without lora`,
        });
    });
  }
  if (ha.strategies && !support.env)
    problems.push({
      path: 'highAvailability.strategies',
      message: `${framework.name} does not read HIGH_AVAILABILITY; ${versionsWith((f) => f.highAvailability.env)} do (or set the flags: hbmFaultRepair, workerReboot, elasticTraining)`,
    });
  if (ha.elasticTraining || ha.strategies?.includes('elastic-training')) {
    // mindspeed_llm/features_manager/high_availability/high_availability.py validate_args (elastic training).
    const p = spec.parallel;
    if (!p.distributedOptimizer)
      problems.push({
        path: 'parallel.distributedOptimizer',
        message: 'elastic training needs the distributed optimizer (MindSpeed-LLM high_availability.py)',
      });
    if (p.ep > 1 || p.cp > 1)
      problems.push({
        path: 'highAvailability.elasticTraining',
        message: `elastic training scales whole data-parallel domains: it refuses expert (${p.ep}) or context (${p.cp}) parallelism above 1`,
      });
  }
  if (framework.flavour === 'mindspeed-llm')
    warnings.push({
      path: 'highAvailability',
      message: `${framework.name}'s high availability needs the mindio_ttp package on every node ("High availability feature requires the mindio_ttp package")`,
    });
}

/**
 * The preprocess handlers a version defines: MindSpeed-LLM's generated list (data_handler.py's classes on each release
 * branch, frameworks/mindspeed-llm/flag-names/); ModelLink has all of the spec's handlers but these, added by MindSpeed-LLM.
 */
const MINDSPEED_ONLY: ReadonlySet<string> = new Set(MINDSPEED_ONLY_HANDLERS);

function hasHandler(framework: Framework, handler: string): boolean {
  return framework.preprocessHandlers ? framework.preprocessHandlers.includes(handler) : !MINDSPEED_ONLY.has(handler);
}

/** Versions where linkflow passes --ckpt-format torch_dist: Megatron core_v0.12.1. */
const takesTorchDist = (f: Framework): boolean => f.pinsTorchFormat;

/**
 * --ckpt-format torch_dist (issue 19: torch is pinned on core_v0.12.1 unless the user asks for torch_dist, pretraining
 * only). Where the version resets it after validation the run writes torch (what linkflow's checkpoint scan and resume
 * read), so asking for it is a warning; async save then fails at the first save, as the reset also turns off
 * use_dist_ckpt (Megatron core_v0.12.1 megatron/training/checkpointing.py#L396-397). Where the version honours it
 * (26.1.0) the run writes one folder of .distcp files per iteration, which the resume scan reads
 * (frameworks/modellink/checkpoint.ts missingDistFiles); a convert stage reading it is refused (checkDistSource).
 */
function checkCheckpointFormat(
  framework: Framework,
  stage: Extract<Stage, { kind: 'pretrain' | 'finetune' | 'dpo' }>,
  specPath: string,
  problems: Problems,
  warnings: Problems,
): void {
  if (stage.checkpointFormat !== 'torch_dist') return;
  const at = `${specPath}.checkpointFormat`;
  if (!framework.pinsTorchFormat) {
    problems.push({
      path: at,
      message: `--ckpt-format is Megatron core_v0.12.1's; ${framework.name} runs ${framework.megatron} (linkflow passes torch_dist on ${versionsWith(takesTorchDist)})`,
    });
    return;
  }
  if (stage.kind !== 'pretrain') {
    problems.push({ path: at, message: `torch_dist is for pretraining only (MindSpeed-LLM async_save_torch_dist.md); stage ${stage.name} is ${stage.kind}` });
    return;
  }
  if (!framework.ckptFormatReset) return; // 26.1.0 writes torch_dist as asked, and linkflow's scan reads it.
  warnings.push({
    path: at,
    message: `${framework.name} validates --ckpt-format torch_dist but writes torch checkpoints: ${framework.ckptFormatReset} resets ckpt_format to torch and use_dist_ckpt to False after Megatron's validation; linkflow passes torch_dist as asked and resumes from the torch layout on disk`,
  });
  if (stage.asyncSave)
    problems.push({
      path: `${specPath}.asyncSave`,
      message: `${framework.name} turns use_dist_ckpt off after validation (${framework.ckptFormatReset}), so the first save raises "NotImplementedError: Async checkpoint save not implemented for legacy checkpoints" (Megatron core_v0.12.1 megatron/training/checkpointing.py#L396-397); remove asyncSave`,
    });
}

/**
 * --use-torch-fsdp2 (a verbatim argument): Megatron core_v0.12.1 validate_args refuses it with pipeline or expert
 * parallelism, the distributed optimizer, a --ckpt-format other than torch_dist/torch_dcp (linkflow pins torch unless
 * checkpointFormat says torch_dist) and CUDA_DEVICE_MAX_CONNECTIONS=1 (linkflow's default for training stages)
 * (megatron/training/arguments.py#L510-528; the examples' fsdp2 scripts pass --ckpt-format torch_dist and set 2).
 */
function checkTorchFsdp2(spec: PipelineSpec, stage: Extract<Stage, { kind: 'pretrain' | 'finetune' | 'dpo' }>, specPath: string, problems: Problems): void {
  if (!('--use-torch-fsdp2' in stage.args)) return;
  const p = spec.parallel;
  const why = 'Megatron core_v0.12.1 megatron/training/arguments.py#L510-528';
  if (p.pp > 1) problems.push({ path: 'parallel.pp', message: `--use-torch-fsdp2 is not supported with pipeline parallelism (${why})` });
  if (p.ep > 1) problems.push({ path: 'parallel.ep', message: `--use-torch-fsdp2 is not supported with expert parallelism (${why})` });
  if (p.distributedOptimizer)
    problems.push({
      path: 'parallel.distributedOptimizer',
      message: `--use-torch-fsdp2 is not supported with Megatron's distributed optimizer: set it to false (${why})`,
    });
  if (stage.checkpointFormat !== 'torch_dist')
    problems.push({
      path: `${specPath}.checkpointFormat`,
      message: `--use-torch-fsdp2 requires --ckpt-format torch_dist: set checkpointFormat: torch_dist (${why})`,
    });
  const connections = [stage.env, spec.modellink.env].find((env) => 'CUDA_DEVICE_MAX_CONNECTIONS' in env)?.CUDA_DEVICE_MAX_CONNECTIONS;
  if (connections === undefined || connections === '1')
    problems.push({
      path: `${specPath}.env.CUDA_DEVICE_MAX_CONNECTIONS`,
      message: `FSDP needs CUDA_DEVICE_MAX_CONNECTIONS above 1 and linkflow's training stages set 1: set it (e.g. "2", as the examples' fsdp2 scripts do) (${why})`,
    });
}

/**
 * A convert stage (or its LoRA merge) whose source is a pretraining stage writing torch_dist on a version that honours
 * it: MindSpeed-LLM 26.1.0's convert_ckpt_v2.py reads mp_rank_XX[_YYY][_EEE]/model_optim_rng.pt only
 * (mindspeed_llm/tasks/checkpoint/convert_mg2hf.py#L416-424, torch.load at #L1687-1688); linkflow renders v1's
 * convert_ckpt.py without --ckpt-format (its default torch, convert_ckpt.py#L134) and has not verified v1 loading
 * torch_dist through Megatron's load_checkpoint in a single process. A LoRA stage on it is refused too: its resume view
 * links the base's per-rank files (frameworks/modellink/checkpoint.ts loraResumeView).
 */
function checkDistSource(spec: PipelineSpec, framework: Framework, stage: Stage, specPath: string, problems: Problems): void {
  if (!framework.pinsTorchFormat || framework.ckptFormatReset) return;
  const fromDist = (name: string | undefined) => {
    const source = spec.stages.find((s) => s.name === name);
    return source?.kind === 'pretrain' && source.checkpointFormat === 'torch_dist' ? source.name : undefined;
  };
  const fix = (source: string) => `set checkpointFormat: torch on stage ${source} (and drop asyncSave)`;
  if (stage.kind === 'convert')
    for (const [at, name] of [
      [`${specPath}.from`, stage.from],
      [`${specPath}.lora.load`, stage.lora?.load],
    ] as const) {
      const source = fromDist(name);
      if (source)
        problems.push({
          path: at,
          message: `stage ${stage.name} converts stage ${source}'s checkpoint, which ${framework.name} writes as torch_dist (.distcp files), and ${framework.name}'s convert_ckpt_v2.py reads the per-rank torch layout only (mindspeed_llm/tasks/checkpoint/convert_mg2hf.py#L416-424), and linkflow runs convert_ckpt.py with its --ckpt-format default torch (convert_ckpt.py#L134) and has not verified its torch_dist loading: ${fix(source)}`,
        });
    }
  if ((stage.kind === 'finetune' || stage.kind === 'dpo') && stage.lora) {
    const source = fromDist(stage.load);
    if (source)
      problems.push({
        path: `${specPath}.load`,
        message: `stage ${stage.name} is LoRA on stage ${source}'s torch_dist checkpoint; a LoRA resume shows the base's mp_rank_*/model_optim_rng.pt under the LoRA checkpoint (loraResumeView), which torch_dist does not have: ${fix(source)}`,
      });
    return;
  }
  // Any other stage that loads it runs with linkflow's pinned --ckpt-format torch, and Megatron core_v0.12.1 reads the
  // format on disk only under --auto-detect-ckpt-format or torch_dist: else "Detected load from a distributed checkpoint,
  // but neither --use-dist-ckpt nor --auto-detect-ckpt-format is set." (megatron/training/checkpointing.py load_checkpoint,
  // _load_global_dist_base_checkpoint).
  if (stage.kind === 'finetune' || stage.kind === 'dpo' || stage.kind === 'evaluate' || stage.kind === 'inference') {
    const source = fromDist(stage.load);
    if (source)
      problems.push({
        path: `${specPath}.load`,
        message: `stage ${stage.name} loads stage ${source}'s torch_dist checkpoint with linkflow's --ckpt-format torch, and Megatron core_v0.12.1 refuses that ("Detected load from a distributed checkpoint, but neither --use-dist-ckpt nor --auto-detect-ckpt-format is set", megatron/training/checkpointing.py _load_global_dist_base_checkpoint): ${fix(source)}`,
      });
  }
}

/** Rules of one stage on this version: its trainer, checkpoint format, tasks. */
export function checkStageOnVersion(spec: PipelineSpec, framework: Framework, stage: Stage, specPath: string, problems: Problems, warnings: Problems): void {
  if (stage.kind === 'pretrain' || stage.kind === 'finetune' || stage.kind === 'dpo') {
    if (!trainerOf(framework, stage.kind))
      problems.push({
        path: `${specPath}.kind`,
        message: `${framework.name} has no ${stage.kind} trainer; ${versionsWith((f) => trainerOf(f, stage.kind) !== undefined)} have one`,
      });
    checkCheckpointFormat(framework, stage, specPath, problems, warnings);
    if (framework.pinsTorchFormat) checkTorchFsdp2(spec, stage, specPath, problems);
    if (stage.asyncSave && stage.checkpointFormat !== 'torch_dist')
      problems.push({ path: `${specPath}.asyncSave`, message: 'async save writes torch_dist checkpoints only: set checkpointFormat: torch_dist' });
    if (stage.asyncSave && stage.kind !== 'pretrain')
      problems.push({
        path: `${specPath}.asyncSave`,
        message: 'async save is for pretraining only (MindSpeed-LLM async_save_torch_dist.md: not LoRA, SFT or DPO)',
      });
    if (stage.checkpointFormat === 'torch_dist' && spec.highAvailability?.enabled && framework.highAvailability.needsTorchFormat)
      problems.push({
        path: `${specPath}.checkpointFormat`,
        message: 'high availability needs --ckpt-format torch (high_availability.py refuses --use-dist-ckpt)',
      });
  }
  checkDistSource(spec, framework, stage, specPath, problems);
  if ('tokenizerType' in stage) checkTokenizerType(framework, stage.tokenizerType, `${specPath}.tokenizerType`, problems);
  if (stage.kind === 'preprocess' && stage.handler && !hasHandler(framework, stage.handler))
    problems.push({
      path: `${specPath}.handler`,
      message: `${framework.name}'s data_handler.py has no ${stage.handler}; ${versionsWith((f) => hasHandler(f, stage.handler!))} have it`,
    });
  if (stage.kind === 'evaluate')
    stage.tasks.forEach((t, j) => {
      if (!framework.evaluationTasks.includes(t.name))
        problems.push({
          path: `${specPath}.tasks[${j}].name`,
          message: `${framework.name}'s evaluation.py has no task ${t.name}; ${versionsWith((f) => f.evaluationTasks.includes(t.name))} have it`,
        });
    });
  if (stage.kind === 'inference')
    stage.tasks.forEach((t, j) => {
      if (!framework.inferenceTasks.includes(t))
        problems.push({
          path: `${specPath}.tasks[${j}]`,
          message: `${framework.name}'s inference.py has no task ${t}; ${versionsWith((f) => f.inferenceTasks.includes(t))} have it`,
        });
    });
}

/**
 * The converter of every convert stage of the pipeline (one for the model, both directions: MindSpeed-LLM
 * says v1 and v2 "are two separate solutions. Do not mix them"): the spec's, else v2 where the version has
 * it and it knows the model (--model-type-hf choices), else v1.
 */
export function chooseConverter(spec: PipelineSpec, framework: Framework, preset: Preset, problems: Problems): Converter {
  const hfType = preset.architecture.hfModelType;
  const asked = spec.modellink.converter;
  const fallback: Converter =
    framework.converters.includes('convert_ckpt_v2.py') && framework.convertV2ModelTypes.includes(hfType) ? 'convert_ckpt_v2.py' : 'convert_ckpt.py';
  if (asked === undefined) return fallback;
  // After a problem the default plans the stages, so their own problems are not buried under this one's consequences.
  if (!framework.converters.includes(asked)) {
    problems.push({ path: 'modellink.converter', message: `${framework.name} has no ${asked}; ${versionsWith((f) => f.converters.includes(asked))} have it` });
    return fallback;
  }
  if (asked === 'convert_ckpt_v2.py' && !framework.convertV2ModelTypes.includes(hfType)) {
    problems.push({
      path: 'modellink.converter',
      message: `${framework.name}'s convert_ckpt_v2.py does not know model type ${hfType} (it knows ${framework.convertV2ModelTypes.join(', ')}); use convert_ckpt.py`,
    });
    return fallback;
  }
  return asked;
}

/**
 * The launch environment high availability adds: HIGH_AVAILABILITY on the versions that read it
 * (mindspeed_llm/tasks/high_availability/high_availability_helper.py), which switches the flags on by itself.
 */
export function highAvailabilityEnv(spec: PipelineSpec, framework: Framework): Record<string, string> {
  const strategies = spec.highAvailability?.enabled ? spec.highAvailability.strategies : undefined;
  return strategies && framework.highAvailability.env ? { HIGH_AVAILABILITY: strategies.join(',') } : {};
}
