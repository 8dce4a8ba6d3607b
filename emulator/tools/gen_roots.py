#!/usr/bin/env python3
"""Generate emulator/roots/mindspeed-llm-<version>/: one directory per MindSpeed-LLM release that a spec's
`modellink.root` can point at, holding exactly the entrypoint files that release has (a missing one fails as
python does: `can't open file`). Each file selects its version (mlemu/version.py) and runs the shared emulator.

Usage: python3 emulator/tools/gen_roots.py   (re-run after changing ENTRYPOINTS or the versions)
"""
import json
import os

EMULATOR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULES = {'pretrain_gpt.py': 'pretrain', 'posttrain_gpt.py': 'posttrain', 'convert_ckpt.py': 'convert',
           'convert_ckpt_v2.py': 'convert_v2', 'preprocess_data.py': 'preprocess', 'evaluation.py': 'evaluation',
           'inference.py': 'inference'}

TEMPLATE = '''#!/usr/bin/env python3
"""MindSpeed-LLM {version} stand-in for its {entry} (see emulator/README.md, Emulator roots)."""
import os
import sys

# Import mlemu from the emulator directory (two levels up), whatever the working directory.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from mlemu import version  # noqa: E402

version.select({version!r})

from mlemu.{module} import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
'''


def main():
    for name in sorted(os.listdir(os.path.join(EMULATOR, 'versions'))):
        with open(os.path.join(EMULATOR, 'versions', name), encoding='utf-8') as f:
            doc = json.load(f)
        v = doc['version']
        root = os.path.join(EMULATOR, 'roots', f'mindspeed-llm-{v}')
        os.makedirs(root, exist_ok=True)
        for entry in doc['entrypoints']:
            path = os.path.join(root, entry)
            with open(path, 'w', encoding='utf-8') as f:
                f.write(TEMPLATE.format(version=v, entry=entry, module=MODULES[entry]))
            os.chmod(path, 0o755)
        print(root, sorted(doc['entrypoints']))


if __name__ == '__main__':
    main()
