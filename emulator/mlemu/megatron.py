"""Emulation of Megatron's initialize_megatron() as ModelLink wraps it.

Covers what is visible from outside: the start-up prints, the argument checks that are cheap to
reproduce (each failing with Megatron's message and an AssertionError/ValueError traceback), the
`ModelLink Arguments` dump, the micro-batch arithmetic and the tokenizer build.
"""
import os
import sys
from datetime import datetime

from . import env, gang, msl, tensorboard, tracebacks, version
from . import tokenizer as tok
from .env import Dist, line_buffered_stdio

DTYPE_NAMES = {'fp16': 'torch.float16', 'bf16': 'torch.bfloat16', 'fp32': 'torch.float32'}

# Attributes Megatron's validate_args deletes after checking they are unset.
DELETED_ARGS = ('batch_size', 'warmup', 'model_parallel_size', 'checkpoint_activations', 'recompute_activations')


class Runtime:
    """Parsed args plus the distributed layout, and Megatron's rank-filtered printing."""

    def __init__(self, entrypoint, args, dist=None):
        self.entrypoint = entrypoint
        self.args = args
        self.dist = dist or Dist()
        # get_tensorboard_writer(): set by initialize on the last rank when --tensorboard-dir is given.
        self.tensorboard = None

    # print_rank_0 / print_rank_last: a worker under torchrun is one rank; a plain `python3` run is all of them.
    def print0(self, *parts):
        if self.dist.hosts_rank0:
            print(*parts, flush=True)

    def print_last(self, *parts):
        if self.dist.hosts_last_rank:
            print(*parts, flush=True)

    def print_datetime(self, label):
        self.print0('[' + label + '] datetime: {} '.format(datetime.now().strftime('%Y-%m-%d %H:%M:%S')))

    @property
    def ep(self):
        return getattr(self.args, 'expert_model_parallel_size', 1) or 1

    @property
    def dp(self):
        return self.args.data_parallel_size


def _assert(cond, message, stack):
    if not cond:
        tracebacks.die(stack, 'AssertionError', message)


def initialize(entrypoint, args, entry_stack, args_defaults=None, dist=None):
    """Runs the emulated initialize_megatron. Returns a Runtime.

    `entry_stack`: traceback frames down to the entrypoint's call of initialize_megatron.
    """
    line_buffered_stdio()
    rt = Runtime(entrypoint, args, dist)
    stack = entry_stack + tracebacks.INIT_VALIDATE
    megatron_stack = stack + [('megatron/training/arguments.py', 150, 'validate_args', None)]

    # megatron.training.arguments.parse_args
    args.rank = rt.dist.rank
    args.world_size = rt.dist.world_size

    user_variable_seq_lengths = args.variable_seq_lengths
    v = version.current()
    if v.is_msl:
        msl.pre_validate(args)
    _validate_megatron(rt, args, args_defaults or {}, megatron_stack)
    # ModelLink stores --variable-seq-lengths around Megatron's validation, which resets it.
    args.variable_seq_lengths = user_variable_seq_lengths
    if v.is_msl:
        msl.models_and_format(args, megatron_stack)
        msl.validate_online_convert(args, stack)
    _validate_modellink(rt, args, stack)
    if v.is_msl:
        msl.validate_high_availability(args, stack)
    print_args(rt, v.args_title, args)

    # set_global_variables: micro-batch calculator, then the tokenizer.
    micro_dp = args.micro_batch_size * args.data_parallel_size
    _assert(args.global_batch_size % micro_dp == 0,
            'global batch size ({}) is not divisible by micro batch size ({})'
            ' times data parallel size ({})'.format(args.global_batch_size, args.micro_batch_size,
                                                     args.data_parallel_size),
            entry_stack + tracebacks.INIT_BATCH)
    args.num_micro_batches = args.global_batch_size // micro_dp
    rt.print0('setting number of micro-batches to constant {}'.format(args.num_micro_batches))
    build_tokenizer(rt, args, entry_stack + tracebacks.INIT_TOKENIZER)
    # set_global_variables (megatron/training/global_vars.py) goes on with _set_tensorboard_writer.
    rt.tensorboard = tensorboard.open_writer(args, rt.dist)

    # finish_mpu_init / _compile_dependencies
    rt.print0('> initializing torch distributed ...')
    # init_process_group: the rank processes form a gang at the store (mlemu/gang.py); its timeout is
    # Megatron's --distributed-timeout-minutes (default 10).
    minutes = getattr(args, 'distributed_timeout_minutes', None) or 10
    gang.init(rt.dist, env.rdzv_timeout_s(60 * minutes), entry_stack + tracebacks.INIT_DISTRIBUTED)
    _check_expert_groups(args, entry_stack + tracebacks.INIT_DISTRIBUTED[:2])
    rt.print0('> initialized tensor model parallel with size {}'.format(args.tensor_model_parallel_size))
    rt.print0('> initialized pipeline model parallel with size {}'.format(args.pipeline_model_parallel_size))
    rt.print0('> setting random seeds to {} ...'.format(args.seed))
    rt.print0('> compiling dataset index builder ...')
    rt.print0('>>> done with dataset index builder. Compilation time: {:.3f} seconds'.format(0.04))
    return rt


