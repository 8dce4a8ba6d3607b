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
import { diagnoseLog, type Diagnosis } from '../failures/diagnose.ts';
import { causeLine, INFRASTRUCTURE } from '../failures/failures.ts';
import { ATTEMPT_LOG_WINDOW, LogWindow } from '../failures/log-window.ts';
import { applyLogEvent, parseLogLine, type AttemptProgress } from '../frameworks/modellink/training-log.ts';
import { ExitError } from '../errors.ts';

export interface DiagnoseOptions {
  json?: boolean;
  exitCode?: string;
}

/** Reads the log once; what it keeps is bounded whatever the file's size. */
async function readLog(file: string): Promise<{ window: LogWindow; progress: AttemptProgress }> {
  const window = new LogWindow({ ...ATTEMPT_LOG_WINDOW, isCause: causeLine() });
  const progress: AttemptProgress = {};
  const input = fs.createReadStream(file, { encoding: 'utf8' });
  const lines = readline.createInterface({ input, crlfDelay: Infinity });
  for await (const line of lines) {
    window.push(line);
    const event = parseLogLine(line);
    if (event) applyLogEvent(progress, event);
  }
  return { window, progress };
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
  if (!Number.isInteger(n) || n < 0 || n > 255) throw new ExitError(`--exit-code: expected the process's exit status (0-255), got ${text}`, 2);
  return n;
}

export async function diagnoseCommand(file: string, opts: DiagnoseOptions): Promise<number> {
  const exitCode = parseExitCode(opts.exitCode);
  checkFile(file);
  let read: Awaited<ReturnType<typeof readLog>>;
  try {
    read = await readLog(file);
  } catch (e) {
    throw new ExitError(`${file}: cannot read it (${(e as Error).message})`, 2);
  }
  const numbered = read.window.numberedLines();
  const diagnosis = diagnoseLog(
    numbered.map((l) => l.text),
    { nanLoss: read.progress.nanLoss === true, status: exitCode !== undefined ? { exitCode, signal: null } : undefined },
  );
  const at = diagnosis.failure?.decidedBy;
  const decided = at !== undefined && numbered[at]?.n !== undefined ? { number: numbered[at].n!, text: numbered[at].text } : undefined;
  if (opts.json) console.log(JSON.stringify(toJson(file, read.window.lineCount, diagnosis, decided)));
  else console.log(toText(file, read.window.lineCount, diagnosis, decided));
  return diagnosis.failure ? 0 : 1;
}

/** The line of the file that decided the class. */
interface DecidingLine {
  number: number;
  text: string;
}

function toJson(file: string, lines: number, d: Diagnosis, decided: DecidingLine | undefined) {
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
          budget: INFRASTRUCTURE.has(f.class) ? 'infrastructure' : f.retryable ? 'job' : 'none',
          reason: f.reason,
          ...(decided ? { line: decided } : {}),
          excerpt: f.excerpt,
        }
      : {}),
  };
}

function toText(file: string, lines: number, d: Diagnosis, decided: DecidingLine | undefined): string {
  const f = d.failure;
  const status = d.status
    ? ` (${d.status.signal ?? `exit code ${d.status.exitCode}`}, from ${d.status.source === 'given' ? '--exit-code' : d.status.source === 'linkflow' ? "linkflow's attempt log" : "torchrun's error report"})`
    : '';
  if (!f) return `${file}: ${lines} lines; no failure found${status}`;
  const retry = !f.retryable
    ? 'not retryable: retrying cannot help'
    : INFRASTRUCTURE.has(f.class)
      ? 'retryable (a fault of the machines: infrastructure budget)'
      : 'retryable (an error of the job: maxAttempts budget)';
  return [
    `${file}: ${f.class}${status}`,
    `  ${retry}`,
    ...(decided?.text.trim() === f.reason ? [] : [`  reason: ${f.reason}`]),
    ...(decided ? [`  decided by line ${decided.number}: ${decided.text.trim()}`] : []),
    '  excerpt:',
    ...f.excerpt.map((l) => `    ${l}`),
  ].join('\n');
}
