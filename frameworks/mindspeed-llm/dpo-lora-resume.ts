/**
 * A LoRA DPO attempt that resumes on MindSpeed-LLM 2.3.0 / 26.0.0: the shape of the release's own DPO-LoRA
 * script (examples/mcore/llama2/dpo_llama2_7b_lora_ptd.sh: --load <base> --lora-load <LoRA weights>
 * --no-load-optim --no-load-rng, no --finetune), with --lora-load at the stage's newest LoRA checkpoint.
 *
 * Why not a warm restart's --finetune: DPOTrainer._init_reference_model (posttrain/dpo/dpo_trainer.py#L363-386)
 * builds the reference through the same LoRA-wrapped model and, under --finetune, leaves is_load_refer unset, so
 * _load_base_checkpoint_wrapper (mindspeed_llm/training/checkpointing.py#L55-78) merges the --lora-load weights
 * over it (merge_dicts overwrites, tasks/posttrain/lora/utils.py#L42-49): the reference would be the policy it
 * resumes, whatever --ref-model names. Without --finetune is_load_refer is set and the reference is --load alone,
 * the base the first attempt's reference was. The policy then takes the iteration and the consumed samples from
 * the LoRA checkpoint (Megatron core_v0.12.1 load_checkpoint: iteration = state_dict['iteration'] unless finetune
 * or release, args from the checkpoint); --no-load-optim starts the optimizer and learning-rate schedule again
 * (MindSpeed-LLM points no optimizer state at --lora-load).
 */
import type { Arg } from '../modellink/args.ts';

const DROPPED = ['--finetune', '--lora-load'];

export function dpoLoraResumeArgs(args: Arg[], loraDir: string): Arg[] {
  const kept = args.filter(([f]) => !DROPPED.includes(f));
  const missing = (['--no-load-optim', '--no-load-rng'] as const).filter((f) => !kept.some(([g]) => g === f)).map((f): Arg => [f, null]);
  const at = kept.findIndex(([f]) => f === '--lora-target-modules');
  const added: Arg[] = [['--lora-load', loraDir], ...missing];
  return at >= 0 ? [...kept.slice(0, at + 1), ...added, ...kept.slice(at + 1)] : [...kept, ...added];
}
