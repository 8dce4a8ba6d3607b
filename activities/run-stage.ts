/**
 * One attempt of one stage: pick the checkpoint to resume from, launch the ModelLink entrypoint,
 * watch its log (progress into heartbeats, NaN loss and hangs detected), and report success
 * or a classified failure with the log excerpt that shows why.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describeLayout, findResumePoint, iterationDirName, loraResumeView, missingShards, readTracker, shardDirNames, TRACKER_FILE, type ResumePoint } from '../modellink/checkpoint.ts';
import { flattenArgs, resumeArgs } from '../modellink/commands.ts';
import { causeLine, classifyFailure, readTorchrunReport, type FailureClass } from '../modellink/failures.ts';
import { ATTEMPT_LOG_WINDOW, LogWindow } from '../modellink/log-window.ts';
import type { StagePlan } from '../modellink/plan.ts';
import type { AttemptFailureDetails, AttemptResult, AttemptTimings } from '../contracts/run-state.ts';
import type { HeartbeatDetails } from '../contracts/heartbeat.ts';
import type { IterationSample } from '../benchmark/throughput.ts';
import { applyLogEvent, parseLogLine, type AttemptProgress } from '../modellink/training-log.ts';
import { noProgressWindowMs, type TrainingPhase } from '../modellink/hang.ts';
import { stopGraceMs } from '../modellink/stop-grace.ts';
import { launchesElasticAgent, launchForRank, launchOf, renderLaunch, withMasterPort } from '../modellink/launch.ts';
import { startProcess, stoppingAllProcesses, type ExitStatus } from '../node/process-group.ts';
import { loadSetupEnv } from '../node/setup-env.ts';
import { acquireLease, leaseFile, type HeldLease } from './lease.ts';
import { logsIterations, type RankAssignment } from '../modellink/gang.ts';
import { getFreePort } from '../node/free-port.ts';
import { dataFiles, outputPresent } from './manifest.ts';
import { nodeName } from './node.ts';

export interface AttemptInput {
  pipeline: string;
  stage: StagePlan;
  attempt: number;
  /** A save interval set while the pipeline runs (setSaveInterval signal). */
  saveInterval?: number;
  /** One node rank of a multi-node gang: where this rank runs and where rank 0 listens. */
  rank?: RankAssignment;
}

/**
 * Megatron's exit signal handler saying it saved and stopped on SIGTERM (ModelLink
 * modellink/training/training.py train(): print_datetime('exiting program after receiving SIGTERM.')).
 * High availability prints nothing of the kind in any public source, so it is not matched.
 */
const SIGNAL_EXIT = /exiting program after receiving SIGTERM/;

const HEARTBEAT_EVERY_MS = 1000;

function fail(cls: FailureClass, message: string, details: AttemptFailureDetails, retryable: boolean): ApplicationFailure {
  return ApplicationFailure.create({ type: cls, message, nonRetryable: !retryable, details: [details] });
}

/** Inputs that do not exist fail the attempt before launch, naming the spec field. */
function checkInputs(stage: StagePlan, logFile: string): void {
  for (const input of stage.inputs) {
    const missing = dataFiles(input).filter((f) => !fs.existsSync(f));
    if (input.kind === 'checkpoint' && fs.existsSync(input.path) && !fs.existsSync(path.join(input.path, TRACKER_FILE))) {
      missing.push(path.join(input.path, TRACKER_FILE));
    }
    if (missing.length === 0 && input.kind === 'checkpoint' && stage.loadLayout && !input.fromStage) {
      // Weights from outside the pipeline: their shards must be of this stage's TP/PP/EP layout.
      const tracker = readTracker(input.path);
      if (tracker !== undefined && tracker !== 'invalid') {
        const iterDir = path.join(input.path, iterationDirName(tracker));
        const present = fs.existsSync(iterDir) ? fs.readdirSync(iterDir).filter((d) => d.startsWith('mp_rank_')).sort() : [];
        const expected = shardDirNames(stage.loadLayout);
        if (missingShards(input.path, tracker, stage.loadLayout).length > 0 || present.join() !== [...expected].sort().join()) {
          const reason = `${input.specPath}: ${input.path} holds shards ${present.join(', ') || '(none)'} at ${iterationDirName(tracker)}, not the ${describeLayout(stage.loadLayout)} layout this stage runs (${expected.join(', ')}); add a convert stage that reshards it`;
          fs.appendFileSync(logFile, `linkflow: ${reason}\n`);
          throw fail('missing-input', `stage ${stage.name}: ${reason}`, { failureClass: 'missing-input', reason, excerpt: [reason], logFile }, false);
        }
      }
    }
    if (missing.length > 0) {
      const reason = `${input.specPath}: ${missing[0]} does not exist${input.fromStage ? ` (output of stage ${input.fromStage})` : ''}`;
      fs.appendFileSync(logFile, `linkflow: ${reason}\n`);
      throw fail('missing-input', `stage ${stage.name}: missing input: ${reason}`, { failureClass: 'missing-input', reason, excerpt: [reason], logFile }, false);
    }
  }
}

