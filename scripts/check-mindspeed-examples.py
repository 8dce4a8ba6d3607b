"""Cross-check reference/mindspeed-llm/examples/<version>.json against real bash.

Each example script is run by bash in a scratch directory with stub launchers (torchrun, python, python3) first on
PATH: a stub records the argv it was given and exits, so nothing is trained and nothing outside the scratch directory
is touched (the scripts' other commands are mkdir, echo and tee). The recorded argv is compared with the file's
`argv`; placeholder assignments in the script are pinned to the literal text ${NAME} first, as the file keeps them. Prints the agreement per
version and the scripts that differ; `--write` stores the result in each file's `bash_check`.

Usage: python3 scripts/check-mindspeed-examples.py [MIRROR_GIT_DIR] [--write] [VERSION...]
"""
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUB = '''#!/usr/bin/env python3
import json, os, sys
with open(os.environ['ARGV_OUT'], 'a') as f:
    f.write(json.dumps([os.path.basename(sys.argv[0])] + sys.argv[1:]) + '\\n')
'''


def pin_placeholders(text: str, rec: dict) -> str:
    """As for modellink/examples.json: each placeholder's assignment (NAME="your data path") is pinned to the literal
    text ${NAME}, so bash passes what the file records (a free-text value would be split into words)."""
    for name, p in rec['placeholders'].items():
        value = re.escape(p['script_value'])
        text = re.sub(rf'(^|\s){name}=(["\']?){value}\2(?=\s|$)', lambda m, n=name: f"{m.group(1)}{n}='${{{n}}}'", text,
                      flags=re.M)
    return text


def bash_argv(git_dir: str, commit: str, rec: dict, scratch: str) -> list[str] | None:
    script = rec['script']
    text = subprocess.run(['git', '--git-dir', git_dir, 'show', f'{commit}:{script}'], check=True, capture_output=True,
                          text=True).stdout
    text = pin_placeholders(text, rec)
    work = tempfile.mkdtemp(dir=scratch)
    path = os.path.join(work, 'script.sh')
    with open(path, 'w') as f:
        f.write(text)
    out = os.path.join(work, 'argv.jsonl')
    env = {'PATH': os.path.join(scratch, 'bin') + ':/usr/bin:/bin', 'ARGV_OUT': out, 'HOME': work}
    subprocess.run(['bash', path], cwd=work, env=env, capture_output=True, timeout=60)
    if not os.path.exists(out):
        return None
    with open(out) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    return lines[-1] if lines else None


def main() -> None:
    argv = sys.argv[1:]
    write = '--write' in argv
    argv = [a for a in argv if a != '--write']
    git_dir = argv[0] if argv and '/' in argv[0] else '/work/.mirror/Ascend+MindSpeed-LLM/repo'
    # Default: every generated examples file (reference/mindspeed-llm/examples/<version>.json).
    examples_dir = os.path.join(ROOT, 'reference', 'mindspeed-llm', 'examples')
    versions = [a for a in argv if '/' not in a] or sorted(f[:-5] for f in os.listdir(examples_dir) if f.endswith('.json'))
    with tempfile.TemporaryDirectory(prefix='msl-bash-') as scratch:
        os.makedirs(os.path.join(scratch, 'bin'))
        for name in ('torchrun', 'python', 'python3'):
            p = os.path.join(scratch, 'bin', name)
            with open(p, 'w') as f:
                f.write(STUB.replace('/usr/bin/env python3', sys.executable))
            os.chmod(p, 0o755)
        for version in versions:
            file = os.path.join(ROOT, 'reference', 'mindspeed-llm', 'examples', f'{version}.json')
            with open(file) as f:
                doc = json.load(f)
            differ = []
            for rec in doc['scripts']:
                got = bash_argv(git_dir, doc['commit'], rec, scratch)
                want = rec['argv']
                if got is None and want == []:
                    continue  # no launch in the script (e.g. `accelerate launch -m lm_eval`), and bash ran none
                if got is None or not want or [os.path.basename(got[0])] + got[1:] != [os.path.basename(want[0])] + want[1:]:
                    differ.append(rec['script'])
            result = {'compared': len(doc['scripts']), 'agree': len(doc['scripts']) - len(differ), 'differ': differ,
                      'method': 'scripts/check-mindspeed-examples.py: bash with stub launchers, placeholder '
                                'assignments pinned to the literal text ${NAME}'}
            print(version, result['agree'], '/', result['compared'], 'differ:', differ[:8])
            if write:
                doc['bash_check'] = result
                with open(file, 'w') as f:
                    json.dump(doc, f, indent=1, ensure_ascii=False)
                    f.write('\n')


if __name__ == '__main__':
    main()
