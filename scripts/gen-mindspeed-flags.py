"""Generate reference/mindspeed-llm/flags.json: every entrypoint's flags, per MindSpeed-LLM version.

Unlike reference/modellink/flags.json (read statically with ast), these parsers are assembled by
code (MindSpeed's features manager on core_v0.12.1 lines), so this script *runs* the real parser
construction of each version under import stubs and reads back the argparse actions:

  * the three source trees are exported from bare git mirrors (`fetch` tool: Ascend/MindSpeed-LLM,
    Ascend/MindSpeed, NVIDIA/Megatron-LM) at the refs in VERSIONS, laid out as the install guides say
    (Megatron's `megatron/` copied into the MindSpeed-LLM tree, MindSpeed importable);
  * each entrypoint runs in a child interpreter in which every module outside those three trees and
    the standard library (torch, torch_npu, transformers, numpy, ...) is a permissive stub, and
    ArgumentParser.parse_args/parse_known_args is intercepted: the parser the entrypoint is about to
    parse is dumped instead of parsed (for convert_ckpt.py, the parser after its loader/saver plugins
    added their flags, once per --load-model-type selection);
  * nothing from those trees is copied here; the output records the repository, ref and commit.

Usage: python3 scripts/gen-mindspeed-flags.py [MIRROR_ROOT] [OUT_DIR] [VERSION...]
  MIRROR_ROOT defaults to /work/.mirror (holding Ascend+MindSpeed-LLM/repo, Ascend+MindSpeed/repo,
  NVIDIA+Megatron-LM/repo); OUT_DIR defaults to reference/mindspeed-llm/flags/ (one <version>.json each;
  ModelLink itself stays in reference/modellink/flags.json).
"""

import json
import re
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ref per version, from each branch's install guide:
#   1.0.0  docs/USER_GUIDE.md#L63-67,#L101-102 (Megatron core_r0.6.0, MindSpeed 969686ff)
#   2.1.0  docs/pytorch/install_guide.md#L67,#L76-79 (MindSpeed 2c085cc9, Megatron core_r0.8.0)
#   2.2.0  docs/pytorch/install_guide.md#L139-154 (MindSpeed 2.2.0_core_r0.12.1, Megatron core_v0.12.1)
#   2.3.0  docs/pytorch/install_guide.md#L147-161 (MindSpeed 2.3.0_core_r0.12.1, Megatron core_v0.12.1)
#   26.0.0 docs/en/pytorch/training/install_guide.md#L168-185 (MindSpeed 26.0.0_core_r0.12.1, Megatron core_v0.12.1)
#   26.1.0 docs/en/pytorch/training/install_guide.md#L190-210 (MindSpeed 26.1.0_core_r0.12.1, Megatron core_v0.12.1)
VERSIONS = {
    '1.0.0': {'msl': '1.0.0', 'mindspeed': '969686ff', 'megatron': 'refs/heads/core_r0.6.0', 'megatron_name': 'core_r0.6.0',
              'style': 'v1'},
    '2.0.0': {'msl': '2.0.0', 'mindspeed': '2.0.0_core_r0.8.0', 'megatron': 'refs/heads/core_r0.8.0',
              'megatron_name': 'core_r0.8.0', 'style': 'v1'},
    '2.1.0': {'msl': '2.1.0', 'mindspeed': '2c085cc9', 'megatron': 'refs/heads/core_r0.8.0', 'megatron_name': 'core_r0.8.0',
              'style': 'v1'},
    '2.2.0': {'msl': '2.2.0', 'mindspeed': '2.2.0_core_r0.12.1', 'megatron': 'refs/tags/core_v0.12.1',
              'megatron_name': 'core_v0.12.1', 'style': 'v2'},
    '2.3.0': {'msl': '2.3.0', 'mindspeed': '2.3.0_core_r0.12.1', 'megatron': 'refs/tags/core_v0.12.1',
              'megatron_name': 'core_v0.12.1', 'style': 'v2'},
    '26.0.0': {'msl': '26.0.0', 'mindspeed': '26.0.0_core_r0.12.1', 'megatron': 'refs/tags/core_v0.12.1',
               'megatron_name': 'core_v0.12.1', 'style': 'v2'},
    '26.1.0': {'msl': '26.1.0', 'mindspeed': '26.1.0_core_r0.12.1', 'megatron': 'refs/tags/core_v0.12.1',
               'megatron_name': 'core_v0.12.1', 'style': 'v2'},
}

