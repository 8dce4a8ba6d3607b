"""The gang: rendezvous and lock-step collectives between the ranks of a distributed job.

Every rank is its own process (the torchrun stand-in starts one worker per device, as torch's
elastic agent does). Where Megatron calls torch.distributed.init_process_group (env://), each rank
connects to the TCPStore at MASTER_ADDR:MASTER_PORT. As in torch 2.1 with the static rendezvous
backend, that store is served by the elastic agent of node 0 (torchrun sets
TORCHELASTIC_USE_AGENT_STORE=True; torch/distributed/rendezvous.py _create_c10d_store then makes
every rank a client); without an agent store, rank 0 serves it itself (`start_daemon = rank == 0`).

The store (class Store, a thread of the process that serves it) is also where the emulator's
collectives meet: a star, not a ring, since only the synchronisation and the failures have to be
real. A collective carries a few flag bits, OR-ed over the gang, which is all the emulator needs
(Megatron's DistributedSignalHandler all-gathers "SIGTERM received"); a barrier is a collective
without flags.

Failures, as torch and HCCL report them:
  - not everybody joins within the timeout: torch.distributed.DistStoreError (rank 0) or
    DistNetworkError (the others, or anyone who cannot reach the store) traceback, exit 1
  - a peer's process is gone when a collective needs it: HCCL error at once (faults.hccl_peer_lost), exit 1
  - a peer is alive but silent (hung): HCCL EI0002 timeout after HCCL_EXEC_TIMEOUT (faults.hccl_timeout)
Without a gang (one process hosts every rank) every function here is a no-op.
"""
import os
import selectors
import socket
import sys
import threading
import time
from collections.abc import Sequence
from typing import NoReturn

from . import env, faults, tracebacks
from .tracebacks import Frame

STOP = 1  # flag bit: this rank received SIGTERM (--exit-signal-handler)
NAN = 2  # flag bit: this rank's loss became NaN (the loss is all-reduced, so every rank sees it)

_gang: 'Gang | None' = None


def init(dist: env.Dist, timeout_s: float, stack: list[Frame]) -> None:
    """torch.distributed.init_process_group: joins the gang if this process does not host every rank."""
    global _gang
    if _gang is not None or (dist.first == 0 and dist.last == dist.world_size - 1):
        return
    for name in ('MASTER_ADDR', 'MASTER_PORT'):
        if not os.environ.get(name):
            tracebacks.die(stack[:-2] + [('site:torch/distributed/rendezvous.py', 208, '_get_env_or_raise',
                                          'raise _env_error(env_var)')],
                           'ValueError', 'Error initializing torch.distributed using env:// rendezvous: '
                                         f'environment variable {name} expected, but not set')
    port = int(os.environ['MASTER_PORT'])
    # torch/distributed/rendezvous.py _create_c10d_store: rank 0 starts the store's server unless the
    # elastic agent already serves one (TORCHELASTIC_USE_AGENT_STORE, set by torchrun).
    if dist.first == 0 and os.environ.get('TORCHELASTIC_USE_AGENT_STORE') != 'True':
        try:
            Store(port).start()
        except OSError as e:
            _store_error(stack, 'DistNetworkError', bind_error_message(port, e))
    _gang = Gang(dist, os.environ['MASTER_ADDR'], port)
    _gang.rendezvous(timeout_s, stack)


def all_reduce_or(flags: int, stack: Sequence[Frame]) -> int:
    """The gang's OR of every rank's `flags` (just `flags` without a gang)."""
    return flags if _gang is None else _gang.collective('allreduce', flags, stack)


def barrier(stack: Sequence[Frame]) -> None:
    """torch.distributed.barrier over the gang (a collective without flags); a no-op without a gang."""
    if _gang is not None:
        _gang.collective('barrier', 0, stack)


def bind_error_message(port: int, e: OSError) -> str:
    return ('The server socket has failed to listen on any local network address. The server socket has '
            f'failed to bind to [::]:{port} (errno: {e.errno} - {e.strerror}).')


