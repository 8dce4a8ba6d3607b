"""convert_ckpt.py: HF <-> Megatron checkpoint conversion and Megatron resharding.

Like ModelLink, the parser is built in two steps: the 9 base flags are parsed with
parse_known_args, the loader/saver plugins are chosen (--load-model-type hf|mg -> loader_<type> +
saver; otherwise loader_<--loader> + saver_<--saver>), their flags are added (conflict_handler
"resolve") and only then is the full command line parsed -- so a flag one plugin lacks is an
"unrecognized arguments" error, and e.g. --tokenizer-model is required with --load-model-type hf.

Outputs (formats.md (b)):
  hf -> mg   <save-dir>/iter_0000001/mp_rank_*/model_optim_rng.pt + tracker "1" (no optimizer state)
  mg -> mg   the same at the source checkpoint's iteration, in the target layout
  mg -> hf   <save-dir>/mg2hf/{config.json, generation_config.json, model.safetensors}
             (ModelLink reads the original HF config and weights from --save-dir for this)
"""
import json
import logging
import os
import shutil
import struct
import sys
import time
from types import SimpleNamespace

from . import args as argsmod
from . import checkpoint, env, faults, logs, tracebacks, version

ENTRYPOINT = 'convert_ckpt.py'
MODULE_ROOT = 'modellink.tasks.checkpoint'
PLUGINS = {'loader_hf', 'loader_llama2_hf', 'loader_megatron', 'loader_mg', 'saver', 'saver_megatron'}
NOT_PLUGINS = {'models'}
HF_WEIGHT_NAMES = ('pytorch_model.bin', 'model.safetensors', 'tf_model.h5', 'model.ckpt.index', 'flax_model.msgpack')
MAIN = [('convert_ckpt.py', 109, '<module>', 'main()')]
LOADER = MAIN + [('convert_ckpt.py', 101, 'main', 'loader.load_checkpoint(model_provider, queue, args)')]

# The plugins do `import logging as logger` and log through the root logger.
log = logging.getLogger()


def load_plugin(plugin_type, name):
    """convert_ckpt.py load_plugin: <type>_<name>, then <name>; prints which module it loaded."""
    v = version.current()
    # MindSpeed-LLM's mindspeed_llm/tasks/checkpoint/ modules per release: mlemu/version.py checkpoint_modules.
    plugins, not_plugins = v.checkpoint_modules if v.is_msl else (PLUGINS, NOT_PLUGINS)
    root = 'mindspeed_llm.tasks.checkpoint' if v.is_msl else MODULE_ROOT
    module = f'{plugin_type}_{name}' if name else plugin_type
    if module not in plugins | not_plugins:
        module = name
        if module not in plugins | not_plugins:
            sys.exit(f'Unable to load {plugin_type} plugin {name}. Exiting.')
    if module in not_plugins:
        sys.exit(f'{root}.{module} module is not a plugin. Exiting.')
    print(f'Loaded {root}.{module} as the {plugin_type}.', flush=True)
    return module


def parse(argv):
    parser = argsmod.new_parser(ENTRYPOINT)
    argsmod.add_flags(parser, argsmod.flag_spec()[ENTRYPOINT]['flags'])
    known, _ = parser.parse_known_args(argv)
    if version.current().is_msl and version.current().name != '1.0.0':
        # 2.3.0 convert_ckpt.py#L37-39 (26.0.0 #L40-42); 2.1.0 has no such warning but the same flow.
        if version.current().v1_eol_warning:
            logs.setup()
            log.warning('This version of weight conversion tool is approaching end-of-life. '
                        'It will be officially deprecated in the Q4 new release. '
                        'Please look forward to the Weight Conversion V2 version!')
    if known.load_model_type is None:
        loader = load_plugin('loader', known.loader)
        saver = load_plugin('saver', known.saver)
    else:
        loader = load_plugin('loader', known.load_model_type)
        saver = load_plugin('saver', '')
    selections = argsmod.flag_spec()[ENTRYPOINT].get('selections')
    if selections is not None:
        # MindSpeed-LLM: the resolved parser of this selection (base + loader_<type> + saver), as generated.
        if known.load_model_type not in selections:
            sys.stderr.write(f'[mlemu] convert_ckpt.py with --loader {known.loader} --saver {known.saver} is not modelled for '
                             f'MindSpeed-LLM {version.current().name} (only --load-model-type hf|mg)\n')
            sys.exit(3)
        argsmod.add_flags(parser, selections[known.load_model_type])
        return parser.parse_args(argv), loader, saver
    argsmod.add_flags(parser, argsmod.convert_plugin_flags(loader))
    argsmod.add_flags(parser, argsmod.convert_plugin_flags(saver))
    return parser.parse_args(argv), loader, saver


