/**
 * Megatron's checkpoint layout (formats.md (b)) and which checkpoint an attempt can resume from.
 *
 *   <save>/latest_checkpointed_iteration.txt   "2000" or "release", written last by rank 0
 *   <save>/iter_0002000/mp_rank_00[_000][_000]/model_optim_rng.pt   (+ distrib_optim.pt)
 *
 * A checkpoint counts only when every shard of the job's TP×PP×EP layout is present with its file.
 * torch_dist (Megatron core_v0.12.1, MindSpeed-LLM 26.1.0 with --ckpt-format torch_dist) keeps one folder per iteration
 * instead: __<rank>_0.distcp files, common.pt, .metadata and metadata.json (see missingDistFiles).
 * Names and decisions only: activities/checkpoints.ts reads the save directory, and nothing writes into it.
 */
import path from 'node:path';

export const TRACKER_FILE = 'latest_checkpointed_iteration.txt';
export const MODEL_FILE = 'model_optim_rng.pt';
/** The distributed optimizer's state, beside each model shard (Megatron get_distributed_optimizer_checkpoint_name). */
const OPTIMIZER_FILE = 'distrib_optim.pt';

export interface Layout {
  tp: number;
  pp: number;
  /** Expert parallel size (MoE); absent means 1. */
  ep?: number;
}

export function iterationDirName(iteration: number | 'release'): string {
  return iteration === 'release' ? 'release' : `iter_${String(iteration).padStart(7, '0')}`;
}

/**
 * Megatron's get_checkpoint_name (megatron/training/checkpointing.py l. 81-120, core_r0.6.0):
 * mp_rank_{tp:02d} when PP is 1, mp_rank_{tp:02d}_{pp:03d} otherwise, and _{ep:03d} appended when
 * the expert-parallel world size is above 1.
 */
export function shardDirNames(layout: Layout): string[] {
  const ep = layout.ep ?? 1;
  const names: string[] = [];
  for (let t = 0; t < layout.tp; t++) {
    for (let p = 0; p < layout.pp; p++) {
      for (let e = 0; e < ep; e++) {
        const tp = String(t).padStart(2, '0');
        const base = layout.pp === 1 ? `mp_rank_${tp}` : `mp_rank_${tp}_${String(p).padStart(3, '0')}`;
        names.push(ep > 1 ? `${base}_${String(e).padStart(3, '0')}` : base);
      }
    }
  }
  return names;
}

/** "TP 2 × PP 1" (and "× EP 2" for MoE), for messages. */
export function describeLayout(layout: Layout): string {
  return `TP ${layout.tp} × PP ${layout.pp}${(layout.ep ?? 1) > 1 ? ` × EP ${layout.ep}` : ''}`;
}

/** torch_dist's files (Megatron core_v0.12.1 megatron/core/dist_checkpointing/). */
export const DIST_FILES = {
  /** Rank 0's common state, written at once by save_common (serialization.py#L378). */
  common: 'common.pt',
  /** torch.distributed.checkpoint's global metadata: the coordinator writes it at finalize, after every rank's shards (strategies/torch.py#L790-791). */
  metadata: '.metadata',
  /** The sharded backend, written by metadata_finalize_fn after .metadata (serialization.py#L386-392); its presence is what check_is_distributed_checkpoint asks. */
  config: 'metadata.json',
} as const;

/**
 * Whether an iteration folder holds torch_dist: Megatron's _get_checkpoint_format (megatron/training/checkpointing.py#L860-875
 * at core_v0.12.1) calls a folder with mp_rank_0* entries torch; linkflow calls one with any of torch_dist's files torch_dist.
 */
export function isDistCheckpointDir(names: readonly string[]): boolean {
  if (names.some((n) => n.startsWith('mp_rank_'))) return false;
  return names.some((n) => n.endsWith('.distcp') || (Object.values(DIST_FILES) as string[]).includes(n));
}

/**
 * What a torch_dist folder lacks to be loadable (empty: complete). The finalize functions write .metadata, then
 * metadata.json, then the tracker (megatron/training/checkpointing.py#L526-540); with --async-save they run only at a
 * later iteration (maybe_finalize_async_save, megatron/training/training.py#L1957), so a job that dies after the shards
 * leaves a folder without .metadata: torn.
 */
export function missingDistFiles(names: readonly string[]): string[] {
  const missing: string[] = [DIST_FILES.common, DIST_FILES.metadata, DIST_FILES.config].filter((f) => !names.includes(f));
  if (!names.some((n) => n.endsWith('.distcp'))) missing.push('*.distcp');
  return missing;
}

/** What the tracker file says: an iteration, "release", or 'invalid' when it is neither. */
export function parseTracker(text: string): number | 'release' | 'invalid' {
  const trimmed = text.trim();
  if (trimmed === 'release') return 'release';
  return /^\d+$/.test(trimmed) ? Number(trimmed) : 'invalid';
}

