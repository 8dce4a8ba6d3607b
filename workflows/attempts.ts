/** How a failed attempt activity becomes an attempt record: its class, reason, evidence and iterations. Workflow code. */
import { ActivityFailure, ApplicationFailure, CancelledFailure, TimeoutFailure } from '@temporalio/workflow';
import type { FailureClass } from '../failures/failures.ts';
import type { AttemptFailureDetails, AttemptRecord } from '../contracts/run-state.ts';

/** The details an attempt attached to its failure or cancellation, if any. */
export function failureDetails(err: unknown): AttemptFailureDetails | undefined {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  return (cause instanceof ApplicationFailure || cause instanceof CancelledFailure ? cause.details?.[0] : undefined) as AttemptFailureDetails | undefined;
}

export function attemptFailure(attempt: number, err: unknown): AttemptRecord {
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
      node: d?.node,
      ...(d?.evidence ? { evidence: d.evidence } : {}),
    };
  }
  if (cause instanceof TimeoutFailure) {
    if (cause.timeoutType === 'HEARTBEAT') {
      // Heartbeats stopped: the worker (or its node) died; the next attempt runs on a live worker.
      // Its last heartbeat says where it ran.
      const last = cause.lastHeartbeatDetails as { node?: unknown } | undefined;
      const node = typeof last?.node === 'string' ? last.node : undefined;
      return {
        attempt,
        outcome: 'failed',
        failureClass: 'node-lost',
        reason: 'the worker running this attempt stopped heartbeating (worker or node lost)',
        ...(node ? { node } : {}),
      };
    }
    if (cause.timeoutType === 'SCHEDULE_TO_START') {
      // A placed node whose worker never picked its rank up: it went away after placement.
      return { attempt, outcome: 'failed', failureClass: 'node-lost', reason: 'the node this rank was placed on did not start it (its worker went away)' };
    }
    return { attempt, outcome: 'failed', failureClass: 'unknown', reason: `the attempt timed out (${cause.timeoutType})` };
  }
  return { attempt, outcome: 'failed', failureClass: 'unknown', reason: err instanceof Error ? err.message : String(err) };
}
