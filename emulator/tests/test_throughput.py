"""The throughput model (README, Throughput model): a row of ModelLink's performance table runs at the table's
tokens/s per device, with at most +-0.5 % noise, times the MLEMU_SLOWDOWN factor of the job."""

import json
import os
import statistics
from argparse import Namespace

import pytest
from conftest import REPO

from mlemu import args as argsmod
from mlemu import throughput
from mlemu.throughput import IterationClock, SlowdownSpecError, noise, parse_slowdown, slowdown_factor

ROWS = throughput.load_data()['rows']


def job_args(row: dict, global_batch_size: int = 256) -> Namespace:
    """pretrain_gpt.py's parsed flags for the job a table row describes (its signature and `when`)."""
    layers, hidden, ffn, heads, seq, _world, impl, precision = row['signature']
    argv = ['--num-layers', str(layers), '--hidden-size', str(hidden), '--ffn-hidden-size', str(ffn),
            '--num-attention-heads', str(heads), '--seq-length', str(seq)]
    when = dict(row.get('when', {}))
    argv += ['--global-batch-size', str(when.pop('global_batch_size', global_batch_size))]
    if impl == 'mcore':
        argv.append('--use-mcore-models')
    if precision != 'fp32':
        argv.append(f'--{precision}')
    for name, value in when.items():
        flag = '--' + name.replace('_', '-')
        if value is True:
            argv.append(flag)
        elif value not in (False, None):
            argv += [flag, str(value)]
    return argsmod.parse('pretrain_gpt.py', argv)


def logged_s(clock: IterationClock, iteration: int) -> float:
    value = clock.logged_s(iteration)
    assert value is not None, 'not a table job'
    return value


def row_of(case: str) -> dict:
    return next(r for r in ROWS if r['case'] == case)


# --- the table ------------------------------------------------------------------------------------------------


def test_the_data_has_every_row_of_modellinks_table() -> None:
    with open(os.path.join(REPO, 'reference', 'modellink', 'seed-performance.json'), encoding='utf-8') as f:
        table = json.load(f)['rows']
    assert len(ROWS) == len(table) == 45
    remaining = list(ROWS)
    for ref in table:
        world = ref['nodes'] * ref['devices_per_node']
        match = [r for r in remaining if r['signature'][4:] == [ref['seq_length'], world, ref['impl'], ref['precision']]
                 and r['tokens_per_s_per_device'] == ref['tokens_per_s_per_device']]
        assert match, ref
        remaining.remove(match[0])


@pytest.mark.parametrize('row', ROWS, ids=[r['case'] for r in ROWS])
def test_every_row_is_recognised_as_itself_and_logs_the_tables_time(row: dict) -> None:
    args = job_args(row)
    world = row['signature'][5]
    assert throughput.recognise(args, world) is row
    tokens_per_s = row['tokens_per_s_per_device']
    expected_ms = args.seq_length * args.global_batch_size / (tokens_per_s * world) * 1000.0
    assert throughput.modelled_ms(row, args, world) == pytest.approx(expected_ms, rel=1e-12)
    # the logged time gives back the table's tokens/s/device
    assert args.seq_length * args.global_batch_size / (expected_ms / 1000.0 * world) == pytest.approx(tokens_per_s)


def test_readme_example_llama2_7b(monkeypatch: pytest.MonkeyPatch) -> None:
    """LLaMA2 7B, mcore, 1x8, bf16, global batch 256, seq 4096: 4672 tokens/s/device -> 28054.8 ms; iteration 5: -0.4 %."""
    row = row_of('llama2-7b-seq4k-mcore-1x8-bf16')
    assert row['tokens_per_s_per_device'] == 4672
    args = job_args(row, 256)
    assert round(throughput.modelled_ms(row, args, 8), 1) == 28054.8
    clock = IterationClock(args, 8, {})
    assert clock.modelled
    assert round(logged_s(clock, 5) * 1000.0, 1) == 27939.8


def test_a_job_of_another_shape_or_world_is_not_in_the_table() -> None:
    row = row_of('llama2-7b-seq4k-mcore-1x8-bf16')
    args = job_args(row)
    assert throughput.recognise(args, 16) is None  # two nodes
    args.seq_length = 2048
    assert throughput.recognise(args, 8) is None
    args = job_args(row)
    args.bf16, args.fp16 = False, True
    assert throughput.recognise(args, 8) is None
    assert IterationClock(job_args(row), 4, {}).logged_s(3) is None


def test_rows_sharing_a_signature_are_told_apart_by_when() -> None:
    qwen, qwen15 = row_of('qwen-7b-seq8k-legacy-1x8-bf16'), row_of('qwen15-7b-seq8k-legacy-1x8-bf16')
    assert qwen['signature'] == qwen15['signature']
    args = job_args(qwen)
    assert throughput.recognise(args, 8) is qwen
    args.rotary_base = 1000000.0
    assert throughput.recognise(args, 8) is qwen15


def test_megatrons_default_ffn_hidden_size() -> None:
    """validate_args: 4h, or with --swiglu int((4h * 2/3) / 64) * 64."""
    args = argsmod.parse('pretrain_gpt.py', ['--hidden-size', '4096'])
    assert throughput.ffn_hidden_size(args) == 16384
    args = argsmod.parse('pretrain_gpt.py', ['--hidden-size', '4096', '--swiglu'])
    assert throughput.ffn_hidden_size(args) == 10880
    args = argsmod.parse('pretrain_gpt.py', ['--hidden-size', '4096', '--swiglu', '--ffn-hidden-size', '11008'])
    assert throughput.ffn_hidden_size(args) == 11008


