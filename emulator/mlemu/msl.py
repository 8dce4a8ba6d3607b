"""What MindSpeed-LLM's argument validation does beyond ModelLink's, per release (mlemu/version.py).

Called by megatron.initialize for a MindSpeed-LLM root, around Megatron's validate_args the way
validate_args_decorator (1.0.0-2.1.0) / validate_args_v2_decorator (2.2.0+, mindspeed_llm/training/arguments.py
#L1490-1513 at 2.3.0) wraps it: pre-validation (HIGH_AVAILABILITY), Megatron, then MindSpeed-LLM's own checks.
"""
import os
import sys
import warnings
from argparse import Namespace

from . import tracebacks, version
from .tracebacks import Frame

# Set to 1 to say the MindIO TTP package (mindio_ttp, closed source, installed with MindCluster) is installed:
# `import mindio_ttp` then succeeds. Without it the import fails as on a machine without the package.
MINDIO_ENV = 'MLEMU_MINDIO_TTP'


def mindio_installed() -> bool:
    return os.environ.get(MINDIO_ENV, '') == '1'


# Set to 1 to say MindCluster's TaskD (taskd.python.adaptor.elastic_training) is installed; 2.2.0 imports it for
# elastic training.
TASKD_ENV = 'MLEMU_TASKD'


def taskd_installed() -> bool:
    return os.environ.get(TASKD_ENV, '') == '1'


def pre_validate(args: Namespace) -> None:
    """HighAvailabilityFeature.pre_validate_args -> get_env_args (2.3.0 mindspeed_llm/tasks/high_availability/
    high_availability_helper.py#L6-22): HIGH_AVAILABILITY=dump|retry|recover|elastic-training (comma list), as
    ascend-operator injects it, switches the HA flags on. 1.0.0 and 2.1.0 have no such helper."""
    if not version.current().dist_ckpt_core:
        return
    env = os.getenv('HIGH_AVAILABILITY', '')
    if not env:
        return
    for strategy in env.split(','):
        s = strategy.lower()
        if s in ('dump', 'recover', 'retry', 'elastic-training'):
            if not getattr(args, 'enable_high_availability', False):
                warnings.warn('HIGH_AVAILABILITY environment variables enabled and args.enable_high_availability inactive',
                              stacklevel=1)
            args.enable_high_availability = True
        if s == 'recover':
            args.enable_worker_reboot = True
        if s == 'retry':
            args.enable_hbmfault_repair = True
        if s == 'elastic-training':
            args.enable_elastic_training = True


def models_and_format(args: Namespace, stack: list[Frame]) -> None:
    """legacy vs mcore, and the checkpoint format, as each core decides them."""
    v = version.current()
    if v.dist_ckpt_core:
        # --use-mcore-models is Megatron's deprecated no-op there (dest deprecated_use_mcore_models);
        # MindSpeed-LLM sets use_mcore_models = not use_legacy_models (features_manager/megatron_basic/
        # training_basic.py#L19).
        args.use_mcore_models = not args.use_legacy_models
        if args.use_legacy_models and args.ckpt_format != 'torch':
            # Megatron core_v0.12.1 megatron/training/arguments.py#L294-297 (the default is torch_dist).
            tracebacks.die(stack + [('megatron/training/arguments.py', 295, 'validate_args',
                                     'assert args.ckpt_format == "torch", \\')],
                           'AssertionError', "legacy model format only supports the 'torch' checkpoint format.")
        if getattr(args, 'use_torch_fsdp2', False):
            _torch_fsdp2_checks(args, stack)
        # update_use_dist_ckpt (megatron/training/utils.py#L566-567), then _add_dummy_args_v2 resets both after
        # Megatron's validation (2.3.0 mindspeed_llm/training/arguments.py#L1289-1290, called at #L1507) -- up to
        # 26.0.0; 26.1.0's _add_dummy_args_v2 (#L156-176) leaves them as Megatron set them.
        args.use_dist_ckpt = args.ckpt_format != 'torch'
        if v.resets_ckpt_format:
            args.ckpt_format = 'torch'
            args.use_dist_ckpt = False
    else:
        # 1.0.0/2.1.0 re-register --use-mcore-models (dest use_mcore_models) and derive
        # use_legacy_models = not use_mcore_models (2.1.0 mindspeed_llm/training/arguments.py#L1499).
        args.use_legacy_models = not args.use_mcore_models


