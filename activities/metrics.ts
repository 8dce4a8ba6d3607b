/**
 * linkflow's own Prometheus metrics, kept in the worker process that runs the attempts: the watch loop
 * sets a running stage's gauges from its log (the heartbeat's progress), and each attempt's end counts
 * its outcome and duration. `linkflow worker --metrics HOST:PORT` serves them (worker/metrics-server.ts).
 * Labels are pipeline, stage, node, pool (and outcome, failure class): never attempt numbers or
 * iterations, which grow without bound.
 */
import { CallbackGauge, Counter, Gauge, Histogram, Registry } from '../common/prometheus.ts';
import type { AttemptProgress } from '../frameworks/modellink/training-log.ts';

export const metrics = new Registry();

/** Which running stage a series belongs to. */
export interface StageLabels {
  pipeline: string;
  stage: string;
  node: string;
  pool: string;
  [key: string]: string;
}

const STAGE = ['pipeline', 'stage', 'node', 'pool'] as const;
/** Seconds: a tiny model saves in a fraction of a second, a 70B one in many minutes. */
const SECONDS_BUCKETS = [0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];
const DURATION_BUCKETS = [1, 10, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400, 30 * 86400];

const running = metrics.register(new Gauge('linkflow_stage_running', 'Attempts of the stage running on this worker now', STAGE));
const iteration = metrics.register(new Gauge('linkflow_stage_iteration', 'The last iteration the running attempt logged', STAGE));
const tokensPerSecond = metrics.register(
  new Gauge('linkflow_stage_tokens_per_second_per_device', 'Training throughput of the running attempt: tokens per second per device', STAGE),
);
const loss = metrics.register(new Gauge('linkflow_stage_loss', 'The last lm loss the running attempt logged', STAGE));
const lastCheckpoint = metrics.register(
  new Gauge('linkflow_stage_last_checkpoint_iteration', 'The iteration of the last checkpoint the running attempt saved (or loaded)', STAGE),
);
const attempts = metrics.register(
  new Counter(
    'linkflow_attempts_total',
    'Attempts that ended, by outcome (succeeded, failed, cancelled) and failure class (none unless failed); a multi-node attempt counts once per node',
    [...STAGE, 'outcome', 'failure_class'],
  ),
);
const recomputed = metrics.register(
  new Counter(
    'linkflow_iterations_recomputed_total',
    'Iterations redone after a failure: the previous attempt got further than the checkpoint this one loaded',
    STAGE,
  ),
);
const saveSeconds = metrics.register(
  new Histogram('linkflow_checkpoint_save_seconds', 'Checkpoint saves, from "saving" to "successfully saved"', STAGE, SECONDS_BUCKETS),
);
const loadSeconds = metrics.register(
  new Histogram('linkflow_checkpoint_load_seconds', 'Checkpoint loads, from "loading" to "successfully loaded"', STAGE, SECONDS_BUCKETS),
);
const attemptSeconds = metrics.register(
  new Histogram('linkflow_attempt_duration_seconds', 'Attempts from start to end, by outcome', [...STAGE, 'outcome'], DURATION_BUCKETS),
);
const stageSeconds = metrics.register(
  new Histogram(
    'linkflow_stage_duration_seconds',
    "Stages that succeeded, from their first attempt's start to the end of the last (backoffs and waits included)",
    STAGE,
    DURATION_BUCKETS,
  ),
);

/** Nodes of each pool by state, from whoever knows them: see setPoolNodesSource. */
export interface PoolNodeCount {
  pool: string;
  /** e.g. free, busy, reserved, draining, lost: the allocator's own states. */
  state: string;
  count: number;
}

let poolNodesSource: () => PoolNodeCount[] = () => [];

/**
 * The hook for the pool allocator: a function this worker calls at each scrape for the nodes of its
 * pools by state, exported as linkflow_pool_nodes{pool, state}. Nothing feeds it until the allocator does.
 */
export function setPoolNodesSource(source: () => PoolNodeCount[]): void {
  poolNodesSource = source;
}

metrics.register(
  new CallbackGauge('linkflow_pool_nodes', 'Nodes of the pool by state, from the pool allocator', ['pool', 'state'], () =>
    poolNodesSource().map((c) => ({ labels: { pool: c.pool, state: c.state }, value: c.count })),
  ),
);

/** The pool of an activity's task queue: a node's own queue is `POOL@NODE`. */
export function poolOf(taskQueue: string): string {
  return taskQueue.split('@')[0];
}

/** A running attempt's gauges, from its progress (called with every heartbeat). */
export function attemptProgressed(labels: StageLabels, progress: AttemptProgress): void {
  running.set(labels, 1);
  if (progress.iteration !== undefined) iteration.set(labels, progress.iteration);
  if (progress.tokensPerSecondPerDevice !== undefined) tokensPerSecond.set(labels, progress.tokensPerSecondPerDevice);
  if (progress.loss !== undefined) loss.set(labels, progress.loss);
  const checkpoint = progress.lastCheckpoint?.iteration ?? progress.loadedIteration;
  if (checkpoint !== undefined) lastCheckpoint.set(labels, checkpoint);
}

export function checkpointSaved(labels: StageLabels, seconds: number): void {
  saveSeconds.observe(labels, seconds);
}

export function checkpointLoaded(labels: StageLabels, seconds: number): void {
  loadSeconds.observe(labels, seconds);
}

export function iterationsRecomputed(labels: StageLabels, count: number): void {
  if (count > 0) recomputed.inc(labels, count);
}

/** An attempt ended: counted, timed, and its stage's gauges removed (it no longer runs here). */
export function attemptEnded(labels: StageLabels, outcome: 'succeeded' | 'failed' | 'cancelled', failureClass: string | undefined, seconds: number): void {
  attempts.inc({ ...labels, outcome, failure_class: failureClass ?? 'none' });
  attemptSeconds.observe({ ...labels, outcome }, seconds);
  for (const gauge of [running, iteration, tokensPerSecond, loss, lastCheckpoint]) gauge.remove(labels);
}

export function stageSucceeded(labels: StageLabels, seconds: number): void {
  stageSeconds.observe(labels, seconds);
}
