/** Running one emulated pipeline (preprocess, convert, pretrain) while watching its training log, and what its history says. */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter, tsToMs } from '@temporalio/common';
import { outcomeOf, startPipeline } from '../../client/pipeline.ts';
import { loadSpecFile } from '../../client/spec-file.ts';
import type { PipelinePlan, StagePlan } from '../../plan/plan.ts';
import type { PipelineState, StageState } from '../../contracts/run-state.ts';
import type { DevServer } from '../../devserver/dev-server.ts';
import type { LinkflowConfig } from '../../temporal.config.ts';
import { fiveStageSpec, writeSpec } from '../../testkit/specs.ts';
import { LogWatcher } from '../lib.ts';
import { log, type Params } from './params.ts';

export interface Ctx {
  params: Params;
  server: DevServer;
  client: Client;
  config: LinkflowConfig;
  queue: string;
  workers: ChildProcess[];
  root: string;
  /** A copy of emulator/ taken at the start, so edits to the emulator during the run do not reach it. */
  emulator: string;
}

export interface PipelineOptions {
  trainIters: number;
  saveInterval: number;
  iterMs: number;
  env?: Record<string, string>;
  noProgressTimeout?: string;
}

export interface PipelineRun {
  name: string;
  plan: PipelinePlan;
  pretrainPlan: StagePlan;
  handle: WorkflowHandle;
  state?: PipelineState;
  pretrain?: StageState;
  failure?: string;
  watcher: LogWatcher;
  workspace: string;
  driverError?: string;
}

function planFile(specFile: string): PipelinePlan {
  const result = loadSpecFile(specFile);
  if (!result.ok) throw new Error(`bench spec invalid:\n${result.problems.map((p) => `${p.path}: ${p.message}`).join('\n')}`);
  return result.plan;
}

const PIPELINE_TIMEOUT_MS = 10 * 60_000;

export async function runPipeline(ctx: Ctx, name: string, o: PipelineOptions, during?: (run: PipelineRun) => Promise<void>): Promise<PipelineRun> {
  const dir = path.join(ctx.root, name);
  fs.mkdirSync(dir, { recursive: true });
  const workspace = path.join(dir, 'ws');
  const spec = fiveStageSpec(name, workspace, {
    trainIters: o.trainIters,
    saveInterval: o.saveInterval,
    pretrainEnv: o.env ?? {},
    noProgressTimeout: o.noProgressTimeout,
  });
  spec.stages = spec.stages.filter((s) => ['data', 'weights', 'pretrain'].includes(String(s.name)));
  const modellink = spec.modellink as { root: string; launcher: string; env: Record<string, string> };
  modellink.root = ctx.emulator;
  modellink.launcher = path.join(ctx.emulator, 'torchrun');
  modellink.env.MLEMU_ITER_TIME_MS = String(o.iterMs);
  const plan = planFile(writeSpec(dir, spec));
  const pretrainPlan = plan.stages.find((s) => s.kind === 'pretrain')!;
  const watcher = new LogWatcher(pretrainPlan.logDir).start();
  const handle = await startPipeline(ctx.client, ctx.config, plan, ctx.queue);
  const run: PipelineRun = { name, plan, pretrainPlan, handle, watcher, workspace };
  const driver = during?.(run).catch((e: unknown) => {
    run.driverError = e instanceof Error ? e.message : String(e);
  });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`pipeline ${name} did not finish within ${PIPELINE_TIMEOUT_MS / 60_000} min`)), PIPELINE_TIMEOUT_MS);
  });
  try {
    const outcome = await Promise.race([outcomeOf(handle), timeout]);
    run.state = outcome.state;
    run.failure = outcome.failure;
  } catch (e) {
    await handle.terminate('benchmark timeout').catch(() => undefined);
    run.failure = (e as Error).message;
  } finally {
    clearTimeout(timer);
    await driver;
    watcher.stop();
  }
  run.pretrain = run.state?.stages.find((s) => s.name === 'pretrain');
  if (run.state?.status !== 'succeeded') log(`pipeline ${name} ended ${run.state?.status ?? 'without a state'}: ${run.failure ?? ''}`);
  if (run.driverError) log(`pipeline ${name}: ${run.driverError}`);
  return run;
}

/** What the workflow history says: when Temporal recorded the end of each attempt of a stage, how long the backoff timers took to fire, and workflow tasks that timed out. */
export interface HistoryFacts {
  /** Attempt number → time of its ActivityTaskFailed/TimedOut/Completed event. */
  ends: Map<number, number>;
  /** TimerStarted → TimerFired of every timer (the backoff sleeps), and the duration asked for. */
  timers: { askedMs: number; firedAfterMs: number }[];
  /** Workflow tasks that timed out (e.g. scheduled on the sticky queue of a worker that died). */
  workflowTaskTimeouts: number;
}

export async function historyFacts(handle: WorkflowHandle, stage: string): Promise<HistoryFacts> {
  const facts: HistoryFacts = { ends: new Map(), timers: [], workflowTaskTimeouts: 0 };
  let history;
  try {
    history = await handle.fetchHistory();
  } catch (e) {
    log(`could not read the history of ${handle.workflowId}: ${(e as Error).message}`);
    return facts;
  }
  const scheduled = new Map<string, number>();
  const timerStarts = new Map<string, { at: number; askedMs: number }>();
  for (const e of history.events ?? []) {
    const at = tsToMs(e.eventTime);
    const s = e.activityTaskScheduledEventAttributes;
    const payload = s?.input?.payloads?.[0];
    if (s?.activityType?.name === 'runStageAttempt' && payload) {
      const input = defaultPayloadConverter.fromPayload<{ stage: { name: string }; attempt: number }>(payload);
      if (input.stage.name === stage) scheduled.set(String(e.eventId), input.attempt);
    }
    const end = e.activityTaskFailedEventAttributes ?? e.activityTaskTimedOutEventAttributes ?? e.activityTaskCompletedEventAttributes;
    const attempt = end ? scheduled.get(String(end.scheduledEventId)) : undefined;
    if (attempt !== undefined) facts.ends.set(attempt, at);
    if (e.timerStartedEventAttributes) timerStarts.set(String(e.eventId), { at, askedMs: tsToMs(e.timerStartedEventAttributes.startToFireTimeout) });
    const fired = e.timerFiredEventAttributes && timerStarts.get(String(e.timerFiredEventAttributes.startedEventId));
    if (fired) facts.timers.push({ askedMs: fired.askedMs, firedAfterMs: at - fired.at });
    if (e.workflowTaskTimedOutEventAttributes) facts.workflowTaskTimeouts++;
  }
  return facts;
}
