/**
 * A linkflow worker: a node of its pool. It polls the pool's task queue (pipeline workflows, the
 * pool's allocator, bookkeeping) and the node's own queue (the attempts the allocator placed here),
 * and keeps its place in the pool. One per Ascend node in a cluster; `linkflow dev` runs one locally.
 */
import { DefaultLogger, NativeConnection, Runtime, Worker, type LogLevel } from '@temporalio/worker';
import { createRequire } from 'node:module';
import os from 'node:os';
import { connectionOptions, type LinkflowConfig } from '../temporal.config.ts';
import * as activities from '../activities/index.ts';
import { stopAllProcesses } from '../executors/nodes/io/process-group.ts';
import { configureNode } from '../activities/node.ts';
import { configurePool } from '../activities/pool.ts';
import { defaultNodeAddress, type NodeIdentity } from '../node/identity.ts';
import { nodeIdentity, nodeQueue } from '../plan/gang.ts';
import { durationToMs } from '../common/duration.ts';
import { poolSettings } from '../temporal.config.ts';
import { joinPool } from './membership.ts';

const require = createRequire(import.meta.url);
// Compiled to dist/, this file bundles the compiled workflows beside it (dist/workflows/index.js);
// run from source (tsx, vitest), the TypeScript ones.
const WORKFLOWS = import.meta.url.endsWith('.ts') ? '../workflows/index.ts' : '../workflows/index.js';

let runtimeInstalled = false;

/**
 * The worker's own log level (bundling, state changes are INFO); call before the first worker.
 * `sdkMetricsBind`: the Temporal SDK exports its worker metrics in Prometheus format there.
 */
export function installRuntime(level: LogLevel, sdkMetricsBind?: string): void {
  if (runtimeInstalled) return;
  const print = new DefaultLogger(level);
  // The node queue's worker runs activities only, by design: the SDK's warning about it would only confuse.
  const logger = new DefaultLogger(level, (entry) => {
    if (entry.message.startsWith('No workflows registered')) return;
    if (entry.message === 'Activity failed') {
      // The attempt's failure is recorded, with its log excerpt, in the pipeline: one line here, not the SDK's stack trace.
      print.log(entry.level, activityFailedLine(entry.meta));
      return;
    }
    print.log(entry.level, entry.message, entry.meta);
  });
  Runtime.install({
    logger,
    ...(sdkMetricsBind ? { telemetryOptions: { metrics: { prometheus: { bindAddress: sdkMetricsBind } } } } : {}),
  });
  runtimeInstalled = true;
}

/** "attempt failed: <workflow> <activity> (<summary>): <the error's first line>". */
export function activityFailedLine(meta: Record<string, unknown> | undefined): string {
  const error = meta?.error as { message?: string } | undefined;
  const why = (error?.message ?? 'unknown error').split('\n')[0];
  const what = [meta?.workflowId, meta?.activityType].filter((x) => typeof x === 'string').join(' ');
  return `attempt failed${what ? `: ${what}` : ''}: ${why}`;
}

export interface WorkerOptions {
  config: LinkflowConfig;
  taskQueue?: string;
  /** Reuse a connection (tests); otherwise one is opened from the config. */
  connection?: NativeConnection;
  /** This node's name and address in the pool (default: the host name and its first non-loopback IPv4). */
  node?: NodeIdentity;
  /** Export the pool's nodes by state (linkflow_pool_nodes): a worker that serves metrics. */
  reportPool?: boolean;
}

/** A worker without --node is the node named after its host. */
export function defaultNode(): NodeIdentity {
  return { node: os.hostname(), address: process.env.LINKFLOW_NODE_ADDRESS ?? defaultNodeAddress() };
}

export interface LinkflowWorker {
  /** The pool's worker: pipeline workflows, the pool's allocator, bookkeeping. */
  worker: Worker;
  /** The node queue's worker: the attempts (and gang ranks) the allocator placed on this node. */
  nodeWorker: Worker;
  node: NodeIdentity;
  /** Runs every worker until all are shut down. */
  run(): Promise<void>;
  shutdown(): void;
  close(): Promise<void>;
}

export async function createLinkflowWorker({ config, taskQueue, connection, node = defaultNode(), reportPool }: WorkerOptions): Promise<LinkflowWorker> {
  const conn = connection ?? (await NativeConnection.connect(connectionOptions(config)));
  const pool = taskQueue ?? config.taskQueue;
  const identity = nodeIdentity(node.node, os.hostname(), process.pid);
  configureNode(node);
  configurePool({ settings: poolSettings(config), healthCheck: config.pool.healthCheck, healthCheckTimeoutMs: durationToMs(config.pool.healthCheckTimeout) });
  const worker = await Worker.create({
    connection: conn,
    namespace: config.namespace,
    identity,
    taskQueue: pool,
    workflowsPath: require.resolve(WORKFLOWS),
    activities,
    // The activity waits on a process for hours; workflow tasks are tiny. Keep shutdown prompt.
    shutdownGraceTime: '30s',
    // Heartbeats carry progress and bring cancellations: send them at least every 2 s.
    maxHeartbeatThrottleInterval: '2s',
    // A worker that died holding a pipeline's workflow delays its next step by this much (SDK default
    // 10 s, measured in perf/RESULTS.md); another worker then replays it from history.
    stickyQueueScheduleToStartTimeout: '3s',
  });
  const nodeWorker = await Worker.create({
    connection: conn,
    namespace: config.namespace,
    identity,
    taskQueue: nodeQueue(pool, node.node),
    activities,
    shutdownGraceTime: '30s',
    maxHeartbeatThrottleInterval: '2s',
  });
  const all = [worker, nodeWorker];
  // Joined before polling starts: an attempt placed here meanwhile waits on the node's queue until it does.
  const membership = await joinPool(config, pool, node, {
    reportPool,
    serving: () => all.every((w) => w.getState() === 'RUNNING' || w.getState() === 'INITIALIZED'),
  });
  return {
    worker,
    nodeWorker,
    node,
    run: async () => {
      // One worker stopping (a fatal error) stops the other, so the node never half-polls; both finish before this returns.
      const ended = await Promise.allSettled(all.map((w) => w.run().finally(() => all.forEach((x) => x.getState() === 'RUNNING' && x.shutdown()))));
      await membership.leave('its worker shut down');
      const failed = ended.find((e): e is PromiseRejectedResult => e.status === 'rejected');
      if (failed) throw failed.reason;
    },
    shutdown: () => all.forEach((w) => w.getState() === 'RUNNING' && w.shutdown()),
    close: async () => {
      await membership.leave('its worker closed');
      if (!connection) await conn.close();
    },
  };
}

/**
 * A node drain (SIGTERM to the worker): stop the running trainers first, as `linkflow stop` does
 * (SIGTERM to torchrun's workers, SIGKILL only after the grace their measured saves need), so that
 * they write a last checkpoint (--exit-signal-handler); their attempts then fail as `killed` and
 * resume elsewhere. Temporal's runtime shuts the worker down on the same signal, and waits for them.
 */
export function drainOnSigterm(log: (msg: string) => void = console.log): void {
  process.once('SIGTERM', () => {
    log('SIGTERM: stopping running trainers so they can save, then shutting the worker down');
    void stopAllProcesses();
  });
}
