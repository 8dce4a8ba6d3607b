/**
 * What a stage's planner works with (the spec as this stage launches it, the stages planned before
 * it, a way to name an input) and what it hands back (its command, output and kind's own fields).
 */
import path from 'node:path';
import type { Command, LoraOptions } from '../frameworks/modellink/commands.ts';
import type { Preset } from '../frameworks/modellink/presets.ts';
import type { Converter, Framework } from '../frameworks/index.ts';
import type { PipelineSpec, SpecProblem, Stage } from '../spec/spec.ts';
import type { OutputKind, StageInput, StagePlan, TrainingPlan, WeightsFormat } from './types.ts';

export interface StageContext {
  /** The spec as validated. */
  spec: PipelineSpec;
  /** The spec as this stage launches it: paths resolved, the stage's own launcher and master port. */
  stageSpec: PipelineSpec;
  preset: Preset;
  /** The framework version the pipeline drives. */
  framework: Framework;
  /** The weight converter of the pipeline's convert stages (never mixed). */
  converter: Converter;
  tokenizer: string | undefined;
  specPath: string;
  /** <workspace>/<pipeline>/<stage>. */
  dir: string;
  /** The stages planned before this one. */
  earlier: StagePlan[];
  /** Relative to the spec's directory. */
  resolve: (p: string) => string;
  /**
   * A field naming an earlier stage (whose output must be of an accepted kind) or a path; either is
   * recorded as an input of this stage. Undefined after a problem.
   */
  ref: (field: string, value: string, accepts: OutputKind[], kind: StageInput['kind']) => string | undefined;
  /** A stage that loads weights must load them in its own implementation and layout. */
  checkLoadFormat: (field: string, value: string | undefined, compareEp: boolean) => void;
  problems: SpecProblem[];
}

/** What a stage's planner decides. No command means a problem was found (the stage is planned as a placeholder). */
export interface StageDraft {
  command?: Command;
  output: string;
  outputKind: OutputKind;
  training?: TrainingPlan;
  evaluate?: StagePlan['evaluate'];
  format?: WeightsFormat;
  hfView?: StagePlan['hfView'];
  stdin?: string;
}

export function stageContext(
  base: Omit<StageContext, 'stageSpec' | 'specPath' | 'dir' | 'ref' | 'checkLoadFormat'>,
  stage: Stage,
  index: number,
  resolvedSpec: PipelineSpec,
  pipelineDir: string,
  inputs: StageInput[],
): StageContext {
  const { spec, earlier, resolve, problems } = base;
  const specPath = `stages[${index}]`;
  // A stage may launch differently from the pipeline (launcher, master port).
  const stageSpec: PipelineSpec = {
    ...resolvedSpec,
    modellink: {
      ...resolvedSpec.modellink,
      launcher: stage.launcher
        ? (Array.isArray(stage.launcher) ? stage.launcher : [stage.launcher]).map((l) => (l.includes('/') ? resolve(l) : l))
        : resolvedSpec.modellink.launcher,
    },
    cluster: { ...resolvedSpec.cluster, masterPort: stage.masterPort ?? resolvedSpec.cluster.masterPort },
  };
  const ref = inputRef(spec, index, specPath, earlier, resolve, inputs, problems);
  const checkLoadFormat = loadFormatCheck(spec, specPath, earlier, problems);
  return { ...base, stageSpec, specPath, dir: path.join(pipelineDir, stage.name), ref, checkLoadFormat };
}

/** Evaluation and inference: the weights they load, checked against their layout, and a LoRA fine-tuning stage's adapter on top. */
export function weightsToLoad(ctx: StageContext, stage: { load: string; loraLoad?: string }): { load?: string; lora?: { load: string; options: LoraOptions } } {
  const load = ctx.ref('load', stage.load, ['checkpoint'], 'checkpoint');
  ctx.checkLoadFormat('load', stage.load, false);
  const loraLoad = stage.loraLoad !== undefined ? ctx.ref('loraLoad', stage.loraLoad, ['checkpoint'], 'checkpoint') : undefined;
  const loraStage = ctx.spec.stages.find((s) => s.name === stage.loraLoad);
  const loraOptions: LoraOptions | undefined = loraStage?.kind === 'finetune' || loraStage?.kind === 'dpo' ? loraStage.lora : undefined;
  if (stage.loraLoad !== undefined && loraLoad && !loraOptions) {
    ctx.problems.push({
      path: `${ctx.specPath}.loraLoad`,
      message: `stage "${stage.loraLoad}" is not a LoRA fine-tuning stage (a finetune stage with lora settings)`,
    });
  }
  return { load, lora: loraLoad && loraOptions ? { load: loraLoad, options: loraOptions } : undefined };
}

/** A field naming an earlier stage's output or a path, recorded as an input of the stage. */
function inputRef(
  spec: PipelineSpec,
  index: number,
  specPath: string,
  earlier: StagePlan[],
  resolve: (p: string) => string,
  inputs: StageInput[],
  problems: SpecProblem[],
): StageContext['ref'] {
  return (field, value, accepts, kind) => {
    const fieldPath = `${specPath}.${field}`;
    const producer = earlier.find((p) => p.name === value);
    if (producer) {
      if (!accepts.includes(producer.outputKind)) {
        problems.push({ path: fieldPath, message: `stage "${value}" produces ${producer.outputKind}, but this field needs ${accepts.join(' or ')}` });
        return undefined;
      }
      inputs.push({ specPath: fieldPath, path: producer.output, kind: producer.outputKind, fromStage: producer.name });
      return producer.output;
    }
    const later = spec.stages.findIndex((s, j) => j >= index && s.name === value);
    if (later >= 0) {
      problems.push({
        path: fieldPath,
        message: `stage "${value}" (stages[${later}]) does not run before this one; a stage can only use earlier stages' outputs`,
      });
      return undefined;
    }
    const p = resolve(value);
    inputs.push({ specPath: fieldPath, path: p, kind });
    return p;
  };
}

/**
 * A stage must load weights in its own implementation and layout. Training stages run the
 * pipeline's expert parallel size; evaluation and inference pass none (ModelLink's evaluate/generate
 * scripts run TP × PP processes), so their EP is not compared.
 */
function loadFormatCheck(spec: PipelineSpec, specPath: string, earlier: StagePlan[], problems: SpecProblem[]): StageContext['checkLoadFormat'] {
  return (field, value, compareEp) => {
    const f = earlier.find((p) => p.name === value)?.format;
    const own = { impl: spec.model.impl, tp: spec.parallel.tp, pp: spec.parallel.pp, ep: spec.parallel.ep };
    if (f && (f.impl !== own.impl || f.tp !== own.tp || f.pp !== own.pp || (compareEp && f.ep !== own.ep))) {
      const ep = (x: { ep: number }) => (compareEp && (f.ep > 1 || own.ep > 1) ? ` EP ${x.ep}` : '');
      problems.push({
        path: `${specPath}.${field}`,
        message:
          `stage "${value}" holds ${f.impl} weights at TP ${f.tp} PP ${f.pp}${ep(f)}, but this stage runs ${own.impl} at TP ${own.tp} PP ${own.pp}${ep(own)}: ` +
          `convert them first (a stage { kind: convert, from: ${value}, to: ${own.impl}, tp: ${own.tp}, pp: ${own.pp}${compareEp && own.ep > 1 ? `, ep: ${own.ep}` : ''} })`,
      });
    }
  };
}
