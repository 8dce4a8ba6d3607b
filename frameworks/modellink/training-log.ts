/**
 * ModelLink/Megatron log lines → events → progress. The line formats are those of
 * reference/modellink/formats.md; the parser never throws on a line it does not know.
 */

export type LogEvent =
  | {
      type: 'iteration';
      iteration: number;
      trainIters: number;
      consumedSamples?: number;
      elapsedMsPerIteration: number;
      tflopsPerDevice?: number;
      learningRate?: number;
      globalBatchSize?: number;
      /** NaN when Megatron printed nan/inf; absent when the line had no loss (zero averages are dropped). */
      loss?: number;
      gradNorm?: number;
      skippedIterations?: number;
      nanIterations?: number;
    }
  | { type: 'checkpoint-saving'; iteration: number; dir: string }
  | { type: 'checkpoint-saved'; iteration: number; dir: string }
  | { type: 'checkpoint-loading'; iteration: number | 'release'; dir: string }
  | { type: 'checkpoint-loaded'; iteration: number; dir: string }
  | { type: 'no-checkpoint' }
  | { type: 'eval-result'; task: string; correct: number; total: number; accuracy: number }
  | { type: 'human-eval-result'; accuracy: number }
  | { type: 'preprocess-progress'; documents: number };

const ITERATION = /iteration\s+(\d+)\/\s*(\d+)\s*\|/;
const FIELD = /\s*([^|:]+?):\s+([^|]+?)\s*\|/g;
const SAVING = /saving checkpoint at iteration\s+(\d+) to (.+?) in \S+ format/;
/** Megatron core_r0.6.0 says `at iteration`; MindSpeed-LLM 2.1.0 on (core_r0.8.0, core_v0.12.1 checkpointing.py) `from iteration`. */
const SAVED = /successfully saved checkpoint (?:at|from) iteration\s+(\d+) to (.+?)\s*$/;
const LOADING = /^\s*loading (?:distributed )?checkpoint from (.+?) at iteration (\d+)/;
const LOADING_RELEASE = /^\s*loading release (?:distributed )?checkpoint from (.+?)\s*$/;
const LOADED = /successfully loaded (?:distributed )?checkpoint from (.+?) \[.*\] at iteration (\d+)/;
const NO_CHECKPOINT = /WARNING: could not find the metadata file/;
/**
 * Each task's summary line as ModelLink's eval_impl/*.py (d4feda79) logs it: `mmlu acc = a/b=x` (and
 * ceval, boolq, gsm8k, bbh, with Python's str of the fraction), agi_eval.py's `AGIEval acc = %d/%d=%e`.
 * The per-subject lines of bbh and agieval (`<subject> acc = ...`) are not results of a task.
 */
const EVAL = /\b(mmlu|cmmlu|ceval|boolq|gsm8k|bbh|AGIEval) acc = (\d+)\/(\d+)=([0-9.eE+-]+|nan|inf)/;
/** The spec's task name for each summary line's spelling (MindSpeed-LLM's mmlu_ppl.py prints the mmlu line too). */
const EVAL_TASK: Record<string, string> = { mmlu: 'mmlu', cmmlu: 'cmmlu', ceval: 'ceval', boolq: 'boolq', gsm8k: 'gsm8k', bbh: 'bbh', AGIEval: 'agieval' };
/** MindSpeed-LLM's needlebench_eval.py: `needlebench acc = {correct}/{total}`, no fraction. */
const NEEDLEBENCH = /\bneedlebench acc = (\d+)\/(\d+)\s*$/;
const HUMAN_EVAL = /^(?:INFO:[^:]*:)?acc = \{?([0-9.eE+-]+)\}?\s*$/;
/** MindSpeed-LLM's human_eval.py with its pass@k scorer: `Human Eval accuracy = {pass@1}`. */
const HUMAN_EVAL_ACCURACY = /\bHuman Eval accuracy = ([0-9.eE+-]+)\s*$/;
const PREPROCESS = /Processed (\d+) documents/;

