/**
 * A pipeline: its stages in order. A stage whose manifest still matches is skipped, so running a
 * failed pipeline again resumes it. Each stage is a loop of attempts: an attempt that fails for a
 * transient reason is retried after a backoff and resumes from the newest complete checkpoint;
 * one that fails deterministically fails the pipeline with the log excerpt that shows why.
 */
import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  CancelledFailure,
  ContinueAsNew,
  TimeoutFailure,
  continueAsNew,
  defineQuery,
  defineSignal,
  isCancellation,
  proxyActivities,
  setHandler,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import type * as activities from '../activities/index.ts';
// Pure data, no Node imports: safe inside the workflow sandbox.
import { INFRASTRUCTURE, type FailureClass } from '../modellink/failures.ts';
import { autoSaveInterval } from '../modellink/advise.ts';
import { chooseNodes, launchesAcrossNodes, mergeRankResults, nodeQueue, nodesOf, rootCauseRank, type RankAssignment } from '../modellink/gang.ts';
import type { PipelinePlan, StagePlan } from '../modellink/plan.ts';
import type { AttemptFailureDetails, AttemptRecord, AttemptResult, PipelineInput, PipelineState, RetrySettingsInput, StageState } from '../modellink/run-state.ts';

export const progressQuery = defineQuery<PipelineState>('progress');
/** Checkpoint now and stop: the running training attempt is sent SIGTERM (Megatron saves with --exit-signal-handler or high availability); the pipeline ends as stopped and a rerun resumes it. */
export const checkpointAndStopSignal = defineSignal('checkpointAndStop');
/** A new save interval for training attempts, from the next attempt on. */
export const setSaveIntervalSignal = defineSignal<[number]>('setSaveInterval');

/** The running attempt's scope, so a stop can cancel just the attempt. */
interface AttemptControl {
  scope?: CancellationScope;
}

const bookkeeping = proxyActivities<typeof activities>({
  startToCloseTimeout: '10 minutes',
  retry: { maximumAttempts: 10, initialInterval: '2s' },
});

export async function pipelineWorkflow({ plan, retry, continuation }: PipelineInput): Promise<PipelineState> {
  const state: PipelineState = continuation?.state ?? {
    pipeline: plan.name,
    status: 'running',
    stages: plan.stages.map((s) => ({ name: s.name, kind: s.kind, status: 'pending', output: s.output, attempts: [], trainIters: s.training?.trainIters, saveInterval: s.training?.saveInterval })),
  };
  setHandler(progressQuery, () => state);
  const control: AttemptControl = {};
  setHandler(checkpointAndStopSignal, () => {
    state.stopRequested = true;
    control.scope?.cancel();
  });
  setHandler(setSaveIntervalSignal, (interval) => {
    if (Number.isInteger(interval) && interval > 0) state.saveInterval = interval;
  });

  const fingerprints: Record<string, string> = { ...continuation?.fingerprints };
  let stopped = false;
  try {
    for (let i = continuation?.stageIndex ?? 0; i < plan.stages.length; i++) {
      const stage = plan.stages[i];
      const s = state.stages[i];
      state.currentStage = stage.name;
      let fingerprint: string;
      let failures = { code: 0, infrastructure: 0 };
      if (continuation && i === continuation.stageIndex) {
        // The previous run was in the middle of this stage: go on with its attempts and budgets.
        fingerprint = continuation.stageFingerprint;
        failures = { ...continuation.failures };
      } else {
        s.status = 'checking';
        const upstream = Object.fromEntries(stage.inputs.filter((x) => x.fromStage).map((x) => [x.fromStage!, fingerprints[x.fromStage!]]));
        const check = await bookkeeping.checkStage({ stage, upstream });
        fingerprints[stage.name] = check.fingerprint;
        s.note = check.reason;
        if (check.upToDate) {
          s.status = 'skipped';
          continue;
        }
        fingerprint = check.fingerprint;
      }
      if (state.stopRequested) {
        s.status = 'stopped';
        s.note = 'not started: the pipeline was asked to stop';
        stopped = true;
        break;
      }
      const outcome = await runStage(plan, stage, s, retry, failures, state, control);
      if (outcome === 'stopped') {
        stopped = true;
        break;
      }
      if (outcome === 'continue-as-new') {
        // History stays bounded on long runs: the next run takes over this stage with its attempt log.
        await continueAsNew<typeof pipelineWorkflow>({ plan, retry, continuation: { state, fingerprints, stageIndex: i, stageFingerprint: fingerprint, failures } });
      }
      await bookkeeping.writeManifest({ pipeline: plan.name, stage, fingerprint, finalIteration: s.finalIteration });
      s.status = 'succeeded';
    }
    state.currentStage = undefined;
    // A stop that came after the last stage finished stops nothing.
    state.status = stopped ? 'stopped' : 'succeeded';
    return state;
  } catch (err) {
    if (err instanceof ContinueAsNew) throw err;
    if (isCancellation(err)) {
      state.status = 'cancelled';
      throw err;
    }
    state.status = 'failed';
    // The failure carries the whole state, so `linkflow status` can show every stage of a failed pipeline.
    throw ApplicationFailure.create({ type: 'PipelineFailed', nonRetryable: true, message: err instanceof Error ? err.message : String(err), details: [state] });
  }
}

