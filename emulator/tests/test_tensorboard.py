"""The emulator's TensorBoard writer: TFRecord framing with masked CRC-32C around Event protobufs."""
import os
import struct
from pathlib import Path

from mlemu import tensorboard


def test_crc32c_known_vector() -> None:
    # The CRC-32C check value (RFC 3720 B.4 / every CRC catalogue): crc32c("123456789").
    assert tensorboard.crc32c(b'123456789') == 0xE3069283


def _records(path: str) -> list[bytes]:
    with open(path, 'rb') as f:
        data = f.read()
    at, out = 0, []
    while at < len(data):
        (length,) = struct.unpack_from('<Q', data, at)
        (length_crc,) = struct.unpack_from('<I', data, at + 8)
        assert length_crc == tensorboard.masked_crc(data[at:at + 8])
        body = data[at + 12:at + 12 + length]
        (body_crc,) = struct.unpack_from('<I', data, at + 12 + length)
        assert body_crc == tensorboard.masked_crc(body)
        out.append(body)
        at += 12 + length + 4
    return out


def test_writer_file_name_first_event_and_scalar(tmp_path: Path) -> None:
    writer = tensorboard.SummaryWriter(str(tmp_path))
    writer.add_scalar('lm loss', 2.5, 31)
    name = os.path.basename(writer.path)
    assert name.startswith('events.out.tfevents.') and name.endswith(f'.{os.getpid()}.{tensorboard.SummaryWriter._uid}')
    first, scalar = _records(writer.path)
    assert b'brain.Event:2' in first
    # step = 2 (varint 31), summary = 5 { value = 1 { tag = 1 "lm loss", simple_value = 2 (float 2.5) } }
    assert b'\x10\x1f' in scalar
    assert b'\x0a\x07lm loss\x15' + struct.pack('<f', 2.5) in scalar
