/**
 * Where a training attempt resumes: the checkpoint --load names, or a view of links that shows
 * Megatron an older complete iteration (or, for LoRA, the base weights under the LoRA checkpoint).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  describeLayout,
  iterationDirName,
  loraResumeView,
  TRACKER_FILE,
  warmDirName,
  warmDirNameOfAttempt,
  type ResumePoint,
} from '../../frameworks/modellink/checkpoint.ts';
import { findResumePoint, findWarmResumePoint, holdsAnything, missingShards, readTracker } from '../checkpoints.ts';
import { dpoResumeArgs, resumeArgs, warmLoraResumeArgs } from '../../frameworks/modellink/commands.ts';
import { dpoLoraResumeArgs } from '../../frameworks/mindspeed-llm/dpo-lora-resume.ts';
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

export function planResume(stage: StagePlan, logFile: string, attempt: number): PlannedResume {
  const training = stage.training!;
  // MindSpeed-LLM resumes LoRA only as a warm restart (frameworks/mindspeed-llm/framework.ts loraResume); LoRA DPO,
  // whose reference a warm restart would spoil, resumes without --finetune where the version allows, else starts again.
  if (training.lora && training.loraResume === 'warm') {
    if (!training.dpoReference) return planWarmRestart(stage, logFile, attempt);
    return training.dpoReference.loraWithoutFinetune ? planDpoLoraResume(stage) : planDpoLoraRestart(stage, logFile, attempt);
  }
  const point = findResumePoint(training.saveDir, training);
  if (point.kind === 'none') return { args: stage.args, point };
  // The checkpoint --load (or, for LoRA, --lora-load) resumes: the save directory, or a view of an older complete iteration.
  const dir = point.kind === 'tracker' ? training.saveDir : resumeView(stage, point.iteration);
  if (training.lora && training.loraBase !== undefined && point.iteration !== 'release') {
    return { args: resumeArgs(stage.args, dir, true, loraLoadView(stage, point.iteration, training.saveDir, logFile)), point };
  }
  const args = resumeArgs(stage.args, dir, training.lora);
  if (!training.dpoReference || training.lora) return { args, point };
  return { args: dpoResumeArgs(args, training.dpoReference, referenceStep(stage, logFile)), point };
}

/**
 * 2.1.0 loads the reference of a resumed DPO attempt at iteration --refer-model-iter (default 1), whatever the
 * reference's tracker names, and never as a release (frameworks/mindspeed-llm/versions.ts dpoReferenceAtReferIter):
 * name the tracker's iteration, or show a release checkpoint through a view as iteration 1 (links only).
 */
function referenceStep(stage: StagePlan, logFile: string): { dir: string; iteration: number } | undefined {
  const reference = stage.training!.dpoReference!;
  if (!reference.atReferIter) return undefined;
  const tracker = readTracker(reference.load);
  if (typeof tracker === 'number') return { dir: reference.load, iteration: tracker };
  if (tracker === 'release') {
    const view = path.join(stage.dir, 'resume', 'reference');
    placeLink(path.join(view, iterationDirName(1)), path.join(reference.load, iterationDirName('release')));
    const file = path.join(view, TRACKER_FILE);
    const tmp = tmpName(file);
    fs.writeFileSync(tmp, '1\n');
    fs.renameSync(tmp, file);
    return { dir: view, iteration: 1 };
  }
  const reason = `the DPO reference weights ${reference.load} have no readable ${TRACKER_FILE}`;
  fs.appendFileSync(logFile, `linkflow: ${reason}\n`);
  throw fail('missing-input', `stage ${stage.name}: ${reason}`, { failureClass: 'missing-input', reason, excerpt: [reason], logFile }, false);
}

/**
 * The folder a restart saves into: `<saveDir>/warm-<from>`, or, when an earlier attempt already wrote
 * there (a restart from the same iteration that crashed, maybe leaving a torn checkpoint alone in it),
 * `warm-<from>.<attempt>`. Every rank of a gang picks the same one: nothing of this attempt saves before
 * all its ranks are up, and an empty folder (made early by a rank's trainer) counts as free.
 */
function freshWarmDir(stage: StagePlan, from: number, attempt: number, logFile: string): string {
  const saveDir = stage.training!.saveDir;
  const names = [warmDirName(from), warmDirNameOfAttempt(from, attempt)];
  const free = names.map((n) => path.join(saveDir, n)).find((dir) => !holdsAnything(dir));
  if (free) return free;
  const reason = `the restart folders ${names.join(' and ')} in ${saveDir} already hold files of earlier attempts, and linkflow overwrites no checkpoint`;
  const excerpt = [`${reason}: move them aside (or give the stage a new name) and run the pipeline again`];
  fs.appendFileSync(logFile, `linkflow: ${excerpt[0]}\n`);
  throw fail('exception', `stage ${stage.name}: ${excerpt[0]}`, { failureClass: 'exception', reason, excerpt, logFile }, false);
}

