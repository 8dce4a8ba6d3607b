/**
 * Before the trainer starts: its inputs exist, the checkpoint it resumes from, its arguments and
 * environment, its launch (a gang rank's, or a free master port on this node) and the lease on its
 * save directory. Ends with the argv the attempt runs, written into its log.
 */
import { Context } from '@temporalio/activity';
import { CancelledFailure } from '@temporalio/common';
import fs from 'node:fs';
import path from 'node:path';
import type { AttemptResult } from '../../contracts/run-state.ts';
import { describeLayout, iterationDirName, shardDirNames, TRACKER_FILE } from '../../frameworks/modellink/checkpoint.ts';
import { missingShards, readTracker, warmOutputDir } from '../checkpoints.ts';
import { flattenArgs } from '../../frameworks/modellink/commands.ts';
import { launchForRank, launchOf, renderLaunch, withMasterPort, type Launch } from '../../frameworks/launch.ts';
import type { StagePlan } from '../../plan/plan.ts';
import { slurmLaunch } from '../../executors/slurm/plan.ts';
import { rankLaunch } from '../../executors/kubernetes/plan.ts';
import { deleteStageGangs } from '../../executors/kubernetes/io/gang.ts';
import { getFreePort } from '../../node/free-port.ts';
import { loadSetupEnv } from '../../node/setup-env.ts';
import { acquireLease, leaseFile, type HeldLease } from '../lease.ts';
import { dataFiles } from '../manifest.ts';
import { rewindTensorBoard, tensorboardDirOf } from '../tensorboard.ts';
import { logsIterations } from '../../plan/gang.ts';
import { nodeName } from '../node.ts';
import { fail, type AttemptInput } from './common.ts';
import { MissingSecretError, resolveSecrets, type ResolvedSecrets } from './secrets.ts';
import { MIN_MASKED_LENGTH, type Masker } from '../../node/mask.ts';
import { planResume } from './resume.ts';
import { linkHfView } from './hf-view.ts';

/** An attempt ready to launch. */
export interface PreparedAttempt {
  argv: string[];
  env: NodeJS.ProcessEnv;
  /** This attempt's launch: the gang rank's, or the planned one at a port free on this node. */
  launch: Launch;
  /** Held while the trainer may write the save directory. */
  lease?: HeldLease;
  /** The iteration the attempt resumes from. */
  loadedFrom?: number;
  /** Why it resumes from an older checkpoint than the newest. */
  resumeNote?: string;
  /** A LoRA warm restart counts from 0 again: the stage's iteration its count starts at. */
  iterationOffset?: number;
  /** Masks the stage's secrets out of its output and everything made from it. */
  masker: Masker;
  /** The stage's secrets by name: a Slurm job takes them from sbatch's environment. */
  secretEnv: Record<string, string>;
}

/** A stage that saves checkpoints: it resumes and holds its save directory's lease (a benchmark case saves nothing). */
function savesCheckpoints(stage: StagePlan): boolean {
  return stage.training !== undefined && !stage.training.measureOnly;
}

export async function prepareAttempt(ctx: Context, input: AttemptInput, logFile: string): Promise<{ done: AttemptResult } | { ready: PreparedAttempt }> {
  const { stage, saveInterval, rank } = input;
  checkInputs(stage, logFile);

  // A LoRA stage that resumed by warm restarts: its output is its newest warm folder's checkpoint.
  let args = stage.args.map(([f, v]): StagePlan['args'][number] => (f === '--lora-load' && typeof v === 'string' ? [f, warmOutputDir(v)] : [f, v]));
  if (saveInterval !== undefined && stage.training) args = args.map(([f, v]) => (f === '--save-interval' ? [f, String(saveInterval)] : [f, v]));
  if (stage.kind === 'preprocess') fs.mkdirSync(path.dirname(stage.output), { recursive: true });
  if (stage.hfView) linkHfView(stage.hfView);

  const secrets = secretsOrFail(stage, logFile);
  // A Slurm job sources the setup script on its nodes and takes its rendezvous from the allocation (executors/slurm/io/task.mjs);
  // its secrets travel in sbatch's own environment (never in a file), see executors/slurm/io/job.ts.
  // A Kubernetes rank likewise, in its pod; its secrets travel in a Secret the attempt creates (executors/kubernetes/io/gang.ts).
  const scheduled = stage.slurm !== undefined || stage.kubernetes !== undefined;
  const env = scheduled ? { ...stage.env } : { ...process.env, ...(stage.setupScript ? loadSetupEnv(stage.setupScript) : {}), ...stage.env, ...secrets.env };
  // A gang's rank 0 chose its port; a single-node job takes one free on this node now.
  const launch = stage.slurm
    ? slurmLaunch(launchOf(stage))
    : stage.kubernetes
      ? rankLaunch(launchOf(stage), stage.kubernetes.flavour)
      : rank
        ? launchForRank(launchOf(stage), rank)
        : withMasterPort(launchOf(stage), await getFreePort('0.0.0.0'));
  const lease = savesCheckpoints(stage) ? await takeLease(ctx, input, logFile) : undefined;
  // Under the lease: a trainer an earlier attempt left running has stopped writing, so the resume point and the
  // folder a restart saves into are chosen from what it left (planned before, a stale point could be saved over).
  const resume = savesCheckpoints(stage) ? releaseOnThrow(lease, () => planResume({ ...stage, args }, logFile, input.attempt)) : undefined;
  const { point } = resume ?? {};
  // A tracker torn or unreadable but a complete checkpoint at the end counts too (kind 'older'): relaunching would save over it.
  if (resume && point && point.kind !== 'none' && point.iteration === stage.training!.trainIters) {
    // Training already reached the end (the previous run stopped before its manifest): nothing to redo.
    // A gang that got there while no worker followed it is done too: it leaves nothing behind.
    try {
      if (stage.kubernetes) await deleteStageGangs({ pipeline: input.pipeline, stageName: stage.name, settings: stage.kubernetes, logFile });
    } finally {
      lease?.release();
    }
    const done = { loadedIteration: point.iteration, finalIteration: point.iteration, lastCheckpoint: { iteration: point.iteration, dir: point.dir } };
    return { done: { ...done, logFile, node: rank?.node ?? nodeName() } };
  }
  if (resume) args = resume.args;
  const iterationOffset = resume?.iterationOffset;
  const loadedFrom = point && point.kind !== 'none' && point.iteration !== 'release' ? point.iteration : undefined;
  const resumeNote = point?.kind === 'older' ? point.reason : resume?.warmRestart;
  if (saveInterval !== undefined && stage.training) args = args.map(([f, v]) => (f === '--save-interval' ? [f, String(saveInterval)] : [f, v]));
  const argv = [...renderLaunch(launch), stage.entrypoint, ...flattenArgs(args)];
  // Under the lease: no other trainer of this stage writes events now. Only the node that logs iterations writes them.
  const tensorboardDir = tensorboardDirOf(stage);
  const rewound =
    savesCheckpoints(stage) && logsIterations(rank) && tensorboardDir ? releaseOnThrow(lease, () => rewindTensorBoard(tensorboardDir, loadedFrom ?? 0)) : [];
  const notes = [
    `# cwd: ${stage.cwd}`,
    `# argv: ${JSON.stringify(argv)}`,
    ...secretNotes(stage, secrets.unmasked),
    ...(resumeNote ? [`# ${resumeNote}`] : []),
    ...rewound,
  ];
  // A secret passed in args by mistake is masked in the argv line too.
  releaseOnThrow(lease, () => fs.appendFileSync(logFile, notes.map((n) => `${secrets.masker.mask(n)}\n`).join('')));
  return { ready: { argv, env, launch, lease, loadedFrom, resumeNote, iterationOffset, masker: secrets.masker, secretEnv: secrets.env } };
}