/** Megatron prints losses with {:.6E}; Python spells non-finite values nan/NAN/inf/INF. */
function parseNumber(text: string): number {
  const t = text.trim().toLowerCase();
  if (t === 'nan' || t === '-nan') return Number.NaN;
  if (t === 'inf' || t === '+inf') return Number.POSITIVE_INFINITY;
  if (t === '-inf') return Number.NEGATIVE_INFINITY;
  return Number(t);
}

export function parseLogLine(line: string): LogEvent | undefined {
  const it = ITERATION.exec(line);
  if (it) {
    const fields = new Map<string, string>();
    for (const m of line.slice(it.index + it[0].length).matchAll(FIELD)) fields.set(m[1].trim(), m[2]);
    const numberField = (name: string) => (fields.has(name) ? parseNumber(fields.get(name)!) : undefined);
    return {
      type: 'iteration',
      iteration: Number(it[1]),
      trainIters: Number(it[2]),
      consumedSamples: numberField('consumed samples'),
      elapsedMsPerIteration: numberField('elapsed time per iteration (ms)') ?? Number.NaN,
      tflopsPerDevice: numberField('throughput per GPU (TFLOP/s/GPU)'),
      learningRate: numberField('learning rate'),
      globalBatchSize: numberField('global batch size'),
      loss: numberField('lm loss'),
      gradNorm: numberField('grad norm'),
      skippedIterations: numberField('number of skipped iterations'),
      nanIterations: numberField('number of nan iterations'),
    };
  }
  let m: RegExpExecArray | null;
  if ((m = SAVING.exec(line))) return { type: 'checkpoint-saving', iteration: Number(m[1]), dir: m[2] };
  if ((m = SAVED.exec(line))) return { type: 'checkpoint-saved', iteration: Number(m[1]), dir: m[2] };
  if ((m = LOADED.exec(line))) return { type: 'checkpoint-loaded', dir: m[1], iteration: Number(m[2]) };
  if ((m = LOADING.exec(line))) return { type: 'checkpoint-loading', dir: m[1], iteration: Number(m[2]) };
  if ((m = LOADING_RELEASE.exec(line))) return { type: 'checkpoint-loading', dir: m[1], iteration: 'release' };
  if (NO_CHECKPOINT.test(line)) return { type: 'no-checkpoint' };
  if ((m = EVAL.exec(line))) return { type: 'eval-result', task: EVAL_TASK[m[1]], correct: Number(m[2]), total: Number(m[3]), accuracy: parseNumber(m[4]) };
  if ((m = NEEDLEBENCH.exec(line)))
    return {
      type: 'eval-result',
      task: 'needlebench',
      correct: Number(m[1]),
      total: Number(m[2]),
      accuracy: Number(m[2]) > 0 ? Number(m[1]) / Number(m[2]) : NaN,
    };
  if ((m = HUMAN_EVAL.exec(line)) || (m = HUMAN_EVAL_ACCURACY.exec(line))) return { type: 'human-eval-result', accuracy: Number(m[1]) };
  if ((m = PREPROCESS.exec(line))) return { type: 'preprocess-progress', documents: Number(m[1]) };
  return undefined;
}

type IterationEvent = Extract<LogEvent, { type: 'iteration' }>;

/**
 * Whether an iteration line shows a NaN (or infinite) loss. Megatron's training_log (core_r0.6.0
 * megatron/training/training.py, l. 619-631 and 793-797) counts `nan iterations` only for skipped
 * steps, which only fp16's loss scaler skips; in bf16/fp32 a NaN loss is summed like any other and
 * then left out of the line, since only averages > 0 are printed. So with
 * `--no-check-for-nan-in-loss-and-grad` (pretrain_gpt.py loss_func no longer raises) a NaN shows
 * only as a line without `lm loss` in an interval where no step was skipped: the loss was there in
 * earlier lines, or the gradient norm is NaN too. A cross-entropy average is never ≤ 0 otherwise.
 */
