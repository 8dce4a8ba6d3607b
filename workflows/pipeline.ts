/**
 * A pipeline: its stages in order. A stage whose manifest still matches is skipped, so running a
 * failed pipeline again resumes it. Each stage is a loop of attempts: an attempt that fails for a
 * transient reason is retried after a backoff and resumes from the newest complete checkpoint;
 * one that fails deterministically fails the pipeline with the log excerpt that shows why.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  ContinueAsNew,
  continueAsNew,
  isCancellation,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import type * as activities from '../activities/index.ts';
// Pure data, no Node imports: safe inside the workflow sandbox.
import { blameWorthy } from '../failures/blame.ts';
import { INFRASTRUCTURE } from '../failures/failures.ts';
import { autoSaveInterval } from '../plan/advise.ts';
import { launchesAcrossNodes, launchOf, nodesOf } from '../frameworks/launch.ts';
import { nodeQueue } from '../plan/gang.ts';
import { nodesToAvoid } from '../executors/slurm/plan.ts';
import type { PipelinePlan, StagePlan } from '../plan/plan.ts';
import type { PipelineInput, PipelineState, RetrySettingsInput, StageState } from '../contracts/run-state.ts';
import { checkpointAndStopSignal, progressQuery, setSaveIntervalSignal } from '../contracts/workflows.ts';
import { attemptFailure, failureDetails } from './attempts.ts';
import { attemptActivities, attemptSummary, runGangAttempt, type GangOutcome } from './gang.ts';
import { publishSearchAttributes } from './search-attributes.ts';
import { blameNode, onPoolNodes, PlacementDeferred, type Placement, type PlacementRequest } from './placement.ts';
import { legacyPlaceGang } from './legacy-placement.ts';
import { eventId, notify, watchNodeWaits } from './notify.ts';

/** Pipelines started before the pool's allocator keep placing as they did (their histories say so). */
const POOL_ALLOCATOR = 'pool-allocator';
/** Blame a node only with evidence about its machine, once per job (issue 17). */
const BLAME_WITH_EVIDENCE = 'blame-with-evidence';

/** The running attempt's scope, so a stop can cancel just the attempt; and how a change of state reaches the search attributes. */
interface AttemptControl {
  scope?: CancellationScope;
  publish: () => void;
}

const bookkeeping = proxyActivities<typeof activities>({
  startToCloseTimeout: '10 minutes',
  retry: { maximumAttempts: 10, initialInterval: '2s' },
});

export async function pipelineWorkflow({ plan, retry, continuation, searchAttributes, previousAttempts }: PipelineInput): Promise<PipelineState> {
  const state: PipelineState = continuation?.state ?? {
    pipeline: plan.name,
    status: 'running',
    stages: plan.stages.map((s) => ({
      name: s.name,
      kind: s.kind,
      status: 'pending',
      output: s.output,
      // A rerun (after a stop, a failure) goes on counting the attempts of the stages the last run left unfinished.
      attempts: [...(previousAttempts?.[s.name] ?? [])],
      trainIters: s.training?.trainIters,
      saveInterval: s.training?.saveInterval,
    })),
  };
  setHandler(progressQuery, () => state);
  const control: AttemptControl = { publish: () => publishSearchAttributes(searchAttributes, state, plan.model) };
  control.publish();
  setHandler(checkpointAndStopSignal, () => {
    state.stopRequested = true;
    control.scope?.cancel();
  });
  setHandler(setSaveIntervalSignal, (interval) => {
    if (Number.isInteger(interval) && interval > 0) state.saveInterval = interval;
  });

  // Beside the stages: a stage waiting for nodes longer than the threshold is reported. Its end is the pipeline's.
  void watchNodeWaits(plan.notify, state).catch(() => undefined);

  const fingerprints: Record<string, string> = { ...continuation?.fingerprints };
  let stopped = false;
  try {
    for (let i = continuation?.stageIndex ?? 0; i < plan.stages.length; i++) {
      const stage = plan.stages[i];
      const s = state.stages[i];
      state.currentStage = stage.name;
      control.publish();
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
        await continueAsNew<typeof pipelineWorkflow>({
          plan,
          retry,
          continuation: { state, fingerprints, stageIndex: i, stageFingerprint: fingerprint, failures },
          searchAttributes,
        });
      }
      await bookkeeping.writeManifest({ pipeline: plan.name, stage, fingerprint, finalIteration: s.finalIteration });
      s.status = 'succeeded';
    }
    // A stop that came after the last stage finished stops nothing.
    state.status = stopped ? 'stopped' : 'succeeded';
    // The Web UI shows the pipeline's own ending: a stop completes the workflow, but it is no success.
    setCurrentDetails(endDetails(state));
    state.currentStage = undefined;
    control.publish();
    if (!stopped) await notify(plan.notify, state, 'succeeded', eventId('succeeded'), `${plan.name} succeeded: ${succeededSummary(state)}`);
    return state;
  } catch (err) {
    if (err instanceof ContinueAsNew) throw err;
    if (isCancellation(err)) {
      state.status = 'cancelled';
      // Cancelled while a stage waited (a backoff, nodes): that stage is cancelled too, not "retrying" for ever.
      for (const s of state.stages) if (ACTIVE.has(s.status)) s.status = 'cancelled';
      setCurrentDetails(endDetails(state));
      control.publish();
      throw err;
    }
    state.status = 'failed';
    setCurrentDetails(endDetails(state));
    control.publish();
    const message = err instanceof Error ? err.message : String(err);
    await notify(plan.notify, state, 'failed', eventId('failed'), `${plan.name} failed: ${message.split('\n')[0]}`, {
      stage: state.currentStage,
      details: { message },
    });
    // The failure carries the whole state, so `linkflow status` can show every stage of a failed pipeline.
    throw ApplicationFailure.create({
      type: 'PipelineFailed',
      nonRetryable: true,
      message,
      details: [state],
    });
  }
}

