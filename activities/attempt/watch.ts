/**
 * While the trainer runs: its log lines become progress (heartbeats, timings, iteration samples),
 * and the watcher stops it on a fault of its own finding (NaN loss, no progress for longer than the
 * phase's window, the save directory's lease taken by another attempt) or on cancellation. A stop
 * lets the trainer finish its stop save: the grace follows this attempt's measured saves.
 */
import type { Context } from '@temporalio/activity';
import { CancelledFailure } from '@temporalio/common';
import fs from 'node:fs';
import type { IterationSample } from '../../benchmark/throughput.ts';
import type { HeartbeatDetails } from '../../contracts/heartbeat.ts';
import { causeLine, type FailureClass } from '../../failures/failures.ts';
import { logsIterations, type RankAssignment } from '../../plan/gang.ts';
import { noProgressWindowMs, type TrainingPhase } from '../../failures/hang.ts';
import { launchesElasticAgent, launchOf, nodesOf, renderLaunch } from '../../frameworks/launch.ts';
import { ATTEMPT_LOG_WINDOW, LogWindow } from '../../failures/log-window.ts';
import type { StagePlan } from '../../plan/plan.ts';
import { stopGraceMs } from '../../plan/stop-grace.ts';
import { applyLogEvent, parseLogLine, type AttemptProgress, type LogEvent } from '../../frameworks/modellink/training-log.ts';
import { jobPhase, queuedNote } from '../../executors/slurm/plan.ts';
import { startProcess, type ExitStatus, type RunningProcess } from '../../executors/nodes/io/process-group.ts';
import type { HeldLease } from '../lease.ts';
import { nodeName } from '../node.ts';
import { fail, type AttemptInput } from './common.ts';
import { releaseOnThrow, type PreparedAttempt } from './prepare.ts';
import { startSlurmJob, type SlurmJob, type SlurmJobEnd } from '../../executors/slurm/io/job.ts';
import { workFingerprint } from '../../executors/executor.ts';
import { GangRejected, startKubernetesGang, type KubernetesGang, type KubernetesGangEnd } from '../../executors/kubernetes/io/gang.ts';
import { attemptProgressed, checkpointLoaded, checkpointSaved, type StageLabels } from '../metrics.ts';

const HEARTBEAT_EVERY_MS = 1000;

/** How the process ended and what the watcher saw of it. */
export interface WatchedAttempt {
  status: ExitStatus;
  progress: AttemptProgress;
  /** The lines that explain the attempt: the first ones (argparse's usage, start-up errors), those around root causes, the last ones. */
  logLines: () => string[];
  /** A fault the watcher found and stopped the trainer for. */
  detected?: FailureClass;
  cancelled?: CancelledFailure;
  samples?: IterationSample[];
  /** The pipeline's own failure patterns, checked before the built-in ones. */
  failureRules: FailureRule[];
  /** A Slurm attempt: how Slurm says the job ended. */
  slurm?: SlurmJobEnd;
  /** A Kubernetes attempt: how the API says the gang ended. */
  kubernetes?: KubernetesGangEnd;
}

type FailureRule = { class: FailureClass; pattern: RegExp };

