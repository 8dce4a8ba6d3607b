/**
 * Resumes that overwrite nothing and keep what a stage trains against (issue 19): a LoRA warm restart never
 * saves into a folder an earlier attempt wrote, and a LoRA DPO stage on MindSpeed-LLM keeps its reference
 * model. Plans and real directories only, no Temporal.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { planResume } from '../activities/attempt/resume.ts';
import { findWarmResumePoint, warmOutputDir } from '../activities/checkpoints.ts';
import { getFramework } from '../frameworks/index.ts';
import { planPipeline, type StagePlan } from '../plan/plan.ts';
import { dpoSpec, fiveStageSpec, onFramework, tempDir, type RawSpec } from '../testkit/specs.ts';

type Args = StagePlan['args'];

function stageOf(spec: RawSpec, name: string): StagePlan {
  const r = planPipeline(spec, { baseDir: '/tmp' });
  if (!r.ok) throw new Error(r.problems.map((p) => `${p.path}: ${p.message}`).join('\n'));
  return r.plan.stages.find((s) => s.name === name)!;
}

const value = (args: Args, flag: string) => args.find(([f]) => f === flag)?.[1];
const iterDir = (i: number) => `iter_${String(i).padStart(7, '0')}`;

/** A checkpoint of the 1×1 layout: complete (shard file and tracker) or torn (its directory only, no tracker). */
function save(dir: string, iteration: number, torn = false): void {
  const shard = path.join(dir, iterDir(iteration), 'mp_rank_00');
  fs.mkdirSync(shard, { recursive: true });
  if (torn) return;
  fs.writeFileSync(path.join(shard, 'model_optim_rng.pt'), 'x');
  fs.writeFileSync(path.join(dir, 'latest_checkpointed_iteration.txt'), `${iteration}\n`);
}

/** Every file under a directory with its content, to show nothing in it changed. */
function snapshot(dir: string): Record<string, string> {
  const files = fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => fs.statSync(path.join(dir, f)).isFile());
  return Object.fromEntries(files.map((f) => [f, fs.readFileSync(path.join(dir, f), 'utf8')]));
}

function loraFinetune(ws: string): StagePlan {
  const spec = onFramework(fiveStageSpec('l', ws), 'mindspeed-llm', '2.3.0');
  Object.assign(spec.stages[4], { lora: { r: 8, alpha: 16 } });
  return stageOf(spec, 'finetune');
}

function loraDpo(ws: string, version = '2.3.0'): StagePlan {
  const spec = onFramework(dpoSpec('d', ws), 'mindspeed-llm', version);
  Object.assign(
    spec.stages.find((s) => s.name === 'dpo')!,
    { lora: { r: 8, alpha: 16 } },
  );
  return stageOf(spec, 'dpo');
}

/** DPO with LoRA on top of a LoRA fine-tuning stage's weights (lora.load): its reference holds those weights. */
function loraDpoAfterLoraSft(ws: string): StagePlan {
  const spec = onFramework(fiveStageSpec('s', ws), 'mindspeed-llm', '2.3.0');
  const pairs = dpoSpec('d', ws).stages.find((s) => s.name === 'pairs')!;
  const dpo = { ...dpoSpec('d', ws).stages.find((s) => s.name === 'dpo')!, load: 'pretrain', lora: { r: 8, alpha: 16, load: 'finetune' } };
  Object.assign(spec.stages[4], { lora: { r: 8, alpha: 16 } });
  spec.stages = [...spec.stages.slice(0, 5), pairs, dpo];
  return stageOf(spec, 'dpo');
}

