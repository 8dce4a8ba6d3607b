/**
 * The lines of a log, however long, that explain how it ended: the first ones (argparse's usage,
 * start-up errors), the last ones, and the lines around each root cause seen in between — in a job
 * of many ranks the rank that failed first can be followed by hundreds of lines of its peers'
 * echoes, which would push it out of a plain tail. Bounded memory: the log is read once, line by
 * line, by the attempt's watcher and by `linkflow diagnose`.
 */

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
}

interface Numbered {
  /** 1-based line number in the log. */
  n: number;
  text: string;
}

export class LogWindow {
  private readonly head: Numbered[] = [];
  private readonly tail: Numbered[] = [];
  private readonly firstCauses: Numbered[][] = [];
  private latestCause: Numbered[] | undefined;
  /** The group still collecting the lines after its cause. */
  private open: { group: Numbered[]; remaining: number } | undefined;
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
    if (this.head.length < this.options.head) {
      this.head.push(line);
      return;
    }
    this.tail.push(line);
    if (this.tail.length > this.options.tail) this.tail.shift();
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
    for (const group of [this.head, ...this.firstCauses, this.latestCause ?? [], this.tail]) for (const l of group) byNumber.set(l.n, l);
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