export async function watchAttempt(
  ctx: Context,
  input: AttemptInput,
  prepared: PreparedAttempt,
  logFile: string,
  labels: StageLabels,
): Promise<WatchedAttempt> {
  const { stage, attempt, rank } = input;
  const { lease } = prepared;
  const watch = new AttemptWatch(stage, rank, logFile, labels);
  const options = {
    argv: prepared.argv,
    cwd: stage.cwd,
    env: prepared.env,
    logFile,
    stdin: stage.stdin,
    graceMs: watch.stopGrace(),
    onLine: (line: string) => {
      if (watch.read(line)) void proc.kill(0);
    },
  };
  // Training under torchrun: SIGTERM to its workers, not to the agent, whose own shutdown SIGKILLs them after 30 s.
  const stopWorkers = stage.training !== undefined && launchesElasticAgent(prepared.launch);
  let proc: RunningProcess;
  let job: SlurmJob | undefined;
  let gang: KubernetesGang | undefined;
  try {
    gang = stage.kubernetes
      ? await startKubernetesGang({
          pipeline: input.pipeline,
          stageName: stage.name,
          attempt,
          settings: stage.kubernetes,
          launch: prepared.launch,
          command: prepared.argv.slice(renderLaunch(prepared.launch).length),
          cwd: stage.cwd,
          env: stage.env,
          secretEnv: prepared.secretEnv,
          setupScript: stage.setupScript,
          logFile,
          graceMs: options.graceMs,
          // The stage's work as planned (its resume point aside): a gang found running is adopted only when it does this.
          fingerprint: workFingerprint([stage.entrypoint, stage.args, launchOf(stage), stage.cwd, stage.env, stage.kubernetes, stage.setupScript]),
          avoid: input.avoidNodes,
          usesDevices: prepared.launch.kind === 'torchrun',
          onLine: options.onLine,
          mask: (line) => prepared.masker.mask(line),
          rankWindow: () => new LogWindow({ ...ATTEMPT_LOG_WINDOW, isCause: causeLine(watch.failureRules) }),
          onRunning: () => watch.restartClock(),
          onWait: () => ctx.heartbeat({ stage: stage.name, attempt, logFile }),
        })
      : undefined;
    job = stage.slurm
      ? await startSlurmJob({
          ...options,
          // Slurm writes the log; its task launcher masks the secrets there, and this masks what the watcher reads.
          onLine: (line) => options.onLine(prepared.masker.mask(line)),
          env: stage.env,
          secretEnv: prepared.secretEnv,
          setupScript: stage.setupScript,
          pipeline: input.pipeline,
          stageName: stage.name,
          attempt,
          settings: stage.slurm,
          nodes: nodesOf(prepared.launch),
          stopWorkers,
          avoid: input.avoidNodes,
          onRunning: () => watch.restartClock(),
          onWait: () => ctx.heartbeat({ stage: stage.name, attempt, logFile }),
          usesDevices: prepared.launch.kind === 'torchrun',
          fingerprint: workFingerprint([stage.entrypoint, stage.args, launchOf(stage), stage.cwd, stage.env, stage.slurm, stage.setupScript]),
        })
      : undefined;
    proc = job ?? gang ?? releaseOnThrow(lease, () => startProcess({ ...options, masker: prepared.masker, stopSignalTo: stopWorkers ? 'workers' : 'group' }));
  } catch (err) {
    lease?.release();
    if (err instanceof GangRejected) {
      fs.appendFileSync(logFile, `linkflow: ${err.message}\n`);
      throw fail(
        'rejected',
        `stage ${stage.name} attempt ${attempt} failed (rejected, not retried): ${err.message}`,
        { failureClass: 'rejected', reason: err.message, excerpt: [err.message], logFile },
        false,
      );
    }
    throw err;
  }
  // The node rides on every heartbeat: if the worker is lost, the workflow still knows where the attempt ran.
  // The same progress sets the stage's gauges of this worker's metrics.
  const heartbeat = () => {
    attemptProgressed(labels, watch.progress);
    ctx.heartbeat({
      ...watch.progress,
      stage: stage.name,
      attempt,
      logFile,
      node: rank?.node ?? nodeName(),
      nodeRank: rank?.nodeRank,
      ...(job ? slurmHeartbeat(job) : {}),
      ...(gang?.queuedNote() ? { queued: gang.queuedNote() } : {}),
    } satisfies HeartbeatDetails);
  };
  heartbeat();
  let cancelled: CancelledFailure | undefined;
  const timer = setInterval(() => {
    heartbeat();
    const grace = watch.stopGrace();
    if (grace !== undefined) proc.setGrace(grace);
    if (watch.findFault(lease)) void proc.kill(0);
  }, HEARTBEAT_EVERY_MS);
  ctx.cancelled.catch((err: unknown) => {
    cancelled = err instanceof CancelledFailure ? err : new CancelledFailure(String(err));
    void proc.kill();
  });

  let status: ExitStatus;
  let slurm: SlurmJobEnd | undefined;
  let kubernetes: KubernetesGangEnd | undefined;
  try {
    status = await proc.exited;
    slurm = await job?.ended;
    kubernetes = await gang?.ended;
  } finally {
    clearInterval(timer);
    // The trainer is gone: the next attempt need not wait.
    lease?.release();
  }
  // When the process ran, in the log itself: what the job cost, apart from what linkflow added around it.
  fs.appendFileSync(
    logFile,
    `# launched ${new Date(watch.launchedAt).toISOString()}, exited ${new Date().toISOString()} (${status.signal ?? `exit code ${status.exitCode}`}) after ${((Date.now() - watch.launchedAt) / 1000).toFixed(3)} s\n`,
  );
  return {
    status,
    progress: watch.progress,
    logLines: () => watch.logWindow.lines(),
    detected: watch.detected,
    cancelled,
    samples: watch.samples,
    failureRules: watch.failureRules,
    slurm,
    kubernetes,
  };
}

/** What `linkflow status` shows of a Slurm attempt: its job, and while it waits, Slurm's reason. */
function slurmHeartbeat(job: SlurmJob): Pick<HeartbeatDetails, 'slurmJob' | 'queued'> {
  const last = job.last();
  return { slurmJob: job.jobId, ...(last && jobPhase(last.state) === 'queued' ? { queued: queuedNote(job.jobId, last.reason) } : {}) };
}

/** What the watcher knows of a running attempt, from its log lines and the clock. */
class AttemptWatch {
  readonly progress: AttemptProgress = {};
  readonly logWindow: LogWindow;
  readonly failureRules: FailureRule[];
  launchedAt = Date.now();
  /** A benchmark case is measured from its iteration lines, here on the node that logged them. */
  readonly samples: IterationSample[] | undefined;
  detected: FailureClass | undefined;
  private lastProgressAt = Date.now();
  private saveStartedAt: number | undefined;
  private loadStartedAt: number | undefined;
  private longestSaveMs: number | undefined;
  private readonly shape;
  /** Only the node that prints the training log can tell a hang; the others wait on it in collectives. */
  private readonly watchHang: boolean;