describe('a LoRA warm restart (MindSpeed-LLM)', () => {
  it('never saves into a warm folder an earlier attempt wrote: a torn checkpoint alone in warm-10 stays, the restart takes warm-10.<attempt>', () => {
    const ws = tempDir('warm-torn');
    const stage = loraFinetune(ws);
    const saveDir = stage.training!.saveDir;
    save(saveDir, 10);
    // Attempt 2 restarted from 10 into warm-10 and died while writing its first checkpoint.
    save(path.join(saveDir, 'warm-10'), 5, true);
    const before = snapshot(saveDir);
    const log = path.join(ws, 'attempt-3.log');
    const planned = planResume(stage, log, 3);
    // The newest complete checkpoint is still the stage directory's iter_10: the restart is again from 10.
    expect(planned.iterationOffset).toBe(10);
    expect(value(planned.args, '--save')).toBe(path.join(saveDir, 'warm-10.3'));
    expect(fs.readdirSync(path.join(saveDir, 'warm-10'))).toEqual([iterDir(5)]);
    expect(snapshot(saveDir)).toEqual(before);
  });

  it('a finished run whose tracker is unreadable is done: it is never relaunched into the stage directory over its own checkpoints', () => {
    const ws = tempDir('warm-finished');
    const stage = loraFinetune(ws);
    const saveDir = stage.training!.saveDir;
    const end = stage.training!.trainIters;
    save(saveDir, end);
    // A crash while the tracker was being written: empty, so the newest complete checkpoint is found by scanning.
    fs.writeFileSync(path.join(saveDir, 'latest_checkpointed_iteration.txt'), '');
    const before = snapshot(saveDir);
    const planned = planResume(stage, path.join(ws, 'a.log'), 2);
    // prepareAttempt ends an attempt whose resume point is the last iteration: nothing is launched.
    expect(planned.point).toMatchObject({ kind: 'tracker', iteration: end });
    expect(snapshot(saveDir)).toEqual(before);
  });

  it('takes warm-<N> while it is absent or empty (a rank’s trainer may have made it), so every rank of a gang picks the same folder', () => {
    const ws = tempDir('warm-empty');
    const stage = loraFinetune(ws);
    const saveDir = stage.training!.saveDir;
    save(saveDir, 10);
    expect(value(planResume(stage, path.join(ws, 'a.log'), 2).args, '--save')).toBe(path.join(saveDir, 'warm-10'));
    fs.mkdirSync(path.join(saveDir, 'warm-10'));
    expect(value(planResume(stage, path.join(ws, 'b.log'), 2).args, '--save')).toBe(path.join(saveDir, 'warm-10'));
  });

  it('fails, naming the folders, rather than write into one an earlier attempt wrote when both names are taken', () => {
    const ws = tempDir('warm-taken');
    const stage = loraFinetune(ws);
    const saveDir = stage.training!.saveDir;
    save(saveDir, 10);
    save(path.join(saveDir, 'warm-10'), 5, true);
    save(path.join(saveDir, 'warm-10.3'), 5, true);
    const log = path.join(ws, 'a.log');
    expect(() => planResume(stage, log, 3)).toThrow(/warm-10 and warm-10\.3 .* already hold files of earlier attempts/);
    expect(fs.readFileSync(log, 'utf8')).toMatch(/move them aside/);
  });

  it('follows the newest folder: warm-N.<attempt> after warm-N, for the next resume and for the stages that load the LoRA weights', () => {
    const saveDir = tempDir('warm-order');
    const layout = { tp: 1, pp: 1, ep: 1 };
    save(saveDir, 10);
    save(path.join(saveDir, 'warm-10'), 5, true);
    save(path.join(saveDir, 'warm-10.3'), 5);
    expect(findWarmResumePoint(saveDir, layout)).toMatchObject({
      source: path.join(saveDir, 'warm-10.3'),
      offset: 10,
      point: { kind: 'tracker', iteration: 5 },
    });
    expect(warmOutputDir(saveDir)).toBe(path.join(saveDir, 'warm-10.3'));
    // Both complete: the later attempt's folder is the newer one.
    save(path.join(saveDir, 'warm-10'), 3);
    expect(findWarmResumePoint(saveDir, layout).source).toBe(path.join(saveDir, 'warm-10.3'));
    expect(warmOutputDir(saveDir)).toBe(path.join(saveDir, 'warm-10.3'));
    // A restart from further on is newer still.
    save(path.join(saveDir, 'warm-15'), 2);
    expect(findWarmResumePoint(saveDir, layout)).toMatchObject({ source: path.join(saveDir, 'warm-15'), offset: 15 });
  });
});

/**
 * The weights DPOTrainer's reference model holds on MindSpeed-LLM 2.1.0-26.0.0, as the source loads them:
 * load_checkpoint from --ref-model, else --load (posttrain/dpo/dpo_trainer.py _init_reference_model); under
 * --finetune is_load_refer stays unset and _load_base_checkpoint_wrapper merges the --lora-load weights over
 * it (mindspeed_llm/training/checkpointing.py#L55-78 at 2.3.0); without --finetune it loads the base alone.
 */
function referenceOf(args: Args): { base: unknown; lora: unknown } {
  const finetune = args.some(([f]) => f === '--finetune');
  return { base: value(args, '--ref-model') ?? value(args, '--load'), lora: finetune ? value(args, '--lora-load') : undefined };
}

