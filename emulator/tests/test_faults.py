"""MLEMU_FAULTS: the grammar `[scope:][nodeN:]kind@iteration` (README, Faults), who fires, and once per directory."""

import os
from pathlib import Path

import pytest

from mlemu import env, faults
from mlemu.faults import Fault, FaultInjector, FaultSpecError, parse_spec

KINDS = ['crash', 'sigkill', 'segfault', 'hccl', 'oom', 'nan', 'hang']


def as_tuples(spec: str) -> list[tuple]:
    return [(f.kind, f.iteration, f.scope, f.node) for f in parse_spec(spec)]


# --- grammar ---------------------------------------------------------------------------------------------


def test_plain_entries_in_order() -> None:
    assert as_tuples('crash@35,hang@80') == [('crash', 35, None, None), ('hang', 80, None, None)]


@pytest.mark.parametrize('kind', KINDS)
def test_every_kind_of_the_table(kind: str) -> None:
    assert as_tuples(f'{kind}@3') == [(kind, 3, None, None)]


def test_empty_spec_and_empty_entries_are_nothing() -> None:
    assert parse_spec('') == []
    assert as_tuples(' , crash@1 ,, ') == [('crash', 1, None, None)]


def test_spaces_around_parts_are_ignored() -> None:
    assert as_tuples(' pretrain : node1 : oom @ 12 ') == [('oom', 12, 'pretrain_gpt.py', 1)]


def test_at_zero_is_start_up() -> None:
    assert as_tuples('convert:crash@0') == [('crash', 0, 'convert_ckpt.py', None)]


@pytest.mark.parametrize(('scope', 'script'), [
    ('pretrain', 'pretrain_gpt.py'),
    ('preprocess', 'preprocess_data.py'),
    ('convert', 'convert_ckpt.py'),
    ('evaluation', 'evaluation.py'),
    ('inference', 'inference.py'),
    # "(or the script name)"
    ('pretrain_gpt.py', 'pretrain_gpt.py'),
    ('preprocess_data.py', 'preprocess_data.py'),
    ('convert_ckpt.py', 'convert_ckpt.py'),
    ('evaluation.py', 'evaluation.py'),
    ('inference.py', 'inference.py'),
])
def test_scopes_name_an_entrypoint(scope: str, script: str) -> None:
    assert as_tuples(f'{scope}:oom@12') == [('oom', 12, script, None)]


def test_node_scope_before_or_after_the_entrypoint_scope() -> None:
    expected = [('crash', 15, 'pretrain_gpt.py', 1)]
    assert as_tuples('pretrain:node1:crash@15') == expected
    assert as_tuples('node1:pretrain:crash@15') == expected
    assert as_tuples('node12:hang@3') == [('hang', 3, None, 12)]


def test_readme_examples() -> None:
    assert as_tuples('convert:crash@0,pretrain:oom@12') == [('crash', 0, 'convert_ckpt.py', None),
                                                           ('oom', 12, 'pretrain_gpt.py', None)]


@pytest.mark.parametrize('spec', [
    'boom@3',  # unknown kind
    'crash',  # no @iteration
    'crash@',  # empty iteration
    'crash@x',  # not a number
    'crash@1.5',
    'crash@-1',  # negative
    'CRASH@1',  # kinds are lower case
    'train2:crash@1',  # unknown scope
    'nodeX:crash@1',
    'node:crash@1',
    'node1:node2:crash@1',  # at most one node
    'pretrain:convert:crash@1',  # at most one entrypoint
    'pretrain:node1:pretrain:crash@1',
    'crash@1,oops',  # one bad entry spoils the list
])
def test_invalid_specs_raise(spec: str) -> None:
    with pytest.raises(FaultSpecError):
        parse_spec(spec)


