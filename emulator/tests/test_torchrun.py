"""torchrun's option parsing (torch 2.1 torch/distributed/run.py): --nproc-per-node / --nnodes values, both
spellings, PET_<NAME> environment defaults, and the environment each worker gets."""

import sys
from types import ModuleType

import pytest
from conftest import load_torchrun


@pytest.fixture
def torchrun() -> ModuleType:
    return load_torchrun()


def test_count_of_nproc_per_node(torchrun: ModuleType) -> None:
    assert torchrun.count('8', 'nproc') == 8
    assert torchrun.count('1', 'nproc') == 1
    for device in ('auto', 'cpu', 'gpu', 'xpu'):  # no accelerator torch knows of here: one process
        assert torchrun.count(device, 'nproc') == 1
    for bad in ('0', '-1', 'two', '', '2.5', 'npu'):
        with pytest.raises(ValueError):
            torchrun.count(bad, 'nproc')


def test_count_of_nnodes_is_the_maximum_of_min_max(torchrun: ModuleType) -> None:
    assert torchrun.count('2', 'nnodes') == 2
    assert torchrun.count('1:1', 'nnodes') == 1
    assert torchrun.count('2:4', 'nnodes') == 4
    for bad in ('auto', '0', '1:0', 'x'):
        with pytest.raises(ValueError):
            torchrun.count(bad, 'nnodes')


def test_defaults(torchrun: ModuleType) -> None:
    args = torchrun.build_parser().parse_args(['pretrain_gpt.py'])
    assert (args.nnodes, args.nproc_per_node, args.node_rank) == ('1:1', '1', 0)
    assert (args.master_addr, args.master_port) == ('127.0.0.1', 29500)
    assert (args.rdzv_backend, args.max_restarts, args.monitor_interval) == ('static', 0, 5)


def test_pet_environment_variables_are_the_defaults(torchrun: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('PET_NPROC_PER_NODE', '4')
    monkeypatch.setenv('PET_NNODES', '2')
    monkeypatch.setenv('PET_NODE_RANK', '1')
    monkeypatch.setenv('PET_MASTER_ADDR', '10.0.0.1')
    monkeypatch.setenv('PET_MASTER_PORT', '6000')
    parser = torchrun.build_parser()
    args = parser.parse_args(['pretrain_gpt.py'])
    assert (args.nproc_per_node, args.nnodes, args.node_rank) == ('4', '2', 1)
    assert (args.master_addr, args.master_port) == ('10.0.0.1', 6000)
    # an option on the command line wins over PET_*
    args = parser.parse_args(['--nproc_per_node', '8', '--node-rank', '0', 'pretrain_gpt.py'])
    assert (args.nproc_per_node, args.node_rank) == ('8', 0)


@pytest.mark.parametrize('spelling', [['--nproc_per_node', '2', '--nnodes', '3', '--node_rank', '1', '--master_addr', 'h0',
                                       '--master_port', '7000'],
                                      ['--nproc-per-node', '2', '--nnodes', '3', '--node-rank', '1', '--master-addr', 'h0',
                                       '--master-port', '7000']])
def test_both_spellings(torchrun: ModuleType, spelling: list[str]) -> None:
    args = torchrun.build_parser().parse_args(spelling + ['pretrain_gpt.py', '--seq-length', '8'])
    assert (args.nproc_per_node, args.nnodes, args.node_rank, args.master_addr, args.master_port) == ('2', '3', 1, 'h0', 7000)
    assert args.training_script == 'pretrain_gpt.py'
    assert args.training_script_args == ['--seq-length', '8']


def test_options_after_the_script_are_the_scripts(torchrun: ModuleType) -> None:
    args = torchrun.build_parser().parse_args(['x.py', '--nproc_per_node', '4'])
    assert args.nproc_per_node == '1'
    assert args.training_script_args == ['--nproc_per_node', '4']


def test_an_unknown_option_before_the_script_is_rejected(torchrun: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        torchrun.build_parser().parse_args(['--nprocs', '2', 'x.py'])
    assert exited.value.code == 2
    assert 'torchrun: error:' in capsys.readouterr().err


def test_worker_environment(torchrun: ModuleType) -> None:
    """local_elastic_agent._start_workers with the static rendezvous: ranks node by node."""
    args = torchrun.build_parser().parse_args(['--nproc_per_node', '4', '--nnodes', '2', '--node_rank', '1',
                                               '--master_addr', 'h0', '--master_port', '7000', 'x.py'])
    env = torchrun.worker_env(args, 2, 4, 2, '/tmp/err.json')
    assert {k: env[k] for k in ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'LOCAL_WORLD_SIZE', 'GROUP_RANK', 'GROUP_WORLD_SIZE',
                                'ROLE_RANK', 'ROLE_WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT',
                                'TORCHELASTIC_USE_AGENT_STORE', 'TORCHELASTIC_RESTART_COUNT')} == {
        'RANK': '6', 'LOCAL_RANK': '2', 'WORLD_SIZE': '8', 'LOCAL_WORLD_SIZE': '4', 'GROUP_RANK': '1',
        'GROUP_WORLD_SIZE': '2', 'ROLE_RANK': '6', 'ROLE_WORLD_SIZE': '8', 'MASTER_ADDR': 'h0', 'MASTER_PORT': '7000',
        'TORCHELASTIC_USE_AGENT_STORE': 'True', 'TORCHELASTIC_RESTART_COUNT': '0'}


def test_worker_argv(torchrun: ModuleType) -> None:
    parser = torchrun.build_parser()
    assert torchrun.worker_argv(parser.parse_args(['x.py', '-a'])) == [sys.executable, '-u', 'x.py', '-a']
    assert torchrun.worker_argv(parser.parse_args(['-m', 'pkg.mod'])) == [sys.executable, '-u', '-m', 'pkg.mod']
    assert torchrun.worker_argv(parser.parse_args(['--no-python', 'bash', 'run.sh'])) == ['bash', 'run.sh']


def test_failure_block_names_the_first_failure_as_root_cause(torchrun: ModuleType) -> None:
    workers = [torchrun.Worker(2, 2, 4242, ''), torchrun.Worker(0, 0, 4240, '')]
    workers[0].exitcode, workers[1].exitcode = -9, 1
    block = torchrun.failure_block('pretrain_gpt.py', workers)
    root = block.split('Root Cause (first observed failure):\n')[1]
    assert root.startswith('[0]:\n')
    assert '  rank      : 2 (local_rank: 2)\n  exitcode  : -9 (pid: 4242)' in root
    assert 'traceback : Signal 9 (SIGKILL) received by PID 4242' in root
    others = block.split('Failures:\n')[1].split('\n---')[0]
    assert 'exitcode  : 1 (pid: 4240)' in others
    assert 'To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html' in others
    assert '\npretrain_gpt.py FAILED\n' in block
    single = torchrun.failure_block('pretrain_gpt.py', workers[:1])
    assert 'Failures:\n  <NO_OTHER_FAILURES>\n' in single
