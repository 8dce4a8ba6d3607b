/**
 * What launchers print about how their workers ended. A worker killed by a signal prints nothing of
 * its own; only its launcher says so, each in its own words:
 * - torchrun (torch/distributed/elastic/multiprocessing/api.py): `failed (exitcode: -9) local_rank: 3
 *   (pid: 1234) of binary: …`, then (errors/__init__.py) a ChildFailedError block with `Root Cause`,
 *   `rank : R (local_rank: L)`, `exitcode : -9 (pid: N)`, `traceback : Signal 9 (SIGKILL) received by PID N`.
 *   A death signal to torchrun itself (agent/server/api.py): `Received Signals.SIGTERM death signal, shutting down workers`.
 * - DeepSpeed's launcher (deepspeed/launcher/launch.py sigkill_handler): `[…] exits with return code = -9`.
 * - Slurm's srun: `srun: error: node7: task 3: Killed`, `… task 0: Segmentation fault`, `… task 1: Exited with exit code 1`.
 */

const SIGNAL_NAMES: Record<number, string> = { 1: 'SIGHUP', 2: 'SIGINT', 3: 'SIGQUIT', 6: 'SIGABRT', 7: 'SIGBUS', 9: 'SIGKILL', 11: 'SIGSEGV', 15: 'SIGTERM' };

export function signalName(n: number): string {
  return SIGNAL_NAMES[n] ?? `signal ${n}`;
}

/** One failed worker as its launcher reported it. */
export interface WorkerFailure {
  launcher: 'torchrun' | 'deepspeed' | 'slurm';
  /** The rank (torchrun's global rank, local_rank on its one-line form, Slurm's task). */
  rank?: number;
  exitCode?: number;
  /** The signal that ended the worker (exitcode -N, srun's `Killed`), e.g. SIGKILL. */
  signal?: string;
  /** Index of the line that says so. */
  line: number;
}

/** torchrun's block-form entry, as before: rank and exit code always known. */
export interface TorchrunWorkerFailure {
  rank: number;
  exitCode: number;
  signal?: string;
  line: number;
}

export interface TorchrunReport {
  failures: TorchrunWorkerFailure[];
  /** The agent itself got a death signal (SIGTERM, SIGINT...) and shut its workers down. */
  deathSignal?: { signal: string; line: number };
  /** Log line indices of torchrun's own traceback and failure block: they are not the workers' errors. */
  ownLines: Set<number>;
}

/** Reads torchrun's ChildFailedError block and death-signal warning (see the file's comment). */
export function readTorchrunReport(lines: readonly string[]): TorchrunReport {
  const report: TorchrunReport = { failures: [], ownLines: new Set() };
  let rank: number | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const death = /death signal, shutting down workers/.test(line) ? /Received (?:Signals\.)?(\w+) death signal/.exec(line) : null;
    if (death) report.deathSignal = { signal: /^\d+$/.test(death[1]) ? signalName(Number(death[1])) : death[1], line: i };
    if (/^(?:\S+: )?torch\.distributed\.elastic\.multiprocessing\.(errors\.ChildFailedError|api\.SignalException):/.test(line))
      markOwnTraceback(lines, i, report.ownLines);
    const rankLine = /^\s*(?:\S+: )?\s*rank\s+: (\d+) \(local_rank: \d+\)\s*$/.exec(line);
    if (rankLine) rank = Number(rankLine[1]);
    const exit = /^\s*(?:\S+: )?\s*exitcode\s+: (-?\d+) \(pid: \d+\)\s*$/.exec(line);
    if (exit && rank !== undefined) {
      const code = Number(exit[1]);
      const failure: TorchrunWorkerFailure = { rank, exitCode: code, line: i };
      if (code < 0) failure.signal = signalName(-code);
      if (!report.failures.some((f) => f.rank === rank)) report.failures.push(failure);
      rank = undefined;
    }
  }
  return report;
}

/** From the `Traceback` line above torchrun's exception to the closing `====` of its failure block. */
function markOwnTraceback(lines: readonly string[], at: number, own: Set<number>): void {
  let start = at;
  for (let i = at; i >= Math.max(0, at - 60); i--) {
    if (/Traceback \(most recent call last\)/.test(lines[i])) {
      start = i;
      break;
    }
  }
  let end = at;
  let borders = 0;
  for (let i = at + 1; i < lines.length && i <= at + 400; i++) {
    if (/^(?:\S+: )?=+\s*$/.test(lines[i]) && ++borders === 2) {
      end = i;
      break;
    }
  }
  for (let i = start; i <= end; i++) own.add(i);
}

const TORCHRUN_FAILED = /failed \(exitcode: (-?\d+)\) local_rank: (\d+) \(pid: \d+\) of binary/;
const DEEPSPEED_EXIT = /exits with return code = (-?\d+)/;
const SRUN_TASK = /srun: error: \S+: tasks? ([\d,-]+): (Killed|Segmentation fault|Bus error|Aborted|Terminated|Exited with exit code (\d+))/;

const SRUN_SIGNALS: Record<string, string> = {
  Killed: 'SIGKILL',
  'Segmentation fault': 'SIGSEGV',
  'Bus error': 'SIGBUS',
  Aborted: 'SIGABRT',
  Terminated: 'SIGTERM',
};

/** Every worker failure any launcher reported, in log order. */
export function workerFailures(lines: readonly string[]): WorkerFailure[] {
  const out: WorkerFailure[] = readTorchrunReport(lines).failures.map((f) => ({ launcher: 'torchrun' as const, ...f }));
  lines.forEach((text, line) => {
    const t = TORCHRUN_FAILED.exec(text);
    if (t) {
      const code = Number(t[1]);
      out.push({ launcher: 'torchrun', rank: Number(t[2]), exitCode: code, ...(code < 0 ? { signal: signalName(-code) } : {}), line });
    }
    const d = DEEPSPEED_EXIT.exec(text);
    if (d) {
      const code = Number(d[1]);
      out.push({ launcher: 'deepspeed', exitCode: code, ...(code < 0 ? { signal: signalName(-code) } : {}), line });
    }
    const s = SRUN_TASK.exec(text);
    if (s) {
      const task = Number(s[1].split(/[,-]/)[0]);
      out.push(
        s[3] !== undefined
          ? { launcher: 'slurm', rank: task, exitCode: Number(s[3]), line }
          : { launcher: 'slurm', rank: task, signal: SRUN_SIGNALS[s[2]], line },
      );
    }
  });
  return out.sort((a, b) => a.line - b.line);
}

/** Whether a line is a launcher's summary of a worker's end: kept in the log window whatever its place. */
export function isLauncherSummary(text: string): boolean {
  return (
    TORCHRUN_FAILED.test(text) ||
    DEEPSPEED_EXIT.test(text) ||
    SRUN_TASK.test(text) ||
    /ChildFailedError|Root Cause \(first observed failure\)|death signal, shutting down workers/.test(text) ||
    /^\s*(?:\S+: )?\s*(?:rank|exitcode|error_file|traceback)\s+: /.test(text)
  );
}
