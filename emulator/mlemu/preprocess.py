"""preprocess_data.py: raw data -> Megatron indexed datasets (<prefix>_<key>_<level>.bin/.idx).

Follows ModelLink's preprocess_data.py / modellink/tasks/preprocess/data_handler.py: same checks,
same output names, same log lines (`INFO:<logger>:<message>` on stdout, see logs.py), real
MMIDIDX files. Tokens come from a deterministic word-hash tokenizer; token dtype is int32, as
ModelLink's IndexedDatasetBuilder default (it reserves -100 for labels).
"""
import csv
import glob
import json
import logging
import os
import re
import sys
import time

from . import args as argsmod
from . import env, faults, indexed_dataset, logs, tracebacks, version
from . import tokenizer as tok

ENTRYPOINT = 'preprocess_data.py'
PRETRAIN_HANDLERS = ('GeneralPretrainHandler', 'AlpacaPretrainHandler', 'StackOverflowPythonPretrainHandler')
INSTRUCTION_HANDLERS = ('AlpacaStyleInstructionHandler', 'SharegptStyleInstructionHandler',
                        'LlamaFactoryInstructionHandler', 'GeneralInstructionHandler',
                        'BelleMultiTurnInstructionHandler', 'MOSSMultiTurnHandler', 'MOSSInstructionHandler',
                        'LeetcodePythonInstructionHandler')
PAIRWISE_HANDLERS = ('AlpacaStylePairwiseHandler', 'SharegptStylePairwiseHandler')
# MindSpeed-LLM's further handlers (2.3.0 mindspeed_llm/tasks/preprocess/data_handler.py): these write
# <prefix>_packed_{input_ids,attention_mask,labels}_document; PPOAlpacaStyleInstructionHandler only input_ids and
# attention_mask (its json_keys, data_handler.py PPOAlpacaStyleInstructionHandler.__init__).
MSL_INSTRUCTION_HANDLERS = ('HunyuanInstructionHandler', 'R1AlpacaStyleInstructionHandler',
                            'R1SharegptStyleInstructionHandler', 'OpenAIInstructionHandler')
PPO_HANDLER = 'PPOAlpacaStyleInstructionHandler'
MSL_PROMPT_TYPE_HANDLERS = ['PPOAlpacaStyleInstructionHandler', 'HunyuanInstructionHandler',
                            'R1AlpacaStyleInstructionHandler', 'R1SharegptStyleInstructionHandler']
PROMPT_TYPE_HANDLERS = ['LlamaFactoryInstructionHandler', 'AlpacaStyleInstructionHandler',
                        'SharegptStyleInstructionHandler', 'AlpacaStylePairwiseHandler',
                        'SharegptStylePairwiseHandler']
FORMATS = {'parquet': 'parquet', 'arrow': 'arrow', 'csv': 'csv', 'json': 'json', 'jsonl': 'json', 'txt': 'text'}
IGNORED_LABEL = -100
BATCH = 50  # data_handler iterates the tokenized dataset in batches of 50

log_main = logging.getLogger('__main__')
log_handler = logging.getLogger('modellink.tasks.preprocess.data_handler')

MAIN = [('preprocess_data.py', 290, '<module>', 'main()')]


def main(argv=None):
    parser = argsmod.build_parser(ENTRYPOINT)
    args = parser.parse_args(argv)
    env.line_buffered_stdio()
    logs.setup()  # stdout, "LEVEL:logger:message" (see logs.py)

    validate_args(args)
    marker_dir = env.marker_dir(os.path.dirname(args.output_prefix) or os.getcwd())
    faults.FaultInjector(ENTRYPOINT).check(0, marker_dir, MAIN + [('preprocess_data.py', 246, 'main', None)],
                                           training=False)

    if args.merge_group_keys is not None:
        merge_datasets(args)
        return 0

    tokenizer = build_tokenizer(args)
    log_main.info('building dataset: %s', args.input)
    records = build_dataset(args)
    known = PRETRAIN_HANDLERS + INSTRUCTION_HANDLERS + PAIRWISE_HANDLERS
    if version.current().is_msl:
        known += MSL_INSTRUCTION_HANDLERS + (PPO_HANDLER,)
    handler_name = args.handler_name if args.handler_name in known else 'GeneralPretrainHandler'
    log_handler.info('dataset will use %s to handle dataset', handler_name)
    if handler_name in PROMPT_TYPE_HANDLERS and args.prompt_type is None:
        tracebacks.die(MAIN + [
            ('preprocess_data.py', 256, 'main', 'handler = get_dataset_handler(args, raw_data, tokenizer, splitter)'),
            ('modellink/tasks/preprocess/data_handler.py', 683, 'get_dataset_handler',
             'handler_instance = handler(args, raw_dataset, tokenizer, splitter)'),
            ('modellink/tasks/preprocess/data_handler.py', 311, '__init__',
             'self.llama_factory_template = get_model_template(args.prompt_type.strip())'),
        ], 'AttributeError', "'NoneType' object has no attribute 'strip'")
    serialize(args, handler_name, records, tokenizer)
    return 0


