/** Arguments the emulator tests pass to pretrain_gpt.py directly (no linkflow plan in between). */

/** A small LLaMA-shaped model, as the examples/mcore/llama2 scripts pass it, with the given TP and PP. */
export function tinyModelArgs(tokenizer: string, layout: { tp?: number; pp?: number } = {}): string[] {
  return [
    '--use-mcore-models',
    '--tensor-model-parallel-size',
    String(layout.tp ?? 1),
    '--pipeline-model-parallel-size',
    String(layout.pp ?? 1),
    '--num-layers',
    '4',
    '--hidden-size',
    '256',
    '--ffn-hidden-size',
    '688',
    '--num-attention-heads',
    '8',
    '--tokenizer-type',
    'PretrainedFromHF',
    '--tokenizer-name-or-path',
    tokenizer,
    '--seq-length',
    '128',
    '--max-position-embeddings',
    '128',
    '--position-embedding-type',
    'rope',
    '--normalization',
    'RMSNorm',
    '--swiglu',
    '--disable-bias-linear',
    '--untie-embeddings-and-output-weights',
    '--make-vocab-size-divisible-by',
    '1',
  ];
}

export interface TinyTrainOptions {
  tokenizer: string;
  /** A preprocessed dataset prefix (<P>_text_document). */
  dataPrefix: string;
  iters: number;
  tp?: number;
  pp?: number;
  saveInterval?: number;
  save?: string;
  load?: string;
  extra?: string[];
}

/** A short bf16 pretraining of the tiny model that logs every iteration and loads no optimizer or RNG state. */
export function tinyTrainArgs(o: TinyTrainOptions): string[] {
  return [
    ...tinyModelArgs(o.tokenizer, o),
    ...['--micro-batch-size', '1', '--global-batch-size', '8', '--lr', '1.25e-6', '--min-lr', '1.25e-7'],
    ...['--lr-decay-style', 'cosine', '--lr-warmup-fraction', '0.01', '--train-iters', String(o.iters)],
    ...['--data-path', o.dataPrefix, '--split', '100,0,0', '--log-interval', '1', '--save-interval', String(o.saveInterval ?? 10)],
    ...['--eval-interval', '1000', '--eval-iters', '0', '--bf16', '--no-load-optim', '--no-load-rng'],
    ...(o.save ? ['--save', o.save] : []),
    ...(o.load ? ['--load', o.load] : []),
    ...(o.extra ?? []),
  ];
}
