"""Megatron checkpoint layout, saving and loading (the parts an orchestrator can observe).

Layout (formats.md (b)):
    <dir>/latest_checkpointed_iteration.txt           "2000" or "release"
    <dir>/iter_0002000/mp_rank_XX[_YYY][_ZZZ]/model_optim_rng.pt   (+ distrib_optim.pt)
Shard files hold a small JSON document instead of a torch pickle: the iteration, the shard's
ranks, the subset of args Megatron checks on load, and which top-level keys a real state dict
would have ("optimizer", "rng_state", ...). Loading follows megatron/training/checkpointing.py
at core_r0.6.0, including its quirks: several failures print a message and call sys.exit()
(exit status 0), exactly like Megatron.
"""
import json
import os
import sys
import time
from argparse import Namespace
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from . import gang, tracebacks, version
from .tracebacks import Frame

if TYPE_CHECKING:  # megatron imports more than checkpointing needs at run time
    from .megatron import Runtime

# (tp_rank, pp_rank, ep_rank) of one shard.
Shard = tuple[int, int, int]
# What read_tracker finds: (iteration, release), or ('invalid', the tracker's text).
Tracker = tuple[int, bool] | tuple[Literal['invalid'], str]
# A shard's JSON document (the emulator's stand-in for a torch state dict).
State = dict[str, Any]

TRACKER_NAME = 'latest_checkpointed_iteration.txt'
MODEL_FILE = 'model_optim_rng.pt'
OPTIM_FILE = 'distrib_optim.pt'
FORMAT = 'mlemu-megatron-checkpoint/1'
CHECKPOINT_VERSION = 3.0
ALL_KEYS = ['args', 'checkpoint_version', 'iteration', 'model', 'optimizer', 'opt_param_scheduler', 'rng_state',
            'num_floating_point_operations_so_far']

# Args stored in each shard: what check_checkpoint_args compares, plus what resuming needs.
SAVED_ARGS = ['num_layers', 'hidden_size', 'ffn_hidden_size', 'num_attention_heads', 'num_query_groups',
              'group_query_attention', 'add_position_embedding', 'max_position_embeddings', 'seq_length',
              'padded_vocab_size', 'tokenizer_type', 'tensor_model_parallel_size', 'pipeline_model_parallel_size',
              'expert_model_parallel_size', 'num_layer_list', 'num_layers_per_virtual_pipeline_stage',
              'use_mcore_models', 'params_dtype', 'consumed_train_samples', 'consumed_valid_samples',
              'global_batch_size', 'micro_batch_size', 'train_iters', 'lora_target_modules', 'lora_r', 'lora_alpha',
              'swiglu', 'normalization', 'position_embedding_type', 'untie_embeddings_and_output_weights']


# --- names ------------------------------------------------------------------------------------------

def iter_dir_name(iteration: int, release: bool = False) -> str:
    return 'release' if release else 'iter_{:07d}'.format(iteration)


def shard_dir_name(tp_rank: int, pp_rank: int, pp_size: int, ep_rank: int = 0, ep_size: int = 1) -> str:
    """mp_rank_XX, mp_rank_XX_YYY with PP > 1, then _EEE with EP > 1 (get_checkpoint_name)."""
    name = f'mp_rank_{tp_rank:02d}' if pp_size <= 1 else f'mp_rank_{tp_rank:02d}_{pp_rank:03d}'
    if ep_size > 1:
        name += f'_{ep_rank:03d}'
    return name


def layout(tp: int, pp: int, ep: int = 1) -> list[Shard]:
    """(tp_rank, pp_rank, ep_rank) of every shard, in the order the shard directories sort."""
    return [(t, p, e) for t in range(tp) for p in range(pp) for e in range(ep)]


def shard_path(base: str, iteration: int, release: bool, tp_rank: int, pp_rank: int, pp: int, ep_rank: int = 0, ep: int = 1,
               filename: str = MODEL_FILE) -> str:
    return os.path.join(base, iter_dir_name(iteration, release), shard_dir_name(tp_rank, pp_rank, pp, ep_rank, ep),
                        filename)