def _torch_fsdp2_checks(args: Namespace, stack: list[Frame]) -> None:
    """Megatron core_v0.12.1 validate_args for --use-torch-fsdp2 (megatron/training/arguments.py#L510-528), in its order;
    the torch version check (#L511) passes (the stand-in has a new enough torch)."""
    checks = [
        (513, args.pipeline_model_parallel_size == 1, 'args.pipeline_model_parallel_size == 1',
         '--use-torch-fsdp2 is not supported with pipeline parallelism'),
        (515, (getattr(args, 'expert_model_parallel_size', 1) or 1) == 1, 'args.expert_model_parallel_size == 1',
         '--use-torch-fsdp2 is not supported with expert parallelism'),
        (517, not getattr(args, 'use_distributed_optimizer', False), 'not args.use_distributed_optimizer',
         "--use-torch-fsdp2 is not supported with MCore's distributed optimizer"),
        (519, not getattr(args, 'gradient_accumulation_fusion', False), 'not args.gradient_accumulation_fusion',
         '--use-torch-fsdp2 is not supported with gradient accumulation fusion'),
        (521, args.ckpt_format in ('torch_dist', 'torch_dcp'), "args.ckpt_format in ('torch_dist', 'torch_dcp')",
         '--use-torch-fsdp2 requires --ckpt-format torch_dist or torch_dcp'),
        (523, bool(getattr(args, 'untie_embeddings_and_output_weights', False)),
         'args.untie_embeddings_and_output_weights', '--use-torch-fsdp2 requires --untie-embeddings-and-output-weights'),
        (525, not getattr(args, 'fp16', False), 'not args.fp16', '--use-torch-fsdp2 not supported with fp16 yet'),
        (527, os.environ.get('CUDA_DEVICE_MAX_CONNECTIONS') != '1', "os.environ.get('CUDA_DEVICE_MAX_CONNECTIONS') != \"1\"",
         'FSDP always requires CUDA_DEVICE_MAX_CONNECTIONS value large than one'),
    ]
    for line, ok, code, message in checks:
        if not ok:
            tracebacks.die(stack + [('megatron/training/arguments.py', line, 'validate_args', f'assert {code}, \\')],
                           'AssertionError', message)