def _check_expert_groups(args, stack):
    """mpu.initialize_model_parallel's expert groups, once torch.distributed is up (a RuntimeError on every rank).

    core_r0.6.0/core_r0.8.0: ModelLink and MindSpeed-LLM call Megatron's with EP 1 and build the expert groups over the
    data × context parallel ranks (ModelLink d4feda79 modellink/core/parallel_state.py#L69-70; MindSpeed-LLM 1.0.0
    mindspeed_llm/core/parallel_state.py#L74-75; 2.1.0 #L294-295). core_v0.12.1 cuts an expert grid from the world
    (megatron/core/parallel_state.py#L694-702; expert-TP is tp unless --expert-tensor-parallel-size).
    """
    v = version.current()
    ep = getattr(args, 'expert_model_parallel_size', 1) or 1
    if ep <= 1:
        return
    call = [('megatron/training/initialize.py', 341 if v.dist_ckpt_core else 250, '_initialize_distributed',
             'mpu.initialize_model_parallel(')]
    tp, pp = args.tensor_model_parallel_size, args.pipeline_model_parallel_size
    if v.dist_ckpt_core:
        grid = (getattr(args, 'expert_tensor_parallel_size', None) or tp) * ep * pp
        if args.world_size % grid:
            tracebacks.die(stack + call + [('megatron/core/parallel_state.py', 701, 'initialize_model_parallel',
                                            'raise RuntimeError(')], 'RuntimeError',
                           f'decoder world_size ({args.world_size}) is not divisible by '
                           f'expert_tensor_model_pipeline_parallel size ({grid})')
        return
    dp_cp = args.data_parallel_size * (getattr(args, 'context_parallel_size', 1) or 1)
    if dp_cp % ep:
        where = {'modellink': 70, '1.0.0': 75}.get(v.name, 295)
        func = 'wrapper'
        tracebacks.die(stack + call + [('modellink/core/parallel_state.py', where, func, 'raise RuntimeError(')],
                       'RuntimeError',
                       f'data_parallel_size * context_parallel_size ({dp_cp}) is not divisible by '
                       'expert_model_parallel_size ')


