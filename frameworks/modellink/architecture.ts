/** A model's shape as ModelLink's flags name it: what a preset holds and what a spec writes for a model without one. */
import { z } from 'zod';
import { nonEmpty, positiveInt, positiveNumber } from '../schema.ts';

/**
 * A --tokenizer-type name. Which names a run may use depends on the framework version's parser
 * (Framework.choices['--tokenizer-type']: ModelLink's eight, MindSpeed-LLM 2.3.0 adds HuggingFaceTokenizer,
 * TikTokenizer, MagistralTokenizer…), so the version check (plan/versions.ts) says which, not this schema.
 */
export const tokenizerTypeSchema = z.string().regex(/^[A-Za-z][A-Za-z0-9]*$/, 'a --tokenizer-type class name such as PretrainedFromHF');

/**
 * A --position-embedding-type name. As for the tokenizer, the version's parser decides which
 * (Framework.choices['--position-embedding-type']: ModelLink's learned_absolute, rope, alibi; MindSpeed-LLM 2.2.0 adds
 * mrope, relative, none; 26.1.0 deepseek4), checked by plan/versions.ts.
 */
export const positionEmbeddingTypeSchema = z.string().regex(/^[a-z][a-z0-9_]*$/, 'a --position-embedding-type name such as rope');

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
  positionEmbeddingType: positionEmbeddingTypeSchema.default('rope'),
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
