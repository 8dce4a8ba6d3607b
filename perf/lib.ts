/**
 * Small helpers for the recovery benchmark: a log tailer that timestamps each attempt's first
 * iteration, the emulator's fault markers, a seeded RNG, statistics, markdown tables, and a
 * description of the machine and its load.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseLogLine } from '../frameworks/modellink/training-log.ts';

/** What the tailer saw of one attempt's log. */
export interface AttemptLog {
  file: string;
  /** Wall time (this process) when the first iteration line of the attempt was seen. */
  firstIterationAt?: number;
  lastIteration?: number;
  lastIterationAt?: number;
  /** The attempt waited for another attempt's save-directory lease before launching. */
  waitedForLease: boolean;
  offset: number;
  partial: string;
}

/**
 * Polls a stage's log directory every few milliseconds and reads only what was appended, so the
 * wall time of "the first iteration logged by attempt N" is known to within one poll.
 */
export class LogWatcher {
  readonly attempts = new Map<number, AttemptLog>();
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly dir: string,
    private readonly everyMs = 15,
  ) {}

  start(): this {
    this.timer = setInterval(() => this.poll(), this.everyMs);
    return this;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.poll();
  }

  lastIteration(attempt: number): number | undefined {
    return this.attempts.get(attempt)?.lastIteration;
  }

  poll(): void {
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch {
      return; // not created yet
    }
    const now = Date.now();
    for (const name of names) {
      const m = /^attempt-(\d+)-\d{4}-.*\.log$/.exec(name);
      if (!m) continue;
      const attempt = Number(m[1]);
      let log = this.attempts.get(attempt);
      if (!log) {
        log = { file: path.join(this.dir, name), waitedForLease: false, offset: 0, partial: '' };
        this.attempts.set(attempt, log);
      }
      const size = fs.statSync(log.file).size;
      if (size <= log.offset) continue;
      const buf = Buffer.alloc(size - log.offset);
      const fd = fs.openSync(log.file, 'r');
      try {
        fs.readSync(fd, buf, 0, buf.length, log.offset);
      } finally {
        fs.closeSync(fd);
      }
      log.offset = size;
      const lines = (log.partial + buf.toString('utf8')).split('\n');
      log.partial = lines.pop() ?? '';
      for (const line of lines) {
        if (line.startsWith('# waited for the lease')) log.waitedForLease = true;
        const event = parseLogLine(line);
        if (event?.type !== 'iteration') continue;
        log.firstIterationAt ??= now;
        log.lastIteration = event.iteration;
        log.lastIterationAt = now;
      }
    }
  }
}

/** The emulator's fault markers in a directory: `.mlemu-fired-<kind>@<iteration>` → its mtime (when the fault fired). */
export function faultMarkers(dir: string): { kind: string; iteration: number; at: number }[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .map((n) => /^\.mlemu-fired-(?:node\d+-)?([a-z]+)@(\d+)$/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ kind: m[1], iteration: Number(m[2]), at: fs.statSync(path.join(dir, m[0])).mtimeMs }))
    .sort((a, b) => a.iteration - b.iteration);
}

/** mulberry32: a small seeded RNG, so fault schedules repeat from run to run. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** k distinct integers drawn uniformly from [lo, hi], sorted. */
export function distinctUniform(random: () => number, lo: number, hi: number, k: number): number[] {
  const pool = Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);
  for (let i = 0; i < Math.min(k, pool.length); i++) {
    const j = i + Math.floor(random() * (pool.length - i));
    [pool[i], pool[j]] = [pool[j], pool[i]];
  }
  return pool.slice(0, Math.min(k, pool.length)).sort((a, b) => a - b);
}

export function mean(xs: number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN;
}

export function defined<T>(xs: (T | undefined)[]): T[] {
  return xs.filter((x): x is T => x !== undefined);
}

