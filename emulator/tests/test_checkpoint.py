"""Checkpoint layout as Megatron core_r0.6.0 names it (checkpointing.py get_checkpoint_name), which rank writes
which shard (parallel_state's rank order tp-cp-ep-dp-pp, data-parallel rank 0 saves), and the tracker."""

import json
import os
from argparse import Namespace
from pathlib import Path

import pytest

from mlemu import checkpoint, env
from mlemu.checkpoint import layout, owner_rank, read_tracker, shard_dir_name, shard_path, write_tracker
from mlemu.megatron import Runtime


def megatron_checkpoint_name(path: str, iteration: int, release: bool, tp_size: int, pp_size: int, ep_size: int,
                             tp_rank: int, pp_rank: int, ep_rank: int) -> str:
    """get_checkpoint_name of megatron/training/checkpointing.py (core_r0.6.0), with the parallel sizes as arguments."""
    directory = 'release' if release else f'iter_{iteration:07d}'
    pipeline_parallel = pp_size > 1
    expert_parallel = ep_size > 1
    if not pipeline_parallel:
        common_path = os.path.join(path, directory, f'mp_rank_{tp_rank:02d}')
    else:
        common_path = os.path.join(path, directory, f'mp_rank_{tp_rank:02d}_{pp_rank:03d}')
    if expert_parallel:
        common_path = common_path + f'_{ep_rank:03d}'
    return os.path.join(common_path, 'model_optim_rng.pt')


# --- names ----------------------------------------------------------------------------------------------------


def test_names_of_the_readme() -> None:
    assert shard_path('/ck', 2000, False, 0, 0, 1) == '/ck/iter_0002000/mp_rank_00/model_optim_rng.pt'
    assert shard_path('/ck', 5, False, 1, 3, 4) == '/ck/iter_0000005/mp_rank_01_003/model_optim_rng.pt'
    assert shard_path('/ck', 5, False, 0, 1, 2, 1, 2) == '/ck/iter_0000005/mp_rank_00_001_001/model_optim_rng.pt'
    assert shard_path('/ck', 0, True, 0, 0, 1) == '/ck/release/mp_rank_00/model_optim_rng.pt'
    assert shard_path('/ck', 5, False, 0, 0, 1, filename='distrib_optim.pt') == '/ck/iter_0000005/mp_rank_00/distrib_optim.pt'


def test_expert_rank_only_with_expert_parallelism() -> None:
    assert shard_dir_name(2, 0, 1) == 'mp_rank_02'
    assert shard_dir_name(2, 0, 1, 0, 1) == 'mp_rank_02'
    assert shard_dir_name(2, 0, 1, 3, 4) == 'mp_rank_02_003'  # PP 1, EP 4: tp and expert rank
    assert shard_dir_name(0, 1, 2, 0, 1) == 'mp_rank_00_001'


def test_iterations_past_seven_digits() -> None:
    assert checkpoint.iter_dir_name(12345678) == 'iter_12345678'


@pytest.mark.parametrize(('tp', 'pp', 'ep'), [(1, 1, 1), (2, 1, 1), (1, 2, 1), (8, 4, 1), (2, 2, 2), (1, 1, 4), (4, 1, 2)])
@pytest.mark.parametrize(('iteration', 'release'), [(1, False), (2000, False), (0, True)])
def test_every_shard_is_named_as_megatron_names_it(tp: int, pp: int, ep: int, iteration: int, release: bool) -> None:
    for t in range(tp):
        for p in range(pp):
            for e in range(ep):
                assert shard_path('/save', iteration, release, t, p, pp, e, ep) == \
                    megatron_checkpoint_name('/save', iteration, release, tp, pp, ep, t, p, e)


