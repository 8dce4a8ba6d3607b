/**
 * What `linkflow stop` will do to the running stage. A training stage with Megatron's
 * --exit-signal-handler saves at the end of its iteration on SIGTERM (ModelLink
 * modellink/training/training.py train(), the `exiting program after receiving SIGTERM.` branch);
 * without it (exitSignalHandler: false, which `linkflow import` writes for a script lacking the flag)
 * SIGTERM ends the trainer where it is and the iterations since its last save are lost, so stop
 * waits for the next save unless told `--now`.
 */
import type { PipelinePlan, StagePlan } from '../plan/plan.ts';
import type { Snapshot } from '../client/pipeline.ts';

export type StopPlan =
  | { kind: 'saves'; stage: string }
  | { kind: 'not-training'; stage?: string }
  | { kind: 'no-handler'; stage: string; iteration?: number; lastCheckpoint?: number; saveInterval: number };

export function savesOnSigterm(stage: StagePlan): boolean {
  return stage.argv.includes('--exit-signal-handler');
}

export function stopPlan(snap: Snapshot, plan: PipelinePlan | undefined): StopPlan {
  const current = snap.state?.currentStage;
  const stage = plan?.stages.find((s) => s.name === current);
  if (!stage?.training || stage.training.measureOnly) return { kind: 'not-training', stage: current };
  if (savesOnSigterm(stage)) return { kind: 'saves', stage: stage.name };
  const state = snap.state?.stages.find((s) => s.name === stage.name);
  const live = snap.live?.stage === stage.name ? snap.live : undefined;
  return {
    kind: 'no-handler',
    stage: stage.name,
    iteration: live?.iteration,
    lastCheckpoint: live?.lastCheckpoint?.iteration ?? state?.lastCheckpoint?.iteration,
    saveInterval: snap.state?.saveInterval ?? state?.saveInterval ?? stage.training.saveInterval,
  };
}

export function stopPlanText(workflowId: string, stop: StopPlan, now: boolean): string {
  if (stop.kind === 'saves') return `stage ${stop.stage}: the trainer saves a checkpoint at the end of its iteration and exits (--exit-signal-handler)`;
  if (stop.kind === 'not-training') return `stage ${stop.stage ?? '(none running)'} is not a training stage: it is stopped as it is; a rerun starts it again`;
  const at = stop.iteration ?? stop.lastCheckpoint ?? 0;
  const lost = stop.lastCheckpoint !== undefined ? at - stop.lastCheckpoint : at;
  const since = stop.lastCheckpoint !== undefined ? `its last checkpoint (iteration ${stop.lastCheckpoint})` : 'its start (no checkpoint yet)';
  const nextSave = (Math.floor(at / stop.saveInterval) + 1) * stop.saveInterval;
  const head = `stage ${stop.stage} runs without --exit-signal-handler (exitSignalHandler: false): SIGTERM ends the trainer without saving.`;
  if (now) return `${head}\nstopping now: the ${lost} iteration${lost === 1 ? '' : 's'} since ${since} are lost`;
  return [
    head,
    `waiting for its next save (iteration ${nextSave}, every ${stop.saveInterval}) and stopping then; stopping now would lose ${lost} iteration${lost === 1 ? '' : 's'} since ${since}.`,
    `(Ctrl-C: do not stop; \`linkflow stop ${workflowId} --now\`: stop at once)`,
  ].join('\n');
}