def main(argv=None):
    env.line_buffered_stdio()
    args, loader, saver = parse(sys.argv[1:] if argv is None else argv)
    logs.setup()
    faults.FaultInjector(ENTRYPOINT).check(0, args.save_dir, MAIN, training=False)

    print('Starting saver...', flush=True)
    print('Starting loader...', flush=True)
    if loader in ('loader_hf', 'loader_llama2_hf'):
        md = load_hf(args)
    else:
        md = load_megatron(args)
    transfer_and_save(args, md, saver)
    return 0


# --- loaders -------------------------------------------------------------------------------------------------

def _first(cfg, *names, default=None):
    for name in names:
        if cfg.get(name) is not None:
            return cfg[name]
    return default


def check_hf_dir(directory, stack):
    """HuggingfaceModel.initialize_args opens config.json; from_pretrained then needs weights."""
    config = os.path.join(directory, 'config.json')
    if not os.path.isfile(config):
        tracebacks.die(stack + [
            ('modellink/tasks/checkpoint/models.py', 341, '__init__', 'self.initialize_args()'),
            ('modellink/tasks/checkpoint/models.py', 351, 'initialize_args', 'with open(llama_args_path) as f:'),
        ], 'FileNotFoundError', tracebacks.errno_enoent(config))
    with open(config, encoding='utf-8') as f:
        cfg = json.load(f)
    has_weights = any(name.endswith(('.safetensors', '.bin', '.h5', '.msgpack', '.ckpt.index', '.pt'))
                      for name in os.listdir(directory))
    if not has_weights:
        # Real ModelLink fails next, in AutoModelForCausalLM.from_pretrained, with
        #   OSError: Error no file named pytorch_model.bin, model.safetensors, ... found in directory <dir>.
        # The emulator only warns: fixture models (a config.json and a tokenizer) are common and harmless.
        sys.stderr.write(f'[mlemu] WARNING: {directory} holds no model weights (*.safetensors, *.bin); real ModelLink '
                         f'would fail here with "OSError: Error no file named {", ".join(HF_WEIGHT_NAMES[:-1])} or '
                         f'{HF_WEIGHT_NAMES[-1]} found in directory {directory}."\n')
    return cfg


def load_hf(args):
    stack = LOADER + [('modellink/tasks/checkpoint/loader_hf.py', 414, 'load_checkpoint',
                       '_load_checkpoint(model_provider, queue, args)'),
                      ('modellink/tasks/checkpoint/loader_hf.py', 316, '_load_checkpoint',
                       'model_hf = get_huggingface_model(args)')]
    cfg = check_hf_dir(args.load_dir, stack)
    heads = _first(cfg, 'num_attention_heads', 'n_head', default=32)
    groups = _first(cfg, 'num_key_value_heads', 'multi_query_group_num', default=heads)
    hidden = _first(cfg, 'hidden_size', 'n_embd', default=4096)
    return SimpleNamespace(
        iteration=1, release=False, source_tp=None, source_pp=None,
        num_layers=_first(cfg, 'num_hidden_layers', 'n_layer', 'num_layers', default=32),
        hidden_size=hidden, num_attention_heads=heads,
        num_query_groups=groups, group_query_attention=groups != heads,
        ffn_hidden_size=_first(cfg, 'intermediate_size', 'ffn_hidden_size', default=4 * hidden),
        seq_length=_first(cfg, 'max_position_embeddings', 'seq_length', 'n_positions', default=4096),
        max_position_embeddings=_first(cfg, 'max_position_embeddings', 'seq_length', 'n_positions', default=4096),
        padded_vocab_size=_first(cfg, 'vocab_size', 'padded_vocab_size', default=32000),
        untie=not cfg.get('tie_word_embeddings', False), hf_config=cfg, consumed_train_samples=0,
        checkpoint_args=None, add_position_embedding=True)  # model_cfg.json sets it for every HF model


