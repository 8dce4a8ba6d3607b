/**
 * Runs one command on this node as its own process group, streams its output to a log file
 * line by line (never holding it whole), and kills the whole group on request — torchrun's
 * children included.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import readline from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { ExitStatus } from '../../../common/exit-status.ts';
import type { Masker } from '../../../node/mask.ts';

/** How the command ended (common/exit-status.ts), re-exported with the API that reports it. */
export type { ExitStatus };

export interface StartOptions {
  argv: string[];
  cwd: string;
  env: Record<string, string | undefined>;
  /** Output of stdout and stderr is appended here as it arrives. */
  logFile: string;
  onLine?: (line: string) => void;
  /** Written to standard input, which is then closed; without it standard input is /dev/null. */
  stdin?: string;
  /** Between SIGTERM and SIGKILL when the group is stopped (until setGrace changes it); default 10 s. */
  graceMs?: number;
  /**
   * Whom a stop sends SIGTERM to. 'group' (default): the whole process group. 'workers': the
   * launcher's child processes (torchrun's workers), or the launcher itself while it has none, so
   * that an elastic agent's own 30 s shutdown never cuts a checkpoint save (see supervisor.mjs).
   * Either way the whole group gets SIGKILL after the grace.
   */
  stopSignalTo?: 'group' | 'workers';
  /** Secret values masked out of the output before it reaches the log file or onLine. */
  masker?: Masker;
}

const SUPERVISOR = fileURLToPath(new URL('./supervisor.mjs', import.meta.url));
const DEFAULT_GRACE_MS = 10_000;
/** After the grace, how long we give the supervisor to kill the group before we do. */
const BACKSTOP_MS = 2_000;