def validate_args(args):
    stack = MAIN + [('preprocess_data.py', 243, 'main', 'validate_args(args)')]
    # MindSpeed-LLM's list adds its own handlers (2.3.0 preprocess_data.py#L244-256); 26.1.0 also OpenAIInstructionHandler
    # (#L254-264), fourth in its list.
    supported = PROMPT_TYPE_HANDLERS + (MSL_PROMPT_TYPE_HANDLERS if version.current().is_msl else [])
    if version.current().openai_prompt_type:
        supported = supported[:3] + ['OpenAIInstructionHandler'] + supported[3:]
    if args.prompt_type is not None and args.handler_name not in supported:
        tracebacks.die(stack + [('preprocess_data.py', 218, 'validate_args', None)], 'AssertionError',
                       f'If specify prompt_type , handler name must be in:\n{supported}.')
    if args.merge_group_keys is not None and not os.path.isdir(args.input):
        tracebacks.die(stack + [('preprocess_data.py', 221, 'validate_args', None)], 'ValueError',
                       f'{args.input} is not a directory or does not exist')
    out_dir = os.path.dirname(args.output_prefix)
    if not os.path.isdir(out_dir):
        tracebacks.die(stack + [('preprocess_data.py', 224, 'validate_args', None)], 'ValueError',
                       f'{out_dir} is not a directory or does not exist')
    # --enable-thinking's type is the source's lambda (true/false/none -> True/False/None), kept as the raw string here.
    thinking = str(getattr(args, 'enable_thinking', None)).lower() == 'true'
    if getattr(args, 'reasoning_effort', None) and not thinking:
        # 26.1.0 preprocess_data.py#L322-323 (the flag is 26.1.0's).
        tracebacks.die(stack + [('preprocess_data.py', 323, 'validate_args', None)], 'ValueError',
                       f'reasoning_effort={args.reasoning_effort!r} requires --enable-thinking True. Either remove '
                       f'--reasoning-effort or enable thinking.')


def build_tokenizer(args):
    stack = MAIN + [('preprocess_data.py', 250, 'main', 'tokenizer = build_tokenizer(args)')]
    path = None
    if args.tokenizer_type == 'PretrainedFromHF':
        print(' > building PretrainFromHF tokenizer. Vocab file is un-used, '
              'loading tokenizer from pre-trained model', flush=True)
        if args.tokenizer_name_or_path is None:
            tracebacks.die(stack + [('modellink/training/tokenizer/tokenizer.py', 34, 'build_tokenizer', None)],
                           'ValueError', 'Missing tokenizer_name_or_path while building PretrainFromHF tokenizer.')
        path = args.tokenizer_name_or_path
    else:
        print('> building {} tokenizer ...'.format(args.tokenizer_type), flush=True)
        if args.vocab_file is None:
            tracebacks.die(stack + [('megatron/training/tokenizer/tokenizer.py', 33, 'build_tokenizer',
                                     'assert args.vocab_file is not None')], 'AssertionError', '')
        path = args.vocab_file
    if path is not None and not os.path.exists(path):
        tracebacks.die(stack + [('site:transformers/utils/hub.py', 398, 'cached_file', 'resolved_file = hf_hub_download(')],
                       'FileNotFoundError', tracebacks.errno_enoent(path))
    vocab = tok.vocab_size_of(path)
    if args.pad_vocab_size_to is not None:
        after = max(args.pad_vocab_size_to, vocab)
    else:
        after = tok.padded_vocab_size(vocab, args.make_vocab_size_divisible_by, 1)
    print(' > padded vocab (size: {}) with {} dummy tokens (new size: {})'.format(vocab, after - vocab, after),
          flush=True)
    return tok.HashTokenizer(vocab)


# --- reading the input --------------------------------------------------------------------------------

