#!/usr/bin/env python3
"""Creates small inputs the emulated ModelLink entrypoints accept (for tests, the demo, benchmarks).

    python3 emulator/tools/make_fixtures.py hf-model DIR [--layers 4 --hidden 256 --heads 8 --vocab 32000]
        A fake HuggingFace model + tokenizer directory: config.json, tokenizer files, an (empty but
        valid) model.safetensors. Usable as --load-dir of convert_ckpt.py (hf -> mg), as the
        --save-dir of mg -> hf, and as --tokenizer-name-or-path / --tokenizer-model.
    python3 emulator/tools/make_fixtures.py pretrain-jsonl FILE [--docs 200]
    python3 emulator/tools/make_fixtures.py alpaca-jsonl FILE [--docs 50]
    python3 emulator/tools/make_fixtures.py eval DIR [--questions 4]
        DIR/mmlu/test/<subject>_test.csv, DIR/ceval/test/<subject>_test.csv, DIR/boolq/test/dev.jsonl,
        DIR/gsm8k/test/test.jsonl, DIR/human_eval/HumanEval.jsonl
"""
import argparse
import json
import os
import struct

WORDS = ('the model learns to predict the next token from a large corpus of text collected from books articles '
         'and code while the optimizer updates every parameter after each batch').split()


def hf_model(args):
    os.makedirs(args.dir, exist_ok=True)
    config = {
        'architectures': ['LlamaForCausalLM'], 'model_type': 'llama', 'torch_dtype': 'float16',
        'num_hidden_layers': args.layers, 'hidden_size': args.hidden, 'num_attention_heads': args.heads,
        'num_key_value_heads': args.heads, 'intermediate_size': args.ffn or int(args.hidden * 8 / 3 / 64 + 1) * 64,
        'max_position_embeddings': args.seq, 'vocab_size': args.vocab, 'rms_norm_eps': 1e-05,
        'tie_word_embeddings': False, 'bos_token_id': 1, 'eos_token_id': 2,
    }
    _json(os.path.join(args.dir, 'config.json'), config)
    _json(os.path.join(args.dir, 'generation_config.json'), {'bos_token_id': 1, 'eos_token_id': 2})
    _json(os.path.join(args.dir, 'tokenizer_config.json'),
          {'tokenizer_class': 'LlamaTokenizer', 'bos_token': '<s>', 'eos_token': '</s>', 'model_max_length': args.seq})
    _json(os.path.join(args.dir, 'special_tokens_map.json'), {'bos_token': '<s>', 'eos_token': '</s>', 'unk_token': '<unk>'})
    with open(os.path.join(args.dir, 'tokenizer.model'), 'wb') as f:
        f.write(b'\x0a\x0bfake sentencepiece model (mlemu fixture)')
    header = json.dumps({'__metadata__': {'format': 'pt', 'mlemu': 'fixture'}}, separators=(',', ':')).encode()
    header += b' ' * ((8 - len(header) % 8) % 8)
    with open(os.path.join(args.dir, 'model.safetensors'), 'wb') as f:
        f.write(struct.pack('<Q', len(header)) + header)
    print(args.dir)


def _sentence(i, n=14):
    return ' '.join(WORDS[(i * 7 + k) % len(WORDS)] for k in range(n)).capitalize() + '.'


def pretrain_jsonl(args):
    _parent(args.file)
    with open(args.file, 'w', encoding='utf-8') as f:
        for i in range(args.docs):
            f.write(json.dumps({'text': ' '.join(_sentence(i + k) for k in range(3))}) + '\n')
    print(args.file)


def alpaca_jsonl(args):
    _parent(args.file)
    with open(args.file, 'w', encoding='utf-8') as f:
        for i in range(args.docs):
            f.write(json.dumps({'instruction': f'What is {i} plus {i + 1}?', 'input': '',
                                'output': f'{i} plus {i + 1} is {2 * i + 1}.'}) + '\n')
    print(args.file)


def eval_sets(args):
    n = args.questions
    for task, subjects in (('mmlu', ['abstract_algebra', 'anatomy']), ('ceval', ['computer_network', 'logic'])):
        directory = os.path.join(args.dir, task, 'test')
        os.makedirs(directory, exist_ok=True)
        for subject in subjects:
            with open(os.path.join(directory, f'{subject}_test.csv'), 'w', encoding='utf-8') as f:
                if task == 'ceval':
                    f.write('id,question,A,B,C,D,answer,explanation\n')
                for q in range(n):
                    prefix = f'{q},' if task == 'ceval' else ''
                    suffix = ',' if task == 'ceval' else ''
                    f.write(f'{prefix}"Question {q} about {subject}?",one,two,three,four,{"ABCD"[q % 4]}{suffix}\n')
    for task, name, make in (
            ('boolq', 'dev.jsonl', lambda q: {'question': f'is statement {q} true', 'passage': _sentence(q),
                                              'answer': q % 2 == 0}),
            ('gsm8k', 'test.jsonl', lambda q: {'question': f'Tom has {q} apples and buys 3 more. How many?',
                                               'answer': f'{q} + 3 = {q + 3}\n#### {q + 3}'})):
        directory = os.path.join(args.dir, task, 'test')
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, name), 'w', encoding='utf-8') as f:
            for q in range(n):
                f.write(json.dumps(make(q)) + '\n')
    directory = os.path.join(args.dir, 'human_eval')
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, 'HumanEval.jsonl'), 'w', encoding='utf-8') as f:
        for q in range(n):
            f.write(json.dumps({'task_id': f'HumanEval/{q}', 'entry_point': f'f{q}',
                                'prompt': f'def f{q}(x):\n    """Return x + {q}."""\n',
                                'canonical_solution': f'    return x + {q}\n',
                                'test': f'def check(candidate):\n    assert candidate(1) == {1 + q}\n'}) + '\n')
    print(args.dir)


def _json(path, obj):
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(obj, f, indent=2)


def _parent(path):
    if os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='cmd', required=True)
    p = sub.add_parser('hf-model')
    p.add_argument('dir')
    p.add_argument('--layers', type=int, default=4)
    p.add_argument('--hidden', type=int, default=256)
    p.add_argument('--heads', type=int, default=8)
    p.add_argument('--ffn', type=int, default=None)
    p.add_argument('--seq', type=int, default=4096)
    p.add_argument('--vocab', type=int, default=32000)
    p.set_defaults(fn=hf_model)
    p = sub.add_parser('pretrain-jsonl')
    p.add_argument('file')
    p.add_argument('--docs', type=int, default=200)
    p.set_defaults(fn=pretrain_jsonl)
    p = sub.add_parser('alpaca-jsonl')
    p.add_argument('file')
    p.add_argument('--docs', type=int, default=50)
    p.set_defaults(fn=alpaca_jsonl)
    p = sub.add_parser('eval')
    p.add_argument('dir')
    p.add_argument('--questions', type=int, default=4)
    p.set_defaults(fn=eval_sets)
    args = parser.parse_args()
    args.fn(args)


if __name__ == '__main__':
    main()