# linkflow's supported set (2.0.0 is generated only when named on the command line).
SUPPORTED = ['1.0.0', '2.1.0', '2.2.0', '2.3.0', '26.0.0', '26.1.0']

ENTRYPOINTS = ['pretrain_gpt.py', 'posttrain_gpt.py', 'convert_ckpt.py', 'convert_ckpt_v2.py', 'preprocess_data.py',
               'evaluation.py', 'inference.py']

# convert_ckpt.py (v1) picks its loader/saver plugin from the first parse; these are the selections the
# example scripts use (hf->mg, mg->mg, mg->hf all select loader_<load-model-type> + saver.py).
CONVERT_V1_SELECTIONS = {
    '--load-model-type hf': ['--load-model-type', 'hf', '--save-model-type', 'mg'],
    '--load-model-type mg': ['--load-model-type', 'mg', '--save-model-type', 'hf'],
}


def git(repo: str, *args: str) -> str:
    return subprocess.run(['git', '--git-dir', repo, *args], check=True, capture_output=True, text=True).stdout


def export(repo: str, ref: str, dest: str, paths: list[str]) -> None:
    os.makedirs(dest, exist_ok=True)
    archive = subprocess.run(['git', '--git-dir', repo, 'archive', ref, *paths], check=True, capture_output=True).stdout
    subprocess.run(['tar', '-x', '-C', dest], input=archive, check=True)


def commit_of(repo: str, ref: str) -> dict:
    sha, date = git(repo, 'log', '-1', '--format=%H %cI', ref, '--').split()
    return {'ref': ref.replace('refs/heads/', '').replace('refs/tags/', ''), 'commit': sha, 'commit_date': date}


# ---------------------------------------------------------------- child: runs inside one source tree

