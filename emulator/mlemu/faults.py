"""Fault injection driven by MLEMU_FAULTS.

Syntax: a comma-separated list of  [scope:][nodeN:]kind@iteration
  kind       crash | sigkill | segfault | hccl | oom | nan | hang
  iteration  training iteration at which the fault fires (before that iteration is logged);
             0 = at start-up (the only point the non-training entrypoints have)
  scope      optional; restricts the entry to one entrypoint:
             pretrain | preprocess | convert | evaluation | inference (or the script file name)
  nodeN      optional; restricts the entry to the node whose GROUP_RANK (torchrun --node_rank) is N.
             The two prefixes may come in either order.
Example: MLEMU_FAULTS="crash@35,hang@80"  or  MLEMU_FAULTS="convert:crash@0,pretrain:node1:oom@12"

Each fault acts on ONE rank (every rank is its own process under torchrun): local rank 0 of node N
for a nodeN fault, global rank 0 otherwise. A `nan` fault is agreed on by every rank (Megatron
all-reduces the loss, so every rank sees it). The other ranks see the consequences as on real
hardware: a dead rank's peers fail with an HCCL error at their next collective, a hung one's after
HCCL_EXEC_TIMEOUT.

Each fault fires once per output directory: before it acts it creates the marker
<dir>/.mlemu-fired-[nodeN-]<kind>@<iteration> (so even sigkill leaves it behind); an existing marker
disarms it. That is what lets an orchestrator's retry of the same command (or of the whole gang,
when the nodes share the directory) succeed. The marker is created exclusively, so when several
nodes of a gang share the directory an unscoped fault fires on exactly one of them.
"""
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import NoReturn

from . import env, tracebacks
from .tracebacks import Frame

KINDS = ('crash', 'sigkill', 'segfault', 'hccl', 'oom', 'nan', 'hang')
SCOPES = {
    'pretrain': 'pretrain_gpt.py', 'pretrain_gpt': 'pretrain_gpt.py', 'train': 'pretrain_gpt.py',
    'preprocess': 'preprocess_data.py', 'preprocess_data': 'preprocess_data.py',
    'convert': 'convert_ckpt.py', 'convert_ckpt': 'convert_ckpt.py',
    'evaluation': 'evaluation.py', 'evaluate': 'evaluation.py', 'eval': 'evaluation.py',
    'inference': 'inference.py',
}


class Fault:
    """One entry of MLEMU_FAULTS."""

    kind: str  # one of KINDS
    iteration: int  # the training iteration it fires at (0: start-up)
    scope: str | None  # an entrypoint file name (a value of SCOPES), or None for all
    node: int | None  # a GROUP_RANK, or None for every node

    def __init__(self, kind: str, iteration: int, scope: str | None = None, node: int | None = None) -> None:
        self.kind = kind
        self.iteration = iteration
        self.scope = scope
        self.node = node

    @property
    def marker_name(self) -> str:
        node = '' if self.node is None else f'node{self.node}-'
        return f'.mlemu-fired-{node}{self.kind}@{self.iteration}'

    def __repr__(self) -> str:
        return ('' if self.node is None else f'node{self.node}:') + f'{self.kind}@{self.iteration}'


class FaultSpecError(ValueError):
    pass


def parse_spec(spec: str) -> list[Fault]:
    """MLEMU_FAULTS -> its faults, in order. Raises FaultSpecError (a ValueError) on the first bad entry."""
    faults: list[Fault] = []
    for raw in spec.split(','):
        item = raw.strip()
        if not item:
            continue
        scope: str | None = None
        node: int | None = None
        *prefixes, item = item.split(':')
        for name in (p.strip() for p in prefixes):
            node_match = re.fullmatch(r'node(\d+)', name)
            entry = SCOPES.get(name) or (name if name.endswith('.py') else None)
            if node_match and node is None:
                node = int(node_match.group(1))
            elif entry and scope is None:
                scope = entry
            else:
                raise FaultSpecError(f'unknown or repeated scope {name!r} in {raw.strip()!r} '
                                     f'(expected nodeN and/or one of {", ".join(sorted(set(SCOPES)))})')
        kind, sep, at = item.partition('@')
        kind = kind.strip()
        if not sep or kind not in KINDS:
            raise FaultSpecError(f'bad entry {raw.strip()!r}: expected [scope:][nodeN:]kind@iteration '
                                 f'with kind in {", ".join(KINDS)}')
        try:
            iteration = int(at.strip())
        except ValueError:
            raise FaultSpecError(f'bad iteration in {raw.strip()!r}') from None
        if iteration < 0:
            raise FaultSpecError(f'negative iteration in {raw.strip()!r}')
        faults.append(Fault(kind, iteration, scope, node))
    return faults