def _ha_checks(args: Namespace) -> list[tuple[bool, str]]:
    """(failed?, message) in the order each release's validation checks them."""
    v = version.current()
    ha = bool(getattr(args, 'enable_high_availability', False))
    a = lambda name: bool(getattr(args, name, False))  # noqa: E731
    if v.name == '1.0.0':
        # mindspeed_llm/training/arguments.py#L678-691 (_validate_high_availability)
        return [
            (a('enable_hbmfault_repair') and not ha,
             'switch of the enable hbmfault repair is unsupported, please enable high availability feature first.'),
            (a('enable_worker_reboot') and not ha,
             'switch of the enable worker reboot is unsupported, please enable high availability feature first.'),
            (ha and a('use_dist_ckpt'), 'switch of the high availability feature is unsupported'),
        ]
    if v.name == '2.1.0':
        # mindspeed_llm/features_manager/high_availability/high_availability.py#L20-32
        return [
            (a('enable_optimizer_state_local_copy') and not ha,
             'switch of the local copy is unsupported, please enable high availability feature first.'),
            (a('enable_hbmfault_repair') and not ha,
             'switch of the enable hbmfault repair is unsupported, please enable high availability feature first.'),
            (ha and a('use_dist_ckpt'), 'switch of the high availability feature is unsupported'),
        ]
    # 2.3.0 features_manager/high_availability/high_availability.py#L27-57; 26.0.0 adds disable-gloo-group and LoRA
    # (#L42-44, #L63-65; 26.1.0 #L35-79 the same checks). use_dist_ckpt is False by then up to 26.0.0
    # (_add_dummy_args_v2 runs first); on 26.1.0 it is Megatron's (--ckpt-format other than torch).
    elastic = a('enable_elastic_training')
    checks = [
        (a('enable_hbmfault_repair') and not ha,
         'switch of the enable hbmfault repair is unsupported, please enable high availability feature first.'),
        (ha and a('use_dist_ckpt'), 'switch of the high availability feature is unsupported'),
    ]
    if v.ha_refuses_swap_attention:
        checks.append((ha and a('swap_attention'),
                       'switch of the high availability feature is unsupported, please disable swap attention first.'))
    if v.ha_refuses_gloo_and_lora:
        checks.append((ha and a('disable_gloo_group'),
                       'switch of the high availability feature is unsupported, please disable disable-gloo-group first.'))
    checks += [
        (a('swap_optimizer') and ha, 'switch of the high availability feature is unsupported'),
        # 2.2.0 #L41-47: `import taskd.python.adaptor.elastic_training` (MindCluster's TaskD), re-raised as this.
        (v.elastic_needs_taskd and elastic and not taskd_installed(),
         'enable elastic training requires the taskd.python.adaptor.elastic_training package but it is not installed.'),
        (elastic and not ha,
         'switch of the enable elastic training is unsupported, please enable high availability feature first.'),
        (elastic and not a('use_distributed_optimizer'),
         'switch of the enable elastic training is unsupported, please enable use-distributed-optimizer first.'),
        (elastic and a('use_custom_fsdp'),
         'switch of the enable elastic training is unsupported when reuse-fp32-param is enabled.'),
        (elastic and a('reuse_fp32_param'),
         'switch of the enable elastic training is unsupported when reuse-fp32-param is enabled.'),
        (elastic and ((getattr(args, 'expert_model_parallel_size', 1) or 1) > 1
                      or (getattr(args, 'context_parallel_size', 1) or 1) > 1),
         'switch of the enable elastic training is unsupported when expert-model-parallel-size, context '
         'parallel size is set.'),
    ]
    if v.ha_refuses_gloo_and_lora:
        checks.append((ha and bool(getattr(args, 'lora_target_modules', None)),
                       'switch of the high availability feature is unsupported, please disable lora-target-modules first.'))
    return checks


def validate_high_availability(args: Namespace, stack: list[Frame]) -> None:
    v = version.current()
    where = ('mindspeed_llm/training/arguments.py', 681, '_validate_high_availability', 'import mindio_ttp') \
        if v.name == '1.0.0' else ('mindspeed_llm/features_manager/high_availability/high_availability.py', 30,
                                   'validate_args', 'import mindio_ttp')
    if getattr(args, 'enable_high_availability', False) and not mindio_installed() and v.ha_find_spec:
        # 26.1.0 high_availability.py#L37-38: find_spec, a plain AssertionError.
        tracebacks.die(stack + [(where[0], 38, where[2], 'raise AssertionError("High availability feature requires '
                                                           'the mindio_ttp package but is not installed.")')],
                       'AssertionError', 'High availability feature requires the mindio_ttp package but is not installed.')
    if getattr(args, 'enable_high_availability', False) and not mindio_installed():
        # `import mindio_ttp` -> ModuleNotFoundError, re-raised as AssertionError "from e".
        cause = tracebacks.format_traceback(stack + [where], 'ModuleNotFoundError', "No module named 'mindio_ttp'")
        tracebacks.die(stack + [(where[0], where[1] + 2, where[2], 'raise AssertionError(')], 'AssertionError',
                       'High availability feature requires the mindio_ttp package but is not installed.',
                       preamble=cause + '\nThe above exception was the direct cause of the following exception:\n')
    for failed, message in _ha_checks(args):
        if failed:
            tracebacks.die(stack + [(where[0], where[1], where[2], 'raise AssertionError(')], 'AssertionError', message)