  constructor(
    private readonly stage: StagePlan,
    rank: RankAssignment | undefined,
    private readonly logFile: string,
    private readonly labels: StageLabels,
  ) {
    this.failureRules = stage.failureRules.map((r) => ({ class: r.class, pattern: new RegExp(r.pattern) }));
    // The first lines (argparse's usage, start-up errors), the lines around root causes and the last ones are what explains a failure.
    this.logWindow = new LogWindow({ ...ATTEMPT_LOG_WINDOW, isCause: causeLine(this.failureRules) });
    this.shape = stage.training
      ? { seqLength: stage.training.seqLength, globalBatchSize: stage.training.globalBatchSize, worldSize: stage.training.worldSize }
      : undefined;
    this.samples = stage.training?.measureOnly ? [] : undefined;
    this.watchHang = stage.training !== undefined && logsIterations(rank);
  }

  /** A Slurm job left the queue: start-up and hang windows count from here. */
  restartClock(): void {
    this.launchedAt = Date.now();
    this.lastProgressAt = Date.now();
  }

  /** A log line: into the window, the progress and the timings. True when it shows NaN loss: the trainer must stop. */
  read(line: string): boolean {
    this.logWindow.push(line);
    const event = parseLogLine(line);
    if (event && applyLogEvent(this.progress, event, this.shape)) this.lastProgressAt = Date.now();
    if (this.samples && event?.type === 'iteration')
      this.samples.push({
        iteration: event.iteration,
        elapsedMsPerIteration: event.elapsedMsPerIteration,
        tflopsPerDevice: event.tflopsPerDevice,
        globalBatchSize: event.globalBatchSize,
      });
    if (event) this.time(event);
    if (this.progress.nanLoss && !this.detected) {
      this.detected = 'nan-loss';
      return true;
    }
    return false;
  }

  /** Timings for save-interval advice (linkflow advise) and for the stop grace. */
  private time(event: LogEvent): void {
    const progress = this.progress;
    if (event.type === 'iteration' && progress.startupMs === undefined) progress.startupMs = Date.now() - this.launchedAt;
    if (event.type === 'checkpoint-saving') this.saveStartedAt = Date.now();
    if (event.type === 'checkpoint-loading') this.loadStartedAt = Date.now();
    if (event.type === 'checkpoint-loaded' && this.loadStartedAt !== undefined) {
      progress.loadMs = Date.now() - this.loadStartedAt;
      checkpointLoaded(this.labels, progress.loadMs / 1000);
    }
    if (event.type === 'checkpoint-saved' && this.saveStartedAt !== undefined) {
      this.longestSaveMs = Math.max(this.longestSaveMs ?? 0, Date.now() - this.saveStartedAt);
      checkpointSaved(this.labels, (Date.now() - this.saveStartedAt) / 1000);
      progress.saveMsTotal = (progress.saveMsTotal ?? 0) + (Date.now() - this.saveStartedAt);
      progress.saves = (progress.saves ?? 0) + 1;
      this.saveStartedAt = undefined;
    }
  }

  /**
   * A stop (linkflow stop, cancel, a drain) lets the trainer finish its stop save: the grace follows
   * this attempt's measured saves. A trainer killed for a fault (NaN, hang, lost lease) gets SIGKILL
   * at once: with --exit-signal-handler a SIGTERM would make it save that state.
   */
  stopGrace(): number | undefined {
    const training = this.stage.training;
    return training
      ? stopGraceMs({
          longestSaveMs: this.longestSaveMs,
          msPerIteration: this.progress.elapsedMsPerIteration,
          savingNow: this.progress.savingCheckpoint,
          checkpointTimeoutMs: training.hang.checkpointMs,
        })
      : undefined;
  }

  /** Once a heartbeat: the save directory's lease, then a hang. True when the trainer must stop. */
  findFault(lease: HeldLease | undefined): boolean {
    if (lease && !lease.renew() && !this.detected) {
      // Another attempt holds the save directory now (Temporal gave up on this one): stop writing.
      this.note('node-lost', 'linkflow: another attempt took the save directory lease; stopping this trainer');
      return true;
    }
    if (!this.watchHang || this.detected) return false;
    // The window restarts with every line that shows progress and follows the phase the job is in.
    const progress = this.progress;
    const phase: TrainingPhase = progress.savingCheckpoint
      ? 'checkpoint'
      : progress.iteration === undefined || progress.iteration === progress.loadedIteration
        ? 'startup'
        : 'training';
    const window = noProgressWindowMs(this.stage.training!.hang, phase, progress.elapsedMsPerIteration);
    if (Date.now() - this.lastProgressAt <= window) return false;
    this.note(
      'hang',
      `linkflow: no progress for ${Math.round((Date.now() - this.lastProgressAt) / 1000)} s during ${phase} (window ${(window / 1000).toFixed(1)} s); killing the process group`,
    );
    return true;
  }

  private note(cls: FailureClass, note: string): void {
    this.detected = cls;
    this.logWindow.push(note);
    fs.appendFileSync(this.logFile, `${note}\n`);
  }
}
