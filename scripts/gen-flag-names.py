"""Regenerate frameworks/modellink/flag-names.json from reference/modellink/flags.json.

linkflow checks every flag it emits (and every flag a stage's `args` sets) against
this list at run time, so it must ship with the project; test/commands.test.ts proves the
copy still equals the reference.
"""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, 'reference', 'modellink', 'flags.json')
flags = json.load(open(src))
out = {}
for entry, records in flags['entrypoints'].items():
    names = set(r['flag'] for r in records)
    out[entry] = sorted(names)
# convert_ckpt.py: loader/saver plugins add flags for particular selections; keep their union.
for combo in flags.get('convert_ckpt_plugin_combinations', {}).values():
    out['convert_ckpt.py'] = sorted(set(out['convert_ckpt.py']) | set(r['flag'] for r in combo['flags']))
json.dump(out, open(os.path.join(ROOT, 'frameworks', 'modellink', 'flag-names.json'), 'w'), indent=0, sort_keys=True)
print({k: len(v) for k, v in out.items()})
