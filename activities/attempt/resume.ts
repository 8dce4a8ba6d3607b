/**
 * Where a training attempt resumes: the checkpoint --load names, or a view of links that shows
 * Megatron an older complete iteration (or, for LoRA, the base weights under the LoRA checkpoint).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describeLayout, iterationDirName, loraResumeView, TRACKER_FILE, warmDirName, type ResumePoint } from '../../frameworks/modellink/checkpoint.ts';
import { findResumePoint, findWarmResumePoint, missingShards, readTracker } from '../checkpoints.ts';
import { dpoResumeArgs, resumeArgs, warmLoraResumeArgs } from '../../frameworks/modellink/commands.ts';
import type { StagePlan } from '../../plan/plan.ts';
import { fail } from './common.ts';

/**
 * Megatron loads whatever the tracker file names. To resume from an older complete checkpoint
 * without touching the save directory, point --load at a small directory of our own holding a
 * tracker and a link to that iteration.
 */
function resumeView(stage: StagePlan, iteration: number, source = stage.training!.saveDir): string {
  const folder = source === stage.training!.saveDir ? [] : [path.basename(source)];
  const view = path.join(stage.dir, 'resume', ...folder, iterationDirName(iteration));
  fs.mkdirSync(view, { recursive: true });
  const link = path.join(view, iterationDirName(iteration));
  try {
    fs.symlinkSync(path.join(source, iterationDirName(iteration)), link);
  } catch (e) {
    // Every rank of a gang builds the same view; the first one's link serves all.
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  fs.writeFileSync(path.join(view, TRACKER_FILE), `${iteration}\n`);
  return view;
}

/** A name for a file about to be renamed into place, unique across the nodes of a gang sharing the storage. */
const tmpName = (file: string) => `${file}.${os.hostname()}.${process.pid}.tmp`;

/** A link of a view, made or re-pointed atomically (a new link renamed over the old one), so ranks building the same view never race. */
function placeLink(link: string, target: string): void {
  fs.mkdirSync(path.dirname(link), { recursive: true });
  try {
    if (fs.readlinkSync(link) === target) return;
  } catch {
    // not there yet
  }
  const tmp = tmpName(link);
  fs.rmSync(tmp, { force: true });
  fs.symlinkSync(target, tmp);
  fs.renameSync(tmp, link);
}

/**
 * A LoRA attempt that resumes needs `--load` to show the base weights under the LoRA checkpoint's
 * tracker and distributed-optimizer files (see loraResumeView for why Megatron needs that). The view
 * is `<stage>/resume/lora-iter_N`, made of links only: neither checkpoint is touched.
 */
function loraLoadView(stage: StagePlan, iteration: number, loraDir: string, logFile: string): string {
  const training = stage.training!;
  const baseDir = training.loraBase!;
  const base = readTracker(baseDir);
  const layout = { tp: training.tp, pp: training.pp, ep: training.ep };
  const missing = base === undefined || base === 'invalid' ? [TRACKER_FILE] : missingShards(baseDir, base, layout);
  if (base === undefined || base === 'invalid' || missing.length > 0) {
    const reason = `the base weights ${baseDir} a LoRA resume loads are incomplete (missing ${missing.slice(0, 3).join(', ')} of the ${describeLayout(layout)} layout)`;
    fs.appendFileSync(logFile, `linkflow: ${reason}\n`);
    throw fail('missing-input', `stage ${stage.name}: ${reason}`, { failureClass: 'missing-input', reason, excerpt: [reason], logFile }, false);
  }
  const view = path.join(stage.dir, 'resume', `lora-${iterationDirName(iteration)}`);
  const planned = loraResumeView(iteration, loraDir, { dir: baseDir, iteration: base }, layout);
  // Without the distributed optimizer the LoRA checkpoint has no distrib_optim.pt, and Megatron reads none.
  for (const { link, target } of planned.links) if (fs.existsSync(target)) placeLink(path.join(view, link), target);
  const tracker = path.join(view, TRACKER_FILE);
  const tmp = tmpName(tracker);
  fs.writeFileSync(tmp, `${planned.tracker}\n`);
  fs.renameSync(tmp, tracker);
  return view;
}

/** How an attempt resumes; `iterationOffset`: a warm restart counts from 0 again, this is where its count starts in the stage's. */
export interface PlannedResume {
  args: StagePlan['args'];
  point: ResumePoint;
  warmRestart?: string;
  iterationOffset?: number;
}

export function planResume(stage: StagePlan, logFile: string): PlannedResume {
  const training = stage.training!;
  // MindSpeed-LLM resumes LoRA only as a warm restart (frameworks/mindspeed-llm/framework.ts loraResume).
  if (training.lora && training.loraResume === 'warm') return planWarmRestart(stage);
  const point = findResumePoint(training.saveDir, training);
  if (point.kind === 'none') return { args: stage.args, point };
  // The checkpoint --load (or, for LoRA, --lora-load) resumes: the save directory, or a view of an older complete iteration.
  const dir = point.kind === 'tracker' ? training.saveDir : resumeView(stage, point.iteration);
  if (training.lora && training.loraBase !== undefined && point.iteration !== 'release') {
    return { args: resumeArgs(stage.args, dir, true, loraLoadView(stage, point.iteration, training.saveDir, logFile)), point };
  }
  const args = resumeArgs(stage.args, dir, training.lora);
  return { args: training.dpoReference && !training.lora ? dpoResumeArgs(args, training.dpoReference) : args, point };
}

/**
 * A warm restart loads the LoRA weights with --finetune, so Megatron counts from iteration 0 again
 * (MindSpeed-LLM 2.3.0 mindspeed_llm/training/checkpointing.py _load_base_checkpoint_wrapper merges the
 * --lora-load state into the base's and hands it to Megatron core_v0.12.1 megatron/training/checkpointing.py
 * load_checkpoint, which sets iteration = 0 under args.finetune). It saves into its own folder
 * `<saveDir>/warm-<total iteration>` and trains what is left, so no earlier checkpoint is rewritten;
 * the next resume and the stage's output follow the newest warm folder (activities/checkpoints.ts).
 */
function planWarmRestart(stage: StagePlan): PlannedResume {
  const training = stage.training!;
  const { point, source, offset } = findWarmResumePoint(training.saveDir, training);
  if (point.kind === 'none') return { args: stage.args, point };
  const dir = point.kind === 'tracker' ? source : resumeView(stage, point.iteration, source);
  if (point.iteration === 'release') return { args: warmLoraResumeArgs(stage.args, dir), point };
  const total = offset + point.iteration;
  const save = path.join(training.saveDir, warmDirName(total));
  const remaining = training.trainIters - total;
  const within = source === training.saveDir ? '' : ` (${path.basename(source)}/${iterationDirName(point.iteration)})`;
  const warmRestart =
    `LoRA warm restart from ${iterationDirName(total)}${within}: the LoRA weights continue, the iteration count, optimizer and learning-rate schedule start again ` +
    `(MindSpeed-LLM cannot resume a LoRA run's optimizer); it trains the remaining ${remaining} iterations and saves into ${save}, leaving earlier checkpoints as they are`;
  return {
    args: warmLoraResumeArgs(stage.args, dir, { save, trainIters: remaining }),
    point: { ...point, iteration: total },
    warmRestart,
    iterationOffset: total,
  };
}