/**
 * A warm restart loads the LoRA weights with --finetune, so Megatron counts from iteration 0 again
 * (MindSpeed-LLM 2.3.0 mindspeed_llm/training/checkpointing.py _load_base_checkpoint_wrapper merges the
 * --lora-load state into the base's and hands it to Megatron core_v0.12.1 megatron/training/checkpointing.py
 * load_checkpoint, which sets iteration = 0 under args.finetune). It saves into a folder of its own
 * (freshWarmDir: `<saveDir>/warm-<total iteration>`) and trains what is left, so no earlier checkpoint is
 * rewritten; the next resume and the stage's output follow the newest warm folder (activities/checkpoints.ts).
 */
function planWarmRestart(stage: StagePlan, logFile: string, attempt: number): PlannedResume {
  const training = stage.training!;
  const { point, source, offset } = findWarmResumePoint(training.saveDir, training);
  if (point.kind === 'none') return { args: stage.args, point };
  const dir = point.kind === 'tracker' ? source : resumeView(stage, point.iteration, source);
  if (point.iteration === 'release') return { args: warmLoraResumeArgs(stage.args, dir), point };
  const total = offset + point.iteration;
  // Finished already (a run that stopped before its manifest): prepareAttempt ends the attempt, nothing is launched.
  // Whatever the tracker said: a complete checkpoint at the end means done, never a relaunch into the stage's own folder.
  if (total === training.trainIters) return { args: stage.args, point: { kind: 'tracker', iteration: total, dir: point.dir }, iterationOffset: offset };
  const save = freshWarmDir(stage, total, attempt, logFile);
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

/**
 * A LoRA DPO stage whose first attempt loaded no LoRA weights, on a version whose reference stays the base when
 * not fine-tuning (2.3.0, 26.0.0): it resumes its newest LoRA checkpoint without --finetune, in the stage's own
 * save directory as a full resume does, counting on (frameworks/mindspeed-llm/dpo-lora-resume.ts).
 */
function planDpoLoraResume(stage: StagePlan): PlannedResume {
  const training = stage.training!;
  const point = findResumePoint(training.saveDir, training);
  if (point.kind === 'none' || point.iteration === 'release') return { args: stage.args, point };
  const dir = point.kind === 'tracker' ? training.saveDir : resumeView(stage, point.iteration);
  const warmRestart =
    `LoRA DPO resumes from ${iterationDirName(point.iteration)} without --finetune (as MindSpeed-LLM's DPO-LoRA script runs): the LoRA weights, ` +
    `the iteration count and the data go on, the optimizer and learning-rate schedule start again; the reference model stays the base weights ${training.dpoReference!.load}`;
  return { args: dpoLoraResumeArgs(stage.args, dir), point, warmRestart };
}

/**
 * A LoRA DPO stage on MindSpeed-LLM cannot warm-restart: its reference model would become the policy it
 * resumes. DPOTrainer._init_reference_model (2.3.0 and 26.0.0 mindspeed_llm/tasks/posttrain/dpo/dpo_trainer.py
 * #L363-386) builds the reference through the same LoRA-wrapped model provider and loads it with load_checkpoint
 * from --ref-model (else --load); under --finetune, which a warm restart needs to count from 0, it leaves
 * is_load_refer unset, so _load_base_checkpoint_wrapper (mindspeed_llm/training/checkpointing.py#L55-78)
 * merges the --lora-load weights over it (merge_dicts overwrites, lora/utils.py#L42-49). --ref-model changes
 * only the base under them, and the base a warm restart loads is the first attempt's already. So where it
 * cannot resume without --finetune either (planDpoLoraResume: on 1.0.0 and 2.1.0, or after a first attempt that
 * loaded LoRA weights, which its reference then holds and a run without --finetune would drop) the stage
 * starts again from the first attempt's weights (its command as it was, the first --lora-load included, so
 * policy and reference are those of attempt 1), saving into a folder of its own: its earlier checkpoints stay.
 * Once a run has finished (a restart folder whose tracker is at train-iters) there is nothing to redo.
 */
function planDpoLoraRestart(stage: StagePlan, logFile: string, attempt: number): PlannedResume {
  const training = stage.training!;
  const { point, offset } = findWarmResumePoint(training.saveDir, training);
  if (point.kind === 'tracker' && point.iteration !== 'release' && offset + point.iteration === training.trainIters) {
    return { args: stage.args, point: { ...point, iteration: training.trainIters } };
  }
  if (!holdsAnything(training.saveDir)) return { args: stage.args, point: { kind: 'none', reason: 'nothing saved yet' } };
  const save = freshWarmDir(stage, 0, attempt, logFile);
  const warmRestart =
    `LoRA DPO restarts from the beginning: a warm restart would make its reference model the policy it resumes ` +
    `(MindSpeed-LLM's DPOTrainer merges --lora-load into the reference under --finetune), so it trains all ${training.trainIters} iterations again ` +
    `from the first attempt's weights and saves into ${save}, leaving earlier checkpoints as they are`;
  return {
    args: stage.args.map(([f, v]): StagePlan['args'][number] => (f === '--save' ? [f, save] : [f, v])),
    point: { kind: 'none', reason: warmRestart },
    warmRestart,
    iterationOffset: 0,
  };
}
