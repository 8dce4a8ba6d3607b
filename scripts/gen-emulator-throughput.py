#!/usr/bin/env python3
"""Generate emulator/mlemu/throughput.json: the emulator's throughput model (see emulator/README.md).

    python3 scripts/gen-emulator-throughput.py [REFERENCE_DIR]          # default: reference/modellink
    python3 scripts/gen-emulator-throughput.py --check [REFERENCE_DIR]  # exit 1 when the committed file is stale

Reads the reference's seed-performance.json (45 rows) and linkflow's frameworks/modellink/presets.json (which preset
publishes each row, its architecture flags and its pretrain layouts) and writes, per table row, the
signature the emulator recognises the job by and the table's tokens/s per device. The emulator reads only
the generated file, never linkflow's.

How a row's job is predicted: the preset's architecture flags for the row's implementation, the row's
sequence length (and --max-position-embeddings raised to it when the model's is shorter), the row's
precision and world size (nodes x devices per node), --use-mcore-models for mcore, and the parallel layout
and batch sizes linkflow's benchmark uses for the row (a pretrain script of the preset with the same
implementation and sequence length, preferring one on the same nodes x devices; else the preset's
reference layout). These flags are parsed with the emulator's own parser, so defaults are ModelLink's.

Signature: mlemu/throughput.py SIGNATURE. Rows that share it get `when`: the values of the first flags of
DISCRIMINATORS (in that order) that tell the group's rows apart. The generator then checks that every
row's predicted job is recognised as exactly that row, and prints the rows it cannot tell apart.
Python 3 standard library only; deterministic output.
"""
from __future__ import annotations

import itertools
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMULATOR = os.path.join(ROOT, 'emulator')
OUT_JSON = os.path.join(EMULATOR, 'mlemu', 'throughput.json')
PRESETS_JSON = os.path.join(ROOT, 'frameworks', 'modellink', 'presets.json')

sys.path.insert(0, EMULATOR)
from mlemu import args as argsmod  # noqa: E402
from mlemu import throughput  # noqa: E402

# Flags that may tell rows with the same signature apart, most robust first: model-shape flags that
# no benchmark plan changes, then the layout linkflow's benchmark uses for a row, and last
# --max-position-embeddings (raised for long sequences) and nothing about the tokenizer (a benchmark
# without a tokenizer runs with NullTokenizer).
DISCRIMINATORS = (
    'add_qkv_bias', 'rotary_base', 'make_vocab_size_divisible_by', 'norm_epsilon', 'group_query_attention',
    'num_query_groups', 'num_experts', 'moe_router_topk', 'swiglu', 'normalization', 'position_embedding_type',
    'untie_embeddings_and_output_weights', 'add_dense_bias', 'add_bias_linear', 'padded_vocab_size',
    'global_batch_size', 'micro_batch_size', 'tensor_model_parallel_size', 'pipeline_model_parallel_size',
    'context_parallel_size', 'max_position_embeddings',
)


def slug(model: str, size: str) -> str:
    """linkflow's table id rule (benchmark/suite.ts): lowercase, '.' dropped in names, 'point' in sizes."""
    return f"{model.lower().replace('.', '')}-{size.lower().replace('.', 'point')}"


def case_id(row: dict) -> str:
    seq = row['seq_length']
    token = f'seq{seq // 1024}k' if seq % 1024 == 0 else f'seq{seq}'
    return (f"{slug(row['model'], row['size'])}-{token}-{row['impl']}-"
            f"{row['nodes']}x{row['devices_per_node']}-{row['precision']}")


def same_row(t: dict, row: dict) -> bool:
    return (t['model'], t['size'], t['seqLength'], t['impl'], t['nodes'], t['devicesPerNode'], t['precision']) == \
        (row['model'], row['size'], row['seq_length'], row['impl'], row['nodes'], row['devices_per_node'], row['precision'])


def preset_for(row: dict, presets: dict):
    found = [(name, p) for name, p in presets.items() if any(same_row(t, row) for t in p.get('table', []))]
    return found[0] if len(found) == 1 else (None, None)


def layout_for(preset: dict, row: dict):
    """linkflow's layoutFor (benchmark/suite.ts) for a table row."""
    pretrain = [r for r in preset.get('references', [])
                if r.get('kind') == 'pretrain' and r.get('impl') == row['impl'] and r.get('seqLength') == row['seq_length']]
    exact = [r for r in pretrain if r['nodes'] == row['nodes'] and r['devicesPerNode'] == row['devices_per_node']]
    chosen = exact[0] if exact else pretrain[0] if pretrain else None
    if chosen:
        return {'tp': chosen['tp'], 'pp': chosen['pp'], 'cp': chosen.get('cp', 1), 'mbs': chosen['microBatchSize'],
                'gbs': chosen['globalBatchSize']}
    ref = preset.get('reference', {})
    if ref.get('impl', 'mcore') != row['impl']:
        return None
    return {'tp': ref['tp'], 'pp': ref['pp'], 'cp': 1, 'mbs': ref['microBatchSize'], 'gbs': ref['globalBatchSize']}


