/**
 * One night of the benchmark suite: every case in turn as a short pretraining pipeline, measured
 * from its log, judged against the table and the case's history on this cluster, and stored. A
 * case that cannot run here is skipped with the reason; one whose job fails is recorded as failed
 * with its class and log excerpt; the others go on. A Temporal Schedule starts it every night.
 */
import { ApplicationFailure, CancellationScope, ChildWorkflowFailure, defineQuery, executeChild, isCancellation, proxyActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import type * as activities from '../activities/index.ts';
import type { CaseRunOutcome } from '../activities/benchmark.ts';
import type { BenchmarkSuite, CaseResult, Verdict } from '../modellink/benchmark.ts';
import type { FailureClass } from '../modellink/failures.ts';
import type { PipelineState } from '../modellink/run-state.ts';
import { pipelineWorkflow } from './pipeline.ts';

export interface BenchmarkProgress {
  runId: string;
  suite: string;
  cases: number;
  currentCase?: string;
  done: { caseId: string; verdict: Verdict; reason: string }[];
}

export interface BenchmarkOutcome {
  runId: string;
  counts: Partial<Record<Verdict, number>>;
  notified?: string;
}

export const benchmarkProgressQuery = defineQuery<BenchmarkProgress>('benchmarkProgress');

const bench = proxyActivities<typeof activities>({
  startToCloseTimeout: '10 minutes',
  retry: { maximumAttempts: 5, initialInterval: '2s' },
});

export async function benchmarkWorkflow({ suite }: { suite: BenchmarkSuite }): Promise<BenchmarkOutcome> {
  const runId = workflowInfo().workflowId;
  const taskQueue = suite.taskQueue ?? workflowInfo().taskQueue;
  const { cases } = await bench.beginBenchmarkRun({ suite, runId });
  const progress: BenchmarkProgress = { runId, suite: suite.name, cases: cases.length, done: [] };
  setHandler(benchmarkProgressQuery, () => progress);
  try {
    for (const [position, benchmarkCase] of cases.entries()) {
      progress.currentCase = benchmarkCase.id;
      const prepared = await bench.prepareBenchmarkCase({ suite, runId, benchmarkCase, taskQueue });
      let outcome: CaseRunOutcome;
      if ('skip' in prepared) {
        outcome = { kind: 'skipped', reason: prepared.skip };
      } else {
        try {
          const state = await executeChild(pipelineWorkflow, {
            args: [{ plan: prepared.plan, retry: prepared.retry }],
            workflowId: `${runId}/${benchmarkCase.id}`,
            taskQueue,
          });
          const attempt = state.stages[0].attempts.at(-1);
          outcome = attempt?.logFile ? { kind: 'ran', logFile: attempt.logFile, plan: prepared.plan } : { kind: 'failed', failureClass: 'no-result', reason: 'the case ran no attempt', excerpt: [] };
        } catch (err) {
          if (isCancellation(err)) throw err;
          outcome = failedCase(err);
        }
      }
      const result: CaseResult = await bench.recordBenchmarkCase({ suite, runId, benchmarkCase, position, outcome });
      progress.done.push({ caseId: result.caseId, verdict: result.verdict, reason: result.reason });
    }
    progress.currentCase = undefined;
    const { summary, notified } = await bench.finishBenchmarkRun({ suite, runId, status: 'completed' });
    return { runId, counts: summary.counts, ...(notified ? { notified } : {}) };
  } catch (err) {
    // The stored run must not stay "running": record how it ended, even when cancelled.
    await CancellationScope.nonCancellable(() => bench.finishBenchmarkRun({ suite, runId, status: isCancellation(err) ? 'cancelled' : 'failed' })).catch(() => undefined);
    throw err;
  }
}

/** A case's pipeline failed: its class, reason and log excerpt come with the pipeline's state. */
function failedCase(err: unknown): CaseRunOutcome {
  const cause = err instanceof ChildWorkflowFailure ? err.cause : err;
  if (cause instanceof ApplicationFailure) {
    const state = cause.details?.[0] as PipelineState | undefined;
    const attempt = state?.stages[0]?.attempts.at(-1);
    if (attempt?.failureClass) {
      return { kind: 'failed', failureClass: attempt.failureClass, reason: attempt.reason ?? cause.message, excerpt: attempt.excerpt ?? [] };
    }
    return { kind: 'failed', failureClass: (cause.type ?? 'unknown') as FailureClass, reason: cause.message, excerpt: [] };
  }
  return { kind: 'failed', failureClass: 'unknown', reason: err instanceof Error ? err.message : String(err), excerpt: [] };
}