describe('a LoRA DPO stage on MindSpeed-LLM that resumes', () => {
  it('2.3.0, 26.0.0: resumes its LoRA checkpoint without --finetune, so its reference model stays the base of attempt 1', () => {
    for (const version of ['2.3.0', '26.0.0']) {
      const ws = tempDir('dpo-lora');
      const stage = loraDpo(ws, version);
      expect(stage.training!.dpoReference?.loraWithoutFinetune).toBe(true);
      const saveDir = stage.training!.saveDir;
      save(saveDir, 10);
      const before = snapshot(saveDir);
      const planned = planResume(stage, path.join(ws, 'a.log'), 2);
      // As examples/mcore/llama2/dpo_llama2_7b_lora_ptd.sh runs: no --finetune, --no-load-optim --no-load-rng.
      expect(planned.args.map(([f]) => f)).not.toContain('--finetune');
      expect(planned.args.map(([f]) => f)).toEqual(expect.arrayContaining(['--no-load-optim', '--no-load-rng']));
      expect(value(planned.args, '--lora-load')).toBe(saveDir);
      expect(value(planned.args, '--load')).toBe(value(stage.args, '--load'));
      expect(referenceOf(planned.args)).toEqual(referenceOf(stage.args));
      expect(referenceOf(planned.args)).toEqual({ base: stage.training!.dpoReference!.load, lora: undefined });
      // The iteration count goes on from the checkpoint: the stage's own directory, as a full resume.
      expect(planned.point).toMatchObject({ kind: 'tracker', iteration: 10 });
      expect(planned.iterationOffset).toBeUndefined();
      expect(value(planned.args, '--save')).toBe(saveDir);
      expect(value(planned.args, '--train-iters')).toBe(value(stage.args, '--train-iters'));
      expect(planned.warmRestart).toMatch(/^LoRA DPO resumes from iter_0000010 without --finetune .* the reference model stays the base weights/);
      expect(snapshot(saveDir)).toEqual(before);
    }
  });

  it('2.1.0, or after LoRA fine-tuning: starts again from the first weights into a folder of its own, keeping the first reference', () => {
    for (const stage of [loraDpo(tempDir('dpo-lora-210'), '2.1.0'), loraDpoAfterLoraSft(tempDir('dpo-lora-sft'))]) {
      expect(stage.training!.dpoReference?.loraWithoutFinetune).toBeUndefined();
      const saveDir = stage.training!.saveDir;
      save(saveDir, 10);
      const before = snapshot(saveDir);
      const planned = planResume(stage, path.join(saveDir, '..', 'a.log'), 2);
      expect(referenceOf(planned.args)).toEqual(referenceOf(stage.args));
      // The policy starts where attempt 1 did: nothing of the stage's own checkpoints is loaded.
      expect(Object.values(referenceOf(planned.args))).not.toContain(saveDir);
      expect(value(planned.args, '--lora-load')).toBe(value(stage.args, '--lora-load'));
      expect(value(planned.args, '--save')).toBe(path.join(saveDir, 'warm-0'));
      expect(planned.args.filter(([f]) => f !== '--save')).toEqual(stage.args.filter(([f]) => f !== '--save'));
      expect(planned.iterationOffset).toBe(0);
      expect(planned.warmRestart).toMatch(/^LoRA DPO restarts from the beginning: a warm restart would make its reference model the policy it resumes/);
      expect(snapshot(saveDir)).toEqual(before);
    }
    // After LoRA fine-tuning the first reference holds the fine-tuned LoRA weights (--lora-load under --finetune).
    const sft = loraDpoAfterLoraSft(tempDir('dpo-lora-sft-ref'));
    expect(referenceOf(sft.args).lora).toMatch(/finetune\/checkpoints$/);
  });

  it('restarts again into a new folder after a restart crashed, and a finished restart is the stage’s output', () => {
    const ws = tempDir('dpo-lora-again');
    const stage = loraDpo(ws, '2.1.0');
    const saveDir = stage.training!.saveDir;
    save(saveDir, 10);
    save(path.join(saveDir, 'warm-0'), 10);
    const planned = planResume(stage, path.join(ws, 'a.log'), 3);
    expect(value(planned.args, '--save')).toBe(path.join(saveDir, 'warm-0.3'));
    expect(referenceOf(planned.args)).toEqual(referenceOf(stage.args));
    save(path.join(saveDir, 'warm-0.3'), 20);
    expect(warmOutputDir(saveDir)).toBe(path.join(saveDir, 'warm-0.3'));
    // Finished (the run stopped before its manifest): the attempt has nothing to redo.
    expect(planResume(stage, path.join(ws, 'b.log'), 4).point).toMatchObject({ kind: 'tracker', iteration: 20 });
  });

  it('starts in the stage directory when nothing was saved yet', () => {
    for (const version of ['2.1.0', '2.3.0']) {
      const ws = tempDir('dpo-lora-first');
      const stage = loraDpo(ws, version);
      expect(planResume(stage, path.join(ws, 'a.log'), 1).args).toEqual(stage.args);
    }
  });
});

