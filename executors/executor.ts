/**
 * What every executor gives the attempt's watcher (activities/attempt/watch.ts), whatever runs the
 * attempt: a process group on this node (executors/nodes/), a Slurm job (executors/slurm/) or a
 * gang of pods (executors/kubernetes/). Submit and adopt start one (an executor that holds jobs
 * beyond its worker finds the stage's running one and follows it instead of starting another); it
 * exits, is stopped with a grace, follows the stop grace the watcher measures; a scheduled one also
 * says where it waits and how its scheduler ended it (classified by the executor's pure part).
 */
import type { ExitStatus } from '../common/exit-status.ts';

export interface RunningAttempt {
  /** A process id on this node; -1 for a job a scheduler runs elsewhere. */
  pid: number;
  /** Resolves when the attempt's processes are gone and their output is in the attempt log. */
  exited: Promise<ExitStatus>;
  /** SIGTERM to the training processes, SIGKILL after `graceMs` (0: at once); resolves when they are gone. */
  kill(graceMs?: number): Promise<void>;
  /** The grace of later stops. */
  setGrace(graceMs: number): void;
}

/** A job a scheduler holds (Slurm, Kubernetes): it outlives the worker that submitted it. */
export interface ScheduledAttempt<End> extends RunningAttempt {
  /** The scheduler's name for it (a Slurm job id, a gang's name). */
  id: string;
  /** While it waits: the scheduler's reason, in words for `linkflow status`. */
  queuedNote(): string | undefined;
  /** How the scheduler says it ended. */
  ended: Promise<End>;
}

/** FNV-1a, 32 bits, base 36: short names and fingerprints, not security. */
export function shortHash(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(36).padStart(7, '0');
}

/** What identifies a stage's work (its plan, its resume point aside): a later attempt adopts a running job only when this matches. */
export function workFingerprint(parts: unknown): string {
  return shortHash(JSON.stringify(parts));
}