/**
 * Megatron loads whatever the tracker file names. To resume from an older complete checkpoint
 * without touching the save directory, point --load at a small directory of our own holding a
 * tracker and a link to that iteration.
 */
function resumeView(stage: StagePlan, iteration: number): string {
  const view = path.join(stage.dir, 'resume', iterationDirName(iteration));
  fs.mkdirSync(view, { recursive: true });
  const link = path.join(view, iterationDirName(iteration));
  try {
    fs.symlinkSync(path.join(stage.training!.saveDir, iterationDirName(iteration)), link);
  } catch (e) {
    // Every rank of a gang builds the same view; the first one's link serves all.
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  fs.writeFileSync(path.join(view, TRACKER_FILE), `${iteration}\n`);
  return view;
}

/** A name for a file about to be renamed into place, unique across the nodes of a gang sharing the storage. */
const tmpName = (file: string) => `${file}.${os.hostname()}.${process.pid}.tmp`;

/** A link of a view, made or re-pointed atomically (a new link renamed over the old one), so ranks building the same view never race. */
function placeLink(link: string, target: string): void {
  fs.mkdirSync(path.dirname(link), { recursive: true });
  try {
    if (fs.readlinkSync(link) === target) return;
  } catch {
    // not there yet
  }
  const tmp = tmpName(link);
  fs.rmSync(tmp, { force: true });
  fs.symlinkSync(target, tmp);
  fs.renameSync(tmp, link);
}

/**
 * A LoRA attempt that resumes needs `--load` to show the base weights under the LoRA checkpoint's
 * tracker and distributed-optimizer files (see loraResumeView for why Megatron needs that). The view
 * is `<stage>/resume/lora-iter_N`, made of links only: neither checkpoint is touched.
 */
function loraLoadView(stage: StagePlan, iteration: number, loraDir: string, logFile: string): string {
  const training = stage.training!;
  const baseDir = training.loraBase!;
  const base = readTracker(baseDir);
  const layout = { tp: training.tp, pp: training.pp, ep: training.ep };
  const missing = base === undefined || base === 'invalid' ? [TRACKER_FILE] : missingShards(baseDir, base, layout);
  if (base === undefined || base === 'invalid' || missing.length > 0) {
    const reason = `the base weights ${baseDir} a LoRA resume loads are incomplete (missing ${missing.slice(0, 3).join(', ')} of the ${describeLayout(layout)} layout)`;
    fs.appendFileSync(logFile, `linkflow: ${reason}\n`);
    throw fail('missing-input', `stage ${stage.name}: ${reason}`, { failureClass: 'missing-input', reason, excerpt: [reason], logFile }, false);
  }
  const view = path.join(stage.dir, 'resume', `lora-${iterationDirName(iteration)}`);
  const planned = loraResumeView(iteration, loraDir, { dir: baseDir, iteration: base }, layout);
  // Without the distributed optimizer the LoRA checkpoint has no distrib_optim.pt, and Megatron reads none.
  for (const { link, target } of planned.links) if (fs.existsSync(target)) placeLink(path.join(view, link), target);
  const tracker = path.join(view, TRACKER_FILE);
  const tmp = tmpName(tracker);
  fs.writeFileSync(tmp, `${planned.tracker}\n`);
  fs.renameSync(tmp, tracker);
  return view;
}

function planResume(stage: StagePlan, logFile: string): { args: StagePlan['args']; point: ResumePoint } {
  const training = stage.training!;
  const point = findResumePoint(training.saveDir, training);
  if (point.kind === 'none') return { args: stage.args, point };
  // The checkpoint --load (or, for LoRA, --lora-load) resumes: the save directory, or a view of an older complete iteration.
  const dir = point.kind === 'tracker' ? training.saveDir : resumeView(stage, point.iteration);
  if (training.lora && training.loraBase !== undefined && point.iteration !== 'release') {
    return { args: resumeArgs(stage.args, dir, true, loraLoadView(stage, point.iteration, training.saveDir, logFile)), point };
  }
  return { args: resumeArgs(stage.args, dir, training.lora), point };
}

/**
 * ModelLink's Megatron→HF saver reads the original HF model from --save-dir and writes mg2hf/
 * into it. The user's HF directory stays untouched: the stage gets its own directory of links.
 */
function linkHfView(view: { from: string; dir: string }): void {
  fs.mkdirSync(view.dir, { recursive: true });
  for (const entry of fs.readdirSync(view.from)) {
    if (entry === 'mg2hf') continue;
    const link = path.join(view.dir, entry);
    if (!fs.existsSync(link)) fs.symlinkSync(path.join(view.from, entry), link);
  }
}

function timestamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-');
}

