/**
 * Why an attempt failed, from its exit status and its log. Deterministic classes (bad arguments,
 * missing input) fail the stage at once: retrying cannot help and would hide the cause.
 *
 * A job of many ranks fails on one rank first; its peers then print what a rank prints when its peer
 * is gone (HCCL/NCCL errors, collective timeouts) and launchers print their summaries. So the log is
 * read per rank (ranks.ts), and rules come in tiers (rules.ts): a cause anywhere wins over echoes,
 * however many, and within a tier the rank that failed first decides.
 */
import type { ExitStatus } from '../common/exit-status.ts';
import { lossIsNaN, parseLogLine } from '../frameworks/modellink/training-log.ts';
import { cannCode, CANN_CODES, type CannCode } from './cann-codes.ts';
import { NON_RETRYABLE, type FailureClass } from './classes.ts';
import { readTorchrunReport, workerFailures } from './launchers.ts';
import { byRank, splitRanks, whose, type RankLine } from './ranks.ts';
import { ACL_WRAPPER, BUILT_IN_RULES, COMMUNICATION_WORDS, ERROR_LINE, ROLE_ORDER, type FailureRule, type RuleRole } from './rules.ts';

export { ADVICE, budgetOf, FAILURE_CLASSES, INFRASTRUCTURE, NON_RETRYABLE, type FailureClass } from './classes.ts';
export { readTorchrunReport, type TorchrunReport, type TorchrunWorkerFailure } from './launchers.ts';
export { ECHO_CLASSES, type FailureRule, type RuleRole } from './rules.ts';

/** How the class was established: a rule's tier, the exit status alone, or the attempt's watcher. */
export type Evidence = RuleRole | 'status' | 'watcher';

/** An echo the decision discounted, with why. */
export interface Discounted {
  /** Index (in the lines classified) of the echo's line. */
  line: number;
  rank?: string;
  class: FailureClass;
  text: string;
  why: string;
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
  /** The tier of the rule that decided (an `echo` decision blames no node). */
  evidence?: Evidence;
  /** The rank whose line decided, when the log tags ranks. */
  rank?: string;
  /** The rule's family name. */
  rule?: string;
  cann?: CannCode;
  /** Echoes from other ranks that did not decide (a few; `discountedMore` counts the rest). */
  discounted?: Discounted[];
  discountedMore?: number;
}

/**
 * A line worth keeping however long the log grows: a pipeline's own rule, a built-in cause or a
 * launcher's summary. (A rank's first traceback is kept by the window itself.)
 */
export function causeLine(extraRules: readonly FailureRule[] = []): (line: string) => boolean {
  const causes = [...extraRules, ...BUILT_IN_RULES.filter((r) => (r.role ?? 'cause') === 'cause' && !NON_RETRYABLE.has(r.class) && !r.accept)];
  return (line) => causes.some((r) => r.pattern.test(line));
}

const TAIL = 20;
const PEER_WORDS = new RegExp(COMMUNICATION_WORDS, 'i');
const LINKFLOW_HEADER = /^# (?:linkflow pipeline |cwd: |argv: |env: |launched )/;
const CONTEXT_BEFORE = 3;
const CONTEXT_AFTER = 6;
const MAX_EXCERPT = 40;
const MAX_DISCOUNTED = 6;
/** How far below a device's text the Python error that names it may be (a traceback's frames). */
const NAMING_LOOKAHEAD = 120;

