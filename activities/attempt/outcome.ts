/**
 * After the trainer exits: what the attempt amounts to. A cancellation or a worker shutdown; a clean
 * exit whose output is checked (or a stop on SIGTERM, to resume from its last save); or a failure,
 * classified from the log, with the excerpt that shows why.
 */
import { CancelledFailure, type ApplicationFailure } from '@temporalio/common';
import fs from 'node:fs';
import path from 'node:path';
import type { AttemptFailureDetails, AttemptResult, AttemptTimings } from '../../contracts/run-state.ts';
import { classifyFailure, readTorchrunReport, type Evidence, type FailureClass } from '../../failures/failures.ts';
import { logsIterations, type RankAssignment } from '../../plan/gang.ts';
import type { StagePlan } from '../../plan/plan.ts';
import { jobEnding } from '../../executors/slurm/plan.ts';
import type { AttemptProgress } from '../../frameworks/modellink/training-log.ts';
import { stoppingAllProcesses } from '../../executors/nodes/io/process-group.ts';
import { outputPresent } from '../manifest.ts';
import { nodeName } from '../node.ts';
import { fail, timestamp, type AttemptInput } from './common.ts';
import type { PreparedAttempt } from './prepare.ts';
import type { SlurmJobEnd } from '../../executors/slurm/io/job.ts';
import type { KubernetesGangEnd } from '../../executors/kubernetes/io/gang.ts';
import type { WatchedAttempt } from './watch.ts';

/**
 * Megatron's exit signal handler saying it saved and stopped on SIGTERM (ModelLink
 * modellink/training/training.py train(): print_datetime('exiting program after receiving SIGTERM.')).
 * High availability prints nothing of the kind in any public source, so it is not matched.
 */
const SIGNAL_EXIT = /exiting program after receiving SIGTERM/;

/** Everything the outcome is decided from. */
interface Ended {
  input: AttemptInput;
  logFile: string;
  prepared: PreparedAttempt;
  watched: WatchedAttempt;
  /** " (node rank k on NODE)" for a gang's rank. */
  where: string;
  details: (cls: FailureClass, reason: string, excerpt: string[], evidence?: Evidence) => AttemptFailureDetails;
}

/** An iteration of the trainer's log in the stage's count: a LoRA warm restart counts from 0 again. */
function shifted(iteration: number | undefined, prepared: PreparedAttempt): number | undefined {
  return iteration === undefined ? undefined : iteration + (prepared.iterationOffset ?? 0);
}

/** The attempt's result, or the failure it throws. */
export function attemptOutcome(input: AttemptInput, attemptLog: string, prepared: PreparedAttempt, watched: WatchedAttempt): AttemptResult {
  // An adopted Slurm job (its worker died) wrote its output into the earlier attempt's log: that is the log to name.
  const logFile = watched.slurm?.logFile ?? attemptLog;
  const { rank } = input;
  const { progress } = watched;
  // A Slurm job ran on its allocation's nodes; a node worker's attempt on the worker's node.
  const node = rank?.node ?? scheduledNodes(watched) ?? nodeName();
  const ended: Ended = {
    input,
    logFile,
    prepared,
    watched,
    where: rank ? ` (node rank ${rank.nodeRank} on ${rank.node})` : '',
    details: (cls, reason, excerpt, evidence) => ({
      failureClass: cls,
      ...(evidence ? { evidence } : {}),
      reason,
      excerpt,
      loadedIteration: prepared.loadedFrom,
      resumeNote: prepared.resumeNote,
      // Only the node that prints the training log knows the iteration.
      lastIteration: logsIterations(rank) ? shifted(progress.iteration, prepared) : undefined,
      lastCheckpoint: progress.lastCheckpoint && { ...progress.lastCheckpoint, iteration: shifted(progress.lastCheckpoint.iteration, prepared)! },
      logFile,
      timings: timingsOf(progress),
      node,
      nodeRank: rank?.nodeRank,
    }),
  };
  if (watched.cancelled) throw cancelledFailure(ended, watched.cancelled);
  const slurm = watched.slurm && slurmEnding(ended, watched.slurm);
  if (slurm) throw slurm;
  const kubernetes = watched.kubernetes && kubernetesEnding(ended, watched.kubernetes);
  if (kubernetes) throw kubernetes;
  if ((watched.status.exitCode === 0 || agentStoppedCleanly(ended)) && !watched.detected) return cleanExit(ended);
  throw classifiedFailure(ended);
}

