/** One fault: when it happened, when linkflow noticed, and how the next attempt got going. */
import type { AttemptRecord } from '../../contracts/run-state.ts';
import { faultMarkers, type AttemptLog } from '../lib.ts';
import { log } from './params.ts';
import type { HistoryFacts, PipelineRun } from './pipeline.ts';

export interface FaultSample {
  faultAt: number;
  faultIteration?: number;
  failed: AttemptRecord;
  next?: AttemptRecord;
  nextLog?: AttemptLog;
  serverEndedAt?: number;
  windowMs?: number;
  note?: string;
}

export interface Split {
  detection: number;
  server?: number;
  backoff?: number;
  dispatch?: number;
  launch?: number;
  load?: number;
  startup?: number;
  total?: number;
}

export function split(s: FaultSample): Split {
  const detection = s.failed.endedAt! - s.faultAt;
  const server = s.serverEndedAt !== undefined ? s.serverEndedAt - s.faultAt : undefined;
  if (!s.next || s.next.startedAt === undefined) return { detection, server };
  const backoff = s.next.startedAt - s.failed.endedAt!;
  const startup = s.next.timings?.startupMs;
  const load = startup !== undefined ? (s.next.timings?.loadMs ?? 0) : undefined;
  const launch = startup !== undefined && load !== undefined ? startup - load : undefined;
  const total = s.nextLog?.firstIterationAt !== undefined ? s.nextLog.firstIterationAt - s.faultAt : undefined;
  const dispatch = total !== undefined && startup !== undefined ? total - detection - backoff - startup : undefined;
  return { detection, server, backoff, dispatch, launch, load, startup, total };
}

/** Pairs the emulator's fault markers (in iteration order) with the stage's failed attempts (in order). */
export function markerSamples(run: PipelineRun, kind: string, facts: HistoryFacts): FaultSample[] {
  const attempts = run.pretrain?.attempts ?? [];
  const failed = attempts.filter((a) => a.outcome === 'failed');
  const markers = faultMarkers(run.pretrainPlan.training!.saveDir).filter((m) => m.kind === kind);
  if (markers.length !== failed.length) log(`${run.name}: ${markers.length} ${kind} markers but ${failed.length} failed attempts`);
  return markers.slice(0, failed.length).map((m, i) => {
    const a = failed[i];
    const next = attempts.find((x) => x.attempt === a.attempt + 1);
    const note = a.lastIteration !== m.iteration - 1 ? `attempt ${a.attempt} ended at iteration ${a.lastIteration}, fault was @${m.iteration}` : undefined;
    if (note) log(`${run.name}: ${note}`);
    return {
      faultAt: m.at,
      faultIteration: m.iteration,
      failed: a,
      next,
      nextLog: next && run.watcher.attempts.get(next.attempt),
      serverEndedAt: facts.ends.get(a.attempt),
      note,
    };
  });
}