def test_an_invalid_spec_exits_2_with_the_message(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv('MLEMU_FAULTS', 'crash@soon')
    with pytest.raises(SystemExit) as exited:
        FaultInjector('pretrain_gpt.py')
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith('mlemu: invalid MLEMU_FAULTS: ')
    assert 'crash@soon' in err


# --- markers and targets ------------------------------------------------------------------------------------


def test_marker_names() -> None:
    assert Fault('crash', 35).marker_name == '.mlemu-fired-crash@35'
    assert Fault('oom', 12, 'pretrain_gpt.py', 1).marker_name == '.mlemu-fired-node1-oom@12'


def test_target_rank_is_global_rank_0_or_local_rank_0_of_the_node(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('LOCAL_WORLD_SIZE', '8')
    assert faults.target_rank(Fault('crash', 1)) == 0
    assert faults.target_rank(Fault('crash', 1, node=0)) == 0
    assert faults.target_rank(Fault('crash', 1, node=1)) == 8
    assert faults.target_rank(Fault('crash', 1, node=3)) == 24
    monkeypatch.delenv('LOCAL_WORLD_SIZE')
    assert faults.target_rank(Fault('crash', 1, node=2)) == 2  # one rank per node without torchrun


# --- which faults an entrypoint and a node keep ------------------------------------------------------------


def test_the_injector_keeps_its_entrypoints_and_its_nodes_faults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('GROUP_RANK', '1')
    spec = 'crash@5,convert:oom@0,pretrain:node1:hang@7,node0:sigkill@9,pretrain:node0:nan@11'
    injector = FaultInjector('pretrain_gpt.py', spec)
    assert [repr(f) for f in injector.all_faults] == ['crash@5', 'node1:hang@7', 'node0:sigkill@9', 'node0:nan@11']
    assert [repr(f) for f in injector.faults] == ['crash@5', 'node1:hang@7']
    # every node knows where another node's nan is agreed on
    assert injector.nan_scheduled(11)
    assert not injector.nan_scheduled(5)
    assert [repr(f) for f in FaultInjector('convert_ckpt.py', spec).faults] == ['crash@5', 'oom@0']


def test_without_group_rank_the_node_is_0() -> None:
    assert [repr(f) for f in FaultInjector('pretrain_gpt.py', 'node0:crash@1,node1:crash@2').faults] == ['node0:crash@1']


def test_a_marker_disarms_its_fault(tmp_path: Path) -> None:
    injector = FaultInjector('pretrain_gpt.py', 'crash@3,hang@3,oom@4')
    assert [f.kind for f in injector.due(3, str(tmp_path))] == ['crash', 'hang']
    (tmp_path / '.mlemu-fired-crash@3').write_text('')
    assert [f.kind for f in injector.due(3, str(tmp_path))] == ['hang']
    assert injector.due(5, str(tmp_path)) == []


def test_a_nan_fault_fires_once_per_directory(tmp_path: Path) -> None:
    injector = FaultInjector('pretrain_gpt.py', 'nan@6')
    directory = str(tmp_path / 'save')
    assert injector.check(5, directory, []) is False
    assert injector.check(6, directory, []) is True
    assert os.path.isfile(os.path.join(directory, '.mlemu-fired-nan@6'))
    # the retry of the same command passes the iteration
    assert injector.check(6, directory, []) is False
    assert FaultInjector('pretrain_gpt.py', 'nan@6').check(6, directory, []) is False


def test_only_the_target_ranks_process_fires(tmp_path: Path) -> None:
    injector = FaultInjector('pretrain_gpt.py', 'nan@2')
    rank3 = env.Dist({'WORLD_SIZE': '4', 'RANK': '3', 'LOCAL_RANK': '3'})
    assert injector.check(2, str(tmp_path), [], rank3) is False
    assert not os.listdir(tmp_path)  # not claimed: rank 0's process fires it
    rank0 = env.Dist({'WORLD_SIZE': '4', 'RANK': '0', 'LOCAL_RANK': '0'})
    assert injector.check(2, str(tmp_path), [], rank0) is True
