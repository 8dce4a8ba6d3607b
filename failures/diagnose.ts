/**
 * `linkflow diagnose`: the classification an attempt gets, for a log a user already has (a manual
 * run that failed, or an attempt's log). The exit status is rarely known then, so it is read from
 * the log where the log says it.
 */
import type { ExitStatus } from '../common/exit-status.ts';
import { applyLogEvent, parseLogLine, type AttemptProgress } from '../frameworks/modellink/training-log.ts';
import { causeLine, classifyFailure, readTorchrunReport, type FailureClass, type FailureReport, type FailureRule } from './failures.ts';
import { signalName } from './launchers.ts';
import { ATTEMPT_LOG_WINDOW, LogWindow } from './log-window.ts';

export interface KnownExitStatus extends ExitStatus {
  /** Where it came from: the user, linkflow's own line at the end of an attempt log, torchrun's error block. */
  source: 'given' | 'linkflow' | 'torchrun';
}

/** linkflow's last line of an attempt log: `# launched …, exited … (SIGKILL | exit code 1) after 12.3 s`. */
const LINKFLOW_EXIT = /^# launched \S+, exited \S+ \((?:(SIG[A-Z0-9]+)|exit code (-?\d+|null))\) after /;

/**
 * The exit status a log states. linkflow's own line wins; otherwise torchrun's report (readTorchrunReport):
 * the status of the worker that decides, a signal when one killed it (torchrun itself then exits 1).
 */
function exitStatusInLog(lines: readonly string[]): KnownExitStatus | undefined {
  for (let i = lines.length - 1; i >= 0; i--) {
    const m = LINKFLOW_EXIT.exec(lines[i]);
    if (m)
      return m[1]
        ? { exitCode: null, signal: m[1], source: 'linkflow' }
        : { exitCode: m[2] === 'null' ? null : Number(m[2]), signal: null, source: 'linkflow' };
  }
  const { failures } = readTorchrunReport(lines);
  // The root cause is printed last in the block; a signalled worker decides the class (failures.ts).
  const worker = failures.find((f) => f.signal) ?? failures.at(-1);
  if (!worker) return undefined;
  return worker.signal ? { exitCode: null, signal: worker.signal, source: 'torchrun' } : { exitCode: worker.exitCode, signal: null, source: 'torchrun' };
}

/** What linkflow's watcher wrote into an attempt log when it stopped the trainer itself (activities/attempt/watch.ts). */
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

/**
 * A log read line by line as an attempt reads it (what the window keeps, the training progress), then
 * diagnosed: `linkflow diagnose` streams a file through it, the corpus test feeds it each log.
 */
export class LogDiagnosis {
  readonly window: LogWindow;
  readonly progress: AttemptProgress = {};

  constructor(private readonly extraRules: readonly FailureRule[] = []) {
    this.window = new LogWindow({ ...ATTEMPT_LOG_WINDOW, isCause: causeLine(extraRules) });
  }

  push(line: string): void {
    this.window.push(line);
    const event = parseLogLine(line);
    if (event) applyLogEvent(this.progress, event);
  }

  /** The diagnosis, and the kept lines with their numbers in the log (decidedBy indexes them). */
  finish(status?: ExitStatus): { diagnosis: Diagnosis; numbered: { n?: number; text: string }[] } {
    const numbered = this.window.numberedLines();
    const diagnosis = diagnoseLog(
      numbered.map((l) => l.text),
      { nanLoss: this.progress.nanLoss === true, status, extraRules: this.extraRules },
    );
    return { diagnosis, numbered };
  }
}

/** An exit status as a user or a report gives it: 0-255, or -N for a process killed by signal N (Python's returncode). */
export function exitStatusOf(code: number): ExitStatus {
  return code < 0 ? { exitCode: null, signal: signalName(-code) } : { exitCode: code, signal: null };
}
