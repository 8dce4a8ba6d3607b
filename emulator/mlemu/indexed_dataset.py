"""Megatron's MMIDIDX indexed dataset (megatron/core/datasets/indexed_dataset.py), without numpy.

.idx layout (little endian):
    b"MMIDIDX\\x00\\x00"   magic
    <Q  version (1)
    <B  dtype code (DType enum: 1 uint8, 2 int8, 3 int16, 4 int32, 5 int64, 6 float64, 7 float32, 8 uint16)
    <Q  sequence count
    <Q  document count (= number of documents + 1: document_indices starts with 0)
    int32[sequence count]   sequence lengths (in tokens)
    int64[sequence count]   sequence pointers (byte offsets into .bin)
    int64[document count]   document indices (sequence index where each document ends)
.bin: the token ids of all sequences, back to back, in the dtype.
"""
import array
import os
import struct
import sys

INDEX_HEADER = b'MMIDIDX\x00\x00'
# code -> (array typecode, itemsize)
DTYPES = {1: ('B', 1), 2: ('b', 1), 3: ('h', 2), 4: ('i', 4), 5: ('q', 8), 6: ('d', 8), 7: ('f', 4), 8: ('H', 2)}
DTYPE_NAMES = {1: 'uint8', 2: 'int8', 3: 'int16', 4: 'int32', 5: 'int64', 6: 'float64', 7: 'float32', 8: 'uint16'}
CODE_UINT16, CODE_INT32 = 8, 4


def optimal_dtype_code(vocab_size):
    """DType.optimal_dtype: uint16 below 65500 tokens, else int32."""
    return CODE_UINT16 if vocab_size is not None and vocab_size < 65500 else CODE_INT32


def _le(arr):
    if sys.byteorder != 'little':
        arr.byteswap()
    return arr.tobytes()


class IndexedDatasetBuilder:
    """Streams sequences into <prefix>.bin and writes <prefix>.idx on finalize()."""

    def __init__(self, bin_path, dtype_code=CODE_INT32):
        self.bin_path = bin_path
        self.data_file = open(bin_path, 'wb')
        self.dtype_code = dtype_code
        self.typecode, self.itemsize = DTYPES[dtype_code]
        self.sequence_lengths = []
        self.document_indices = [0]
        self.bytes_written = 0

    def add_item(self, tokens):
        data = _le(array.array(self.typecode, tokens))
        self.data_file.write(data)
        self.bytes_written += len(data)
        self.sequence_lengths.append(len(tokens))

    def end_document(self):
        self.document_indices.append(len(self.sequence_lengths))

    def add_index(self, prefix):
        """Appends another dataset (same dtype), as preprocess_data.py --merge-group-keys does."""
        index = read_index(prefix + '.idx')
        if index['dtype_code'] != self.dtype_code:
            raise AssertionError()
        offset = len(self.sequence_lengths)
        self.sequence_lengths.extend(index['sequence_lengths'])
        self.document_indices.extend(offset + d for d in index['document_indices'][1:])
        with open(prefix + '.bin', 'rb') as f:
            data = f.read()
        self.data_file.write(data)
        self.bytes_written += len(data)

    def finalize(self, idx_path):
        self.data_file.close()
        pointers, ptr = [], 0
        for length in self.sequence_lengths:
            pointers.append(ptr)
            ptr += length * self.itemsize
        with open(idx_path, 'wb') as f:
            f.write(INDEX_HEADER)
            f.write(struct.pack('<Q', 1))
            f.write(struct.pack('<B', self.dtype_code))
            f.write(struct.pack('<Q', len(self.sequence_lengths)))
            f.write(struct.pack('<Q', len(self.document_indices)))
            f.write(_le(array.array('i', self.sequence_lengths)))
            f.write(_le(array.array('q', pointers)))
            f.write(_le(array.array('q', self.document_indices)))


class BadIndex(Exception):
    pass


def read_index(idx_path):
    """Parses an .idx file. Raises FileNotFoundError, or BadIndex with Megatron's assertion text."""
    with open(idx_path, 'rb') as f:
        header = f.read(9)
        if header != INDEX_HEADER:
            raise BadIndex(f'bad header, cannot read: {idx_path}')
        version = struct.unpack('<Q', f.read(8))[0]
        if version != 1:
            raise BadIndex(f'bad version, cannot read: {idx_path}')
        code = struct.unpack('<B', f.read(1))[0]
        if code not in DTYPES:
            raise BadIndex(f'{code} is not a valid DType')
        sequence_count = struct.unpack('<Q', f.read(8))[0]
        document_count = struct.unpack('<Q', f.read(8))[0]

        def read(typecode, count):
            arr = array.array(typecode)
            arr.frombytes(f.read(arr.itemsize * count))
            if sys.byteorder != 'little':
                arr.byteswap()
            return list(arr)

        lengths = read('i', sequence_count)
        pointers = read('q', sequence_count)
        documents = read('q', document_count)
    return {'dtype_code': code, 'sequence_count': sequence_count, 'document_count': document_count,
            'sequence_lengths': lengths, 'sequence_pointers': pointers, 'document_indices': documents}


def bin_size_ok(prefix, index):
    """True if the .bin holds exactly the tokens the index describes."""
    itemsize = DTYPES[index['dtype_code']][1]
    expected = sum(index['sequence_lengths']) * itemsize
    return os.path.getsize(prefix + '.bin') == expected