function cancelledFailure({ input, logFile, watched, where, details }: Ended, cancelled: CancelledFailure): CancelledFailure | ApplicationFailure {
  if (cancelled.message === 'CANCELLED') {
    fs.appendFileSync(logFile, 'linkflow: attempt cancelled; process group stopped\n');
    // Where the trainer got to (a stop with --exit-signal-handler saved it).
    return new CancelledFailure('CANCELLED', [details('killed', 'cancelled', [])]);
  }
  // Not the user's cancel: the worker is shutting down (a node drain) or Temporal gave up on this
  // attempt. The trainer was stopped (with --exit-signal-handler it saved a last checkpoint first);
  // the workflow retries. Rethrowing the CancelledFailure would read as a cancelled pipeline.
  const cls: FailureClass = cancelled.message === 'WORKER_SHUTDOWN' ? 'killed' : 'node-lost';
  const reason =
    cancelled.message === 'WORKER_SHUTDOWN'
      ? 'the worker was shut down; the trainer was stopped with SIGTERM'
      : `Temporal ended the attempt (${cancelled.message}); the trainer was stopped`;
  fs.appendFileSync(logFile, `linkflow: ${reason}\n`);
  return fail(cls, `stage ${input.stage.name} attempt ${input.attempt}${where}: ${reason}`, details(cls, reason, watched.logLines().slice(-10)), true);
}

/**
 * A gang node's torchrun that got the drain's SIGTERM itself passes it to its workers, waits for them (they
 * save and exit 0 with --exit-signal-handler) and then dies of the signal, exit 1: the workers' end is what
 * counts. (On one node the classifier reads the same as `killed`.)
 */
function agentStoppedCleanly({ input, watched }: Ended): boolean {
  if (watched.status.exitCode === 0 || !input.rank || !stoppingAllProcesses()) return false;
  const torchrun = readTorchrunReport(watched.logLines());
  return torchrun.deathSignal !== undefined && torchrun.failures.length === 0;
}

/** A clean exit: the output is checked; without it, a stop on SIGTERM resumes, anything else found no result. */
function cleanExit(ended: Ended): AttemptResult {
  const {
    input: { stage, attempt, rank },
    logFile,
    prepared,
    watched: { progress, samples, logLines },
    details,
  } = ended;
  const problem = verifyOutput(stage, progress, rank);
  if (!problem) {
    if (stage.evaluate && (!rank || rank.nodeRank === 0)) writeResults(stage, progress);
    return {
      loadedIteration: prepared.loadedFrom,
      resumeNote: prepared.resumeNote,
      finalIteration: shifted(progress.iteration, prepared),
      lastCheckpoint: progress.lastCheckpoint && { ...progress.lastCheckpoint, iteration: shifted(progress.lastCheckpoint.iteration, prepared)! },
      evalResults: progress.evalResults,
      logFile,
      node: rank?.node ?? scheduledNodes(ended.watched) ?? nodeName(),
      timings: timingsOf(progress),
      ...(samples ? { iterationSamples: samples } : {}),
    };
  }
  const stopped = stoppedOnSignal(ended);
  if (stopped) throw stopped;
  // Exit 0 without the output: ModelLink's evaluation swallows exceptions this way.
  const report = classifyFailure({ exitCode: 1, signal: null }, logLines());
  const cls: FailureClass = report.class === 'missing-input' ? 'missing-input' : 'no-result';
  const excerpt = report.class === 'missing-input' ? report.excerpt : logLines().slice(-20);
  throw fail(
    cls,
    `stage ${stage.name} attempt ${attempt}: ${problem}${cls === 'missing-input' ? `: ${report.reason}` : ''} (log: ${logFile})`,
    details(cls, problem, excerpt),
    false,
  );
}

/**
 * A trainer that saved and stopped on SIGTERM before the end (a drain, a gang's peer stopped, a signal
 * from outside linkflow): a retryable `killed` that resumes from that checkpoint, like a gang's node;
 * not an evaluation that printed nothing.
 */
function stoppedOnSignal({
  input: { stage, attempt, rank },
  logFile,
  prepared,
  watched: { progress, logLines },
  where,
  details,
}: Ended): ApplicationFailure | undefined {
  const drained = stoppingAllProcesses();
  // Only node 0 prints that it stopped; the others just exit 0 with it, which only a job that stops on SIGTERM does.
  const stopsOnSignal = prepared.argv.includes('--exit-signal-handler');
  const savedOnSignal = logLines().some((l) => SIGNAL_EXIT.test(l));
  if (!(stage.training && (drained || savedOnSignal || (rank && stopsOnSignal)))) return undefined;
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
  return fail(
    'killed',
    `stage ${stage.name} attempt ${attempt}${where}: ${reason}`,
    { ...details('killed', reason, logLines().slice(-10)), lastIteration: reached, followsPeer: rank ? !drained : undefined },
    true,
  );
}

/**
 * A Slurm job whose ending Slurm explains (NODE_FAIL, TIMEOUT, PREEMPTED, OUT_OF_MEMORY, a cancel
 * from outside): that class, with the node that failed. A job's own exit is classified from its log
 * as on node workers (undefined here).
 */
