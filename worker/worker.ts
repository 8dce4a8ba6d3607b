/**
 * A linkflow worker: polls a task queue and runs pipeline workflows and their stage activities
 * on this node. One per Ascend node in a cluster; `linkflow dev` runs one locally.
 */
import { DefaultLogger, NativeConnection, Runtime, Worker, type LogLevel } from '@temporalio/worker';
import { createRequire } from 'node:module';
import { connectionOptions, type LinkflowConfig } from '../temporal.config.ts';
import * as activities from '../activities/index.ts';
import { stopAllProcesses } from '../executors/local.ts';

const require = createRequire(import.meta.url);

let runtimeInstalled = false;

/** The worker's own log level (bundling, state changes are INFO); call before the first worker. */
export function installRuntime(level: LogLevel): void {
  if (runtimeInstalled) return;
  Runtime.install({ logger: new DefaultLogger(level) });
  runtimeInstalled = true;
}

export interface WorkerOptions {
  config: LinkflowConfig;
  taskQueue?: string;
  /** Reuse a connection (tests); otherwise one is opened from the config. */
  connection?: NativeConnection;
}

export async function createLinkflowWorker({ config, taskQueue, connection }: WorkerOptions): Promise<{ worker: Worker; close: () => Promise<void> }> {
  const conn = connection ?? (await NativeConnection.connect(connectionOptions(config)));
  const worker = await Worker.create({
    connection: conn,
    namespace: config.namespace,
    taskQueue: taskQueue ?? config.taskQueue,
    workflowsPath: require.resolve('../workflows/index.ts'),
    activities,
    // The activity waits on a process for hours; workflow tasks are tiny. Keep shutdown prompt.
    shutdownGraceTime: '30s',
    // Heartbeats carry progress and bring cancellations: send them at least every 2 s.
    maxHeartbeatThrottleInterval: '2s',
  });
  return { worker, close: async () => { if (!connection) await conn.close(); } };
}

/**
 * A node drain (SIGTERM to the worker): stop the running trainers first, with SIGTERM, so that
 * they can write a last checkpoint (ModelLink's high availability does); their attempts then fail as
 * `killed` and resume elsewhere. Temporal's runtime shuts the worker down on the same signal.
 */
export function drainOnSigterm(log: (msg: string) => void = console.log): void {
  process.once('SIGTERM', () => {
    log('SIGTERM: stopping running trainers so they can save, then shutting the worker down');
    void stopAllProcesses();
  });
}
