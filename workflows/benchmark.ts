/**
 * One night of the benchmark suite: every case in turn as a short pretraining pipeline, measured
 * from its log, judged against the table and the case's history on this cluster, and stored. A
 * case that cannot run here is skipped with the reason; one whose job fails is recorded as failed
 * with its class and log excerpt; the others go on. A Temporal Schedule starts it every night.
 */
import {
  ApplicationFailure,
  CancellationScope,
  ChildWorkflowFailure,
  TimeoutFailure,
  executeChild,
  isCancellation,
  patched,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type * as activities from '../activities/index.ts';
import type { CaseRunOutcome } from '../contracts/workflows.ts';
import type { BenchmarkCase, BenchmarkSuite, CaseResult } from '../benchmark/core.ts';
import type { PipelineState } from '../contracts/run-state.ts';
import { benchmarkProgressQuery, type BenchmarkOutcome, type BenchmarkProgress } from '../contracts/workflows.ts';
import { pipelineWorkflow } from './pipeline.ts';
import { legacyFreeNodes } from './legacy-placement.ts';

const bench = proxyActivities<typeof activities>({
  startToCloseTimeout: '10 minutes',
  retry: { maximumAttempts: 5, initialInterval: '2s' },
});

const notifier = proxyActivities<typeof activities>({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 3, initialInterval: '5s' },
});

export async function benchmarkWorkflow({ suite }: { suite: BenchmarkSuite }): Promise<BenchmarkOutcome> {
  const runId = workflowInfo().workflowId;
  const taskQueue = suite.taskQueue ?? workflowInfo().taskQueue;
  const progress: BenchmarkProgress = { runId, suite: suite.name, cases: 0, done: [] };
  setHandler(benchmarkProgressQuery, () => progress);
  try {
    const { cases } = await bench.beginBenchmarkRun({ suite, runId });
    progress.cases = cases.length;
    for (const [position, benchmarkCase] of cases.entries()) {
      progress.currentCase = benchmarkCase.id;
      let outcome: CaseRunOutcome;
      try {
        outcome = await runCase(suite, runId, taskQueue, benchmarkCase);
      } catch (err) {
        if (CancellationScope.current().consideredCancelled) throw err;
        // Something around the case broke (not its job): the case is failed, the night goes on.
        outcome = { kind: 'failed', failureClass: 'unknown', reason: `linkflow could not run the case: ${innermost(err)}`, excerpt: [] };
      }
      const result: CaseResult = await bench.recordBenchmarkCase({ suite, runId, benchmarkCase, position, outcome });
      progress.done.push({ caseId: result.caseId, verdict: result.verdict, reason: result.reason });
    }
    progress.currentCase = undefined;
    const { summary, notify } = await bench.finishBenchmarkRun({ suite, runId, status: 'completed' });
    if (!notify) return { runId, counts: summary.counts };
    try {
      return { runId, counts: summary.counts, notified: await notifier.notifyBenchmarkWebhook({ suite, runId, summary }) };
    } catch (err) {
      // The results are stored; a receiver that is down does not make the night a failure.
      return { runId, counts: summary.counts, notifyError: innermost(err) };
    }
  } catch (err) {
    // The stored run must not stay "running": record how it ended, even when cancelled.
    await CancellationScope.nonCancellable(() => bench.finishBenchmarkRun({ suite, runId, status: isCancellation(err) ? 'cancelled' : 'failed' })).catch(
      () => undefined,
    );
    throw err;
  }
}

/** One case: skipped with the reason, or its pipeline run to the end and measured from its iteration lines. */
async function runCase(suite: BenchmarkSuite, runId: string, taskQueue: string, benchmarkCase: BenchmarkCase): Promise<CaseRunOutcome> {
  // Slurm queues a case until its partition has the nodes (caseTimeout bounds the wait): the pool's nodes do not count.
  // Suites started before the pool's allocator count free nodes as they did (their histories say so).
  const free = suite.slurm
    ? Number.MAX_SAFE_INTEGER
    : patched('pool-allocator')
      ? await bench.poolFreeNodes({ pool: taskQueue })
      : benchmarkCase.shape.nodes > 1
        ? (await legacyFreeNodes(taskQueue)).length
        : 1;
  const prepared = await bench.prepareBenchmarkCase({ suite, runId, benchmarkCase, taskQueue, freeNodes: free });
  if ('skip' in prepared) return { kind: 'skipped', reason: prepared.skip };
  try {
    const state = await executeChild(pipelineWorkflow, {
      args: [{ plan: prepared.plan, retry: prepared.retry }],
      workflowId: `${runId}/${benchmarkCase.id}`,
      taskQueue,
      // A case stuck waiting for nodes or hung must not hold the night (and, with overlap skip, the next ones).
      workflowExecutionTimeout: prepared.timeoutMs,
    });
    const stage = state.stages[0];
    const attempt = stage.attempts.at(-1);
    if (attempt?.outcome !== 'succeeded' || !stage.iterationSamples) {
      return { kind: 'failed', failureClass: 'no-result', reason: `the case's pipeline ended ${state.status} without a measured run`, excerpt: [] };
    }
    return { kind: 'ran', samples: stage.iterationSamples, plan: prepared.plan, logFile: attempt.logFile };
  } catch (err) {
    if (CancellationScope.current().consideredCancelled) throw err;
    return failedCase(err, prepared.timeoutMs);
  }
}

function innermost(err: unknown): string {
  let e: unknown = err;
  while (e instanceof Error && e.cause instanceof Error) e = e.cause;
  return e instanceof Error ? e.message : String(e);
}

/** A case's pipeline failed: its class, reason and log excerpt come with the pipeline's state. */
function failedCase(err: unknown, timeoutMs: number): CaseRunOutcome {
  const cause = err instanceof ChildWorkflowFailure ? err.cause : err;
  if (cause instanceof ApplicationFailure) {
    const state = cause.details?.[0] as PipelineState | undefined;
    const attempt = state?.stages[0]?.attempts.at(-1);
    if (attempt?.failureClass) {
      return { kind: 'failed', failureClass: attempt.failureClass, reason: attempt.reason ?? cause.message, excerpt: attempt.excerpt ?? [] };
    }
    return { kind: 'failed', failureClass: 'unknown', reason: cause.message, excerpt: [] };
  }
  if (cause instanceof TimeoutFailure) {
    return {
      kind: 'failed',
      failureClass: 'hang',
      reason: `the case did not finish within caseTimeout (${Math.round(timeoutMs / 60_000)} min): waiting for nodes, or hung`,
      excerpt: [],
    };
  }
  return { kind: 'failed', failureClass: 'unknown', reason: innermost(err), excerpt: [] };
}