def load_megatron(args):
    stack = LOADER + [('modellink/tasks/checkpoint/loader_mg.py', 385, 'load_checkpoint',
                       '_load_checkpoint(model_provider, queue, args)'),
                      ('modellink/tasks/checkpoint/loader_mg.py', 312, '_load_checkpoint',
                       'model_mg.initialize_megatron_args(queue=queue, loader_megatron=True)')]
    source = _read_source(args.load_dir, stack)
    if args.lora_load:
        lora = _read_source(args.lora_load, stack)
        source.iteration = lora.iteration
    return source


def _read_source(directory, stack):
    tracker = checkpoint.read_tracker(directory)
    if tracker is None:
        print('Checkpoint not found to provide arguments, using provided arguments.', flush=True)
        tracebacks.die(stack + [('modellink/tasks/checkpoint/models.py', 655, 'initialize_megatron_args',
                                 'self.update_megatron_args_from_megatron_checkpoint(loader_megatron)'),
                                ('modellink/tasks/checkpoint/models.py', 765, 'update_megatron_args_from_megatron_checkpoint',
                                 'self.args, self.args_megatron_checkpoint = load_args_from_checkpoint(self.args)')],
                       'TypeError', 'cannot unpack non-iterable Namespace object')
    if tracker[0] == 'invalid':
        print('ERROR: Invalid metadata file {}. Exiting'.format(checkpoint.tracker_path(directory)), flush=True)
        sys.exit()
    iteration, release = tracker
    base = os.path.join(directory, checkpoint.iter_dir_name(iteration, release))
    shard_dirs = sorted(d for d in (os.listdir(base) if os.path.isdir(base) else []) if d.startswith('mp_rank_'))
    rank0 = next((os.path.join(base, d, checkpoint.MODEL_FILE) for d in shard_dirs
                  if d in ('mp_rank_00', 'mp_rank_00_000', 'mp_rank_00_000_000', 'mp_rank_00_000')), None)
    if rank0 is None or not os.path.isfile(rank0):
        print('could not load the checkpoint', flush=True)
        print(tracebacks.errno_enoent(rank0 or os.path.join(base, 'mp_rank_00', checkpoint.MODEL_FILE)), flush=True)
        sys.exit()
    state = checkpoint.read_state(rank0, iteration)
    margs = state.get('args') or {}
    tp = margs.get('tensor_model_parallel_size') or len({d[8:10] for d in shard_dirs}) or 1
    pp = margs.get('pipeline_model_parallel_size') or (
        len({d[11:14] for d in shard_dirs if len(d) >= 14}) or 1)
    ep = margs.get('expert_model_parallel_size') or 1
    for t, p, e in checkpoint.layout(tp, pp, ep):
        path = checkpoint.shard_path(directory, iteration, release, t, p, pp, e, ep)
        if not os.path.isfile(path):
            print('could not load the checkpoint', flush=True)
            print(tracebacks.errno_enoent(path), flush=True)
            sys.exit()
    heads = margs.get('num_attention_heads', 32)
    return SimpleNamespace(
        iteration=state.get('iteration', iteration) if not release else (state.get('iteration') or 0),
        release=release, source_tp=tp, source_pp=pp,
        num_layers=margs.get('num_layers', 32), hidden_size=margs.get('hidden_size', 4096),
        num_attention_heads=heads, num_query_groups=margs.get('num_query_groups') or heads,
        group_query_attention=bool(margs.get('group_query_attention')),
        ffn_hidden_size=margs.get('ffn_hidden_size') or 4 * margs.get('hidden_size', 4096),
        seq_length=margs.get('seq_length', 4096), max_position_embeddings=margs.get('max_position_embeddings', 4096),
        padded_vocab_size=margs.get('padded_vocab_size', 32000), untie=margs.get('untie_embeddings_and_output_weights', True),
        hf_config=None, consumed_train_samples=margs.get('consumed_train_samples', 0), checkpoint_args=margs,
        add_position_embedding=margs.get('add_position_embedding', True))


