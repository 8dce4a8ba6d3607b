/**
 * A training stage's save directory as it is on disk: the tracker, the iteration directories and
 * their shards, read for frameworks/modellink/checkpoint.ts's layout rules. Reads only; nothing here writes.
 */
import fs from 'node:fs';
import path from 'node:path';
import {
  iterationDirName,
  isDistCheckpointDir,
  iterationOfDirName,
  missingDistFiles,
  MODEL_FILE,
  parseTracker,
  resumePoint,
  shardDirNames,
  TRACKER_FILE,
  warmOfDirName,
  type Layout,
  type ResumePoint,
} from '../frameworks/modellink/checkpoint.ts';

export function readTracker(saveDir: string): number | 'release' | 'invalid' | undefined {
  let text: string;
  try {
    text = fs.readFileSync(path.join(saveDir, TRACKER_FILE), 'utf8');
  } catch {
    return undefined;
  }
  return parseTracker(text);
}

/**
 * What is missing in one iteration directory (empty: complete): the shards of `layout`, or for a torch_dist folder
 * (26.1.0 --ckpt-format torch_dist) the files its finalize writes.
 */
export function missingShards(saveDir: string, iteration: number | 'release', layout: Layout): string[] {
  const iterDir = path.join(saveDir, iterationDirName(iteration));
  let names: string[] = [];
  try {
    names = fs.readdirSync(iterDir);
  } catch {
    // No folder: every shard is missing, as below.
  }
  if (isDistCheckpointDir(names)) return missingDistFiles(names);
  return shardDirNames(layout).filter((shard) => !fs.existsSync(path.join(iterDir, shard, MODEL_FILE)));
}

/** A directory's entries; none when it does not exist (yet). */
function entriesOf(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

/** The iteration directories of a save directory, ascending. */
function listIterations(saveDir: string): number[] {
  return entriesOf(saveDir)
    .map(iterationOfDirName)
    .filter((i): i is number => i !== undefined)
    .sort((a, b) => a - b);
}

/** Where an attempt of a training stage resumes: the newest complete checkpoint in `saveDir` Megatron can load. */
export function findResumePoint(saveDir: string, layout: Layout): ResumePoint {
  return resumePoint(saveDir, {
    tracker: () => readTracker(saveDir),
    iterations: () => listIterations(saveDir),
    missingShards: (iteration) => missingShards(saveDir, iteration, layout),
  });
}

/** The warm-restart folders of a LoRA save directory (see warmDirName), newest first: latest start, then latest attempt. */
function warmFolders(saveDir: string): { dir: string; from: number }[] {
  return entriesOf(saveDir)
    .map((name) => ({ dir: path.join(saveDir, name), of: warmOfDirName(name) }))
    .filter((w): w is { dir: string; of: { from: number; seq: number } } => w.of !== undefined)
    .sort((a, b) => b.of.from - a.of.from || b.of.seq - a.of.seq)
    .map((w) => ({ dir: w.dir, from: w.of.from }));
}

/** Whether a directory holds anything (a torn checkpoint counts): a restart never saves into such a folder. */
export function holdsAnything(dir: string): boolean {
  try {
    return fs.readdirSync(dir).length > 0;
  } catch {
    return false;
  }
}

/**
 * Where a LoRA stage that resumes by warm restarts picks up: the newest of its warm folders holding a
 * complete checkpoint, else its save directory. `offset` is the iteration the folder's count starts at.
 */
export function findWarmResumePoint(saveDir: string, layout: Layout): { point: ResumePoint; source: string; offset: number } {
  for (const w of warmFolders(saveDir)) {
    const point = findResumePoint(w.dir, layout);
    if (point.kind !== 'none') return { point, source: w.dir, offset: w.from };
  }
  return { point: findResumePoint(saveDir, layout), source: saveDir, offset: 0 };
}

/** The LoRA checkpoint a stage's output stands for: its newest warm folder with a tracker, else the directory itself. */
export function warmOutputDir(dir: string): string {
  return warmFolders(dir).find((w) => readTracker(w.dir) !== undefined)?.dir ?? dir;
}
