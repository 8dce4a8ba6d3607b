"""Tokenizer stand-in: existence checks as ModelLink does them, and a deterministic word-hash tokenizer.

No real vocabulary is loaded. Vocab size comes from `config.json`/`tokenizer_config.json`
("vocab_size") next to the tokenizer if present, else 32000 (Llama-2's).
"""
import json
import os
import re
import zlib

DEFAULT_VOCAB_SIZE = 32000
BOS_ID, EOD_ID, PAD_ID = 1, 2, 0
FIRST_WORD_ID = 100  # ids below this are reserved for special tokens

_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def vocab_size_of(path):
    """Reads a vocab size from an HF-style tokenizer/model directory (or the directory of a file)."""
    if path is None:
        return DEFAULT_VOCAB_SIZE
    directory = path if os.path.isdir(path) else os.path.dirname(path)
    for name in ('config.json', 'tokenizer_config.json'):
        candidate = os.path.join(directory, name)
        try:
            with open(candidate, encoding='utf-8') as f:
                value = json.load(f).get('vocab_size')
            if isinstance(value, int) and value > FIRST_WORD_ID:
                return value
        except (OSError, ValueError, AttributeError):
            continue
    return DEFAULT_VOCAB_SIZE


class HashTokenizer:
    """Maps each word/punctuation mark to a stable id in [FIRST_WORD_ID, vocab_size)."""

    def __init__(self, vocab_size=DEFAULT_VOCAB_SIZE):
        self.vocab_size = vocab_size
        self.eod = EOD_ID
        self.pad_token_id = PAD_ID

    def tokenize(self, text):
        span = self.vocab_size - FIRST_WORD_ID
        return [FIRST_WORD_ID + zlib.crc32(w.encode('utf-8')) % span for w in _WORD.findall(text or '')]


def padded_vocab_size(orig, make_divisible_by, tp):
    """Megatron's _vocab_size_with_padding."""
    multiple = max(1, (make_divisible_by or 1) * max(1, tp))
    after = orig
    while after % multiple != 0:
        after += 1
    return after
