/**
 * Issue 4's recovery benchmarks, measured in one run against a real Temporal dev server, real
 * `linkflow worker` processes and the ModelLink emulator:
 *   1. detection latency per fault kind, 2. recovery latency split into its parts,
 *   3. iterations recomputed per fault against the save interval,
 *   4. goodput with crashes at a given MTBF: no faults, a fixed save interval, the Young/Daly interval.
 *
 *   node --import tsx perf/recovery.ts [--quick] [--write-results] [--sections detect,recompute,goodput] [...]
 *
 * See perf/README.md; `--help` lists every parameter.
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter, tsToMs } from '@temporalio/common';
import { connectClient } from '../client/connect.ts';
import { outcomeOf, startPipeline } from '../client/pipeline.ts';
import { loadSpecFile } from '../client/spec-file.ts';
import { dalyIntervalMs, wasteFraction, youngIntervalMs } from '../plan/advise.ts';
import { noProgressWindowMs } from '../failures/hang.ts';
import type { PipelinePlan, StagePlan } from '../plan/plan.ts';
import type { AttemptRecord, PipelineState, StageState } from '../contracts/run-state.ts';
import { durationToMs } from '../common/duration.ts';
import { gitCommit, gitTreeDirty } from '../node/git.ts';
import { startDevServer, type DevServer } from '../devserver/dev-server.ts';
import { loadConfig, type LinkflowConfig } from '../temporal.config.ts';
import { EMULATOR, fiveStageSpec, ROOT, tempDir, writeSpec } from '../testkit/specs.ts';
import { processesMentioning, until } from '../testkit/wait.ts';
import { startWorkerProcess, stopWorkers } from '../testkit/workers.ts';
import {
  ancestorAmong,
  defined,
  describeMachine,
  distinctUniform,
  faultMarkers,
  fixed,
  LoadSampler,
  LogWatcher,
  mean,
  rng,
  sec,
  secRange,
  table,
  type AttemptLog,
} from './lib.ts';

// ---------------------------------------------------------------------------------------------
// Parameters

const OPTIONS = {
  help: { type: 'boolean', default: false, describe: 'this list' },
  quick: { type: 'boolean', default: false, describe: 'smaller sizes: fewer faults, shorter goodput runs (about 3 min instead of about 7)' },
  'write-results': { type: 'boolean', default: false, describe: 'write perf/RESULTS.md from this run' },
  sections: { type: 'string', default: 'detect,recompute,goodput', describe: 'which sections to run (detect = sections 1 and 2)' },
  'iter-ms': { type: 'string', default: '20', describe: 'emulated iteration time of sections 1–3 (MLEMU_ITER_TIME_MS)' },
  samples: { type: 'string', default: '3', quick: '1', describe: 'faults per kind in sections 1–2' },
  'train-iters': { type: 'string', default: '100', describe: 'training iterations per pipeline in sections 1–2' },
  'save-interval': { type: 'string', default: '10', describe: 'save interval in sections 1–2' },
  'heartbeat-timeout': { type: 'string', default: '5s', describe: 'activity heartbeat timeout (the worker-loss window)' },
  backoff: { type: 'string', default: '500ms', describe: 'backoff between attempts (both budgets, coefficient 1)' },
  'hang-window': { type: 'string', default: '3s', describe: 'noProgressTimeout of the hang scenario' },
  'hccl-delay-ms': {
    type: 'string',
    default: '2000',
    describe: 'silence before an injected HCCL error (MLEMU_HCCL_DELAY_MS, stands in for HCCL_EXEC_TIMEOUT)',
  },
  intervals: { type: 'string', default: '5,10,20', describe: 'save intervals of section 3' },
  'faults-per-interval': { type: 'string', default: '10', quick: '4', describe: 'crash faults per save interval in section 3' },
  'recompute-iters': { type: 'string', default: '200', quick: '120', describe: 'training iterations per pipeline in section 3' },
  'goodput-iters': { type: 'string', default: '1500', quick: '500', describe: 'training iterations of each goodput run' },
  'goodput-iter-ms': { type: 'string', default: '30', quick: '30', describe: 'emulated iteration time of the goodput runs' },
  'save-ms': { type: 'string', default: '300', quick: '300', describe: 'emulated checkpoint save cost of the goodput runs (MLEMU_SAVE_TIME_MS)' },
  mtbf: { type: 'string', default: '8s', quick: '5s', describe: 'mean time between crash faults in the goodput runs' },
  'fixed-interval': { type: 'string', default: '25', quick: '20', describe: 'the fixed save interval of goodput run (b)' },
  seed: { type: 'string', default: '4', describe: 'seed of the fault schedules' },
  keep: { type: 'boolean', default: false, describe: 'keep the temporary workspaces' },
} as const;

type OptionName = keyof typeof OPTIONS;

function parseParams() {
  const { values } = parseArgs({
    options: Object.fromEntries(Object.entries(OPTIONS).map(([k, o]) => [k, { type: o.type }])) as { [K in OptionName]: { type: (typeof OPTIONS)[K]['type'] } },
    strict: true,
  });
  const quick = values.quick === true;
  const str = (name: OptionName): string => {
    const given = values[name];
    if (typeof given === 'string') return given;
    const o = OPTIONS[name];
    return String(quick && 'quick' in o ? o.quick : o.default);
  };
  const num = (name: OptionName): number => {
    const n = Number(str(name));
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number, got ${str(name)}`);
    return n;
  };
  const int = (name: OptionName): number => {
    const n = num(name);
    if (!Number.isInteger(n)) throw new Error(`--${name} must be a whole number, got ${str(name)}`);
    return n;
  };
  return {
    help: values.help === true,
    quick,
    writeResults: values['write-results'] === true,
    keep: values.keep === true,
    sections: new Set(
      str('sections')
        .split(',')
        .map((s) => s.trim()),
    ),
    iterMs: int('iter-ms'),
    samples: int('samples'),
    trainIters: int('train-iters'),
    saveInterval: int('save-interval'),
    heartbeatTimeout: str('heartbeat-timeout'),
    heartbeatTimeoutMs: durationToMs(str('heartbeat-timeout')),
    backoff: str('backoff'),
    backoffMs: durationToMs(str('backoff')),
    hangWindow: str('hang-window'),
    hcclDelayMs: int('hccl-delay-ms'),
    intervals: str('intervals').split(',').map(Number),
    faultsPerInterval: int('faults-per-interval'),
    recomputeIters: int('recompute-iters'),
    goodputIters: int('goodput-iters'),
    goodputIterMs: int('goodput-iter-ms'),
    saveMs: int('save-ms'),
    mtbfMs: durationToMs(str('mtbf')),
    fixedInterval: int('fixed-interval'),
    seed: int('seed'),
    argv: process.argv.slice(2).join(' '),
  };
}

type Params = ReturnType<typeof parseParams>;

const t0 = Date.now();
function log(msg: string): void {
  process.stderr.write(`[bench ${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${msg}\n`);
}

// ---------------------------------------------------------------------------------------------
// Running one emulated pipeline (preprocess, convert, pretrain) and watching its training log

interface Ctx {
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

interface PipelineOptions {
  trainIters: number;
  saveInterval: number;
  iterMs: number;
  env?: Record<string, string>;
  noProgressTimeout?: string;
}

interface PipelineRun {
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

async function runPipeline(ctx: Ctx, name: string, o: PipelineOptions, during?: (run: PipelineRun) => Promise<void>): Promise<PipelineRun> {
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
interface HistoryFacts {
  /** Attempt number → time of its ActivityTaskFailed/TimedOut/Completed event. */
  ends: Map<number, number>;
  /** TimerStarted → TimerFired of every timer (the backoff sleeps), and the duration asked for. */
  timers: { askedMs: number; firedAfterMs: number }[];
  /** Workflow tasks that timed out (e.g. scheduled on the sticky queue of a worker that died). */
  workflowTaskTimeouts: number;
}

