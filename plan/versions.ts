/**
 * The framework version a pipeline drives (spec `modellink.flavour` / `modellink.version`) and the
 * rules that depend on it: each problem names the version that has what the spec asks for.
 */
import { defaultVersion, FRAMEWORK_VERSIONS, getFramework, versionsWith, type Converter, type Framework } from '../frameworks/index.ts';
import { trainerOf } from '../frameworks/dialect.ts';
import type { Preset } from '../frameworks/modellink/presets.ts';
import type { PipelineSpec, SpecProblem, Stage } from '../spec/spec.ts';

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
  checkHighAvailability(spec, framework, problems, warnings);
  checkTokenizerType(framework, spec.model.architecture?.tokenizerType, 'model.architecture.tokenizerType', problems);
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

/** Rules of one stage on this version: its trainer, checkpoint format, tasks. */
/**
 * Preprocess handlers that only some MindSpeed-LLM versions define (classes of mindspeed_llm/tasks/preprocess/
 * data_handler.py on each release branch); the others are in every version linkflow drives.
 */
const HANDLER_VERSIONS: Readonly<Record<string, readonly string[]>> = {
  HunyuanInstructionHandler: ['2.1.0', '2.3.0', '26.0.0'],
  PPOAlpacaStyleInstructionHandler: ['2.1.0', '2.3.0', '26.0.0'],
  R1AlpacaStyleInstructionHandler: ['2.1.0', '2.3.0', '26.0.0'],
  R1SharegptStyleInstructionHandler: ['2.1.0', '2.3.0', '26.0.0'],
  AlpacaStyleProcessRewardHandler: ['2.1.0'],
  SharegptPretrainHandler: ['2.3.0', '26.0.0'],
};

function hasHandler(framework: Framework, handler: string): boolean {
  const versions = HANDLER_VERSIONS[handler];
  return !versions || (framework.flavour === 'mindspeed-llm' && versions.includes(framework.version));
}

export function checkStageOnVersion(spec: PipelineSpec, framework: Framework, stage: Stage, specPath: string, problems: Problems): void {
  if (stage.kind === 'pretrain' || stage.kind === 'finetune' || stage.kind === 'dpo') {
    if (!trainerOf(framework, stage.kind))
      problems.push({
        path: `${specPath}.kind`,
        message: `${framework.name} has no ${stage.kind} trainer; ${versionsWith((f) => trainerOf(f, stage.kind) !== undefined)} have one`,
      });
    if (stage.checkpointFormat === 'torch_dist' && !framework.writesTorchDist)
      problems.push({
        path: `${specPath}.checkpointFormat`,
        message: framework.pinsTorchFormat
          ? `${framework.name} writes torch checkpoints whatever --ckpt-format says (mindspeed_llm/training/arguments.py _add_dummy_args_v2 resets it after validation); torch_dist is written by ${versionsWith((f) => f.writesTorchDist)}`
          : `--ckpt-format is Megatron core_v0.12.1's; ${framework.name} runs ${framework.megatron} (torch_dist is written by ${versionsWith((f) => f.writesTorchDist)})`,
      });
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
