#!/usr/bin/env python3
"""Generate emulator/modellink_flags.json from the ModelLink flag reference (reference/modellink/flags.json).

Usage:  python3 emulator/tools/gen_flags.py [path/to/flags.json]
        (default: reference/modellink/flags.json of this repository)

The emulator must be self-contained, so the argparse-relevant part of the reference
(flag, action, type, nargs, choices, required, default, const, dest) is copied into
emulator/modellink_flags.json, which is committed. Re-run this after the reference changes.

convert_ckpt.py is special: ModelLink builds its parser at run time from a base set plus
the add_arguments() of the loader and saver plugins it picks (conflict_handler="resolve").
We therefore store the base flags and each plugin's flags separately, and check here that
composing them reproduces the four combinations the reference resolved.
"""
import json
import os
import sys

DEFAULT_SOURCE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                              'reference', 'modellink', 'flags.json')
HERE = os.path.dirname(os.path.abspath(__file__))
OUTPUT = os.path.join(os.path.dirname(HERE), 'modellink_flags.json')

# Entrypoints the emulator implements. trainer.py (AutoTrainer) has pretrain_gpt.py's parser (flags.json
# parser_composition): stored as {"same_as": "pretrain_gpt.py"} after checking the two lists are equal.
ENTRYPOINTS = ['pretrain_gpt.py', 'evaluation.py', 'inference.py', 'preprocess_data.py']

# How each entrypoint builds its ArgumentParser (see flags.json "parser_composition").
PARSER_OPTIONS = {
    'pretrain_gpt.py': {'description': 'ModelLink Arguments', 'allow_abbrev': False},
    'evaluation.py': {'description': 'ModelLink Arguments', 'allow_abbrev': False},
    'inference.py': {'description': 'ModelLink Arguments', 'allow_abbrev': False},
    # preprocess_data.py uses a plain argparse.ArgumentParser(): abbreviations are allowed there.
    'preprocess_data.py': {'description': None, 'allow_abbrev': True},
    'convert_ckpt.py': {'description': 'Megatron Checkpoint Utility Arguments', 'allow_abbrev': False,
                        'conflict_handler': 'resolve'},
}

KEPT_FIELDS = ['flag', 'action', 'type', 'nargs', 'choices', 'required', 'default', 'const', 'dest']
KNOWN_TYPES = {None, 'int', 'float', 'str', 'bool', 'json.loads'}


def slim(record):
    out = {}
    for key in KEPT_FIELDS:
        if key not in record:
            continue
        value = record[key]
        if key in ('action', 'type', 'nargs', 'choices', 'dest', 'const') and value is None:
            continue
        if key == 'required' and not value:
            continue
        out[key] = value
    if out.get('type') not in KNOWN_TYPES:
        raise SystemExit(f"unsupported type {out.get('type')!r} for {record['flag']}")
    return out


def compose_convert(base, plugins, loader, saver):
    """Replays conflict_handler="resolve": a redefinition removes the old one and is appended."""
    ordered = {}
    for group in (base, plugins[loader], plugins[saver]):
        for record in group:
            ordered.pop(record['flag'], None)
            ordered[record['flag']] = record
    return list(ordered.values())


def main():
    source = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_SOURCE
    with open(source, encoding='utf-8') as f:
        ref = json.load(f)

    out = {
        'generated_by': 'emulator/tools/gen_flags.py',
        'source': {
            'modellink_commit': ref.get('modellink_commit'),
            'modellink_commit_date': ref.get('modellink_commit_date'),
            'megatron_source': ref.get('megatron_source'),
        },
        'entrypoints': {},
    }
    for name in ENTRYPOINTS:
        out['entrypoints'][name] = {
            'parser': PARSER_OPTIONS[name],
            'flags': [slim(r) for r in ref['entrypoints'][name]],
        }

    trainer = [slim(r) for r in ref['entrypoints']['trainer.py']]
    if trainer != out['entrypoints']['pretrain_gpt.py']['flags']:
        raise SystemExit('trainer.py flags differ from pretrain_gpt.py flags: store them separately')
    out['entrypoints']['trainer.py'] = {'same_as': 'pretrain_gpt.py'}

    base, plugins = [], {}
    for record in ref['entrypoints']['convert_ckpt.py']:
        plugin = record.get('plugin', 'base')
        if plugin == 'base':
            base.append(slim(record))
        else:
            plugins.setdefault(plugin, []).append(slim(record))
    out['entrypoints']['convert_ckpt.py'] = {
        'parser': PARSER_OPTIONS['convert_ckpt.py'],
        'flags': base,
        'plugins': plugins,
    }

    # Self-check against the combinations the reference resolved.
    combos = {
        '--load-model-type hf': ('loader_hf', 'saver'),
        '--load-model-type mg': ('loader_mg', 'saver'),
        '--loader megatron --saver megatron (defaults, no --load-model-type)': ('loader_megatron', 'saver_megatron'),
        '--loader llama2_hf --saver megatron': ('loader_llama2_hf', 'saver_megatron'),
    }
    for label, (loader, saver) in combos.items():
        expected = [slim(r) for r in ref['convert_ckpt_plugin_combinations'][label]['flags']]
        got = compose_convert(base, plugins, loader, saver)
        if sorted(json.dumps(x, sort_keys=True) for x in expected) != sorted(json.dumps(x, sort_keys=True) for x in got):
            raise SystemExit(f'composition mismatch for {label}')

    with open(OUTPUT, 'w', encoding='utf-8') as f:
        json.dump(out, f, indent=1)
        f.write('\n')
    counts = {k: len(v['flags']) for k, v in out['entrypoints'].items() if 'flags' in v}
    print(f'wrote {OUTPUT}: {counts}, convert plugins: {sorted(plugins)}')


if __name__ == '__main__':
    main()