/** The attempt activity, on the pool's queue or on one node's queue. */
function attemptActivities(retry: RetrySettingsInput, taskQueue?: string) {
  return proxyActivities<typeof activities>({
    taskQueue,
    startToCloseTimeout: retry.startToCloseTimeoutMs,
    heartbeatTimeout: retry.heartbeatTimeoutMs,
    // Retries are this loop's: each attempt re-reads the checkpoints and is recorded.
    retry: { maximumAttempts: 1 },
    // Cancelling waits until the activity has killed the process group.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  });
}

/** Asks a node's worker about itself; a node that does not answer within seconds is not up. */
async function probeNode(pool: string, node: string, reservePort = false) {
  const { nodeInfo } = proxyActivities<typeof activities>({ taskQueue: nodeQueue(pool, node), scheduleToCloseTimeout: '15s', retry: { maximumAttempts: 1 } });
  try {
    return await nodeInfo({ reservePort });
  } catch (err) {
    if (isCancellation(err)) throw err;
    return undefined;
  }
}

const PLACEMENT_RETRY = '15s';

interface GangPlacement {
  /** Rank k runs on nodes[k]. */
  nodes: string[];
  masterAddr: string;
  masterPort: number;
}

/** Nodes for one attempt of a gang: the named hosts or free workers of the pool, and rank 0's address and a free port. */
async function placeGang(plan: PipelinePlan, stage: StagePlan, pool: string, s: StageState): Promise<GangPlacement> {
  // A stage may span fewer nodes than the job (evaluation runs tp × pp ranks): the first hosts.
  const count = nodesOf(stage.launcher);
  const hosts = plan.hosts?.slice(0, count);
  for (;;) {
    const candidates = hosts ?? (await bookkeeping.poolNodes({ pool }));
    const answers = await Promise.all(candidates.map((node) => probeNode(pool, node)));
    const free = answers.filter((a) => a !== undefined && a.running === 0).map((a) => a!.node);
    const choice = chooseNodes({ hosts, count }, free);
    if ('nodes' in choice) {
      const master = await probeNode(pool, choice.nodes[0], true);
      if (master?.port !== undefined) return { nodes: choice.nodes, masterAddr: master.address, masterPort: master.port };
    }
    s.status = 'waiting-for-nodes';
    s.note = `waiting for ${count} nodes in pool ${pool}: ${'missing' in choice ? choice.missing : `node ${choice.nodes[0]} did not answer`}`;
    await sleep(PLACEMENT_RETRY);
  }
}

async function runStage(plan: PipelinePlan, stage: StagePlan, s: StageState, retry: RetrySettingsInput, failures: { code: number; infrastructure: number }, pipelineState: PipelineState, control: AttemptControl): Promise<'done' | 'continue-as-new' | 'stopped'> {
  const pipeline = plan.name;
  const { runStageAttempt } = attemptActivities(retry);
  const pool = plan.taskQueue ?? workflowInfo().taskQueue;
  const gang = launchesAcrossNodes(stage.launcher);
  // Two budgets: faults of the machines never use up the retries meant for errors of the job.
  const budget = { code: stage.maxAttempts ?? retry.maximumAttempts, infrastructure: retry.infrastructureAttempts };
  let attemptsThisRun = 0;
  for (let attempt = s.attempts.length + 1; ; attempt++) {
    attemptsThisRun++;
    s.status = 'running';
    const previous = s.attempts.at(-1);
    const recomputed = (loaded: number | undefined) =>
      previous?.lastIteration !== undefined && loaded !== undefined ? Math.max(0, previous.lastIteration - loaded) : undefined;
    const startedAt = Date.now(); // workflow time: deterministic
    const placed: GangOutcome = {};
    try {
      const scope = new CancellationScope();
      control.scope = scope;
      // A signalled save interval wins over one linkflow chose itself.
      const saveInterval = stage.training ? pipelineState.saveInterval ?? (s.saveInterval !== stage.training.saveInterval ? s.saveInterval : undefined) : undefined;
      const input = { pipeline, stage, attempt, saveInterval };
      const result = await scope.run(() => (gang ? runGangAttempt(plan, pool, s, retry, input, placed) : runStageAttempt(input)));
      s.attempts.push({ attempt, outcome: 'succeeded', startedAt, endedAt: Date.now(), timings: result.timings, loadedIteration: result.loadedIteration, resumeNote: result.resumeNote, lastIteration: result.finalIteration, recomputed: recomputed(result.loadedIteration), logFile: result.logFile, nodes: placed.nodes });
      s.finalIteration = result.finalIteration;
      s.lastCheckpoint = result.lastCheckpoint ?? s.lastCheckpoint;
      s.evalResults = result.evalResults;
      return 'done';
    } catch (err) {
      if (isCancellation(err)) {
        if (pipelineState.stopRequested && !CancellationScope.current().consideredCancelled) {
          const d = (err instanceof ActivityFailure && err.cause instanceof CancelledFailure ? err.cause.details?.[0] : undefined) as AttemptFailureDetails | undefined;
          s.attempts.push({ attempt, outcome: 'stopped', loadedIteration: d?.loadedIteration, lastIteration: d?.lastIteration, logFile: d?.logFile });
          if (d?.lastIteration !== undefined) s.finalIteration = d.lastIteration;
          s.status = 'stopped';
          s.note = 'stopped on request (checkpointAndStop); run the pipeline again to resume';
          return 'stopped';
        }
        s.attempts.push({ attempt, outcome: 'cancelled' });
        s.status = 'cancelled';
        throw err;
      }
      const record = attemptFailure(attempt, err);
      record.nodes = placed.nodes;
      record.failedNode = placed.failedNode;
      if (placed.lastIteration !== undefined) record.lastIteration = Math.max(record.lastIteration ?? 0, placed.lastIteration);
      record.recomputed = recomputed(record.loadedIteration);
      record.startedAt = startedAt;
      record.endedAt = Date.now();
      s.attempts.push(record);
      if (record.lastIteration !== undefined) s.finalIteration = record.lastIteration;
      const group = INFRASTRUCTURE.has(record.failureClass ?? 'unknown') ? 'infrastructure' : 'code';
      failures[group]++;
      const retryable = isRetryable(err);
      if (!retryable || failures[group] >= budget[group]) {
        s.status = 'failed';
        const spent = `${failures[group]} ${group === 'code' ? 'job' : 'infrastructure'} failure${failures[group] === 1 ? '' : 's'}`;
        s.note = retryable ? `gave up after ${spent}; last: ${record.reason}` : `${record.failureClass}: ${record.reason}`;
        throw ApplicationFailure.create({
          type: 'StageFailed',
          nonRetryable: true,
          message: `stage ${stage.name} failed (${record.failureClass}${retryable ? `, after ${spent}` : ', not retried'}): ${record.reason}` +
            (record.excerpt?.length ? `\n--- log excerpt (${record.logFile ?? 'no log'}) ---\n${record.excerpt.join('\n')}` : ''),
          details: [{ stage: stage.name, failureClass: record.failureClass, excerpt: record.excerpt ?? [], logFile: record.logFile }],
        });
      }
      if (stage.training?.autoSaveInterval && pipelineState.saveInterval === undefined) {
        const advice = autoSaveInterval(s, stage.training.trainIters);
        if (advice) {
          s.saveInterval = advice.interval;
          record.saveIntervalAdvice = advice.reason;
        }
      }
      s.status = 'retrying';
      await sleep(backoffMs(retry, group, failures[group]));
      if (pipelineState.stopRequested) {
        // Asked to stop during the backoff: no further attempt (the failed one saved what it could).
        s.status = 'stopped';
        s.note = 'stopped on request (checkpointAndStop) between attempts; run the pipeline again to resume';
        return 'stopped';
      }
      if (workflowInfo().continueAsNewSuggested || attemptsThisRun >= retry.continueAsNewAfterAttempts) return 'continue-as-new';
    }
  }
}

interface GangOutcome {
  nodes?: string[];
  failedNode?: string;
  lastIteration?: number;
}

type RankOutcome = { nodeRank: number; node: string } & ({ result: AttemptResult } | { error: unknown });

/**
 * One attempt of a gang: every node rank at once, all pointed at rank 0's address and port. When
 * one rank fails the others are cancelled (their process groups killed) instead of waiting out a
 * collective's timeout, and the rank that explains the failure is the one reported.
 */
async function runGangAttempt(plan: PipelinePlan, pool: string, s: StageState, retry: RetrySettingsInput, input: { pipeline: string; stage: StagePlan; attempt: number; saveInterval?: number }, placed: GangOutcome): Promise<AttemptResult> {
  const placement = await placeGang(plan, input.stage, pool, s);
  placed.nodes = placement.nodes;
  s.status = 'running';
  s.note = `node ranks on ${placement.nodes.join(', ')}; master ${placement.masterAddr}:${placement.masterPort}`;
  const gangScope = new CancellationScope();
  const outcomes = await gangScope.run(() =>
    Promise.all(
      placement.nodes.map((node, nodeRank): Promise<RankOutcome> => {
        const rank: RankAssignment = { nodeRank, nodes: placement.nodes.length, node, masterAddr: placement.masterAddr, masterPort: placement.masterPort };
        return attemptActivities(retry, nodeQueue(pool, node))
          .runStageAttempt({ ...input, rank })
          .then(
            (result) => ({ nodeRank, node, result }),
            (error: unknown) => {
              if (!isCancellation(error)) gangScope.cancel();
              return { nodeRank, node, error };
            },
          );
      }),
    ),
  );
  const errors = outcomes.flatMap((o) => {
    if (!('error' in o)) return [];
    const cause = o.error instanceof ActivityFailure ? o.error.cause : o.error;
    const details = (cause instanceof ApplicationFailure || cause instanceof CancelledFailure ? cause.details?.[0] : undefined) as AttemptFailureDetails | undefined;
    return [{ ...o, failureClass: attemptFailure(input.attempt, o.error).failureClass ?? 'unknown', followsPeer: details?.followsPeer, lastIteration: details?.lastIteration }];
  });
  // Only the last node logs iterations: the gang got as far as it says, whichever rank is blamed.
  const reached = errors.map((e) => e.lastIteration).filter((x): x is number => x !== undefined);
  if (reached.length > 0) placed.lastIteration = Math.max(...reached);
  const failed = errors.filter((o) => !isCancellation(o.error));
  if (failed.length > 0) {
    const root = rootCauseRank(failed)!;
    placed.failedNode = root.node;
    throw root.error;
  }
  // Cancelled from outside (stop or cancel): the last node's error knows the iteration it reached.
  if (errors.length > 0) throw errors.at(-1)!.error;
  return mergeRankResults(outcomes.map((o) => (o as { result: AttemptResult }).result));
}

function backoffMs(retry: RetrySettingsInput, group: 'code' | 'infrastructure', failures: number): number {
  const initial = group === 'code' ? retry.initialIntervalMs : retry.infrastructureInitialIntervalMs;
  return Math.min(retry.maximumIntervalMs, initial * Math.pow(retry.backoffCoefficient, failures - 1));
}

function isRetryable(err: unknown): boolean {
  if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) return !err.cause.nonRetryable;
  return true;
}

function attemptFailure(attempt: number, err: unknown): AttemptRecord {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  if (cause instanceof ApplicationFailure) {
    const d = cause.details?.[0] as AttemptFailureDetails | undefined;
    return {
      attempt,
      outcome: 'failed',
      failureClass: (d?.failureClass ?? cause.type ?? 'unknown') as FailureClass,
      reason: d?.reason ?? cause.message,
      excerpt: d?.excerpt,
      loadedIteration: d?.loadedIteration,
      resumeNote: d?.resumeNote,
      lastIteration: d?.lastIteration,
      logFile: d?.logFile,
      timings: d?.timings,
    };
  }
  if (cause instanceof TimeoutFailure) {
    if (cause.timeoutType === 'HEARTBEAT') {
      // Heartbeats stopped: the worker (or its node) died; the next attempt runs on a live worker.
      return { attempt, outcome: 'failed', failureClass: 'node-lost', reason: 'the worker running this attempt stopped heartbeating (worker or node lost)' };
    }
    return { attempt, outcome: 'failed', failureClass: 'unknown', reason: `the attempt timed out (${cause.timeoutType})` };
  }
  return { attempt, outcome: 'failed', failureClass: 'unknown', reason: err instanceof Error ? err.message : String(err) };
}