export async function runStageAttempt({ pipeline, stage, attempt, saveInterval, rank }: AttemptInput): Promise<AttemptResult> {
  const ctx = Context.current();
  fs.mkdirSync(stage.logDir, { recursive: true });
  const logFile = path.join(stage.logDir, `attempt-${attempt}${rank ? `-rank-${rank.nodeRank}` : ''}-${timestamp()}.log`);
  fs.writeFileSync(logFile, `# linkflow pipeline ${pipeline}, stage ${stage.name} (${stage.kind}), attempt ${attempt}${rank ? `, node rank ${rank.nodeRank} of ${rank.nodes} on ${rank.node} (master ${rank.masterAddr}:${rank.masterPort})` : ''}\n`);
  checkInputs(stage, logFile);

  let args = stage.args;
  let resumeNote: string | undefined;
  let loadedFrom: number | undefined;
  const savesCheckpoints = stage.training !== undefined && !stage.training.measureOnly;
  if (savesCheckpoints) {
    const { args: resumed, point } = planResume(stage, logFile);
    args = resumed;
    if (point.kind === 'tracker' && point.iteration === stage.training!.trainIters) {
      // Training already reached the end (the previous run stopped before its manifest): nothing to redo.
      return { loadedIteration: point.iteration, finalIteration: point.iteration, lastCheckpoint: { iteration: point.iteration, dir: point.dir }, logFile, node: rank?.node ?? nodeName() };
    }
    if (point.kind !== 'none' && point.iteration !== 'release') loadedFrom = point.iteration;
    if (point.kind === 'older') resumeNote = point.reason;
  }
  if (saveInterval !== undefined && stage.training) args = args.map(([f, v]) => (f === '--save-interval' ? [f, String(saveInterval)] : [f, v]));
  if (stage.kind === 'preprocess') fs.mkdirSync(path.dirname(stage.output), { recursive: true });
  if (stage.hfView) linkHfView(stage.hfView);

  const env = { ...process.env, ...(stage.setupScript ? loadSetupEnv(stage.setupScript) : {}), ...stage.env };
  // A gang's rank 0 chose its port; a single-node job takes one free on this node now.
  const launch = rank ? launchForRank(launchOf(stage), rank) : withMasterPort(launchOf(stage), await getFreePort('0.0.0.0'));
  // One trainer per save directory: wait out a lease another attempt may still be using.
  let lease: HeldLease | undefined;
  if (savesCheckpoints) {
    const ttl = ctx.info.heartbeatTimeoutMs ?? 60_000;
    const owner = `${ctx.info.workflowExecution?.workflowId ?? pipeline}/${ctx.info.workflowExecution?.runId ?? ctx.info.activityId}/attempt-${attempt}${rank ? `/rank-${rank.nodeRank}` : ''}`;
    const taken = await acquireLease(stage.dir, owner, ttl, (held) => {
      if (ctx.cancellationSignal.aborted) {
        const why = ctx.cancellationSignal.reason;
        // Only the user's cancel is a cancellation; a worker shutdown or timeout is a retryable end of the attempt.
        if (why instanceof CancelledFailure && why.message === 'CANCELLED') throw why;
        const reason = `stopped while waiting for the save directory lease (${why instanceof Error ? why.message : String(why)})`;
        throw fail('killed', `stage ${stage.name} attempt ${attempt}: ${reason}`, { failureClass: 'killed', reason, excerpt: [], logFile }, true);
      }
      ctx.heartbeat({ stage: stage.name, attempt, logFile, waitingForLease: held.owner });
    }, leaseFile(rank?.nodeRank));
    lease = taken.lease;
    if (taken.waitedFor) fs.appendFileSync(logFile, `# waited for the lease of ${taken.waitedFor.owner} (host ${taken.waitedFor.host}, pid ${taken.waitedFor.pid}) to lapse before launching\n`);
  }

  // Until the process runs, any throw must give the lease back, or the next attempt waits out its TTL.
  const releaseOnThrow = <T>(fn: () => T): T => {
    try {
      return fn();
    } catch (e) {
      lease?.release();
      throw e;
    }
  };
  const argv = [...renderLaunch(launch), stage.entrypoint, ...flattenArgs(args)];
  releaseOnThrow(() => fs.appendFileSync(logFile, `# cwd: ${stage.cwd}\n# argv: ${JSON.stringify(argv)}\n${resumeNote ? `# ${resumeNote}\n` : ''}`));

  const progress: AttemptProgress = {};
  // The first lines (argparse's usage, start-up errors), the lines around root causes and the last
  // ones are what explains a failure.
  const failureRules = stage.failureRules.map((r) => ({ class: r.class, pattern: new RegExp(r.pattern) }));
  const logWindow = new LogWindow({ ...ATTEMPT_LOG_WINDOW, isCause: causeLine(failureRules) });
  const remember = (line: string) => logWindow.push(line);
  const logLines = () => logWindow.lines();
  let lastProgressAt = Date.now();
  let detected: FailureClass | undefined;
  const shape = stage.training ? { seqLength: stage.training.seqLength, globalBatchSize: stage.training.globalBatchSize, worldSize: stage.training.worldSize } : undefined;

  // A benchmark case is measured from its iteration lines, here on the node that logged them.
  const samples: IterationSample[] | undefined = stage.training?.measureOnly ? [] : undefined;
  const launchedAt = Date.now();
  let saveStartedAt: number | undefined;
  let loadStartedAt: number | undefined;
  let longestSaveMs: number | undefined;
  // A stop (linkflow stop, cancel, a drain) lets the trainer finish its stop save: the grace follows
  // this attempt's measured saves. A trainer killed for a fault (NaN, hang, lost lease) gets SIGKILL
  // at once: with --exit-signal-handler a SIGTERM would make it save that state.
  const stopGrace = () => stage.training
    ? stopGraceMs({ longestSaveMs, msPerIteration: progress.elapsedMsPerIteration, savingNow: progress.savingCheckpoint, checkpointTimeoutMs: stage.training.hang.checkpointMs })
    : undefined;
  const proc = releaseOnThrow(() => startProcess({
    argv,
    cwd: stage.cwd,
    env,
    logFile,
    stdin: stage.stdin,
    graceMs: stopGrace(),
    // Training under torchrun: SIGTERM to its workers, not to the agent, whose own shutdown SIGKILLs them after 30 s.
    stopSignalTo: stage.training && launchesElasticAgent(launch) ? 'workers' : 'group',
    onLine: (line) => {
      remember(line);
      const event = parseLogLine(line);
      if (event && applyLogEvent(progress, event, shape)) lastProgressAt = Date.now();
      if (samples && event?.type === 'iteration') samples.push({ iteration: event.iteration, elapsedMsPerIteration: event.elapsedMsPerIteration, tflopsPerDevice: event.tflopsPerDevice, globalBatchSize: event.globalBatchSize });
      // Timings for save-interval advice (linkflow advise).
      if (event?.type === 'iteration' && progress.startupMs === undefined) progress.startupMs = Date.now() - launchedAt;
      if (event?.type === 'checkpoint-saving') saveStartedAt = Date.now();
      if (event?.type === 'checkpoint-loading') loadStartedAt = Date.now();
      if (event?.type === 'checkpoint-loaded' && loadStartedAt !== undefined) progress.loadMs = Date.now() - loadStartedAt;
      if (event?.type === 'checkpoint-saved' && saveStartedAt !== undefined) {
        longestSaveMs = Math.max(longestSaveMs ?? 0, Date.now() - saveStartedAt);
        progress.saveMsTotal = (progress.saveMsTotal ?? 0) + (Date.now() - saveStartedAt);
        progress.saves = (progress.saves ?? 0) + 1;
        saveStartedAt = undefined;
      }
      if (progress.nanLoss && !detected) {
        detected = 'nan-loss';
        void proc.kill(0);
      }
    },
  }));

  // The node rides on every heartbeat: if the worker is lost, the workflow still knows where the attempt ran.
  const heartbeat = () => ctx.heartbeat({ ...progress, stage: stage.name, attempt, logFile, node: rank?.node ?? nodeName(), nodeRank: rank?.nodeRank } satisfies HeartbeatDetails);
  // Only the node that prints the training log can tell a hang; the others wait on it in collectives.
  const watchHang = stage.training !== undefined && logsIterations(rank);
  heartbeat();
  let cancelled: CancelledFailure | undefined;
  const timer = setInterval(() => {
    heartbeat();
    const grace = stopGrace();
    if (grace !== undefined) proc.setGrace(grace);
    if (lease && !lease.renew() && !detected) {
      // Another attempt holds the save directory now (Temporal gave up on this one): stop writing.
      detected = 'node-lost';
      const note = 'linkflow: another attempt took the save directory lease; stopping this trainer';
      remember(note);
      fs.appendFileSync(logFile, `${note}\n`);
      void proc.kill(0);
    }
    // The window restarts with every line that shows progress and follows the phase the job is in.
    const phase: TrainingPhase = progress.savingCheckpoint ? 'checkpoint' : progress.iteration === undefined || progress.iteration === progress.loadedIteration ? 'startup' : 'training';
    const window = watchHang ? noProgressWindowMs(stage.training!.hang, phase, progress.elapsedMsPerIteration) : Infinity;
    if (watchHang && !detected && Date.now() - lastProgressAt > window) {
      detected = 'hang';
      const note = `linkflow: no progress for ${Math.round((Date.now() - lastProgressAt) / 1000)} s during ${phase} (window ${(window / 1000).toFixed(1)} s); killing the process group`;
      remember(note);
      fs.appendFileSync(logFile, `${note}\n`);
      void proc.kill(0);
    }
  }, HEARTBEAT_EVERY_MS);
  ctx.cancelled.catch((err: unknown) => {
    cancelled = err instanceof CancelledFailure ? err : new CancelledFailure(String(err));
    void proc.kill();
  });

  let status: ExitStatus;
  try {
    status = await proc.exited;
  } finally {
    clearInterval(timer);
    // The trainer is gone: the next attempt need not wait.
    lease?.release();
  }
  // When the process ran, in the log itself: what the job cost, apart from what linkflow added around it.
  fs.appendFileSync(logFile, `# launched ${new Date(launchedAt).toISOString()}, exited ${new Date().toISOString()} (${status.signal ?? `exit code ${status.exitCode}`}) after ${((Date.now() - launchedAt) / 1000).toFixed(3)} s\n`);
  const details = (cls: FailureClass, reason: string, excerpt: string[]): AttemptFailureDetails => ({
    failureClass: cls,
    reason,
    excerpt,
    loadedIteration: loadedFrom,
    resumeNote,
    // Only the node that prints the training log knows the iteration.
    lastIteration: logsIterations(rank) ? progress.iteration : undefined,
    lastCheckpoint: progress.lastCheckpoint,
    logFile,
    timings: timingsOf(progress),
    node: rank?.node ?? nodeName(),
    nodeRank: rank?.nodeRank,
  });
  const where = rank ? ` (node rank ${rank.nodeRank} on ${rank.node})` : '';

  if (cancelled) {
    if (cancelled.message === 'CANCELLED') {
      fs.appendFileSync(logFile, 'linkflow: attempt cancelled; process group stopped\n');
      // Where the trainer got to (a stop with --exit-signal-handler saved it).
      throw new CancelledFailure('CANCELLED', [details('killed', 'cancelled', [])]);
    }
    // Not the user's cancel: the worker is shutting down (a node drain) or Temporal gave up on this
    // attempt. The trainer was stopped (with --exit-signal-handler it saved a last checkpoint first);
    // the workflow retries. Rethrowing the CancelledFailure would read as a cancelled pipeline.
    const cls: FailureClass = cancelled.message === 'WORKER_SHUTDOWN' ? 'killed' : 'node-lost';
    const reason = cancelled.message === 'WORKER_SHUTDOWN' ? 'the worker was shut down; the trainer was stopped with SIGTERM' : `Temporal ended the attempt (${cancelled.message}); the trainer was stopped`;
    fs.appendFileSync(logFile, `linkflow: ${reason}\n`);
    throw fail(cls, `stage ${stage.name} attempt ${attempt}${where}: ${reason}`, details(cls, reason, logLines().slice(-10)), true);
  }

  // A gang node's torchrun that got the drain's SIGTERM itself passes it to its workers, waits for them (they
  // save and exit 0 with --exit-signal-handler) and then dies of the signal, exit 1: the workers' end is what
  // counts. (On one node the classifier reads the same as `killed`.)
  const agentStoppedCleanly = (): boolean => {
    if (status.exitCode === 0 || !rank || !stoppingAllProcesses()) return false;
    const torchrun = readTorchrunReport(logLines());
    return torchrun.deathSignal !== undefined && torchrun.failures.length === 0;
  };
  if ((status.exitCode === 0 || agentStoppedCleanly()) && !detected) {
    const problem = verifyOutput(stage, progress, rank);
    if (!problem) {
      if (stage.evaluate && (!rank || rank.nodeRank === 0)) writeResults(stage, progress);
      return {
        loadedIteration: loadedFrom, resumeNote, finalIteration: progress.iteration, lastCheckpoint: progress.lastCheckpoint, evalResults: progress.evalResults, logFile, node: rank?.node ?? nodeName(),
        timings: timingsOf(progress),
        ...(samples ? { iterationSamples: samples } : {}),
      };
    }
    const drained = stoppingAllProcesses();
    // Only node 0 prints that it stopped; the others just exit 0 with it, which only a job that stops on SIGTERM does.
    const stopsOnSignal = argv.includes('--exit-signal-handler');
    const savedOnSignal = logLines().some((l) => SIGNAL_EXIT.test(l));
    // A single node that saved and stopped on SIGTERM (a drain, or a signal from outside linkflow) is
    // retried from that checkpoint, like a gang's node; it is not an evaluation that printed nothing.
    if (stage.training && (drained || savedOnSignal || (rank && stopsOnSignal))) {
      // A node of the gang was stopped (a drain): Megatron's exit signal handler stops every node
      // together, each exiting 0 after the same last checkpoint. The gang resumes from it.
      const saved = progress.lastCheckpoint?.iteration;
      const who = rank ? 'the gang' : 'the trainer';
      const reason = drained
        ? `this node was drained (SIGTERM to its worker); ${who} saved${saved !== undefined ? ` iteration ${saved}` : ''} and stopped`
        : rank
          ? `the gang stopped before the end because another node was stopped${saved !== undefined ? `; last checkpoint at iteration ${saved}` : ''}`
          : `the trainer received SIGTERM from outside linkflow and stopped${saved !== undefined ? ` after saving iteration ${saved}` : ''}`;
      fs.appendFileSync(logFile, `linkflow: ${reason}\n`);
      // A node that does not log iterations knows where the gang stopped from the checkpoint it saved.
      const reached = logsIterations(rank) ? progress.iteration : saved;
      throw fail('killed', `stage ${stage.name} attempt ${attempt}${where}: ${reason}`, { ...details('killed', reason, logLines().slice(-10)), lastIteration: reached, followsPeer: rank ? !drained : undefined }, true);
    }
    // Exit 0 without the output: ModelLink's evaluation swallows exceptions this way.
    const report = classifyFailure({ exitCode: 1, signal: null }, logLines());
    const cls: FailureClass = report.class === 'missing-input' ? 'missing-input' : 'no-result';
    const excerpt = report.class === 'missing-input' ? report.excerpt : logLines().slice(-20);
    throw fail(cls, `stage ${stage.name} attempt ${attempt}: ${problem}${cls === 'missing-input' ? `: ${report.reason}` : ''} (log: ${logFile})`, details(cls, problem, excerpt), false);
  }

  const report = classifyFailure(status, logLines(), detected, failureRules);
  const how = status.signal ? `killed by ${status.signal}` : `exit code ${status.exitCode}`;
  throw fail(
    report.class,
    `stage ${stage.name} attempt ${attempt}${where} failed (${report.class}, ${how}): ${report.reason}\n${report.excerpt.join('\n')}\n(log: ${logFile})`,
    details(report.class, report.reason, report.excerpt),
    report.retryable,
  );
}

/** What the watcher measured, for `linkflow advise`. */
function timingsOf(progress: AttemptProgress): AttemptTimings {
  return { startupMs: progress.startupMs, loadMs: progress.loadMs, saveMsTotal: progress.saveMsTotal, saves: progress.saves, msPerIteration: progress.elapsedMsPerIteration };
}

/** Exit code 0 is not proof: check the stage produced what it promised. */
function verifyOutput(stage: StagePlan, progress: AttemptProgress, rank: RankAssignment | undefined): string | undefined {
  if (stage.training?.measureOnly) {
    // Only the last node sees the iterations; the others' clean exit follows the gang's final barrier.
    if (!logsIterations(rank)) return undefined;
    return progress.iteration === stage.training.trainIters ? undefined : `the job exited at iteration ${progress.iteration ?? 'unknown'} before its ${stage.training.trainIters} iterations`;
  }
  if (stage.training) {
    if (outputPresent(stage)) return undefined;
    return `the trainer exited at iteration ${progress.iteration ?? 'unknown'} without a complete checkpoint at iteration ${stage.training.trainIters}`;
  }
  if (stage.evaluate) {
    // ModelLink's evaluation logs its results on rank 0 only; the other nodes' clean exit is enough.
    if (rank && rank.nodeRank !== 0) return undefined;
    const got = new Set((progress.evalResults ?? []).map((r) => r.task));
    const missing = stage.evaluate.tasks.filter((t) => !got.has(t));
    return missing.length > 0 ? `evaluation printed no result for ${missing.join(', ')}` : undefined;
  }
  return outputPresent(stage) ? undefined : `the stage exited 0 but its output ${stage.output} is missing`;
}

function writeResults(stage: StagePlan, progress: AttemptProgress): void {
  const tmp = `${stage.output}.tmp`;
  fs.mkdirSync(path.dirname(stage.output), { recursive: true });
  // Earlier results are kept beside the new ones, never overwritten.
  if (fs.existsSync(stage.output)) fs.renameSync(stage.output, stage.output.replace(/\.json$/, `.${timestamp()}.json`));
  fs.writeFileSync(tmp, JSON.stringify({ stage: stage.name, results: progress.evalResults ?? [], finishedAt: new Date().toISOString() }, null, 2) + '\n');
  fs.renameSync(tmp, stage.output);
}
