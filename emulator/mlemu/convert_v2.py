"""convert_ckpt_v2.py (MindSpeed-LLM 2.2.0+): HF <-> Megatron conversion without the loader/saver plugins.

As 2.3.0 convert_ckpt_v2.py (26.0.0 the same, plus mamba2/longcat converters) does it:
  * its own `argparse.ArgumentParser()` (abbreviations allowed) read with parse_known_args (#L53): flags it does not
    define are ignored, not rejected (26.1.0 raises ValueError for them, #L132-134). There is no
    --model-type and no --use-mcore-models; --model-type-hf is a closed list per release (default qwen3);
  * only hf->mg and mg->hf (#L58-66); any other pair executes `raise "This conversion scheme is not supported"`,
    which Python reports as `TypeError: exceptions must derive from BaseException`;
  * hf->mg writes <save-dir>/iter_0000001/mp_rank_*/model_optim_rng.pt for the target TP/PP/EP and the tracker "1"
    (mindspeed_llm/tasks/checkpoint/convert.py#L57-64, generate_mg_weights_dir #L67-77);
  * mg->hf reads <load-dir>'s tracker (convert_mg2hf.py#L118-128) and writes model-<i>-of-<n>.safetensors and
    model.safetensors.index.json straight into --save-dir (#L1007-1018, #L1143), not into <save-dir>/mg2hf/ as v1.
"""
import argparse
import json
import logging
import os
import re
import sys

from . import args as argsmod
from . import checkpoint, env, faults, logs, tracebacks, version
from .convert import check_hf_dir, load_megatron, write_empty_safetensors

ENTRYPOINT = 'convert_ckpt_v2.py'
MAIN = [('convert_ckpt_v2.py', 70, '<module>', 'main()')]

log = logging.getLogger()


def parse(argv):
    spec = argsmod.flag_spec()[ENTRYPOINT]
    parser = argparse.ArgumentParser(prog=ENTRYPOINT)
    argsmod.add_flags(parser, spec['flags'])
    known, unknown = parser.parse_known_args(argv)
    if unknown and version.current().v2_rejects_unknown:
        # 26.1.0 convert_ckpt_v2.py#L132-134.
        tracebacks.die([('convert_ckpt_v2.py', 162, '<module>', 'main()'),
                        ('mindspeed_llm/training/utils.py', 1136, 'wrapper', 'return func(*args, **kwargs)'),
                        ('convert_ckpt_v2.py', 140, 'main', 'args = get_args()'),
                        ('convert_ckpt_v2.py', 134, 'get_args',
                         'raise ValueError(f"Unrecognized argument : {\' \'.join(unknown)}")')],
                       'ValueError', f"Unrecognized argument : {' '.join(unknown)}")
    return known


def main(argv=None):
    env.line_buffered_stdio()
    args = parse(sys.argv[1:] if argv is None else argv)
    logs.setup()
    faults.FaultInjector(ENTRYPOINT).check(0, args.save_dir, MAIN, training=False)
    log.info(f'Arguments: {args}')
    if args.load_model_type == 'hf' and args.save_model_type == 'mg':
        hf_to_mg(args)
    elif args.load_model_type == 'mg' and args.save_model_type == 'hf':
        mg_to_hf(args)
    else:
        if version.current().v2_rejects_unknown:
            # 26.1.0 convert_ckpt_v2.py#L152-153 raises a real Exception.
            tracebacks.die([('convert_ckpt_v2.py', 162, '<module>', 'main()'),
                            ('mindspeed_llm/training/utils.py', 1136, 'wrapper', 'return func(*args, **kwargs)'),
                            ('convert_ckpt_v2.py', 153, 'main', 'raise Exception("This conversion scheme is not supported")')],
                           'Exception', 'This conversion scheme is not supported')
        tracebacks.die(MAIN + [('convert_ckpt_v2.py', 66, 'main', 'raise "This conversion scheme is not supported"')],
                       'TypeError', 'exceptions must derive from BaseException')
    log.info('time-consuming： {:.2f}s'.format(0.01))
    return 0


