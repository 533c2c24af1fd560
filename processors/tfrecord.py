"""Fast tf.train.Example serialization from numpy arrays, and atomic TFRecord writing.

Building one tf.train.Example object per row costs most of the conversion time, so the
protobuf wire format of

  Example  { Features features = 1; }
  Features { map<string, Feature> feature = 1; }   // entry: key = 1, value = 2
  Feature  { Int64List int64_list = 3; }
  Int64List{ repeated int64 value = 1 [packed = true]; }

is written directly with numpy: the packed varints of all rows are encoded at once, the
few distinct length headers are built once, and each record is joined from a few
slices (see _serialize_chunk). Keys are written in sorted order, which is what
tf.train.Example.SerializeToString(deterministic=True) produces, so the bytes are
identical to it (the default, non-deterministic protobuf order depends on a hash
table and is not reproducible).
"""

import os
import uuid
from typing import Dict, Iterable, List

import numpy as np
import tensorflow as tf


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
  flat = v.reshape(-1)
  # Every value has a first byte: its low 7 bits, plus the continuation bit if the
  # value is 0x80 or more. Only those values have further bytes, and they are a
  # minority even of an input_ids matrix (padding and [CLS] are single bytes), so
  # the further bytes are computed for them alone and written in place.
  multi = flat >= np.uint64(0x80)
  first = flat.astype(np.uint8) & np.uint8(0x7F)
  first |= multi.view(np.uint8) << np.uint8(7)
  row_starts = np.arange(num_rows + 1, dtype=np.int64) * row_width
  where = np.flatnonzero(multi)
  if where.size == 0:  # masks, segment ids, labels: the varint is the value
    return first.tobytes(), row_starts
  rest = flat[where] >> np.uint64(7)  # the bits the further bytes hold
  extra = np.ones(where.shape, dtype=np.int64)  # number of further bytes
  shifted = rest >> np.uint64(7)
  while True:
    nonzero = shifted != 0
    if not nonzero.any():
      break
    extra += nonzero
    shifted >>= np.uint64(7)
  counts = np.ones(flat.shape, dtype=np.int64)
  counts[where] += extra
  extra_before = np.zeros(where.size + 1, dtype=np.int64)
  np.cumsum(extra, out=extra_before[1:])
  offsets = row_starts + extra_before[np.searchsorted(where, row_starts)]
  out = np.repeat(first, counts)  # first bytes in place, room after the multi-byte ones
  positions = where + extra_before[:-1]  # of the multi-byte values' first bytes
  k = 1  # byte k of each value still being written, with its continuation bit
  while positions.size:
    byte = rest.astype(np.uint8) & np.uint8(0x7F)
    byte |= (extra > k).view(np.uint8) << np.uint8(7)
    out[positions + k] = byte
    longer = extra > k
    positions, rest, extra = positions[longer], rest[longer] >> np.uint64(7), extra[longer]
    k += 1
  return out.tobytes(), offsets


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
    (list of the distinct headers (bytes), int array [N] of each row's index in
    it, int64 array [N] of each row's header length).
  """
  distinct, inverse = np.unique(lengths, return_inverse=True)
  headers = [make_header(int(x)) for x in distinct]
  sizes = np.array([len(h) for h in headers], dtype=np.int64)
  return headers, inverse, sizes[inverse]


def _rows_of_block(block: np.ndarray) -> List[bytes]:
  """The rows of a uint8 matrix [n, W] as n bytes objects."""
  data = block.tobytes()
  width = block.shape[1]
  return [data[i:i + width] for i in range(0, len(data), width)]


_ROWS_PER_CHUNK = 8192  # bounds the memory of the [rows, values, bytes] arrays


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
  # A record is the Example/Features prefix, then per feature its entry header
  # and its packed values. Features whose entries have the same length in every
  # row (masks, segment ids, labels: one byte per value) are laid side by side in
  # one uint8 matrix, header included; the others give a header and a payload
  # slice per row. Each record is then one join of a few pieces, so every byte is
  # copied about twice and no per-byte index is built.
  num_rows = columns[0][1].shape[0]
  segments = []  # lists of num_rows bytes objects, in record order
  fixed_blocks = []  # uint8 [num_rows, width] entries not yet cut into rows
  body_lengths = np.zeros(num_rows, dtype=np.int64)

  def cut_fixed_blocks():
    if fixed_blocks:
      segments.append(_rows_of_block(np.concatenate(fixed_blocks, axis=1)))
      fixed_blocks.clear()

  for key, array in columns:
    payload, offsets = _packed_varints(array)
    payload_lengths = np.diff(offsets)
    headers, header_index, header_lengths = _headers_by_length(
        payload_lengths, lambda length, key=key: _entry_header(key, length))
    body_lengths += header_lengths + payload_lengths
    if len(headers) == 1:
      header = np.frombuffer(headers[0], dtype=np.uint8)
      fixed_blocks.append(np.broadcast_to(header, (num_rows, header.size)))
      fixed_blocks.append(np.frombuffer(payload, dtype=np.uint8).reshape(
          num_rows, int(payload_lengths[0])))
    else:
      cut_fixed_blocks()
      segments.append([headers[i] for i in header_index.tolist()])
      bounds = offsets.tolist()
      segments.append([payload[a:b] for a, b in zip(bounds[:-1], bounds[1:])])
  cut_fixed_blocks()
  prefixes, prefix_index, _ = _headers_by_length(
      body_lengths, lambda length: b"\x0a" + _varint(length))
  segments.insert(0, [prefixes[i] for i in prefix_index.tolist()])
  return list(map(b"".join, zip(*segments)))


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