class FaultInjector:
    """The faults of MLEMU_FAULTS that apply to one entrypoint."""

    entrypoint: str
    all_faults: list[Fault]  # the entrypoint's faults, every node's (all ranks agree on nan faults)
    faults: list[Fault]  # those of this node

    def __init__(self, entrypoint: str, spec: str | None = None) -> None:
        self.entrypoint = entrypoint
        try:
            all_faults = parse_spec(env.faults_spec() if spec is None else spec)
        except FaultSpecError as e:
            sys.stderr.write(f'mlemu: invalid MLEMU_FAULTS: {e}\n')
            sys.exit(2)
        # Every rank of the job keeps the same list (whatever its node), so that all of them know
        # where a nan fault's all-reduce happens.
        self.all_faults = [f for f in all_faults if f.scope in (None, entrypoint)]
        node = env.group_rank()
        self.faults = [f for f in self.all_faults if f.node in (None, node)]
        # Called with a fault just before it acts (MindIO TTP's dying-gasp checkpoint, mlemu/msl.py).
        self.before_act: Callable[[Fault], None] | None = None

    def due(self, iteration: int, marker_dir: str) -> list[Fault]:
        """Armed faults for this iteration (those without a marker in marker_dir)."""
        return [f for f in self.faults
                if f.iteration == iteration and not os.path.exists(os.path.join(marker_dir, f.marker_name))]

    def nan_scheduled(self, iteration: int) -> bool:
        """Whether any rank of the job may start a nan fault at `iteration` (the ranks then agree on it)."""
        return any(f.kind == 'nan' and f.iteration == iteration for f in self.all_faults)

    def check(self, iteration: int, marker_dir: str, stack: list[Frame], dist: env.Dist | None = None,
              training: bool = True) -> bool:
        """Fires every armed fault for `iteration` whose rank this process stands for. Returns True if a
        `nan` fault started here (the caller lets every rank know, see nan_scheduled).

        `stack` is the fabricated traceback of the current code location; during training the
        kind-specific tail (forward pass for crash/oom, all-reduce for hccl) is appended.
        """
        started_nan = False
        for fault in self.due(iteration, marker_dir):
            rank = target_rank(fault)
            if dist is not None and not dist.hosts(rank):
                continue  # another rank's fault
            if not claim_marker(marker_dir, fault):
                continue  # fired already (another node of the gang sharing the directory got there first)
            if fault.kind == 'nan':
                started_nan = True
            else:
                if self.before_act is not None:
                    self.before_act(fault)
                act(fault, stack, rank, training)
        return started_nan


def target_rank(fault: Fault) -> int:
    """The rank a fault acts on: local rank 0 of its node, or global rank 0 for an unscoped fault."""
    return 0 if fault.node is None else fault.node * env.local_world_size()


def claim_marker(marker_dir: str, fault: Fault) -> bool:
    """Creates the fault's marker; False if it already exists (the fault has fired already)."""
    os.makedirs(marker_dir, exist_ok=True)
    path = os.path.join(marker_dir, fault.marker_name)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, 'w', encoding='utf-8') as f:
        f.write(f'{fault!r} fired at {datetime.now().isoformat(timespec="seconds")} '
                f'pid {os.getpid()} node {env.group_rank()}\n')
        f.flush()
        os.fsync(f.fileno())
    return True


def _stamp() -> tuple[str, str]:
    now = datetime.now()
    full = now.strftime('%Y-%m-%d-%H:%M:%S.') + f'{now.microsecond // 1000:03d}.{now.microsecond % 1000:03d}'
    return now.strftime('%Y-%m-%d-%H:%M:%S'), full


def act(fault: Fault, stack: list[Frame], rank: int = 0, training: bool = True) -> NoReturn:
    """Carries out a non-nan fault; never returns."""
    sys.stdout.flush()
    kind = fault.kind
    if kind == 'sigkill':
        os.kill(os.getpid(), signal.SIGKILL)
    elif kind == 'segfault':
        signal.signal(signal.SIGSEGV, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGSEGV)
    elif kind == 'hang':
        # A rank stuck in a collective: alive, silent, still killable (default SIGTERM/SIGINT).
        while True:
            time.sleep(3600)
    elif kind == 'crash':
        _crash(stack + (tracebacks.FORWARD if training else []), rank)
    elif kind == 'oom':
        _oom(stack + (tracebacks.FORWARD if training else []), rank)
    elif kind == 'hccl':
        _hccl(stack + (tracebacks.ALLREDUCE if training else []), rank)
    time.sleep(1)  # a signal may take a moment to be delivered
    os._exit(1)


