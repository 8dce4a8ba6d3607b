#!/usr/bin/env python3
"""Generate emulator/versions/<version>.json from reference/mindspeed-llm/flags/<version>.json.

Usage:  python3 emulator/tools/gen_msl_flags.py [REFERENCE_DIR] [VERSION...]
        (default: reference/mindspeed-llm/flags of this repository, every version in it)

The emulator must be self-contained, so the argparse-relevant part of each MindSpeed-LLM version's parsers
(flag, aliases, action, type, nargs, choices, required, default, const, dest) is copied here and committed;
re-run after the reference changes. Entrypoints whose parser is identical to an earlier one's are stored as
{"same_as": <entrypoint>}. convert_ckpt.py keeps its base parser (what its first parse_known_args sees) and the
resolved parser of each --load-model-type selection (base + loader_<hf|mg>.py + saver.py).
"""
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_SOURCE = os.path.join(REPO, 'reference', 'mindspeed-llm', 'flags')
OUTPUT_DIR = os.path.join(REPO, 'emulator', 'versions')

KEPT = ['flag', 'aliases', 'action', 'type', 'nargs', 'choices', 'required', 'default', 'const', 'dest']
# Types the emulator's argparse can apply (mlemu/args.py TYPES); others are the source's own helper functions
# (a lambda mapping to an enum, moe_freq_type, parse_list_for_virtual_optimizer) and take the raw string here.
KNOWN_TYPES = {None, 'int', 'float', 'str', 'bool', 'loads'}


def slim(record):
    out = {}
    for key in KEPT:
        value = record.get(key)
        if value is None or (key == 'required' and not value):
            continue
        if key == 'nargs' and record.get('action') in ('store_true', 'store_false', 'store_const'):
            continue
        out[key] = value
    t = out.get('type')
    if t == 'loads':
        out['type'] = 'json.loads'
    elif t not in KNOWN_TYPES:
        out['type'] = 'str'
        # The source's converter maps strings to enum members, so the recorded choices are reprs.
        out.pop('choices', None)
    return out


def version_file(doc):
    eps = {}
    seen = {}
    for name, records in doc['entrypoints'].items():
        flags = [slim(r) for r in records]
        parser = dict(doc['parsers'][name])
        key = json.dumps([parser, flags], sort_keys=True)
        if key in seen:
            eps[name] = {'same_as': seen[key]}
            continue
        seen[key] = name
        eps[name] = {'parser': parser, 'flags': flags}
    if 'convert_ckpt.py' in eps:
        eps['convert_ckpt.py']['selections'] = {
            sel.split()[-1]: [slim(r) for r in combo['flags']] for sel, combo in doc['convert_ckpt_plugin_combinations'].items()}
    return {
        'generated_by': 'emulator/tools/gen_msl_flags.py',
        'version': doc['version'],
        'sources': {k: {'ref': v['ref'], 'commit': v['commit']} for k, v in doc['sources'].items()},
        'missing_entrypoints': doc['missing_entrypoints'],
        'task_names': {k: v['tasks'] for k, v in doc['task_names'].items()},
        'renamed_flags': doc['renamed_flags'],
        'entrypoints': eps,
    }


def main():
    source = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_SOURCE
    versions = sys.argv[2:] or sorted(f[:-5] for f in os.listdir(source) if f.endswith('.json'))
    os.makedirs(OUTPUT_DIR, exist_ok=True)
    for v in versions:
        with open(os.path.join(source, f'{v}.json'), encoding='utf-8') as f:
            doc = json.load(f)
        out = version_file(doc)
        with open(os.path.join(OUTPUT_DIR, f'mindspeed-llm-{v}.json'), 'w', encoding='utf-8') as f:
            json.dump(out, f, separators=(',', ':'))
            f.write('\n')
        print(v, {k: ('=' + e['same_as']) if 'same_as' in e else len(e['flags']) for k, e in out['entrypoints'].items()})


if __name__ == '__main__':
    main()
