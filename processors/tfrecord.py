"""Fast tf.train.Example serialization from numpy arrays, and atomic TFRecord writing.

Building one tf.train.Example object per row costs most of the conversion time, so the
protobuf wire format of

  Example  { Features features = 1; }
  Features { map<string, Feature> feature = 1; }   // entry: key = 1, value = 2
  Feature  { Int64List int64_list = 3; }
  Int64List{ repeated int64 value = 1 [packed = true]; }

is written directly with numpy: the packed varints of all rows are encoded at once, the
few distinct length headers are built once, and every record's byte segments are
gathered into one buffer with a single index. Keys are written in sorted order,
which is what tf.train.Example.SerializeToString(deterministic=True) produces, so the
bytes are identical to it (the default, non-deterministic protobuf order depends on a
hash table and is not reproducible).
"""

import os
import uuid
from typing import Dict, Iterable, List

import numpy as np
import tensorflow as tf

_MAX_VARINT_BYTES = 10  # a negative int64 takes 10 bytes on the wire
_TABLE_SIZE = 1 << 21  # largest value encoded by table look-up (3 varint bytes)


def _varint(value: int) -> bytes:
  """Protobuf base-128 varint of a non-negative Python int."""
  out = bytearray()
  while True:
    byte = value & 0x7F
    value >>= 7
    if value:
      out.append(byte | 0x80)
    else:
      out.append(byte)
      return bytes(out)


def _packed_varints(values: np.ndarray):
  """Encodes each row of an int64 matrix as packed varints.

  Args:
    values: int array [N, L].

  Returns:
    (flat bytes of all rows concatenated, int64 array [N + 1] of row offsets).
  """
  # int64 -> uint64 keeps two's complement, which is how protobuf encodes negatives.
  v = np.ascontiguousarray(values, dtype=np.int64).view(np.uint64)
  num_rows, row_width = v.shape
  largest = int(v.max()) if v.size else 0
  if largest < 0x80:
    # Masks, segment ids, labels: one byte per value, the varint is the value.
    offsets = np.arange(num_rows + 1, dtype=np.int64) * row_width
    return v.astype(np.uint8).tobytes(), offsets
  if largest < _TABLE_SIZE and largest < v.size:
    # Token ids: look the encodings up in a table of every value up to the largest,
    # which is much cheaper than shifting the whole matrix once per byte. Each
    # entry's (at most 4) bytes and keep-flags are packed in a uint32 so the
    # look-up gathers one machine word per value.
    table_groups, table_n = _varint_groups(np.arange(largest + 1, dtype=np.uint64))
    padded = np.zeros((largest + 1, 4), dtype=np.uint8)
    padded[:, :table_groups.shape[1]] = table_groups
    flags = (np.arange(4) < table_n[:, None]).astype(np.uint8)
    index = v.astype(np.intp)
    groups = padded.view(np.uint32)[index, 0].view(np.uint8).reshape(v.shape + (4,))
    keep = flags.view(np.uint32)[index, 0].view(np.bool_).reshape(v.shape + (4,))
    n = table_n[index]
  else:
    groups, n = _varint_groups(v)
    keep = np.arange(groups.shape[-1], dtype=np.int8) < n[..., None]
  flat = groups[keep]  # row-major: row, value, byte order
  offsets = np.zeros(num_rows + 1, dtype=np.int64)
  np.cumsum(n.sum(axis=1, dtype=np.int64), out=offsets[1:])
  return flat.tobytes(), offsets


def _varint_groups(v: np.ndarray):
  """Varint bytes of every element of a uint64 array.

  Args:
    v: uint64 array of any shape S.

  Returns:
    (uint8 array S + [W] of the W = widest encoding's bytes, zero-filled past each
    value's length; int8 array S of each value's length in bytes).
  """
  largest = int(v.max()) if v.size else 0
  width = 1
  while width < _MAX_VARINT_BYTES and largest >= 1 << (7 * width):
    width += 1
  n = np.ones(v.shape, dtype=np.int8)
  groups = np.empty(v.shape + (width,), dtype=np.uint8)
  groups[..., 0] = v & np.uint64(0x7F)
  for k in range(1, width):
    shifted = v >> np.uint64(7 * k)
    more = shifted != 0
    n += more
    groups[..., k - 1] |= more.astype(np.uint8) << 7  # continuation bit
    groups[..., k] = shifted & np.uint64(0x7F)
  return groups, n


def _entry_header(key: bytes, payload_length: int) -> bytes:
  """Bytes of one Features map entry that precede its packed payload."""
  int64_list = 1 + len(_varint(payload_length)) + payload_length
  feature = 1 + len(_varint(int64_list)) + int64_list
  entry_body = (b"\x0a" + _varint(len(key)) + key +
                b"\x12" + _varint(feature) +
                b"\x1a" + _varint(int64_list) +
                b"\x0a" + _varint(payload_length))
  return b"\x0a" + _varint(len(entry_body) + payload_length) + entry_body