def check_replica_optimizer(rt: 'object', stack: list[Frame]) -> None:
    """TTPReplicaOptimizer.__init__ (2.3.0 mindspeed_llm/core/high_availability/tft_replica_optimizer.py#L40-49; 2.2.0
    uses mindio_ttp.adaptor's TTPReplicaOptimizer, closed source, taken to check the same and named as 2.3.0's copy):
    with HA (and without --distributed-optimizer-no-replica) the data-parallel group is split into 2 replicas."""
    args = rt.args
    if not version.current().dist_ckpt_core or not getattr(args, 'enable_high_availability', False):
        return
    if getattr(args, 'distributed_optimizer_no_replica', False):
        return
    frames = stack + [('mindspeed_llm/core/high_availability/tft_replica_optimizer.py', 47, '__init__',
                       "raise ValueError('High availability do not support data parallel world size is 1!')")]
    if rt.dp == 1:
        tracebacks.die(frames, 'ValueError', 'High availability do not support data parallel world size is 1!')
    if rt.dp % 2 != 0:
        tracebacks.die(frames, 'ValueError',
                       'High availability do not support data parallel world size is undivided by replica_num!')


def unknown_stage(rt: 'object', stage: str | None) -> None:
    """AutoTrainer: get_trainer logs 'Unknown Stage' and returns None; train() then calls None.train()
    (2.3.0 mindspeed_llm/tasks/posttrain/launcher.py#L19-22,#L49-51; posttrain_gpt.py#L7-8)."""
    import logging

    from . import logs
    logs.setup(rt.dist.hosts_rank0)
    launcher = 'mindspeed_llm/tasks/post_train/launcher.py' if version.current().name == '1.0.0' \
        else 'mindspeed_llm/tasks/posttrain/launcher.py'
    logging.getLogger(launcher[:-3].replace('/', '.')).info(f'Unknown Stage: {stage}')
    sys.stdout.flush()
    tracebacks.die([('posttrain_gpt.py', 12, '<module>', 'launch()'), ('posttrain_gpt.py', 8, 'launch', 'trainer.train()'),
                    (launcher, 51, 'train', 'self.trainer.train()')],
                   'AttributeError', "'NoneType' object has no attribute 'train'")


# --- online conversion (2.3.0+: features_manager/convert_checkpoint) ------------------------------------------

def _has_hf_weights(directory: str | None) -> bool:
    """26.0.0 convert_checkpoint.py#L56-69 has_safetensor_weights."""
    if not directory or not os.path.isdir(directory):
        return False
    return any(n.endswith('.safetensors') or (n.startswith('pytorch_model') and n.endswith('.bin'))
               for n in os.listdir(directory))


def validate_online_convert(args: Namespace, stack: list[Frame]) -> None:
    """26.0.0 CheckpointFeature.validate_args (features_manager/convert_checkpoint/convert_checkpoint.py#L71-90):
    a --load holding HF weights switches both directions on by itself."""
    v = version.current()
    if not v.hf_load_converts:
        return
    where = stack + [('mindspeed_llm/features_manager/convert_checkpoint/convert_checkpoint.py', 74, 'validate_args',
                      'raise AssertionError(')]
    if args.ckpt_format == 'torch_dist' and args.enable_hf2mg_convert:
        # 26.1.0 #L113-114; up to 26.0.0 _add_dummy_args_v2 has already made ckpt_format 'torch' here.
        tracebacks.die(where, 'AssertionError', '--ckpt-format torch_dist cannot be used together with --enable-hf2mg-convert')
    hf = _has_hf_weights(args.load)
    if not hf and args.enable_hf2mg_convert:
        tracebacks.die(where, 'AssertionError', 'cannot find safetensor, please check load dir')
    if hf and not args.enable_hf2mg_convert and not args.enable_mg2hf_convert:
        args.enable_hf2mg_convert = True
        args.enable_mg2hf_convert = True
    if not args.save and args.enable_mg2hf_convert:
        tracebacks.die(where, 'AssertionError', 'if enable_mg2hf_convert, please set save dir')
    if getattr(args, 'lora_target_modules', None) and args.enable_mg2hf_convert:
        tracebacks.die(where, 'AssertionError', v.lora_mg2hf_message)
    if args.enable_hf2mg_convert and args.enable_mg2hf_convert and not args.hf_cfg_dir:
        args.hf_cfg_dir = args.load
    if args.enable_hf2mg_convert and not args.model_type_hf:
        args.model_type_hf = 'qwen3'  # infer_model_type_from_hf_config: the emulator's HF fixtures are qwen3-like


