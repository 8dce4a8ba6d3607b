/**
 * The measured scenarios: faults of each kind (sections 1 and 2), crashes against save intervals
 * (section 3), and goodput with crashes at a given MTBF (section 4). Each runs pipelines and returns
 * what it measured; perf/recovery/report.ts writes it up.
 */
import type { ChildProcess } from 'node:child_process';
import { dalyIntervalMs, wasteFraction, youngIntervalMs } from '../../plan/advise.ts';
import { noProgressWindowMs } from '../../failures/hang.ts';
import type { StageState } from '../../contracts/run-state.ts';
import { processesMentioning, until } from '../../testkit/wait.ts';
import { startWorkerProcess } from '../../testkit/workers.ts';
import { ancestorAmong, defined, distinctUniform, fixed, mean, rng, sec } from '../lib.ts';
import { log } from './params.ts';
import { historyFacts, runPipeline, type Ctx, type HistoryFacts, type PipelineOptions, type PipelineRun } from './pipeline.ts';
import { markerSamples, split, type FaultSample } from './samples.ts';

// ---------------------------------------------------------------------------------------------
// Sections 1 and 2: detection and recovery latency per fault kind

export type Kind = 'crash' | 'sigkill' | 'worker' | 'hang' | 'hccl';

export interface KindResult {
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

export async function ensureWorkers(ctx: Ctx, n: number): Promise<void> {
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

export async function faultKind(ctx: Ctx, kind: Kind): Promise<KindResult> {
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

// ---------------------------------------------------------------------------------------------
// Section 3: iterations recomputed per fault against the save interval

export interface RecomputeResult {
  interval: number;
  faults: number[];
  recomputed: number[];
  failure?: string;
}

export async function recomputeSection(ctx: Ctx): Promise<RecomputeResult[]> {
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

// ---------------------------------------------------------------------------------------------
// Section 4: goodput with crash faults at a given MTBF

export interface GoodputRun {
  label: string;
  interval: number;
  faults: number;
  saves: number;
  wallMs: number;
  goodput: number;
  modelGoodput: number;
  failure?: string;
}

export interface GoodputResult {
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

export async function goodputSection(ctx: Ctx): Promise<GoodputResult> {
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
