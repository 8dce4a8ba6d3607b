/** An inference stage: inference.py answers the stage's prompts; its log is its output. */
import path from 'node:path';
import { buildInference } from '../frameworks/modellink/commands.ts';
import { withModelType, withNewNames } from '../frameworks/dialect.ts';
import type { InferenceStage } from '../spec/spec.ts';
import { weightsToLoad, type StageContext, type StageDraft } from './context.ts';

export function planInference(ctx: StageContext, stage: InferenceStage): StageDraft {
  const { load, lora } = weightsToLoad(ctx, stage);
  // Inference prints answers, it does not write files: its log is its output.
  const output = path.join(ctx.dir, 'logs');
  const built = load && ctx.tokenizer ? buildInference(ctx.stageSpec, ctx.preset, stage, { load, tokenizer: ctx.tokenizer, lora }) : undefined;
  const command = built && { ...built, args: withNewNames(ctx.framework, withModelType(ctx.framework, built.args, ctx.spec.model.impl)) };
  const stdin = stage.prompts ? [...stage.prompts, 'exit'].map((line) => `${line}\n`).join('') : undefined;
  return { command, output, outputKind: 'results', ...(stdin !== undefined ? { stdin } : {}) };
}
