"""Fabricated Python tracebacks that look like ModelLink's.

Raising real exceptions inside the emulator would print frames from mlemu/*.py. What a log
classifier sees from the real thing is a stack through pretrain_gpt.py, modellink/..., megatron/...
and torch/..., ending in `ExceptionType: message`, and exit status 1. We print that shape instead.
The emulator directory stands in for the ModelLink checkout (ModelLink's scripts run from its root,
with megatron/ copied inside it, as its README instructs).
"""
import os
import sys
import sysconfig
from collections.abc import Sequence
from typing import NoReturn

from . import EMULATOR_ROOT, version

# One fabricated frame: (file, line, function, source line or None). `file` is relative to the ModelLink
# checkout (the emulator directory), or `site:<path>` (site-packages) or `bin:<script>` (a console script).
Frame = tuple[str, int, str, str | None]

SITE_PACKAGES = sysconfig.get_paths().get('purelib', '/usr/local/lib/python3/site-packages')
SCRIPTS = sysconfig.get_paths().get('scripts', '/usr/local/bin')


def _path(rel: str) -> str:
    if rel.startswith('site:'):
        return os.path.join(SITE_PACKAGES, rel[len('site:'):])
    if rel.startswith('bin:'):  # a console script (torchrun)
        return os.path.join(SCRIPTS, rel[len('bin:'):])
    v = version.current()
    if v.is_msl:
        # A root stands for the MindSpeed-LLM checkout; the shared frames name ModelLink's modules, which
        # MindSpeed-LLM renamed (line numbers stay ModelLink's where no release-specific frame is given).
        if rel.startswith('modellink/'):
            rel = 'mindspeed_llm/' + rel[len('modellink/'):]
        return os.path.join(EMULATOR_ROOT, 'roots', f'mindspeed-llm-{v.name}', rel)
    return os.path.join(EMULATOR_ROOT, rel)


def format_traceback(frames: Sequence[Frame], exc_type: str, message: str) -> str:
    lines = ['Traceback (most recent call last):']
    for rel, lineno, func, code in frames:
        lines.append(f'  File "{_path(rel)}", line {lineno}, in {func}')
        if code:
            lines.append(f'    {code}')
    lines.append(f'{exc_type}: {message}' if message != '' else exc_type)
    return '\n'.join(lines)


def write(frames: Sequence[Frame], exc_type: str, message: str, preamble: str | None = None) -> None:
    """Prints `preamble` (e.g. CANN error text) and the traceback to stderr."""
    sys.stdout.flush()
    sys.stderr.flush()
    text = (preamble.rstrip('\n') + '\n' if preamble else '') + format_traceback(frames, exc_type, message) + '\n'
    # One write: the ranks of a node share torchrun's stderr, and a block written at once (below the
    # pipe's atomic size) is not interleaved with another rank's.
    data = text.encode('utf-8', 'replace')
    while data:
        data = data[os.write(2, data):]


def die(frames: Sequence[Frame], exc_type: str, message: str, preamble: str | None = None, code: int = 1) -> NoReturn:
    """Prints `preamble` and the traceback to stderr, then exits like Python does."""
    write(frames, exc_type, message, preamble)
    os._exit(code)


def errno_enoent(path: str) -> str:
    """str() of the FileNotFoundError that open()/np.memmap raise for a missing path."""
    return f"[Errno 2] No such file or directory: '{path}'"


# --- stacks (outermost first) ----------------------------------------------------------------------

PRETRAIN_MAIN: list[Frame] = [
    ('pretrain_gpt.py', 262, '<module>', 'main()'),
    ('pretrain_gpt.py', 253, 'main', 'pretrain(train_valid_test_datasets_provider,'),
]

# Frames below the caller of initialize_megatron (ModelLink's wrapper of it).
INIT_VALIDATE: list[Frame] = [
    ('modellink/training/initialize.py', 78, 'initialize_megatron', 'validate_args(args, args_defaults)'),
    ('modellink/training/arguments.py', 832, 'wrapper', 'megatron_validate_args(args, defaults)'),
]
INIT_GLOBALS: list[Frame] = [
    ('modellink/training/initialize.py', 82, 'initialize_megatron', 'set_global_variables(args)'),
]
INIT_BATCH: list[Frame] = INIT_GLOBALS + [
    ('megatron/training/global_vars.py', 92, 'set_global_variables', '_build_num_microbatches_calculator(args)'),
    ('megatron/training/global_vars.py', 112, '_build_num_microbatches_calculator',
     '_GLOBAL_NUM_MICROBATCHES_CALCULATOR = build_num_microbatches_calculator('),
    ('megatron/training/microbatches.py', 13, 'build_num_microbatches_calculator',
     'num_microbatches_calculator = ConstantNumMicroBatches('),
    ('megatron/training/microbatches.py', 64, '__init__',
     'assert global_batch_size % micro_batch_times_data_parallel == 0, \\'),
]
INIT_TOKENIZER: list[Frame] = INIT_GLOBALS + [
    ('megatron/training/global_vars.py', 95, 'set_global_variables', '_ = _build_tokenizer(args)'),
    ('megatron/training/global_vars.py', 127, '_build_tokenizer', '_GLOBAL_TOKENIZER = build_tokenizer(args)'),
]

