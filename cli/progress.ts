/** Human-readable progress and summaries of a pipeline run. */
import type { PipelineState, StageState } from '../contracts/run-state.ts';
import { summarizeStage } from '../contracts/run-state.ts';
import type { Snapshot } from '../client/pipeline.ts';
import { retryCause } from '../failures/summary.ts';

function fmt(n: number | undefined, digits = 0): string {
  if (n === undefined || n === null) return '-';
  if (!Number.isFinite(n)) return 'nan';
  return n.toFixed(digits);
}

export function liveLine(snap: Snapshot): string | undefined {
  const state = snap.state;
  if (!state) return undefined;
  const stage = state.stages.find((s) => s.name === state.currentStage) ?? state.stages.find((s) => s.status === 'running' || s.status === 'retrying');
  if (!stage) return undefined;
  const live = snap.live && snap.live.stage === stage.name ? snap.live : undefined;
  const parts = [`[${stage.name}] ${stage.status}`, `attempt ${Math.max(stage.attempts.length + (stage.status === 'running' ? 1 : 0), 1)}`];
  if (live?.iteration !== undefined) {
    parts.push(`iteration ${live.iteration}/${live.trainIters ?? stage.trainIters ?? '?'}`);
    parts.push(`loss ${live.nanLoss ? 'nan' : fmt(live.loss, 4)}`);
    if (live.tokensPerSecondPerDevice !== undefined) parts.push(`${fmt(live.tokensPerSecondPerDevice)} tokens/s/device`);
  }
  const checkpoint = live?.lastCheckpoint ?? stage.lastCheckpoint;
  if (checkpoint) parts.push(`checkpoint ${checkpoint.iteration}`);
  if (live?.loadedIteration !== undefined) parts.push(`resumed from ${live.loadedIteration}`);
  const lastFailure = stage.attempts.filter((a) => a.outcome === 'failed').at(-1);
  if (stage.status === 'waiting-for-nodes' && stage.note) parts.push(stage.note);
  if (live?.queued) parts.push(live.queued);
  if (stage.status === 'retrying' && lastFailure) parts.push(`retrying after ${retryCause(lastFailure.failureClass, lastFailure.reason)}`);
  return parts.join(' | ');
}

function attemptsText(s: StageState): string {
  return s.attempts
    .map((a) => {
      const from = a.loadedIteration !== undefined ? ` from ${a.loadedIteration}` : '';
      const to = a.lastIteration !== undefined ? ` to ${a.lastIteration}` : '';
      const why = a.outcome === 'failed' ? ` (${retryCause(a.failureClass, a.reason)})` : '';
      return `      attempt ${a.attempt}: ${a.outcome}${from}${to}${why}${a.resumeNote ? ` [${a.resumeNote}]` : ''}`;
    })
    .join('\n');
}

export function summaryText(workflowId: string, state: PipelineState | undefined, failure?: string): string {
  const lines = [`pipeline ${state?.pipeline ?? ''} (${workflowId}): ${state?.status ?? 'unknown'}`];
  for (const s of state?.stages ?? []) {
    const sum = summarizeStage(s);
    const iter = sum.finalIteration !== undefined ? ` iteration ${sum.finalIteration}${s.trainIters ? `/${s.trainIters}` : ''}` : '';
    const resumed = sum.resumedFrom.length ? ` resumed from ${sum.resumedFrom.join(', ')}` : '';
    lines.push(`  ${s.name.padEnd(12)} ${s.kind.padEnd(10)} ${s.status.padEnd(9)} attempts ${sum.attempts}${resumed}${iter}`);
    lines.push(`      output: ${s.output}`);
    if (s.status === 'skipped' && s.note) lines.push(`      ${s.note}`);
    if (s.attempts.length > 1 || s.status === 'failed') lines.push(attemptsText(s));
    for (const r of s.evalResults ?? []) lines.push(`      ${r.task}: accuracy ${r.accuracy}${r.total ? ` (${r.correct}/${r.total})` : ''}`);
  }
  if (failure) lines.push('', failure);
  return lines.join('\n');
}

export function jsonSummary(workflowId: string, state: PipelineState | undefined, workflowStatus: string): object {
  return {
    workflowId,
    status: state?.status ?? workflowStatus.toLowerCase(),
    stages: (state?.stages ?? []).map(summarizeStage),
  };
}