def owner_rank(tp_rank: int, pp_rank: int, ep_rank: int, tp: int, dp: int, cp: int = 1) -> int:
    """Global rank (Megatron's tp-cp-ep-dp-pp order) that writes a shard: DP rank 0 of its group."""
    return pp_rank * tp * cp * dp + ep_rank * tp * cp + tp_rank


def tracker_path(directory: str) -> str:
    return os.path.join(directory, TRACKER_NAME)


# --- tracker ----------------------------------------------------------------------------------------

def read_tracker(directory: str) -> Tracker | None:
    """Returns None (no tracker), ('invalid', text) or (iteration, release)."""
    path = tracker_path(directory)
    if not os.path.isfile(path):
        return None
    with open(path, encoding='utf-8') as f:
        text = f.read().strip()
    try:
        return int(text), False
    except ValueError:
        if text == 'release':
            return 0, True
        return 'invalid', text


def write_tracker(directory: str, iteration: int) -> None:
    """Written last, atomically (tmp + rename), so a reader never sees a tracker ahead of its shards."""
    path = tracker_path(directory)
    tmp = f'{path}.tmp.{os.getpid()}'
    with open(tmp, 'w', encoding='utf-8') as f:
        f.write(str(iteration))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# --- shard files --------------------------------------------------------------------------------------

