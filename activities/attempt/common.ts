/** What every phase of an attempt shares: its input, the failure it throws and the timestamps it writes. */
import { ApplicationFailure } from '@temporalio/common';
import type { AttemptFailureDetails } from '../../contracts/run-state.ts';
import type { FailureClass } from '../../failures/failures.ts';
import type { RankAssignment } from '../../plan/gang.ts';
import type { StagePlan } from '../../plan/plan.ts';

export interface AttemptInput {
  pipeline: string;
  stage: StagePlan;
  attempt: number;
  /** A save interval set while the pipeline runs (setSaveInterval signal). */
  saveInterval?: number;
  /** One node rank of a multi-node gang: where this rank runs and where rank 0 listens. */
  rank?: RankAssignment;
  /** The last iteration the previous attempt logged: what this one recomputes is counted (metrics). */
  previousLastIteration?: number;
  /** When the stage's first attempt started (workflow time, ms): a stage's duration is measured from it (metrics). */
  stageStartedAt?: number;
  /** A Slurm attempt: nodes earlier attempts lost, left out where the partition has others (executors/slurm/plan.ts). */
  avoidNodes?: string[];
}

export function fail(cls: FailureClass, message: string, details: AttemptFailureDetails, retryable: boolean): ApplicationFailure {
  return ApplicationFailure.create({ type: cls, message, nonRetryable: !retryable, details: [details] });
}

export function timestamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-');
}
