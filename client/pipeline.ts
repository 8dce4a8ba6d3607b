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
import type { PipelineState } from '../contracts/run-state.ts';
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
  try {
    return await client.workflow.start<PipelineWorkflow>(pipelineWorkflowType, {
      workflowId,
      taskQueue: taskQueue ?? plan.taskQueue ?? config.taskQueue,
      // A spec without `notify:` reports to the configured default webhook, if any.
      args: [
        { plan: plan.notify || !defaultNotify(config) ? plan : { ...plan, notify: defaultNotify(config) }, retry: retrySettings(config), searchAttributes },
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
