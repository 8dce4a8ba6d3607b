"""Argument parsing: real argparse parsers rebuilt from modellink_flags.json.

Using argparse itself (rather than a hand-written check) means unknown flags, bad types and
bad choices fail exactly as they do in ModelLink: a `usage: ...` block and
`<prog>: error: ...` on stderr, exit status 2.
"""
import argparse
import json
import os

from . import EMULATOR_ROOT

FLAGS_FILE = os.path.join(EMULATOR_ROOT, 'modellink_flags.json')

# "type" values in the flag reference -> callables. "bool" and "json.loads" are what ModelLink
# literally passes to add_argument (so "--w-pack False" is True there too).
TYPES = {'int': int, 'float': float, 'str': str, 'bool': bool, 'json.loads': json.loads}

_SPEC_CACHE = None


def flag_spec():
    global _SPEC_CACHE
    if _SPEC_CACHE is None:
        with open(FLAGS_FILE, encoding='utf-8') as f:
            _SPEC_CACHE = json.load(f)['entrypoints']
    return _SPEC_CACHE


def add_flags(parser, records):
    for record in records:
        kwargs = {}
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


def new_parser(entrypoint):
    options = flag_spec()[entrypoint]['parser']
    kwargs = {'prog': entrypoint, 'allow_abbrev': options.get('allow_abbrev', True)}
    if options.get('description'):
        kwargs['description'] = options['description']
    if options.get('conflict_handler'):
        kwargs['conflict_handler'] = options['conflict_handler']
    return argparse.ArgumentParser(**kwargs)


def build_parser(entrypoint):
    parser = new_parser(entrypoint)
    add_flags(parser, flag_spec()[entrypoint]['flags'])
    return parser


def parse(entrypoint, argv=None):
    """Parses argv (default sys.argv[1:]); on error argparse prints usage and exits 2."""
    return build_parser(entrypoint).parse_args(argv)


def convert_plugin_flags(plugin):
    return flag_spec()['convert_ckpt.py']['plugins'].get(plugin)