CHILD = r'''
import abc, argparse, re, importlib.abc, importlib.machinery, json, os, runpy, sys, types

TREE, ENTRY, EXTRA = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
OWN = {'megatron', 'mindspeed', 'mindspeed_llm'}


class StubMeta(abc.ABCMeta):
    def __getattr__(cls, name):
        if name.startswith('__') and name.endswith('__'):
            raise AttributeError(name)
        return Stub()


class Stub(metaclass=StubMeta):
    def __init__(self, *a, **k): pass
    def __getattr__(self, name):
        if name.startswith('__') and name.endswith('__'):
            raise AttributeError(name)
        return Stub()
    def __call__(self, *a, **k):
        if len(a) == 1 and not k and callable(a[0]):
            return a[0]
        return Stub()
    def __mro_entries__(self, bases): return (Stub,)
    def __getitem__(self, k): return Stub()
    def __iter__(self): return iter(())
    def __len__(self): return 0
    def __bool__(self): return False
    def __int__(self): return 0
    def __index__(self): return 0
    def __float__(self): return 0.0
    def __str__(self): return '0'
    def __eq__(self, o): return False
    def __hash__(self): return id(self)
    __lt__ = __le__ = __gt__ = __ge__ = lambda s, o: False
    def __or__(self, o): return Stub()
    __add__ = __sub__ = __mul__ = __truediv__ = __radd__ = __rmul__ = __ror__ = __and__ = __or__
    def __enter__(self): return self
    def __exit__(self, *a): return False


class StubModule(types.ModuleType):
    def __getattr__(self, name):
        if name == '__version__':
            return '0.0.0'
        if name == '__file__':
            return os.path.join(TREE, '__stub__', self.__name__.replace('.', '/') + '.py')
        if name.startswith('__') and name.endswith('__'):
            raise AttributeError(name)
        return Stub()


STUBBED_OWN = []  # names that an own module failed to define under the stubs (reported in the output)


class BrokenOwnModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith('__') and name.endswith('__'):
            raise AttributeError(name)
        STUBBED_OWN.append(self.__name__ + '.' + name)
        return Stub()


class StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        top = name.split('.')[0]
        if top in OWN or top in sys.stdlib_module_names or top in ('pretrain_gpt', 'posttrain_gpt', 'preprocess_data',
                                                                    'evaluation', 'inference', 'convert_ckpt', 'convert_ckpt_v2'):
            return None
        return importlib.machinery.ModuleSpec(name, self, is_package=True)
    def create_module(self, spec):
        m = StubModule(spec.name)
        m.__path__ = []
        return m
    def exec_module(self, module): pass


FAILED_OWN = []


class TolerantOwn(importlib.abc.MetaPathFinder):
    """Modules of our trees run for real; one that fails under the stubs is kept (what it defined so far),
    and names it lacks become stubs, recorded in STUBBED_OWN."""
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] not in OWN:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        real = spec.loader
        class L(importlib.abc.Loader):
            def create_module(self, s): return None
            def exec_module(self, module):
                try:
                    real.exec_module(module)
                except Exception as e:  # noqa: BLE001
                    FAILED_OWN.append(f'{name}: {type(e).__name__}: {str(e)[:160]}')
                    module.__class__ = BrokenOwnModule
        spec.loader = L()
        return spec


sys.meta_path[:0] = [TolerantOwn(), StubFinder()]
import importlib.metadata  # noqa: E402
# Megatron asks for installed versions (transformer-engine, ...) at import; none is installed here.
importlib.metadata.version = lambda name: '0.0.0'
sys.path[:0] = [TREE]
os.chdir(TREE)
# Skip mindspeed_llm/__init__.py: it runs the whole Megatron adaptation (patching), which the stubs
# cannot carry; MindSpeed-LLM's initialize_megatron applies parse_args_decorator itself anyway.
pkg = types.ModuleType('mindspeed_llm')
pkg.__path__ = [os.path.join(TREE, 'mindspeed_llm')]
sys.modules['mindspeed_llm'] = pkg
pkg.megatron_adaptor = Stub()


class Captured(BaseException):
    pass


CAPTURE = {'on': EXTRA.get('capture', 'parse_args'), 'parser': None}
orig_known = argparse.ArgumentParser.parse_known_args


def msl_decorate(parser):
    # What the adaptor patches in first on `import mindspeed_llm` (1.0.0-2.1.0 tasks/megatron_adaptor.py
    # MegatronAdaptation.register('megatron.training.arguments.parse_args', parse_args_decorator); 2.2.0+
    # features_manager/megatron_basic/megatron_basic.py pm.register_patch(same)): after Megatron's groups and the
    # entrypoint's extra_args_provider, MindSpeed-LLM's process_args (v1) / process_args_v2 (features) add theirs.
    # Applied here, on the parser Megatron's parse_args is about to parse, since the adaptor itself is not run.
    if EXTRA.get('megatron') and parser.description == 'Megatron-LM Arguments':
        from mindspeed_llm.training.arguments import extra_args_provider_decorator
        extra_args_provider_decorator(None)(parser)


def fake_parse_args(self, args=None, namespace=None):
    msl_decorate(self)
    CAPTURE['parser'] = self
    raise Captured()


def fake_known(self, args=None, namespace=None):
    if CAPTURE['on'] == 'parse_known_args':
        msl_decorate(self)
        CAPTURE['parser'] = self
        raise Captured()
    return orig_known(self, args, namespace)


argparse.ArgumentParser.parse_args = fake_parse_args
orig_add = argparse._ActionsContainer.add_argument


def add_argument(self, *a, **k):
    action = orig_add(self, *a, **k)
    f = sys._getframe(1)
    path = os.path.relpath(f.f_code.co_filename, TREE)
    action._src = (path, f.f_code.co_name, f.f_lineno)
    return action


argparse._ActionsContainer.add_argument = add_argument
argparse.ArgumentParser.parse_known_args = fake_known


def jsonable(v):
    if isinstance(v, str) and v.startswith(TREE):
        # A default computed from the checkout's location (e.g. --prompt-type-path): keep it relative to it.
        return '<mindspeed-llm>' + v[len(TREE):]
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    return repr(v)


ACTIONS = {argparse._StoreAction: None, argparse._StoreTrueAction: 'store_true', argparse._StoreFalseAction: 'store_false',
           argparse._StoreConstAction: 'store_const', argparse._AppendAction: 'append', argparse._CountAction: 'count',
           argparse._AppendConstAction: 'append_const'}


def dump(parser):
    out = []
    titles = {}
    for g in parser._action_groups:
        for a in g._group_actions:
            titles[id(a)] = g.title
    for a in parser._actions:
        if isinstance(a, argparse._HelpAction):
            continue
        longs = [o for o in a.option_strings if o.startswith('--')] or a.option_strings
        if not longs:
            continue
        t = a.type
        tname = None if t is None else getattr(t, '__name__', repr(t))
        act = ACTIONS.get(type(a), type(a).__name__)
        rec = {'flag': longs[0], 'action': act, 'type': tname, 'default': jsonable(a.default),
               'choices': jsonable(list(a.choices)) if a.choices is not None else None,
               'nargs': a.nargs if a.nargs is None or isinstance(a.nargs, (int, str)) else str(a.nargs),
               'dest': a.dest, 'group': titles.get(id(a))}
        src = getattr(a, '_src', None)
        if src:
            rec['defined_in'], rec['function'], rec['line'] = src
        if len(a.option_strings) > 1:
            rec['aliases'] = [o for o in a.option_strings if o != longs[0]]
        if a.required:
            rec['required'] = True
        m = re.search(r'please use (--[\w-]+) instead', a.help or '')
        if m:
            rec['renamed_to'] = m.group(1)
        if act == 'store_const':
            rec['const'] = jsonable(a.const)
        out.append(rec)
    return {'allow_abbrev': parser.allow_abbrev, 'conflict_handler': parser.conflict_handler, 'flags': out}


if EXTRA.get('megatron'):
    # Megatron asserts CUDA before it parses, so the stub torch says CUDA is there.
    import torch
    torch.cuda = sys.modules['torch.cuda'] = StubModule('torch.cuda')
    torch.cuda.__path__ = []
    torch.cuda.is_available = lambda: True
sys.argv = [ENTRY] + EXTRA.get('argv', [])
try:
    runpy.run_path(os.path.join(TREE, ENTRY), run_name='__main__')
except Captured:
    res = dump(CAPTURE['parser'])
    res['stubbed_own_names'] = sorted(set(STUBBED_OWN))
    res['own_modules_failed_under_stubs'] = FAILED_OWN
    print('@@RESULT@@' + json.dumps(res))
    sys.exit(0)
except SystemExit as e:
    print(f'[gen] {ENTRY} exited ({e.code}) before parsing', file=sys.stderr)
    sys.exit(3)
print(f'[gen] {ENTRY} never parsed its arguments', file=sys.stderr)
sys.exit(3)
'''


