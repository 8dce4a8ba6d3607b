/**
 * The Slurm executor, pure part: *where* an attempt runs when the spec says `cluster.executor: slurm`.
 * How it starts stays the stage's typed Launch (launch.ts); this module turns a stage and its Slurm
 * settings into one batch job (sbatch's options and a constant batch script) and reads back what
 * Slurm says about the job (its state, reason and exit code) as linkflow's failure classes.
 * No I/O here: io/commands.ts runs sbatch, squeue, scontrol, sacct and scancel.
 *
 * Why the batch script is constant: nothing of the spec may reach a shell. The script is fixed text
 * that runs `srun` with its own arguments ("$@"); sbatch passes the arguments after the script's
 * name to it. Those arguments are node, linkflow's task launcher (io/task.mjs) and the path
 * of a JSON file holding the stage's argv, working directory, environment and setup script, which
 * the launcher reads and starts as argv (never through a shell) on each node, one task per node.
 * A JSON file rather than quoted arguments: no quoting rules to get right, and the environment
 * (which may be large, and holds values we must not show in `ps`) stays off every command line.
 */
import type { Launch } from '../../frameworks/launch.ts';
import type { FailureClass } from '../../failures/failures.ts';

/** The spec's `cluster.slurm` as the plan carries it. */
export interface SlurmSettings {
  partition: string;
  account?: string;
  qos?: string;
  /** Slurm's time limit, as sbatch's --time takes it ("2-00:00:00", "90"). */
  time?: string;
  /** A generic resource per node, e.g. "npu:8". */
  gresPerNode?: string;
  constraint?: string;
  /** Nodes never to run on. */
  exclude?: string[];
  /** More sbatch options, each one argv element ("--exclusive", "--mem=0"). */
  extraArgs?: string[];
}

/** The sbatch options linkflow sets itself: `extraArgs` may not set them again. */
export const MANAGED_OPTIONS = [
  '--nodes',
  '--ntasks-per-node',
  '--output',
  '--error',
  '--open-mode',
  '--job-name',
  '--parsable',
  '--requeue',
  '--no-requeue',
  '--chdir',
  '--wrap',
];

/** srun on every node of the allocation, one task per node; a task that fails ends the others at once (a gang). */
export const BATCH_SCRIPT = [
  '#!/bin/sh',
  '# linkflow: constant text. Everything of the stage arrives as arguments ("$@"), never as shell text (executors/slurm/plan.ts).',
  'exec srun --ntasks-per-node=1 --kill-on-bad-exit=1 "$@"',
  '',
].join('\n');

/**
 * Placeholders the task launcher replaces on each node, in argv elements that are exactly these:
 * the node's rank from Slurm and the rendezvous taken from the allocation (its first node's address,
 * a port derived from the job id so two jobs on one node do not collide).
 */
export const NODE_RANK = '${SLURM_NODEID}';
export const MASTER_ADDR = '${LINKFLOW_MASTER_ADDR}';
export const MASTER_PORT = '${LINKFLOW_MASTER_PORT}';

/** The launch as every node of the job runs it: rank and rendezvous left to the task launcher. */
export function slurmLaunch(launch: Launch): Launch {
  return launch.kind === 'torchrun' ? { ...launch, nodeRank: NODE_RANK, masterAddr: MASTER_ADDR, masterPort: MASTER_PORT } : launch;
}

/** What the task launcher reads (io/task.mjs). */
export interface SlurmTaskFile {
  argv: string[];
  cwd: string;
  /** Set over the job's environment (which sbatch takes from the worker's); null removes a variable. */
  env: Record<string, string | null>;
  /** Sourced on the node before the launch (Ascend's set_env.sh belongs to the compute node). */
  setupScript?: string;
  /** A file the worker writes `stop <ms>` into: SIGTERM to the launcher's workers, SIGKILL after ms. */
  stopFile: string;
  /** Whom a stop signals: torch's elastic agent passes nothing on in time (see executors/nodes/io/supervisor.mjs). */
  stopWorkers: boolean;
  stdin?: string;
  /** Variables of the job's environment (from sbatch's) whose values are masked in the job's output. */
  secretNames?: string[];
  /** The stage's work (not read by the launcher): a later attempt adopts the job only when its own matches. */
  fingerprint?: string;
}

