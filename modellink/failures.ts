/**
 * Why an attempt failed, from its exit status and its log. Deterministic classes (bad arguments,
 * missing input) fail the stage at once: retrying cannot help and would hide the cause.
 */

export type FailureClass =
  | 'bad-arguments'
  | 'missing-input'
  | 'communication'
  | 'out-of-memory'
  | 'nan-loss'
  | 'segfault'
  | 'killed'
  | 'hang'
  | 'node-lost'
  | 'no-result'
  | 'exception'
  | 'unknown';

export const NON_RETRYABLE: ReadonlySet<FailureClass> = new Set(['bad-arguments', 'missing-input', 'no-result']);

/** Faults of the machines, not of the job: they have a retry budget of their own. */
export const INFRASTRUCTURE: ReadonlySet<FailureClass> = new Set(['communication', 'node-lost', 'killed', 'hang', 'segfault']);

export const FAILURE_CLASSES: readonly FailureClass[] = [
  'bad-arguments', 'missing-input', 'communication', 'out-of-memory', 'nan-loss', 'segfault', 'killed', 'hang', 'node-lost', 'no-result', 'exception', 'unknown',
];

export interface FailureRule {
  class: FailureClass;
  pattern: RegExp;
}

/** Checked in order against the log tail; the first rule with a matching line wins. */
export const FAILURE_RULES: readonly FailureRule[] = [
  { class: 'bad-arguments', pattern: /error: (unrecognized arguments|argument \S+|the following arguments are required)/ },
  // Megatron's check that a checkpoint's TP/PP match the job: retrying cannot change either.
  { class: 'bad-arguments', pattern: /value from checkpoint \(\d+\) is not equal to the input argument value/ },
  { class: 'missing-input', pattern: /FileNotFoundError|No such file or directory|is not a directory or does not exist|'--exit-on-missing-checkpoint' set|Error no file named .* found in directory/ },
  { class: 'nan-loss', pattern: /found NaN in local (forward loss|grad norm)|Loss is NaN|nan in loss/i },
  { class: 'communication', pattern: /HCCL|NCCL|EI0002|EI0006|connection reset|Connection reset by peer|Connection refused|communication timeout|DistNetworkError|DistStoreError|clients joined/i },
  { class: 'out-of-memory', pattern: /out of memory|OutOfMemoryError/i },
  { class: 'segfault', pattern: /Segmentation fault|SIGSEGV/ },
  { class: 'exception', pattern: /^Traceback \(most recent call last\)|Error: |Exception: /m },
];

export interface ExitStatus {
  exitCode: number | null;
  signal: string | null;
}

export interface FailureReport {
  class: FailureClass;
  retryable: boolean;
  /** One line a person reads first. */
  reason: string;
  /** The log lines that prove it (matching line with context, or the tail). */
  excerpt: string[];
}

const CONTEXT_BEFORE = 3;
const CONTEXT_AFTER = 6;
const TAIL = 20;

const MAX_EXCERPT = 40;

/** The lines around a hit; a Python traceback is shown from its first line, as people read it. */
function excerptAround(lines: string[], index: number): string[] {
  let start = Math.max(0, index - CONTEXT_BEFORE);
  for (let i = index; i >= Math.max(0, index - 100); i--) {
    if (lines[i].startsWith('Traceback (most recent call last)')) {
      start = i;
      break;
    }
  }
  return trim(lines.slice(start, Math.min(lines.length, index + CONTEXT_AFTER + 1)));
}

/** Long excerpts keep their first lines (a usage line, a traceback header) and their end. */
function trim(excerpt: string[]): string[] {
  return excerpt.length <= MAX_EXCERPT ? excerpt : [...excerpt.slice(0, 5), `... (${excerpt.length - MAX_EXCERPT + 5} lines) ...`, ...excerpt.slice(-(MAX_EXCERPT - 6))];
}

/** One failed worker as torchrun's ChildFailedError block lists it. */
export interface TorchrunWorkerFailure {
  rank: number;
  exitCode: number;
  /** The signal that killed the worker (exitcode -N), e.g. SIGKILL. */
  signal?: string;
  /** Index of its `exitcode  :` line in the log. */
  line: number;
}

/** What torchrun (torch.distributed.run's elastic agent) printed about its end. */
export interface TorchrunReport {
  failures: TorchrunWorkerFailure[];
  /** The agent itself got a death signal (SIGTERM, SIGINT...) and shut its workers down. */
  deathSignal?: { signal: string; line: number };
  /** Log line indices of torchrun's own traceback and failure block: they are not the workers' errors. */
  ownLines: Set<number>;
}

const SIGNAL_NAMES: Record<number, string> = { 1: 'SIGHUP', 2: 'SIGINT', 3: 'SIGQUIT', 6: 'SIGABRT', 7: 'SIGBUS', 9: 'SIGKILL', 11: 'SIGSEGV', 15: 'SIGTERM' };

/**
 * Reads torchrun's failure report: its ChildFailedError block (torch/distributed/elastic/multiprocessing/
 * errors/__init__.py: `rank : R (local_rank: L)` then `exitcode : -9 (pid: N)` per failed worker) and its
 * death-signal warning (agent/server/api.py: `Received Signals.SIGTERM death signal, shutting down workers`).
 */