# --- transfer + savers ---------------------------------------------------------------------------------------

def layers_per_stage(args, md, pp):
    if getattr(args, 'num_layer_list', None):
        counts = [int(x) for x in args.num_layer_list.split(',')]
        if len(counts) != pp or sum(counts) != md.num_layers:
            tracebacks.die(MAIN, 'ValueError', f'Incorrect num_layer_list config since its sum({sum(counts)} is '
                                               f'unequal to total num layers({md.num_layers}).')
        return counts
    return [md.num_layers // pp] * pp


def transfer_and_save(args, md, saver):
    """The loader sends embeddings, each layer, final norm and output layer; the saver saves per PP stage."""
    if saver == 'saver_megatron':
        tp = args.target_tensor_parallel_size or md.source_tp
        pp = args.target_pipeline_parallel_size or md.source_pp
        if tp is None:
            print('loader did not provide a tensor parallel size and --target-tensor-parallel-size not provided on '
                  'command line. Default to 1.', flush=True)
            tp = 1
        if pp is None:
            print('loader did not provide a pipeline parallel size and --target-pipeline-parallel-size not provided '
                  'on command line. Default to 1.', flush=True)
            pp = 1
        save_kind = 'mg' if args.save_model_type == 'megatron' else (
            'hf' if str(args.save_model_type).startswith(('save_huggingface_', 'huggingface_')) else None)
        say = lambda m: print(m, flush=True)  # noqa: E731 -- saver_megatron uses print
    else:
        tp = args.target_tensor_parallel_size or 1
        pp = args.target_pipeline_parallel_size or 1
        save_kind = {'mg': 'mg', 'hf': 'hf'}.get(args.save_model_type)  # the default 'megatron' saves nothing
        say = log.info
    ep = getattr(args, 'target_expert_parallel_size', 1) or 1

    if save_kind == 'hf':
        hf_cfg = check_hf_dir(args.save_dir, MAIN + [('modellink/tasks/checkpoint/saver.py', 431, 'save_huggingface',
                                                       'model_hf = get_huggingface_model(args)')])
    if save_kind == 'mg' and md.num_attention_heads % tp != 0:
        tracebacks.die(MAIN + [('megatron/core/transformer/transformer_config.py', 272, '__post_init__', 'raise ValueError(')],
                       'ValueError', f'num_attention_heads ({md.num_attention_heads}) must be a multiple of '
                                     f'tensor_model_parallel_size ({tp}).')
    stage_layers = layers_per_stage(args, md, pp if save_kind == 'mg' else 1)
    pause = env.convert_time_ms() / 1000.0 / (md.num_layers + 3)

    def transfer(name):
        log.info(f'sending {name}')
        say(f'received {name}')
        time.sleep(pause)

    transfer('embeddings')
    layer = 0
    for pp_rank, count in enumerate(stage_layers):
        for _ in range(count):
            if layer >= md.num_layers:
                break
            transfer(f'transformer layer {layer}')
            layer += 1
        if pp_rank == len(stage_layers) - 1:
            while layer < md.num_layers:  # layers a stage split did not account for
                log.info(f'sending transformer layer {layer}')
                say(f'Unexpected message. Expecting "final norm" but got "transformer layer {layer}". Exiting saver.')
                sys.exit(1)
            transfer('final norm')
            if md.untie:
                transfer('output layer')
            print('Waiting for saver to complete...', flush=True)
        if save_kind == 'mg':
            for e in range(ep):
                for t in range(tp):
                    save_shard(args, md, t, pp_rank, pp, e, ep, tp, saver)
    if save_kind == 'hf':
        save_hf(args, md, hf_cfg, say)
    say('Done!')


def save_shard(args, md, tp_rank, pp_rank, pp, ep_rank, ep, tp, saver):
    """One Megatron save_checkpoint() call of the saver: prints, writes the shard, then the tracker."""
    iteration = md.iteration
    print('saving checkpoint at iteration {:7d} to {} in torch format'.format(iteration, args.save_dir), flush=True)
    margs = SimpleNamespace(
        num_layers=md.num_layers, hidden_size=md.hidden_size, ffn_hidden_size=md.ffn_hidden_size,
        num_attention_heads=md.num_attention_heads, num_query_groups=md.num_query_groups,
        group_query_attention=md.group_query_attention, add_position_embedding=md.add_position_embedding,
        max_position_embeddings=md.max_position_embeddings, seq_length=md.seq_length,
        padded_vocab_size=md.padded_vocab_size, tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp,
        expert_model_parallel_size=ep, num_layer_list=getattr(args, 'num_layer_list', None),
        use_mcore_models=bool(getattr(args, 'use_mcore_models', False)) and not getattr(args, 'save_to_legacy', False),
        consumed_train_samples=0, consumed_valid_samples=0,
        untie_embeddings_and_output_weights=md.untie,
        lora_target_modules=list(getattr(args, 'lora_target_modules', []) or []))
    keys = sorted(['args', 'checkpoint_version', 'iteration', 'model', 'num_floating_point_operations_so_far'])
    # formats.md: saver_megatron with --lora-target-modules keeps only the LoRA weights.
    lora_only = saver == 'saver_megatron' and bool(margs.lora_target_modules) and not getattr(args, 'lora_load', None)
    path = checkpoint.shard_path(args.save_dir, iteration, False, tp_rank, pp_rank, pp, ep_rank, ep)
    checkpoint.write_json(path, checkpoint.shard_document(iteration, tp_rank, pp_rank, ep_rank, margs, keys, lora_only,
                                                          extra={'converted_by': 'convert_ckpt.py'}))
    print('  successfully saved checkpoint {} iteration {:7d} to {}'.format(version.current().saved_word, iteration,
                                                                            args.save_dir), flush=True)
    checkpoint.write_tracker(args.save_dir, iteration)


def save_hf(args, md, hf_cfg, say):
    out = os.path.join(args.save_dir, 'mg2hf')
    say(f'save weight to {out}')
    os.makedirs(out, exist_ok=True)
    cfg = dict(hf_cfg)
    cfg.setdefault('architectures', ['LlamaForCausalLM'])
    cfg.update({'num_hidden_layers': md.num_layers, 'hidden_size': md.hidden_size,
                'num_attention_heads': md.num_attention_heads})
    with open(os.path.join(out, 'config.json'), 'w', encoding='utf-8') as f:
        json.dump(cfg, f, indent=2)
    generation = os.path.join(args.save_dir, 'generation_config.json')
    if os.path.isfile(generation):
        shutil.copyfile(generation, os.path.join(out, 'generation_config.json'))
    else:
        with open(os.path.join(out, 'generation_config.json'), 'w', encoding='utf-8') as f:
            json.dump({'_from_model_config': True, 'bos_token_id': 1, 'eos_token_id': 2}, f, indent=2)
    write_empty_safetensors(os.path.join(out, 'model.safetensors'),
                            {'format': 'pt', 'mlemu': f'converted from Megatron iteration {md.iteration:d}'})


def write_empty_safetensors(path, metadata):
    """A valid safetensors file with metadata and no tensors (8-byte header length + JSON header)."""
    header = json.dumps({'__metadata__': metadata}, separators=(',', ':')).encode('utf-8')
    header += b' ' * ((8 - len(header) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(header)))
        f.write(header)