def _headers_by_length(lengths: np.ndarray, make_header):
  """Builds the variable-length headers of N rows from a few distinct lengths.

  Args:
    lengths: int array [N] of the lengths each header depends on.
    make_header: function length -> header bytes.

  Returns:
    (uint8 array holding each distinct header once, int64 array [N] of the start
    of each row's header in it, int64 array [N] of each row's header length).
  """
  distinct, inverse = np.unique(lengths, return_inverse=True)
  headers = [make_header(int(x)) for x in distinct]
  sizes = np.array([len(h) for h in headers], dtype=np.int64)
  starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
  table = np.frombuffer(b"".join(headers), dtype=np.uint8)
  return table, starts[inverse], sizes[inverse]


def _gather_segments(source: np.ndarray, starts: np.ndarray, lengths: np.ndarray):
  """Concatenates source[starts[i]:starts[i] + lengths[i]] for all i, in order."""
  out_starts = np.cumsum(lengths) - lengths
  total = int(lengths.sum())
  index = np.arange(total, dtype=np.int64)
  index += np.repeat(starts - out_starts, lengths)
  return source[index]


_ROWS_PER_CHUNK = 8192  # bounds the memory of the per-byte gather index


def serialize_int64_examples(features: Dict[str, np.ndarray]) -> List[bytes]:
  """Serializes rows of int64 features as tf.train.Example protos.

  Args:
    features: name -> int array [N] (a scalar per row) or [N, L] (L values per row).
      All arrays share N.

  Returns:
    list of N serialized Examples, byte-identical to
    tf.train.Example(...).SerializeToString(deterministic=True).

  Raises:
    ValueError: arrays differ in their number of rows or have more than 2 dims.
  """
  arrays = []
  num_rows = None
  for name in sorted(features):
    array = np.asarray(features[name])
    if array.ndim == 1:
      array = array[:, None]
    if array.ndim != 2:
      raise ValueError(f"feature {name!r} must be [N] or [N, L], got {array.shape}")
    if num_rows is None:
      num_rows = array.shape[0]
    elif array.shape[0] != num_rows:
      raise ValueError(f"feature {name!r} has {array.shape[0]} rows, expected {num_rows}")
    arrays.append((name.encode("utf-8"), array))
  records = []
  for begin in range(0, num_rows or 0, _ROWS_PER_CHUNK):
    chunk = [(key, array[begin:begin + _ROWS_PER_CHUNK]) for key, array in arrays]
    records.extend(_serialize_chunk(chunk))
  return records


def _serialize_chunk(columns) -> List[bytes]:
  """Serializes the rows of [(key bytes, int array [n, L])] (keys sorted)."""
  # Every record is a sequence of byte segments: the Example/Features prefix, then
  # per feature its entry header and its packed values. All segments are laid out
  # in one source buffer and gathered into the output with a single index.
  pieces, segment_starts, segment_lengths = [], [], []
  base = 0
  body_lengths = 0
  for key, array in columns:
    payload, offsets = _packed_varints(array)
    payload_lengths = np.diff(offsets)
    table, header_starts, header_lengths = _headers_by_length(
        payload_lengths, lambda length, key=key: _entry_header(key, length))
    pieces.append(table)
    segment_starts.append(header_starts + base)
    segment_lengths.append(header_lengths)
    base += len(table)
    pieces.append(np.frombuffer(payload, dtype=np.uint8))
    segment_starts.append(offsets[:-1] + base)
    segment_lengths.append(payload_lengths)
    base += len(payload)
    body_lengths = body_lengths + header_lengths + payload_lengths
  table, prefix_starts, prefix_lengths = _headers_by_length(
      body_lengths, lambda length: b"\x0a" + _varint(length))
  pieces.append(table)
  segment_starts.insert(0, prefix_starts + base)
  segment_lengths.insert(0, prefix_lengths)

  source = np.concatenate(pieces)
  starts = np.stack(segment_starts, axis=1).ravel()  # row-major: record order
  lengths = np.stack(segment_lengths, axis=1).ravel()
  data = _gather_segments(source, starts, lengths).tobytes()
  record_ends = np.cumsum(prefix_lengths + body_lengths).tolist()
  record_starts = [0] + record_ends[:-1]
  return [data[a:b] for a, b in zip(record_starts, record_ends)]


def write_tfrecord_atomic(records: Iterable[bytes], output_file: str) -> int:
  """Writes serialized records to a TFRecord file atomically.

  The records go to a temporary file in the same directory, which replaces
  output_file only once every record is written; if `records` raises midway, the
  temporary file is removed and output_file is left as it was.

  Args:
    records: iterable of serialized tf.train.Example bytes.
    output_file: destination path; its directory must exist.

  Returns:
    the number of records written.
  """
  # tf.io.gfile rather than os: output_dir may be a gs:// bucket on Cloud TPU.
  temp_path = f"{output_file}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
  count = 0
  try:
    with tf.io.TFRecordWriter(temp_path) as writer:
      for record in records:
        writer.write(record)
        count += 1
    tf.io.gfile.rename(temp_path, output_file, overwrite=True)
  except BaseException:
    if tf.io.gfile.exists(temp_path):
      tf.io.gfile.remove(temp_path)
    raise
  return count
