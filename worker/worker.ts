/**
 * A linkflow worker: polls a task queue and runs pipeline workflows and their stage activities
 * on this node. One per Ascend node in a cluster; `linkflow dev` runs one locally.
 */
import { DefaultLogger, NativeConnection, Runtime, Worker, type LogLevel } from '@temporalio/worker';
import { createRequire } from 'node:module';
import os from 'node:os';
import { connectionOptions, type LinkflowConfig } from '../temporal.config.ts';
import * as activities from '../activities/index.ts';
import { stopAllProcesses } from '../node/process-group.ts';
import { configureNode } from '../activities/node.ts';
import type { NodeIdentity } from '../node/identity.ts';
import { nodeIdentity, nodeQueue } from '../modellink/gang.ts';

const require = createRequire(import.meta.url);

let runtimeInstalled = false;

/**
 * The worker's own log level (bundling, state changes are INFO); call before the first worker.
 * `sdkMetricsBind`: the Temporal SDK exports its worker metrics in Prometheus format there.
 */
export function installRuntime(level: LogLevel, sdkMetricsBind?: string): void {
  if (runtimeInstalled) return;
  Runtime.install({
    logger: new DefaultLogger(level),
    ...(sdkMetricsBind ? { telemetryOptions: { metrics: { prometheus: { bindAddress: sdkMetricsBind } } } } : {}),
  });
  runtimeInstalled = true;
}

export interface WorkerOptions {
  config: LinkflowConfig;
  taskQueue?: string;
  /** Reuse a connection (tests); otherwise one is opened from the config. */
  connection?: NativeConnection;
  /** This worker is a node of the pool: it also polls the node's own queue, where gang ranks are placed. */
  node?: NodeIdentity;
}

export interface LinkflowWorker {
  /** The pool's worker: pipeline workflows and single-node stages. */
  worker: Worker;
  /** The node queue's worker, when started with a node name: ranks of multi-node stages. */
  nodeWorker?: Worker;
  /** Runs every worker until all are shut down. */
  run(): Promise<void>;
  shutdown(): void;
  close(): Promise<void>;
}

export async function createLinkflowWorker({ config, taskQueue, connection, node }: WorkerOptions): Promise<LinkflowWorker> {
  const conn = connection ?? (await NativeConnection.connect(connectionOptions(config)));
  const pool = taskQueue ?? config.taskQueue;
  const identity = node ? nodeIdentity(node.node, os.hostname(), process.pid) : undefined;
  if (node) configureNode(node);
  const worker = await Worker.create({
    connection: conn,
    namespace: config.namespace,
    // An explicit undefined identity is rejected by the native worker.
    ...(identity ? { identity } : {}),
    taskQueue: pool,
    workflowsPath: require.resolve('../workflows/index.ts'),
    activities,
    // The activity waits on a process for hours; workflow tasks are tiny. Keep shutdown prompt.
    shutdownGraceTime: '30s',
    // Heartbeats carry progress and bring cancellations: send them at least every 2 s.
    maxHeartbeatThrottleInterval: '2s',
    // A worker that died holding a pipeline's workflow delays its next step by this much (SDK default
    // 10 s, measured in perf/RESULTS.md); another worker then replays it from history.
    stickyQueueScheduleToStartTimeout: '3s',
  });
  const nodeWorker = node
    ? await Worker.create({
        connection: conn,
        namespace: config.namespace,
        identity,
        taskQueue: nodeQueue(pool, node.node),
        activities,
        shutdownGraceTime: '30s',
        maxHeartbeatThrottleInterval: '2s',
      })
    : undefined;
  const all = nodeWorker ? [worker, nodeWorker] : [worker];
  return {
    worker,
    nodeWorker,
    run: async () => {
      // One worker stopping (a fatal error) stops the other, so the node never half-polls; both finish before this returns.
      const ended = await Promise.allSettled(all.map((w) => w.run().finally(() => all.forEach((x) => x.getState() === 'RUNNING' && x.shutdown()))));
      const failed = ended.find((e): e is PromiseRejectedResult => e.status === 'rejected');
      if (failed) throw failed.reason;
    },
    shutdown: () => all.forEach((w) => w.getState() === 'RUNNING' && w.shutdown()),
    close: async () => {
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
