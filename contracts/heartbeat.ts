/** What a stage attempt's heartbeat carries, read by the client side (`linkflow status`, watch); never in the workflow history. */
import type { AttemptProgress } from '../frameworks/modellink/training-log.ts';

/** What a heartbeat carries: enough for `linkflow status` to show live progress. */
export interface HeartbeatDetails extends AttemptProgress {
  stage: string;
  attempt: number;
  logFile: string;
  node?: string;
  nodeRank?: number;
  /** A Slurm attempt's job id. */
  slurmJob?: string;
  /** While its Slurm job waits: the job and Slurm's reason ("Slurm job 12 queued (Resources)"). */
  queued?: string;
}
