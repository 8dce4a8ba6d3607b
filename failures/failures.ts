/**
 * Why an attempt failed, from its exit status and its log. Deterministic classes (bad arguments,
 * missing input) fail the stage at once: retrying cannot help and would hide the cause.
 */
import type { ExitStatus } from '../common/exit-status.ts';
import { lossIsNaN, parseLogLine } from '../frameworks/modellink/training-log.ts';

/** Every class an attempt's failure can have; a spec's failureRules name one of them. */
export const FAILURE_CLASSES = [
  'bad-arguments',
  'missing-input',
  'communication',
  'out-of-memory',
  'nan-loss',
  'segfault',
  'killed',
  'hang',
  'node-lost',
  // Slurm's endings (executors/slurm/plan.ts): the job's time limit, and a preemption by a job of higher priority.
  'time-limit',
  'preempted',
  // Kubernetes refused the gang (executors/kubernetes/endings.ts): its image cannot be pulled, admission or a controller refused its pods.
  'rejected',
  'no-result',
  'exception',
  'unknown',
] as const;

export type FailureClass = (typeof FAILURE_CLASSES)[number];

export const NON_RETRYABLE: ReadonlySet<FailureClass> = new Set(['bad-arguments', 'missing-input', 'no-result', 'rejected']);

/** Faults of the machines, not of the job: they have a retry budget of their own. */
export const INFRASTRUCTURE: ReadonlySet<FailureClass> = new Set(['communication', 'node-lost', 'killed', 'hang', 'segfault', 'preempted']);

/**
 * How a rule's lines relate to the failure. In a job of many ranks one rank fails first (its device
 * ran out of memory, it crashed) and the others then fail only because their peer vanished: they
 * log HCCL errors (EI0002, EI0006, ERR02200), launchers log their summaries. Those are `echo`es: a
 * `cause` found anywhere in the same log wins over them, whatever their order or number.
 * `fallback` rules (a bare traceback) speak only when neither causes nor echoes do.
 */
export type RuleRole = 'cause' | 'echo' | 'fallback';

export interface FailureRule {
  class: FailureClass;
  pattern: RegExp;
  /** Default `cause`. */
  role?: RuleRole;
  /** A further test of a matching line in its context. */
  accept?: (lines: readonly string[], index: number) => boolean;
}

/** Ascend's device out-of-memory, in each form a CANN log prints it (reference/modellink/real-sources.md). */
const DEVICE_OOM = /NPU out of memory|\bEL0004\b|Failed to allocate memory|rtMalloc\b.*(failed|out of memory)|out of memory|OutOfMemoryError/i;

/** What every rank prints when a peer is gone, and what a real network fault prints too. */
const COMMUNICATION =
  'HCCL|NCCL|EI0002|EI0006|ERR02200|connection reset|Connection reset by peer|Connection refused|communication timeout|DistNetworkError|DistStoreError|clients joined';

/**
 * A Python error line of the job's own (`KeyError: ...`, `RuntimeError: The Inner error is reported
 * as above` after a device error), not one about a lost peer, and not torchrun's ChildFailedError
 * that only reports a worker's failure (torch/distributed/elastic/multiprocessing/errors).
 */
const OWN_ERROR = new RegExp(`^(?!.*(?:${COMMUNICATION}))[\\w.]*(?<!ChildFailed)(?:Error|Exception): `, 'i');

/** Within a role, rules are checked in this order; the first rule with a matching line wins. */
const FAILURE_RULES: readonly FailureRule[] = [
  { class: 'bad-arguments', pattern: /error: (unrecognized arguments|argument \S+|the following arguments are required)/ },
  // Megatron's check that a checkpoint's TP/PP match the job: retrying cannot change either.
  { class: 'bad-arguments', pattern: /value from checkpoint \(\d+\) is not equal to the input argument value/ },
  {
    class: 'missing-input',
    pattern:
      /FileNotFoundError|No such file or directory|is not a directory or does not exist|'--exit-on-missing-checkpoint' set|Error no file named .* found in directory/,
  },
  { class: 'nan-loss', pattern: /found NaN in local (forward loss|grad norm)|Loss is NaN|nan in loss/i },
  { class: 'out-of-memory', pattern: DEVICE_OOM },
  { class: 'segfault', pattern: /Segmentation fault|SIGSEGV/ },
  // A rank's own crash (an AICore error, a KeyError in its data loader) is a cause like an OOM:
  // the error line that ends a traceback, not an error merely mentioned in a message.
  { class: 'exception', pattern: OWN_ERROR, accept: endsTraceback },
  { class: 'communication', pattern: new RegExp(COMMUNICATION, 'i'), role: 'echo' },
  { class: 'exception', pattern: /(?<!ChildFailed)Error: |Exception: /, role: 'fallback' },
  { class: 'exception', pattern: /^Traceback \(most recent call last\)/, role: 'fallback' },
];