async function runStage(
  plan: PipelinePlan,
  stage: StagePlan,
  s: StageState,
  retry: RetrySettingsInput,
  failures: { code: number; infrastructure: number },
  pipelineState: PipelineState,
  control: AttemptControl,
): Promise<'done' | 'continue-as-new' | 'stopped'> {
  const pipeline = plan.name;
  const pool = plan.taskQueue ?? workflowInfo().taskQueue;
  // Slurm and Kubernetes place a multi-node attempt themselves, as one job: only node workers form gangs here.
  const scheduled = stage.slurm !== undefined || stage.kubernetes !== undefined;
  const gang = launchesAcrossNodes(launchOf(stage)) && !scheduled;
  const count = nodesOf(launchOf(stage));
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
      const saveInterval = stage.training
        ? (pipelineState.saveInterval ?? (s.saveInterval !== stage.training.saveInterval ? s.saveInterval : undefined))
        : undefined;
      const input = {
        pipeline,
        stage,
        attempt,
        saveInterval,
        previousLastIteration: previous?.lastIteration,
        stageStartedAt: s.attempts[0]?.startedAt ?? startedAt,
        ...(scheduled ? { avoidNodes: nodesToAvoid(s.attempts) } : {}),
      };
      // The Web UI names each attempt instead of showing identical runStageAttempt bars.
      const summary = attemptSummary(stage.name, attempt, resumePoint(s));
      const request: PlacementRequest = {
        pool,
        holder: { workflowId: workflowInfo().workflowId, pipeline, stage: stage.name, attempt },
        count,
        // A stage may span fewer nodes than the job (evaluation runs tp × pp ranks): the first hosts.
        hosts: plan.hosts?.slice(0, count),
        // The node that failed the previous attempt is used again only when no other is free.
        avoid: previous?.outcome === 'failed' && (previous.failedNode ?? previous.node) ? [(previous.failedNode ?? previous.node)!] : undefined,
        masterPort: gang,
      };
      const run = (placement: Placement) => {
        placed.placedAt = Date.now();
        s.status = 'running';
        if (gang) return runGangAttempt(pool, s, retry, input, placement, placed, summary);
        s.note = `on node ${placement.nodes[0].name}`;
        placed.node = placement.nodes[0].name;
        return attemptActivities(retry, nodeQueue(pool, placement.nodes[0].name), summary).runStageAttempt(input);
      };
      const usesPool = patched(POOL_ALLOCATOR);
      const result = await scope.run(() =>
        // A Slurm or Kubernetes stage's attempt runs on a worker that submits jobs; the scheduler, not the pool, places them.
        scheduled
          ? attemptActivities(retry, undefined, summary).runStageAttempt(input)
          : usesPool
            ? onPoolNodes(request, s, run)
            : gang
              ? legacyPlaceGang(pool, count, request.hosts, s).then(run)
              : attemptActivities(retry, undefined, summary).runStageAttempt(input),
      );
      s.attempts.push({
        attempt,
        outcome: 'succeeded',
        startedAt: placed.placedAt ?? startedAt,
        endedAt: Date.now(),
        timings: result.timings,
        loadedIteration: result.loadedIteration,
        resumeNote: result.resumeNote,
        lastIteration: result.finalIteration,
        recomputed: recomputed(result.loadedIteration),
        logFile: result.logFile,
        node: gang ? undefined : result.node,
        nodes: placed.nodes,
      });
      s.finalIteration = result.finalIteration;
      s.lastCheckpoint = result.lastCheckpoint ?? s.lastCheckpoint;
      s.evalResults = result.evalResults;
      if (result.iterationSamples) s.iterationSamples = result.iterationSamples;
      return 'done';
    } catch (err) {
      if (err instanceof PlacementDeferred) {
        // Waited for nodes so long that the history grew: go on waiting in a fresh run (no attempt was made).
        return 'continue-as-new';
      }
      if (isCancellation(err)) {
        if (pipelineState.stopRequested && !CancellationScope.current().consideredCancelled) {
          const d = failureDetails(err);
          s.attempts.push({
            attempt,
            outcome: 'stopped',
            loadedIteration: d?.loadedIteration,
            lastIteration: d?.lastIteration,
            logFile: d?.logFile,
            node: gang ? undefined : d?.node,
            nodes: placed.nodes,
          });
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
      // A single-node attempt whose worker never started it still failed on its granted node.
      if (!gang && record.node === undefined && placed.node !== undefined) record.node = placed.node;
      record.nodes = placed.nodes;
      record.failedNode = placed.failedNode;
      if (placed.lastIteration !== undefined) record.lastIteration = Math.max(record.lastIteration ?? 0, placed.lastIteration);
      // A gang's timings come from all its ranks (iterations from the last node, saves from node 0).
      if (placed.timings) record.timings = placed.timings;
      record.recomputed = recomputed(record.loadedIteration);
      record.startedAt = placed.placedAt ?? startedAt;
      record.endedAt = Date.now();
      s.attempts.push(record);
      if (record.lastIteration !== undefined) s.finalIteration = record.lastIteration;
      s.lastCheckpoint = failureDetails(err)?.lastCheckpoint ?? s.lastCheckpoint;
      control.publish();
      const group = INFRASTRUCTURE.has(record.failureClass ?? 'unknown') ? 'infrastructure' : 'code';
      failures[group]++;
      const blamed = record.failedNode ?? record.node;
      // Only a fault of the machine that its evidence points at counts against the node (failures/blame.ts).
      const evidenced = patched(BLAME_WITH_EVIDENCE);
      if ((evidenced ? blameWorthy(record) : group === 'infrastructure') && blamed && !scheduled && patched(POOL_ALLOCATOR))
        await blameNode(
          pool,
          blamed,
          `${stage.name} attempt ${attempt}: ${record.failureClass}: ${record.reason}`,
          evidenced ? workflowInfo().workflowId : undefined,
        );
      const retryable = isRetryable(err);
      if (!retryable || failures[group] >= budget[group]) {
        s.status = 'failed';
        const spent = `${failures[group]} ${group === 'code' ? 'job' : 'infrastructure'} failure${failures[group] === 1 ? '' : 's'}`;
        s.note = retryable ? `gave up after ${spent}; last: ${record.reason}` : `${record.failureClass}: ${record.reason}`;
        throw ApplicationFailure.create({
          type: 'StageFailed',
          nonRetryable: true,
          message:
            `stage ${stage.name} failed (${record.failureClass}${retryable ? `, after ${spent}` : ', not retried'}): ${record.reason}` +
            (record.excerpt?.length ? `\n--- log excerpt (${record.logFile ?? 'no log'}) ---\n${record.excerpt.join('\n')}` : ''),
          details: [{ stage: stage.name, failureClass: record.failureClass, excerpt: record.excerpt ?? [], logFile: record.logFile }],
        });
      }
      await reportRetryBudget(plan, stage, pipelineState, group, failures[group], budget[group]);
      if (stage.training?.autoSaveInterval && pipelineState.saveInterval === undefined) {
        const advice = autoSaveInterval(s, stage.training.trainIters);
        if (advice) {
          s.saveInterval = advice.interval;
          record.saveIntervalAdvice = advice.reason;
        }
      }
      s.status = 'retrying';
      setCurrentDetails(
        `**${stage.name}** attempt ${attempt} failed${record.lastIteration !== undefined ? ` after iteration ${record.lastIteration}` : ''} (${record.failureClass}): ${record.reason}\n\nbackoff, then attempt ${attempt + 1}`,
      );
      // Named in the Web UI's timeline instead of an anonymous timer.
      await sleep(backoffMs(retry, group, failures[group]), { summary: `backoff before attempt ${attempt + 1} of ${stage.name}` });
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

const ACTIVE = new Set<StageState['status']>(['checking', 'waiting-for-nodes', 'running', 'retrying']);

/** The workflow's current details at its end, in the Web UI: how it ended and where, and what to do next. */
function endDetails(state: PipelineState): string {
  const stage = state.stages.find((s) => s.name === state.currentStage);
  const at = stage?.finalIteration !== undefined ? ` at iteration ${stage.finalIteration}` : '';
  switch (state.status) {
    case 'stopped':
      return `**STOPPED** on request${stage ? ` in stage ${stage.name}${at}` : ''}, not finished: run the pipeline again to resume`;
    case 'cancelled':
      return `**CANCELLED**${stage ? ` in stage ${stage.name}${at}` : ''}`;
    case 'failed':
      return `**FAILED**${stage ? ` in stage ${stage.name}${at}: ${stage.note ?? ''}` : ''}`;
    default:
      return `**SUCCEEDED**: ${succeededSummary(state)}`;
  }
}

/**
 * The iteration the next attempt is expected to resume from: the newest checkpoint an attempt saved
 * or loaded. (The attempt itself picks the newest complete one; a torn save makes it an older one.)
 */
function resumePoint(s: StageState): number | undefined {
  const seen = [s.lastCheckpoint?.iteration, ...s.attempts.map((a) => a.loadedIteration)].filter((i): i is number => i !== undefined);
  return seen.length > 0 ? Math.max(...seen) : undefined;
}

/** A stage whose failures have used most of a budget (notify.retryBudgetUsed) is reported, once per budget. */
async function reportRetryBudget(
  plan: PipelinePlan,
  stage: StagePlan,
  state: PipelineState,
  group: 'code' | 'infrastructure',
  used: number,
  budget: number,
): Promise<void> {
  if (!plan.notify || used / budget < plan.notify.retryBudgetUsed) return;
  const which = group === 'code' ? 'job' : 'infrastructure';
  await notify(
    plan.notify,
    state,
    'retry-budget',
    eventId('stage', stage.name, 'retry-budget', group),
    `${plan.name}: stage ${stage.name} has used ${used} of its ${budget} attempts for ${which} failures`,
    { stage: stage.name, details: { budget: which, used, of: budget } },
  );
}

function succeededSummary(state: PipelineState): string {
  const ran = state.stages.filter((s) => s.status === 'succeeded');
  return `${ran.length} stage${ran.length === 1 ? '' : 's'} ran (${ran.map((s) => `${s.name}${s.attempts.length > 1 ? ` in ${s.attempts.length} attempts` : ''}`).join(', ') || 'none'}), ${state.stages.length - ran.length} skipped`;
}

function backoffMs(retry: RetrySettingsInput, group: 'code' | 'infrastructure', failures: number): number {
  const initial = group === 'code' ? retry.initialIntervalMs : retry.infrastructureInitialIntervalMs;
  return Math.min(retry.maximumIntervalMs, initial * Math.pow(retry.backoffCoefficient, failures - 1));
}

function isRetryable(err: unknown): boolean {
  if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) return !err.cause.nonRetryable;
  // Raised by the workflow itself (the pool refused the request): as final as an activity's.
  if (err instanceof ApplicationFailure) return !err.nonRetryable;
  return true;
}
