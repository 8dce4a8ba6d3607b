"""The gang: rendezvous and lock-step collectives between the nodes of a multi-node job.

torchrun (the stand-in) runs one process per node. Where Megatron calls
torch.distributed.init_process_group, a process that does not host every rank joins the other
nodes over TCP: node 0 listens on MASTER_ADDR:MASTER_PORT, the others connect, and once all have
joined node 0 tells them to go. Afterwards node 0 answers every collective (a star, not a ring:
only the synchronisation and the failures have to be real). A collective carries a few flag bits,
OR-ed over the gang, which is all the emulator needs (Megatron's DistributedSignalHandler
all-gathers "SIGTERM received"); a barrier is a collective without flags.

Failures, as torch and HCCL report them:
  - nobody/not everybody joins within the timeout: torch.distributed.DistStoreError (node 0) or
    DistNetworkError (the others) traceback, exit 1
  - a peer's connection is closed or reset (it died): HCCL error at once (faults.hccl_peer_lost), exit 1
  - a peer is alive but silent (hung): HCCL EI0002 timeout after HCCL_EXEC_TIMEOUT (faults.hccl_timeout)
Without a gang (one process hosts every rank) every function here is a no-op.
"""
import os
import selectors
import socket
import sys
import time

from . import env, faults, tracebacks

STOP = 1  # flag bit: this node received SIGTERM (--exit-signal-handler)

_gang = None


def init(dist, timeout_s, stack):
    """torch.distributed.init_process_group: forms the gang if this process does not host every rank."""
    global _gang
    if _gang is not None or (dist.first == 0 and dist.last == dist.world_size - 1):
        return
    for name in ('MASTER_ADDR', 'MASTER_PORT'):
        if not os.environ.get(name):
            tracebacks.die(stack[:-2] + [('site:torch/distributed/rendezvous.py', 208, '_get_env_or_raise',
                                          'raise _env_error(env_var)')],
                           'ValueError', 'Error initializing torch.distributed using env:// rendezvous: '
                                         f'environment variable {name} expected, but not set')
    _gang = Gang(dist, os.environ['MASTER_ADDR'], int(os.environ['MASTER_PORT']))
    _gang.rendezvous(timeout_s, stack)


def all_reduce_or(flags, stack):
    """The gang's OR of every node's `flags` (just `flags` without a gang)."""
    return flags if _gang is None else _gang.collective('allreduce', flags, stack)


def barrier(stack):
    if _gang is not None:
        _gang.collective('barrier', 0, stack)


