/**
 * The plain data a pipeline run passes between the client, the workflow and the activities (contracts/: what crosses Temporal).
 * Types only plus two tiny pure helpers: the workflow bundle imports this file.
 */
import type { NotifyEventKind } from '../spec/notify.ts';
import type { IterationSample } from '../benchmark/throughput.ts';
import type { Evidence, FailureClass } from '../failures/failures.ts';
import type { PipelinePlan, StagePlan } from '../plan/plan.ts';
import type { AttemptProgress } from '../frameworks/modellink/training-log.ts';

export interface RetrySettingsInput {
  maximumAttempts: number;
  initialIntervalMs: number;
  backoffCoefficient: number;
  maximumIntervalMs: number;
  infrastructureAttempts: number;
  infrastructureInitialIntervalMs: number;
  heartbeatTimeoutMs: number;
  startToCloseTimeoutMs: number;
  /** Attempts one workflow run makes before it continues as new (history stays bounded on long runs). */
  continueAsNewAfterAttempts: number;
}

/** What a run hands to the next when it continues as new in the middle of a stage. */
export interface PipelineContinuation {
  state: PipelineState;
  fingerprints: Record<string, string>;
  stageIndex: number;
  stageFingerprint: string;
  failures: { code: number; infrastructure: number };
}

export interface PipelineInput {
  plan: PipelinePlan;
  retry: RetrySettingsInput;
  continuation?: PipelineContinuation;
  /** The cluster has linkflow's search attributes registered: the workflow keeps them up to date (the client checks at start). */
  searchAttributes?: boolean;
  /** The attempts of the stages the pipeline's previous run left unfinished (stopped, failed, cancelled): a rerun goes on counting them. */
  previousAttempts?: Record<string, AttemptRecord[]>;
}

export type StageStatus = 'pending' | 'checking' | 'waiting-for-nodes' | 'running' | 'retrying' | 'succeeded' | 'skipped' | 'failed' | 'cancelled' | 'stopped';

/** Measured by the attempt's watcher, for `linkflow advise`. */
export interface AttemptTimings {
  /** From launch to the first iteration logged, checkpoint load included. */
  startupMs?: number;
  loadMs?: number;
  saveMsTotal?: number;
  saves?: number;
  msPerIteration?: number;
}

export interface AttemptRecord {
  attempt: number;
  /** Workflow time when the attempt was scheduled and when it ended. */
  startedAt?: number;
  endedAt?: number;
  timings?: AttemptTimings;
  /** The iteration the attempt loaded; undefined when it started from the converted weights or from scratch. */
  loadedIteration?: number;
  /** How the resume point was chosen (e.g. a torn newest checkpoint). */
  resumeNote?: string;
  lastIteration?: number;
  /** Iterations the attempt redid: the previous attempt's last iteration minus the one this attempt loaded. */
  recomputed?: number;
  outcome: 'succeeded' | 'failed' | 'cancelled' | 'stopped';
  failureClass?: FailureClass;
  reason?: string;
  excerpt?: string[];
  logFile?: string;
  /** A single-node attempt: the node it ran on (the worker's --node name, else its host name). */
  node?: string;
  /** A gang's attempt: the nodes it ran on (rank k on nodes[k]) and the rank whose failure explains it. */
  nodes?: string[];
  failedNode?: string;
  /** How the failure class was established (a rule's tier, the exit status, the watcher); undefined when the executor reported it. */
  evidence?: Evidence;
  /** The save interval linkflow chose for the attempts after this one (training.autoSaveInterval), and why. */
  saveIntervalAdvice?: string;
}

export interface StageState {
  name: string;
  kind: StagePlan['kind'];
  status: StageStatus;
  output: string;
  attempts: AttemptRecord[];
  finalIteration?: number;
  trainIters?: number;
  saveInterval?: number;
  lastCheckpoint?: { iteration: number; dir: string };
  evalResults?: AttemptProgress['evalResults'];
  /** A measure-only stage (a benchmark case): the iteration lines of its successful attempt. */
  iterationSamples?: IterationSample[];
  /** Why the stage was skipped or failed, in a sentence. */
  note?: string;
}