@pytest.mark.parametrize(('tp', 'pp', 'ep'), [(1, 1, 1), (2, 4, 1), (2, 2, 2), (1, 1, 8), (12, 1, 1)])
def test_layout_is_every_shard_once_in_directory_order(tp: int, pp: int, ep: int) -> None:
    shards = layout(tp, pp, ep)
    assert len(shards) == len(set(shards)) == tp * pp * ep
    assert set(shards) == {(t, p, e) for t in range(tp) for p in range(pp) for e in range(ep)}
    names = [shard_dir_name(t, p, pp, e, ep) for t, p, e in shards]
    assert names == sorted(names)


# --- which rank writes a shard ---------------------------------------------------------------------------------


def test_owners_of_megatrons_docstring_example() -> None:
    """initialize_model_parallel's docstring: 16 GPUs, TP 2, PP 4 (DP 2). Data-parallel groups [g0, g2], [g1, g3],
    [g4, g6], ...; pipeline groups [g0, g4, g8, g12], [g1, g5, g9, g13], ... The shard (t, p) is saved by the first
    rank of its data-parallel group."""
    owners = {(t, p): owner_rank(t, p, 0, tp=2, dp=2) for t in range(2) for p in range(4)}
    assert owners == {(0, 0): 0, (1, 0): 1, (0, 1): 4, (1, 1): 5, (0, 2): 8, (1, 2): 9, (0, 3): 12, (1, 3): 13}


