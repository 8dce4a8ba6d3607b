"""Regenerate frameworks/mindspeed-llm/flag-names/<version>.json from reference/mindspeed-llm/flags/<version>.json.

The reference files (scripts/gen-mindspeed-flags.py, from the real parsers of each MindSpeed-LLM branch)
record every argparse action with its file and line; linkflow needs only what it decides from at run
time, and ships it compact: per entrypoint the flag names (convert_ckpt.py's loader/saver plugins'
flags included), the renamed flags (old name -> new name, MindSpeed-LLM's deprecated_args.py), the
choices of the flags linkflow checks values of, the evaluation and inference tasks, and the sources
(repository, ref, commit). test/frameworks.test.ts proves each copy still equals its reference.

Usage: python3 scripts/gen-mindspeed-flag-names.py [REFERENCE_DIR]
"""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHOICES = ['--stage', '--ckpt-format', '--dpo-loss-type', '--prompt-type', '--tokenizer-type', '--position-embedding-type']
# The converters' (v1 with its loader/saver plugins, v2): the same choices in both where a version has both.
CONVERT_CHOICES = ['--load-model-type', '--save-model-type']


def compact(ref):
    out = {'version': ref['version'], 'sources': {k: {'ref': v['ref'], 'commit': v['commit']} for k, v in ref['sources'].items()}}
    entrypoints, renamed, choices, defaults = {}, {}, {}, {}
    for entry, records in ref['entrypoints'].items():
        names = set(r['flag'] for r in records)
        if entry == 'convert_ckpt.py':
            for combo in ref.get('convert_ckpt_plugin_combinations', {}).values():
                names |= set(r['flag'] for r in combo['flags'])
        entrypoints[entry] = sorted(names)
        if entry in ('convert_ckpt.py', 'convert_ckpt_v2.py'):
            plugins = [r for c in ref.get('convert_ckpt_plugin_combinations', {}).values() for r in c['flags']] \
                if entry == 'convert_ckpt.py' else []
            for r in records + plugins:
                if r['flag'] in CONVERT_CHOICES and r.get('choices'):
                    choices[r['flag']] = sorted(set(choices.get(r['flag'], [])) | set(r['choices']))
        for r in records:
            if r.get('renamed_to'):
                renamed[r['flag']] = r['renamed_to']
            if r['flag'] in CHOICES and entry in ('pretrain_gpt.py', 'posttrain_gpt.py'):
                choices[r['flag']] = r['choices']
                defaults[r['flag']] = r['default']
            if entry == 'convert_ckpt_v2.py' and r['flag'] == '--model-type-hf':
                out['convertV2ModelTypes'] = r['choices']
    out['entrypoints'] = entrypoints
    out['renamed'] = dict(sorted(renamed.items()))
    out['choices'] = choices
    out['defaults'] = defaults
    out['tasks'] = {entry: t['tasks'] for entry, t in ref.get('task_names', {}).items()}
    if 'preprocess_handlers' in ref:
        out['handlers'] = ref['preprocess_handlers']['handlers']
    return out


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, 'reference', 'mindspeed-llm', 'flags')
    dst = os.path.join(ROOT, 'frameworks', 'mindspeed-llm', 'flag-names')
    os.makedirs(dst, exist_ok=True)
    for name in sorted(os.listdir(src)):
        if not name.endswith('.json'):
            continue
        out = compact(json.load(open(os.path.join(src, name))))
        with open(os.path.join(dst, name), 'w') as f:
            json.dump(out, f, indent=0, sort_keys=True)
            f.write('\n')
        print(name, {k: len(v) for k, v in out['entrypoints'].items()})


main()
