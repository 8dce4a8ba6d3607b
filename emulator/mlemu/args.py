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

from . import EMULATOR_ROOT

# One flag of modellink_flags.json: flag, and optionally action, type (a key of TYPES), nargs, choices, const,
# default, dest, required -- add_argument's keywords as ModelLink passes them.
FlagRecord = dict[str, Any]

FLAGS_FILE = os.path.join(EMULATOR_ROOT, 'modellink_flags.json')

# "type" values in the flag reference -> callables. "bool" and "json.loads" are what ModelLink
# literally passes to add_argument (so "--w-pack False" is True there too).
TYPES: dict[str, Callable[[str], Any]] = {'int': int, 'float': float, 'str': str, 'bool': bool, 'json.loads': json.loads}

_SPEC_CACHE: dict[str, Any] | None = None


def flag_spec() -> dict[str, Any]:
    """modellink_flags.json's entrypoints: {script: {parser: options, flags: [FlagRecord], plugins?: ...}}."""
    global _SPEC_CACHE
    if _SPEC_CACHE is None:
        with open(FLAGS_FILE, encoding='utf-8') as f:
            _SPEC_CACHE = json.load(f)['entrypoints']
    return _SPEC_CACHE


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
        parser.add_argument(record['flag'], **kwargs)


def new_parser(entrypoint: str) -> argparse.ArgumentParser:
    options = flag_spec()[entrypoint]['parser']
    kwargs: dict[str, Any] = {'prog': entrypoint, 'allow_abbrev': options.get('allow_abbrev', True)}
    if options.get('description'):
        kwargs['description'] = options['description']
    if options.get('conflict_handler'):
        kwargs['conflict_handler'] = options['conflict_handler']
    return argparse.ArgumentParser(**kwargs)


def build_parser(entrypoint: str) -> argparse.ArgumentParser:
    parser = new_parser(entrypoint)
    add_flags(parser, flag_spec()[entrypoint]['flags'])
    return parser


def parse(entrypoint: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parses argv (default sys.argv[1:]); on error argparse prints usage and exits 2."""
    return build_parser(entrypoint).parse_args(argv)


def convert_plugin_flags(plugin: str) -> list[FlagRecord] | None:
    return flag_spec()['convert_ckpt.py']['plugins'].get(plugin)
