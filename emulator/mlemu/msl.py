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
        # update_use_dist_ckpt (megatron/training/utils.py#L566-567), then _add_dummy_args_v2 resets both after
        # Megatron's validation (2.3.0 mindspeed_llm/training/arguments.py#L1289-1290, called at #L1507).
        args.ckpt_format = 'torch'
        args.use_dist_ckpt = False
    else:
        # 1.0.0/2.1.0 re-register --use-mcore-models (dest use_mcore_models) and derive
        # use_legacy_models = not use_mcore_models (2.1.0 mindspeed_llm/training/arguments.py#L1499).
        args.use_legacy_models = not args.use_mcore_models


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
    # (#L42-44, #L63-65). use_dist_ckpt is always False by then (_add_dummy_args_v2 runs first).
    elastic = a('enable_elastic_training')
    checks = [
        (a('enable_hbmfault_repair') and not ha,
         'switch of the enable hbmfault repair is unsupported, please enable high availability feature first.'),
        (ha and a('use_dist_ckpt'), 'switch of the high availability feature is unsupported'),
        (ha and a('swap_attention'),
         'switch of the high availability feature is unsupported, please disable swap attention first.'),
    ]
    if v.name == '26.0.0':
        checks.append((ha and a('disable_gloo_group'),
                       'switch of the high availability feature is unsupported, please disable disable-gloo-group first.'))
    checks += [
        (a('swap_optimizer') and ha, 'switch of the high availability feature is unsupported'),
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
    if v.name == '26.0.0':
        checks.append((ha and bool(getattr(args, 'lora_target_modules', None)),
                       'switch of the high availability feature is unsupported, please disable lora-target-modules first.'))
    return checks


def validate_high_availability(args: Namespace, stack: list[Frame]) -> None:
    v = version.current()
    where = ('mindspeed_llm/training/arguments.py', 681, '_validate_high_availability', 'import mindio_ttp') \
        if v.name == '1.0.0' else ('mindspeed_llm/features_manager/high_availability/high_availability.py', 30,
                                   'validate_args', 'import mindio_ttp')
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
    """TTPReplicaOptimizer.__init__ (2.3.0 mindspeed_llm/core/high_availability/tft_replica_optimizer.py#L40-49):
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