export interface SubmissionInput {
  settings: SlurmSettings;
  nodes: number;
  jobName: string;
  logFile: string;
  cwd: string;
  /** Nodes a retry leaves out (a node that failed), on top of the spec's `exclude`. */
  exclude?: string[];
  /** The stage runs on the devices (a torchrun launch); preprocessing and conversion run on the host's CPUs and ask for no gres. */
  usesDevices: boolean;
}

/** sbatch's options, in the order written; the script and its arguments follow them. */
export function sbatchOptions(input: SubmissionInput): string[] {
  const s = input.settings;
  const exclude = [...new Set([...(s.exclude ?? []), ...(input.exclude ?? [])])];
  return [
    '--parsable',
    `--job-name=${input.jobName}`,
    `--partition=${s.partition}`,
    ...(s.account ? [`--account=${s.account}`] : []),
    ...(s.qos ? [`--qos=${s.qos}`] : []),
    ...(s.time ? [`--time=${s.time}`] : []),
    `--nodes=${input.nodes}`,
    '--ntasks-per-node=1',
    ...(s.gresPerNode && input.usesDevices ? [`--gres=${s.gresPerNode}`] : []),
    ...(s.constraint ? [`--constraint=${s.constraint}`] : []),
    ...(exclude.length > 0 ? [`--exclude=${exclude.join(',')}`] : []),
    `--chdir=${input.cwd}`,
    // The job's output is the attempt log, appended to after linkflow's header, on shared storage.
    `--output=${input.logFile}`,
    '--open-mode=append',
    // linkflow retries (and resumes from the newest checkpoint) itself; Slurm's requeue would hide the ending.
    '--no-requeue',
    ...(s.extraArgs ?? []),
  ];
}

/** A job's name: what squeue shows, and how a later attempt finds an earlier one still queued. */
export function jobName(pipeline: string, stage: string, attempt: number): string {
  return `linkflow.${pipeline}.${stage}.${attempt}`;
}

/** The job's name prefix shared by every attempt of a stage. */
export function stageJobPrefix(pipeline: string, stage: string): string {
  return `linkflow.${pipeline}.${stage}.`;
}

/** `scontrol show job -o`'s one line, read into fields (values never contain spaces in the fields we read). */
export function parseScontrolJob(line: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const token of line.trim().split(/\s+/)) {
    const eq = token.indexOf('=');
    if (eq > 0 && !(token.slice(0, eq) in fields)) fields[token.slice(0, eq)] = token.slice(eq + 1);
  }
  return fields;
}

export interface JobInfo {
  state: string;
  reason?: string;
  /** The job's exit code and the signal that ended it ("ExitCode=1:0", "0:9"). */
  exitCode?: number;
  signal?: number;
  nodeList?: string;
}

/** From `scontrol show job -o` fields or `sacct -P` columns. */
export function jobInfo(fields: Record<string, string>): JobInfo {
  const state = (fields.JobState ?? fields.State ?? 'UNKNOWN').split(/\s+/)[0].replace(/\+$/, '');
  const [code, signal] = (fields.ExitCode ?? '').split(':').map(Number);
  const reason = fields.Reason && fields.Reason !== 'None' ? fields.Reason : undefined;
  const nodeList = fields.NodeList && fields.NodeList !== '(null)' && fields.NodeList !== 'None assigned' ? fields.NodeList : undefined;
  return {
    state,
    reason,
    exitCode: Number.isFinite(code) ? code : undefined,
    signal: Number.isFinite(signal) ? signal : undefined,
    nodeList,
  };
}

/** Slurm's job states that are not an ending yet (squeue's and scontrol's long names). */
const QUEUED = new Set(['PENDING', 'CONFIGURING', 'REQUEUED', 'REQUEUE_HOLD', 'REQUEUE_FED', 'RESV_DEL_HOLD', 'SUSPENDED', 'REVOKED']);
const RUNNING = new Set(['RUNNING', 'COMPLETING', 'STAGE_OUT', 'SIGNALING', 'RESIZING', 'STOPPED']);

export type JobPhase = 'queued' | 'running' | 'ended';

export function jobPhase(state: string): JobPhase {
  if (QUEUED.has(state)) return 'queued';
  if (RUNNING.has(state)) return 'running';
  return 'ended';
}

