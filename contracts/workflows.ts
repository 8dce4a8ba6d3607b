/**
 * The workflows' names, signals and queries, shared by the workflows (which set the handlers) and the
 * client side (which starts, signals and queries them), as Temporal's samples share them. Safe in the
 * workflow sandbox: defineSignal and defineQuery only name a handler, and the other imports are types.
 */
import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { BenchmarkSuite, IterationSample, Verdict } from '../benchmark/core.ts';
import type { FailureClass } from '../failures/failures.ts';
import type { PipelinePlan } from '../plan/plan.ts';
import type { PipelineInput, PipelineState } from './run-state.ts';

/**
 * The workflow types the worker registers, and their signatures for typed starts
 * (`client.workflow.start<PipelineWorkflow>(pipelineWorkflowType, …)`). workflows/index.ts exports a
 * function of that signature under each name (checked by tsc there).
 */
export const pipelineWorkflowType = 'pipelineWorkflow';
export const benchmarkWorkflowType = 'benchmarkWorkflow';
/** One chunk of an attempt log, read on the node that holds it (`linkflow logs`). */
export const readLogChunkWorkflowType = 'readLogChunkWorkflow';
export type PipelineWorkflow = (input: PipelineInput) => Promise<PipelineState>;
export type BenchmarkWorkflow = (input: { suite: BenchmarkSuite }) => Promise<BenchmarkOutcome>;
/** The largest chunk a worker returns: Temporal warns about payloads over 512 KB, and base64 makes 384 KiB into 512 KiB. */
export const LOG_CHUNK_MAX_BYTES = 384 * 1024;
export interface ReadLogChunkInput {
  /** The node's own queue (`POOL@NODE`), polled only by that node's worker. */
  nodeQueue: string;
  file: string;
  offset: number;
}
/** base64 bytes from the offset, and the file's size then. */
export type ReadLogChunkWorkflow = (input: ReadLogChunkInput) => Promise<{ data: string; size: number }>;

/** `linkflow validate --on-node`: a node's own checks of the stages it may run. */
export const preflightOnNodeWorkflowType = 'preflightOnNodeWorkflow';
export interface NodePreflightInput {
  /** The node's own queue (`POOL@NODE`). */
  nodeQueue: string;
  stages: PipelinePlan['stages'];
}
export type PreflightOnNodeWorkflow = (
  input: NodePreflightInput,
) => Promise<{ node: string; problems: { path: string; message: string }[]; checked: string[] }>;

export const progressQuery = defineQuery<PipelineState>('progress');
/** Checkpoint now and stop: the running training attempt is sent SIGTERM (Megatron saves with --exit-signal-handler, on by default); the pipeline ends as stopped and a rerun resumes it. */
export const checkpointAndStopSignal = defineSignal('checkpointAndStop');
/** A new save interval for training attempts, from the next attempt on. */
export const setSaveIntervalSignal = defineSignal<[number]>('setSaveInterval');

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
  /** The webhook that received the summary. */
  notified?: string;
  /** Why the webhook did not receive it (the results are stored all the same). */
  notifyError?: string;
}

export const benchmarkProgressQuery = defineQuery<BenchmarkProgress>('benchmarkProgress');

/** What the case's pipeline came to: its iteration lines (to measure) or its failure. */
export type CaseRunOutcome =
  | { kind: 'ran'; samples: IterationSample[]; plan: PipelinePlan; logFile?: string }
  | { kind: 'failed'; failureClass: FailureClass; reason: string; excerpt: string[] }
  | { kind: 'skipped'; reason: string };