def online_hf2mg(rt: 'object', stack: list[Frame]) -> None:
    """initialize_megatron_wrapper, after initialize_megatron (2.3.0 mindspeed_llm/training/initialize.py#L211-262):
    converts --load (HF) into <load>/megatron_cache_tp{tp}pp{pp}ep{ep} (or --mg-save-dir) on every start, then points
    args.load there -- so a run that keeps the flag restarts from the converted checkpoint's iteration 1."""
    import argparse
    import logging

    from . import convert_v2, logs
    args = rt.args
    if not version.current().online_convert or not getattr(args, 'enable_hf2mg_convert', False):
        return
    logs.setup(rt.dist.hosts_rank0)
    log = logging.getLogger('mindspeed_llm.training.initialize')
    where = stack + [('mindspeed_llm/training/initialize.py', 218, 'wrapper', 'raise ValueError(')]
    log.info('[InitHook] Starting weight conversion check...')
    if not os.path.exists(args.load):
        tracebacks.die(where, 'ValueError', f'Specified weight path does not exist: {args.load}')
    files = os.listdir(args.load)
    if not ('config.json' in files and any(f.endswith(('.bin', '.safetensors')) and 'model' in f.lower() for f in files)):
        tracebacks.die(where, 'ValueError', f'When enable_hf2mg_convert is enabled, path {args.load} is not a valid '
                                            f'HuggingFace path.')
    supported = version.current().hf2mg_models
    if args.model_type_hf not in supported:
        tracebacks.die(where, 'ValueError', f"Current --enable-hf2mg-convert does not support model type "
                                            f"'{args.model_type_hf}'. Supported models: {', '.join(supported)}")
    if not getattr(args, 'mg_save_dir', None):
        tp, pp = args.tensor_model_parallel_size or 1, args.pipeline_model_parallel_size or 1
        ep = getattr(args, 'expert_model_parallel_size', 1) or 1
        args.mg_save_dir = os.path.join(args.load, f'megatron_cache_tp{tp}pp{pp}ep{ep}')
    os.makedirs(args.mg_save_dir, exist_ok=True)
    log.info(f'[InitHook] Conversion cache path: {args.mg_save_dir}')
    log.info(f'[InitHook] save_dir={args.mg_save_dir}, shared_storage=True')
    if rt.dist.hosts_rank0:
        # _convert_weights_if_needed (mindspeed_llm/training/checkpointing.py#L310-325): rank 0 on shared storage.
        logging.getLogger('mindspeed_llm.training.checkpointing').info(
            '[Convert] Detected unconverted weights, starting conversion process...')
        convert_v2.hf_to_mg(argparse.Namespace(
            load_dir=args.load, save_dir=args.mg_save_dir, target_tensor_parallel_size=args.tensor_model_parallel_size,
            target_pipeline_parallel_size=args.pipeline_model_parallel_size,
            target_expert_parallel_size=getattr(args, 'expert_model_parallel_size', 1) or 1,
            num_layers=args.num_layers, num_layer_list=None))
        logging.getLogger('mindspeed_llm.training.checkpointing').info(
            '[Convert] Weight conversion completed, time elapsed: 0.01s')
    args.load = args.mg_save_dir
    log.info('[InitHook] Weight conversion phase completed.')


