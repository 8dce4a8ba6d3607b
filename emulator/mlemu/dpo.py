"""DPO's frozen reference model, loaded after the policy model and its datasets.

DPOTrainer.__init__ runs BaseTrainer's setup (model, --load, datasets), then _init_reference_model: a second model
loaded from `--ref-model`, or else from `--load` (ModelLink modellink/tasks/rl/dpo.py _init_reference_model;
MindSpeed-LLM 1.0.0 post_train/dpo/dpo_trainer.py#L336, 2.1.0 posttrain/dpo/dpo_trainer.py#L326, 2.3.0 #L372).
So an attempt that resumes with `--load <its own checkpoints>` and no --ref-model takes the policy it is resuming as
its reference. load_checkpoint runs with no optimizer, under the run's own --finetune/--no-load-rng: ModelLink and
1.0.0 then exit (`sys.exit()`, status 0) when the reference checkpoint has no RNG state and neither flag is given
(converted weights have none); 2.1.0+ set no_load_rng/no_load_optim for it when not fine-tuning (2.3.0 #L378-382).

With LoRA the reference is the same LoRA-wrapped model, and the --lora-load weights are merged over it as over
the policy (1.0.0 mindspeed_llm/training/checkpointing.py _load_base_checkpoint_wrapper), except where 2.1.0+ set
is_load_refer (not fine-tuning): then the wrapper returns the base state alone (2.3.0 checkpointing.py#L59-69).
Under --finetune a reference therefore holds whatever --lora-load names, as the policy does.

Under is_load_refer 2.1.0 also loads iteration --refer-model-iter (default 1) of the reference directory whatever its
tracker names (checkpointing.py#L153-154 sets checkpoint_step, #L83-85 uses it); 2.3.0 and 26.0.0 pass it to Megatron
core_v0.12.1 as checkpointing_context (checkpointing.py#L59-60), which a torch-format load does not read.
"""
from . import checkpoint, tracebacks, version


def load_reference(rt) -> None:
    args = rt.args
    args.load = args.ref_model if getattr(args, 'ref_model', None) is not None else args.load
    if not args.load:
        return
    rt.print0('building GPT model ...')
    consumed = args.consumed_train_samples
    args.consumed_train_samples = 0
    is_load_refer = version.current().name not in ('modellink', '1.0.0') and not args.finetune
    if is_load_refer:
        args.no_load_rng, args.no_load_optim = True, True
    step = args.refer_model_iter if is_load_refer and version.current().name == '2.1.0' else None
    checkpoint.load_checkpoint(rt, args.load, tracebacks.PRETRAIN_LOAD, has_optimizer=False, merge_lora=not is_load_refer,
                               step=step)
    args.consumed_train_samples = consumed