/** The classes of echo rules: what ranks print when a peer is gone, so a gang blames another rank first. */
export const ECHO_CLASSES: ReadonlySet<FailureClass> = new Set(FAILURE_RULES.filter((r) => r.role === 'echo').map((r) => r.class));

const ROLE_ORDER: readonly RuleRole[] = ['cause', 'echo', 'fallback'];

/** Whether the line ends a Python traceback: above it only frames (indented) up to the header. */
function endsTraceback(lines: readonly string[], index: number): boolean {
  for (let i = index - 1; i >= Math.max(0, index - 400); i--) {
    if (lines[i].startsWith('Traceback (most recent call last)')) return true;
    if (!lines[i].startsWith('  ')) return false;
  }
  return false;
}

/**
 * The order rules are tried in: a pipeline's own rules (spec failureRules) first, then the built-in
 * causes, echoes and fallbacks.
 */
function rulesInOrder(extraRules: readonly FailureRule[] = []): FailureRule[] {
  return [...extraRules, ...ROLE_ORDER.flatMap((role) => FAILURE_RULES.filter((r) => (r.role ?? 'cause') === role))];
}

/**
 * A line worth keeping however long the log grows: one a pipeline's own rule or a built-in cause
 * that other ranks' echoes can bury matches (out of memory, NaN, segfault). Not the non-retryable
 * causes: argparse and missing inputs fail at start-up, within the log's first lines, and a stray
 * "No such file or directory" kept from the middle of a long run must not end a stage unretried.
 * Nor a rank's own traceback, which is recognised only whole (see endsTraceback).
 */
export function causeLine(extraRules: readonly FailureRule[] = []): (line: string) => boolean {
  const causes = [...extraRules, ...FAILURE_RULES.filter((r) => (r.role ?? 'cause') === 'cause' && !NON_RETRYABLE.has(r.class) && !r.accept)];
  return (line) => causes.some((r) => r.pattern.test(line));
}

/**
 * CANN's pointer to the real error: torch_npu ends a device error's traceback with "The Inner error
 * is reported as above" (E39999, EZ9999, EL0004, ...), so the error code line above says what happened.
 */
const INNER_ERROR_POINTER = /The Inner error is reported as above/;
/** A CANN error code line: `EZ9999: ...`, `EL0004: ...`, `Memory_Allocation_Failure(EL0004): ...`. */
const CANN_ERROR_CODE = /\bE[A-Z0-9]\d{4}\b[):]/;
const INNER_ERROR_LOOKBACK = 120;

/** The nearest CANN error code line above a pointer line, if any. */
function innerErrorAbove(lines: readonly string[], index: number): number | undefined {
  if (!INNER_ERROR_POINTER.test(lines[index])) return undefined;
  for (let i = index - 1; i >= Math.max(0, index - INNER_ERROR_LOOKBACK); i--) {
    if (CANN_ERROR_CODE.test(lines[i])) return i;
  }
  return undefined;
}