export function lossIsNaN(event: IterationEvent, sawLossBefore: boolean): boolean {
  if ((event.nanIterations ?? 0) > 0) return true;
  if (event.loss !== undefined) return !Number.isFinite(event.loss);
  const noStepSkipped = event.skippedIterations === 0;
  const gradNormNaN = event.gradNorm !== undefined && !Number.isFinite(event.gradNorm);
  return noStepSkipped && (sawLossBefore || gradNormNaN);
}

/** What a running attempt has done so far; carried by heartbeats and shown by `linkflow status`. */
export interface AttemptProgress {
  iteration?: number;
  trainIters?: number;
  loss?: number;
  tokensPerSecondPerDevice?: number;
  tflopsPerDevice?: number;
  elapsedMsPerIteration?: number;
  /** The iteration this attempt loaded (undefined: started without a checkpoint). */
  loadedIteration?: number;
  lastCheckpoint?: { iteration: number; dir: string };
  savingCheckpoint?: boolean;
  nanLoss?: boolean;
  evalResults?: { task: string; correct?: number; total?: number; accuracy: number }[];
  documents?: number;
  /** Measured by the watcher: from launch to the first iteration logged, and checkpoint saves. */
  startupMs?: number;
  /** From "loading checkpoint" to "successfully loaded": part of the start-up. */
  loadMs?: number;
  saveMsTotal?: number;
  saves?: number;
}

export interface ThroughputShape {
  seqLength: number;
  globalBatchSize: number;
  worldSize: number;
}

/** ModelLink's unit: tokens per second per device = seq × global batch ÷ (time per iteration × world size). */
export function tokensPerSecondPerDevice(shape: ThroughputShape, elapsedMsPerIteration: number): number | undefined {
  if (!(elapsedMsPerIteration > 0)) return undefined;
  return (shape.seqLength * shape.globalBatchSize) / ((elapsedMsPerIteration / 1000) * shape.worldSize);
}

/** Folds one event into the progress; returns true when the event counts as progress (resets the hang window). */
export function applyLogEvent(progress: AttemptProgress, event: LogEvent, shape?: ThroughputShape): boolean {
  switch (event.type) {
    case 'iteration':
      progress.iteration = event.iteration;
      progress.trainIters = event.trainIters;
      progress.elapsedMsPerIteration = event.elapsedMsPerIteration;
      if (event.tflopsPerDevice !== undefined) progress.tflopsPerDevice = event.tflopsPerDevice;
      if (lossIsNaN(event, progress.loss !== undefined)) progress.nanLoss = true;
      if (event.loss !== undefined) progress.loss = event.loss;
      if (shape)
        progress.tokensPerSecondPerDevice = tokensPerSecondPerDevice(
          { ...shape, globalBatchSize: event.globalBatchSize ?? shape.globalBatchSize },
          event.elapsedMsPerIteration,
        );
      return true;
    case 'checkpoint-saving':
      progress.savingCheckpoint = true;
      return true;
    case 'checkpoint-saved':
      progress.savingCheckpoint = false;
      progress.lastCheckpoint = { iteration: event.iteration, dir: event.dir };
      return true;
    case 'checkpoint-loaded':
      progress.loadedIteration = event.iteration;
      if (progress.iteration === undefined) progress.iteration = event.iteration;
      return true;
    case 'checkpoint-loading':
    case 'no-checkpoint':
      return true;
    case 'eval-result':
      (progress.evalResults ??= []).push({ task: event.task, correct: event.correct, total: event.total, accuracy: event.accuracy });
      return true;
    case 'human-eval-result':
      (progress.evalResults ??= []).push({ task: 'human_eval', accuracy: event.accuracy });
      return true;
    case 'preprocess-progress':
      progress.documents = event.documents;
      return true;
  }
}