def _validate_megatron(rt, args, defaults, stack):
    world = args.world_size
    args.tensor_model_parallel_size = min(args.tensor_model_parallel_size, world)
    _assert(world % args.tensor_model_parallel_size == 0,
            'world size ({}) is not divisible by tensor model parallel size ({})'.format(
                world, args.tensor_model_parallel_size), stack)
    args.pipeline_model_parallel_size = min(args.pipeline_model_parallel_size,
                                            world // args.tensor_model_parallel_size)
    args.transformer_pipeline_model_parallel_size = (
        args.pipeline_model_parallel_size - 1 if getattr(args, 'standalone_embedding_stage', False)
        else args.pipeline_model_parallel_size)
    cp = getattr(args, 'context_parallel_size', 1) or 1
    model_parallel = args.pipeline_model_parallel_size * args.tensor_model_parallel_size
    _assert(world % (model_parallel * cp) == 0,
            'world size ({}) is not divisible by tensor parallel size ({}) times '
            'pipeline parallel size ({}) times context parallel size ({})'.format(
                world, args.tensor_model_parallel_size, args.pipeline_model_parallel_size, cp), stack)
    args.data_parallel_size = world // (model_parallel * cp)
    rt.print0('using world size: {}, data-parallel size: {}, '
              'context-parallel size: {} '
              'tensor-model-parallel size: {}, '
              'pipeline-model-parallel size: {} '.format(
                  world, args.data_parallel_size, cp,
                  args.tensor_model_parallel_size, args.pipeline_model_parallel_size))

    for name in DELETED_ARGS:
        if hasattr(args, name):
            value = getattr(args, name)
            if name in ('checkpoint_activations',) and value:
                rt.print0('--checkpoint-activations is no longer valid, use --recompute-activations, '
                          'or, for more control, --recompute-granularity and --recompute-method.')
                sys.exit()
            if name == 'recompute_activations' and value:
                args.recompute_granularity = 'selective'
            delattr(args, name)

    for key, value in defaults.items():
        if getattr(args, key, None) is not None:
            rt.print0('WARNING: overriding default arguments for {key}:{v} \
                       with {key}:{v2}'.format(key=key, v=value, v2=getattr(args, key)))
        else:
            setattr(args, key, value)

    _assert(args.micro_batch_size is not None, '', stack)
    _assert(args.micro_batch_size > 0, '', stack)
    if args.global_batch_size is None:
        args.global_batch_size = args.micro_batch_size * args.data_parallel_size
        rt.print0('setting global batch size to {}'.format(args.global_batch_size))
    _assert(args.global_batch_size > 0, '', stack)

    if args.num_layers_per_virtual_pipeline_stage is not None:
        _assert(args.pipeline_model_parallel_size > 2,
                'pipeline-model-parallel size should be greater than 2 with interleaved schedule', stack)
        _assert(args.num_layers is not None and args.num_layers % args.transformer_pipeline_model_parallel_size == 0,
                'number of layers should be divisible by the pipeline parallel size', stack)
        per_stage = args.num_layers // args.transformer_pipeline_model_parallel_size
        _assert(per_stage % args.num_layers_per_virtual_pipeline_stage == 0,
                'number of layers per pipeline stage must be divisible number of layers per virtual pipeline stage',
                stack)
        args.virtual_pipeline_model_parallel_size = per_stage // args.num_layers_per_virtual_pipeline_stage
    else:
        args.virtual_pipeline_model_parallel_size = None
        args.overlap_p2p_comm = False
        rt.print0('WARNING: Setting args.overlap_p2p_comm to False since non-interleaved '
                  'schedule does not support overlapping p2p communication')

    if args.overlap_param_gather:
        _assert(args.use_distributed_optimizer, '--overlap-param-gather only supported with distributed optimizer',
                stack)

    args.params_dtype = DTYPE_NAMES['fp32']
    if args.fp16:
        _assert(not args.bf16, '', stack)
        args.params_dtype = DTYPE_NAMES['fp16']
        if not args.loss_scale:
            args.check_for_nan_in_loss_and_grad = False
            rt.print0('WARNING: Setting args.check_for_nan_in_loss_and_grad to False since '
                      'dynamic loss scaling is being used')
    if args.bf16:
        _assert(not args.fp16, '', stack)
        args.params_dtype = DTYPE_NAMES['bf16']
        if not args.accumulate_allreduce_grads_in_fp32:
            args.accumulate_allreduce_grads_in_fp32 = True
            rt.print0('accumulate and all-reduce gradients in fp32 for bfloat16 data type.')
    rt.print0('using {} for parameters ...'.format(args.params_dtype))

    if args.dataloader_type is None:
        args.dataloader_type = 'single'
    args.consumed_train_samples = 0
    args.consumed_valid_samples = 0
    args.variable_seq_lengths = False  # ModelLink restores the user's value right after (see below)

    if args.train_iters:
        _assert(args.train_samples is None, 'expected iteration-based training', stack)
        if args.lr_warmup_fraction is not None:
            _assert(args.lr_warmup_iters == 0, 'can only specify one of lr-warmup-fraction and lr-warmup-iters', stack)
    if args.train_samples:
        _assert(args.train_iters is None, 'expected sample-based training', stack)

    if args.num_layers is not None:
        _assert(args.encoder_num_layers is None, 'cannot have both num-layers and encoder-num-layers specified', stack)
        args.encoder_num_layers = args.num_layers
    else:
        _assert(args.encoder_num_layers is not None, 'either num-layers or encoder-num-layers should be specified',
                stack)
        args.num_layers = args.encoder_num_layers

    for required in ('num_layers', 'hidden_size', 'num_attention_heads', 'max_position_embeddings'):
        _assert(getattr(args, required) is not None, '{} argument is None'.format(required), stack)

    if args.ffn_hidden_size is None:
        if args.swiglu:
            args.ffn_hidden_size = int((4 * args.hidden_size * 2 / 3) / 64) * 64
        else:
            args.ffn_hidden_size = 4 * args.hidden_size
    if args.kv_channels is None:
        _assert(args.hidden_size % args.num_attention_heads == 0, '', stack)
        args.kv_channels = args.hidden_size // args.num_attention_heads
    if args.seq_length is not None:
        _assert(args.encoder_seq_length is None, '', stack)
        args.encoder_seq_length = args.seq_length
    else:
        _assert(args.encoder_seq_length is not None, '', stack)
        args.seq_length = args.encoder_seq_length
    if args.seq_length is not None:
        _assert(args.max_position_embeddings >= args.seq_length, '', stack)
    if args.lr is not None:
        _assert(args.min_lr <= args.lr, '', stack)
    if args.save is not None:
        _assert(args.save_interval is not None, '', stack)


def _validate_modellink(rt, args, stack):
    """The cheap checks of modellink/training/arguments.py validate_args_decorator."""
    args.use_mc2 = False
    cp = getattr(args, 'context_parallel_size', 1) or 1
    if cp > 1:
        args.use_flash_attn = True
        rt.print0(f'[INFO] Setting args.use_flash_attn={args.use_flash_attn} since context parallel is enabled.')
        if not args.use_mcore_models:
            tracebacks.die(stack, 'AssertionError', 'Context parallel is only supported in Mcore.')
        algo = getattr(args, 'context_parallel_algo', 'ulysses_cp_algo')
        if algo == 'ulysses_cp_algo':
            _assert(args.seq_length % cp == 0, 'sequence length must be divisible by context_parallel_size', stack)
            _assert(args.num_attention_heads % (cp * args.tensor_model_parallel_size) == 0,
                    'num_attention_heads must be divisible by ulysses_size * tensor_model_parallel_size', stack)
        elif algo == 'megatron_cp_algo':
            _assert(args.seq_length % (2 * cp) == 0, 'sequence length must be divisible by 2 * context_parallel_size',
                    stack)
    elif getattr(args, 'kv_head_repeat_before_uly_alltoall', False):
        args.kv_head_repeat_before_uly_alltoall = False
        rt.print0('When context_parallel is not activated, kv_head_repeat_before_uly_alltoall would be set to '
                  'False for reducing memory usage.')
    if cp > 1 and args.variable_seq_lengths:
        tracebacks.die(stack, 'AssertionError', 'Context parallelism is forbidden when use variable seq lengths.')
    if args.num_layer_list:
        if len(args.num_layer_list.split(',')) != args.pipeline_model_parallel_size:
            tracebacks.die(stack, 'ValueError', 'len(args.num_layer_list) != args.pipeline_model_parallel_size')
        if not args.pipeline_model_parallel_size > 1:
            tracebacks.die(stack, 'ValueError', 'Dynamic pipeline model should work with pipeline parallel.')
        if args.num_layers_per_virtual_pipeline_stage:
            tracebacks.die(stack, 'ValueError',
                           'Dynamic pipeline model and virtual pipeline cannot be enabled at the same time.')
        total = sum(int(x) for x in args.num_layer_list.split(','))
        if total != args.num_layers:
            tracebacks.die(stack, 'ValueError', f'Incorrect num_layer_list config since its sum({total} is unequal '
                                                f'to total num layers({args.num_layers}).')
    # modellink/training/arguments.py _validate_high_availability (l. 612-616), called by
    # validate_args_decorator before the MoE checks. (MindSpeed-LLM's own: mlemu/msl.py.)
    ml = not version.current().is_msl
    if ml and getattr(args, 'enable_optimizer_state_local_copy', False) and not getattr(args, 'enable_high_availability', False):
        tracebacks.die(stack, 'AssertionError', 'switch of the high availability feature is unsupported')
    if ml and getattr(args, 'enable_high_availability', False) and getattr(args, 'use_dist_ckpt', False):
        tracebacks.die(stack, 'AssertionError', 'switch of the high availability feature is unsupported')
    if args.num_experts is not None and not args.use_mcore_models:
        tracebacks.die(stack, 'AssertionError', 'MOE is not supported in legacy model. Please activate '
                                                '`--use-mcore-models` to enable moe features.')
    # modellink/training/arguments.py _validate_optimizer (l. 778-782), the decorator's last check.
    if getattr(args, 'reuse_fp32_param', False) and not args.bf16:
        tracebacks.die(stack, 'AssertionError', '--reuse-fp32-param only support for `bf16`')
    if ml and getattr(args, 'reuse_fp32_param', False) and getattr(args, 'enable_high_availability', False):
        tracebacks.die(stack, 'AssertionError', 'reuse-fp32-param and enable-high-availability do not support enabling together.')
    # _add_dummy_args
    for name, value in (('reduce_recompute_for_last_chunk', False), ('adaptive_recompute_device_swap', False),
                        ('adaptive_recompute_device_size', -1), ('adaptive_recompute_profiling_step', 10),
                        ('moe_tp_extend_ep', False), ('recompute_in_bubble', False), ('recompute_in_advance', False),
                        ('moe_alltoall_overlap_comm', False), ('moe_allgather_overlap_comm', False),
                        ('noop_layers', None)):
        setattr(args, name, value)


def print_args(rt, title, args):
    """modellink.training.utils.print_args: rank 0 prints every attribute, sorted case-insensitively."""
    if not rt.dist.hosts_rank0:
        return
    lines = [f'------------------------ {title} ------------------------']
    str_list = []
    for arg in vars(args):
        dots = '.' * (48 - len(arg))
        str_list.append('  {} {} {}'.format(arg, dots, getattr(args, arg)))
    lines.extend(sorted(str_list, key=lambda x: x.lower()))
    lines.append(f'-------------------- end of {title} ---------------------')
    print('\n'.join(lines), flush=True)


def build_tokenizer(rt, args, stack):
    """Megatron/ModelLink build_tokenizer: checks the tokenizer exists and pads the vocab."""
    ttype = args.tokenizer_type
    path = None
    if ttype == 'PretrainedFromHF':
        rt.print0(' > building PretrainFromHF tokenizer. Vocab file is un-used, loading tokenizer from pre-trained model')
        if args.tokenizer_name_or_path is None:
            tracebacks.die(stack + [('modellink/training/tokenizer/tokenizer.py', 34, 'build_tokenizer', None)],
                           'ValueError', 'Missing tokenizer_name_or_path while building PretrainFromHF tokenizer.')
        path = args.tokenizer_name_or_path
    else:
        rt.print0('> building {} tokenizer ...'.format(ttype))
        if ttype in ('Llama2Tokenizer', 'SentencePieceTokenizer', 'GPTSentencePieceTokenizer'):
            _assert(args.tokenizer_model is not None, '', stack + [
                ('megatron/training/tokenizer/tokenizer.py', 46, 'build_tokenizer', 'assert args.tokenizer_model is not None')])
            path = args.tokenizer_model
        elif ttype in ('GPT2BPETokenizer', 'BertWordPieceLowerCase', 'BertWordPieceCase'):
            _assert(args.vocab_file is not None, '', stack + [
                ('megatron/training/tokenizer/tokenizer.py', 33, 'build_tokenizer', 'assert args.vocab_file is not None')])
            path = args.vocab_file
        elif ttype == 'NullTokenizer':
            _assert(args.vocab_size is not None, '', stack)
        else:
            tracebacks.die(stack + [('megatron/training/tokenizer/tokenizer.py', 58, 'build_tokenizer', None)],
                           'NotImplementedError', '{} tokenizer is not implemented.'.format(ttype))
    # A missing tokenizer is reported as the FileNotFoundError of opening it.
    check_tokenizer_path(path, stack)
    vocab = args.vocab_size if getattr(args, 'vocab_size', None) else tok.vocab_size_of(path)
    if getattr(args, 'padded_vocab_size', None) is None:
        after = tok.padded_vocab_size(vocab, args.make_vocab_size_divisible_by, args.tensor_model_parallel_size)
        rt.print0(' > padded vocab (size: {}) with {} dummy tokens (new size: {})'.format(vocab, after - vocab, after))
        args.padded_vocab_size = after
    return tok.HashTokenizer(vocab)


def check_tokenizer_path(path, stack):
    if path is not None and not os.path.exists(path):
        tracebacks.die(stack + [('site:transformers/utils/hub.py', 398, 'cached_file', 'resolved_file = hf_hub_download(')],
                       'FileNotFoundError', tracebacks.errno_enoent(path))