export interface FailureReport {
  class: FailureClass;
  retryable: boolean;
  /** One line a person reads first. */
  reason: string;
  /** The log lines that prove it (matching line with context, or the tail). */
  excerpt: string[];
  /** Index (in the lines classified) of the line that decided the class, when one did. */
  decidedBy?: number;
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
  return excerpt.length <= MAX_EXCERPT
    ? excerpt
    : [...excerpt.slice(0, 5), `... (${excerpt.length - MAX_EXCERPT + 5} lines) ...`, ...excerpt.slice(-(MAX_EXCERPT - 6))];
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
    if (/^torch\.distributed\.elastic\.multiprocessing\.(errors\.ChildFailedError|api\.SignalException):/.test(line))
      markOwnTraceback(lines, i, report.ownLines);
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
  const make = (cls: FailureClass, reason: string, excerpt: string[], decidedBy?: number): FailureReport => ({
    class: cls,
    retryable: !NON_RETRYABLE.has(cls),
    reason,
    excerpt,
    ...(decidedBy !== undefined ? { decidedBy } : {}),
  });
  const tail = logTail.slice(-TAIL);
  if (detected === 'hang') return make('hang', 'no progress within the no-progress window; the process group was killed', tail);
  if (detected === 'nan-loss') {
    const i = firstNaNLine(logTail);
    const event = i >= 0 ? parseLogLine(logTail[i]) : undefined;
    const where = event?.type === 'iteration' ? ` at iteration ${event.iteration}` : '';
    return make('nan-loss', `the loss became NaN${where}`, i >= 0 ? excerptAround(logTail, i) : tail, i >= 0 ? i : undefined);
  }
  if (detected) return make(detected, detected, tail);
  // torchrun exits 1 whatever ended its workers. Its own traceback (ChildFailedError, SignalException)
  // only says that a worker failed, never why, so no rule reads those lines.
  const torchrun = readTorchrunReport(logTail);
  let torchrunRead = false;
  for (const rule of rulesInOrder(extraRules)) {
    if (!torchrunRead && (rule.role ?? 'cause') !== 'cause') {
      // A worker killed by a signal (the host's OOM killer, a SIGKILL) printed nothing of its own: after
      // the causes, before its peers' HCCL errors, which only echo its loss.
      torchrunRead = true;
      const signalled = torchrunSignalReport(torchrun, logTail);
      if (signalled) return make(signalled.class, signalled.reason, excerptAround(logTail, signalled.line), signalled.line);
    }
    const hit = lastHit(logTail, rule, torchrun.ownLines);
    if (hit < 0) continue;
    if (rule.class === 'bad-arguments' && status.exitCode !== 2 && status.exitCode !== 1) continue;
    if (rule.class === 'exception' && status.signal) break;
    if (rule.class === 'bad-arguments') {
      const start = Math.max(
        0,
        logTail.findIndex((l) => l.startsWith('usage:')),
      );
      return make(rule.class, logTail[hit].trim(), trim(logTail.slice(start, hit + 1)), hit);
    }
    // "The Inner error is reported as above": the error code line above is the reason to read.
    const inner = innerErrorAbove(logTail, hit);
    if (inner !== undefined) return make(rule.class, logTail[inner].trim(), trim(logTail.slice(Math.max(0, inner - 1), hit + 1)), inner);
    return make(rule.class, logTail[hit].trim(), excerptAround(logTail, hit), hit);
  }
  if (status.signal === 'SIGSEGV') return make('segfault', 'the process was killed by SIGSEGV', tail);
  if (status.signal) return make('killed', `the process was killed by ${status.signal}`, tail);
  if (status.exitCode === 137 || status.exitCode === 143) return make('killed', `the process exited with ${status.exitCode} (killed)`, tail);
  const worker = torchrun.failures[0];
  if (worker) return make('unknown', `rank ${worker.rank} exited with code ${worker.exitCode} (torchrun)`, excerptAround(logTail, worker.line));
  return make('unknown', `the process exited with code ${status.exitCode}`, tail);
}

/** The first training log line that shows a NaN loss (see lossIsNaN), or -1. */
function firstNaNLine(lines: readonly string[]): number {
  let sawLoss = false;
  for (let i = 0; i < lines.length; i++) {
    const event = parseLogLine(lines[i]);
    if (event?.type !== 'iteration') continue;
    if (lossIsNaN(event, sawLoss)) return i;
    if (event.loss !== undefined) sawLoss = true;
  }
  return -1;
}

/** The last matching line is nearest to the failure (a traceback's final line names the error). */
function lastHit(lines: readonly string[], rule: FailureRule, skip: ReadonlySet<number>): number {
  for (let i = lines.length - 1; i >= 0; i--) if (!skip.has(i) && rule.pattern.test(lines[i]) && (rule.accept?.(lines, i) ?? true)) return i;
  return -1;
}

/** A worker that torchrun reports killed by a signal, or torchrun itself shut down by one. */
function torchrunSignalReport(torchrun: TorchrunReport, lines: readonly string[]): { class: FailureClass; reason: string; line: number } | undefined {
  const signalled = torchrun.failures.find((f) => f.signal);
  if (signalled?.signal) {
    const cls: FailureClass = signalled.signal === 'SIGSEGV' ? 'segfault' : 'killed';
    return { class: cls, reason: `rank ${signalled.rank} was killed by ${signalled.signal} (torchrun: ${lines[signalled.line].trim()})`, line: signalled.line };
  }
  if (torchrun.deathSignal) {
    const { signal, line } = torchrun.deathSignal;
    return { class: 'killed', reason: `torchrun received ${signal} and shut its workers down`, line };
  }
  return undefined;
}
