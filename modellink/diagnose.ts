/**
 * `linkflow diagnose`: the classification an attempt gets, for a log a user already has (a manual
 * run that failed, or an attempt's log). The exit status is rarely known then, so it is read from
 * the log where the log says it.
 */
import { classifyFailure, type ExitStatus, type FailureClass, type FailureReport, type FailureRule } from './failures.ts';

export interface KnownExitStatus extends ExitStatus {
  /** Where it came from: the user, linkflow's own line at the end of an attempt log, torchrun's error block. */
  source: 'given' | 'linkflow' | 'torchrun';
}

/** linkflow's last line of an attempt log: `# launched …, exited … (SIGKILL | exit code 1) after 12.3 s`. */
const LINKFLOW_EXIT = /^# launched \S+, exited \S+ \((?:(SIG[A-Z0-9]+)|exit code (-?\d+|null))\) after /;
/** torchrun's ChildFailedError block (torch/distributed/elastic/multiprocessing/errors/__init__.py). */
const TORCHRUN_ROOT_CAUSE = /^Root Cause \(first observed failure\):/;
const TORCHRUN_EXITCODE = /^\s*exitcode\s*: (-?\d+) \(pid: \d+\)/;
const TORCHRUN_SIGNAL = /^\s*traceback\s*: Signal \d+ \((SIG[A-Z0-9]+)\) received by PID/;

/**
 * The exit status a log states. linkflow's own line wins; otherwise torchrun's root cause: a
 * negative exitcode is the signal that killed the worker (torchrun itself then exits 1).
 */
export function exitStatusInLog(lines: readonly string[]): KnownExitStatus | undefined {
  for (let i = lines.length - 1; i >= 0; i--) {
    const m = LINKFLOW_EXIT.exec(lines[i]);
    if (m) return m[1] ? { exitCode: null, signal: m[1], source: 'linkflow' } : { exitCode: m[2] === 'null' ? null : Number(m[2]), signal: null, source: 'linkflow' };
  }
  const root = lines.findIndex((l) => TORCHRUN_ROOT_CAUSE.test(l));
  if (root < 0) return undefined;
  for (let i = root + 1; i < Math.min(lines.length, root + 12); i++) {
    const code = TORCHRUN_EXITCODE.exec(lines[i]);
    if (!code) continue;
    const exitcode = Number(code[1]);
    if (exitcode >= 0) return { exitCode: exitcode, signal: null, source: 'torchrun' };
    const named = lines.slice(i, i + 3).map((l) => TORCHRUN_SIGNAL.exec(l)?.[1]).find(Boolean);
    return { exitCode: null, signal: named ?? `SIG${-exitcode}`, source: 'torchrun' };
  }
  return undefined;
}

/** What linkflow's watcher wrote into an attempt log when it stopped the trainer itself (activities/run-stage.ts). */
const WATCHER_NOTES: readonly { class: FailureClass; pattern: RegExp }[] = [
  { class: 'hang', pattern: /^linkflow: no progress for \d+ s during \S+ .*killing the process group/ },
  { class: 'node-lost', pattern: /^linkflow: another attempt took the save directory lease/ },
];

export interface Diagnosis {
  /** undefined: the log shows no failure (a run that succeeded, or one still running). */
  failure?: FailureReport;
  status?: KnownExitStatus;
}

/**
 * Classifies a log as an attempt's end is classified. `lines` is what a LogWindow kept; `nanLoss`
 * whether the training log lines showed a NaN loss (as the attempt's watcher sees it).
 */
export function diagnoseLog(lines: readonly string[], opts: { nanLoss: boolean; status?: ExitStatus; extraRules?: readonly FailureRule[] }): Diagnosis {
  const status: KnownExitStatus | undefined = opts.status ? { ...opts.status, source: 'given' } : exitStatusInLog(lines);
  const noted = WATCHER_NOTES.find((n) => lines.some((l) => n.pattern.test(l)))?.class;
  const detected: FailureClass | undefined = noted ?? (opts.nanLoss ? 'nan-loss' : undefined);
  // Without a stated status, a log that shows an error came from a process that exited 1 (Python's
  // status for an uncaught exception); one that shows none is not a failure we can see.
  const report = classifyFailure(status ?? { exitCode: 1, signal: null }, [...lines], detected, opts.extraRules);
  if (!status && report.class === 'unknown') return {};
  if (status && status.exitCode === 0 && !status.signal && !detected) return { status };
  return { failure: report, status };
}