/** The lines around a hit; a Python traceback is shown from its first line, as people read it. */
function excerptAround(lines: readonly string[], index: number): string[] {
  let start = Math.max(0, index - CONTEXT_BEFORE);
  for (let i = index; i >= Math.max(0, index - 100); i--) {
    if (/Traceback \(most recent call last\)/.test(lines[i])) {
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

/** One rank's lines, as texts for rules and as positions in the log. */
interface RankView {
  rank?: string;
  lines: RankLine[];
  texts: string[];
}

interface Hit {
  rule: FailureRule;
  view: RankView;
  /** Index in the rank's lines. */
  at: number;
  /** Index of the physical line. */
  line: number;
  /** A CANN code line that says more than the hit (an ACL wrapper's code). */
  cann?: { code: CannCode | undefined; line: number; text: string };
}

/** A CANN code line near an ACL wrapper: above it ("reported as above") or in the lines after. */
function cannNear(view: RankView, at: number): Hit['cann'] {
  const code = /\b(E[A-Z0-9]\d{4})\b[):]|error code is (\d{6})\b|runtime result = (\d{6})\b/;
  const pointer = /The Inner error is reported as above/.test(view.texts[at]);
  const range = pointer ? [...Array(Math.min(at, 120)).keys()].map((k) => at - 1 - k) : [...Array(14).keys()].map((k) => at + k);
  let numeric: Hit['cann'];
  for (const i of range) {
    const text = view.texts[i];
    if (text === undefined) break;
    const m = code.exec(text);
    if (!m) continue;
    const known = cannCode(m[1] ?? m[2] ?? m[3]);
    if (m[1]) return { code: known, line: view.lines[i].line, text: text.trim() };
    // A bare numeric code counts only when it is a known one; an E-code nearby says more.
    numeric ??= known ? { code: known, line: view.lines[i].line, text: text.trim() } : undefined;
  }
  return numeric;
}

/** The first line of a rank that a rule accepts (an ACL wrapper whose code is an echo is not a cause). */
function firstHit(rule: FailureRule, view: RankView, skip: ReadonlySet<number>, role: RuleRole): Hit | undefined {
  for (let at = 0; at < view.texts.length; at++) {
    const line = view.lines[at].line;
    if (skip.has(line) || !rule.pattern.test(view.texts[at]) || !(rule.accept?.(view.texts, at) ?? true)) continue;
    const hit: Hit = { rule, view, at: rule.cann ? at : namingLine(rule, view, at, skip), line };
    hit.line = view.lines[hit.at].line;
    if (role === 'error' && ACL_WRAPPER.test(view.texts[hit.at])) {
      const near = cannNear(view, hit.at);
      if (near?.code && near.code.role !== 'cause') continue;
      if (near) hit.cann = near;
    }
    return hit;
  }
  return undefined;
}

/**
 * The Python error line that names the same error, when the hit is a device's text above it (`EL0004 …`
 * then, after the traceback, `RuntimeError: NPU out of memory …`): people know the error by that line.
 */
function namingLine(rule: FailureRule, view: RankView, at: number, skip: ReadonlySet<number>): number {
  if (ERROR_LINE.test(view.texts[at].trim())) return at;
  for (let i = at + 1; i < Math.min(view.texts.length, at + NAMING_LOOKAHEAD); i++) {
    const text = view.texts[i].trim();
    if (/^\.\.\. \(\d+ lines\) \.\.\.$/.test(text)) break;
    if (!ERROR_LINE.test(text)) continue;
    if (!skip.has(view.lines[i].line) && rule.pattern.test(view.texts[i]) && (rule.accept?.(view.texts, i) ?? true)) return i;
    break;
  }
  return at;
}

/** The hit of the first failing rank (smallest line) among every rank's first hit. */
function earliestHit(rule: FailureRule, views: RankView[], skip: ReadonlySet<number>, role: RuleRole): Hit | undefined {
  let best: Hit | undefined;
  for (const view of views) {
    const hit = firstHit(rule, view, skip, role);
    if (hit && (!best || hit.line < best.line)) best = hit;
  }
  return best;
}

/**
 * Classifies a finished process from its log lines (what a LogWindow kept). `detected` is a class the
 * watcher established itself (hang, nan-loss).
 */
export function classifyFailure(status: ExitStatus, logTail: string[], detected?: FailureClass, extraRules: readonly FailureRule[] = []): FailureReport {
  const make = (cls: FailureClass, reason: string, excerpt: string[], more: Partial<FailureReport> = {}): FailureReport => ({
    class: cls,
    retryable: !NON_RETRYABLE.has(cls),
    reason,
    excerpt,
    ...more,
  });
  const tail = logTail.slice(-TAIL);
  if (detected === 'hang') return make('hang', 'no progress within the no-progress window; the process group was killed', tail, { evidence: 'watcher' });
  if (detected === 'nan-loss') {
    const i = firstNaNLine(logTail);
    const event = i >= 0 ? parseLogLine(logTail[i]) : undefined;
    const where = event?.type === 'iteration' ? ` at iteration ${event.iteration}` : '';
    return make('nan-loss', `the loss became NaN${where}`, i >= 0 ? excerptAround(logTail, i) : tail, {
      evidence: 'watcher',
      ...(i >= 0 ? { decidedBy: i } : {}),
    });
  }
  if (detected) return make(detected, detected, tail, { evidence: 'watcher' });
  // torchrun's own traceback (ChildFailedError, SignalException) only says that a worker failed, never why.
  const torchrun = readTorchrunReport(logTail);
  // linkflow's own header of an attempt log (the argv names `--distributed-backend hccl`…) is not the job's output.
  logTail.forEach((l, i) => {
    if (LINKFLOW_HEADER.test(l)) torchrun.ownLines.add(i);
  });
  const views: RankView[] = [...byRank(splitRanks(logTail)).entries()].map(([rank, lines]) => ({ rank, lines, texts: lines.map((l) => l.text) }));
  const rules = [...extraRules.map((r) => ({ ...r, role: r.role ?? 'cause' })), ...BUILT_IN_RULES];
  for (const role of ROLE_ORDER) {
    if (role === 'signal') {
      const signalled = signalReport(logTail, torchrun.deathSignal);
      if (signalled) return make(signalled.class, signalled.reason, excerptAround(logTail, signalled.line), { decidedBy: signalled.line, evidence: 'signal' });
    }
    for (const rule of rules.filter((r) => (r.role ?? 'cause') === role)) {
      if (rule.class === 'bad-arguments' && status.exitCode !== 2 && status.exitCode !== 1) continue;
      // Killed by a signal: a traceback in its log is not why it ended.
      if (rule.class === 'exception' && status.signal) break;
      const hit = earliestHit(rule, views, torchrun.ownLines, role);
      if (hit) return decide(hit, role, logTail, views, torchrun.ownLines, make);
    }
  }
  return fromStatus(status, logTail, tail, make);
}

type Make = (cls: FailureClass, reason: string, excerpt: string[], more?: Partial<FailureReport>) => FailureReport;

function decide(hit: Hit, role: RuleRole, lines: readonly string[], views: RankView[], skip: ReadonlySet<number>, make: Make): FailureReport {
  const text = hit.view.texts[hit.at].trim();
  const cann = hit.rule.cann ?? hit.cann?.code;
  const cls = hit.cann?.code && hit.cann.code.role === 'cause' ? hit.cann.code.class : hit.rule.class;
  const more: Partial<FailureReport> = {
    decidedBy: hit.cann?.line ?? hit.line,
    evidence: role,
    ...(hit.view.rank !== undefined ? { rank: hit.view.rank } : {}),
    ...(hit.rule.name ? { rule: hit.rule.name } : {}),
    ...(cann ? { cann } : {}),
    ...discountedEchoes(hit, role, views, skip, lines),
  };
  if (cls === 'bad-arguments') {
    const usage = lines.findIndex((l) => l.startsWith('usage:'));
    const start = usage >= 0 && usage < hit.line ? usage : Math.max(0, hit.line - CONTEXT_BEFORE);
    return make(cls, text, trim(lines.slice(start, hit.line + 1)), more);
  }
  if (hit.cann) {
    const from = Math.min(hit.cann.line, hit.line);
    const to = Math.max(hit.cann.line, hit.line);
    return make(cls, hit.cann.text, trim(lines.slice(Math.max(0, from - 1), to + 2)), more);
  }
  return make(cls, text, excerptAround(lines, hit.line), more);
}

/** The rank an untagged line names itself (`[Rank 3] HCCL …`, `RankID:3`), as torch 2.1 and CANN print it. */
function namedRank(text: string): string | undefined {
  const m = /\[Rank (\d+)\]|RankID:(\d+)|\brank (\d+)\b/.exec(text);
  return m ? (m[1] ?? m[2] ?? m[3]) : undefined;
}

/** The rank an untagged error names in its own lines: up to the next traceback after its error line. */
function rankOfError(texts: readonly string[], at: number): string | undefined {
  let ended = false;
  for (let i = at; i < Math.min(texts.length, at + 80); i++) {
    if (ended && /^\s*Traceback \(most recent call last\)|^\.\.\. \(\d+ lines\) \.\.\.$/.test(texts[i])) return undefined;
    // A peer's echo right after the error names the peer, not the rank that failed.
    const rank = PEER_WORDS.test(texts[i]) ? undefined : namedRank(texts[i]);
    if (rank !== undefined) return rank;
    if (ERROR_LINE.test(texts[i].trim())) ended = true;
  }
  return undefined;
}

/** Every line of a view that an echo rule (or, under a higher decision, a network rule) accepts. */
function echoHits(view: RankView, skip: ReadonlySet<number>, rules: readonly FailureRule[]): Hit[] {
  const hits: Hit[] = [];
  for (let at = 0; at < view.texts.length; at++) {
    if (skip.has(view.lines[at].line)) continue;
    const rule = rules.find((r) => r.pattern.test(view.texts[at]) && (r.accept?.(view.texts, at) ?? true));
    if (rule) hits.push({ rule, view, at, line: view.lines[at].line });
  }
  return hits;
}

/** Other ranks' echoes, each rank's first: what the decision set aside, and why. */
function discountedEchoes(hit: Hit, role: RuleRole, views: RankView[], skip: ReadonlySet<number>, lines: readonly string[]): Partial<FailureReport> {
  const below = (r: FailureRule) =>
    ROLE_ORDER.indexOf(r.role ?? 'cause') > ROLE_ORDER.indexOf(role) && (r.role === 'echo' || r.role === 'network' || r.role === 'rendezvous');
  const rules = BUILT_IN_RULES.filter(below);
  if (rules.length === 0) return {};
  const causeRank = hit.view.rank ?? rankOfError(hit.view.texts, hit.at);
  const cause = `${whose(causeRank)}'s ${errorName(hit.view.texts[hit.at])} at line ${hit.line + 1}`;
  const seen = new Set<string>();
  const found: Discounted[] = [];
  for (const view of views) {
    for (const echo of echoHits(view, skip, rules)) {
      if (echo.line === hit.line) continue;
      // Tagged lines are one rank's; an untagged log names the rank in the message, else each line counts.
      const rank = view.rank ?? namedRank(echo.view.texts[echo.at]);
      if (rank !== undefined && rank === causeRank) continue;
      const key = rank ?? `line ${echo.line}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const who = rank === undefined ? 'an untagged' : `rank ${rank}'s`;
      const what = `${who} ${echo.rule.class === 'hang' ? 'collective timeout' : 'HCCL/NCCL error'}`;
      const why =
        echo.line > hit.line
          ? `${what} follows ${cause}: a rank that lost its peer prints it`
          : `${what} precedes ${cause} but only says a peer was missing or late; a cause outranks echoes`;
      found.push({ line: echo.line, ...(rank !== undefined ? { rank } : {}), class: echo.rule.class, text: lines[echo.line].trim(), why });
    }
  }
  found.sort((a, b) => a.line - b.line);
  return found.length
    ? { discounted: found.slice(0, MAX_DISCOUNTED), ...(found.length > MAX_DISCOUNTED ? { discountedMore: found.length - MAX_DISCOUNTED } : {}) }
    : {};
}

/** `RuntimeError` of `RuntimeError: NPU out of memory…`, else the first words. */
function errorName(text: string): string {
  const m = /^(?:[\w.]+\.)?([A-Z]\w*(?:Error|Exception))\b/.exec(text.trim()) ?? /\b(E[A-Z0-9]\d{4})\b/.exec(text);
  return m ? m[1] : `"${text.trim().slice(0, 40)}"`;
}

/** A worker that a launcher reports killed by a signal, or torchrun itself shut down by one. */
function signalReport(
  lines: readonly string[],
  death: { signal: string; line: number } | undefined,
): { class: FailureClass; reason: string; line: number } | undefined {
  // torchrun's ChildFailedError block says most (rank, exit code, the signal's traceback line); then the one-line forms.
  const fatalSignal = (f: { signal?: string }) => f.signal === 'SIGKILL' || f.signal === 'SIGSEGV' || f.signal === 'SIGBUS';
  const block = readTorchrunReport(lines).failures.find(fatalSignal);
  const fatal = block ? { launcher: 'torchrun', ...block } : workerFailures(lines).find(fatalSignal);
  if (fatal?.signal) {
    const cls: FailureClass = fatal.signal === 'SIGKILL' ? 'killed' : 'segfault';
    const who = fatal.rank !== undefined ? `rank ${fatal.rank}` : 'a worker';
    return { class: cls, reason: `${who} was killed by ${fatal.signal} (${fatal.launcher}: ${lines[fatal.line].trim()})`, line: fatal.line };
  }
  if (death) return { class: 'killed', reason: `torchrun received ${death.signal} and shut its workers down`, line: death.line };
  return undefined;
}

function fromStatus(status: ExitStatus, lines: readonly string[], tail: string[], make: Make): FailureReport {
  const evidence = { evidence: 'status' as const };
  if (status.signal === 'SIGSEGV' || status.signal === 'SIGBUS') return make('segfault', `the process was killed by ${status.signal}`, tail, evidence);
  if (status.signal) return make('killed', `the process was killed by ${status.signal}`, tail, evidence);
  if (status.exitCode === 137 || status.exitCode === 143) return make('killed', `the process exited with ${status.exitCode} (killed)`, tail, evidence);
  if (status.exitCode === 139) return make('segfault', 'the process exited with 139 (SIGSEGV)', tail, evidence);
  const worker = workerFailures(lines).find((f) => f.signal === 'SIGABRT') ?? workerFailures(lines)[0];
  if (worker) {
    const who = worker.rank !== undefined ? `rank ${worker.rank}` : 'a worker';
    const how = worker.signal ? `was killed by ${worker.signal}` : `exited with code ${worker.exitCode}`;
    return make(worker.signal ? 'killed' : 'unknown', `${who} ${how} (${worker.launcher})`, excerptAround(lines, worker.line), {
      ...evidence,
      decidedBy: worker.line,
    });
  }
  return make('unknown', `the process exited with code ${status.exitCode}`, tail, evidence);
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

/** The CANN codes linkflow knows, for the README and `diagnose`. */
export const KNOWN_CANN_CODES = CANN_CODES;
