/**
 * The lines of a log, however long, that explain how it ended: the first ones (argparse's usage,
 * start-up errors), the last ones, each rank's first error with its traceback, launchers' summaries
 * (torchrun's `failed (exitcode: …)` and ChildFailedError block, DeepSpeed's return codes, srun's
 * task endings) and the lines around each root cause seen in between. In a job of many ranks the rank
 * that failed first can be followed by hundreds of lines of its peers' echoes, which would push it
 * out of a plain tail. Bounded memory: the log is read once, line by line, by the attempt's watcher
 * and by `linkflow diagnose`.
 */
import { isLauncherSummary } from './launchers.ts';
import { splitRanks } from './ranks.ts';
import { ERROR_LINE } from './rules.ts';

/** What an attempt keeps of its log: enough head for argparse's usage, enough tail for a traceback. */
export const ATTEMPT_LOG_WINDOW = { head: 50, tail: 200 } as const;

export interface LogWindowOptions {
  head: number;
  tail: number;
  /** A line that may be a failure's root cause; it is kept with its context. */
  isCause?: (line: string) => boolean;
  contextBefore?: number;
  contextAfter?: number;
  /** The first this many causes are kept, and the latest one besides. */
  maxCauses?: number;
  /** Ranks whose first error is kept (the others' are echoes or repeats). */
  maxRanks?: number;
}

interface Numbered {
  /** 1-based line number in the log. */
  n: number;
  text: string;
}

/** A traceback being read, per rank: from its header until the error line that ends it. */
const TRACEBACK_HEADER = /^\s*Traceback \(most recent call last\)/;
const MAX_TRACEBACK = 120;
const LAUNCHER_LINES = 40;
/** Lines kept above a rank's first traceback. */
const PREAMBLE = 12;
/** Lines kept after a rank's first error line. */
const AFTER_ERROR = 4;

export class LogWindow {
  private readonly head: Numbered[] = [];
  private readonly tail: Numbered[] = [];
  private readonly firstCauses: Numbered[][] = [];
  private latestCause: Numbered[] | undefined;
  /** The group still collecting the lines after its cause. */
  private open: { group: Numbered[]; remaining: number } | undefined;
  /** Each rank's first error: its traceback while it is read, then kept. */
  private readonly reading = new Map<string, Numbered[]>();
  private readonly rankErrors = new Map<string, Numbered[]>();
  private readonly launcher: Numbered[] = [];
  /** A kept error still collecting the lines after its error line. */
  private after: { group: Numbered[]; remaining: number } | undefined;
  private count = 0;

  constructor(private readonly options: LogWindowOptions) {}

  get lineCount(): number {
    return this.count;
  }

  push(text: string): void {
    const line = { n: ++this.count, text };
    if (this.open) {
      this.open.group.push(line);
      if (--this.open.remaining <= 0) this.open = undefined;
    } else if (this.count > this.options.head && this.options.isCause?.(text)) {
      this.startCause(line);
    }
    if (this.count > this.options.head) this.keepRankError(line);
    if (this.count > this.options.head && this.launcher.length < LAUNCHER_LINES && isLauncherSummary(text)) this.launcher.push(line);
    if (this.head.length < this.options.head) {
      this.head.push(line);
      return;
    }
    this.tail.push(line);
    if (this.tail.length > this.options.tail) this.tail.shift();
  }

  /** Follows each rank's first traceback (or bare error line) and keeps it whole. */
  private keepRankError(line: Numbered): void {
    if (this.after && this.after.group.at(-1) !== line) {
      this.after.group.push(line);
      if (--this.after.remaining <= 0) this.after = undefined;
    }
    for (const part of splitRanks([line.text])) {
      const rank = part.rank ?? '';
      if (this.rankErrors.has(rank)) continue;
      const reading = this.reading.get(rank);
      if (TRACEBACK_HEADER.test(part.text)) {
        // With the lines just above: a CANN error prints its code there ("The Inner error is reported as above").
        if (this.rankErrors.size + this.reading.size < (this.options.maxRanks ?? 16) || reading)
          this.reading.set(rank, [...this.tail.slice(-PREAMBLE).filter((l) => l.n < line.n), line]);
        continue;
      }
      if (reading) {
        if (reading.at(-1) !== line) reading.push(line);
        if (reading.length > MAX_TRACEBACK) reading.splice(PREAMBLE + 1, 1);
        // The error line ends it (frames are indented).
        if (!/^\s/.test(part.text) && part.text.trim() !== '') {
          this.reading.delete(rank);
          if (ERROR_LINE.test(part.text.trim())) {
            this.rankErrors.set(rank, reading);
            // The lines after it: a multi-line message, torch_npu's `[ERROR] … RankID:N` line.
            this.after = { group: reading, remaining: AFTER_ERROR };
          }
        }
      } else if (ERROR_LINE.test(part.text) && this.rankErrors.size < (this.options.maxRanks ?? 16)) {
        this.rankErrors.set(rank, [line]);
      }
    }
  }

  private startCause(line: Numbered): void {
    const before = this.tail.slice(-(this.options.contextBefore ?? 3));
    const group = [...before, line];
    if (this.firstCauses.length < (this.options.maxCauses ?? 4)) this.firstCauses.push(group);
    else this.latestCause = group;
    this.open = { group, remaining: this.options.contextAfter ?? 8 };
  }

  /** The kept lines in log order, each with its line number; gaps are not marked. */
  entries(): Numbered[] {
    const byNumber = new Map<number, Numbered>();
    const groups = [this.head, ...this.firstCauses, this.latestCause ?? [], ...this.rankErrors.values(), this.launcher, this.tail];
    for (const group of groups) for (const l of group) byNumber.set(l.n, l);
    return [...byNumber.values()].sort((a, b) => a.n - b.n);
  }

  /** The kept lines in log order, `... (N lines) ...` where lines were left out (that marker has no number). */
  numberedLines(): { n?: number; text: string }[] {
    const out: { n?: number; text: string }[] = [];
    let previous = 0;
    for (const line of this.entries()) {
      if (line.n > previous + 1) out.push({ text: `... (${line.n - previous - 1} lines) ...` });
      out.push(line);
      previous = line.n;
    }
    return out;
  }

  lines(): string[] {
    return this.numberedLines().map((l) => l.text);
  }
}