describe('the dying-gasp checkpoint of high availability and LoRA warm restarts (MindSpeed-LLM 2.3.0, 26.0.0)', () => {
  it('never meet in a pipeline: every version with a dying-gasp checkpoint refuses high availability with LoRA at validate', () => {
    for (const version of ['2.3.0', '26.0.0']) {
      const spec = onFramework(fiveStageSpec('ha', '/tmp/ws'), 'mindspeed-llm', version);
      Object.assign(spec, { cluster: { nodes: 1, devicesPerNode: 4 }, highAvailability: { enabled: true } });
      Object.assign(spec.stages[4], { lora: { r: 8, alpha: 16 } });
      const r = planPipeline(spec, { baseDir: '/tmp' });
      expect(r.ok ? [] : r.problems.map((p) => p.path)).toContain('stages[4].lora');
    }
  });

  it('a dying-gasp checkpoint off the save interval inside a warm folder is resumed from, and the restart saves into a folder nobody wrote', () => {
    const ws = tempDir('warm-gasp');
    const stage = loraFinetune(ws);
    const saveDir = stage.training!.saveDir;
    save(saveDir, 10);
    // The warm restart from 10 saved iter_3 by its dying gasp (MindIO tft_dump.py writes iter_N_tmp and renames it,
    // then the tracker) and left a torn iter_0000005_tmp; a restart from 13 before it left a torn checkpoint in warm-13.
    const warm = path.join(saveDir, 'warm-10');
    save(warm, 3);
    fs.mkdirSync(path.join(warm, 'iter_0000005_tmp', 'mp_rank_00'), { recursive: true });
    save(path.join(saveDir, 'warm-13'), 2, true);
    const before = snapshot(saveDir);
    const planned = planResume(stage, path.join(ws, 'a.log'), 4);
    expect(planned.point).toMatchObject({ kind: 'tracker', iteration: 13 });
    expect(value(planned.args, '--lora-load')).toBe(warm);
    expect(value(planned.args, '--save')).toBe(path.join(saveDir, 'warm-13.4'));
    expect(value(planned.args, '--train-iters')).toBe(String(stage.training!.trainIters - 13));
    expect(snapshot(saveDir)).toEqual(before);
  });
});

describe('a DPO stage resumed on MindSpeed-LLM 2.1.0', () => {
  function dpoOn(version: string, ws: string): StagePlan {
    return stageOf(onFramework(dpoSpec('d', ws), 'mindspeed-llm', version), 'dpo');
  }

  it('names the reference’s iteration with --refer-model-iter: 2.1.0 loads iteration 1 of --ref-model otherwise, whatever its tracker says', () => {
    const ws = tempDir('dpo-210');
    const stage = dpoOn('2.1.0', ws);
    const reference = stage.training!.dpoReference!;
    expect(reference.atReferIter).toBe(true);
    save(reference.load, 20);
    save(stage.training!.saveDir, 10);
    const planned = planResume(stage, path.join(ws, 'a.log'), 2);
    expect(value(planned.args, '--ref-model')).toBe(reference.load);
    expect(value(planned.args, '--refer-model-iter')).toBe('20');
    expect(getFramework({ flavour: 'mindspeed-llm', version: '2.1.0' })!.isKnownFlag('posttrain_gpt.py', '--refer-model-iter')).toBe(true);
    // 2.3.0 reads the reference's tracker (refer_model_iter goes to Megatron as checkpointing_context): no flag.
    const later = dpoOn('2.3.0', tempDir('dpo-230'));
    save(later.training!.dpoReference!.load, 20);
    save(later.training!.saveDir, 10);
    const resumed = planResume(later, path.join(ws, 'b.log'), 2);
    expect(resumed.args.map(([f]) => f)).not.toContain('--refer-model-iter');
    expect(value(resumed.args, '--ref-model')).toBe(later.training!.dpoReference!.load);
  });

  it('shows a release reference as iteration 1 through a view of links, the reference untouched', () => {
    const ws = tempDir('dpo-210-release');
    const stage = dpoOn('2.1.0', ws);
    const ref = stage.training!.dpoReference!.load;
    fs.mkdirSync(path.join(ref, 'release', 'mp_rank_00'), { recursive: true });
    fs.writeFileSync(path.join(ref, 'release', 'mp_rank_00', 'model_optim_rng.pt'), 'x');
    fs.writeFileSync(path.join(ref, 'latest_checkpointed_iteration.txt'), 'release\n');
    const before = snapshot(ref);
    save(stage.training!.saveDir, 10);
    const planned = planResume(stage, path.join(ws, 'a.log'), 2);
    const view = value(planned.args, '--ref-model') as string;
    expect(value(planned.args, '--refer-model-iter')).toBe('1');
    expect(fs.readFileSync(path.join(view, 'latest_checkpointed_iteration.txt'), 'utf8').trim()).toBe('1');
    expect(fs.readlinkSync(path.join(view, 'iter_0000001'))).toBe(path.join(ref, 'release'));
    expect(snapshot(ref)).toEqual(before);
  });
});
