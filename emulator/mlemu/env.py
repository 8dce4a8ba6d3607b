"""Environment: emulator knobs (MLEMU_*) and the distributed layout torchrun describes.

Every environment variable the emulator reads is listed here so the README can point at one file.
"""
import io
import os
import socket
import sys
from collections.abc import Mapping

# --- emulator knobs -----------------------------------------------------------------------------


def env_ms(name: str, default: float) -> float:
    """A duration in milliseconds from the environment (float allowed, negative treated as 0)."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == '':
        return float(default)
    try:
        return max(0.0, float(raw))
    except ValueError:
        sys.stderr.write(f'mlemu: ignoring {name}={raw!r} (not a number of milliseconds)\n')
        return float(default)


def iter_time_ms() -> float:
    """MLEMU_ITER_TIME_MS: wall time of one training iteration (default 50)."""
    return env_ms('MLEMU_ITER_TIME_MS', 50)


def save_time_ms() -> float:
    """MLEMU_SAVE_TIME_MS: extra time spent writing one checkpoint, spread over its shards (default 0)."""
    return env_ms('MLEMU_SAVE_TIME_MS', 0)


def eval_question_ms() -> float:
    """MLEMU_EVAL_QUESTION_MS: time evaluation.py spends per question (default 5)."""
    return env_ms('MLEMU_EVAL_QUESTION_MS', 5)


def convert_time_ms() -> float:
    """MLEMU_CONVERT_TIME_MS: total time convert_ckpt.py spends moving weights (default 200)."""
    return env_ms('MLEMU_CONVERT_TIME_MS', 200)


def hccl_delay_ms() -> float:
    """MLEMU_HCCL_DELAY_MS: how long an injected hccl fault stays silent before erroring (default 0).

    A real HCCL timeout only surfaces after HCCL_EXEC_TIMEOUT seconds of a stalled collective.
    """
    return env_ms('MLEMU_HCCL_DELAY_MS', 0)


def marker_dir(default: str) -> str:
    """MLEMU_MARKER_DIR: where fault markers go instead of the job's output directory.

    A job without an output directory (a benchmark's --mock-data run without --save) would
    otherwise leave its markers in the working directory, the ModelLink checkout.
    """
    return os.environ.get('MLEMU_MARKER_DIR') or default


def faults_spec() -> str:
    """MLEMU_FAULTS: comma list of [scope:]kind@iteration, see faults.py."""
    return os.environ.get('MLEMU_FAULTS', '')


def slowdown_spec() -> str:
    """MLEMU_SLOWDOWN: comma list of <case>=<factor> (`*` for every job), see throughput.py."""
    return os.environ.get('MLEMU_SLOWDOWN', '')


def bench_case() -> str | None:
    """LINKFLOW_BENCH_CASE: the benchmark case a job measures (linkflow exports it); MLEMU_SLOWDOWN keys match it."""
    return os.environ.get('LINKFLOW_BENCH_CASE', '').strip() or None


def time_scale() -> float | None:
    """MLEMU_TIME_SCALE: wall seconds slept per modelled second of a table job; None (unset) = sleep
    min(modelled time, MLEMU_ITER_TIME_MS). Non-numeric or negative values are ignored (None)."""
    raw = os.environ.get('MLEMU_TIME_SCALE', '').strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float('inf'):
        sys.stderr.write(f'mlemu: ignoring MLEMU_TIME_SCALE={raw!r} (not a number >= 0)\n')
        return None
    return value


def env_seconds(name: str, default: float) -> float:
    """A duration in seconds from the environment; unset, empty, non-numeric or <= 0 gives `default`."""
    raw = os.environ.get(name, '').strip()
    try:
        value = float(raw) if raw else 0.0
    except ValueError:
        sys.stderr.write(f'mlemu: ignoring {name}={raw!r} (not a number of seconds)\n')
        value = 0.0
    return value if value > 0 else float(default)


def rdzv_timeout_s(default_s: float) -> float:
    """MLEMU_RDZV_TIMEOUT_S: how long nodes wait for each other at start-up.

    The default is Megatron's --distributed-timeout-minutes (init_process_group's timeout, which
    torch's TCPStore rendezvous uses); the variable only exists to make tests fast.
    """
    return env_seconds('MLEMU_RDZV_TIMEOUT_S', default_s)


def hccl_exec_timeout_s() -> float:
    """HCCL_EXEC_TIMEOUT (real HCCL name, seconds, default 1800): how long a collective waits for a silent peer."""
    return env_seconds('HCCL_EXEC_TIMEOUT', 1800)


def group_rank() -> int:
    """GROUP_RANK (set by torchrun): this node's index; node-scoped faults match it. 0 without torchrun."""
    return _int_env(os.environ, 'GROUP_RANK', 0)


def local_world_size() -> int:
    """LOCAL_WORLD_SIZE (set by torchrun): ranks per node. 1 without torchrun."""
    return max(1, _int_env(os.environ, 'LOCAL_WORLD_SIZE', 1))


# --- distributed layout ---------------------------------------------------------------------------


class Dist:
    """Which global ranks this process stands for.

    Under torchrun (the stand-in, like torch's elastic agent) every worker process is exactly one
    rank: RANK, LOCAL_RANK, WORLD_SIZE come from the agent. Run directly with python3 (no
    launcher, no LOCAL_RANK) a process stands for every rank from RANK to WORLD_SIZE - 1 (so a
    plain `python3 pretrain_gpt.py` is the whole job, WORLD_SIZE 1 by default).
    """

    world_size: int  # WORLD_SIZE (default 1)
    rank: int  # RANK (default 0): the first rank this process stands for
    first: int  # first and last rank this process stands for (both included)
    last: int
    hostname: str

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.world_size = _int_env(env, 'WORLD_SIZE', 1)
        self.rank = _int_env(env, 'RANK', 0)
        count = 1 if 'LOCAL_RANK' in env else self.world_size - self.rank
        self.first = self.rank
        self.last = min(self.rank + max(count, 1), self.world_size) - 1
        self.hostname = socket.gethostname()

    def hosts(self, rank: int) -> bool:
        return self.first <= rank <= self.last

    @property
    def hosts_rank0(self) -> bool:
        return self.hosts(0)

    @property
    def hosts_last_rank(self) -> bool:
        return self.hosts(self.world_size - 1)

    def hosted_ranks(self) -> range:
        return range(self.first, self.last + 1)


def _int_env(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == '':
        return default
    try:
        return int(raw)
    except ValueError:
        return default


def line_buffered_stdio() -> None:
    """Megatron prints with flush=True; line buffering gives the same promptness when piped.

    Each line also leaves in one write. The ranks of a node share torchrun's stdout and stderr, and
    under `python -u` (torchrun's way to start a worker) print() writes the text and its newline
    separately, so rank 0's "saving checkpoint" could land inside the last rank's iteration line. A
    buffered layer flushed at each newline writes a line at once (below the pipe's atomic size), as
    tracebacks.write does for error blocks.
    """
    for name in ('stdout', 'stderr'):
        stream = getattr(sys, name)
        try:
            stream.flush()
            raw = io.FileIO(stream.fileno(), 'w', closefd=False)
        except (AttributeError, ValueError, OSError):
            continue  # replaced by something without a file descriptor: leave it
        lines = io.TextIOWrapper(io.BufferedWriter(raw), encoding=stream.encoding, errors=stream.errors, line_buffering=True)
        setattr(sys, name, lines)