/** Seconds with two decimals; "–" for a missing value. */
export function sec(ms: number | undefined): string {
  return ms === undefined || Number.isNaN(ms) ? '–' : (ms / 1000).toFixed(2);
}

/** "mean (min–max)" in seconds, or just the value for one sample. */
export function secRange(ms: number[]): string {
  if (ms.length === 0) return '–';
  if (ms.length === 1) return sec(ms[0]);
  return `${sec(mean(ms))} (${sec(Math.min(...ms))}–${sec(Math.max(...ms))})`;
}

export function fixed(x: number | undefined, digits = 2): string {
  return x === undefined || Number.isNaN(x) ? '–' : x.toFixed(digits);
}

/** A markdown table, padded so it also reads well in a terminal. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  return [line(headers), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

/** The parent pid of a process (from /proc), or undefined once it is gone. */
function parentPid(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

/** The first ancestor of `pid` (itself included) that is one of `candidates`. */
export function ancestorAmong(pid: number, candidates: Set<number>): number | undefined {
  for (let p: number | undefined = pid, depth = 0; p !== undefined && p > 1 && depth < 20; p = parentPid(p), depth++) {
    if (candidates.has(p)) return p;
  }
  return undefined;
}

function versionOf(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
      .trim()
      .split('\n')[0];
  } catch {
    return 'unknown';
  }
}

export interface Machine {
  cores: number;
  cpu: string;
  ramGiB: number;
  node: string;
  python: string;
  temporal: string;
  os: string;
}

export function describeMachine(temporalCli?: string): Machine {
  let cpu = 'unknown';
  try {
    cpu = /^model name\s*:\s*(.+)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? cpu;
  } catch {
    // not Linux
  }
  return {
    cores: os.cpus().length,
    cpu,
    ramGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    python: versionOf('python3', ['--version']),
    temporal: temporalCli ? versionOf(temporalCli, ['--version']) : 'unknown (SDK-managed dev server)',
    os: `${os.type()} ${os.release()} ${os.arch()}`,
  };
}

/** Other test runs on the machine (other agents' vitest), seen in the process table. */
function otherTestProcesses(): number {
  let n = 0;
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('vitest')) n++;
    } catch {
      // gone
    }
  }
  return n;
}

/** Samples the load average and other test runs while the benchmark runs. */
export class LoadSampler {
  readonly before = os.loadavg();
  after?: number[];
  maxLoad1 = 0;
  samples = 0;
  samplesWithOtherTests = 0;
  private timer?: NodeJS.Timeout;

  start(everyMs = 5_000): this {
    const sample = () => {
      this.samples++;
      this.maxLoad1 = Math.max(this.maxLoad1, os.loadavg()[0]);
      if (otherTestProcesses() > 0) this.samplesWithOtherTests++;
    };
    sample();
    this.timer = setInterval(sample, everyMs);
    return this;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.after = os.loadavg();
  }
}

/** Keeps one run's tables in perf/<file>, headed by what ran it, on which machine, under what load. */
export function writeResults(file: string, title: string, command: string, lines: string[], sampler: LoadSampler, withPython = false): string {
  const m = describeMachine();
  const out = path.join(path.dirname(new URL(import.meta.url).pathname), file);
  const load = `${sampler.before.map((x) => x.toFixed(2)).join(' ')} / ${sampler.after?.map((x) => x.toFixed(2)).join(' ')}`;
  const busy = sampler.samplesWithOtherTests > 0 ? ' (other test runs were active on the machine)' : '';
  fs.writeFileSync(
    out,
    [
      `# ${title}`,
      '',
      `Measured ${new Date().toISOString()} by \`${command}\`.`,
      `Machine: ${m.cores} cores (${m.cpu}), ${m.ramGiB} GiB, ${m.os}, Node ${m.node}${withPython ? `, ${m.python}` : ''}. Load average before/after: ${load}${busy}.`,
      '',
      '```',
      ...lines,
      '```',
      '',
    ].join('\n'),
  );
  return out;
}
