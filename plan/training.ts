/**
 * A pretrain, finetune or dpo stage: the version's trainer (pretrain_gpt.py; MindSpeed-LLM's posttrain_gpt.py
 * --stage sft|dpo; ModelLink's trainer.py --stage dpo) under torchrun, saving checkpoints a later attempt resumes from.
 */
import path from 'node:path';
import { buildTraining } from '../frameworks/modellink/commands.ts';
import { trainerOf, trainingArgs } from '../frameworks/dialect.ts';
import { highAvailabilityEnv } from './versions.ts';
import { durationToMs } from '../common/duration.ts';
import type { TrainingStage } from '../spec/spec.ts';
import { experimentTracking } from './tracking.ts';
import type { StageContext, StageDraft } from './context.ts';
import type { StagePlan } from './types.ts';

export function planTraining(ctx: StageContext, stage: TrainingStage): StageDraft {
  const { spec, problems } = ctx;
  const dataKind = stage.kind === 'finetune' ? 'instruction-data' : stage.kind === 'dpo' ? 'pairwise-data' : 'pretrain-data';
  const data = ctx.ref('data', stage.data, [dataKind], dataKind);
  const load = stage.load !== undefined ? ctx.ref('load', stage.load, ['checkpoint'], 'checkpoint') : undefined;
  ctx.checkLoadFormat('load', stage.load, true);
  const output = path.join(ctx.dir, 'checkpoints');
  const lora = stage.kind !== 'pretrain' && stage.lora !== undefined;
  if (lora && stage.load === undefined)
    problems.push({ path: `${ctx.specPath}.lora`, message: 'LoRA fine-tuning needs base weights: set load to a convert or training stage' });
  let command;
  if (data && ctx.tokenizer && (stage.load === undefined || load)) {
    const loraLoad =
      stage.kind !== 'pretrain' && stage.lora?.load !== undefined ? ctx.ref('lora.load', stage.lora.load, ['checkpoint'], 'checkpoint') : undefined;
    const built = buildTraining(ctx.stageSpec, ctx.preset, stage, { data, tokenizer: ctx.tokenizer, save: output, load, loraLoad });
    const args = trainingArgs(ctx.framework, built.args, {
      kind: stage.kind,
      impl: spec.model.impl,
      checkpointFormat: stage.checkpointFormat,
      asyncSave: stage.asyncSave,
      dpo: stage.kind === 'dpo' ? { lossType: stage.lossType, beta: stage.beta } : undefined,
    });
    const tracking = experimentTracking(stage, ctx.dir, spec.name);
    const entrypoint = trainerOf(ctx.framework, stage.kind)?.entrypoint ?? built.entrypoint;
    command = { ...built, entrypoint, args: [...args, ...tracking.args], env: { ...built.env, ...tracking.env, ...highAvailabilityEnv(spec, ctx.framework) } };
  }
  const { tp, pp, ep } = spec.parallel;
  return {
    command,
    output,
    outputKind: 'checkpoint',
    format: { impl: spec.model.impl, tp, pp, ep },
    training: {
      saveDir: output,
      trainIters: stage.trainIters,
      saveInterval: stage.saveInterval,
      autoSaveInterval: stage.autoSaveInterval,
      seqLength: stage.seqLength ?? ctx.preset.architecture.seqLength,
      globalBatchSize: stage.globalBatchSize,
      worldSize: spec.cluster.nodes * spec.cluster.devicesPerNode,
      tp,
      pp,
      ep,
      lora,
      ...(lora ? { loraResume: ctx.framework.loraResume } : {}),
      loraBase: lora ? load : undefined,
      ...(stage.kind === 'dpo' && load !== undefined ? { dpoReference: dpoReference(ctx, stage, load) } : {}),
      hang: {
        minMs: durationToMs(stage.noProgressTimeout),
        factor: stage.noProgressFactor,
        startupMs: durationToMs(stage.startupTimeout),
        checkpointMs: durationToMs(stage.checkpointTimeout),
        logInterval: stage.logInterval,
      },
    },
  };
}

function dpoReference(ctx: StageContext, stage: TrainingStage, load: string): NonNullable<StagePlan['training']>['dpoReference'] {
  const trainer = trainerOf(ctx.framework, 'dpo');
  const loraWithoutFinetune = stage.kind === 'dpo' && stage.lora !== undefined && stage.lora.load === undefined && trainer?.loraResumeWithoutFinetune === true;
  return {
    load,
    keepNoLoadRng: trainer?.referenceUnderRunFlags === true,
    ...(loraWithoutFinetune ? { loraWithoutFinetune: true as const } : {}),
    ...(trainer?.referenceAtReferIter ? { atReferIter: true as const } : {}),
  };
}