def _crash(stack: list[Frame], rank: int) -> NoReturn:
    short, full = _stamp()
    preamble = (
        'EZ9999: Inner Error!\n'
        f'EZ9999: {full}  The error from device(chipId:{rank % 8}, dieId:0), serial number is 1, there is an aicore error, '
        'core id is 12, error code = 0x800000, dump info: pc start: 0x12c0c0bb6000, current: 0x12c0c0bb6254, '
        'vec error info: 0x0, mte error info: 0x2000000, ifu error info: 0x0, ccu error info: 0x0, cube error info: 0x0, '
        'biu error info: 0x0, aic error mask: 0x65000200d000288, para base: 0x12c1400cb000.'
        '[FUNC:ProcessStarsCoreErrorInfo][FILE:device_error_proc.cc][LINE:1169]\n'
        '        TraceBack (most recent call last):\n'
        '        The extend info: errcode:(0x800000, 0, 0) errorStr: The DDR address of the MTE instruction is out of range. '
        'fixp_error0 info: 0x0, fixp_error1 info: 0x0, fsmId:0, tslot:0, thread:0, ctxid:0, blk:0, sublk:0, subErrType:4.'
        '[FUNC:ProcessStarsCoreErrorInfo][FILE:device_error_proc.cc][LINE:1181]\n'
        '        Kernel task happen error, retCode=0x31, [vector core exception].'
        '[FUNC:PreCheckTaskErr][FILE:davinci_kernel_task.cc][LINE:1222]\n'
        '        AIV Kernel happen error, retCode=0x31.[FUNC:GetError][FILE:stream.cc][LINE:1082]\n'
    )
    message = (
        'The Inner error is reported as above. The process exits for this inner error, and the current working '
        'operator name is MatMulV2.\n'
        'Since the operator is called asynchronously, the stacktrace may be inaccurate. If you want to get the accurate '
        'stacktrace, pleace set the environment variable ASCEND_LAUNCH_BLOCKING=1.\n'
        f'[ERROR] {short} (PID:{os.getpid()}, Device:{rank % 8}, RankID:{rank}) ERR00100 PTA call acl api failed'
    )
    tracebacks.die(stack, 'RuntimeError', message, preamble=preamble)


def _oom(stack: list[Frame], rank: int) -> NoReturn:
    """A device out of memory, in the three forms a CANN log prints it.

    torch_npu's caching allocator (torch_npu/csrc/core/npu/NPUCachingAllocator.cpp) raises
    `NPU out of memory. Tried to allocate ...` once the runtime's malloc failed, after CANN logged the
    failure as EL0004 with the rtMalloc line (reference/modellink/real-sources.md, "Ascend error
    texts"). The other ranks, each its own process, then block in the next collective on a peer that
    is gone and fail with HCCL errors of their own (gang.py): the echoes of the root cause.
    """
    _, full = _stamp()
    preamble = (
        f'EL0004: {full} Failed to allocate memory.\n'
        '        Possible Cause: Available memory is insufficient.\n'
        '        Solution: Close applications not in use.\n'
        '        TraceBack (most recent call last):\n'
        '        rtMalloc execute failed, reason=[driver error:out of memory]'
        '[FUNC:FuncErrorReason][FILE:error_message_manage.cc][LINE:53]\n'
        '        alloc device memory failed, runtime result = 207001[FUNC:ReportCallError][FILE:log_inner.cpp][LINE:161]\n'
    )
    message = (
        f'NPU out of memory. Tried to allocate 2.00 GiB (NPU {rank % 8}; 60.97 GiB total capacity; '
        '56.51 GiB already allocated; 56.51 GiB current active; 1.18 GiB free; 58.73 GiB reserved in total by PyTorch) '
        'If reserved memory is >> allocated memory try setting max_split_size_mb to avoid fragmentation.'
    )
    tracebacks.die(stack, 'RuntimeError', message, preamble=preamble)


