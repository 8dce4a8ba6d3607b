/**
 * How long a stopped trainer may take between SIGTERM and SIGKILL. With --exit-signal-handler,
 * ModelLink's train() (modellink/training/training.py l. 572-578) looks at the signal once per
 * iteration, before the interval save: a SIGTERM that arrives while the trainer is in an iteration
 * costs the rest of that iteration and one save; one that arrives during an interval save costs the
 * rest of that save, one iteration and the stop save. A fixed grace shorter than that kills the stop
 * save half-written, so the grace follows what this attempt measured (the save phase between
 * Megatron's "saving checkpoint at iteration" and "successfully saved checkpoint" lines, hang.ts's
 * `checkpoint` phase), and never exceeds `checkpointTimeout`, the longest a save may take at all.
 */
export interface StopGraceInput {
  /** The longest save this attempt measured; undefined before its first save. */
  longestSaveMs?: number;
  /** Megatron's "elapsed time per iteration (ms)". */
  msPerIteration?: number;
  /** The trainer is writing an interval checkpoint right now. */
  savingNow?: boolean;
  /** The stage's `checkpointTimeout`: a save longer than this counts as a hang anyway. */
  checkpointTimeoutMs: number;
}

/** Before any save was measured: a save of a large model on shared storage takes minutes. */
export const UNMEASURED_SAVE_MS = 120_000;
/** Measured saves vary (storage load, a bigger optimizer state at a later iteration): their margin. */
const SAVE_TIME_FACTOR = 1.5;
/** After the save: Python's exit, HCCL teardown, torchrun noticing its workers ended (the old fixed grace). */
export const EXIT_MS = 10_000;

export function stopGraceMs(input: StopGraceInput): number {
  const save = input.longestSaveMs === undefined ? UNMEASURED_SAVE_MS : input.longestSaveMs * SAVE_TIME_FACTOR;
  const iteration = input.msPerIteration !== undefined && Number.isFinite(input.msPerIteration) ? input.msPerIteration : 0;
  // During an interval save the stop save comes after it and one more iteration.
  const saves = input.savingNow ? 2 : 1;
  const wanted = saves * save + iteration + EXIT_MS;
  return Math.round(Math.min(input.checkpointTimeoutMs, wanted));
}
