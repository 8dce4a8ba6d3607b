/**
 * Steady-state throughput of one benchmark job, from the iteration lines Megatron logged
 * (frameworks/modellink/training-log.ts parses them), in the table's unit: tokens per second per device.
 */
import { tokensPerSecondPerDevice, type LogEvent, type ThroughputShape } from '../frameworks/modellink/training-log.ts';

/** The parsed iteration line (training-log.ts LogEvent of type 'iteration'); only these fields are used. */
export type IterationSample = Pick<Extract<LogEvent, { type: 'iteration' }>, 'iteration' | 'elapsedMsPerIteration' | 'tflopsPerDevice' | 'globalBatchSize'>;

export interface Throughput {
  /** Median over the measured iterations. */
  tokensPerSecondPerDevice: number;
  /** Spread over the measured log lines (each line is an average over its log interval). */
  min: number;
  max: number;
  /** Median absolute deviation from the median. */
  mad: number;
  /** Median time per iteration, ms. */
  msPerIteration: number;
  /** Iterations measured (after warm-up). */
  iterations: number;
  /** Median TFLOP/s per device, when the log gives it (--log-throughput). */
  tflopsPerDevice?: number;
}

export type ThroughputResult = { ok: true; throughput: Throughput } | { ok: false; reason: string };

/**
 * Median of values where value i counts weights[i] times: a log line printed every k iterations averages
 * k iterations, so it stands for k of them.
 */
function weightedMedian(values: readonly number[], weights?: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const pairs = values.map((v, i) => [v, weights ? weights[i] : 1] as const).sort((a, b) => a[0] - b[0]);
  const total = pairs.reduce((s, [, w]) => s + w, 0);
  let below = 0;
  for (let i = 0; i < pairs.length; i++) {
    const [v, w] = pairs[i];
    below += w;
    // Exactly half the weight below: the median lies between this value and the next one.
    if (below * 2 === total && i + 1 < pairs.length) return (v + pairs[i + 1][0]) / 2;
    if (below * 2 > total) return v;
  }
  return pairs[pairs.length - 1][0];
}

export function median(values: readonly number[]): number {
  return weightedMedian(values);
}

/** Median absolute deviation (not scaled to a normal σ): robust to one odd night. */
export function medianAbsoluteDeviation(values: readonly number[], weights?: readonly number[]): number {
  const m = weightedMedian(values, weights);
  return weightedMedian(
    values.map((v) => Math.abs(v - m)),
    weights,
  );
}

/**
 * Tokens/s per device from the iteration lines of one job: lines whose interval began during the first
 * `warmup` iterations after `startIteration` are dropped (start-up and compilation are not steady state);
 * each remaining line counts for the iterations it averages. The global batch size of a line wins over the
 * shape's (batch-size ramp-up).
 */
export function measureThroughput(
  samples: readonly IterationSample[],
  shape: ThroughputShape,
  options: { warmup: number; startIteration?: number },
): ThroughputResult {
  const start = options.startIteration ?? 0;
  const measuredFrom = start + options.warmup;
  const tokens: number[] = [];
  const ms: number[] = [];
  const weights: number[] = [];
  const tflops: number[] = [];
  const tflopsWeights: number[] = [];
  let previous = start;
  for (const s of samples) {
    const span = s.iteration - previous;
    const began = previous;
    previous = s.iteration;
    if (span <= 0 || began < measuredFrom) continue;
    const t = tokensPerSecondPerDevice({ ...shape, globalBatchSize: s.globalBatchSize ?? shape.globalBatchSize }, s.elapsedMsPerIteration);
    if (t === undefined || !Number.isFinite(t)) continue;
    tokens.push(t);
    ms.push(s.elapsedMsPerIteration);
    weights.push(span);
    if (s.tflopsPerDevice !== undefined && Number.isFinite(s.tflopsPerDevice)) {
      tflops.push(s.tflopsPerDevice);
      tflopsWeights.push(span);
    }
  }
  if (tokens.length === 0) {
    const last = samples.length > 0 ? samples[samples.length - 1].iteration : start;
    return { ok: false, reason: `no measured iteration: the log reached iteration ${last}, warm-up ends at ${measuredFrom}` };
  }
  const throughput: Throughput = {
    tokensPerSecondPerDevice: weightedMedian(tokens, weights),
    min: Math.min(...tokens),
    max: Math.max(...tokens),
    mad: medianAbsoluteDeviation(tokens, weights),
    msPerIteration: weightedMedian(ms, weights),
    iterations: weights.reduce((a, b) => a + b, 0),
  };
  if (tflops.length > 0) throughput.tflopsPerDevice = weightedMedian(tflops, tflopsWeights);
  return { ok: true, throughput };
}

/** The time per iteration at which a job runs at `tokensPerSecondPerDevice`: the inverse of the table's unit. */
export function msPerIterationAt(shape: ThroughputShape, tokensPerSecondPerDevice: number): number {
  return ((shape.seqLength * shape.globalBatchSize) / (tokensPerSecondPerDevice * shape.worldSize)) * 1000;
}