/**
 * How an ended job maps to an attempt's ending. `exit`: the job's own exit, classified from its log
 * as on node workers (COMPLETED, FAILED, and a CANCELLED that linkflow asked for). `class`: Slurm
 * itself knows why it ended, and says it better than the log (which a killed node never finished).
 */
export type JobEnding = { kind: 'exit' } | { kind: 'class'; class: FailureClass; reason: string };

export function jobEnding(info: JobInfo, cancelledByUs: boolean): JobEnding {
  switch (info.state) {
    case 'COMPLETED':
    case 'FAILED':
      return { kind: 'exit' };
    case 'CANCELLED':
      return cancelledByUs ? { kind: 'exit' } : { kind: 'class', class: 'killed', reason: 'the Slurm job was cancelled from outside linkflow (scancel)' };
    case 'NODE_FAIL':
      return { kind: 'class', class: 'node-lost', reason: 'Slurm ended the job with NODE_FAIL: a node of the allocation stopped responding' };
    case 'BOOT_FAIL':
      return { kind: 'class', class: 'node-lost', reason: 'Slurm could not boot a node of the allocation (BOOT_FAIL)' };
    case 'TIMEOUT':
      return { kind: 'class', class: 'time-limit', reason: 'the Slurm job reached its time limit (TIMEOUT)' };
    case 'DEADLINE':
      return { kind: 'class', class: 'time-limit', reason: 'the Slurm job reached its deadline (DEADLINE)' };
    case 'PREEMPTED':
      return { kind: 'class', class: 'preempted', reason: 'Slurm preempted the job for a job of higher priority (PREEMPTED)' };
    case 'OUT_OF_MEMORY':
      return { kind: 'class', class: 'out-of-memory', reason: 'Slurm killed the job for exceeding its memory (OUT_OF_MEMORY)' };
    default:
      return { kind: 'class', class: 'unknown', reason: `the Slurm job ended in state ${info.state}` };
  }
}

/** The exit status node workers report, from Slurm's ExitCode (code, or the signal that ended the batch script). */
export function exitStatusOf(info: JobInfo): { exitCode: number | null; signal: NodeJS.Signals | null } {
  if (info.signal) return { exitCode: null, signal: SIGNALS[info.signal] ?? 'SIGKILL' };
  return { exitCode: info.exitCode ?? 1, signal: null };
}

const SIGNALS: Record<number, NodeJS.Signals> = { 1: 'SIGHUP', 2: 'SIGINT', 6: 'SIGABRT', 9: 'SIGKILL', 11: 'SIGSEGV', 15: 'SIGTERM' };

/** Slurm's reason a job waits, in words for `linkflow status`. */
export function queuedNote(jobId: string, reason: string | undefined): string {
  return `Slurm job ${jobId} queued${reason ? ` (${reason})` : ''}`;
}

/**
 * Which failed nodes a retry excludes: only while the partition keeps enough other nodes for the
 * job (a partition of exactly the job's size would never run it again).
 */
export function retryExclusions(failed: string[], partitionNodes: string[], nodesNeeded: number, alreadyExcluded: string[] = []): string[] {
  const out = new Set(alreadyExcluded);
  const wanted = failed.filter((n) => partitionNodes.includes(n));
  const chosen: string[] = [];
  for (const n of wanted) {
    if (out.has(n)) continue;
    const left = partitionNodes.filter((p) => !out.has(p) && p !== n).length;
    if (left < nodesNeeded) break;
    out.add(n);
    chosen.push(n);
  }
  return chosen;
}

/** The number in a generic resource request ("npu:8", "gpu:a100:4"). */
export function gresCount(gres: string): number | undefined {
  const m = /^[A-Za-z0-9_]+(?::[A-Za-z0-9_.-]+)?:(\d+)$/.exec(gres);
  return m ? Number(m[1]) : undefined;
}

/** The nodes earlier attempts of a stage lost (node-lost with the failed node named): a retry leaves them out. */
export function nodesToAvoid(attempts: readonly { failureClass?: string; node?: string }[]): string[] {
  return [...new Set(attempts.filter((a) => a.failureClass === 'node-lost' && a.node && !a.node.includes(',')).map((a) => a.node!))];
}
