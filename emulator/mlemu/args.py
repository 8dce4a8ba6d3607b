"""Argument parsing: real argparse parsers rebuilt from modellink_flags.json.

Using argparse itself (rather than a hand-written check) means unknown flags, bad types and
bad choices fail exactly as they do in ModelLink: a `usage: ...` block and
`<prog>: error: ...` on stderr, exit status 2.
"""
import argparse
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

from . import EMULATOR_ROOT, version

# One flag of modellink_flags.json: flag, and optionally action, type (a key of TYPES), nargs, choices, const,
# default, dest, required -- add_argument's keywords as ModelLink passes them.
FlagRecord = dict[str, Any]

FLAGS_FILE = os.path.join(EMULATOR_ROOT, 'modellink_flags.json')

# "type" values in the flag reference -> callables. "bool" and "json.loads" are what ModelLink
# literally passes to add_argument (so "--w-pack False" is True there too).
TYPES: dict[str, Callable[[str], Any]] = {'int': int, 'float': float, 'str': str, 'bool': bool, 'json.loads': json.loads}

_SPEC_CACHE: dict[str, dict[str, Any]] = {}


def flag_spec() -> dict[str, Any]:
    """The selected version's entrypoints (mlemu/version.py): {script: {parser: options, flags: [FlagRecord],
    plugins?|selections?: ...}}: modellink_flags.json for ModelLink, versions/mindspeed-llm-<v>.json for a
    MindSpeed-LLM release (where an entrypoint identical to another is stored as {"same_as": other})."""
    path = version.current().flags_file
    if path not in _SPEC_CACHE:
        with open(path, encoding='utf-8') as f:
            eps = json.load(f)['entrypoints']
        _SPEC_CACHE[path] = {k: (eps[v['same_as']] if 'same_as' in v else v) for k, v in eps.items()}
    return _SPEC_CACHE[path]


def version_document() -> dict[str, Any]:
    """The whole flags file of a MindSpeed-LLM version (task names, renamed flags, sources)."""
    with open(version.current().flags_file, encoding='utf-8') as f:
        return json.load(f)


def add_flags(parser: argparse.ArgumentParser, records: Sequence[FlagRecord]) -> None:
    for record in records:
        kwargs: dict[str, Any] = {}
        action = record.get('action')
        if action:
            kwargs['action'] = action
        else:
            if 'type' in record:
                kwargs['type'] = TYPES[record['type']]
            if 'nargs' in record:
                kwargs['nargs'] = record['nargs']
            if 'choices' in record:
                kwargs['choices'] = record['choices']
            if 'const' in record:
                kwargs['const'] = record['const']
        if 'default' in record:
            kwargs['default'] = record['default']
        if 'dest' in record:
            kwargs['dest'] = record['dest']
        if record.get('required'):
            kwargs['required'] = True
        parser.add_argument(record['flag'], *record.get('aliases', []), **kwargs)


def new_parser(entrypoint: str) -> argparse.ArgumentParser:
    options = flag_spec()[entrypoint].get('parser', {})
    kwargs: dict[str, Any] = {'prog': entrypoint, 'allow_abbrev': options.get('allow_abbrev', True)}
    if options.get('description'):
        kwargs['description'] = options['description']
    if options.get('conflict_handler') and options['conflict_handler'] != 'error':
        kwargs['conflict_handler'] = options['conflict_handler']
    return argparse.ArgumentParser(**kwargs)


def build_parser(entrypoint: str) -> argparse.ArgumentParser:
    parser = new_parser(entrypoint)
    add_flags(parser, flag_spec()[entrypoint]['flags'])
    return parser


def parse(entrypoint: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parses argv (default sys.argv[1:]); on error argparse prints usage and exits 2."""
    args = build_parser(entrypoint).parse_args(argv)
    if version.current().is_msl:
        fill_modellink_defaults(entrypoint, args)
    return args


def fill_modellink_defaults(entrypoint: str, args: argparse.Namespace) -> None:
    """The shared emulator code reads ModelLink's argument names; a MindSpeed-LLM parser that lacks one gets
    ModelLink's default (the flag itself stays unknown to that version's parser)."""
    with open(FLAGS_FILE, encoding='utf-8') as f:
        ml = json.load(f)['entrypoints']
    spec = ml.get(entrypoint, ml['pretrain_gpt.py'])
    records = ml[spec['same_as']]['flags'] if 'same_as' in spec else spec['flags']
    for record in records:
        dest = record.get('dest') or record['flag'].lstrip('-').replace('-', '_')
        if not hasattr(args, dest):
            action = record.get('action')
            default = record.get('default', False if action == 'store_true' else True if action == 'store_false' else None)
            setattr(args, dest, default)


def convert_plugin_flags(plugin: str) -> list[FlagRecord] | None:
    return flag_spec()['convert_ckpt.py']['plugins'].get(plugin)
