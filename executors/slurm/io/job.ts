/**
 * An attempt as one Slurm job, seen by the watcher the way it sees a process on a node worker (a
 * RunningProcess: exited, kill with a grace, setGrace), so progress, hang detection and stops stay
 * the watcher's one implementation. The job's output is the attempt log on shared storage; it is
 * tailed into the watcher's lines. Slurm's state is polled: queued (with Slurm's reason), running,
 * ended (with Slurm's ending, read by the outcome).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ExitStatus } from '../../../common/exit-status.ts';
import {
  BATCH_SCRIPT,
  exitStatusOf,
  jobName,
  jobInfo,
  jobPhase,
  parseScontrolJob,
  retryExclusions,
  sbatchOptions,
  stageJobPrefix,
  type JobInfo,
  type SlurmSettings,
  type SlurmTaskFile,
} from '../plan.ts';
import { trackProcess, type RunningProcess } from '../../nodes/io/process-group.ts';
import { failedNodes, hostnames, jobFields, jobsNamed, partitionNodes, sbatch, scancel } from './commands.ts';

const TASK_LAUNCHER = new URL('./task.mjs', import.meta.url).pathname;
const POLL_MS = 1000;
const TAIL_MS = 250;
/** After the grace, how long the stopped job may take to end on its own before scancel. */
const CANCEL_MARGIN_MS = 3000;

export interface SlurmJobOptions {
  pipeline: string;
  stageName: string;
  attempt: number;
  settings: SlurmSettings;
  nodes: number;
  argv: string[];
  cwd: string;
  env: Record<string, string>;
  /** Secrets: passed in sbatch's own environment, which the job inherits (--export=ALL), never written to a file. */
  secretEnv?: Record<string, string>;
  setupScript?: string;
  stdin?: string;
  logFile: string;
  graceMs?: number;
  stopWorkers: boolean;
  /** Nodes earlier attempts lost (node-lost): left out where the partition has others. */
  avoid?: string[];
  onLine: (line: string) => void;
  /** The job started running: the watcher's clocks start here, not while it was queued. */
  onRunning: () => void;
  /** Called while waiting for an earlier attempt's job to go: the attempt heartbeats meanwhile. */
  onWait: () => void;
  usesDevices: boolean;
  /** Identifies the stage's work: a job of an earlier attempt still running is adopted only when it matches. */
  fingerprint: string;
}

/** Where the job ended, for the outcome. */
export interface SlurmJobEnd {
  jobId: string;
  info?: JobInfo;
  /** The allocation's nodes. */
  nodes: string[];
  /** Nodes Slurm has down after a NODE_FAIL. */
  failedNodes: string[];
  /** linkflow stopped or cancelled it. */
  stoppedByUs: boolean;
  /** The job's output (Slurm's StdOut): an adopted job's is an earlier attempt's log. */
  logFile: string;
}

export interface SlurmJob extends RunningProcess {
  jobId: string;
  /** Slurm's state and reason as last seen. */
  last(): JobInfo | undefined;
  ended: Promise<SlurmJobEnd>;
}

