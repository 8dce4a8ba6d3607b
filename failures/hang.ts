/**
 * When silence means a hang. A fixed window either kills healthy jobs (a slow checkpoint save, a
 * long first iteration) or notices real hangs hours late, so the window follows the job: the
 * observed time between progress lines, times a factor, never below a floor; and while the job
 * starts (loads weights, compiles) or saves a checkpoint, the longer windows of those phases.
 */
export interface HangWindows {
  /** Floor of the window while training. */
  minMs: number;
  /** Multiple of the observed time between training log lines. */
  factor: number;
  /** Before the first iteration is logged: loading a checkpoint, building the model. */
  startupMs: number;
  /** Between Megatron's "saving checkpoint" and "successfully saved" lines. */
  checkpointMs: number;
  /** Iterations between training log lines (--log-interval). */
  logInterval: number;
}

export type TrainingPhase = 'startup' | 'training' | 'checkpoint';

export function noProgressWindowMs(w: HangWindows, phase: TrainingPhase, msPerIteration?: number): number {
  if (phase === 'startup') return w.startupMs;
  if (phase === 'checkpoint') return Math.max(w.checkpointMs, w.minMs);
  const observed = msPerIteration !== undefined && Number.isFinite(msPerIteration) ? msPerIteration * w.logInterval * w.factor : 0;
  return Math.max(w.minMs, observed);
}