def build_dataset(args):
    stack = MAIN + [('preprocess_data.py', 254, 'main', 'raw_data = build_dataset(args)'),
                    ('modellink/tasks/preprocess/data_handler.py', 774, 'build_dataset', 'raw_datasets = load_dataset(')]
    if not os.path.exists(args.input):
        log_handler.info('loading data from remote huggingface')
        name = args.input.rstrip('/').split('/')[-1]
        script = os.path.abspath(os.path.join(args.input, name + '.py'))
        tracebacks.die(stack + [
            ('site:datasets/load.py', 2129, 'load_dataset', 'builder_instance = load_dataset_builder('),
            ('site:datasets/load.py', 1815, 'load_dataset_builder', 'dataset_module = dataset_module_factory('),
            ('site:datasets/load.py', 1508, 'dataset_module_factory', 'raise FileNotFoundError('),
        ], 'FileNotFoundError',
            f"Couldn't find a dataset script at {script} or any data file in the same directory. "
            f"Couldn't find '{args.input}' on the Hugging Face Hub either: FileNotFoundError: "
            f"Dataset '{args.input}' doesn't exist on the Hub")
    files = [args.input] if os.path.isfile(args.input) else sorted(glob.glob(os.path.join(args.input, '*')))
    ext, data_format = data_format_of(files)
    chosen = [f for f in files if f.split('.')[-1] == ext]
    if not chosen:
        tracebacks.die(stack[:-1] + [('modellink/tasks/preprocess/data_handler.py', 771, 'build_dataset', None)],
                       'Exception', 'unknown local data!')
    log_handler.info('loading data from local file, format: %s, file num: %s', data_format, len(files))
    records = []
    for path in chosen:
        records.extend(read_records(path, data_format))
    if args.max_samples is not None:
        records = records[:args.max_samples]
    return records


def data_format_of(files):
    counts = {}
    for name in files:
        ext = name.split('.')[-1]
        counts[ext] = counts.get(ext, 0) + 1
    for ext, _ in sorted(counts.items(), key=lambda kv: kv[1], reverse=True):
        if ext in FORMATS:
            return ext, FORMATS[ext]
    return None, None