export async function startSlurmJob(o: SlurmJobOptions): Promise<SlurmJob> {
  const adopted = await adoptOrCancelEarlierJobs(o);
  if (adopted) return adopted;
  const dir = o.logFile.replace(/\.log$/, '') + '.slurm';
  fs.mkdirSync(dir, { recursive: true });
  const script = path.join(dir, 'batch.sh');
  fs.writeFileSync(script, BATCH_SCRIPT, { mode: 0o755 });
  const stopFile = path.join(dir, 'stop');
  const secretNames = Object.keys(o.secretEnv ?? {});
  const task: SlurmTaskFile = {
    argv: o.argv,
    cwd: o.cwd,
    env: o.env,
    setupScript: o.setupScript,
    stopFile,
    stopWorkers: o.stopWorkers,
    stdin: o.stdin,
    ...(secretNames.length ? { secretNames } : {}),
    fingerprint: o.fingerprint,
  };
  const taskFile = path.join(dir, 'task.json');
  // The stage's environment may hold secrets: readable by the job's user only.
  fs.writeFileSync(taskFile, JSON.stringify(task, null, 2), { mode: 0o600 });
  const exclude = o.avoid?.length ? retryExclusions(o.avoid, await partitionNodes(o.settings.partition), o.nodes, o.settings.exclude) : [];
  const options = sbatchOptions({
    settings: o.settings,
    nodes: o.nodes,
    jobName: jobName(o.pipeline, o.stageName, o.attempt),
    usesDevices: o.usesDevices,
    logFile: o.logFile,
    cwd: o.cwd,
    exclude,
  });
  const args = [process.execPath, TASK_LAUNCHER, taskFile];
  const offset = fs.statSync(o.logFile).size;
  fs.appendFileSync(
    o.logFile,
    `# slurm: sbatch ${JSON.stringify([...options, script, ...args])}${exclude.length ? ` (leaving out ${exclude.join(', ')}, lost by an earlier attempt)` : ''}\n`,
  );
  const jobId = await sbatch(options, script, args, o.secretEnv);
  fs.appendFileSync(o.logFile, `# slurm: job ${jobId} submitted\n`);
  return followJob(o, jobId, stopFile, offset);
}

/**
 * A job of an earlier attempt still queued or running (its worker died) would write the same save
 * directory. When it runs the same work (its task file's fingerprint) it is adopted: followed to its
 * end through its own log and stop file, as if this attempt had submitted it. Otherwise it is
 * cancelled, and this attempt waits until Slurm has it gone: never two jobs of one stage.
 */
async function adoptOrCancelEarlierJobs(o: SlurmJobOptions): Promise<SlurmJob | undefined> {
  const earlier = await jobsNamed(stageJobPrefix(o.pipeline, o.stageName));
  if (earlier.length === 0) return undefined;
  const adoptable = (await Promise.all(earlier.map((id) => earlierJob(id)))).filter((j) => j?.fingerprint === o.fingerprint).at(-1);
  const cancel = earlier.filter((id) => id !== adoptable?.id);
  if (cancel.length > 0) {
    fs.appendFileSync(o.logFile, `# slurm: cancelling job ${cancel.join(', ')} of an earlier attempt of this stage\n`);
    await Promise.all(cancel.map((id) => scancel(id)));
    const deadline = Date.now() + 120_000;
    for (;;) {
      const left = (await jobsNamed(stageJobPrefix(o.pipeline, o.stageName))).filter((id) => cancel.includes(id));
      if (left.length === 0) break;
      // Never a second job beside one that may still write the save directory: this attempt fails, a later one looks again.
      if (Date.now() > deadline) {
        const why = `job ${left.join(', ')} of an earlier attempt of stage ${o.stageName} is still in Slurm 120 s after scancel; not submitting another beside it (check \`squeue -j ${left.join(',')}\`)`;
        fs.appendFileSync(o.logFile, `# ${why}\n`);
        throw new Error(why);
      }
      o.onWait();
      await sleep(POLL_MS);
    }
  }
  if (!adoptable) return undefined;
  fs.appendFileSync(o.logFile, `# slurm: adopting job ${adoptable.id} of an earlier attempt (its worker is gone); its output is ${adoptable.logFile}\n`);
  // Its log from the start: the watcher learns where training is, as if it had followed it all along.
  return followJob({ ...o, logFile: adoptable.logFile }, adoptable.id, adoptable.stopFile, 0);
}

/** An earlier job's own files: its log (Slurm's StdOut), its stop file and its task file's fingerprint. */
async function earlierJob(id: string): Promise<{ id: string; logFile: string; stopFile: string; fingerprint?: string } | undefined> {
  const fields = await jobFields(id).catch(() => undefined);
  if (!fields || !('scontrol' in fields)) return undefined;
  const f = parseScontrolJob(fields.scontrol);
  if (!f.StdOut || !/\.log$/.test(f.StdOut) || jobPhase(jobInfo(f).state) === 'ended') return undefined;
  const dir = f.StdOut.replace(/\.log$/, '') + '.slurm';
  try {
    const task = JSON.parse(fs.readFileSync(path.join(dir, 'task.json'), 'utf8')) as SlurmTaskFile;
    return { id, logFile: f.StdOut, stopFile: task.stopFile, fingerprint: task.fingerprint };
  } catch {
    return undefined;
  }
}

