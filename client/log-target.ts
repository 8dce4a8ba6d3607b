/**
 * Which attempt log `linkflow logs` reads, from the pipeline's state and the running attempt's last
 * heartbeat (the running attempt's log is known only from its heartbeat until it ends). Pure.
 */
import type { HeartbeatDetails } from '../contracts/heartbeat.ts';
import type { AttemptRecord, PipelineState, StageState } from '../contracts/run-state.ts';

export interface LogWanted {
  stage?: string;
  attempt?: number;
}

export type LogTarget =
  | { kind: 'log'; stage: string; attempt: number; file: string; node?: string; running: boolean }
  /** Not there yet: the stage or attempt has not started (or not heartbeaten), but may. */
  | { kind: 'pending'; stage: string; attempt: number; why: string }
  /** Not there and never will be. */
  | { kind: 'none'; why: string };

const ENDED: StageState['status'][] = ['succeeded', 'skipped', 'failed', 'cancelled', 'stopped'];

/** The node that holds a finished attempt's log: a gang's failed rank, else its last rank (which logs iterations). */
function nodeOf(a: AttemptRecord): string | undefined {
  return a.failedNode ?? a.node ?? a.nodes?.at(-1);
}

function chooseStage(state: PipelineState, live: HeartbeatDetails | undefined, wanted: string | undefined): StageState | string {
  if (wanted !== undefined)
    return state.stages.find((s) => s.name === wanted) ?? `no stage "${wanted}" (stages: ${state.stages.map((s) => s.name).join(', ')})`;
  const name = live?.stage ?? state.currentStage ?? state.stages.filter((s) => s.attempts.length > 0).at(-1)?.name;
  return state.stages.find((s) => s.name === name) ?? 'no stage has run an attempt yet';
}

export function logTarget(state: PipelineState | undefined, live: HeartbeatDetails | undefined, wanted: LogWanted, pipelineEnded: boolean): LogTarget {
  if (!state) return pipelineEnded ? { kind: 'none', why: 'the pipeline left no state' } : { kind: 'pending', stage: '', attempt: 0, why: 'no state yet' };
  const stage = chooseStage(state, live, wanted.stage);
  if (typeof stage === 'string')
    return state.stages.length > 0 && wanted.stage !== undefined ? { kind: 'none', why: stage } : pendingOrNone(stage, pipelineEnded);
  const liveHere = live?.stage === stage.name ? live : undefined;
  const attempt = wanted.attempt ?? Math.max(stage.attempts.length, liveHere?.attempt ?? 0, 1);
  if (liveHere?.attempt === attempt) return { kind: 'log', stage: stage.name, attempt, file: liveHere.logFile, node: liveHere.node, running: true };
  const record = stage.attempts.find((a) => a.attempt === attempt);
  if (record?.logFile) return { kind: 'log', stage: stage.name, attempt, file: record.logFile, node: nodeOf(record), running: false };
  if (record) return { kind: 'none', why: `attempt ${attempt} of stage ${stage.name} left no log (${record.outcome})` };
  if (pipelineEnded || ENDED.includes(stage.status))
    return {
      kind: 'none',
      why: `stage ${stage.name} has no attempt ${attempt} (it ${stage.status === 'skipped' ? 'was skipped' : `made ${stage.attempts.length}`})`,
    };
  return { kind: 'pending', stage: stage.name, attempt, why: `attempt ${attempt} of stage ${stage.name} has not started yet` };
}

function pendingOrNone(why: string, pipelineEnded: boolean): LogTarget {
  return pipelineEnded ? { kind: 'none', why } : { kind: 'pending', stage: '', attempt: 0, why };
}