def run_child(tree: str, entry: str, extra: dict) -> dict:
    proc = subprocess.run([sys.executable, '-c', CHILD, tree, entry, json.dumps(extra)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, 'PYTHONDONTWRITEBYTECODE': '1'})
    for line in proc.stdout.splitlines():
        if line.startswith('@@RESULT@@'):
            return json.loads(line[len('@@RESULT@@'):])
    tail = '\n'.join((proc.stderr or '').splitlines()[-15:])
    raise RuntimeError(f'{entry} in {tree}: no parser captured (exit {proc.returncode})\n{tail}')


# ---------------------------------------------------------------- parent


def build_tree(mirrors: str, ver: str, spec: dict, base: str) -> tuple[str, dict]:
    msl = os.path.join(mirrors, 'Ascend+MindSpeed-LLM', 'repo')
    ms = os.path.join(mirrors, 'Ascend+MindSpeed', 'repo')
    mg = os.path.join(mirrors, 'NVIDIA+Megatron-LM', 'repo')
    tree = os.path.join(base, ver)
    export(msl, spec['msl'], tree, [])
    export(mg, spec['megatron'], tree, ['megatron'])
    export(ms, spec['mindspeed'], tree, ['mindspeed'])
    sources = {
        'mindspeed_llm': {'repository': 'github.com/Ascend/MindSpeed-LLM (upstream gitcode.com/Ascend/MindSpeed-LLM)',
                          **commit_of(msl, spec['msl'])},
        'megatron': {'repository': 'github.com/NVIDIA/Megatron-LM', **commit_of(mg, spec['megatron'])},
        'mindspeed': {'repository': 'github.com/Ascend/MindSpeed (upstream gitcode.com/Ascend/MindSpeed)',
                      **commit_of(ms, spec['mindspeed'])},
    }
    sources['megatron']['ref'] = spec['megatron_name']
    return tree, sources