/** The iteration an entry of a save directory holds (iter_0002000 → 2000), if it is an iteration directory. */
export function iterationOfDirName(name: string): number | undefined {
  const m = /^iter_(\d{7,})$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** What resumePoint needs to know of a save directory (activities/checkpoints.ts reads it from disk). */
export interface SaveDirView {
  /** The tracker file's content parsed, undefined when there is none. */
  tracker(): number | 'release' | 'invalid' | undefined;
  /** The iteration directories present, ascending. */
  iterations(): number[];
  /** The shards of the layout missing in one iteration directory (empty: complete). */
  missingShards(iteration: number | 'release'): string[];
}

export type ResumePoint =
  | { kind: 'none'; reason: string }
  /** The tracker names a complete checkpoint: `--load <saveDir>` resumes it. */
  | { kind: 'tracker'; iteration: number | 'release'; dir: string }
  /** The tracker's checkpoint is torn (or the tracker is unreadable): resume from an older complete one. */
  | { kind: 'older'; iteration: number; dir: string; reason: string };

/** Where an attempt of a training stage resumes: the newest complete checkpoint Megatron can load. */
export function resumePoint(saveDir: string, dir: SaveDirView): ResumePoint {
  const tracker = dir.tracker();
  if (tracker === undefined) return { kind: 'none', reason: `no ${TRACKER_FILE} in ${saveDir}` };
  if (tracker !== 'invalid') {
    const missing = dir.missingShards(tracker);
    if (missing.length === 0) return { kind: 'tracker', iteration: tracker, dir: saveDir };
  }
  const why =
    tracker === 'invalid'
      ? `${TRACKER_FILE} is unreadable`
      : `checkpoint ${iterationDirName(tracker)} is incomplete (missing ${dir.missingShards(tracker).slice(0, 3).join(', ')})`;
  const older = dir
    .iterations()
    .filter((i) => tracker === 'invalid' || tracker === 'release' || i < tracker)
    .reverse()
    .find((i) => dir.missingShards(i).length === 0);
  if (older === undefined) return { kind: 'none', reason: `${why}, and no older complete checkpoint exists` };
  return { kind: 'older', iteration: older, dir: saveDir, reason: `${why}; resuming from ${iterationDirName(older)}` };
}

/**
 * A LoRA warm restart's own save directory inside the stage's, named by the (total) iteration it
 * starts from. A warm restart counts from 0 again (see warmLoraResumeArgs), so saving into the stage's
 * directory would overwrite the earlier attempt's iter_* and move its tracker backwards.
 */
export function warmDirName(from: number): string {
  return `warm-${from}`;
}

/**
 * The folder a restart from `from` saves into when `warm-<from>` already holds something (an earlier
 * restart from the same iteration that crashed, its torn checkpoint alone there): the attempt's number
 * makes a name of its own, so no restart ever writes into a folder an earlier attempt wrote.
 */
export function warmDirNameOfAttempt(from: number, attempt: number): string {
  return `warm-${from}.${attempt}`;
}

/** A warm folder's start and its order among folders of the same start (`warm-N` 0, `warm-N.<attempt>` that attempt). */
export function warmOfDirName(name: string): { from: number; seq: number } | undefined {
  const m = /^warm-(\d+)(?:\.(\d+))?$/.exec(name);
  return m ? { from: Number(m[1]), seq: m[2] === undefined ? 0 : Number(m[2]) } : undefined;
}

/** A link of a resume view: `link` (relative to the view) points at `target` (absolute). */
export interface ViewLink {
  link: string;
  target: string;
}

/**
 * The directory a LoRA attempt's `--load` points at when it resumes its own checkpoint.
 *
 * Megatron (load_checkpoint, megatron/training/checkpointing.py l. 738-746) reads the distributed
 * optimizer's state through the tracker of `--load`, at `<load>/<iter>/mp_rank_XX/distrib_optim.pt`,
 * and overwrites the iteration with that tracker's; ModelLink's `_load_base_checkpoint_wrapper`
 * (modellink/training/checkpointing.py) merges the `--lora-load` checkpoint's state dict (iteration,
 * optimizer, scheduler, RNG, args) over the one `--load` names. So the view's tracker names the LoRA
 * checkpoint's iteration, and under that iteration each shard holds the base weights' model file and
 * the LoRA checkpoint's optimizer state. `iteration` is the LoRA checkpoint's; `loraDir` the directory
 * `--lora-load` names (whose tracker names that iteration); `base` the base weights' directory and
 * the iteration its tracker names. The optimizer files are listed whether or not they exist (a run
 * without the distributed optimizer has none; the caller links only those present).
 */
export function loraResumeView(
  iteration: number,
  loraDir: string,
  base: { dir: string; iteration: number | 'release' },
  layout: Layout,
): { tracker: string; links: ViewLink[] } {
  const iterDir = iterationDirName(iteration);
  const links = shardDirNames(layout).flatMap((shard) => [
    { link: path.join(iterDir, shard, MODEL_FILE), target: path.join(base.dir, iterationDirName(base.iteration), shard, MODEL_FILE) },
    { link: path.join(iterDir, shard, OPTIMIZER_FILE), target: path.join(loraDir, iterDir, shard, OPTIMIZER_FILE) },
  ]);
  return { tracker: String(iteration), links };
}