export function readTorchrunReport(lines: readonly string[]): TorchrunReport {
  const report: TorchrunReport = { failures: [], ownLines: new Set() };
  let rank: number | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const death = /death signal, shutting down workers$/.test(line) ? /Received (?:Signals\.)?(\w+) death signal/.exec(line) : null;
    if (death) report.deathSignal = { signal: /^\d+$/.test(death[1]) ? (SIGNAL_NAMES[Number(death[1])] ?? `signal ${death[1]}`) : death[1], line: i };
    if (/^torch\.distributed\.elastic\.multiprocessing\.(errors\.ChildFailedError|api\.SignalException):/.test(line)) markOwnTraceback(lines, i, report.ownLines);
    const rankLine = /^\s+rank\s+: (\d+) \(local_rank: \d+\)$/.exec(line);
    if (rankLine) rank = Number(rankLine[1]);
    const exit = /^\s+exitcode\s+: (-?\d+) \(pid: \d+\)$/.exec(line);
    if (exit && rank !== undefined) {
      const code = Number(exit[1]);
      const failure: TorchrunWorkerFailure = { rank, exitCode: code, line: i };
      if (code < 0) failure.signal = SIGNAL_NAMES[-code] ?? `signal ${-code}`;
      if (!report.failures.some((f) => f.rank === rank)) report.failures.push(failure);
      rank = undefined;
    }
  }
  return report;
}

/** From the `Traceback` line above torchrun's exception to the closing `====` of its failure block. */
function markOwnTraceback(lines: readonly string[], at: number, own: Set<number>): void {
  let start = at;
  for (let i = at; i >= Math.max(0, at - 40); i--) {
    if (lines[i].startsWith('Traceback (most recent call last)')) {
      start = i;
      break;
    }
  }
  let end = at;
  let borders = 0;
  for (let i = at + 1; i < lines.length && i <= at + 400; i++) {
    if (/^=+$/.test(lines[i]) && ++borders === 2) {
      end = i;
      break;
    }
  }
  for (let i = start; i <= end; i++) own.add(i);
}

/**
 * Classifies a finished process from its log lines (the first and the last lines of a long log).
 * `detected` is a class the watcher established itself (hang, nan-loss).
 */
export function classifyFailure(status: ExitStatus, logTail: string[], detected?: FailureClass, extraRules: readonly FailureRule[] = []): FailureReport {
  const make = (cls: FailureClass, reason: string, excerpt: string[]): FailureReport => ({ class: cls, retryable: !NON_RETRYABLE.has(cls), reason, excerpt });
  const tail = logTail.slice(-TAIL);
  if (detected === 'hang') return make('hang', 'no progress within the no-progress window; the process group was killed', tail);
  if (detected === 'nan-loss') {
    const i = logTail.findIndex((l) => /lm loss: [-+]?nan|number of nan iterations:\s+[1-9]/i.test(l));
    return make('nan-loss', 'the loss became NaN; the process group was killed', i >= 0 ? excerptAround(logTail, i) : tail);
  }
  if (detected) return make(detected, detected, tail);
  // torchrun exits 1 whatever ended its workers: a worker killed by a signal (the host's OOM killer, a
  // SIGKILL) printed nothing of its own, and the HCCL errors of its peers only echo its loss.
  const torchrun = readTorchrunReport(logTail);
  const signalled = torchrun.failures.find((f) => f.signal);
  if (signalled?.signal) {
    const cls: FailureClass = signalled.signal === 'SIGSEGV' ? 'segfault' : 'killed';
    return make(cls, `rank ${signalled.rank} was killed by ${signalled.signal} (torchrun: ${logTail[signalled.line].trim()})`, excerptAround(logTail, signalled.line));
  }
  if (torchrun.deathSignal) {
    const { signal, line } = torchrun.deathSignal;
    return make('killed', `torchrun received ${signal} and shut its workers down`, excerptAround(logTail, line));
  }
  // A pipeline's own rules (spec failureRules) come before the built-in ones.
  for (const rule of [...extraRules, ...FAILURE_RULES]) {
    // The last match is nearest to the failure (a traceback's final line names the error); torchrun's
    // own ChildFailedError traceback only says that a worker failed, not why.
    let hit = -1;
    for (let i = logTail.length - 1; i >= 0; i--) {
      if (torchrun.ownLines.has(i)) continue;
      if (rule.pattern.test(logTail[i])) {
        hit = i;
        break;
      }
    }
    if (hit < 0) continue;
    if (rule.class === 'bad-arguments' && status.exitCode !== 2 && status.exitCode !== 1) continue;
    if (rule.class === 'exception' && status.signal) break;
    const start = rule.class === 'bad-arguments' ? Math.max(0, logTail.findIndex((l) => l.startsWith('usage:'))) : undefined;
    const excerpt = start !== undefined ? trim(logTail.slice(start, hit + 1)) : excerptAround(logTail, hit);
    return make(rule.class, `${logTail[hit].trim()}`, excerpt);
  }
  if (status.signal === 'SIGSEGV') return make('segfault', 'the process was killed by SIGSEGV', tail);
  if (status.signal) return make('killed', `the process was killed by ${status.signal}`, tail);
  if (status.exitCode === 137 || status.exitCode === 143) return make('killed', `the process exited with ${status.exitCode} (killed)`, tail);
  const worker = torchrun.failures[0];
  if (worker) return make('unknown', `rank ${worker.rank} exited with code ${worker.exitCode} (torchrun)`, excerptAround(logTail, worker.line));
  return make('unknown', `the process exited with code ${status.exitCode}`, tail);
}