def args_subset(args: Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in SAVED_ARGS:
        if hasattr(args, name):
            value = getattr(args, name)
            out[name] = value if isinstance(value, (int, float, str, bool, list, type(None))) else str(value)
    return out


def write_json(path: str, document: State) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(document, f, indent=1, sort_keys=True)
        f.write('\n')


def read_state(path: str, tracker_iteration: int) -> State:
    """Reads a shard. Files the emulator did not write (real checkpoints, fixtures) count as complete."""
    try:
        with open(path, encoding='utf-8') as f:
            document = json.load(f)
        if isinstance(document, dict) and document.get('format') == FORMAT:
            return document
    except (OSError, ValueError, UnicodeDecodeError):
        pass
    return {'format': 'opaque', 'iteration': tracker_iteration, 'keys': list(ALL_KEYS), 'args': None,
            'checkpoint_version': CHECKPOINT_VERSION}


def shard_document(iteration: int, tp_rank: int, pp_rank: int, ep_rank: int, args: Namespace, keys: list[str],
                   lora: bool = False, extra: State | None = None) -> State:
    doc = {
        'format': FORMAT,
        'note': 'written by the ModelLink emulator (mlemu); a real checkpoint is a torch.save() zip',
        'iteration': iteration,
        'checkpoint_version': CHECKPOINT_VERSION,
        'tp_rank': tp_rank, 'pp_rank': pp_rank, 'ep_rank': ep_rank,
        'keys': keys,
        'args': args_subset(args),
        'model': {'lora_only': bool(lora)},
    }
    if extra:
        doc.update(extra)
    return doc


# --- save -----------------------------------------------------------------------------------------------

def save_checkpoint(rt: 'Runtime', save_dir: str, iteration: int, args: Namespace, keys: list[str],
                    with_distrib_optim: bool = False, lora: bool = False, save_time_ms: float = 0.0,
                    extra: State | None = None, stack: Sequence[Frame] = (), trainable: int | None = None) -> None:
    """megatron.training.checkpointing.save_checkpoint, for the ranks this process stands for.

    `stack`: traceback frames down to the call of save_checkpoint (for a failed barrier).
    `trainable`: the trainable parameters of one model-parallel shard (what the distributed optimizer holds).
    """
    v = version.current()
    dist_ckpt = v.is_msl and bool(getattr(args, 'use_dist_ckpt', False))
    # `ckpt_format = args.ckpt_format if args.use_dist_ckpt else 'torch'` (MindSpeed-LLM 2.3.0
    # mindspeed_llm/training/checkpointing.py#L166; 26.1.0 #L234). On 2.2.0-26.0.0 use_dist_ckpt is always False here:
    # validate_args_v2_decorator calls _add_dummy_args_v2, which sets ckpt_format='torch', use_dist_ckpt=False after
    # Megatron's validation whatever --ckpt-format said (2.3.0 mindspeed_llm/training/arguments.py#L1277-1290,#L1507;
    # 26.0.0 #L101-113,#L133). 26.1.0 no longer resets them (#L156-176): torch_dist, Megatron's default, is written.
    # core_r0.8.0 names it --dist-ckpt-format (2.1.0 mindspeed_llm/training/checkpointing.py#L256).
    fmt = (getattr(args, 'ckpt_format', None) or getattr(args, 'dist_ckpt_format', None) or 'torch_dist') \
        if dist_ckpt else 'torch'
    rt.print0('saving checkpoint at iteration {:7d} to {} in {} format'.format(iteration, save_dir, fmt))
    if v.is_msl and getattr(args, 'async_save', False) and not dist_ckpt:
        # 2.1.0 patches save_checkpoint for every run (mindspeed_llm/tasks/megatron_adaptor.py#L895): its wrapper
        # raises. From 2.2.0 the wrapper is LoRA's only (features_manager/finetune/lora.py#L90-91 at 2.2.0, #L52 at
        # 26.1.0); otherwise Megatron's own save_checkpoint raises (core_v0.12.1 megatron/training/checkpointing.py#L397).
        lora = bool(getattr(args, 'lora_target_modules', None))
        if not v.dist_ckpt_core or lora:
            frame = ('mindspeed_llm/training/checkpointing.py', v.save_wrapper_raise_line, 'wrapper')
        else:
            frame = ('megatron/training/checkpointing.py', 397, 'save_checkpoint')
        tracebacks.die(list(stack) + [(
            *frame, "raise NotImplementedError('Async checkpoint save not implemented for legacy checkpoints')")],
                       'NotImplementedError', 'Async checkpoint save not implemented for legacy checkpoints')
    tp, pp, ep = args.tensor_model_parallel_size, args.pipeline_model_parallel_size, rt.ep
    if dist_ckpt:
        _save_dist(rt, save_dir, iteration, args, keys, stack)
        return
    dp = max(1, getattr(args, 'data_parallel_size', 1))
    cp = getattr(args, 'context_parallel_size', 1) or 1
    mine = [s for s in layout(tp, pp, ep) if rt.dist.hosts(owner_rank(s[0], s[1], s[2], tp, dp, cp))]
    pause = (save_time_ms / 1000.0) / max(1, len(mine))
    for tp_rank, pp_rank, ep_rank in mine:
        model_path = shard_path(save_dir, iteration, False, tp_rank, pp_rank, pp, ep_rank, ep)
        if with_distrib_optim:
            write_json(os.path.join(os.path.dirname(model_path), OPTIM_FILE), {
                'format': FORMAT + '/distrib_optim', 'iteration': iteration,
                'tp_rank': tp_rank, 'pp_rank': pp_rank, 'ep_rank': ep_rank, 'data_parallel_size': dp,
                'per_bucket_numel_unpadded': bucket_numel(args, trainable)})
        write_json(model_path, shard_document(iteration, tp_rank, pp_rank, ep_rank, args, keys, lora, extra))
        if pause:
            time.sleep(pause)
    # Megatron: barrier, so the tracker never names an iteration whose shards another node is still
    # writing (or never wrote: a node lost here fails the barrier); then a second barrier.
    gang.barrier(list(stack) + tracebacks.SAVE_BARRIER)
    if rt.dist.hosts_rank0:
        write_tracker(save_dir, iteration)
    rt.print0('  successfully saved checkpoint {} iteration {:7d} to {}'.format(v.saved_word, iteration, save_dir))
    gang.barrier(list(stack) + tracebacks.SAVE_BARRIER)


DIST_METADATA = '.metadata'


def _save_dist(rt: 'Runtime', save_dir: str, iteration: int, args: Namespace, keys: list[str], stack: Sequence[Frame]) -> None:
    """torch_dist (Megatron core_v0.12.1 megatron/core/dist_checkpointing/serialization.py save()): one directory per
    iteration, no mp_rank_* shards. common.pt is written at once by rank 0 (save_common, #L378); each rank writes its
    __<rank>_0.distcp; torch.distributed.checkpoint's .metadata is written by the coordinator in the sharded strategy's
    finalize_fn (strategies/torch.py#L790-791 -> state_dict_saver.py#L243 storage_writer.finish), then metadata.json
    (metadata_finalize_fn, serialization.py#L386-392), then the tracker (iter_finalize_fn, megatron/training/
    checkpointing.py#L526-540). Without --async-save all of it happens inside save (serialization.py#L394-397); with
    it the finalize functions run later (_finalize below), so a job that dies in between leaves a folder without
    .metadata and the older tracker."""
    base = os.path.join(save_dir, iter_dir_name(iteration))
    os.makedirs(base, exist_ok=True)
    if rt.dist.hosts_rank0 and os.listdir(base):
        # A resume saving the iteration of a torn folder again: Megatron warns and writes over it (serialization.py
        # #L353-357), as training.py's logging.basicConfig prints it (emulator/mlemu/logs.py).
        rt.print0('WARNING:megatron.core.dist_checkpointing.serialization:Overwriting old incomplete / corrupted '
                  'checkpoint...')
    if rt.dist.hosts_rank0:
        write_json(os.path.join(base, 'common.pt'), shard_document(iteration, 0, 0, 0, args, keys, False, None))
    for rank in range(rt.dist.world_size):
        if rt.dist.hosts(rank):
            write_json(os.path.join(base, f'__{rank}_0.distcp'), {'format': FORMAT + '/distcp', 'iteration': iteration,
                                                                   'rank': rank})
    if getattr(args, 'async_save', False):
        # schedule_async_save (megatron/training/async_utils.py#L27-33, called at checkpointing.py#L565): the
        # finalize functions run in maybe_finalize_async_save (async_utils.py#L36-53), which the training loop calls
        # at each iteration (training.py#L1957) and blockingly at the end of training (#L2121).
        _PENDING.append((rt, save_dir, iteration))
        rt.print0('  scheduled an async checkpoint save at iteration {:7d} to {}'.format(iteration, save_dir))
        return
    gang.barrier(list(stack) + tracebacks.SAVE_BARRIER)
    _finalize(rt, save_dir, iteration)
    gang.barrier(list(stack) + tracebacks.SAVE_BARRIER)


_PENDING: list[tuple['Runtime', str, int]] = []


def _finalize(rt: 'Runtime', save_dir: str, iteration: int) -> None:
    """The finalize functions, in the order the async request holds them: .metadata, metadata.json, tracker."""
    base = os.path.join(save_dir, iter_dir_name(iteration))
    if rt.dist.hosts_rank0:
        write_json(os.path.join(base, DIST_METADATA), {'format': FORMAT + '/dcp-metadata', 'world_size': rt.dist.world_size})
        write_json(os.path.join(base, 'metadata.json'), {'sharded_backend': 'torch_dist', 'sharded_backend_version': 1,
                                                         'common_backend': 'torch', 'common_backend_version': 1})
        write_tracker(save_dir, iteration)
    rt.print0('  successfully saved checkpoint {} iteration {:7d} to {}'.format(version.current().saved_word, iteration,
                                                                                 save_dir))


def finalize_async_saves() -> None:
    """maybe_finalize_async_save: the training loop finalizes finished async saves at its next step, and blocks
    for them at the end of training."""
    while _PENDING:
        _finalize(*_PENDING.pop(0))


# --- load -----------------------------------------------------------------------------------------------

class Loaded:
    """What load_checkpoint loaded."""

    iteration: int  # training goes on from here (0 for --finetune or a release checkpoint)
    release: bool
    state: State  # the rank-0 shard's document (merged with --lora-load's)
    checkpoint_name: str  # path of that shard
    optimizer_loaded: bool

    def __init__(self, iteration: int, release: bool, state: State, checkpoint_name: str, optimizer_loaded: bool) -> None:
        self.iteration = iteration
        self.release = release
        self.state = state
        self.checkpoint_name = checkpoint_name
        self.optimizer_loaded = optimizer_loaded

    @property
    def checkpoint_args(self) -> dict[str, Any] | None:
        return self.state.get('args')


def _load_base(rt: 'Runtime', load_dir: str, exit_on_missing: bool, stack: list[Frame],
               step: int | None = None) -> tuple[State, str, bool, int] | None:
    """_load_base_checkpoint: tracker, then the rank-0 shard. Returns (state, name, release, iteration) or None.

    `step`: checkpoint_step (MindSpeed-LLM 2.1.0 mindspeed_llm/training/checkpointing.py#L83-85): that iteration,
    never a release, whatever the tracker names; the tracker must exist all the same."""
    tracker = read_tracker(load_dir)
    if tracker is not None and step is not None:
        tracker = (step, False)
    if tracker is None:
        rt.print0('WARNING: could not find the metadata file {} '.format(tracker_path(load_dir)))
        rt.print0('    will not load any checkpoints and will start from random')
        if exit_on_missing:
            rt.print0(">> '--exit-on-missing-checkpoint' set ... exiting. <<")
            sys.exit()
        return None
    if tracker[0] == 'invalid':
        rt.print0('ERROR: Invalid metadata file {}. Exiting'.format(tracker_path(load_dir)))
        sys.exit()
    iteration, release = tracker
    if not (iteration > 0 or release):
        tracebacks.die(stack + [('megatron/training/checkpointing.py', 208, 'read_metadata', None)],
                       'AssertionError', 'error parsing metadata file {}'.format(tracker_path(load_dir)))
    args = rt.args
    name = shard_path(load_dir, iteration, release, 0, 0, args.pipeline_model_parallel_size, 0, rt.ep)
    dist_common = os.path.join(load_dir, iter_dir_name(iteration, release), 'common.pt')
    dist = version.current().is_msl and os.path.isfile(os.path.join(os.path.dirname(dist_common), DIST_METADATA))
    if dist:
        # A torch_dist checkpoint: its common state is what the emulator reads (the shards are per rank).
        name = dist_common
    # core_v0.12.1 names the format it found on disk (megatron/training/checkpointing.py#L942-948).
    infix = 'distributed ' if dist and version.current().dist_ckpt_core else ''
    if release:
        rt.print0(f' loading release {infix}checkpoint from {load_dir}')
    else:
        rt.print0(f' loading {infix}checkpoint from {load_dir} at iteration {iteration}')
    if dist and version.current().dist_ckpt_core and not getattr(args, 'use_dist_ckpt', False) \
            and not getattr(args, 'auto_detect_ckpt_format', False):
        # --ckpt-format torch without --auto-detect-ckpt-format: load_checkpoint builds no sharded state dict, and the
        # torch_dist folder on disk cannot be read without one (Megatron-LM core_r0.12.0, the mirror's branch of the
        # core_v0.12.1 line: megatron/training/checkpointing.py#L1194, #L1324, #L953-955, #L838-845).
        tracebacks.die(stack + [('megatron/training/checkpointing.py', 1324, 'load_checkpoint', None),
                                ('megatron/training/checkpointing.py', 954, '_load_base_checkpoint', None),
                                ('megatron/training/checkpointing.py', 843, '_load_global_dist_base_checkpoint', None)],
                       'RuntimeError',
                       'Detected load from a distributed checkpoint, but neither --use-dist-ckpt nor '
                       '--auto-detect-ckpt-format is set.')
    if not os.path.isfile(name):
        # torch.load raises; Megatron catches BaseException, prints it and calls sys.exit().
        rt.print0('could not load the checkpoint')
        rt.print0(tracebacks.errno_enoent(name))
        sys.exit()
    return read_state(name, iteration), name, release, iteration


def _compare_args(rt: 'Runtime', checkpoint_args: dict[str, Any], stack: list[Frame]) -> None:
    args = rt.args

    def compare(name: str, default: Any = None) -> None:
        if name in checkpoint_args:
            ckpt_value = checkpoint_args[name]
        elif default is not None:
            ckpt_value = default
        else:
            return  # the emulator did not store it; a real checkpoint would have it
        value = getattr(args, name)
        if ckpt_value != value:
            tracebacks.die(stack + [
                ('megatron/training/checkpointing.py', 711, 'load_checkpoint', 'check_checkpoint_args(checkpoint_args)'),
                ('megatron/training/checkpointing.py', 58, 'check_checkpoint_args', "_compare('{}')".format(name)),
                ('megatron/training/checkpointing.py', 54, '_compare', 'assert checkpoint_value == args_value, error_message'),
            ], 'AssertionError', '{} value from checkpoint ({}) is not equal to the input argument value ({}).'.format(
                name, ckpt_value, value))

    compare('num_layers')
    compare('hidden_size')
    compare('num_attention_heads')
    compare('add_position_embedding', default=True)
    compare('tensor_model_parallel_size')
    compare('pipeline_model_parallel_size')


def load_checkpoint(rt: 'Runtime', load_dir: str, stack: list[Frame], has_optimizer: bool = True,
                    trainable: int | None = None, merge_lora: bool = True, step: int | None = None) -> Loaded | None:
    """megatron.training.checkpointing.load_checkpoint as ModelLink wraps it (LoRA: --lora-load on top).

    `trainable`: the trainable parameters of one model-parallel shard (what the distributed optimizer holds).
    `merge_lora`: False for DPO's reference under is_load_refer (MindSpeed-LLM 2.1.0+ _load_base_checkpoint_wrapper
    returns the base state alone then, 2.3.0 mindspeed_llm/training/checkpointing.py#L68).
    `step`: the iteration to load whatever the tracker says (2.1.0's reference: checkpoint_step, see _load_base).

    Returns a Loaded, or None when there was nothing to load (training starts from random).
    """
    args = rt.args
    base = _load_base(rt, load_dir, args.exit_on_missing_checkpoint, stack, step)
    if base is None:
        return None
    state, name, release, tracker_iteration = base
    sources = [(load_dir, tracker_iteration, release)]
    lora_enabled = bool(getattr(args, 'lora_target_modules', None))
    if lora_enabled and merge_lora and getattr(args, 'lora_load', None):
        # ModelLink's _load_base_checkpoint_wrapper: the LoRA checkpoint is merged over the base one.
        lora = _load_base(rt, args.lora_load, False, stack)
        if lora is not None:
            lora_state, name, release, lora_iteration = lora
            sources.append((args.lora_load, lora_iteration, release))
            merged = dict(state)
            merged.update(lora_state)
            merged['keys'] = sorted(set(state.get('keys', [])) | set(lora_state.get('keys', [])))
            state = merged

    if args.finetune or release:
        iteration = 0
    else:
        if state.get('iteration') is None:
            rt.print0('A metadata file exists but unable to load iteration from checkpoint {}, exiting'.format(name))
            sys.exit()
        iteration = state['iteration']

    keys = set(state.get('keys', ALL_KEYS))
    args.consumed_train_samples = 0
    args.consumed_valid_samples = 0
    if 'args' in keys and not args.finetune:
        checkpoint_args = state.get('args')
        if checkpoint_args is not None:
            _compare_args(rt, checkpoint_args, stack)
            args.consumed_train_samples = checkpoint_args.get('consumed_train_samples',
                                                              iteration * args.global_batch_size)
            args.consumed_valid_samples = checkpoint_args.get('consumed_valid_samples', 0)
        else:
            args.consumed_train_samples = iteration * args.global_batch_size
    else:
        rt.print0('could not find arguments in the checkpoint ...')

    # Every rank reads its own shard. A rank whose file is missing prints nothing (print_rank_0)
    # and exits, and the job dies at the next collective; report which shard was missing.
    tp, pp, ep = args.tensor_model_parallel_size, args.pipeline_model_parallel_size, rt.ep
    for source_dir, source_iteration, source_release in sources:
        if name.endswith('common.pt'):
            continue
        for tp_rank, pp_rank, ep_rank in layout(tp, pp, ep):
            path = shard_path(source_dir, source_iteration, source_release, tp_rank, pp_rank, pp, ep_rank, ep)
            if not os.path.isfile(path):
                rt.print0('could not load the checkpoint')
                rt.print0(tracebacks.errno_enoent(path))
                sys.exit(1)

    rt.print0(f' checkpoint version {state.get("checkpoint_version", CHECKPOINT_VERSION)}')

    optimizer_loaded = False
    if has_optimizer and not release and not args.finetune and not args.no_load_optim:
        if 'optimizer' not in keys:
            rt.print0('Unable to load optimizer from checkpoint {}. '
                      'Specify --no-load-optim or --finetune to prevent '
                      'attempting to load the optimizer state, '
                      'exiting ...'.format(name))
            sys.exit()
        if args.use_distributed_optimizer and not name.endswith('common.pt'):
            # load_checkpoint l. 738-746: the distributed optimizer's state is found through the tracker
            # of load_dir (--load), whatever checkpoint the state dict came from (ModelLink's LoRA wrapper
            # merges --lora-load into it), and the iteration and release flag are overwritten by it.
            iteration, release = _read_metadata(rt, load_dir, stack)
            _load_parameter_state(rt, load_dir, iteration, release, stack, trainable)
        optimizer_loaded = True

    if not release and not args.finetune and not args.no_load_rng:
        if 'rng_state' not in keys:
            rt.print0('Unable to load rng state from checkpoint {}. '
                      'Specify --no-load-rng or --finetune to prevent '
                      'attempting to load the rng state, '
                      'exiting ...'.format(name))
            sys.exit()

    ranks = version.current().loaded_ranks(0, args.tensor_model_parallel_size, 0, args.pipeline_model_parallel_size)
    rt.print0(f'  successfully loaded checkpoint from {load_dir} {ranks} at iteration {iteration}')
    return Loaded(iteration, release, state, name, optimizer_loaded)


# --- the distributed optimizer's state -------------------------------------------------------------------

# ModelLink patches megatron.training.training.load_checkpoint with load_checkpoint_wrapper
# (modellink/patchs/megatron_patch.py l. 327; modellink/training/checkpointing.py l. 56).
LOAD_WRAPPER: list[Frame] = [('modellink/training/checkpointing.py', 56, 'wrapper', 'return fn(*args, **kwargs)')]
LOAD_PARAMETER_STATE: Frame = ('megatron/training/checkpointing.py', 746, 'load_checkpoint',
                        'optimizer.load_parameter_state(optim_checkpoint_name)')
# torch 2.1's torch.load of a path that does not exist.
TORCH_LOAD_OPEN: list[Frame] = [
    ('site:torch/serialization.py', 986, 'load', "with _open_file_like(f, 'rb') as opened_file:"),
    ('site:torch/serialization.py', 435, '_open_file_like', 'return _open_file(name_or_buffer, mode)'),
    ('site:torch/serialization.py', 416, '__init__', 'super().__init__(open(name, mode))'),
]

DTYPES: dict[str, str] = {'fp32': 'torch.float32', 'fp16': 'torch.float16', 'bf16': 'torch.bfloat16'}


def bucket_numel(args: Namespace, trainable: int | None) -> str:
    """repr of DistributedOptimizer.per_bucket_numel_unpadded (distrib_optimizer.py l. 416-431), one bucket.

    The buffer's dtypes are (param dtype, grad dtype); bf16 accumulates grads in fp32 (Megatron's
    validate_args). Only the trainable parameters are in the buffer: a LoRA run's optimizer holds the
    LoRA weights, a full run's the whole shard.
    """
    param = str(getattr(args, 'params_dtype', 'torch.float32'))
    grad = 'torch.float32' if getattr(args, 'accumulate_allreduce_grads_in_fp32', False) else param
    return f'[{{({param}, {grad}): [{int(trainable or 0):d}]}}]'


def _read_metadata(rt: 'Runtime', load_dir: str, stack: list[Frame]) -> tuple[int, bool]:
    """read_metadata(get_checkpoint_tracker_filename(load_dir)) (checkpointing.py l. 193-215)."""
    tracker = read_tracker(load_dir)
    if tracker is None:
        tracebacks.die(stack + LOAD_WRAPPER + [
            ('megatron/training/checkpointing.py', 740, 'load_checkpoint',
             'iteration, release = read_metadata(tracker_filename)'),
            ('megatron/training/checkpointing.py', 198, 'read_metadata', "with open(tracker_filename, 'r') as f:"),
        ], 'FileNotFoundError', tracebacks.errno_enoent(tracker_path(load_dir)))
    if tracker[0] == 'invalid':
        rt.print0('ERROR: Invalid metadata file {}. Exiting'.format(tracker_path(load_dir)))
        sys.exit()
    return tracker


def _load_parameter_state(rt: 'Runtime', load_dir: str, iteration: int, release: bool, stack: list[Frame],
                          trainable: int | None) -> None:
    """optimizer.load_parameter_state(<load_dir>/<iter>/mp_rank_XX[_YYY][_EEE]/distrib_optim.pt).

    DistributedOptimizer.load_parameter_state (distrib_optimizer.py l. 1136-1146) -- for MoE models a
    ChainedOptimizer (optimizer.py l. 820-836, get_megatron_optimizer l. 339-342) -- torch.loads the file
    on the rank that is data-parallel rank 0 of its shard, i.e. the rank that wrote it. A missing file
    raises FileNotFoundError there (exit 1); the other ranks wait for it in the scatter of
    load_parameter_state_from_dp_zero and die with it. A file of another model (a full model's optimizer
    state loaded into a LoRA run, or the reverse) fails load_parameter_state_from_dp_zero's assertion
    (l. 969-975).
    """
    args = rt.args
    tp, pp, ep = args.tensor_model_parallel_size, args.pipeline_model_parallel_size, rt.ep
    dp = max(1, getattr(args, 'data_parallel_size', 1))
    cp = getattr(args, 'context_parallel_size', 1) or 1
    load: Frame
    scatter: Frame
    if getattr(args, 'num_experts', None):
        load = ('megatron/core/optimizer/optimizer.py', 833, 'load_parameter_state', 'states = torch.load(filename)')
        scatter = ('megatron/core/optimizer/optimizer.py', 836, 'load_parameter_state',
                   'optimizer.load_parameter_state_from_dp_zero(state_dict)')
    else:
        load = ('megatron/core/optimizer/distrib_optimizer.py', 1144, 'load_parameter_state', 'state_dict = torch.load(filename)')
        scatter = ('megatron/core/optimizer/distrib_optimizer.py', 1146, 'load_parameter_state',
                   'self.load_parameter_state_from_dp_zero(state_dict)')
    expected = bucket_numel(args, trainable)
    waiting = False
    for tp_rank, pp_rank, ep_rank in layout(tp, pp, ep):
        path = shard_path(load_dir, iteration, release, tp_rank, pp_rank, pp, ep_rank, ep, OPTIM_FILE)
        mine = rt.dist.hosts(owner_rank(tp_rank, pp_rank, ep_rank, tp, dp, cp))
        if not os.path.isfile(path):
            if mine:
                tracebacks.die(stack + LOAD_WRAPPER + [LOAD_PARAMETER_STATE, load] + TORCH_LOAD_OPEN,
                               'FileNotFoundError', tracebacks.errno_enoent(path))
            waiting = True
            continue
        saved = _read_json(path).get('per_bucket_numel_unpadded')
        if mine and trainable is not None and saved is not None and saved != expected:
            tracebacks.die(stack + LOAD_WRAPPER + [LOAD_PARAMETER_STATE, scatter,
                ('megatron/core/optimizer/distrib_optimizer.py', 971, 'load_parameter_state_from_dp_zero',
                 'assert self.per_bucket_numel_unpadded == per_bucket_numel_unpadded_in_checkpoint, ('),
            ], 'AssertionError',
                'Number of unpadded elements in each bucket need to be the same in current run ({}) and checkpoint ({})'.format(
                    expected, saved))
    if waiting:
        # The rank that reads the file is another process; it fails, and this one waits for it in the
        # scatter until its peer is gone (a gang notices; torchrun stops the workers of a node).
        gang.barrier(stack + LOAD_WRAPPER + [LOAD_PARAMETER_STATE])
        while True:
            time.sleep(3600)


def _read_json(path: str) -> State:
    """The emulator's JSON document, or {} for a file it did not write (a real torch pickle)."""
    try:
        with open(path, encoding='utf-8') as f:
            document = json.load(f)
        return document if isinstance(document, dict) else {}
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
