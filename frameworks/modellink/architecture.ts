/** A model's shape as ModelLink's flags name it: what a preset holds and what a spec writes for a model without one. */
import { z } from 'zod';
import { nonEmpty, positiveInt, positiveNumber } from '../schema.ts';

/** --tokenizer-type's choices in ModelLink's parser. */
export const tokenizerTypeSchema = z.enum([
  'BertWordPieceLowerCase',
  'BertWordPieceCase',
  'GPT2BPETokenizer',
  'SentencePieceTokenizer',
  'GPTSentencePieceTokenizer',
  'Llama2Tokenizer',
  'PretrainedFromHF',
  'NullTokenizer',
]);

/** An architecture written out in full, for models without a preset. Names follow ModelLink's flags. */
export const architectureSchema = z.strictObject({
  numLayers: positiveInt,
  hiddenSize: positiveInt,
  ffnHiddenSize: positiveInt,
  numAttentionHeads: positiveInt,
  numQueryGroups: positiveInt.optional(),
  maxPositionEmbeddings: positiveInt,
  seqLength: positiveInt,
  vocabSize: positiveInt.optional(),
  makeVocabSizeDivisibleBy: positiveInt.default(1),
  positionEmbeddingType: z.enum(['rope', 'learned_absolute', 'alibi']).default('rope'),
  normalization: z.enum(['RMSNorm', 'LayerNorm']).default('RMSNorm'),
  normEpsilon: positiveNumber.optional(),
  rotaryBase: positiveNumber.optional(),
  swiglu: z.boolean().default(true),
  untieEmbeddingsAndOutputWeights: z.boolean().default(true),
  disableBiasLinear: z.boolean().default(true),
  tokenizerType: tokenizerTypeSchema.default('PretrainedFromHF'),
  hfModelType: nonEmpty.default('llama2'),
});
export type Architecture = z.infer<typeof architectureSchema>;
