/**
 * Before a training attempt resumes: the stage's TensorBoard directory rewound to the iteration it
 * loads, so the curves show every step once (plan/tensorboard-events.ts says why). Nothing is
 * deleted or rewritten: a file with events past that iteration moves to <dir>-superseded/ whole, and a
 * copy of its records up to the iteration takes its place in the directory.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { StagePlan } from '../plan/plan.ts';
import { eventRecords, rewindOffset } from '../plan/tensorboard-events.ts';

/** The directory the stage's trainer writes events into (--tensorboard-dir), if any. */
export function tensorboardDirOf(stage: StagePlan): string | undefined {
  const flag = stage.args.find(([f]) => f === '--tensorboard-dir');
  return typeof flag?.[1] === 'string' ? flag[1] : undefined;
}

/** Rewinds every event file of `dir` to `iteration`; returns a line for the attempt log per file moved. */
export function rewindTensorBoard(dir: string, iteration: number): string[] {
  if (!fs.existsSync(dir)) return [];
  const superseded = `${dir}-superseded`;
  const notes: string[] = [];
  for (const file of fs
    .readdirSync(dir)
    .filter((f) => f.includes('tfevents'))
    .sort()) {
    const original = path.join(dir, file);
    const bytes = fs.readFileSync(original);
    const cut = rewindOffset(eventRecords(bytes), iteration);
    if (cut === undefined) continue;
    // The copy first: should the worker die in between, both are there and nothing is lost.
    const kept = path.join(dir, `${file}.upto-${iteration}`);
    const tmp = path.join(dir, `.rewind-${process.pid}.tmp`);
    fs.writeFileSync(tmp, bytes.subarray(0, cut));
    fs.renameSync(tmp, kept);
    fs.mkdirSync(superseded, { recursive: true });
    const moved = freeName(path.join(superseded, file));
    fs.renameSync(original, moved);
    notes.push(`# tensorboard: ${file} had events past iteration ${iteration}; kept up to it as ${path.basename(kept)}, the whole file moved to ${moved}`);
  }
  return notes;
}

function freeName(p: string): string {
  let candidate = p;
  for (let i = 1; fs.existsSync(candidate); i++) candidate = `${p}.${i}`;
  return candidate;
}