async function historyFacts(handle: WorkflowHandle, stage: string): Promise<HistoryFacts> {
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

// ---------------------------------------------------------------------------------------------
// One fault: when it happened, when linkflow noticed, and how the next attempt got going

interface FaultSample {
  faultAt: number;
  faultIteration?: number;
  failed: AttemptRecord;
  next?: AttemptRecord;
  nextLog?: AttemptLog;
  serverEndedAt?: number;
  windowMs?: number;
  note?: string;
}

interface Split {
  detection: number;
  server?: number;
  backoff?: number;
  dispatch?: number;
  launch?: number;
  load?: number;
  startup?: number;
  total?: number;
}

function split(s: FaultSample): Split {
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
function markerSamples(run: PipelineRun, kind: string, facts: HistoryFacts): FaultSample[] {
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

// ---------------------------------------------------------------------------------------------
// Sections 1 and 2: detection and recovery latency per fault kind

type Kind = 'crash' | 'sigkill' | 'worker' | 'hang' | 'hccl';

interface KindResult {
  kind: Kind;
  label: string;
  windowLabel: string;
  samples: FaultSample[];
  classes: string[];
  facts: HistoryFacts;
  failure?: string;
}

/** Fault iterations spread over the run, never the first iteration after a checkpoint (that is the start-up phase, with its own hang window). */
function spreadFaults(trainIters: number, saveInterval: number, k: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < k; i++) {
    let p = saveInterval + Math.floor(((i + 0.5) * (trainIters - saveInterval)) / k);
    if ((p - 1) % saveInterval === 0) p++;
    if (p <= (out.at(-1) ?? 0)) p = out.at(-1)! + 2;
    out.push(Math.min(p, trainIters));
  }
  return out;
}

const alive = (w: ChildProcess) => w.exitCode === null && w.signalCode === null;

async function ensureWorkers(ctx: Ctx, n: number): Promise<void> {
  const missing = n - ctx.workers.filter(alive).length;
  if (missing <= 0) return;
  log(`starting ${missing} linkflow worker process(es)`);
  await Promise.all(Array.from({ length: missing }, () => startWorkerProcess(ctx.server.address, ['--queue', ctx.queue], ctx.workers)));
}

/** SIGKILLs the worker whose trainer runs attempt k when it reaches targets[k-1]; returns the kill times. */
async function killWorkersDuring(ctx: Ctx, run: PipelineRun, targets: number[], kills: { at: number; attempt: number; iteration?: number }[]): Promise<void> {
  for (const [i, target] of targets.entries()) {
    const attempt = i + 1;
    await until(
      `pretrain attempt ${attempt} to reach iteration ${target}`,
      async () => {
        run.watcher.poll();
        return (run.watcher.lastIteration(attempt) ?? 0) >= target;
      },
      { everyMs: 5, timeoutMs: 180_000 },
    );
    const live = new Set(ctx.workers.filter(alive).map((w) => w.pid!));
    const trainers = processesMentioning(run.workspace).map((line) => Number(line.split(':')[0]));
    const victimPid = trainers.map((pid) => ancestorAmong(pid, live)).find((p) => p !== undefined);
    const victim = ctx.workers.find((w) => w.pid === victimPid);
    if (!victim) throw new Error(`no linkflow worker found above the trainer of attempt ${attempt}`);
    const at = Date.now();
    victim.kill('SIGKILL');
    kills.push({ at, attempt, iteration: run.watcher.lastIteration(attempt) });
    log(`  killed worker ${victimPid} at iteration ${run.watcher.lastIteration(attempt)} of attempt ${attempt}`);
  }
}

async function faultKind(ctx: Ctx, kind: Kind): Promise<KindResult> {
  const p = ctx.params;
  const faults = spreadFaults(p.trainIters, p.saveInterval, p.samples);
  const base: PipelineOptions = { trainIters: p.trainIters, saveInterval: p.saveInterval, iterMs: p.iterMs };
  const hbS = sec(p.heartbeatTimeoutMs);
  log(`section 1–2: ${kind}, faults at ${faults.join(', ')}`);
  if (kind === 'worker') {
    // A spare for every kill, started before the run so no worker start-up competes with it.
    await ensureWorkers(ctx, p.samples + 1);
    const kills: { at: number; attempt: number; iteration?: number }[] = [];
    const run = await runPipeline(ctx, `bench-worker`, base, (r) => killWorkersDuring(ctx, r, faults, kills));
    const attempts = run.pretrain?.attempts ?? [];
    const facts = await historyFacts(run.handle, 'pretrain');
    const samples = kills.flatMap((k): FaultSample[] => {
      const failed = attempts.find((a) => a.attempt === k.attempt);
      if (!failed || failed.outcome !== 'failed') return [];
      const next = attempts.find((a) => a.attempt === k.attempt + 1);
      return [
        {
          faultAt: k.at,
          faultIteration: k.iteration,
          failed,
          next,
          nextLog: next && run.watcher.attempts.get(next.attempt),
          serverEndedAt: facts.ends.get(k.attempt),
          windowMs: p.heartbeatTimeoutMs,
        },
      ];
    });
    return {
      kind,
      label: 'SIGKILL of the worker',
      windowLabel: `heartbeat timeout ${hbS} s (heartbeats sent every ≤ 2 s)`,
      samples,
      classes: defined(samples.map((s) => s.failed.failureClass)),
      facts,
      failure: run.failure ?? run.driverError,
    };
  }
  const env: Record<string, string> = { MLEMU_FAULTS: faults.map((f) => `${kind}@${f}`).join(',') };
  if (kind === 'hccl') env.MLEMU_HCCL_DELAY_MS = String(p.hcclDelayMs);
  const run = await runPipeline(ctx, `bench-${kind}`, { ...base, env, noProgressTimeout: kind === 'hang' ? p.hangWindow : '60s' });
  const facts = await historyFacts(run.handle, 'pretrain');
  const samples = markerSamples(run, kind, facts);
  let windowLabel: string;
  if (kind === 'hang') {
    const hang = run.pretrainPlan.training!.hang;
    for (const s of samples) s.windowMs = noProgressWindowMs(hang, 'training', s.failed.timings?.msPerIteration);
    const perIt = mean(defined(samples.map((s) => s.failed.timings?.msPerIteration)));
    windowLabel = `no-progress window ${sec(mean(defined(samples.map((s) => s.windowMs))))} s = max(noProgressTimeout ${sec(hang.minMs)} s, ${hang.factor} × ${fixed(perIt, 0)} ms/it), checked every 1 s`;
  } else if (kind === 'hccl') {
    for (const s of samples) s.windowMs = p.hcclDelayMs;
    windowLabel = `the collective's timeout: HCCL_EXEC_TIMEOUT, emulated by MLEMU_HCCL_DELAY_MS = ${sec(p.hcclDelayMs)} s; then the exit, as a crash`;
  } else {
    windowLabel = "none: the trainer's exit is seen at once (supervisor → worker → one workflow task)";
  }
  const label = { crash: 'crash (exception, exit 1)', sigkill: 'SIGKILL of the trainer', hang: 'hang', hccl: 'communication error (HCCL)' }[kind];
  return { kind, label, windowLabel, samples, classes: defined(samples.map((s) => s.failed.failureClass)), facts, failure: run.failure };
}

function section1(results: KindResult[], p: Params): string {
  const rows = results.map((r) => {
    const d = r.samples.map((s) => split(s).detection);
    const srv = defined(r.samples.map((s) => split(s).server));
    const reaction = defined(r.samples.map((s) => (s.serverEndedAt !== undefined ? s.failed.endedAt! - s.serverEndedAt : undefined)));
    const sticky = r.facts.workflowTaskTimeouts ? `; ${r.facts.workflowTaskTimeouts} workflow task(s) timed out (sticky queue of the dead worker)` : '';
    const ratios = defined(r.samples.map((s) => (s.windowMs ? split(s).detection / s.windowMs : undefined)));
    return [
      r.label,
      String(r.samples.length),
      [...new Set(r.classes)].join(', ') || '–',
      secRange(d),
      ratios.length ? `${fixed(mean(ratios))}×` : '–',
      fixed(mean(d) / p.heartbeatTimeoutMs) + '×',
      secRange(srv),
      secRange(reaction),
      r.windowLabel + sticky,
    ];
  });
  return [
    '## 1. Detection latency',
    '',
    'Fault time: the mtime of the emulator\'s `.mlemu-fired-<kind>@<iteration>` marker (written just before the fault acts), or the moment the bench sent SIGKILL to the `linkflow worker` running the trainer. Detected: the failed attempt\'s `endedAt` (workflow time of the workflow task that recorded the failure; the dev server runs on this machine, so workflow time is wall time). "Temporal recorded" is the time of the ActivityTaskFailed/TimedOut event in the history, i.e. before the workflow task that reacted to it; "then the workflow reacted" is the gap between the two.',
    '',
    table(
      [
        'fault',
        'n',
        'classified as',
        'detection s mean (min–max)',
        '÷ its window',
        '÷ heartbeat timeout',
        'Temporal recorded s',
        'then the workflow reacted s',
        'window that bounds detection',
      ],
      rows,
    ),
    ...section1Notes(results, p),
  ].join('\n');
}

/** Observations that follow from this run's numbers (only stated when the numbers show them). */
function section1Notes(results: KindResult[], p: Params): string[] {
  const notes: string[] = [];
  const worker = results.find((r) => r.kind === 'worker');
  if (worker) {
    const late = worker.samples.filter((s) => s.serverEndedAt !== undefined && s.failed.endedAt! - s.serverEndedAt > 2_000);
    notes.push(
      `- Worker kill: Temporal times the attempt out one heartbeat timeout after the last heartbeat it received, and the worker sends heartbeats at most every 2 s (\`maxHeartbeatThrottleInterval\`), so "Temporal recorded" should lie between ${sec(p.heartbeatTimeoutMs - 2_000)} and ${sec(p.heartbeatTimeoutMs)} s after the kill, plus the server's timer delay.`,
    );
    if (late.length) {
      notes.push(
        `- Worker kill: in ${late.length} of ${worker.samples.length} kills the workflow reacted ${secRange(late.map((s) => s.failed.endedAt! - s.serverEndedAt!))} s after Temporal recorded the timeout, and the history shows ${worker.facts.workflowTaskTimeouts} workflow task timeout(s): the killed worker also held the pipeline's workflow in its cache, so the workflow task went to that worker's sticky queue first and reached a live worker only after the sticky schedule-to-start timeout (\`stickyQueueScheduleToStartTimeout\`, 3 s in worker/worker.ts; the SDK default of 10 s made this part 10 s in an earlier run).`,
      );
    }
  }
  return notes.length ? ['', ...notes] : [];
}

function section2(results: KindResult[]): string {
  const rows = results.map((r) => {
    const parts = r.samples.map(split);
    const m = (f: (x: Split) => number | undefined) => sec(mean(defined(parts.map(f))));
    const waited = r.samples.filter((s) => s.nextLog?.waitedForLease).length;
    const timers = r.facts.timers.map((t) => t.firedAfterMs);
    return [
      r.label,
      String(parts.filter((x) => x.total !== undefined).length),
      m((x) => x.detection),
      `${m((x) => x.backoff)} (timer ${secRange(timers)})`,
      m((x) => x.dispatch) + (waited ? ` (lease wait in ${waited})` : ''),
      m((x) => x.launch),
      m((x) => x.load),
      m((x) => x.total),
    ];
  });
  return [
    '## 2. Recovery latency (fault → first iteration logged by the next attempt), mean seconds',
    '',
    'detection = fault → failed attempt\'s `endedAt`; backoff = `endedAt` → next attempt\'s `startedAt` (the configured backoff timer, whose TimerStarted → TimerFired time from the history is in parentheses, plus a workflow task); dispatch = the rest: the activity reaching a worker, input checks and the save-directory lease (a killed worker\'s lease must lapse: one heartbeat timeout after its last renewal), i.e. total − detection − backoff − startup; launch = `timings.startupMs − timings.loadMs` (process start, argument parsing, model build up to the first iteration); load = `timings.loadMs` (the "loading checkpoint" → "successfully loaded" lines); total = fault → the first iteration line of the next attempt, seen by the bench polling the log every 15 ms.',
    '',
    table(['fault', 'n', 'detection', 'backoff', 'dispatch', 'launch', 'load', 'total'], rows),
    ...section2Notes(results),
  ].join('\n');
}

function section2Notes(results: KindResult[]): string[] {
  const timers = results.flatMap((r) => r.facts.timers);
  const notes: string[] = [];
  const asked = mean(timers.map((t) => t.askedMs));
  const fired = mean(timers.map((t) => t.firedAfterMs));
  if (timers.length && fired - asked > 200) {
    notes.push(
      `- The backoff timers asked for ${sec(asked)} s fired after ${sec(fired)} s on average (TimerStarted → TimerFired in the history): the dev server did not honour the shorter backoff.`,
    );
  }
  const worker = results.find((r) => r.kind === 'worker');
  const waited = worker?.samples.filter((s) => s.nextLog?.waitedForLease) ?? [];
  if (worker && waited.length) {
    notes.push(
      `- After ${waited.length} of ${worker.samples.length} worker kills the next attempt waited for the dead attempt's save-directory lease to lapse (it is renewed every second and lapses one heartbeat timeout after the last renewal); that wait is in "dispatch".`,
    );
  }
  return notes.length ? ['', ...notes] : [];
}

// ---------------------------------------------------------------------------------------------
// Section 3: iterations recomputed per fault against the save interval

interface RecomputeResult {
  interval: number;
  faults: number[];
  recomputed: number[];
  failure?: string;
}

async function recomputeSection(ctx: Ctx): Promise<RecomputeResult[]> {
  const p = ctx.params;
  const random = rng(p.seed);
  const out: RecomputeResult[] = [];
  for (const interval of p.intervals) {
    // Uniform over the iterations after the first checkpoint, so every fault has one to go back to.
    const faults = distinctUniform(random, interval + 1, p.recomputeIters, p.faultsPerInterval);
    log(`section 3: save interval ${interval}, crashes at ${faults.join(', ')}`);
    const run = await runPipeline(ctx, `bench-recompute-${interval}`, {
      trainIters: p.recomputeIters,
      saveInterval: interval,
      iterMs: p.iterMs,
      env: { MLEMU_FAULTS: faults.map((f) => `crash@${f}`).join(',') },
    });
    const attempts = run.pretrain?.attempts ?? [];
    const recomputed = defined(attempts.filter((a) => a.attempt > 1).map((a) => a.recomputed));
    out.push({ interval, faults, recomputed, failure: run.failure });
  }
  return out;
}

function section3(results: RecomputeResult[]): string {
  // The least a resume from the newest checkpoint can redo for these very faults: (f − 1) mod interval.
  const least = (r: RecomputeResult) => r.faults.slice(0, r.recomputed.length).map((f) => (f - 1) % r.interval);
  const rows = results.map((r) => [
    String(r.interval),
    String(r.recomputed.length),
    r.recomputed.join(' '),
    fixed(mean(r.recomputed), 1),
    fixed(mean(r.recomputed) / r.interval),
    fixed(mean(least(r)) / r.interval),
    fixed((r.interval - 1) / (2 * r.interval)),
  ]);
  const all = results.flatMap((r) => r.recomputed.map((x) => x / r.interval));
  const expected = results.flatMap((r) => r.recomputed.map(() => (r.interval - 1) / (2 * r.interval)));
  const leastAll = results.flatMap((r) => least(r).map((x) => x / r.interval));
  rows.push(['all', String(all.length), '', '', fixed(mean(all)), fixed(mean(leastAll)), `${fixed(mean(expected))} (→ 0.5 for long intervals)`]);
  return [
    '## 3. Iterations recomputed per fault',
    '',
    'Crash faults at iterations drawn uniformly (seeded) after the first checkpoint; `recomputed` is what each next attempt recorded (the failed attempt\'s last iteration minus the checkpoint it loaded). A fault "@f" fires before iteration f is logged, so the attempt reached f − 1 and recomputes (f − 1) mod interval: for uniform faults the expectation is (interval − 1) / (2 · interval), → 0.5 for long intervals. "(f − 1) mod interval" is that least possible recomputation for the faults actually drawn, so the two columns before it agree when every resume loads the newest checkpoint, and differ from the uniform expectation only by the sampling of fault positions.',
    '',
    table(['save interval', 'faults', 'recomputed per fault', 'mean', 'mean ÷ interval', '(f − 1) mod interval ÷ interval', 'uniform expectation'], rows),
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// Section 4: goodput with crash faults at a given MTBF

interface GoodputRun {
  label: string;
  interval: number;
  faults: number;
  saves: number;
  wallMs: number;
  goodput: number;
  modelGoodput: number;
  failure?: string;
}

interface GoodputResult {
  runs: GoodputRun[];
  iterMs: number;
  saveMs: number;
  mtbfMs: number;
  recoveryMs: number;
  youngMs: number;
  dalyMs: number;
  schedule: number[];
}

function pretrainWallMs(stage?: StageState): number {
  const a = stage?.attempts ?? [];
  return a.length && a[0].startedAt !== undefined && a.at(-1)!.endedAt !== undefined ? a.at(-1)!.endedAt! - a[0].startedAt : Number.NaN;
}

async function goodputSection(ctx: Ctx): Promise<GoodputResult> {
  const p = ctx.params;
  const T = p.goodputIters;
  const common = { trainIters: T, iterMs: p.goodputIterMs };
  const env = { MLEMU_SAVE_TIME_MS: String(p.saveMs) };

  log(`section 4 (a): ${T} iterations, save interval ${p.fixedInterval}, no faults`);
  const a = await runPipeline(ctx, 'bench-goodput-a', { ...common, saveInterval: p.fixedInterval, env });
  const aAttempt = a.pretrain?.attempts.at(-1);
  const aLog = aAttempt && a.watcher.attempts.get(aAttempt.attempt);
  const saveMs = (aAttempt?.timings?.saveMsTotal ?? Number.NaN) / (aAttempt?.timings?.saves ?? Number.NaN);
  // The iteration time as run: first to last iteration line, minus the saves in between.
  const iterMs =
    aLog?.firstIterationAt !== undefined && aLog.lastIterationAt !== undefined
      ? (aLog.lastIterationAt - aLog.firstIterationAt - (aAttempt?.timings?.saveMsTotal ?? 0)) / (T - 1)
      : p.goodputIterMs;

  // Exponential inter-arrival times (seeded), converted to iterations with the measured iteration time.
  const random = rng(p.seed + 1);
  const schedule: number[] = [];
  for (let t = 0; ;) {
    t += -p.mtbfMs * Math.log(1 - random());
    let it = Math.max(1, Math.ceil(t / iterMs));
    if (it <= (schedule.at(-1) ?? 0)) it = schedule.at(-1)! + 1;
    if (it > T) break;
    schedule.push(it);
  }
  const faultEnv = { ...env, MLEMU_FAULTS: schedule.map((f) => `crash@${f}`).join(',') };

  log(`section 4 (b): save interval ${p.fixedInterval}, crashes at ${schedule.join(', ')}`);
  const b = await runPipeline(ctx, 'bench-goodput-b', { ...common, saveInterval: p.fixedInterval, env: faultEnv });
  const recoveries = defined(markerSamples(b, 'crash', await historyFacts(b.handle, 'pretrain')).map((s) => split(s).total));
  const recoveryMs = recoveries.length ? mean(recoveries) : 0;
  const youngMs = youngIntervalMs(saveMs, p.mtbfMs);
  const dalyMs = dalyIntervalMs(saveMs, p.mtbfMs, recoveryMs);
  const dalyInterval = Math.min(T, Math.max(1, Math.round(dalyMs / iterMs)));

  log(`section 4 (c): Young/Daly save interval ${dalyInterval}, same crashes`);
  const c = await runPipeline(ctx, 'bench-goodput-c', { ...common, saveInterval: dalyInterval, env: faultEnv });

  const waste = (interval: number, faults: boolean) => (faults ? wasteFraction(interval * iterMs, saveMs, p.mtbfMs, recoveryMs) : saveMs / (interval * iterMs));
  const row = (label: string, run: PipelineRun, interval: number, faults: boolean): GoodputRun => {
    const wallMs = pretrainWallMs(run.pretrain);
    const attempts = run.pretrain?.attempts ?? [];
    return {
      label,
      interval,
      wallMs,
      faults: attempts.filter((x) => x.outcome === 'failed').length,
      saves: attempts.reduce((n, x) => n + (x.timings?.saves ?? 0), 0),
      goodput: run.state?.status === 'succeeded' ? (T / wallMs) * 1000 : Number.NaN,
      modelGoodput: 1000 / iterMs / (1 + waste(interval, faults)),
      failure: run.failure,
    };
  };
  return {
    runs: [
      row('(a) no faults, fixed interval', a, p.fixedInterval, false),
      row('(b) faults, fixed interval', b, p.fixedInterval, true),
      row('(c) faults, Young/Daly interval', c, dalyInterval, true),
    ],
    iterMs,
    saveMs,
    mtbfMs: p.mtbfMs,
    recoveryMs,
    youngMs,
    dalyMs,
    schedule,
  };
}

function section4(g: GoodputResult, p: Params): string {
  const ideal = 1000 / g.iterMs;
  const rows = g.runs.map((r) => [
    r.label,
    String(r.interval),
    String(r.faults),
    String(r.saves),
    sec(r.wallMs),
    fixed(r.goodput, 1),
    fixed(r.goodput / ideal),
    fixed(r.modelGoodput, 1),
  ]);
  const [a, b, c] = g.runs;
  const ratio = (x: GoodputRun, y: GoodputRun) => [fixed(x.goodput / y.goodput, 3), fixed(x.modelGoodput / y.modelGoodput, 3)];
  return [
    '## 4. Goodput with crash faults',
    '',
    `${p.goodputIters} iterations of ${p.goodputIterMs} ms (measured ${fixed(g.iterMs, 1)} ms), checkpoint save cost ${p.saveMs} ms (measured ${fixed(g.saveMs, 0)} ms per save). Crashes: exponential inter-arrival times with mean ${sec(g.mtbfMs)} s (seed ${p.seed}), converted to iterations with the measured iteration time: ${g.schedule.map((f) => `@${f}`).join(' ') || 'none'} — the same iterations in (b) and (c). Each fault fires once, when training first reaches its iteration, so faults arrive per unit of new progress (a paired comparison of (b) and (c)), not per unit of wall time.`,
    '',
    `Young: √(2·C·M) = ${sec(g.youngMs)} s; Daly with the recovery time R = ${sec(g.recoveryMs)} s measured in (b) (fault → first iteration of the next attempt): ${sec(g.dalyMs)} s = ${c.interval} iterations (plan/advise.ts).`,
    '',
    'Goodput = useful iterations ÷ wall time of the training stage (first attempt scheduled → last attempt ended). "÷ ideal" divides by 1 / measured iteration time. The model column is the first-order prediction 1 / (iteration time · (1 + waste)), waste = C/τ + (τ/2 + R)/M (`wasteFraction`; C/τ alone without faults).',
    '',
    table(['run', 'save interval', 'faults', 'saves', 'wall s', 'goodput it/s', '÷ ideal', 'model it/s'], rows),
    '',
    table(
      ['goodput ratio', 'measured', 'model'],
      [
        ['b / a (cost of the faults at the fixed interval)', ...ratio(b, a)],
        ['c / a', ...ratio(c, a)],
        ['c / b (Young/Daly over the fixed interval)', ...ratio(c, b)],
      ],
    ),
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------

/** The commit the run measured, and whether the working tree (other engineers' work in progress) differed from it. */
function measuredCommit(): string {
  const head = gitCommit(ROOT, { short: true });
  const dirty = gitTreeDirty(ROOT);
  if (head === undefined || dirty === undefined) return 'unknown';
  return dirty ? `${head} (with uncommitted changes in the working tree)` : head;
}

function header(ctx: Ctx, load: LoadSampler, elapsedMs: number): string {
  const m = describeMachine(ctx.server.cliPath);
  const p = ctx.params;
  const l = (xs?: number[]) => (xs ? xs.map((x) => x.toFixed(2)).join(' ') : '–');
  const shared = load.before[0] > 0.5 || load.samplesWithOtherTests > 0;
  return [
    '# Recovery benchmarks (issue 4)',
    '',
    `Produced by \`node --import tsx perf/recovery.ts ${p.argv}\` on ${new Date().toISOString()} at commit ${measuredCommit()}, in ${(elapsedMs / 60_000).toFixed(1)} min. Real Temporal dev server (${m.temporal}), ${ctx.workers.length} \`linkflow worker\` processes started over the run, ModelLink emulator; every number below comes from this one run.`,
    '',
    table(
      ['machine', ''],
      [
        ['cores', String(m.cores)],
        ['CPU', m.cpu],
        ['RAM', `${m.ramGiB} GiB`],
        ['OS', m.os],
        ['Node', m.node],
        ['Python', m.python],
        ['load average before (1, 5, 15 min)', l(load.before)],
        ['load average after', l(load.after)],
        ['highest 1-min load during the run', load.maxLoad1.toFixed(2)],
        ['samples (every 5 s) with other test runs (vitest) present', `${load.samplesWithOtherTests} of ${load.samples}`],
      ],
    ),
    '',
    shared
      ? "**Shared machine:** other work was running (load before the start and/or other agents' vitest processes during the run), so absolute latencies include CPU contention; the bench itself keeps about one core busy. Ratios are less affected than seconds."
      : 'The machine was otherwise idle before the run and no other test run was seen during it.',
    '',
    table(
      ['setting', 'value'],
      [
        ['heartbeat timeout', p.heartbeatTimeout],
        ['backoff (both budgets, coefficient 1)', p.backoff],
        ['iteration time, sections 1–3', `${p.iterMs} ms`],
        ['training iterations / save interval, sections 1–2', `${p.trainIters} / ${p.saveInterval}`],
        ['faults per kind', String(p.samples)],
        ['hang: noProgressTimeout', p.hangWindow],
        ['HCCL error delay (MLEMU_HCCL_DELAY_MS)', `${p.hcclDelayMs} ms`],
      ],
    ),
  ].join('\n');
}

async function main(): Promise<void> {
  const params = parseParams();
  if (params.help) {
    for (const [name, o] of Object.entries(OPTIONS))
      console.log(`  --${name.padEnd(20)} ${o.describe}${o.type === 'string' ? ` (default ${o.default}${'quick' in o ? `, --quick ${o.quick}` : ''})` : ''}`);
    return;
  }
  const load = new LoadSampler().start();
  const root = tempDir('bench');
  log(`workspaces under ${root}; starting the Temporal dev server`);
  const server = await startDevServer({ ui: false, log: (m) => log(m) });
  const queue = `bench-${process.pid}`;
  const workers: ChildProcess[] = [];
  let client: Client | undefined;
  const cleanup = async () => {
    stopWorkers(workers);
    await client?.connection.close().catch(() => undefined);
    await server.stop();
    if (!params.keep) fs.rmSync(root, { recursive: true, force: true });
  };
  process.once('SIGINT', () => {
    log('interrupted; stopping workers and the server');
    void cleanup().finally(() => process.exit(130));
  });

  const sections: string[] = [];
  const print = (s: string) => {
    sections.push(s);
    console.log(`\n${s}\n`);
  };
  let ctx: Ctx | undefined;
  try {
    const config = loadConfig(
      {
        address: server.address,
        taskQueue: queue,
        retry: {
          maximumAttempts: 100,
          initialInterval: params.backoff,
          backoffCoefficient: 1,
          maximumInterval: params.backoff,
          infrastructureAttempts: 100,
          infrastructureInitialInterval: params.backoff,
        },
        activity: { heartbeatTimeout: params.heartbeatTimeout, startToCloseTimeout: '1h' },
      },
      {},
    );
    client = await connectClient(config);
    const emulator = path.join(root, 'emulator');
    fs.cpSync(EMULATOR, emulator, { recursive: true, filter: (src) => !src.includes('__pycache__') });
    ctx = { params, server, client, config, queue, workers, root, emulator };
    await ensureWorkers(ctx, 2);

    if (params.sections.has('detect')) {
      const results: KindResult[] = [];
      for (const kind of ['crash', 'sigkill', 'hccl', 'hang', 'worker'] as const) {
        const r = await faultKind(ctx, kind);
        if (r.failure) log(`${kind}: ${r.failure}`);
        results.push(r);
      }
      print(section1(results, params));
      print(section2(results));
    }
    if (params.sections.has('recompute')) print(section3(await recomputeSection(ctx)));
    if (params.sections.has('goodput')) print(section4(await goodputSection(ctx), params));
  } finally {
    await cleanup();
    load.stop();
  }
  const leftovers = processesMentioning(root);
  if (leftovers.length) log(`processes still mention the bench workspace:\n${leftovers.join('\n')}`);

  const report = `${header(ctx!, load, Date.now() - t0)}\n\n${sections.join('\n\n')}\n`;
  if (params.writeResults) {
    const file = path.join(ROOT, 'perf', 'RESULTS.md');
    fs.writeFileSync(file, report);
    log(`wrote ${path.relative(ROOT, file)}`);
  }
  log(`done in ${((Date.now() - t0) / 60_000).toFixed(1)} min`);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
