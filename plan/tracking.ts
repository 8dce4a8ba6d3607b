/**
 * Experiment tracking of a training stage, continuous across its attempts: TensorBoard events in one
 * directory of the stage (each attempt's trainer adds a file there, starting after the iteration it
 * loaded) and one W&B run per stage whose id stays the same, so every attempt appends to it.
 */
import path from 'node:path';
import type { Arg } from '../frameworks/modellink/args.ts';
import type { TrainingStage } from '../spec/spec.ts';

export interface Tracking {
  args: Arg[];
  env: Record<string, string>;
}

/** <stage dir>/tensorboard: beside the checkpoints, not in them, and the same for every attempt. */
export function tensorboardDir(stageDir: string): string {
  return path.join(stageDir, 'tensorboard');
}

export function experimentTracking(stage: TrainingStage, stageDir: string, pipeline: string): Tracking {
  const args: Arg[] = [];
  const env: Record<string, string> = {};
  if (stage.tensorboard) {
    // Megatron writes the training_log scalars when --tensorboard-dir is set (core_r0.6.0
    // megatron/training/global_vars.py _set_tensorboard_writer); --log-timers-to-tensorboard adds
    // 'iteration-time' and 'throughput' (training.py training_log).
    args.push(['--tensorboard-dir', tensorboardDir(stageDir)], ['--log-timers-to-tensorboard', null]);
  }
  if (stage.wandb) {
    args.push(
      ['--wandb-project', stage.wandb.project],
      // Megatron refuses an empty experiment name (global_vars.py _set_wandb_writer).
      ['--wandb-exp-name', stage.wandb.name ?? `${pipeline}-${stage.name}`],
      // Megatron's default is <save>/wandb, inside the checkpoint directory; keep it beside it.
      ['--wandb-save-dir', path.join(stageDir, 'wandb')],
    );
    // Megatron core_r0.6.0 has no flag for the run id (wandb.init(dir, name, project, config) in
    // global_vars.py _set_wandb_writer); wandb.init itself reads WANDB_RUN_ID and WANDB_RESUME, so
    // with the same id and resume "allow" each attempt continues the stage's run instead of starting one.
    env.WANDB_RUN_ID = wandbRunId(stageDir);
    env.WANDB_RESUME = 'allow';
  }
  return { args, env };
}

/**
 * One run per stage of a pipeline in a workspace: a hash of the stage directory (workspace, pipeline,
 * stage), as W&B ids allow (letters, digits, dashes). Running the pipeline again resumes the same run.
 */
export function wandbRunId(stageDir: string): string {
  // FNV-1a, 64 bits: pure, so planning stays free of I/O and of Node-only modules.
  let h = 0xcbf29ce484222325n;
  for (const byte of new TextEncoder().encode(stageDir)) {
    h ^= BigInt(byte);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return `linkflow-${h.toString(16).padStart(16, '0')}`;
}