# initialize_megatron -> torch.distributed.init_process_group, whose env:// rendezvous builds a TCPStore.
INIT_DISTRIBUTED: list[Frame] = [
    ('modellink/training/initialize.py', 90, 'initialize_megatron', 'finish_mpu_init()'),
    ('modellink/training/initialize.py', 71, 'finish_mpu_init', '_initialize_distributed()'),
    ('megatron/training/initialize.py', 241, '_initialize_distributed', 'torch.distributed.init_process_group('),
    ('site:torch/distributed/c10d_logger.py', 74, 'wrapper', 'func_return = func(*args, **kwargs)'),
    ('site:torch/distributed/distributed_c10d.py', 1141, 'init_process_group',
     'store, rank, world_size = next(rendezvous_iterator)'),
    ('site:torch/distributed/rendezvous.py', 241, '_env_rendezvous_handler',
     'store = _create_c10d_store(master_addr, master_port, rank, world_size, timeout)'),
    ('site:torch/distributed/rendezvous.py', 172, '_create_c10d_store', 'return TCPStore('),
]

# torch.distributed.barrier() (ProcessGroupHCCL implements it as an all-reduce).
BARRIER: list[Frame] = [
    ('site:torch/distributed/c10d_logger.py', 47, 'wrapper', 'return func(*args, **kwargs)'),
    ('site:torch/distributed/distributed_c10d.py', 3439, 'barrier', 'work = default_pg.barrier(opts=opts)'),
]

# megatron save_checkpoint: barrier after every rank wrote its shards, and again after the tracker.
SAVE_BARRIER: list[Frame] = [
    ('megatron/training/checkpointing.py', 330, 'save_checkpoint', 'torch.distributed.barrier()'),
] + BARRIER

# pretrain_gpt.py -> pretrain() -> initialize_megatron()
PRETRAIN_INIT: list[Frame] = PRETRAIN_MAIN + [
    ('modellink/training/training.py', 289, 'pretrain', 'initialize_megatron(extra_args_provider=extra_args_provider,'),
]

PRETRAIN_MODEL: list[Frame] = PRETRAIN_MAIN + [
    ('modellink/training/training.py', 318, 'pretrain', 'train_args, test_data_iterator_list = build_train_args(args, timers, train_valid_test_dataset_provider,'),
    ('modellink/training/training.py', 210, 'build_train_args', 'model, optimizer, opt_param_scheduler = setup_model_and_optimizer('),
    ('modellink/training/training.py', 196, 'wrapper', 'model, optimizer, opt_param_scheduler = fn(*args, **kwargs)'),
    ('megatron/training/training.py', 527, 'setup_model_and_optimizer',
     'model = get_model(model_provider_func, model_type)'),
]

PRETRAIN_LOAD: list[Frame] = PRETRAIN_MAIN + [
    ('modellink/training/training.py', 318, 'pretrain', 'train_args, test_data_iterator_list = build_train_args(args, timers, train_valid_test_dataset_provider,'),
    ('modellink/training/training.py', 210, 'build_train_args', 'model, optimizer, opt_param_scheduler = setup_model_and_optimizer('),
    ('modellink/training/training.py', 196, 'wrapper', 'model, optimizer, opt_param_scheduler = fn(*args, **kwargs)'),
    ('megatron/training/training.py', 558, 'setup_model_and_optimizer',
     'args.iteration, args.num_floating_point_operations_so_far = load_checkpoint('),
]

PRETRAIN_DATA: list[Frame] = PRETRAIN_MAIN + [
    ('modellink/training/training.py', 318, 'pretrain', 'train_args, test_data_iterator_list = build_train_args(args, timers, train_valid_test_dataset_provider,'),
    ('modellink/training/training.py', 232, 'build_train_args', '= build_train_valid_test_data_iterators('),
    ('megatron/training/training.py', 1372, 'build_train_valid_test_data_iterators',
     'build_train_valid_test_data_loaders('),
    ('megatron/training/training.py', 1333, 'build_train_valid_test_data_loaders',
     'train_ds, valid_ds, test_ds = build_train_valid_test_datasets('),
    ('megatron/training/training.py', 1304, 'build_train_valid_test_datasets',
     'return build_train_valid_test_datasets_provider(train_val_test_num_samples)'),
]