function slurmEnding({ input: { stage, attempt }, logFile, watched, details }: Ended, end: SlurmJobEnd): ApplicationFailure | undefined {
  const ending = jobEnding(end.info ?? { state: 'UNKNOWN' }, end.stoppedByUs);
  if (ending.kind === 'exit') return undefined;
  const failed = end.failedNodes[0];
  const reason = `${ending.reason}${failed ? ` (node ${failed})` : ''}; Slurm job ${end.jobId}${end.nodes.length ? ` on ${end.nodes.join(', ')}` : ''}`;
  fs.appendFileSync(logFile, `linkflow: ${reason}\n`);
  const excerpt = watched.logLines().slice(-10);
  return fail(
    ending.class,
    `stage ${stage.name} attempt ${attempt} failed (${ending.class}): ${reason}\n${excerpt.join('\n')}\n(log: ${logFile})`,
    { ...details(ending.class, reason, excerpt), ...(failed ? { node: failed } : {}) },
    true,
  );
}

/** Where a Slurm job or a Kubernetes gang ran: its nodes. */
function scheduledNodes(watched: WatchedAttempt): string | undefined {
  const nodes = watched.slurm?.nodes ?? watched.kubernetes?.nodes;
  return nodes?.length ? nodes.join(',') : undefined;
}

/**
 * A gang whose ending the API explains (a node lost under a rank, a preemption or eviction, the
 * deadline, OOMKilled, an image that cannot be pulled): that class, with the node to blame (left out
 * of the retry). A rank's own exit is classified from the log as on node workers (undefined here).
 */
function kubernetesEnding({ input: { stage, attempt }, logFile, watched, details }: Ended, end: KubernetesGangEnd): ApplicationFailure | undefined {
  if (end.ending.kind === 'exit') return undefined;
  const { class: cls, reason: why, retryable, node } = end.ending;
  const reason = `${why}; Kubernetes gang ${end.namespace}/${end.name}${end.nodes.length ? ` on ${end.nodes.join(', ')}` : ''}`;
  fs.appendFileSync(logFile, `linkflow: ${reason}\n`);
  const excerpt = watched.logLines().slice(-10);
  return fail(
    cls,
    `stage ${stage.name} attempt ${attempt} failed (${cls}${retryable ? '' : ', not retried'}): ${reason}\n${excerpt.join('\n')}\n(log: ${logFile})`,
    { ...details(cls, reason, excerpt), ...(node ? { node } : {}) },
    retryable,
  );
}

/** A failed exit (or one the watcher caused), classified from the log. */
function classifiedFailure(ended: Ended): ApplicationFailure {
  const {
    input: { stage, attempt },
    logFile,
    watched: { status, logLines, detected, failureRules },
    where,
    details,
  } = ended;
  const report = gangRootCause(ended) ?? classifyFailure(status, logLines(), detected, failureRules);
  const how = status.signal ? `killed by ${status.signal}` : `exit code ${status.exitCode}`;
  return fail(
    report.class,
    `stage ${stage.name} attempt ${attempt}${where} failed (${report.class}, ${how}): ${report.reason}\n${report.excerpt.join('\n')}\n(log: ${logFile})`,
    details(report.class, report.reason, report.excerpt, report.evidence),
    report.retryable,
  );
}

/**
 * A gang on Kubernetes: each rank that failed on its own is classified from its own lines, first to
 * fail first; the root cause is the first rank's own error (not a peer's echo: an HCCL error or a
 * collective watchdog's timeout after another rank failed), then the first that is no echo (pods often
 * end within the same second, so the order alone cannot tell; plan/gang.ts decides node gangs alike).
 */
function gangRootCause({ watched: { status, detected, failureRules, kubernetes } }: Ended): ReturnType<typeof classifyFailure> | undefined {
  if (detected || !kubernetes?.failedRanks?.length) return undefined;
  const reports = kubernetes.failedRanks.map((r) => classifyFailure(status, r.lines, undefined, failureRules));
  return reports.find((r) => r.evidence !== 'echo' && r.class !== 'communication') ?? reports.find((r) => r.evidence !== 'echo') ?? reports[0];
}

/** What the watcher measured, for `linkflow advise`. */
function timingsOf(progress: AttemptProgress): AttemptTimings {
  return {
    startupMs: progress.startupMs,
    loadMs: progress.loadMs,
    saveMsTotal: progress.saveMsTotal,
    saves: progress.saves,
    msPerIteration: progress.elapsedMsPerIteration,
  };
}

/** Exit code 0 is not proof: check the stage produced what it promised. */
function verifyOutput(stage: StagePlan, progress: AttemptProgress, rank: RankAssignment | undefined): string | undefined {
  if (stage.training?.measureOnly) {
    // Only the last node sees the iterations; the others' clean exit follows the gang's final barrier.
    if (!logsIterations(rank)) return undefined;
    return progress.iteration === stage.training.trainIters
      ? undefined
      : `the job exited at iteration ${progress.iteration ?? 'unknown'} before its ${stage.training.trainIters} iterations`;
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