def entry_flags(tree: str, entry: str) -> dict:
    if entry == 'convert_ckpt.py':
        base = run_child(tree, entry, {'capture': 'parse_known_args'})
        combos = {}
        required = ['--model-type', 'GPT', '--load-dir', 'x', '--save-dir', 'y']
        for name, argv in CONVERT_V1_SELECTIONS.items():
            combos[name] = run_child(tree, entry, {'argv': required + argv})
        return {**base, 'plugin_selections': combos}
    if entry == 'convert_ckpt_v2.py':
        return run_child(tree, entry, {'capture': 'parse_known_args'})
    return run_child(tree, entry, {'megatron': entry != 'preprocess_data.py'})


def task_names(tree: str) -> dict:
    """--task has no argparse choices on MindSpeed-LLM: evaluation.py dispatches on `'<name>' in args.task`
    (a list, so names match whole), inference on infer_base.task_factory's task_map keys."""
    import ast

    out = {}
    ev = os.path.join(tree, 'evaluation.py')
    names, lines = [], []
    for node in ast.walk(ast.parse(open(ev).read())):
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Constant) and isinstance(node.left.value, str) \
                and isinstance(node.ops[0], ast.In) and ast.unparse(node.comparators[0]) == 'args.task':
            names.append(node.left.value)
            lines.append(node.lineno)
    out['evaluation.py'] = {'tasks': names, 'source': 'evaluation.py', 'lines': lines}
    for path in ('mindspeed_llm/tasks/inference/infer_base.py', 'mindspeed_llm/tasks/inference/text_generation/infer_base.py'):
        full = os.path.join(tree, path)
        if not os.path.exists(full):
            continue
        for node in ast.walk(ast.parse(open(full).read())):
            if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == 'task_map' and isinstance(node.value, ast.Dict):
                out['inference.py'] = {'tasks': [k.value for k in node.value.keys], 'source': path, 'lines': [node.lineno]}
    return out


def preprocess_handlers(tree: str) -> dict:
    """preprocess_data.py's --handler-name is looked up among data_handler.py's classes (get_dataset_handler's
    getattr on the module), not argparse choices: the classes named *Handler, BaseDatasetHandler left out."""
    import ast

    path = 'mindspeed_llm/tasks/preprocess/data_handler.py'
    tree_ast = ast.parse(open(os.path.join(tree, path)).read())
    classes = [(n.name, n.lineno) for n in tree_ast.body if isinstance(n, ast.ClassDef) and n.name.endswith('Handler')
               and n.name != 'BaseDatasetHandler']
    return {'source': path, 'handlers': [c for c, _ in classes], 'lines': [line for _, line in classes]}


