/** A preprocess stage: ModelLink's preprocess_data.py turns a corpus into indexed datasets. */
import path from 'node:path';
import { buildPreprocess } from '../frameworks/modellink/commands.ts';
import type { PreprocessStage } from '../spec/spec.ts';
import type { StageContext, StageDraft } from './context.ts';

export function planPreprocess(ctx: StageContext, stage: PreprocessStage): StageDraft {
  const input = ctx.ref('input', stage.input, [], 'file-or-dir');
  const outputPrefix = path.join(ctx.dir, 'data', stage.name);
  const command = input && ctx.tokenizer ? buildPreprocess(ctx.stageSpec, ctx.preset, stage, { input, tokenizer: ctx.tokenizer, outputPrefix }) : undefined;
  const handler = stage.handler ?? 'GeneralPretrainHandler';
  if (handler === 'GeneralPretrainHandler' || handler === 'SharegptPretrainHandler')
    return { command, output: `${outputPrefix}_${stage.jsonKeys?.[0] ?? 'text'}_document`, outputKind: 'pretrain-data' };
  // Chosen/rejected pairs for DPO or reward models, which linkflow does not train yet.
  if (handler.includes('Pairwise')) return { command, output: outputPrefix, outputKind: 'pairwise-data' };
  return { command, output: outputPrefix, outputKind: 'instruction-data' };
}