def rank_coordinates(rank: int, tp: int, cp: int, ep: int, dp: int, pp: int) -> dict[str, int]:
    """RankGenerator(order='tp-cp-ep-dp-pp') of megatron/core/parallel_state.py: the expert-parallel
    dimension is carved out of data parallelism (dp // ep data-parallel ranks per expert rank)."""
    coords = {}
    for name, size in (('tp', tp), ('cp', cp), ('ep', ep), ('dp', dp // ep), ('pp', pp)):
        coords[name] = rank % size
        rank //= size
    return coords


@pytest.mark.parametrize(('tp', 'cp', 'ep', 'dp', 'pp'), [
    (1, 1, 1, 1, 1), (2, 1, 1, 4, 1), (1, 1, 1, 2, 4), (2, 1, 1, 2, 2), (2, 2, 1, 2, 2), (1, 1, 2, 4, 2), (2, 1, 4, 4, 1),
])
def test_owner_is_data_parallel_rank_0_of_its_shard(tp: int, cp: int, ep: int, dp: int, pp: int) -> None:
    expected = {}
    for rank in range(tp * cp * dp * pp):
        c = rank_coordinates(rank, tp, cp, ep, dp, pp)
        if c['dp'] == 0 and c['cp'] == 0:
            assert (c['tp'], c['pp'], c['ep']) not in expected
            expected[(c['tp'], c['pp'], c['ep'])] = rank
    assert set(expected) == set(layout(tp, pp, ep))
    for t, p, e in layout(tp, pp, ep):
        assert owner_rank(t, p, e, tp, dp, cp) == expected[(t, p, e)]


# --- the tracker ---------------------------------------------------------------------------------------------


def test_tracker_reading_as_read_metadata(tmp_path: Path) -> None:
    d = str(tmp_path)
    assert read_tracker(d) is None
    tracker = tmp_path / 'latest_checkpointed_iteration.txt'
    tracker.write_text('2000')
    assert read_tracker(d) == (2000, False)
    tracker.write_text('  15\n')
    assert read_tracker(d) == (15, False)
    tracker.write_text('release')
    assert read_tracker(d) == (0, True)
    tracker.write_text('iter_15')
    assert read_tracker(d) == ('invalid', 'iter_15')
    tracker.write_text('')
    assert read_tracker(d) == ('invalid', '')


def test_write_tracker_leaves_only_the_tracker(tmp_path: Path) -> None:
    write_tracker(str(tmp_path), 30)
    write_tracker(str(tmp_path), 40)
    assert os.listdir(tmp_path) == ['latest_checkpointed_iteration.txt']
    assert (tmp_path / 'latest_checkpointed_iteration.txt').read_text() == '40'
    assert read_tracker(str(tmp_path)) == (40, False)


# --- save: each process writes the shards it owns; rank 0 the tracker --------------------------------------


def save_as(rank: int, world: int, save_dir: str, tp: int, pp: int, distrib_optim: bool = False) -> None:
    args = Namespace(tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp,
                           data_parallel_size=world // (tp * pp), context_parallel_size=1,
                           num_layers=4, hidden_size=64, params_dtype='torch.bfloat16',
                           accumulate_allreduce_grads_in_fp32=True)
    rt = Runtime('pretrain_gpt.py', args, env.Dist({'WORLD_SIZE': str(world), 'RANK': str(rank), 'LOCAL_RANK': str(rank % 8)}))
    checkpoint.save_checkpoint(rt, save_dir, 10, args, list(checkpoint.ALL_KEYS), with_distrib_optim=distrib_optim,
                               trainable=1000)


def files_under(root: Path) -> set[str]:
    return {os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs}


def test_each_rank_writes_its_own_shard(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # TP 2, PP 2, DP 2 on 8 ranks: shard owners 0, 1 (stage 0) and 4, 5 (stage 1)
    for rank, shard in [(1, 'mp_rank_01_000'), (4, 'mp_rank_00_001'), (5, 'mp_rank_01_001')]:
        out = tmp_path / f'rank{rank}'
        save_as(rank, 8, str(out), 2, 2)
        assert files_under(out) == {f'iter_0000010/{shard}/model_optim_rng.pt'}
    for rank in (2, 3, 6, 7):  # data-parallel rank 1
        out = tmp_path / f'rank{rank}'
        save_as(rank, 8, str(out), 2, 2)
        assert not out.exists()
    assert capsys.readouterr().out == ''  # print_rank_0


def test_rank_0_writes_its_shard_then_the_tracker(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_as(0, 8, str(tmp_path), 2, 2, distrib_optim=True)
    assert files_under(tmp_path) == {'iter_0000010/mp_rank_00_000/model_optim_rng.pt',
                                     'iter_0000010/mp_rank_00_000/distrib_optim.pt',
                                     'latest_checkpointed_iteration.txt'}
    assert read_tracker(str(tmp_path)) == (10, False)
    shard = json.loads((tmp_path / 'iter_0000010/mp_rank_00_000/model_optim_rng.pt').read_text())
    assert (shard['iteration'], shard['tp_rank'], shard['pp_rank']) == (10, 0, 0)
    assert shard['args']['tensor_model_parallel_size'] == 2
    optim = json.loads((tmp_path / 'iter_0000010/mp_rank_00_000/distrib_optim.pt').read_text())
    assert optim['per_bucket_numel_unpadded'] == '[{(torch.bfloat16, torch.float32): [1000]}]'
    assert capsys.readouterr().out.splitlines() == [f'saving checkpoint at iteration      10 to {tmp_path} in torch format',
                                                    f'  successfully saved checkpoint at iteration      10 to {tmp_path}']


def test_a_process_without_launcher_writes_every_shard(tmp_path: Path) -> None:
    args = Namespace(tensor_model_parallel_size=2, pipeline_model_parallel_size=2, data_parallel_size=1)
    rt = Runtime('pretrain_gpt.py', args, env.Dist({'WORLD_SIZE': '4'}))
    checkpoint.save_checkpoint(rt, str(tmp_path), 3, args, [])
    assert files_under(tmp_path) == {f'iter_0000003/{n}/model_optim_rng.pt'
                                     for n in ('mp_rank_00_000', 'mp_rank_00_001', 'mp_rank_01_000', 'mp_rank_01_001')} | \
        {'latest_checkpointed_iteration.txt'}


def test_a_file_the_emulator_did_not_write_counts_as_complete(tmp_path: Path) -> None:
    path = tmp_path / 'model_optim_rng.pt'
    path.write_bytes(b'PK\x03\x04 a torch zip')
    state = checkpoint.read_state(str(path), 7)
    assert state['iteration'] == 7
    assert set(state['keys']) >= {'optimizer', 'rng_state', 'args', 'model'}