export interface PipelineState {
  pipeline: string;
  status: 'running' | 'succeeded' | 'failed' | 'cancelled' | 'stopped';
  /** Set by the setSaveInterval signal: the save interval of training attempts from the next one on. */
  saveInterval?: number;
  stopRequested?: boolean;
  currentStage?: string;
  stages: StageState[];
  /** Ids of the notification events already sent (each is sent once), and how each webhook call went. */
  notified?: string[];
  notifications?: NotificationRecord[];
}

/** One webhook call: a receiver that is down never fails the pipeline; it is recorded here instead. */
export interface NotificationRecord {
  eventId: string;
  kind: NotifyEventKind;
  /** Which webhook of the settings (its index), never its URL. */
  webhook: number;
  delivered: boolean;
  error?: string;
}

/** What `run --json` and `status --json` print for a stage. */
export interface StageSummary {
  name: string;
  kind: StagePlan['kind'];
  status: StageStatus;
  attempts: number;
  resumedFrom: number[];
  finalIteration?: number;
  output: string;
  /** Why each attempt ended, one entry per attempt. */
  attemptLog: AttemptLogEntry[];
}

/** One attempt as `run --json` and `status --json` print it; fields without a value are left out. */
export interface AttemptLogEntry {
  attempt: number;
  outcome: AttemptRecord['outcome'];
  failureClass?: FailureClass;
  reason?: string;
  loadedIteration?: number;
  lastIteration?: number;
  recomputed?: number;
  /** Where it ran; for a gang, the node whose failure explains the attempt. */
  node?: string;
}

function attemptLogEntry(a: AttemptRecord): AttemptLogEntry {
  const entry: AttemptLogEntry = {
    attempt: a.attempt,
    outcome: a.outcome,
    failureClass: a.failureClass,
    reason: a.reason,
    loadedIteration: a.loadedIteration,
    lastIteration: a.lastIteration,
    recomputed: a.recomputed,
    node: a.failedNode ?? a.node,
  };
  for (const key of Object.keys(entry) as (keyof AttemptLogEntry)[]) if (entry[key] === undefined) delete entry[key];
  return entry;
}

export function summarizeStage(s: StageState): StageSummary {
  return {
    name: s.name,
    kind: s.kind,
    status: s.status,
    attempts: s.attempts.length,
    resumedFrom: s.attempts
      .slice(1)
      .map((a) => a.loadedIteration)
      .filter((i): i is number => i !== undefined),
    finalIteration: s.finalIteration,
    output: s.output,
    attemptLog: s.attempts.map(attemptLogEntry),
  };
}

/** Result of one attempt activity. */
export interface AttemptResult {
  loadedIteration?: number;
  resumeNote?: string;
  finalIteration?: number;
  lastCheckpoint?: { iteration: number; dir: string };
  evalResults?: AttemptProgress['evalResults'];
  logFile: string;
  /** The node the attempt ran on. */
  node?: string;
  /** A gang's attempt: one log per node rank. */
  logFiles?: string[];
  /** A measure-only job (a benchmark case): its iteration lines, read on the node that logged them. */
  iterationSamples?: IterationSample[];
  timings?: AttemptTimings;
}

/** Details attached to an attempt's ApplicationFailure so the workflow can record it. */
export interface AttemptFailureDetails {
  failureClass: FailureClass;
  reason: string;
  excerpt: string[];
  loadedIteration?: number;
  resumeNote?: string;
  lastIteration?: number;
  lastCheckpoint?: { iteration: number; dir: string };
  logFile: string;
  timings?: AttemptTimings;
  /** A gang's rank that failed. */
  node?: string;
  nodeRank?: number;
  /** This rank only stopped because another node of its gang did. */
  followsPeer?: boolean;
  /** How the class was established (failures.ts Evidence). */
  evidence?: Evidence;
}

export interface StageCheck {
  upToDate: boolean;
  fingerprint: string;
  /** Why the stage must run (or why it is up to date). */
  reason: string;
}
