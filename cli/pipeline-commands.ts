/** `run`, `watch`, `status`, `cancel`, `stop`, `save-interval`: one pipeline, through the Temporal client. */
import type { WorkflowHandle } from '@temporalio/client';
import { connectClient } from '../client/connect.ts';
import { pipelinePlanOf, snapshot, startPipeline, type Snapshot } from '../client/pipeline.ts';
import { webUiUrl, workflowUiLink } from '../client/ui-link.ts';
import { checkpointAndStopSignal, setSaveIntervalSignal } from '../contracts/workflows.ts';
import { ExitError } from '../errors.ts';
import { loadConfig, type LinkflowConfig } from '../temporal.config.ts';
import { jsonSummary, liveText, summaryText } from './progress.ts';
import { stopPlan, stopPlanText } from './stop-plan.ts';
import { detachedText, untilCtrlC, watchPipeline } from './watch.ts';

async function uiLink(config: LinkflowConfig, workflowId: string): Promise<string | undefined> {
  const ui = await webUiUrl(config);
  return ui ? `Web UI: ${workflowUiLink(ui, config.namespace, workflowId)}` : undefined;
}

/** Watches until the pipeline ends (then the summary, exit 1 unless it succeeded) or Ctrl-C (detached, exit 130). */
async function watchToEnd(handle: WorkflowHandle, json: boolean): Promise<void> {
  const final = await untilCtrlC((signal) => watchPipeline(handle, { quiet: json, signal }));
  if (!final) {
    console.error(`\n${detachedText(handle.workflowId)}`);
    process.exitCode = 130;
    return;
  }
  if (json) console.log(JSON.stringify(jsonSummary(handle.workflowId, final.state, final.workflowStatus)));
  else console.log(summaryText(handle.workflowId, final.state, final.failure));
  if (final.workflowStatus !== 'COMPLETED' || final.state?.status !== 'succeeded') process.exitCode = 1;
}

export async function runCommand(file: string, opts: { wait?: boolean; json?: boolean; workspace?: string }): Promise<void> {
  // The spec's checks (planning, the files they read) load only for `run`: status and watch start faster without them.
  const { preflightOrExit } = await import('./validate.ts');
  const { plan } = await preflightOrExit(file, opts.workspace);
  const config = loadConfig();
  const client = await connectClient(config);
  const handle = await startPipeline(client, config, plan);
  const link = await uiLink(config, handle.workflowId);
  if (!opts.wait && !opts.json) {
    console.log(handle.workflowId);
    if (link) console.error(link);
    console.error(`watch it: linkflow watch ${handle.workflowId}`);
    return;
  }
  if (!opts.json) console.log(`started ${handle.workflowId}${link ? `\n${link}` : ''}\n(Ctrl-C detaches; the pipeline keeps running)`);
  else if (link) console.error(link);
  await watchToEnd(handle, !!opts.json);
}

export async function watchCommand(id: string): Promise<void> {
  const config = loadConfig();
  const client = await connectClient(config);
  const handle = client.workflow.getHandle(id);
  const first = await snapshotOrExit(handle);
  if (first.workflowStatus === 'RUNNING') {
    const link = await uiLink(config, id);
    console.log(`watching ${id}${link ? `\n${link}` : ''}\n(Ctrl-C detaches; the pipeline keeps running)`);
    const line = liveText(first);
    if (line) console.log(line);
  }
  await watchToEnd(handle, false);
}

async function snapshotOrExit(handle: WorkflowHandle): Promise<Snapshot> {
  try {
    return await snapshot(handle);
  } catch (e) {
    if ((e as Error).name === 'WorkflowNotFoundError') throw new ExitError(`no pipeline ${handle.workflowId}; \`linkflow list\` shows them`, 1);
    throw e;
  }
}

export async function statusCommand(id: string, opts: { json?: boolean }): Promise<void> {
  const client = await connectClient(loadConfig());
  const snap = await snapshotOrExit(client.workflow.getHandle(id));
  if (opts.json) {
    console.log(JSON.stringify({ ...jsonSummary(id, snap.state, snap.workflowStatus), live: snap.live }));
    return;
  }
  console.log(summaryText(id, snap.state, snap.failure, snap));
}

export async function cancelCommand(id: string): Promise<void> {
  const client = await connectClient(loadConfig());
  await client.workflow.getHandle(id).cancel();
  console.log(`cancellation requested for ${id}: the running stage is stopped (SIGTERM, its save grace, then SIGKILL to its process group)`);
}

export async function stopCommand(id: string, opts: { now?: boolean }): Promise<void> {
  const client = await connectClient(loadConfig());
  const handle = client.workflow.getHandle(id);
  const snap = await snapshotOrExit(handle);
  if (snap.workflowStatus !== 'RUNNING')
    throw new ExitError(`${id} is not running (${snap.state?.status ?? snap.workflowStatus.toLowerCase()}); nothing to stop`, 1);
  const stop = stopPlan(snap, await pipelinePlanOf(client, id));
  console.log(stopPlanText(id, stop, !!opts.now));
  if (stop.kind === 'no-handler' && !opts.now) {
    await untilNextSave(handle, stop.lastCheckpoint);
  }
  await handle.signal(checkpointAndStopSignal);
  console.log(`asked ${id} to stop; \`linkflow watch ${id}\` shows it end, \`linkflow run <spec>\` resumes it`);
}

/** Polls the running attempt's heartbeat until it reports a checkpoint newer than `after`; Ctrl-C sends no stop. */
async function untilNextSave(handle: WorkflowHandle, after: number | undefined): Promise<void> {
  const saved = await untilCtrlC(async (signal) => {
    while (!signal.aborted) {
      const snap = await snapshot(handle);
      if (snap.workflowStatus !== 'RUNNING')
        throw new ExitError(`${handle.workflowId} ended (${snap.state?.status ?? snap.workflowStatus}) before its next save; nothing to stop`, 1);
      const at = snap.live?.lastCheckpoint?.iteration;
      if (at !== undefined && (after === undefined || at > after)) {
        console.log(`saved checkpoint at iteration ${at}; stopping`);
        return true;
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
    return false;
  });
  if (!saved) throw new ExitError(`not stopped: waiting for the next save was interrupted (\`linkflow stop ${handle.workflowId} --now\` stops at once)`, 130);
}

export async function saveIntervalCommand(id: string, n: number): Promise<void> {
  const client = await connectClient(loadConfig());
  await client.workflow.getHandle(id).signal(setSaveIntervalSignal, n);
  console.log(`${id}: training attempts from the next one on save every ${n} iterations`);
}
