"""Which ranks a process stands for (mlemu/env.py Dist) and the emulator's numeric knobs."""

import pytest

from mlemu import env
from mlemu.env import Dist


def test_a_plain_process_is_the_whole_job() -> None:
    d = Dist({})
    assert (d.world_size, d.rank, d.first, d.last) == (1, 0, 0, 0)
    assert d.hosts_rank0 and d.hosts_last_rank


def test_without_local_rank_a_process_is_every_rank_from_rank_on() -> None:
    d = Dist({'WORLD_SIZE': '8', 'RANK': '4'})
    assert list(d.hosted_ranks()) == [4, 5, 6, 7]
    assert not d.hosts_rank0 and d.hosts_last_rank
    assert list(Dist({'WORLD_SIZE': '4'}).hosted_ranks()) == [0, 1, 2, 3]


def test_under_torchrun_a_worker_is_one_rank() -> None:
    d = Dist({'WORLD_SIZE': '8', 'RANK': '5', 'LOCAL_RANK': '1'})
    assert list(d.hosted_ranks()) == [5]
    assert d.hosts(5) and not d.hosts(4) and not d.hosts(6)
    assert not d.hosts_rank0 and not d.hosts_last_rank
    assert Dist({'WORLD_SIZE': '8', 'RANK': '7', 'LOCAL_RANK': '3'}).hosts_last_rank


def test_unreadable_numbers_fall_back_to_the_defaults() -> None:
    d = Dist({'WORLD_SIZE': 'many', 'RANK': ''})
    assert (d.world_size, d.rank) == (1, 0)


def test_env_ms(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert env.iter_time_ms() == 50.0
    monkeypatch.setenv('MLEMU_ITER_TIME_MS', '12.5')
    assert env.iter_time_ms() == 12.5
    monkeypatch.setenv('MLEMU_ITER_TIME_MS', '-3')
    assert env.iter_time_ms() == 0.0
    monkeypatch.setenv('MLEMU_ITER_TIME_MS', 'slow')
    assert env.iter_time_ms() == 50.0
    assert 'ignoring MLEMU_ITER_TIME_MS' in capsys.readouterr().err


@pytest.mark.parametrize(('raw', 'expected'), [('', None), ('1', 1.0), ('0', 0.0), ('0.001', 0.001), ('-1', None),
                                                ('x', None), ('inf', None), ('nan', None)])
def test_time_scale(monkeypatch: pytest.MonkeyPatch, raw: str, expected: float | None) -> None:
    monkeypatch.setenv('MLEMU_TIME_SCALE', raw)
    assert env.time_scale() == expected


def test_seconds_knobs(monkeypatch: pytest.MonkeyPatch) -> None:
    assert env.rdzv_timeout_s(600) == 600.0
    monkeypatch.setenv('MLEMU_RDZV_TIMEOUT_S', '2')
    assert env.rdzv_timeout_s(600) == 2.0
    monkeypatch.setenv('MLEMU_RDZV_TIMEOUT_S', '0')
    assert env.rdzv_timeout_s(600) == 600.0
    monkeypatch.delenv('HCCL_EXEC_TIMEOUT', raising=False)
    assert env.hccl_exec_timeout_s() == 1800.0
