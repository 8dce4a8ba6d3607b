/**
 * The client side of a pipeline run: start it, and read its progress and outcome. Progress combines the
 * workflow's `progress` query (stages, attempts) with the running attempt's last heartbeat
 * (iteration, loss, throughput), which never enters the workflow history.
 */
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  type Client,
  type WorkflowHandle,
  type WorkflowHandleWithFirstExecutionRunId,
} from '@temporalio/client';
import { ApplicationFailure, defaultPayloadConverter } from '@temporalio/common';
import { createHash } from 'node:crypto';
import { defaultNotify, retrySettings, type LinkflowConfig } from '../temporal.config.ts';
import type { PipelinePlan } from '../plan/plan.ts';
import type { AttemptRecord, PipelineInput, PipelineState } from '../contracts/run-state.ts';
import type { HeartbeatDetails } from '../contracts/heartbeat.ts';
import { pipelineWorkflowType, progressQuery, type PipelineWorkflow } from '../contracts/workflows.ts';
import { modelKey, pipelineNameKey, statusKey } from '../contracts/search-attributes.ts';
import { missingSearchAttributes, registerCommands } from './search-attributes.ts';

/** One workflow id per pipeline and workspace: a second concurrent run of the same pipeline is refused, not doubled. */
function workflowIdFor(plan: PipelinePlan): string {
  return `linkflow-${plan.name}-${createHash('sha256').update(plan.dir).digest('hex').slice(0, 8)}`;
}

export async function startPipeline(
  client: Client,
  config: LinkflowConfig,
  plan: PipelinePlan,
  taskQueue?: string,
  warn: (message: string) => void = (m) => console.error(`warning: ${m}`),
): Promise<WorkflowHandleWithFirstExecutionRunId> {
  const workflowId = workflowIdFor(plan);
  const missing = await missingSearchAttributes(client);
  if (missing.length > 0)
    warn(
      `the namespace lacks linkflow's search attributes (${missing.join(', ')}): this pipeline runs without them and \`linkflow list\` will not find it. Register them once:\n  ${registerCommands(client.options.namespace, missing).join('\n  ')}`,
    );
  const searchAttributes = missing.length === 0;
  const previousAttempts = await unfinishedAttempts(client, workflowId);
  try {
    return await client.workflow.start<PipelineWorkflow>(pipelineWorkflowType, {
      workflowId,
      taskQueue: taskQueue ?? plan.taskQueue ?? config.taskQueue,
      // A spec without `notify:` reports to the configured default webhook, if any.
      args: [
        {
          plan: plan.notify || !defaultNotify(config) ? plan : { ...plan, notify: defaultNotify(config) },
          retry: retrySettings(config),
          searchAttributes,
          ...(previousAttempts ? { previousAttempts } : {}),
        },
      ],
      ...(searchAttributes
        ? {
            typedSearchAttributes: [
              { key: pipelineNameKey, value: plan.name },
              { key: statusKey, value: 'running' },
              ...(plan.model ? [{ key: modelKey, value: plan.model }] : []),
            ],
          }
        : {}),
      ...pipelineSummary(plan),
    });
  } catch (e) {
    if (e instanceof WorkflowExecutionAlreadyStartedError) {
      throw new Error(
        `pipeline ${plan.name} is already running as ${workflowId} (workspace ${plan.workspace}); watch it with \`linkflow status ${workflowId}\` or stop it with \`linkflow cancel ${workflowId}\``,
      );
    }
    throw e;
  }
}

/**
 * The attempts of the stages the pipeline's last run (same workflow id, closed) left unfinished, so
 * the rerun's attempt numbers go on from them; undefined for a first run or one whose last run finished.
 */
async function unfinishedAttempts(client: Client, workflowId: string): Promise<Record<string, AttemptRecord[]> | undefined> {
  const handle = client.workflow.getHandle(workflowId);
  try {
    const description = await handle.describe();
    if (description.status.name === 'RUNNING') return undefined; // refused below as already running
  } catch {
    return undefined; // never ran
  }
  const { state } = await outcomeOf(handle);
  const unfinished = (state?.stages ?? []).filter((s) => s.status !== 'succeeded' && s.status !== 'skipped' && s.attempts.length > 0);
  return unfinished.length ? Object.fromEntries(unfinished.map((s) => [s.name, s.attempts])) : undefined;
}

/** What the Web UI shows at the top of a pipeline: its name, model and stages. */
export function pipelineSummary(plan: PipelinePlan): { staticSummary: string; staticDetails: string } {
  return {
    staticSummary: `${plan.name} · ${plan.model ?? 'model'} · ${plan.stages.map((s) => s.name).join(' → ')}`,
    staticDetails: [
      `**pipeline** ${plan.name}`,
      `**model** ${plan.model ?? '(not recorded)'}`,
      `**workspace** ${plan.dir}`,
      `**stages**`,
      ...plan.stages.map((s) => `- ${s.name} (${s.kind})`),
    ].join('\n'),
  };
}