export interface RunningProcess {
  pid: number;
  /** Resolves when the main process has exited and its output is flushed to the log. */
  exited: Promise<ExitStatus>;
  /**
   * SIGTERM (to the group or the launcher's workers), SIGKILL to the group after `graceMs` (default:
   * the current grace; 0: SIGKILL at once); resolves when the main process is gone. A second call
   * can shorten a stop under way, never lengthen it.
   */
  kill(graceMs?: number): Promise<void>;
  /** The grace of later stops, including the one the supervisor makes when this worker dies. */
  setGrace(graceMs: number): void;
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

/** Every command this process has running, so a draining worker can stop them all at once. */
const running = new Set<RunningProcess>();

/** The ones that run on other machines (Slurm jobs): stopped with the others, but they leave this node's devices free. */
const elsewhere = new Set<RunningProcess>();

/** How many commands run on this node: a node running one is not free for another attempt. */
export function runningCount(): number {
  return running.size - elsewhere.size;
}

/** A command this worker runs, here or elsewhere (a Slurm job): a drain stops it with the others. */
export function trackProcess(handle: RunningProcess, where: 'here' | 'elsewhere' = 'here'): void {
  running.add(handle);
  if (where === 'elsewhere') elsewhere.add(handle);
  void handle.exited.finally(() => {
    running.delete(handle);
    elsewhere.delete(handle);
  });
}

/** SIGTERM (then SIGKILL after the grace) to every running command's group; resolves when all are gone. */
let stoppingAll = false;

/** Whether this worker is stopping every command (a node drain): a trainer that exits now was stopped by us. */
export function stoppingAllProcesses(): boolean {
  return stoppingAll;
}

export async function stopAllProcesses(graceMs?: number): Promise<number> {
  stoppingAll = true;
  const all = [...running];
  await Promise.all(all.map((p) => p.kill(graceMs)));
  return all.length;
}

export function startProcess(options: StartOptions): RunningProcess {
  const [command, ...args] = options.argv;
  if (!command) throw new Error('empty argv');
  const log = fs.createWriteStream(options.logFile, { flags: 'a' });
  // The supervisor leads a new process group (one kill reaches the launcher and every rank it
  // started) and stops that group if this worker dies: fd 3 is its lifeline to us.
  let graceMs = options.graceMs ?? DEFAULT_GRACE_MS;
  const supervisorOptions = [String(graceMs), ...(options.stopSignalTo === 'workers' ? ['--stop-workers'] : [])];
  const child = spawn(process.execPath, [SUPERVISOR, ...supervisorOptions, '--', command, ...args], {
    cwd: options.cwd,
    env: options.env,
    stdio: [options.stdin !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe', 'pipe'],
    detached: true,
  });

  if (options.stdin !== undefined && child.stdin) {
    child.stdin.on('error', () => undefined); // the process may exit before reading it all
    child.stdin.end(options.stdin);
  }

  const spawnError = new Promise<ExitStatus>((resolve) => {
    child.once('error', (err) => {
      log.write(`linkflow: could not start ${command}: ${err.message}\n`);
      options.onLine?.(`linkflow: could not start ${command}: ${err.message}`);
      resolve({ exitCode: 127, signal: null });
    });
  });

  const masker = options.masker?.active ? options.masker : undefined;
  const onLine = options.onLine && masker ? (line: string) => options.onLine!(masker.mask(line)) : options.onLine;
  const streamsDone = [child.stdout!, child.stderr!].map((stream: Readable) => {
    const toLog = masker ? stream.pipe(masker.stream()) : stream;
    toLog.pipe(log, { end: false });
    const lines = readline.createInterface({ input: stream, crlfDelay: Infinity });
    if (onLine) lines.on('line', onLine);
    const read = new Promise<void>((resolve) => lines.once('close', () => resolve()));
    // The masking stream writes its last line to the log after the pipe closed: the log ends after it.
    return masker ? Promise.all([read, new Promise<void>((resolve) => toLog.once('end', () => resolve()))]).then(() => undefined) : read;
  });

  const exitedMain = new Promise<ExitStatus>((resolve) => {
    child.once('exit', (code, signal) => resolve({ exitCode: code, signal }));
  });

  const exited = Promise.race([exitedMain, spawnError]).then(async (status) => {
    // Whatever the launcher left behind in its group goes with it.
    if (child.pid) signalGroup(child.pid, 'SIGKILL');
    // Output still in the pipes is flushed before we report; a grandchild holding a pipe open cannot stall us.
    await Promise.race([Promise.all(streamsDone), new Promise((r) => setTimeout(r, 5000))]);
    await new Promise<void>((resolve) => log.end(() => resolve()));
    return status;
  });

  // fd 3: the supervisor's lifeline, and how we tell it the grace and when to stop.
  const control = child.stdio[3] as Writable | null;
  control?.on('error', () => undefined); // the supervisor may be gone already
  const tell = (line: string): boolean => {
    if (!control || control.destroyed) return false;
    control.write(`${line}\n`);
    return true;
  };
  let killAt: number | undefined;
  let backstop: NodeJS.Timeout | undefined;

  const handle: RunningProcess = {
    pid: child.pid ?? -1,
    exited,
    async kill(ms = graceMs) {
      if (!child.pid) return;
      const deadline = Date.now() + ms;
      if (killAt === undefined || deadline < killAt) {
        killAt = deadline;
        clearTimeout(backstop);
        if (ms <= 0) signalGroup(child.pid, 'SIGKILL');
        else {
          // The supervisor sends SIGTERM where the launcher needs it and SIGKILL after the grace;
          // should it not, the group goes a little later from here.
          if (!tell(`stop ${ms}`)) signalGroup(child.pid, 'SIGTERM');
          backstop = setTimeout(() => signalGroup(child.pid!, 'SIGKILL'), ms + BACKSTOP_MS);
        }
      }
      await exited;
      clearTimeout(backstop);
    },
    setGrace(ms) {
      if (ms === graceMs) return;
      graceMs = ms;
      tell(`grace ${ms}`);
    },
  };
  trackProcess(handle);
  return handle;
}
