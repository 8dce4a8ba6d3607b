"""TensorBoard event files as Megatron's writer leaves them on disk.

Megatron (core_r0.6.0 megatron/training/global_vars.py _set_tensorboard_writer) opens
torch.utils.tensorboard.SummaryWriter(log_dir=--tensorboard-dir, max_queue=--tensorboard-queue-size)
on the LAST rank only. Each process start opens a new file in that directory, named as TensorBoard's
EventFileWriter names it (tensorboard/summary/writer/event_file_writer.py:
events.out.tfevents.<10-digit time>.<host>.<pid>.<uid>), whose first event is
Event(file_version="brain.Event:2"). add_scalar(tag, value, step) appends one Event with a
Summary.Value(tag, simple_value) (torch.utils.tensorboard.summary.scalar, new_style=False). A resumed
run therefore appends a new file to the same directory, starting after the iteration it loaded; a
reader (TensorBoard's EventAccumulator) drops the steps of the older file that the new one writes again.

The framing is TFRecord (tensorflow/core/lib/io/record_writer.cc): uint64 length, masked CRC-32C of
the length, the bytes, masked CRC-32C of the bytes, all little-endian. The protobufs (tensorflow
event.proto and summary.proto) are encoded here by hand: the emulator needs only the standard library.

TensorBoard's writer thread appends each event to the file (GFile on a local disk appends per write)
soon after add_scalar; the emulator writes each event through at once, so a crash keeps what was
logged before it.
"""
import os
import socket
import struct
import time

# --- CRC-32C (Castagnoli), as TFRecord masks it ---------------------------------------------------------

_POLY = 0x82F63B78
_TABLE = []
for _n in range(256):
    _c = _n
    for _ in range(8):
        _c = (_c >> 1) ^ _POLY if _c & 1 else _c >> 1
    _TABLE.append(_c)


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    """tensorflow/core/lib/hash/crc32c.h Mask: rotate right by 15 bits and add a constant."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecord(data: bytes) -> bytes:
    length = struct.pack('<Q', len(data))
    return length + struct.pack('<I', masked_crc(length)) + data + struct.pack('<I', masked_crc(data))


# --- protobuf wire format -------------------------------------------------------------------------------

def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # int64 is written as its two's complement
    out = bytearray()
    while True:
        bits = n & 0x7F
        n >>= 7
        if n:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _key(field: int, wire_type: int) -> bytes:
    return _varint((field << 3) | wire_type)


def _length_delimited(field: int, payload: bytes) -> bytes:
    return _key(field, 2) + _varint(len(payload)) + payload


def event(wall_time: float, step: int = 0, file_version: str | None = None, summary: bytes | None = None) -> bytes:
    """tensorflow.Event: wall_time = 1 (double), step = 2 (int64), file_version = 3, summary = 5."""
    out = _key(1, 1) + struct.pack('<d', wall_time)
    if step:
        out += _key(2, 0) + _varint(step)
    if file_version is not None:
        out += _length_delimited(3, file_version.encode())
    if summary is not None:
        out += _length_delimited(5, summary)
    return out


def scalar_summary(tag: str, value: float) -> bytes:
    """tensorflow.Summary { value = 1: Summary.Value { tag = 1, simple_value = 2 (float) } }."""
    value_msg = _length_delimited(1, tag.encode()) + _key(2, 5) + struct.pack('<f', value)
    return _length_delimited(1, value_msg)


# --- the writer -----------------------------------------------------------------------------------------

class SummaryWriter:
    """The part of torch.utils.tensorboard.SummaryWriter that Megatron's training_log uses."""

    _uid = 0

    def __init__(self, log_dir: str) -> None:
        os.makedirs(log_dir, exist_ok=True)
        SummaryWriter._uid += 1
        # EventFileWriter's name: "events.out.tfevents.%010d.%s.%s.%s" % (time, host, pid, uid).
        name = f'events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.{SummaryWriter._uid}'
        self.path = os.path.join(log_dir, name)
        self._file = open(self.path, 'ab')
        self._write(event(time.time(), file_version='brain.Event:2'))

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self._write(event(time.time(), step=int(step), summary=scalar_summary(tag, float(value))))

    def flush(self) -> None:
        self._file.flush()

    def _write(self, data: bytes) -> None:
        self._file.write(tfrecord(data))
        self._file.flush()


def open_writer(args, dist):
    """_set_tensorboard_writer: a writer when --tensorboard-dir is given, on the last rank only."""
    if getattr(args, 'tensorboard_dir', None) and dist.hosts_last_rank:
        print('> setting tensorboard ...', flush=True)
        return SummaryWriter(args.tensorboard_dir)
    return None
