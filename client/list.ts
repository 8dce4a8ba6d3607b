/**
 * `linkflow list`: pipelines found through Temporal's visibility queries on linkflow's search
 * attributes. The query is built from checked values only (no quoting of user text).
 */
import type { Client, WorkflowExecutionInfo } from '@temporalio/client';
import { durationToMs } from '../common/duration.ts';
import { currentStageKey, failureClassKey, modelKey, pipelineNameKey, statusKey } from '../contracts/search-attributes.ts';
import { pipelineWorkflowType } from '../contracts/workflows.ts';
import type { PipelineState } from '../contracts/run-state.ts';

export const PIPELINE_STATUSES: readonly PipelineState['status'][] = ['running', 'succeeded', 'failed', 'cancelled', 'stopped'];

export interface ListFilter {
  status?: string;
  model?: string;
  /** A duration back from now ("2h", "7d") or a date ("2026-11-30", an ISO time). */
  since?: string;
}

export interface ListedPipeline {
  workflowId: string;
  /** A pipeline someone started, or one case of a benchmark run (a child of its benchmark workflow). */
  kind: 'pipeline' | 'bench-case';
  pipeline?: string;
  model?: string;
  /** linkflow's status; for a pipeline ended from outside (terminated, timed out) Temporal's. */
  status: string;
  stage?: string;
  failureClass?: string;
  startedAt: string;
  closedAt?: string;
}

/** A problem with the filter itself, reported with the option it came from. */
export class ListFilterError extends Error {}

const PLAIN_VALUE = /^[A-Za-z0-9_.:@/+-]+$/;

/** The visibility query for a filter: runs of the pipeline workflow, the last run of each (no continued-as-new ones). */
export function listQuery(filter: ListFilter, now: Date = new Date()): string {
  const clauses = [`WorkflowType = '${pipelineWorkflowType}'`, `ExecutionStatus != 'ContinuedAsNew'`];
  if (filter.status !== undefined) {
    if (!PIPELINE_STATUSES.includes(filter.status as PipelineState['status']))
      throw new ListFilterError(`--status: expected one of ${PIPELINE_STATUSES.join(', ')}, got "${filter.status}"`);
    clauses.push(`${statusKey.name} = '${filter.status}'`);
    // A pipeline terminated from outside never updated its own status: "running" means running.
    if (filter.status === 'running') clauses.push(`ExecutionStatus = 'Running'`);
  }
  if (filter.model !== undefined) {
    if (!PLAIN_VALUE.test(filter.model)) throw new ListFilterError(`--model: "${filter.model}" is not a model preset id`);
    clauses.push(`${modelKey.name} = '${filter.model}'`);
  }
  if (filter.since !== undefined) clauses.push(`StartTime >= '${sinceTime(filter.since, now).toISOString()}'`);
  return clauses.join(' AND ');
}

function sinceTime(since: string, now: Date): Date {
  if (/^\d+(\.\d+)?(ms|s|m|h|d)$/.test(since)) return new Date(now.getTime() - durationToMs(since));
  const date = /^\d{4}-\d{2}-\d{2}/.test(since) ? new Date(since) : undefined;
  if (!date || Number.isNaN(date.getTime())) throw new ListFilterError(`--since: expected a duration ("12h", "7d") or a date ("2026-11-30"), got "${since}"`);
  return date;
}

function listed(info: WorkflowExecutionInfo): ListedPipeline {
  const sa = info.typedSearchAttributes;
  const own = sa.get(statusKey);
  const closedFromOutside = info.status.name !== 'RUNNING' && (own === undefined || own === 'running');
  const entry: ListedPipeline = {
    workflowId: info.workflowId,
    kind: info.parentExecution ? 'bench-case' : 'pipeline',
    pipeline: sa.get(pipelineNameKey),
    model: sa.get(modelKey),
    status: closedFromOutside ? info.status.name.toLowerCase() : (own ?? 'running'),
    stage: sa.get(currentStageKey),
    failureClass: sa.get(failureClassKey),
    startedAt: info.startTime.toISOString(),
    closedAt: info.closeTime?.toISOString(),
  };
  for (const key of Object.keys(entry) as (keyof ListedPipeline)[]) if (entry[key] === undefined) delete entry[key];
  return entry;
}

/** The pipelines a listQuery finds, newest first (the server's order). */
export async function listPipelines(client: Client, query: string, limit = 1000): Promise<ListedPipeline[]> {
  const out: ListedPipeline[] = [];
  for await (const info of client.workflow.list({ query })) {
    out.push(listed(info));
    if (out.length >= limit) break;
  }
  return out;
}