PRETRAIN_TRAIN_STEP: list[Frame] = PRETRAIN_MAIN + [
    ('modellink/training/training.py', 341, 'pretrain', 'iteration, num_floating_point_operations_so_far = train(*train_args)'),
    ('modellink/training/training.py', 459, 'train', 'train_step(forward_step_func,'),
    ('megatron/training/training.py', 545, 'train_step', 'losses_reduced = forward_backward_func('),
]

# train() -> save_checkpoint_and_time() -> save_checkpoint()
PRETRAIN_TRAIN_SAVE: list[Frame] = PRETRAIN_MAIN + [
    ('modellink/training/training.py', 341, 'pretrain', 'iteration, num_floating_point_operations_so_far = train(*train_args)'),
    ('modellink/training/training.py', 488, 'train', 'save_checkpoint_and_time(iteration, model, optimizer,'),
    ('megatron/training/training.py', 1014, 'save_checkpoint_and_time', 'save_checkpoint(iteration, model, optimizer, opt_param_scheduler,'),
]

FORWARD: list[Frame] = [
    ('megatron/core/pipeline_parallel/schedules.py', 375, 'forward_backward_no_pipelining', 'output_tensor = forward_step('),
    ('megatron/core/pipeline_parallel/schedules.py', 193, 'forward_step', 'output_tensor, loss_func = forward_step_func(data_iterator, model)'),
    ('pretrain_gpt.py', 214, 'forward_step', 'output_tensor = model(tokens, position_ids, attention_mask,'),
    ('site:torch/nn/modules/module.py', 1518, '_wrapped_call_impl', 'return self._call_impl(*args, **kwargs)'),
    ('site:torch/nn/modules/module.py', 1527, '_call_impl', 'return forward_call(*args, **kwargs)'),
    ('megatron/core/transformer/transformer_block.py', 383, 'forward', 'hidden_states, context = layer('),
    ('site:torch/nn/modules/module.py', 1527, '_call_impl', 'return forward_call(*args, **kwargs)'),
    ('megatron/core/transformer/transformer_layer.py', 196, 'forward', 'mlp_output_with_bias = self.mlp(pre_mlp_layernorm_output)'),
    ('site:torch/nn/modules/module.py', 1527, '_call_impl', 'return forward_call(*args, **kwargs)'),
    ('modellink/core/transformer/mlp.py', 98, 'core_mlp_forward_wrapper', 'intermediate_parallel, bias_parallel = self.linear_fc1(hidden_states)'),
]

LOSS: list[Frame] = [
    ('megatron/core/pipeline_parallel/schedules.py', 375, 'forward_backward_no_pipelining', 'output_tensor = forward_step('),
    ('megatron/core/pipeline_parallel/schedules.py', 206, 'forward_step', 'output_tensor = loss_func(output_tensor)'),
    ('pretrain_gpt.py', 178, 'loss_func', "raise ValueError(f'Rank {global_rank}: found NaN in local forward loss calculation. '"),
]

ALLREDUCE: list[Frame] = [
    ('megatron/training/training.py', 560, 'train_step', 'update_successful, grad_norm, num_zeros_in_grad = optimizer.step()'),
    ('megatron/core/optimizer/optimizer.py', 410, 'step', 'found_inf_flag = self._unscale_main_grads_and_check_for_nan()'),
    ('megatron/core/optimizer/optimizer.py', 340, '_unscale_main_grads_and_check_for_nan',
     'torch.distributed.all_reduce('),
    ('site:torch/distributed/c10d_logger.py', 47, 'wrapper', 'return func(*args, **kwargs)'),
    ('site:torch/distributed/distributed_c10d.py', 2050, 'all_reduce', 'work.wait()'),
]


def train_step_stack(tail: list[Frame]) -> list[Frame]:
    """The stack of an exception raised while running one training iteration."""
    return PRETRAIN_TRAIN_STEP + tail


def main_stack(script: str) -> list[Frame]:
    """Outermost frames for the non-training entrypoints."""
    return [(script, {'preprocess_data.py': 290, 'convert_ckpt.py': 109, 'evaluation.py': 365,
                      'inference.py': 71}.get(script, 1), '<module>', 'main()')]
