/**
 * A framework version's differences from ModelLink's commands, applied to what the ModelLink builders
 * (frameworks/modellink/commands.ts) produce: the trainer and its --stage, the model-type flag whose
 * default flips between MindSpeed-LLM 2.1.0 and 2.2.0, --ckpt-format on Megatron core_v0.12.1, renamed
 * flags, and what a resume must rewrite. Everything here reads the Framework's data, never a version.
 */
import type { Arg } from './modellink/args.ts';
import type { Framework, Trainer } from './framework.ts';

export type TrainingKind = 'pretrain' | 'finetune' | 'dpo';

export interface TrainingDialect {
  kind: TrainingKind;
  impl: 'mcore' | 'legacy';
  checkpointFormat?: 'torch' | 'torch_dist';
  asyncSave: boolean;
  dpo?: { lossType: string; beta?: number };
}

export function trainerOf(framework: Framework, kind: TrainingKind): Trainer | undefined {
  return kind === 'pretrain' ? framework.pretrain : kind === 'finetune' ? framework.sft : framework.dpo;
}

/**
 * --use-mcore-models / --use-legacy-models for a version: before 2.2.0 (and in ModelLink) legacy is the
 * default and mcore is asked for; from 2.2.0 mcore is the default and --use-mcore-models is Megatron's
 * ignored, deprecated flag, so legacy is asked for instead.
 */
export function withModelType(framework: Framework, args: Arg[], impl: 'mcore' | 'legacy'): Arg[] {
  if (!framework.mcoreDefault) return args;
  const kept = args.filter(([f]) => f !== '--use-mcore-models');
  return impl === 'legacy' ? [['--use-legacy-models', null], ...kept] : kept;
}

/** Flags the version renamed are emitted with their new names (the old ones only warn there). */
export function withNewNames(framework: Framework, args: Arg[]): Arg[] {
  return args.map(([f, v]) => [framework.renamed[f] ?? f, v]);
}

/** Inserts args before the first of `before` present, else at the end. */
function insertBefore(args: Arg[], before: string[], added: Arg[]): Arg[] {
  const at = args.findIndex(([f]) => before.includes(f));
  return at < 0 ? [...args, ...added] : [...args.slice(0, at), ...added, ...args.slice(at)];
}

/** A ModelLink training command made the version's: trainer, --stage, DPO's flags, model type, checkpoint format, names. */
export function trainingArgs(framework: Framework, args: Arg[], d: TrainingDialect): Arg[] {
  let out = withModelType(framework, args, d.impl);
  const trainer = trainerOf(framework, d.kind);
  const stageArgs: Arg[] = trainer?.stage ? [['--stage', trainer.stage]] : [];
  if (d.kind === 'dpo' && d.dpo) {
    // examples/mcore/llama2/dpo_llama2_7b_full_ptd.sh (2.3.0): --stage dpo --dpo-loss-type sigmoid --is-pairwise-dataset.
    stageArgs.push(['--dpo-loss-type', d.dpo.lossType], ['--is-pairwise-dataset', null]);
    if (d.dpo.beta !== undefined) stageArgs.push(['--dpo-beta', String(d.dpo.beta)]);
  }
  out = insertBefore(out, ['--is-instruction-dataset', '--data-path'], stageArgs);
  if (framework.pinsTorchFormat) {
    // core_v0.12.1 writes torch_dist unless told otherwise; linkflow's checkpoint scan and resume read the torch layout.
    const format: Arg[] = [['--ckpt-format', d.checkpointFormat ?? 'torch']];
    if (d.asyncSave) format.push(['--async-save', null]);
    out = insertBefore(out, ['--save'], format);
  }
  return withNewNames(framework, out);
}

/**
 * Flags that make sense only when loading weights from elsewhere: an attempt resuming its own
 * checkpoint drops them (MindSpeed-LLM docs/pytorch/features/mcore/checkpoint_resume.md: no --finetune,
 * --no-load-optim, --no-load-rng), and online HF conversion, which would rebuild the Megatron cache
 * from the HF weights and restart at iteration 1 (features_manager/convert_checkpoint/convert_checkpoint.py).
 */
export const FIRST_LOAD_ONLY_FLAGS = ['--finetune', '--no-load-optim', '--no-load-rng', '--enable-hf2mg-convert'] as const;
