/**
 * Save-interval advice from what a run went through. With checkpoint cost C, mean time between
 * failures M and recovery time R, Young's interval is √(2·C·M); Daly's refinement (2006) accounts
 * for the recovery and higher-order terms:
 *   τ = √(2·C·(M+R)) · [1 + ⅓·√(C / (2(M+R))) + ⅑·C / (2(M+R))] − C   (for C < 2(M+R)), else M+R.
 */
import { NON_RETRYABLE } from '../failures/failures.ts';
import type { StageState } from '../contracts/run-state.ts';

export interface RunObservations {
  /** Wall time the stage's attempts ran, in ms. */
  runMs: number;
  /** Retryable failures seen in that time. */
  failures: number;
  /** Mean time one checkpoint save took, in ms. */
  saveMs: number;
  /** Mean time from a failure to the next attempt's first iteration (backoff, launch, load), in ms. */
  recoveryMs: number;
  /** Mean time per iteration, in ms. */
  iterationMs: number;
  /** The save interval the run used, in iterations. */
  saveInterval: number;
}

export interface SaveIntervalAdvice {
  mtbfMs: number;
  youngMs: number;
  dalyMs: number;
  /** Daly's interval in iterations (at least 1). */
  recommendedIterations: number;
  /** The fraction of time lost to saving and recomputing, at the current and at the recommended interval. */
  wasteNow: number;
  wasteRecommended: number;
}

export function youngIntervalMs(saveMs: number, mtbfMs: number): number {
  return Math.sqrt(2 * saveMs * mtbfMs);
}

export function dalyIntervalMs(saveMs: number, mtbfMs: number, recoveryMs: number): number {
  const m = mtbfMs + recoveryMs;
  if (saveMs >= 2 * m) return m;
  const x = saveMs / (2 * m);
  return Math.sqrt(2 * saveMs * m) * (1 + Math.sqrt(x) / 3 + x / 9) - saveMs;
}

/** First-order waste of an interval τ: saving (C/τ) plus, per failure, half an interval recomputed and the recovery. */
export function wasteFraction(intervalMs: number, saveMs: number, mtbfMs: number, recoveryMs: number): number {
  return saveMs / intervalMs + (intervalMs / 2 + recoveryMs) / mtbfMs;
}

export function adviseSaveInterval(o: RunObservations): SaveIntervalAdvice | undefined {
  if (o.failures === 0 || !(o.iterationMs > 0) || !(o.saveMs > 0)) return undefined;
  const mtbfMs = o.runMs / o.failures;
  const youngMs = youngIntervalMs(o.saveMs, mtbfMs);
  const dalyMs = dalyIntervalMs(o.saveMs, mtbfMs, o.recoveryMs);
  const recommendedIterations = Math.max(1, Math.round(dalyMs / o.iterationMs));
  return {
    mtbfMs,
    youngMs,
    dalyMs,
    recommendedIterations,
    wasteNow: wasteFraction(o.saveInterval * o.iterationMs, o.saveMs, mtbfMs, o.recoveryMs),
    wasteRecommended: wasteFraction(recommendedIterations * o.iterationMs, o.saveMs, mtbfMs, o.recoveryMs),
  };
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

/** What a training stage's attempt log says about failures, saves and recovery. */
export function observationsOf(stage: StageState): RunObservations | undefined {
  const timed = stage.attempts.filter((a) => a.startedAt !== undefined && a.endedAt !== undefined);
  if (timed.length === 0 || stage.saveInterval === undefined) return undefined;
  const saves = timed.reduce((n, a) => n + (a.timings?.saves ?? 0), 0);
  const saveMsTotal = timed.reduce((n, a) => n + (a.timings?.saveMsTotal ?? 0), 0);
  const recoveries: number[] = [];
  for (let i = 1; i < timed.length; i++) {
    const gap = timed[i].startedAt! - timed[i - 1].endedAt!;
    recoveries.push(gap + (timed[i].timings?.startupMs ?? 0));
  }
  return {
    runMs: timed.reduce((n, a) => n + (a.endedAt! - a.startedAt!), 0),
    failures: timed.filter((a) => a.outcome === 'failed' && !NON_RETRYABLE.has(a.failureClass ?? 'unknown')).length,
    saveMs: saves > 0 ? saveMsTotal / saves : 0,
    recoveryMs: mean(recoveries),
    iterationMs: mean(timed.map((a) => a.timings?.msPerIteration).filter((x): x is number => x !== undefined && x > 0)),
    saveInterval: stage.saveInterval,
  };
}

/**
 * The save interval the next attempt should use when the stage lets linkflow apply the advice
 * (training.autoSaveInterval), or undefined to keep the current one.
 */
export function autoSaveInterval(stage: StageState, trainIters: number): { interval: number; reason: string } | undefined {
  const observed = observationsOf(stage);
  const advice = observed && adviseSaveInterval(observed);
  if (!observed || !advice) return undefined;
  const interval = Math.min(trainIters, advice.recommendedIterations);
  if (interval === observed.saveInterval) return undefined;
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  return {
    interval,
    reason: `save interval ${observed.saveInterval} → ${interval} iterations (Young/Daly: mean time between failures ${s(advice.mtbfMs)}, save ${s(observed.saveMs)}, recovery ${s(observed.recoveryMs)}, ${observed.iterationMs.toFixed(0)} ms per iteration)`,
  };
}

/**
 * What `linkflow advise` tells a user: Daly's interval, unless the run's own figures rank it no better
 * than the current interval (the first-order waste model and Daly's formula disagree near the
 * optimum, and rounding to whole iterations moves it), in which case keeping the current one is the advice.
 */
export function adviseForUser(o: RunObservations): (SaveIntervalAdvice & { keep: boolean }) | undefined {
  const advice = adviseSaveInterval(o);
  if (!advice) return undefined;
  const keep = advice.recommendedIterations === o.saveInterval || advice.wasteRecommended >= advice.wasteNow;
  return keep ? { ...advice, keep, recommendedIterations: o.saveInterval, wasteRecommended: advice.wasteNow } : { ...advice, keep };
}

/**
 * Iteration time as the wall clock saw it: the attempts' iterations over their running time, less their
 * startup and saves (what an iteration costs the run, stalls included), else the trainer's own mean.
 */
export function wallClockIterationMs(stage: StageState): number | undefined {
  let ms = 0;
  let iterations = 0;
  for (const a of stage.attempts) {
    if (a.startedAt === undefined || a.endedAt === undefined || a.lastIteration === undefined) continue;
    const done = a.lastIteration - (a.loadedIteration ?? 0);
    const busy = a.endedAt - a.startedAt - (a.timings?.startupMs ?? 0) - (a.timings?.saveMsTotal ?? 0);
    if (done > 0 && busy > 0) {
      ms += busy;
      iterations += done;
    }
  }
  return iterations > 0 ? ms / iterations : undefined;
}