def _hccl(stack: list[Frame], rank: int) -> NoReturn:
    delay = env.hccl_delay_ms()
    if delay:
        time.sleep(delay / 1000.0)
    hccl_timeout(stack, rank, rank + 1 if rank == 0 else rank - 1)


def _hccl_error_line(rank: int) -> str:
    short, _ = _stamp()
    return f'[ERROR] {short} (PID:{os.getpid()}, Device:{rank % 8}, RankID:{rank}) ERR02200 DIST call hccl api failed.\n'


def hccl_timeout(stack: Sequence[Frame], rank: int, peer: int) -> NoReturn:
    """What a rank prints when a collective's peer stayed silent for HCCL_EXEC_TIMEOUT; never returns."""
    message, preamble = _hccl_timeout_text(rank, peer)
    tracebacks.die(stack, 'RuntimeError', message, preamble=preamble)


def _hccl_timeout_text(rank: int, peer: int) -> tuple[str, str]:
    """(message, preamble) of the EI0002 notify-wait timeout rank `rank` reports about `peer`."""
    _, full = _stamp()
    preamble = (
        _hccl_error_line(rank) +
        f'EI0002: {full} The wait execution of the Notify register times out. Reason: The Notify register has not '
        f'received the Notify record from remote rank [{peer}].base information: [streamID:[5], taskID[12], '
        'taskType[Notify Wait], tag[AllReduce_127.0.0.1%enp189s0f0_60000_0_1727576100123456]] task information: '
        f'[notify id:[0x0000000100000058], stage:[ffffffff], remote rank:[{peer}]]\n'
        '        Possible Cause: 1. An exception occurs during the execution on some NPUs in the cluster. As a result, '
        'collective communication operation failed.2. The execution speed on some NPU in the cluster is too slow to '
        'complete a communication operation within the timeout interval. (default 1800s, You can set the interval by '
        'using HCCL_EXEC_TIMEOUT.)3. The number of training samples of each NPU is inconsistent.4. In a PyTorch '
        'scenario, the program hangs due to an exception in the data loader or another operation, causing a timeout.\n'
        '        Solution: 1. Check the rank service processes with other errors or no errors in the cluster.2. If this '
        'error is reported for all NPUs, check whether the time difference between the earliest and latest errors is '
        'greater than the connect timeout interval (120s by default). If so, adjust the timeout interval by using the '
        'HCCL_CONNECT_TIMEOUT environment variable.3. Check the connectivity of the communication link between nodes. '
        '(For details, see the TLS command and HCCN connectivity check examples.)\n'
        '        TraceBack (most recent call last):\n'
        '        Notify wait execute failed, device_id=0, stream_id=5, task_id=12, flip_num=0, notify_id=88'
        '[FUNC:GetError][FILE:stream.cc][LINE:1082]\n'
        '        rtStreamSynchronizeWithTimeout execute failed, reason=[notify wait timeout]'
        '[FUNC:FuncErrorReason][FILE:error_message_manage.cc][LINE:53]\n'
        '        synchronize stream failed, runtime result = 507010[FUNC:ReportCallError][FILE:log_inner.cpp][LINE:161]\n'
    )
    message = (
        f'[Rank {rank}] HCCL AllReduce timeout: notify wait timeout (EI0002), error code 507010. '
        'The Inner error is reported as above. The process exits for this inner error, and the current working '
        'operator name is HcclAllreduce.'
    )
    return message, preamble


def hccl_peer_lost(stack: Sequence[Frame], rank: int, peer: int, detail: str) -> NoReturn:
    """What a rank prints when a collective's peer is gone (its connection closed or reset); never returns.

    Real HCCL mostly notices a dead peer only at HCCL_EXEC_TIMEOUT (see hccl_timeout); the emulator
    reports it at once, framed like that error (the wording of the reason is the emulator's own),
    so that a gang fails promptly and together.
    """
    preamble = (
        _hccl_error_line(rank) +
        f'        The connection to remote rank [{peer}] was lost: {detail}. '
        'Reason: the remote process exited or the network between the nodes failed.\n'
        '        Solution: 1. Check the rank service processes with other errors or no errors in the cluster.'
        '2. Check the connectivity of the communication link between nodes.\n'
    )
    message = (
        f'[Rank {rank}] HCCL AllReduce failed: lost the connection to remote rank [{peer}] ({detail}). '
        'The Inner error is reported as above. The process exits for this inner error, '
        'and the current working operator name is HcclAllreduce.'
    )
    tracebacks.die(stack, 'RuntimeError', message, preamble=preamble)