/** A secret missing on this worker fails the stage at once (no retry finds it), naming the spec field. */
function secretsOrFail(stage: StagePlan, logFile: string): ResolvedSecrets {
  try {
    return resolveSecrets(stage);
  } catch (e) {
    if (!(e instanceof MissingSecretError)) throw e;
    fs.appendFileSync(logFile, `linkflow: ${e.message}\n`);
    throw fail(
      'missing-input',
      `stage ${stage.name}: ${e.message}`,
      { failureClass: 'missing-input', reason: e.message, excerpt: [e.message], logFile },
      false,
    );
  }
}

/** The log says which secrets the trainer got (names only) and which are too short to be masked. */
function secretNotes(stage: StagePlan, unmasked: string[]): string[] {
  const names = (stage.secretEnv ?? []).map((s) => s.name);
  if (names.length === 0) return [];
  return [
    `# secrets: ${names.join(', ')} (values masked as ***)`,
    ...(unmasked.length > 0 ? [`# not masked, shorter than ${MIN_MASKED_LENGTH} characters: ${unmasked.join(', ')}`] : []),
  ];
}

/** Until the process runs, any throw must give the lease back, or the next attempt waits out its TTL. */
export function releaseOnThrow<T>(lease: HeldLease | undefined, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    lease?.release();
    throw e;
  }
}

/** One trainer per save directory: wait out a lease another attempt may still be using. */
async function takeLease(ctx: Context, { pipeline, stage, attempt, rank }: AttemptInput, logFile: string): Promise<HeldLease> {
  const ttl = ctx.info.heartbeatTimeoutMs ?? 60_000;
  const owner = `${ctx.info.workflowExecution?.workflowId ?? pipeline}/${ctx.info.workflowExecution?.runId ?? ctx.info.activityId}/attempt-${attempt}${rank ? `/rank-${rank.nodeRank}` : ''}`;
  const taken = await acquireLease(
    stage.dir,
    owner,
    ttl,
    (held) => {
      if (ctx.cancellationSignal.aborted) {
        const why = ctx.cancellationSignal.reason;
        // Only the user's cancel is a cancellation; a worker shutdown or timeout is a retryable end of the attempt.
        if (why instanceof CancelledFailure && why.message === 'CANCELLED') throw why;
        const reason = `stopped while waiting for the save directory lease (${why instanceof Error ? why.message : String(why)})`;
        throw fail('killed', `stage ${stage.name} attempt ${attempt}: ${reason}`, { failureClass: 'killed', reason, excerpt: [], logFile }, true);
      }
      ctx.heartbeat({ stage: stage.name, attempt, logFile, waitingForLease: held.owner });
    },
    leaseFile(rank?.nodeRank),
  );
  if (taken.waitedFor)
    fs.appendFileSync(
      logFile,
      `# waited for the lease of ${taken.waitedFor.owner} (host ${taken.waitedFor.host}, pid ${taken.waitedFor.pid}) to lapse before launching\n`,
    );
  return taken.lease;
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
        const present = fs.existsSync(iterDir)
          ? fs
              .readdirSync(iterDir)
              .filter((d) => d.startsWith('mp_rank_'))
              .sort()
          : [];
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
      throw fail(
        'missing-input',
        `stage ${stage.name}: missing input: ${reason}`,
        { failureClass: 'missing-input', reason, excerpt: [reason], logFile },
        false,
      );
    }
  }
}