export interface Snapshot {
  workflowId: string;
  /** RUNNING, COMPLETED, FAILED, CANCELLED, TERMINATED, TIMED_OUT, ... */
  workflowStatus: string;
  state?: PipelineState;
  live?: HeartbeatDetails;
  failure?: string;
}

export async function snapshot(handle: WorkflowHandle): Promise<Snapshot> {
  const description = await handle.describe();
  const snap: Snapshot = { workflowId: handle.workflowId, workflowStatus: description.status.name };
  if (snap.workflowStatus !== 'RUNNING') {
    // A closed pipeline's state is in its result or its failure; only a cancelled one needs a worker to answer a query.
    const outcome = await outcomeOf(handle);
    snap.state = outcome.state;
    snap.failure = outcome.failure;
  }
  if (!snap.state) snap.state = await queryProgress(handle);
  for (const activity of description.raw.pendingActivities ?? []) {
    const payload = activity.heartbeatDetails?.payloads?.[0];
    if (!payload) continue;
    const live = defaultPayloadConverter.fromPayload<HeartbeatDetails>(payload);
    // A gang has one pending attempt per node rank; the last node's carries the iterations.
    if (!snap.live || (live.nodeRank ?? 0) > (snap.live.nodeRank ?? 0)) snap.live = live;
  }
  return snap;
}

async function queryProgress(handle: WorkflowHandle): Promise<PipelineState | undefined> {
  try {
    return await handle.query(progressQuery);
  } catch {
    return undefined; // no worker polls this pipeline's task queue right now
  }
}

/** The final state of a closed pipeline: its result, or the state carried by its failure. */
export async function outcomeOf(handle: WorkflowHandle): Promise<{ state?: PipelineState; failure?: string }> {
  try {
    return { state: await handle.result() };
  } catch (e) {
    if (e instanceof WorkflowFailedError) {
      const cause = e.cause;
      const state = cause instanceof ApplicationFailure ? (cause.details?.[0] as PipelineState | undefined) : undefined;
      return { state, failure: cause?.message ?? e.message };
    }
    return { failure: (e as Error).message };
  }
}

/** The plan a pipeline's current run started with (its first history event's input), or undefined when it cannot be read. */
export async function pipelinePlanOf(client: Client, workflowId: string): Promise<PipelinePlan | undefined> {
  try {
    const res = await client.workflowService.getWorkflowExecutionHistory({
      namespace: client.options.namespace,
      execution: { workflowId },
      maximumPageSize: 1,
    });
    const payload = res.history?.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
    return payload ? defaultPayloadConverter.fromPayload<PipelineInput>(payload).plan : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Every run of a pipeline (each `linkflow run` of it; runs that continued as new are in their
 * successor's state), oldest first, as their states: what `advise` and the next run's attempt
 * numbers span.
 */
export async function statesOfAllRuns(client: Client, workflowId: string): Promise<PipelineState[]> {
  if (!/^[A-Za-z0-9_.:@/+-]+$/.test(workflowId)) return [];
  const runs: { runId: string; start: number }[] = [];
  for await (const info of client.workflow.list({ query: `WorkflowId = '${workflowId}' AND ExecutionStatus != 'ContinuedAsNew'` }))
    runs.push({ runId: info.runId, start: info.startTime.getTime() });
  runs.sort((a, b) => a.start - b.start);
  // Visibility lags a run that just started: without a listed run, the latest is read through its handle.
  const latest = await snapshot(client.workflow.getHandle(workflowId)).catch(() => undefined);
  if (runs.length === 0) return latest?.state ? [latest.state] : [];
  const states: PipelineState[] = [];
  for (const run of runs) {
    const snap = await snapshot(client.workflow.getHandle(workflowId, run.runId)).catch(() => undefined);
    if (snap?.state) states.push(snap.state);
  }
  return states;
}

/** The stages of several runs as one: each stage's attempts of every run, once each (a run carries its predecessors' attempts). */
export function mergeRuns(states: PipelineState[]): PipelineState | undefined {
  const last = states.at(-1);
  if (!last) return undefined;
  return {
    ...last,
    stages: last.stages.map((stage) => {
      const seen = new Set<string>();
      const attempts = states
        .flatMap((s) => s.stages.find((x) => x.name === stage.name)?.attempts ?? [])
        .filter((a) => {
          const key = `${a.attempt}@${a.startedAt ?? ''}`;
          if (seen.has(key)) return false;
          seen.add(key);
          return true;
        });
      return { ...stage, attempts };
    }),
  };
}