def unknown_args(tree: str, entry: str) -> str:
    """Megatron's parsers error on unknown flags; convert_ckpt_v2.py reads its own with parse_known_args and, from
    26.1.0 (convert_ckpt_v2.py#L132-134), raises ValueError when anything is left over."""
    if entry != 'convert_ckpt_v2.py':
        return 'error'
    src = open(os.path.join(tree, entry)).read()
    if re.search(r'if unknown:\s*\n\s*raise ValueError', src):
        return 'error (parse_known_args, then ValueError "Unrecognized argument" for any left over)'
    return 'ignored (parse_known_args)'


def version_document(ver: str, spec: dict, tree: str, sources: dict) -> dict:
    """One version, in reference/modellink/flags.json's shape: entrypoints -> [records], and for convert_ckpt.py
    the flags per plugin selection under convert_ckpt_plugin_combinations."""
    doc = {'version': ver, 'generator': 'scripts/gen-mindspeed-flags.py', 'sources': sources,
           'argument_style': {'v1': 'MindSpeed-LLM process_args (mindspeed_llm/training/arguments.py) after Megatron\'s groups',
                              'v2': 'process_args_v2: MindSpeedFeaturesManager.register_features_args over mindspeed_llm/'
                                    'features_manager FEATURES_LIST (MindSpeed core and MindSpeed-LLM features)'}[spec['style']],
           'parsers': {}, 'entrypoints': {}, 'missing_entrypoints': [], 'convert_ckpt_plugin_combinations': {},
           'task_names': task_names(tree), 'preprocess_handlers': preprocess_handlers(tree),
           'stubbed_while_generating': {}}
    for ep in ENTRYPOINTS:
        if not os.path.exists(os.path.join(tree, ep)):
            doc['missing_entrypoints'].append(ep)
            continue
        print(f'[gen] {ver} {ep}', file=sys.stderr)
        got = entry_flags(tree, ep)
        doc['parsers'][ep] = {'allow_abbrev': got['allow_abbrev'], 'conflict_handler': got['conflict_handler'],
                              'unknown_args': unknown_args(tree, ep)}
        doc['entrypoints'][ep] = got['flags']
        doc['stubbed_while_generating'][ep] = {'names': got['stubbed_own_names'],
                                               'modules_failed': got['own_modules_failed_under_stubs']}
        for sel, sub in got.get('plugin_selections', {}).items():
            doc['convert_ckpt_plugin_combinations'][sel] = {'loader_module': f"mindspeed_llm/tasks/checkpoint/loader_{sel.split()[-1]}.py",
                                                            'saver_module': 'mindspeed_llm/tasks/checkpoint/saver.py',
                                                            'flags': sub['flags']}
    doc['renamed_flags'] = sorted({(r['flag'], r['renamed_to']) for recs in doc['entrypoints'].values() for r in recs
                                   if r.get('renamed_to')})
    doc['renamed_flags'] = [{'old': o, 'new': n} for o, n in doc['renamed_flags']]
    doc['counts'] = {ep: len(v) for ep, v in doc['entrypoints'].items()}
    return doc


def main() -> None:
    mirrors = sys.argv[1] if len(sys.argv) > 1 else '/work/.mirror'
    out_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, 'reference', 'mindspeed-llm', 'flags')
    only = sys.argv[3:]
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix='msl-flags-') as base:
        for ver, spec in VERSIONS.items():
            if (only and ver not in only) or (not only and ver not in SUPPORTED):
                continue
            tree, sources = build_tree(mirrors, ver, spec, base)
            doc = version_document(ver, spec, tree, sources)
            with open(os.path.join(out_dir, f'{ver}.json'), 'w') as f:
                json.dump(doc, f, indent=1, ensure_ascii=False)
                f.write('\n')
            print(ver, doc['counts'], file=sys.stderr)


if __name__ == '__main__':
    main()
