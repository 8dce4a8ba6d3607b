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

/** "1 stage", "2 stages". */
export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

const ACTIVE = new Set(['checking', 'waiting-for-nodes', 'running', 'retrying']);

/**
 * The pipeline's state as a user should read it: a pipeline that ended from outside (cancelled in the
 * Web UI, terminated) while a stage was active shows that stage cancelled, not `retrying` forever.
 */
export function settledState(snap: Pick<Snapshot, 'workflowStatus' | 'state'>): PipelineState | undefined {
  const state = snap.state;
  if (!state || snap.workflowStatus === 'RUNNING') return state;
  const ended = snap.workflowStatus === 'CANCELLED' ? 'cancelled' : snap.workflowStatus === 'TERMINATED' ? 'cancelled' : undefined;
  const status = state.status === 'running' && ended ? ended : state.status;
  if (status !== 'cancelled' && status !== 'failed') return { ...state, status };
  return { ...state, status, stages: state.stages.map((s) => (ACTIVE.has(s.status) ? { ...s, status: 'cancelled' as const } : s)) };
}

/** The number of the attempt running now: the heartbeat's own when there is one (it is the truth), else the next after those recorded. */
function currentAttempt(stage: StageState, snap: Snapshot): number {
  const live = snap.live && snap.live.stage === stage.name ? snap.live : undefined;
  if (live) return live.attempt;
  // Between a successful attempt and the stage's end (its manifest is written) the stage still shows running.
  const ongoing = (stage.status === 'running' || stage.status === 'waiting-for-nodes') && stage.attempts.at(-1)?.outcome !== 'succeeded';
  return Math.max(stage.attempts.length + (ongoing ? 1 : 0), 1);
}

export function liveLine(snap: Snapshot): string | undefined {
  const state = snap.state;
  if (!state) return undefined;
  const stage = state.stages.find((s) => s.name === state.currentStage) ?? state.stages.find((s) => s.status === 'running' || s.status === 'retrying');
  if (!stage) return undefined;
  const live = snap.live && snap.live.stage === stage.name ? snap.live : undefined;
  const parts = [`[${stage.name}] ${stage.status}`, `attempt ${currentAttempt(stage, snap)}`];
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
  if (stage.status === 'retrying' && lastFailure)
    parts.push(
      `attempt ${lastFailure.attempt} failed${lastFailure.lastIteration !== undefined ? ` after iteration ${lastFailure.lastIteration}` : ''} (${retryCause(lastFailure.failureClass, lastFailure.reason)}); retrying after a backoff`,
    );
  return parts.join(' | ');
}

/** `status` and `watch`: what runs now, in words. */
export function liveText(snap: Snapshot): string | undefined {
  const state = snap.state;
  const stage = state?.stages.find((s) => s.name === state.currentStage);
  if (!state || !stage || snap.workflowStatus !== 'RUNNING') return undefined;
  const live = snap.live && snap.live.stage === stage.name ? snap.live : undefined;
  const words = [`now: stage ${stage.name} ${stage.status}, attempt ${currentAttempt(stage, snap)}`];
  if (live?.node) words.push(`on node ${live.node}`);
  if (live?.iteration !== undefined) {
    words.push(`at iteration ${live.iteration} of ${live.trainIters ?? stage.trainIters ?? '?'}`);
    if (live.loss !== undefined || live.nanLoss) words.push(`loss ${live.nanLoss ? 'nan' : fmt(live.loss, 4)}`);
    if (live.tokensPerSecondPerDevice !== undefined) words.push(`${fmt(live.tokensPerSecondPerDevice)} tokens/s per device`);
  }
  const checkpoint = live?.lastCheckpoint ?? stage.lastCheckpoint;
  if (checkpoint) words.push(`last checkpoint at iteration ${checkpoint.iteration}`);
  if (live?.loadedIteration !== undefined) words.push(`resumed from iteration ${live.loadedIteration}`);
  if (live?.queued) words.push(live.queued);
  else if (stage.note && stage.status === 'waiting-for-nodes') words.push(stage.note);
  return words.join(', ');
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

/** The summary of a pipeline; with a snapshot of a running one, also what runs now (live data). */
export function summaryText(workflowId: string, state: PipelineState | undefined, failure?: string, snap?: Snapshot): string {
  const settled = snap ? settledState(snap) : state;
  const lines = [`pipeline ${settled?.pipeline ?? ''} (${workflowId}): ${settled?.status ?? snap?.workflowStatus.toLowerCase() ?? 'unknown'}`];
  const now = snap ? liveText(snap) : undefined;
  if (now) lines.push(`  ${now}`);
  for (const s of settled?.stages ?? []) {
    const sum = summarizeStage(s);
    const iter = sum.finalIteration !== undefined ? ` iteration ${sum.finalIteration}${s.trainIters ? `/${s.trainIters}` : ''}` : '';
    const resumed = sum.resumedFrom.length ? ` resumed from ${sum.resumedFrom.join(', ')}` : '';
    lines.push(`  ${s.name.padEnd(12)} ${s.kind.padEnd(10)} ${s.status.padEnd(9)} attempts ${sum.attempts}${resumed}${iter}`);
    lines.push(`      output: ${s.output}`);
    if ((s.status === 'skipped' || s.status === 'stopped') && s.note) lines.push(`      ${s.note}`);
    if (s.attempts.length > 1 || s.status === 'failed') lines.push(attemptsText(s));
    for (const r of s.evalResults ?? []) lines.push(`      ${r.task}: accuracy ${r.accuracy}${r.total ? ` (${r.correct}/${r.total})` : ''}`);
  }
  if (failure) lines.push('', failure);
  return lines.join('\n');
}

export function jsonSummary(workflowId: string, state: PipelineState | undefined, workflowStatus: string): object {
  const settled = settledState({ workflowStatus, state });
  return {
    workflowId,
    status: settled?.status ?? workflowStatus.toLowerCase(),
    stages: (settled?.stages ?? []).map(summarizeStage),
  };
}
