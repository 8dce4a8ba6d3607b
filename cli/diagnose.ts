/**
 * `linkflow diagnose <log> [--json] [--exit-code N]`: classify a log file as linkflow classifies an
 * attempt. The file is read as a stream, line by line, keeping what an attempt keeps (head, root
 * causes, bounded tail), so a log of any size fits in memory.
 *
 * Exit codes: 0 a failure was found and classified, 1 the log shows no failure, 2 bad input (the
 * file is missing or unreadable, a bad option).
 */
import fs from 'node:fs';
import readline from 'node:readline';
import { exitStatusOf, LogDiagnosis, type Diagnosis } from '../failures/diagnose.ts';
import { ADVICE, budgetOf } from '../failures/failures.ts';
import { ExitError } from '../errors.ts';

export interface DiagnoseOptions {
  json?: boolean;
  exitCode?: string;
}

/** Reads the log once; what it keeps is bounded whatever the file's size. */
async function readLog(file: string): Promise<LogDiagnosis> {
  const read = new LogDiagnosis();
  const input = fs.createReadStream(file, { encoding: 'utf8' });
  const lines = readline.createInterface({ input, crlfDelay: Infinity });
  for await (const line of lines) read.push(line);
  return read;
}

function checkFile(file: string): void {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ExitError(code === 'ENOENT' ? `${file}: no such file` : `${file}: cannot read it (${(e as Error).message})`, 2);
  }
  if (!stat.isFile()) throw new ExitError(`${file}: not a file (give the log file itself)`, 2);
}

function parseExitCode(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < -64 || n > 255)
    throw new ExitError(`--exit-code: expected the process's exit status (0-255, or -N for a process killed by signal N), got ${text}`, 2);
  return n;
}

export async function diagnoseCommand(file: string, opts: DiagnoseOptions): Promise<number> {
  const exitCode = parseExitCode(opts.exitCode);
  checkFile(file);
  let read: LogDiagnosis;
  try {
    read = await readLog(file);
  } catch (e) {
    throw new ExitError(`${file}: cannot read it (${(e as Error).message})`, 2);
  }
  const { diagnosis, numbered } = read.finish(exitCode !== undefined ? exitStatusOf(exitCode) : undefined);
  // Indices into the kept lines → line numbers of the file.
  const at = (i: number | undefined): DecidingLine | undefined =>
    i !== undefined && numbered[i]?.n !== undefined ? { number: numbered[i].n!, text: numbered[i].text } : undefined;
  const decided = at(diagnosis.failure?.decidedBy);
  const renumber = (why: string) => why.replace(/at line (\d+)/g, (_, k: string) => `at line ${at(Number(k) - 1)?.number ?? k}`);
  const discounted = (diagnosis.failure?.discounted ?? []).map((d) => ({
    line: at(d.line)?.number,
    rank: d.rank,
    class: d.class,
    text: d.text,
    why: renumber(d.why),
  }));
  const lines = read.window.lineCount;
  if (opts.json) console.log(JSON.stringify(toJson(file, lines, diagnosis, decided, discounted)));
  else console.log(toText(file, lines, diagnosis, decided, discounted));
  return diagnosis.failure ? 0 : 1;
}

interface Echo {
  line?: number;
  rank?: string;
  class: string;
  text: string;
  why: string;
}

/** The line of the file that decided the class. */
interface DecidingLine {
  number: number;
  text: string;
}

function toJson(file: string, lines: number, d: Diagnosis, decided: DecidingLine | undefined, discounted: Echo[]) {
  const f = d.failure;
  return {
    file,
    lines,
    failed: f !== undefined,
    ...(d.status ? { exitStatus: { exitCode: d.status.exitCode, signal: d.status.signal, source: d.status.source } } : {}),
    ...(f
      ? {
          class: f.class,
          retryable: f.retryable,
          budget: budgetOf(f.class),
          reason: f.reason,
          ...(decided ? { line: decided } : {}),
          evidence: f.evidence,
          ...(f.rank !== undefined ? { rank: f.rank } : {}),
          ...(f.rule ? { rule: f.rule } : {}),
          ...(f.cann ? { cann: { code: f.cann.code, meaning: f.cann.meaning, source: f.cann.source } } : {}),
          discounted,
          ...(f.discountedMore ? { discountedMore: f.discountedMore } : {}),
          advice: ADVICE[f.class],
          excerpt: f.excerpt,
        }
      : {}),
  };
}

const BUDGET_TEXT = {
  none: 'not retryable: retrying cannot help',
  infrastructure: 'retryable (a fault of the machines: infrastructure budget)',
  job: 'retryable (an error of the job: maxAttempts budget)',
} as const;

function toText(file: string, lines: number, d: Diagnosis, decided: DecidingLine | undefined, discounted: Echo[]): string {
  const f = d.failure;
  const status = d.status
    ? ` (${d.status.signal ?? `exit code ${d.status.exitCode}`}, from ${d.status.source === 'given' ? '--exit-code' : d.status.source === 'linkflow' ? "linkflow's attempt log" : "torchrun's error report"})`
    : '';
  if (!f) return `${file}: ${lines} lines; no failure found${status}`;
  const who = f.rank !== undefined ? ` on rank ${f.rank}` : '';
  return [
    `${file}: ${f.class}${status}`,
    `  ${BUDGET_TEXT[budgetOf(f.class)]}`,
    ...(decided?.text.trim() === f.reason ? [] : [`  reason: ${f.reason}`]),
    ...(decided ? [`  decided by line ${decided.number}: ${decided.text.trim()}`] : []),
    ...(f.evidence ? [`  evidence: ${f.evidence}${f.rule ? ` (${f.rule})` : ''}${who}`] : []),
    ...(f.cann ? [`  ${f.cann.code}: ${f.cann.meaning} (${f.cann.source})`] : []),
    ...(discounted.length ? ['  discounted:', ...discounted.map((e) => `    line ${e.line ?? '?'}: ${e.why}`)] : []),
    ...(f.discountedMore ? [`    … and ${f.discountedMore} more ranks' echoes`] : []),
    `  what to do: ${ADVICE[f.class]}`,
    '  excerpt:',
    ...f.excerpt.map((l) => `    ${l}`),
  ].join('\n');
}
