/** `linkflow dev`, `linkflow worker` and `linkflow demo`: long-running local processes. */
import fs from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from '../common/project-root.ts';
import { loadConfig, type LinkflowConfig } from '../temporal.config.ts';
import { createLinkflowWorker, drainOnSigterm, installRuntime } from '../worker/worker.ts';
import { runningCount, stopAllProcesses } from '../executors/nodes/io/process-group.ts';
import { sdkMetricsBindAddress, serveMetrics, type MetricsEndpoint } from '../worker/metrics-server.ts';
import type { NodeIdentity } from '../node/identity.ts';
import { nodeQueue } from '../plan/gang.ts';
import { isReachable, startDevServer, type DevServer } from '../devserver/dev-server.ts';
import { formatProblems } from '../spec/spec.ts';
import { loadSpecFile } from '../client/spec-file.ts';
import { connectClient } from '../client/connect.ts';
import { startPipeline } from '../client/pipeline.ts';
import { devUiFile } from '../client/ui-link.ts';
import { summaryText } from './progress.ts';
import { searchAttributeTypes } from '../contracts/search-attributes.ts';
import { untilCtrlC, watchPipeline } from './watch.ts';
import { poolWorkflowId } from '../contracts/pool.ts';

/** Terminates the pool workflow of the demo's own queue (its one node is this process's worker, which is going away). */
async function endDemoPool(config: LinkflowConfig, taskQueue: string): Promise<void> {
  try {
    const client = await connectClient(config);
    await client.workflow.getHandle(poolWorkflowId(taskQueue)).terminate('the demo ended; its worker and queue are gone');
    await client.connection.close();
  } catch {
    // Already ended, or the server is gone with the demo.
  }
}

function portOf(address: string): number {
  const port = Number(address.split(':').at(-1));
  return Number.isInteger(port) && port > 0 ? port : 7233;
}

/** The embedded server on the configured address, with its SQLite file, unless one already answers there. */
async function ensureServer(config: LinkflowConfig): Promise<DevServer | undefined> {
  if (await isReachable(config.address)) return undefined;
  fs.mkdirSync(path.dirname(config.dev.dbFile), { recursive: true });
  console.log(`starting the Temporal dev server on ${config.address} (state in ${config.dev.dbFile})`);
  return startDevServer({
    port: portOf(config.address),
    uiPort: config.dev.uiPort,
    dbFile: config.dev.dbFile,
    ui: true,
    searchAttributes: searchAttributeTypes(),
  });
}

/** Resolves on SIGINT/SIGTERM; the Temporal runtime also hears them and stops the worker. */
function untilInterrupted(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}

/** The runtime (with the SDK's exporter on a private port when metrics are wanted), then the metrics endpoint. */
async function runtimeWithMetrics(level: 'WARN' | 'INFO', metricsBind: string | undefined): Promise<MetricsEndpoint | undefined> {
  const sdkBind = metricsBind ? await sdkMetricsBindAddress() : undefined;
  installRuntime(level, sdkBind);
  const endpoint = metricsBind ? await serveMetrics(metricsBind, sdkBind) : undefined;
  if (endpoint) console.log(`metrics (linkflow's and the Temporal SDK's) at ${endpoint.url}`);
  return endpoint;
}

/** Resolves when the pool's and the node's workers have both stopped (polled every 100 ms). */
async function bothStopped(worker: Awaited<ReturnType<typeof createLinkflowWorker>>): Promise<void> {
  while (worker.worker.getState() !== 'STOPPED' || worker.nodeWorker.getState() !== 'STOPPED') await new Promise((r) => setTimeout(r, 100));
}

export async function runDev(config: LinkflowConfig, metricsBind?: string): Promise<void> {
  const endpoint = await runtimeWithMetrics('WARN', metricsBind);
  drainOnSigterm();
  const server = await ensureServer(config);
  if (!server) console.log(`a Temporal server already answers at ${config.address}; starting only a worker`);
  else console.log(`Temporal dev server at ${server.address}${server.uiUrl ? `, Web UI ${server.uiUrl}` : ''}`);
  // `run` and `watch` print the link to a pipeline wherever the UI landed.
  if (server?.uiUrl) fs.writeFileSync(devUiFile(config), JSON.stringify({ address: config.address, uiUrl: server.uiUrl }) + '\n');
  const worker = await createLinkflowWorker({ config, reportPool: endpoint !== undefined });
  console.log(`worker polling task queue "${config.taskQueue}" in namespace "${config.namespace}" as node ${worker.node.node}; Ctrl-C stops everything`);
  const running = worker.run();
  await Promise.race([untilInterrupted(), running]);
  // A second Ctrl-C does not wait: the trainers' process groups die with their supervisors' pipes.
  process.once('SIGINT', () => {
    console.log('second Ctrl-C: exiting now');
    process.exit(130);
  });
  const trainers = runningCount();
  console.log(
    trainers > 0
      ? `stopping the worker: its ${trainers} running command(s) get SIGTERM and their save grace first (the attempts resume on the next run); Ctrl-C again exits at once`
      : 'stopping the worker (no attempt runs here)…',
  );
  if (trainers > 0) void stopAllProcesses();
  worker.shutdown();
  const failed = running.catch((e: unknown) => console.error(`worker stopped with an error: ${(e as Error).message}`));
  // Once both workers have stopped polling, nothing of theirs runs: the SDK's run() may settle many seconds later
  // (measured: ~17 s after a training stage ran), which a Ctrl-C should not wait for.
  await Promise.race([failed, bothStopped(worker)]);
  await worker.close();
  await endpoint?.close();
  if (server) {
    console.log('stopping the dev server (it keeps its state in its database)…');
    await server.stop();
    fs.rmSync(devUiFile(config), { force: true });
  }
  console.log('stopped');
}