# --- noise ----------------------------------------------------------------------------------------------------


def test_noise_is_within_half_a_percent_and_reaches_both_ends() -> None:
    values = [noise(i) for i in range(0, 20001)]
    assert all(0.995 <= v <= 1.005 for v in values)
    assert min(values) < 0.9951 and max(values) > 1.0049


def test_noise_is_a_function_of_the_iteration() -> None:
    assert [noise(i) for i in range(50)] == [noise(i) for i in range(50)]
    assert noise(0) == pytest.approx(0.995)
    assert len({round(noise(i), 12) for i in range(1, 200)}) == 199  # not constant


@pytest.mark.parametrize(('window', 'bound'), [(10, 0.001), (20, 0.0006)])
def test_median_of_consecutive_iterations_is_the_tables_figure(window: int, bound: float) -> None:
    for start in range(1, 3000):
        median = statistics.median(noise(i) for i in range(start, start + window))
        assert abs(median - 1.0) <= bound, (start, median)


# --- MLEMU_SLOWDOWN -------------------------------------------------------------------------------------------


def test_slowdown_grammar() -> None:
    assert parse_slowdown('') == {}
    assert parse_slowdown(None) == {}
    assert parse_slowdown('llama2-7b-seq4k-mcore-1x8-bf16=1.15') == {'llama2-7b-seq4k-mcore-1x8-bf16': 1.15}
    assert parse_slowdown(' *=2 , llama2-7b = 0.5 ,') == {'*': 2.0, 'llama2-7b': 0.5}
    assert parse_slowdown('a=1e-3') == {'a': 0.001}


@pytest.mark.parametrize('spec', ['llama2-7b', '=1.2', 'a=', 'a=fast', 'a=0', 'a=-1', 'a=nan', 'a=inf', 'a=1,a=2',
                                  '*=1.1,*=1.2', 'a=1.2=3'])
def test_invalid_slowdowns_raise(spec: str) -> None:
    with pytest.raises(SlowdownSpecError):
        parse_slowdown(spec)


def test_an_invalid_slowdown_exits_2_with_the_message(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv('MLEMU_SLOWDOWN', 'llama2-7b=0')
    with pytest.raises(SystemExit) as exited:
        throughput.slowdown_from_env()
    assert exited.value.code == 2
    assert capsys.readouterr().err.startswith('mlemu: invalid MLEMU_SLOWDOWN: ')


def test_the_most_specific_key_wins() -> None:
    row = row_of('llama2-7b-seq4k-mcore-1x8-bf16')
    factors = {'*': 2.0, 'llama2-7b': 3.0, 'llama2-7b-seq4k-mcore-1x8-bf16': 4.0, 'bench-case': 5.0}
    assert slowdown_factor(factors, 'bench-case', row) == 5.0
    assert slowdown_factor(factors, 'other-case', row) == 4.0
    assert slowdown_factor({'*': 2.0, 'llama2-7b': 3.0}, None, row) == 3.0
    assert slowdown_factor({'*': 2.0}, None, row) == 2.0
    assert slowdown_factor({'*': 2.0, 'llama2-7b': 3.0}, None, None) == 2.0
    assert slowdown_factor({'llama2-7b': 3.0}, None, None) == 1.0
    assert slowdown_factor({}, 'bench-case', row) == 1.0


def test_slowdown_multiplies_the_logged_time(monkeypatch: pytest.MonkeyPatch) -> None:
    row = row_of('llama2-7b-seq4k-mcore-1x8-bf16')
    args = job_args(row)
    base = logged_s(IterationClock(args, 8, {}), 7)
    assert logged_s(IterationClock(args, 8, {'llama2-7b': 1.15}), 7) == pytest.approx(base * 1.15)
    monkeypatch.setenv('LINKFLOW_BENCH_CASE', 'my-case')
    assert logged_s(IterationClock(args, 8, {'my-case': 2.0, '*': 3.0}), 7) == pytest.approx(base * 2.0)


# --- wall time ----------------------------------------------------------------------------------------------------


def test_wall_time(monkeypatch: pytest.MonkeyPatch) -> None:
    row = row_of('llama2-7b-seq4k-mcore-1x8-bf16')
    args = job_args(row)
    clock = IterationClock(args, 8, {})
    assert clock.wall_s(5) == pytest.approx(0.05)  # min(modelled, MLEMU_ITER_TIME_MS default 50)
    monkeypatch.setenv('MLEMU_TIME_SCALE', '0.001')
    assert IterationClock(args, 8, {}).wall_s(5) == pytest.approx(logged_s(clock, 5) * 0.001)
    monkeypatch.setenv('MLEMU_TIME_SCALE', 'fast')  # ignored with a warning
    assert IterationClock(args, 8, {}).wall_s(5) == pytest.approx(0.05)
    monkeypatch.delenv('MLEMU_TIME_SCALE')
    monkeypatch.setenv('MLEMU_ITER_TIME_MS', '20')
    other = IterationClock(args, 2, {'*': 1.5})  # not a table job: MLEMU_ITER_TIME_MS x slowdown
    assert not other.modelled
    assert other.wall_s(5) == pytest.approx(0.03)