class Gang:
    def __init__(self, dist, addr, port):
        self.count = dist.last - dist.first + 1  # ranks per node
        self.rank = dist.first  # the rank named in error messages
        self.member = dist.first // self.count  # node index (GROUP_RANK under torchrun)
        self.members = -(-dist.world_size // self.count)
        self.addr, self.port = addr, port
        self.peers = {}  # node index -> socket; node 0 has every other node, the others only node 0
        self.buffers = {}
        self.seq = 0

    # --- rendezvous ----------------------------------------------------------------------------

    def rendezvous(self, timeout_s, stack):
        deadline = time.monotonic() + timeout_s
        if self.member == 0:
            self._accept_all(deadline, timeout_s, stack)
            for member in sorted(self.peers):
                self._send(member, 'go\n', stack, during_init=True)
        else:
            self._connect(deadline, timeout_s, stack)
            self._send(0, f'hello {self.member} {self.members}\n', stack, during_init=True)
            if self._recv([0], stack, deadline=deadline, during_init=True)[0] != 'go':
                _store_error(stack, 'DistNetworkError', 'Connection reset by peer')
        for conn in self.peers.values():
            conn.settimeout(None)
            # Collectives are tiny lock-step messages: Nagle + delayed ACKs would add ~40 ms each.
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _accept_all(self, deadline, timeout_s, stack):
        try:
            # Like torch's TCPStore server: every interface, SO_REUSEADDR (set by create_server) so a
            # re-formed gang can bind again while the last one's connections sit in TIME_WAIT.
            if socket.has_dualstack_ipv6():
                server = socket.create_server(('', self.port), family=socket.AF_INET6, dualstack_ipv6=True)
            else:
                server = socket.create_server(('', self.port))
        except OSError as e:
            _store_error(stack, 'DistNetworkError',
                         'The server socket has failed to listen on any local network address. The server socket has '
                         f'failed to bind to [::]:{self.port} (errno: {e.errno} - {e.strerror}).')
        with server:
            while len(self.peers) < self.members - 1:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    _store_error(stack, 'DistStoreError',
                                 f'Timed out after {_secs(timeout_s)} seconds waiting for clients. '
                                 f'{len(self.peers) + 1}/{self.members} clients joined.')
                server.settimeout(remaining)
                try:
                    conn, _ = server.accept()
                except socket.timeout:
                    continue
                member = self._hello(conn, min(remaining, 10.0))
                if member is None:
                    conn.close()  # a stranger, a duplicate node rank or a different gang size
                else:
                    self.peers[member] = conn
                    self.buffers[member] = b''

    def _hello(self, conn, timeout):
        conn.settimeout(timeout)
        data = b''
        try:
            while b'\n' not in data:
                chunk = conn.recv(256)
                if not chunk:
                    return None
                data += chunk
        except OSError:
            return None
        words = data.split(b'\n', 1)[0].decode('ascii', 'replace').split()
        if len(words) != 3 or words[0] != 'hello' or not words[1].isdigit() or words[2] != str(self.members):
            return None
        member = int(words[1])
        return member if 0 < member < self.members and member not in self.peers else None

    def _connect(self, deadline, timeout_s, stack):
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                _store_error(stack, 'DistNetworkError',
                             f'The client socket has timed out after {_secs(timeout_s)}s while trying to connect to '
                             f'({self.addr}, {self.port}).')
            try:
                # No warning per refused attempt (torch prints some): "Connection refused" lines early in a
                # log would make a later, unrelated failure look like a communication one to a classifier.
                conn = socket.create_connection((self.addr, self.port), timeout=min(remaining, 5.0))
                break
            except OSError:
                time.sleep(min(0.2, max(0.0, remaining)))
        self.peers[0] = conn
        self.buffers[0] = b''

    # --- collectives ---------------------------------------------------------------------------

    def collective(self, op, flags, stack):
        """Node 0 gathers `<seq>:<op> <flags>` from every node, ORs them and answers everyone."""
        self.seq += 1
        tag = f'{self.seq}:{op}'
        if self.member != 0:
            self._send(0, f'{tag} {flags}\n', stack)
            _, value = self._recv([0], stack)[0].split()
            return int(value)
        total = flags
        for member, line in self._recv(sorted(self.peers), stack).items():
            got_tag, value = line.split()
            if got_tag != tag:
                # Every node runs the same sequence of collectives; a mismatch is an emulator bug.
                sys.stderr.write(f'mlemu: internal error: node {member} is at collective {got_tag}, node 0 at {tag}\n')
                os._exit(1)
            total |= int(value)
        for member in sorted(self.peers):
            self._send(member, f'{tag} {total}\n', stack)
        return total

    def _send(self, member, text, stack, during_init=False):
        try:
            self.peers[member].sendall(text.encode('ascii'))
        except OSError as e:
            self._lost(member, e.strerror or str(e), stack, during_init)

    def _recv(self, members, stack, deadline=None, during_init=False):
        """One line from each of `members`, waiting for all at once so a dead one is noticed at once."""
        if deadline is None:
            deadline = time.monotonic() + env.hccl_exec_timeout_s()
        lines = {}
        with selectors.DefaultSelector() as sel:
            for member in members:
                sel.register(self.peers[member], selectors.EVENT_READ, member)
            while len(lines) < len(members):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    silent = min(set(members) - set(lines))
                    if during_init:
                        _store_error(stack, 'DistNetworkError', 'Socket Timeout')
                    faults.hccl_timeout(stack, self.rank, silent * self.count)
                for key, _ in sel.select(remaining):
                    member = key.data
                    try:
                        chunk = key.fileobj.recv(4096)
                    except OSError as e:
                        self._lost(member, e.strerror or str(e), stack, during_init)
                    if not chunk:
                        self._lost(member, 'connection closed by peer', stack, during_init)
                    self.buffers[member] += chunk
                    if b'\n' in self.buffers[member]:
                        line, self.buffers[member] = self.buffers[member].split(b'\n', 1)
                        lines[member] = line.decode('ascii', 'replace').strip()
                        sel.unregister(key.fileobj)
        return lines

    def _lost(self, member, detail, stack, during_init):
        if during_init:
            _store_error(stack, 'DistNetworkError', 'Connection reset by peer')
        faults.hccl_peer_lost(stack, self.rank, member * self.count, detail)


def _store_error(stack, kind, message):
    tracebacks.die(stack, 'torch.distributed.' + kind, message)


def _secs(seconds):
    return int(seconds) if seconds == int(seconds) else seconds
