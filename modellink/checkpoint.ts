/**
 * Megatron's checkpoint layout (formats.md (b)) and which checkpoint an attempt can resume from.
 *
 *   <save>/latest_checkpointed_iteration.txt   "2000" or "release", written last by rank 0
 *   <save>/iter_0002000/mp_rank_00[_000]/model_optim_rng.pt
 *
 * A checkpoint counts only when every shard of the job's TP×PP layout is present with its file.
 * Nothing here writes into a save directory.
 */
import fs from 'node:fs';
import path from 'node:path';

export const TRACKER_FILE = 'latest_checkpointed_iteration.txt';
export const MODEL_FILE = 'model_optim_rng.pt';

export interface Layout {
  tp: number;
  pp: number;
}

export function iterationDirName(iteration: number | 'release'): string {
  return iteration === 'release' ? 'release' : `iter_${String(iteration).padStart(7, '0')}`;
}

/** mp_rank_{tp:02d} when PP is 1, mp_rank_{tp:02d}_{pp:03d} otherwise. */
export function shardDirNames(layout: Layout): string[] {
  const names: string[] = [];
  for (let t = 0; t < layout.tp; t++) {
    for (let p = 0; p < layout.pp; p++) {
      const tp = String(t).padStart(2, '0');
      names.push(layout.pp === 1 ? `mp_rank_${tp}` : `mp_rank_${tp}_${String(p).padStart(3, '0')}`);
    }
  }
  return names;
}

export function readTracker(saveDir: string): number | 'release' | 'invalid' | undefined {
  let text: string;
  try {
    text = fs.readFileSync(path.join(saveDir, TRACKER_FILE), 'utf8').trim();
  } catch {
    return undefined;
  }
  if (text === 'release') return 'release';
  return /^\d+$/.test(text) ? Number(text) : 'invalid';
}

/** The shards of `layout` that are missing in one iteration directory (empty: complete). */
export function missingShards(saveDir: string, iteration: number | 'release', layout: Layout): string[] {
  const iterDir = path.join(saveDir, iterationDirName(iteration));
  return shardDirNames(layout).filter((shard) => !fs.existsSync(path.join(iterDir, shard, MODEL_FILE)));
}

export function listIterations(saveDir: string): number[] {
  let entries: string[];
  try {
    entries = fs.readdirSync(saveDir);
  } catch {
    return [];
  }
  return entries
    .map((e) => /^iter_(\d{7,})$/.exec(e))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
}

export type ResumePoint =
  | { kind: 'none'; reason: string }
  /** The tracker names a complete checkpoint: `--load <saveDir>` resumes it. */
  | { kind: 'tracker'; iteration: number | 'release'; dir: string }
  /** The tracker's checkpoint is torn (or the tracker is unreadable): resume from an older complete one. */
  | { kind: 'older'; iteration: number; dir: string; reason: string };

/** Where an attempt of a training stage resumes: the newest complete checkpoint Megatron can load. */
export function findResumePoint(saveDir: string, layout: Layout): ResumePoint {
  const tracker = readTracker(saveDir);
  if (tracker === undefined) return { kind: 'none', reason: `no ${TRACKER_FILE} in ${saveDir}` };
  if (tracker !== 'invalid') {
    const missing = missingShards(saveDir, tracker, layout);
    if (missing.length === 0) return { kind: 'tracker', iteration: tracker, dir: saveDir };
  }
  const why = tracker === 'invalid'
    ? `${TRACKER_FILE} is unreadable`
    : `checkpoint ${iterationDirName(tracker)} is incomplete (missing ${missingShards(saveDir, tracker, layout).slice(0, 3).join(', ')})`;
  const older = listIterations(saveDir)
    .filter((i) => tracker === 'invalid' || tracker === 'release' || i < tracker)
    .reverse()
    .find((i) => missingShards(saveDir, i, layout).length === 0);
  if (older === undefined) return { kind: 'none', reason: `${why}, and no older complete checkpoint exists` };
  return { kind: 'older', iteration: older, dir: saveDir, reason: `${why}; resuming from ${iterationDirName(older)}` };
}