function followJob(o: SlurmJobOptions, jobId: string, stopFile: string, offset: number): SlurmJob {
  let last: JobInfo | undefined;
  let running = false;
  let stoppedByUs = false;
  let graceMs = o.graceMs ?? 10_000;
  let cancelTimer: NodeJS.Timeout | undefined;
  const tail = new LogTail(o.logFile, offset, o.onLine);
  const tailTimer = setInterval(() => tail.read(), TAIL_MS);

  const ended = (async (): Promise<SlurmJobEnd> => {
    let unknownSince: number | undefined;
    for (;;) {
      const info = await jobState(jobId).catch(() => undefined);
      if (info) {
        unknownSince = undefined;
        last = info;
        const phase = jobPhase(info.state);
        if (phase !== 'queued' && !running) {
          running = true;
          o.onRunning();
        }
        if (phase === 'ended') break;
      } else if ((unknownSince ??= Date.now()) < Date.now() - 60_000) break; // the controller forgot it, or is gone for a minute
      await sleep(POLL_MS);
    }
    clearTimeout(cancelTimer);
    clearInterval(tailTimer);
    // Slurm writes the last output before it marks the job done; read it all.
    tail.read(true);
    const nodes = last?.nodeList ? await hostnames(last.nodeList).catch(() => []) : [];
    const failed = last?.state === 'NODE_FAIL' ? await failedNodes(nodes).catch(() => []) : [];
    return { jobId, info: last, nodes, failedNodes: failed, stoppedByUs, logFile: o.logFile };
  })();

  const exited: Promise<ExitStatus> = ended.then((end) => (end.info ? exitStatusOf(end.info) : { exitCode: null, signal: 'SIGKILL' }));
  let killAt: number | undefined;
  const job: SlurmJob = {
    pid: -1,
    jobId,
    last: () => last,
    ended,
    exited,
    async kill(ms = graceMs) {
      stoppedByUs = true;
      const deadline = Date.now() + ms;
      if (killAt === undefined || deadline < killAt) {
        killAt = deadline;
        clearTimeout(cancelTimer);
        if (ms <= 0 || !running) {
          // A fault (NaN, hang) stops at once, as SIGKILL does on a node; a queued job has nothing to save.
          if (running) await scancel(jobId, 'KILL');
          await scancel(jobId);
        } else {
          fs.writeFileSync(stopFile, `stop ${ms}\n`);
          cancelTimer = setTimeout(() => void scancel(jobId), ms + CANCEL_MARGIN_MS);
        }
      }
      await exited;
    },
    setGrace(ms) {
      graceMs = ms;
    },
  };
  // The job runs on Slurm's nodes: a drain stops it, but this (login) node is not busy with it.
  trackProcess(job, 'elsewhere');
  return job;
}

/** The job's output as lines, from where linkflow's header ended. */
class LogTail {
  private pending = '';
  constructor(
    private readonly file: string,
    private offset: number,
    private readonly onLine: (line: string) => void,
  ) {}

  read(final = false): void {
    let fd: number | undefined;
    try {
      fd = fs.openSync(this.file, 'r');
      const size = fs.fstatSync(fd).size;
      while (this.offset < size) {
        const buf = Buffer.alloc(Math.min(1 << 20, size - this.offset));
        const n = fs.readSync(fd, buf, 0, buf.length, this.offset);
        if (n <= 0) break;
        this.offset += n;
        this.pending += buf.subarray(0, n).toString('utf8');
        const lines = this.pending.split('\n');
        this.pending = lines.pop() ?? '';
        for (const line of lines) this.onLine(line);
      }
    } catch {
      // Not there yet, or shared storage hiccuped: the next read catches up.
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
    if (final && this.pending) {
      this.onLine(this.pending);
      this.pending = '';
    }
  }
}

async function jobState(id: string): Promise<JobInfo | undefined> {
  const fields = await jobFields(id);
  return fields && jobInfo('scontrol' in fields ? parseScontrolJob(fields.scontrol) : fields.sacct);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