def hf_to_mg(args):
    stack = MAIN + [('convert_ckpt_v2.py', 59, 'main', 'converter = Hf2MgConvert(args)'),
                    ('mindspeed_llm/tasks/checkpoint/convert_hf2mg.py', 40, '__init__',
                     'self.load_model = HuggingFaceConfig(...)')]
    cfg = check_hf_dir(args.load_dir, stack)
    tp, pp, ep = args.target_tensor_parallel_size, args.target_pipeline_parallel_size, args.target_expert_parallel_size
    layers = args.num_layers or cfg.get('num_hidden_layers', 32)
    heads = cfg.get('num_attention_heads', 32)
    groups = cfg.get('num_key_value_heads', heads)
    margs = argparse.Namespace(
        num_layers=layers, hidden_size=cfg.get('hidden_size', 4096), ffn_hidden_size=cfg.get('intermediate_size'),
        num_attention_heads=heads, num_query_groups=groups, group_query_attention=groups != heads,
        add_position_embedding=False, max_position_embeddings=cfg.get('max_position_embeddings', 4096),
        seq_length=cfg.get('max_position_embeddings', 4096), padded_vocab_size=cfg.get('vocab_size', 32000),
        tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp, expert_model_parallel_size=ep,
        num_layer_list=args.num_layer_list, use_mcore_models=True, consumed_train_samples=0, consumed_valid_samples=0,
        untie_embeddings_and_output_weights=not cfg.get('tie_word_embeddings', False), lora_target_modules=[])
    # The v2 saver writes only the model weights (no args, optimizer or RNG state): a later training run needs
    # --finetune or --no-load-optim/--no-load-rng to load it.
    keys = ['checkpoint_version', 'iteration', 'model']
    for hf_layer in range(layers):
        log.info(f'Converting the weights of layer {hf_layer}.')
    for tp_rank, pp_rank, ep_rank in checkpoint.layout(tp, pp, ep):
        path = checkpoint.shard_path(args.save_dir, 1, False, tp_rank, pp_rank, pp, ep_rank, ep)
        log.info(f'Saving to {os.path.basename(path)}')
        checkpoint.write_json(path, checkpoint.shard_document(1, tp_rank, pp_rank, ep_rank, margs, keys, False,
                                                              extra={'converted_by': ENTRYPOINT}))
    checkpoint.write_tracker(args.save_dir, 1)
    log.info('Done!')


def mg_to_hf(args):
    stack = MAIN + [('convert_ckpt_v2.py', 61, 'main', 'converter = Mg2HfConvert(args)'),
                    ('mindspeed_llm/tasks/checkpoint/convert_mg2hf.py', 44, '__init__',
                     'self.iter_path = self.get_iter_path(args.load_dir)')]
    tracker = checkpoint.tracker_path(args.load_dir)
    if not os.path.isfile(tracker):
        tracebacks.die(stack + [('mindspeed_llm/tasks/checkpoint/convert_mg2hf.py', 126, 'get_iter_path',
                                 'raise FileNotFoundError(f"can not find {latest_iter_file}")')],
                       'FileNotFoundError', f'can not find {tracker}')
    source = argparse.Namespace(load_dir=args.load_dir, save_dir=args.save_dir, lora_load=getattr(args, 'lora_load', None))
    md = load_megatron(source)
    os.makedirs(args.save_dir, exist_ok=True)
    # No config.json of its own: 2.3.0's Mg2HfConvert writes only the safetensors and their index; 26.0.0 copies the
    # HF side files (config, tokenizer, chat template) from --hf-cfg-dir first (convert_mg2hf.py#L64-66, #L195-217).
    if getattr(args, 'hf_cfg_dir', None):
        copy_hf_cfg(args.hf_cfg_dir, args.save_dir, stack)
    index = {'metadata': {}, 'weight_map': {}}
    n = max(1, md.num_layers)
    for layer in range(n):
        log.info(f'Converting the weights of layer {layer}')
        name = f'model-{layer + 1:05d}-of-{n:06d}.safetensors'
        log.info(f'Saving to {name}')
        write_empty_safetensors(os.path.join(args.save_dir, name),
                                {'format': 'pt', 'mlemu': f'converted from Megatron iteration {md.iteration:d}'})
        index['weight_map'][f'model.layers.{layer}.self_attn.q_proj.weight'] = name
    with open(os.path.join(args.save_dir, 'model.safetensors.index.json'), 'w', encoding='utf-8') as f:
        json.dump(index, f, indent=2)
    log.info('Done!')


HF_CFG_FILE = re.compile(r'^(?:.*\.json|.*\.model(?:\.[\w\d]+)?|.*\.jinja|merges\.txt|'
                         r'(?:modeling|configuration|tokenization)_[\w_]+\.py|sample_finetune\.py)$')


def copy_hf_cfg(cfg_dir, save_dir, stack):
    """26.0.0 Mg2HfConvert.copy_hf_cfg (convert_mg2hf.py#L195-217): every matching file, read then written with
    open(dst, 'wb') -- through a symbolic link already at dst, as Python's open does."""
    if not os.path.isdir(cfg_dir):
        tracebacks.die(stack + [('mindspeed_llm/tasks/checkpoint/convert_mg2hf.py', 197, 'copy_hf_cfg',
                                 'raise FileNotFoundError(f"Hugging Face directory not found: {self.hf_cfg_dir}")')],
                       'FileNotFoundError', f'Hugging Face directory not found: {cfg_dir}')
    for name in sorted(os.listdir(cfg_dir)):
        src, dst = os.path.join(cfg_dir, name), os.path.join(save_dir, name)
        if HF_CFG_FILE.match(name) and os.path.isfile(src):
            with open(src, 'rb') as f:
                data = f.read()
            with open(dst, 'wb') as f:
                f.write(data)
            log.info(f'Copied: {name} from {src} to {dst}')