def read_records(path, data_format):
    if data_format == 'json':
        with open(path, encoding='utf-8') as f:
            text = f.read()
        stripped = text.lstrip()
        if stripped.startswith('['):
            return [r for r in json.loads(stripped) if isinstance(r, dict)]
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    if data_format == 'text':
        with open(path, encoding='utf-8') as f:
            return [{'text': line.rstrip('\n')} for line in f]
    if data_format == 'csv':
        with open(path, encoding='utf-8', newline='') as f:
            return list(csv.DictReader(f))
    # parquet/arrow need pyarrow; the emulator does not decode them. It derives a stable number of
    # synthetic documents from the file size so that downstream stages still get data.
    size = os.path.getsize(path)
    count = max(1, size // 2048)
    base = os.path.basename(path)
    return [{'text': f'synthetic document {i} of {base}', 'instruction': f'question {i} about {base}',
             'input': '', 'output': f'answer {i}'} for i in range(count)]


# --- tokenizing and writing ---------------------------------------------------------------------------------

def sentences_of(text, split):
    if not split:
        return [text]
    return [s for s in re.split(r'(?<=[.!?])\s+', text) if s]


def record_text(record, *keys):
    parts = []
    for key in keys:
        value = record.get(key)
        if isinstance(value, str) and value:
            parts.append(value)
    return '\n'.join(parts)


def prompt_and_response(record, args):
    """Prompt/response text of one instruction record (Alpaca, ShareGPT or anything with text fields)."""
    mapping = args.map_keys or {}
    if isinstance(record.get(mapping.get('messages', 'conversations')), list):
        turns = record[mapping.get('messages', 'conversations')]
        texts = [t.get('value') or t.get('content') or '' for t in turns if isinstance(t, dict)]
        return '\n'.join(texts[:-1]), (texts[-1] if texts else '')
    prompt = record_text(record, mapping.get('system', 'system'), mapping.get('prompt', 'instruction'),
                         mapping.get('query', 'input'))
    response = record.get(mapping.get('response', 'output'))
    if isinstance(response, list):  # pairwise: [chosen, rejected]
        return prompt, response
    if not isinstance(response, str):
        response = record_text(record, 'text', 'response', 'answer')
    return prompt, response


def documents(args, handler, records, tokenizer):
    """Yields {key: [sequence, ...]} per record, as the handler's _filter would produce."""
    for record in records:
        if handler in PRETRAIN_HANDLERS:
            doc = {}
            for key in args.json_keys:
                text = record.get(key)
                if handler == 'AlpacaPretrainHandler':
                    text = record_text(record, 'instruction', 'input', 'output')
                seqs = [tokenizer.tokenize(s) for s in sentences_of(text if isinstance(text, str) else '',
                                                                     args.split_sentences)]
                seqs = [s for s in seqs if s]
                if seqs and args.append_eod:
                    seqs[-1].append(tokenizer.eod)
                doc[key] = seqs
            yield doc
            continue
        prompt, response = prompt_and_response(record, args)
        prompt_ids = [tok.BOS_ID] + tokenizer.tokenize(prompt)
        if handler in PAIRWISE_HANDLERS:
            chosen, rejected = (response + ['', ''])[:2] if isinstance(response, list) else (response, '')
            chosen_ids = tokenizer.tokenize(chosen) + [tokenizer.eod]
            rejected_ids = tokenizer.tokenize(rejected) + [tokenizer.eod]
            yield {'chosen_input_ids': [prompt_ids + chosen_ids],
                   'chosen_labels': [[IGNORED_LABEL] * len(prompt_ids) + chosen_ids],
                   'rejected_input_ids': [prompt_ids + rejected_ids],
                   'rejected_labels': [[IGNORED_LABEL] * len(prompt_ids) + rejected_ids]}
            continue
        response_ids = tokenizer.tokenize(response if isinstance(response, str) else '') + [tokenizer.eod]
        input_ids = prompt_ids + response_ids
        labels = [IGNORED_LABEL] * len(prompt_ids) + response_ids
        if args.append_eod:
            input_ids.append(tokenizer.eod)
            labels.append(tokenizer.eod)
        yield {'input_ids': [input_ids], 'attention_mask': [[1] * len(input_ids)], 'labels': [labels]}


def serialize(args, handler, records, tokenizer):
    startup_start = time.time()
    if handler in PRETRAIN_HANDLERS:
        keys = list(args.json_keys)
        prefix = args.output_prefix
    elif handler in PAIRWISE_HANDLERS:
        keys = ['chosen_input_ids', 'chosen_labels', 'rejected_input_ids', 'rejected_labels']
        prefix = args.output_prefix + '_packed'
    elif handler == PPO_HANDLER:
        keys = ['input_ids', 'attention_mask']
        prefix = args.output_prefix + '_packed'
    else:
        keys = ['input_ids', 'attention_mask', 'labels']
        prefix = args.output_prefix + '_packed'
    if args.pack and len(keys) == 1:
        tracebacks.die(MAIN + [('preprocess_data.py', 258, 'main', 'handler.serialize_to_disk()'),
                               ('modellink/tasks/preprocess/data_handler.py', 212, 'serialize_to_disk', None)],
                       'ValueError', 'Pre-training data processing does not need to be packed. '
                                     'Therefore, the --pack parameter is not required.')
    level = 'sentence' if args.split_sentences else 'document'
    log_handler.info('Vocab size: %s', tokenizer.vocab_size)
    log_handler.info('Output prefix: %s', prefix)
    builders, idx_paths = {}, {}
    for key in keys:
        builders[key] = indexed_dataset.IndexedDatasetBuilder(f'{prefix}_{key}_{level}.bin', indexed_dataset.CODE_INT32)
        idx_paths[key] = f'{prefix}_{key}_{level}.idx'
    proc_start = time.time()
    log_handler.info('Time to startup:%s', proc_start - startup_start)
    docs = list(documents(args, handler, records, tokenizer))
    if args.pack:
        pack(args, keys, docs, builders, proc_start)
    else:
        write_documents(args, keys, docs, builders, proc_start)
    for key in keys:
        builders[key].finalize(idx_paths[key])


def write_documents(args, keys, docs, builders, proc_start):
    total_bytes = 0
    skip_num = 0
    for batch_no in range(1, (len(docs) + BATCH - 1) // BATCH + 1):
        for doc in docs[(batch_no - 1) * BATCH: batch_no * BATCH]:
            skip = set()
            for key in keys:
                for k, seq in enumerate(doc.get(key, [])):
                    if args.seq_length is not None and len(seq) >= args.seq_length:
                        skip.add(k)
            for key in keys:
                seqs = doc.get(key, [])
                if not seqs:
                    continue
                for k, seq in enumerate(seqs):
                    if k in skip:
                        continue
                    total_bytes += len(seq) * 4
                    builders[key].add_item(seq)
                builders[key].end_document()
        batch_id = batch_no * BATCH
        if batch_id % args.log_interval == 0:
            elapsed = max(time.time() - proc_start, 1e-6)
            log_handler.info('Processed %s documents (%s docs/s, %s MB/s).', batch_id, batch_id / elapsed,
                             total_bytes / elapsed / 1024 / 1024)
    log_handler.info('Skip %s sample exceeded seq-length(%s)', skip_num, args.seq_length)


def pack(args, keys, docs, builders, proc_start):
    """--pack: greedy knapsack of samples into seq_length rows (data_handler._pack_serialize_to_disk)."""
    seq_length = args.seq_length
    if seq_length is None:
        tracebacks.die(MAIN + [('modellink/tasks/preprocess/data_handler.py', 97, '_pack_serialize_to_disk',
                                'if length > self.args.seq_length:')],
                       'TypeError', "'>' not supported between instances of 'int' and 'NoneType'")
    samples = []
    for doc in docs:
        sample = {key: doc[key][0] for key in keys}
        length = len(sample[keys[0]])
        if length > seq_length:
            log_handler.warning(f'Dropped lengthy example with length {length} > {seq_length}.')
        else:
            samples.append(sample)
    total = len(docs)
    log_handler.info(f'valid_num = {len(samples)}, total_num = {total}, '
                     f'percentage : {len(samples) / total * 100 if total else 0.0}%')
    capacity = seq_length - 1
    knapsacks = []
    for sample in sorted(samples, key=lambda s: len(s[keys[0]]), reverse=True):
        length = len(sample[keys[0]])
        for sack in knapsacks:
            if sack['free'] >= length:
                sack['items'].append(sample)
                sack['free'] -= length
                break
        else:
            knapsacks.append({'items': [sample], 'free': capacity - length})
    log_handler.info(f'new samples num : {len(knapsacks)}')
    for k, sack in enumerate(knapsacks):
        packed = {key: [] for key in keys}
        for sample in sack['items']:
            for key in keys:
                packed[key] += sample[key]
        if k % args.log_interval == 0:
            elapsed = max(time.time() - proc_start, 1e-6)
            log_handler.info('Processed %s documents (%s docs/s).', k, args.log_interval / elapsed)
        pad = seq_length - len(packed['input_ids'])
        packed['input_ids'] += [tok.PAD_ID] * pad
        packed['attention_mask'] += [1] * pad
        packed['labels'] += [IGNORED_LABEL] * pad
        for key in keys:
            builders[key].add_item(packed[key])
            builders[key].end_document()


# --- --merge-group-keys ------------------------------------------------------------------------------------

def merge_datasets(args):
    prefixes = {key: set() for key in args.merge_group_keys}
    for key in prefixes:
        for basename in sorted(os.listdir(args.input)):
            prefix, ext = os.path.splitext(basename)
            if prefix in prefixes[key] or key not in prefix:
                continue
            if not os.path.isfile(os.path.join(args.input, basename)):
                continue
            pair = '.bin' if ext == '.idx' else '.idx'
            if not os.path.isfile(os.path.join(args.input, prefix) + pair):
                tracebacks.die(MAIN + [('preprocess_data.py', 247, 'main', 'merge_datasets(args)'),
                                       ('preprocess_data.py', 186, 'merge_datasets', None)],
                               'FileNotFoundError', f'{pair} file not provided for {os.path.join(args.input, prefix)}')
            prefixes[key].add(prefix)
    for key in prefixes:
        builder = None
        for prefix in sorted(prefixes[key]):
            path = os.path.join(args.input, prefix)
            if builder is None:
                code = indexed_dataset.read_index(path + '.idx')['dtype_code']
                builder = indexed_dataset.IndexedDatasetBuilder(f'{args.output_prefix}_{key}.bin', code)
            builder.add_index(path)
        if builder is None:
            # ModelLink would call finalize on None here.
            tracebacks.die(MAIN + [('preprocess_data.py', 247, 'main', 'merge_datasets(args)'),
                                   ('preprocess_data.py', 203, 'merge_datasets',
                                    "builder.finalize(get_idx_path(f'{args.output_prefix}_{key}'))")],
                           'AttributeError', "'NoneType' object has no attribute 'finalize'")
        builder.finalize(f'{args.output_prefix}_{key}.idx')


if __name__ == '__main__':
    sys.exit(main())