# --- the store (server side) -----------------------------------------------------------------------

def listen(port: int) -> socket.socket:
    """Like torch's TCPStore server: every interface, SO_REUSEADDR (set by create_server) so a re-formed
    gang can bind again while the last one's connections sit in TIME_WAIT. Raises OSError."""
    if socket.has_dualstack_ipv6():
        return socket.create_server(('', port), family=socket.AF_INET6, dualstack_ipv6=True)
    return socket.create_server(('', port))


class Store(threading.Thread):
    """The TCPStore server and the meeting point of the collectives. A daemon thread that sleeps in
    select() until a rank writes: it never busy-waits.

    Protocol (one ASCII line per message):
      rank -> store  `hello <first rank> <ranks> <world size> <timeout s>`   then `<seq>:<op> <flags>`
      store -> rank  `go` | `rdzv-timeout <joined> <world>`                  then `<seq>:<op> <OR of flags>`
                     | `lost <rank>` (a peer's process is gone) | `timeout <rank>` (a peer stayed silent)
    """

    def __init__(self, port: int) -> None:
        """Binds MASTER_PORT at once (raises OSError when it is taken); start() serves it."""
        super().__init__(daemon=True, name='mlemu-store')
        self.server = listen(port)
        self.server.setblocking(False)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.server, selectors.EVENT_READ, None)
        self.buffers: dict[socket.socket, bytes] = {}  # bytes received, not yet a line
        self.ranks: dict[socket.socket, tuple[int, int]] = {}  # (first rank, rank count) once it said hello
        self.world: int | None = None
        self.deadline: float | None = None  # of the rendezvous
        self.formed = False
        self.pending: dict[str, dict[int, int]] = {}  # collective tag -> {first rank: flags}
        self.started: dict[str, float] = {}  # collective tag -> monotonic time of its first arrival
        self.gone: list[int] = []  # first ranks whose process left after the gang formed
        self.ever_connected = threading.Event()

    def connections(self) -> int:
        """Open connections (torchrun's exit barrier waits until every rank has left)."""
        return len(self.buffers)

    def run(self) -> None:
        while True:
            for key, _ in self.sel.select(self._timeout()):
                if key.fileobj is self.server:
                    self._accept()
                else:
                    self._read(key.fileobj)  # type: ignore[arg-type]  # only sockets are registered
            self._check_deadlines()

    def _timeout(self) -> float | None:
        now = time.monotonic()
        ends = [self.deadline] if self.deadline is not None and not self.formed else []
        ends += [t + env.hccl_exec_timeout_s() for t in self.started.values()]
        return None if not ends else max(0.0, min(ends) - now)

    def _accept(self) -> None:
        try:
            conn, _ = self.server.accept()
        except OSError:
            return
        conn.setblocking(True)
        # Collectives are tiny lock-step messages: Nagle + delayed ACKs would add ~40 ms each.
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffers[conn] = b''
        self.sel.register(conn, selectors.EVENT_READ, None)
        self.ever_connected.set()

    def _read(self, conn: socket.socket) -> None:
        try:
            chunk = conn.recv(4096)
        except OSError:
            chunk = b''
        if not chunk:
            self._closed(conn)
            return
        self.buffers[conn] += chunk
        while conn in self.buffers and b'\n' in self.buffers[conn]:
            line, self.buffers[conn] = self.buffers[conn].split(b'\n', 1)
            self._message(conn, line.decode('ascii', 'replace').split())

    def _message(self, conn: socket.socket, words: list[str]) -> None:
        if words and words[0] == 'hello':
            self._hello(conn, words)
        elif len(words) == 2 and conn in self.ranks and self.formed:
            self._contribute(conn, words[0], int(words[1]))
        else:
            self._drop(conn)  # a stranger, or a protocol error

    def _hello(self, conn: socket.socket, words: list[str]) -> None:
        ok = len(words) == 5 and all(w.isdigit() for w in words[1:4])
        first, count, world = (int(w) for w in words[1:4]) if ok else (0, 0, 0)
        taken = {r for f, c in self.ranks.values() for r in range(f, f + c)}
        if not ok or self.formed or (self.world not in (None, world)) or taken & set(range(first, first + count)):
            self._drop(conn)
            return
        self.world = world
        self.ranks[conn] = (first, count)
        if self.deadline is None:
            self.deadline = time.monotonic() + float(words[4])
        if len(taken) + count == world:
            self.formed = True
            for member in list(self.ranks):
                self._send(member, 'go')

    def _contribute(self, conn: socket.socket, tag: str, flags: int) -> None:
        first = self.ranks[conn][0]
        if self.gone:
            self._send(conn, f'lost {self.gone[0]}')  # the collective can never complete
            return
        self.pending.setdefault(tag, {})[first] = flags
        self.started.setdefault(tag, time.monotonic())
        if len(self.pending[tag]) == len(self.ranks):
            total = 0
            for value in self.pending.pop(tag).values():
                total |= value
            del self.started[tag]
            for member in list(self.ranks):
                self._send(member, f'{tag} {total}')

    def _closed(self, conn: socket.socket) -> None:
        """A rank's process is gone. Before the gang formed it simply never joined; afterwards every
        collective that waits for it, now or later, fails with an HCCL error in the ranks still there."""
        member = self.ranks.get(conn)
        self._forget(conn)
        if member is None or not self.formed:
            return
        first = member[0]
        if first not in self.gone:
            self.gone.append(first)
        for tag, contributed in list(self.pending.items()):
            if first not in contributed:
                self._fail(tag, f'lost {self.gone[0]}')

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        if not self.formed and self.deadline is not None and now >= self.deadline:
            joined = sum(c for _, c in self.ranks.values())
            for member in list(self.ranks):
                self._send(member, f'rdzv-timeout {joined} {self.world}')
                self._forget(member)
            self.deadline, self.world = None, None
        for tag, t0 in list(self.started.items()):
            if now - t0 >= env.hccl_exec_timeout_s():
                contributed = self.pending[tag]
                silent = min(f for f, _ in self.ranks.values() if f not in contributed) if \
                    len(contributed) < len(self.ranks) else min(contributed)
                self._fail(tag, f'timeout {silent}')

    def _fail(self, tag: str, message: str) -> None:
        contributed = self.pending.pop(tag, {})
        self.started.pop(tag, None)
        for member, (first, _) in list(self.ranks.items()):
            if first in contributed:
                self._send(member, message)

    def _send(self, conn: socket.socket, text: str) -> None:
        try:
            conn.sendall((text + '\n').encode('ascii'))
        except OSError:
            self._closed(conn)

    def _drop(self, conn: socket.socket) -> None:
        self._forget(conn)

    def _forget(self, conn: socket.socket) -> None:
        if conn in self.buffers:
            del self.buffers[conn]
            self.ranks.pop(conn, None)
            try:
                self.sel.unregister(conn)
            except (KeyError, ValueError):
                pass
            conn.close()