def predicted_argv(preset: dict, row: dict, layout: dict | None) -> list[str]:
    arch_args = preset['architectureArgs'].get(row['impl']) or next(iter(preset['architectureArgs'].values()))
    argv: list[str] = []
    for flag, value in arch_args:
        if flag in ('--seq-length', '--max-position-embeddings', '--tokenizer-type'):
            continue
        argv.append(flag)
        if isinstance(value, list):
            argv += [str(v) for v in value]
        elif value is not None:
            argv.append(str(value))
    max_pos = max(preset['architecture']['maxPositionEmbeddings'], row['seq_length'])
    argv += ['--seq-length', str(row['seq_length']), '--max-position-embeddings', str(max_pos),
             '--tokenizer-type', 'NullTokenizer', f"--{row['precision']}"]
    if row['impl'] == 'mcore':
        argv.append('--use-mcore-models')
    if layout:
        argv += ['--tensor-model-parallel-size', str(layout['tp']), '--pipeline-model-parallel-size', str(layout['pp']),
                 '--context-parallel-size', str(layout['cp']),
                 '--micro-batch-size', str(layout['mbs']), '--global-batch-size', str(layout['gbs'])]
    return argv


def choose_discriminators(jobs: list) -> list[str]:
    """The fewest flags (first in DISCRIMINATORS order) whose values differ between every two jobs."""
    def separated(names):
        values = [tuple(throughput.flag_value(j, n) for n in names) for j in jobs]
        return len(set(map(repr, values))) == len(values)
    for single in DISCRIMINATORS:
        if separated([single]):
            return [single]
    chosen: list[str] = []
    for name in DISCRIMINATORS:
        before = len({repr(tuple(throughput.flag_value(j, n) for n in chosen)) for j in jobs})
        after = len({repr(tuple(throughput.flag_value(j, n) for n in chosen + [name])) for j in jobs})
        if after > before:
            chosen.append(name)
        if separated(chosen):
            break
    return chosen


def generate(reference_dir: str):
    with open(os.path.join(reference_dir, 'seed-performance.json'), encoding='utf-8') as f:
        table = json.load(f)['rows']
    with open(PRESETS_JSON, encoding='utf-8') as f:
        presets = json.load(f)

    entries, jobs, notes = [], [], []
    for row in table:
        name, preset = preset_for(row, presets)
        title = f"{row['model']} {row['size']}"
        if preset is None:
            notes.append(f'{case_id(row)}: no preset lists this row; not modelled')
            continue
        if not preset.get('architectureArgs'):
            notes.append(f'{case_id(row)}: preset {name} has no architecture flags; not modelled')
            continue
        layout = layout_for(preset, row)
        job = argsmod.parse('pretrain_gpt.py', predicted_argv(preset, row, layout))
        world = row['nodes'] * row['devices_per_node']
        entries.append({
            'case': case_id(row), 'model': slug(row['model'], row['size']), 'title': title, 'preset': name,
            'signature': list(throughput.job_signature(job, world)),
            'tokens_per_s_per_device': row['tokens_per_s_per_device'],
        })
        jobs.append((job, world, layout))

    # Groups of rows sharing a signature: pick the flags that tell them apart.
    indistinguishable = []
    by_sig: dict[str, list[int]] = {}
    for i, e in enumerate(entries):
        by_sig.setdefault(json.dumps(e['signature']), []).append(i)
    for indices in by_sig.values():
        if len(indices) < 2:
            continue
        group_jobs = [jobs[i][0] for i in indices]
        names = choose_discriminators(group_jobs)
        for i in indices:
            entries[i]['when'] = {n: throughput.flag_value(jobs[i][0], n) for n in names}
        for a, b in itertools.combinations(indices, 2):
            if entries[a]['when'] == entries[b]['when']:
                indistinguishable.append([entries[a]['case'], entries[b]['case']])

    # Every row's predicted job must be recognised as that row, and only that row.
    for e, (job, world, layout) in zip(entries, jobs):
        found = throughput.match_rows(job, world, entries)
        if [f['case'] for f in found] != [e['case']]:
            notes.append(f"{e['case']}: its job is recognised as {[f['case'] for f in found]}")
        if layout is None:
            notes.append(f"{e['case']}: linkflow publishes no layout for it (its benchmark case is skipped); "
                         f"recognised by its signature alone")
        ms = throughput.modelled_ms(e, job, world)
        e['ms_per_iteration'] = round(ms, 1) if layout else None

    data = {
        'generated_by': 'scripts/gen-emulator-throughput.py from reference/modellink/seed-performance.json '
                        'and frameworks/modellink/presets.json; do not edit by hand',
        'signature': list(throughput.SIGNATURE),
        'rows': entries,
        'indistinguishable': indistinguishable,
    }
    return json.dumps(data, indent=1, ensure_ascii=False) + '\n', notes, indistinguishable


def main(argv: list[str]) -> int:
    check = '--check' in argv
    rest = [a for a in argv if a != '--check']
    reference_dir = rest[0] if rest else os.path.join(ROOT, 'reference', 'modellink')
    text, notes, indistinguishable = generate(reference_dir)
    for note in notes:
        print(f'note: {note}')
    for a, b in indistinguishable:
        print(f'cannot tell apart: {a} and {b} (the emulator uses the first)')
    if check:
        try:
            with open(OUT_JSON, encoding='utf-8') as f:
                current = f.read()
        except OSError:
            current = None
        if current != text:
            print(f'{os.path.relpath(OUT_JSON, ROOT)} is stale: run scripts/gen-emulator-throughput.py')
            return 1
        print(f'{os.path.relpath(OUT_JSON, ROOT)} is up to date')
        return 0
    with open(OUT_JSON, 'w', encoding='utf-8') as f:
        f.write(text)
    rows = json.loads(text)['rows']
    print(f'wrote {os.path.relpath(OUT_JSON, ROOT)}: {len(rows)} rows, '
          f'{sum(1 for r in rows if "when" in r)} told apart by further flags')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