def online_mg2hf(rt: 'object', iteration: int) -> None:
    """26.0.0: after each save with --enable-mg2hf-convert (training.py#L774-779), rank 0 converts the checkpoint
    into <hf-save-dir or save>/mg2hf_iteration<N>/ (checkpointing.py#L355-380); --only-convert-last-checkpoint
    limits it to the last iteration."""
    import argparse
    import logging

    from . import convert_v2
    args = rt.args
    if not version.current().hf_load_converts or not getattr(args, 'enable_mg2hf_convert', False):
        return
    if getattr(args, 'only_convert_last_checkpoint', False) and iteration != args.train_iters:
        return
    if not hasattr(args, 'hf_save_dir_base'):
        args.hf_save_dir_base = args.hf_save_dir if getattr(args, 'hf_save_dir', None) else args.save
    out = os.path.join(args.hf_save_dir_base, f'mg2hf_iteration{iteration}')
    os.makedirs(out, exist_ok=True)
    log = logging.getLogger('mindspeed_llm.training.checkpointing')
    log.info(f'[InitHook] Conversion checkpoint to huggingface path: {out}')
    if rt.dist.hosts_rank0:
        log.info('[Convert] starting conversion process...')
        convert_v2.mg_to_hf(argparse.Namespace(load_dir=args.save, save_dir=out, hf_cfg_dir=args.hf_cfg_dir))
        log.info('[Convert] Weight conversion completed, time elapsed: 0.01s')


# --- high availability: the dying-gasp checkpoint --------------------------------------------------------------

def ttp_active(args: Namespace) -> bool:
    """MindIO TTP runs the training (tft_train) when HA is on and mindio_ttp imports (2.2.0+ training.py); the
    dying-gasp save is modelled where MindSpeed-LLM writes it itself (tft_dump.py, 2.3.0+)."""
    return version.current().dying_gasp and bool(getattr(args, 'enable_high_availability', False)) \
        and mindio_installed()


def dying_gasp(rt: 'object', iteration: int, keys: list[str], trainable: int | None) -> None:
    """MindIO TTP's dump on a fault: save the current iteration (whatever --save-interval says) into
    iter_XXXXXXX_tmp, rename it to iter_XXXXXXX, then write the tracker (2.3.0 mindspeed_llm/core/high_availability/
    tft_dump.py#L20-30 get_checkpoint_name + '_tmp', save_checkpoint #L114-167, tft_rename_callback #L169-191).
    MindIO's own logger (ttp_logger, closed source) is printed here as INFO:ttp_logger:<message>. The emulator's
    faulting process writes every shard of the layout (TTP collects them from the healthy optimizer replicas)."""
    from . import checkpoint
    args = rt.args
    if not args.save or iteration <= 0:
        return
    say = lambda msg: print(f'INFO:ttp_logger:{msg}', flush=True)  # noqa: E731
    say('rank {} is saving checkpoint at iteration {:7d} to {} in {} format'.format(rt.dist.rank, iteration, args.save,
                                                                                    'torch'))
    tmp = os.path.join(args.save, checkpoint.iter_dir_name(iteration) + '_tmp')
    final = os.path.join(args.save, checkpoint.iter_dir_name(iteration))
    tp, pp, ep = args.tensor_model_parallel_size, args.pipeline_model_parallel_size, rt.ep
    for tp_rank, pp_rank, ep_rank in checkpoint.layout(tp, pp, ep):
        shard = checkpoint.shard_dir_name(tp_rank, pp_rank, pp, ep_rank, ep)
        if args.use_distributed_optimizer and not args.no_save_optim:
            checkpoint.write_json(os.path.join(tmp, shard, checkpoint.OPTIM_FILE), {
                'format': checkpoint.FORMAT + '/distrib_optim', 'iteration': iteration, 'tp_rank': tp_rank,
                'pp_rank': pp_rank, 'ep_rank': ep_rank, 'data_parallel_size': args.data_parallel_size,
                'per_bucket_numel_unpadded': checkpoint.bucket_numel(args, trainable)})
        checkpoint.write_json(os.path.join(tmp, shard, checkpoint.MODEL_FILE),
                              checkpoint.shard_document(iteration, tp_rank, pp_rank, ep_rank, args, keys, False,
                                                        {'saved_by': 'mindio_ttp dump'}))
    say('rank {} successfully saved checkpoint at iteration {} to {}, save disk: {}'.format(rt.dist.rank, iteration,
                                                                                            args.save, True))
    if os.path.exists(final):
        # The periodic save already wrote this iteration: the emulator keeps both (nothing is deleted).
        say(f'rank {rt.dist.rank} {final} exists, keeping {tmp}')
        return
    os.rename(tmp, final)
    say(f'rank {rt.dist.rank} rename success')
    checkpoint.write_tracker(args.save, iteration)