# --- a rank (client side) ----------------------------------------------------------------------------

class Gang:
    """This process's connection to the store: the rendezvous, then one collective after another."""

    def __init__(self, dist: env.Dist, addr: str, port: int) -> None:
        self.rank = dist.first  # the rank named in error messages
        self.count = dist.last - dist.first + 1  # ranks this process stands for (1 under torchrun)
        self.world = dist.world_size
        self.addr, self.port = addr, port
        self.conn: socket.socket = None  # type: ignore[assignment]  # connected by rendezvous(), before any use
        self.buffer = b''
        self.seq = 0  # collectives so far: the tag of the next is `<seq + 1>:<op>`

    def rendezvous(self, timeout_s: float, stack: list[Frame]) -> None:
        deadline = time.monotonic() + timeout_s
        self._connect(deadline, timeout_s, stack)
        self._send(f'hello {self.rank} {self.count} {self.world} {timeout_s}', stack, during_init=True)
        # The store enforces the timeout (it knows who joined); a little slack for the answer.
        words = self._recv(stack, deadline + 10, during_init=True).split()
        if words[:1] == ['rdzv-timeout']:
            if self.rank == 0:
                _store_error(stack, 'DistStoreError', f'Timed out after {_secs(timeout_s)} seconds waiting for clients. '
                                                      f'{words[1]}/{words[2]} clients joined.')
            _store_error(stack, 'DistNetworkError', 'Socket Timeout')
        if words != ['go']:
            _store_error(stack, 'DistNetworkError', 'Connection reset by peer')

    def _connect(self, deadline: float, timeout_s: float, stack: list[Frame]) -> None:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                _store_error(stack, 'DistNetworkError',
                             f'The client socket has timed out after {_secs(timeout_s)}s while trying to connect to '
                             f'({self.addr}, {self.port}).')
            try:
                # No warning per refused attempt (torch prints some): "Connection refused" lines early in a
                # log would make a later, unrelated failure look like a communication one to a classifier.
                self.conn = socket.create_connection((self.addr, self.port), timeout=min(remaining, 5.0))
                break
            except OSError:
                time.sleep(min(0.2, max(0.0, remaining)))
        self.conn.settimeout(None)
        self.conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def collective(self, op: str, flags: int, stack: Sequence[Frame]) -> int:
        """Sends this rank's `flags`; the store answers with their OR over the gang once all have."""
        self.seq += 1
        tag = f'{self.seq}:{op}'
        self._send(f'{tag} {flags}', stack)
        # The store itself reports a silent peer after HCCL_EXEC_TIMEOUT; the slack covers a store that hangs.
        words = self._recv(stack, time.monotonic() + env.hccl_exec_timeout_s() + 30).split()
        if words[:1] == ['lost']:
            faults.hccl_peer_lost(stack, self.rank, int(words[1]), 'connection closed by peer')
        if words[:1] == ['timeout']:
            faults.hccl_timeout(stack, self.rank, int(words[1]))
        if len(words) != 2 or words[0] != tag:
            # Every rank runs the same sequence of collectives; a mismatch is an emulator bug.
            sys.stderr.write(f'mlemu: internal error: rank {self.rank} at collective {tag} got {" ".join(words)!r}\n')
            os._exit(1)
        return int(words[1])

    def _send(self, text: str, stack: Sequence[Frame], during_init: bool = False) -> None:
        try:
            self.conn.sendall((text + '\n').encode('ascii'))
        except OSError as e:
            self._lost(e.strerror or str(e), stack, during_init)

    def _recv(self, stack: Sequence[Frame], deadline: float, during_init: bool = False) -> str:
        while b'\n' not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if during_init:
                    _store_error(stack, 'DistNetworkError', 'Socket Timeout')
                faults.hccl_timeout(stack, self.rank, 0)
            self.conn.settimeout(remaining)
            try:
                chunk = self.conn.recv(4096)
            except TimeoutError:
                continue
            except OSError as e:
                self._lost(e.strerror or str(e), stack, during_init)
            if not chunk:
                self._lost('connection closed by peer', stack, during_init)
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b'\n', 1)
        return line.decode('ascii', 'replace').strip()

    def _lost(self, detail: str, stack: Sequence[Frame], during_init: bool) -> NoReturn:
        """The store itself is gone (the process serving it died): name rank 0, whose store it is."""
        if during_init:
            _store_error(stack, 'DistNetworkError', 'Connection reset by peer')
        faults.hccl_peer_lost(stack, self.rank, 0, detail)


def _store_error(stack: Sequence[Frame], kind: str, message: str) -> NoReturn:
    tracebacks.die(stack, 'torch.distributed.' + kind, message)


def _secs(seconds: float) -> int | float:
    return int(seconds) if seconds == int(seconds) else seconds