export async function runWorker(config: LinkflowConfig, taskQueue?: string, node?: NodeIdentity, metricsBind?: string): Promise<void> {
  const endpoint = await runtimeWithMetrics('INFO', metricsBind);
  drainOnSigterm();
  const workers = await createLinkflowWorker({ config, taskQueue, node, reportPool: endpoint !== undefined });
  const pool = taskQueue ?? config.taskQueue;
  const self = workers.node;
  console.log(
    `worker polling task queue "${pool}" and node queue "${nodeQueue(pool, self.node)}" (node ${self.node}, address ${self.address}) at ${config.address}`,
  );
  try {
    await workers.run();
  } finally {
    await workers.close();
    await endpoint?.close();
  }
}

/**
 * The demo: the example pipeline on the emulator in a fresh workspace, with a crash injected at
 * iteration 35 of pretraining. Exit 0 only when it completed and pretraining really resumed.
 */
export async function runDemo(config: LinkflowConfig, kubernetes?: { image: string; namespace?: string }): Promise<number> {
  const specFile = path.join(PROJECT_ROOT, 'examples', 'demo.yaml');
  const workspace = path.join(PROJECT_ROOT, '.linkflow', 'demo', new Date().toISOString().replace(/[:.]/g, '-'));
  // On Kubernetes each stage is a gang of pods of the image; the checkout (the emulator, the demo data) and the workspace reach them by hostPath.
  const cluster = kubernetes
    ? (raw: Record<string, unknown>) => ({
        ...(raw.cluster as Record<string, unknown>),
        executor: 'kubernetes',
        kubernetes: {
          image: kubernetes.image,
          namespace: kubernetes.namespace ?? 'default',
          imagePullPolicy: 'IfNotPresent',
          devices: { perNode: 1 },
          volumes: [{ hostPath: PROJECT_ROOT, readOnly: true }, { hostPath: workspace }],
        },
      })
    : undefined;
  if (kubernetes) fs.mkdirSync(workspace, { recursive: true });
  const planned = loadSpecFile(specFile, { workspace, cluster });
  if (!planned.ok) {
    console.error(formatProblems(planned.problems));
    return 2;
  }
  installRuntime('ERROR');
  const server = await ensureServer(config);
  // A queue of its own, so only this process's worker (with this checkout's code) runs the demo.
  const taskQueue = `linkflow-demo-${process.pid}`;
  const worker = await createLinkflowWorker({ config: loadConfig({ taskQueue }) });
  const running = worker.run();
  try {
    const client = await connectClient(config);
    // A short backoff: the demo's crash is retried after 2 s instead of the default 10 s.
    const handle = await startPipeline(client, loadConfig({ retry: { initialInterval: '2s' } }), planned.plan, taskQueue);
    console.log(`demo pipeline ${planned.plan.name} started as ${handle.workflowId}`);
    console.log(`workspace: ${workspace}`);
    console.log('pretraining will crash at iteration 35 (MLEMU_FAULTS=crash@35); watch it resume from the checkpoint at 30\n');
    const final = await untilCtrlC((signal) => watchPipeline(handle, { signal }));
    if (!final) {
      // The demo's worker is this process: without it the pipeline could not go on, so it is cancelled.
      console.log('\ninterrupted: cancelling the demo pipeline (its worker is this process)');
      await handle.cancel().catch(() => undefined);
      return 130;
    }
    console.log('\n' + summaryText(handle.workflowId, final.state, final.failure));
    const pretrain = final.state?.stages.find((s) => s.kind === 'pretrain');
    const resumed = pretrain?.attempts.slice(1).find((a) => a.loadedIteration !== undefined);
    if (final.workflowStatus === 'COMPLETED' && pretrain && resumed) {
      const crash = pretrain.attempts[0];
      console.log(
        // The crash hits iteration 35 before Megatron logs it: the attempt's last logged iteration is 34.
        `\npretrain: attempt 1 failed after iteration ${crash.lastIteration} (${crash.failureClass}; the crash was injected in iteration 35, before it was logged); attempt ${resumed.attempt} resumed from the checkpoint at iteration ${resumed.loadedIteration} and finished at ${pretrain.finalIteration}.`,
      );
      if (server?.uiUrl) console.log(`The run's history stays in the dev server's database; start \`npx linkflow dev\` to browse it in the Web UI.`);
      return 0;
    }
    console.error('\nthe demo did not complete with a resumed pretraining stage');
    return 1;
  } finally {
    // The pool's allocator the demo's worker started for its own queue ends with the demo: nothing is left running.
    await endDemoPool(config, taskQueue);
    worker.shutdown();
    await running.catch(() => undefined);
    await worker.close();
    await server?.stop();
  }
}
