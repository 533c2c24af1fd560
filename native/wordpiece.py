"""The C++ WordPiece tokenizer for ASCII texts (wordpiece.cc), through ctypes.

    python -m native          # build now (else the first use builds it)

tokenization.BatchTokenizer uses it for bulk conversion; the library is compiled
into the user cache (native.build.cache_dir()) on first use. Without a compiler
BatchTokenizer keeps its Python path, which gives the same ids. Texts that are not
all ASCII are handed back and go through the Python tokenizer.
"""

import ctypes
import os
from typing import Optional, Sequence, Tuple

import numpy as np

from native import build

_DIR = os.path.dirname(os.path.abspath(__file__))
_SOURCES = [os.path.join(_DIR, "wordpiece.cc")]
# No -march: the library must run on any x86-64 or ARM CPU the project runs on.
_FLAGS = ["-O3", "-std=c++17", "-fPIC", "-shared", "-pthread"]
_PREFIX = "_wordpiece"

_loaded = {}

_I64P = ctypes.POINTER(ctypes.c_int64)


def library_path() -> str:
  """Path of the library built from the current source and flags."""
  return build.library_path(build.cache_dir(), _PREFIX, _SOURCES, _FLAGS)


def build_library() -> str:
  """Compiles wordpiece.cc into library_path(); returns the path.

  Raises:
    RuntimeError: no C++ compiler, or the compiler failed.
  """
  out = build.compile_library(library_path(), _SOURCES, _FLAGS,
                              what="the WordPiece tokenizer")
  _loaded.pop(out, None)
  return out


def load() -> Optional[ctypes.CDLL]:
  """The library (compiled first on first use), or None when it cannot be built."""
  path = library_path()
  if path not in _loaded:
    lib = None
    if build.ensure_built(path, build_library, "the C++ WordPiece tokenizer"):
      lib = ctypes.CDLL(path)
      lib.bert_wordpiece_new.restype = ctypes.c_void_p
      lib.bert_wordpiece_new.argtypes = [ctypes.c_char_p, _I64P, _I64P, _I64P,
                                         ctypes.c_int64, ctypes.c_int32, ctypes.c_int64,
                                         ctypes.c_int64]
      lib.bert_wordpiece_free.restype = None
      lib.bert_wordpiece_free.argtypes = [ctypes.c_void_p]
      lib.bert_wordpiece_tokenize.restype = ctypes.c_int64
      lib.bert_wordpiece_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, _I64P,
                                              ctypes.c_int64, ctypes.c_int32, _I64P,
                                              _I64P]
    _loaded[path] = lib
  return _loaded[path]


def _pointer(array):
  return array.ctypes.data_as(_I64P)


def default_threads() -> int:
  """The CPUs this process may run on (at most 8)."""
  try:
    count = len(os.sched_getaffinity(0))
  except AttributeError:  # not on Linux
    count = os.cpu_count() or 1
  return max(1, min(count, 8))


class NativeWordpiece(object):
  """One vocab's tables in C++; tokenize() gives FullTokenizer's ids for ASCII texts."""

  def __init__(self, vocab, do_lower_case: bool, max_input_chars_per_word: int,
               unk_id: int, lib: Optional[ctypes.CDLL] = None):
    """Builds the tables.

    Args:
      vocab: dict token -> id (FullTokenizer.vocab).
      do_lower_case: BasicTokenizer.do_lower_case.
      max_input_chars_per_word: WordpieceTokenizer.max_input_chars_per_word.
      unk_id: the id of WordpieceTokenizer.unk_token.
      lib: the loaded library (default: load()).

    Raises:
      RuntimeError: the library is not built.
      ValueError: a token is not a str, or an id not an int in 0..2**31-1.
    """
    self._lib = lib or load()
    if self._lib is None:
      raise RuntimeError("the WordPiece library is not built: run `python -m native`")
    tokens = list(vocab)
    ids = np.array(list(vocab.values()))
    if ids.size and (ids.dtype.kind not in "iu" or ids.min() < 0 or
                     ids.max() >= 2**31):
      raise ValueError("vocab ids must be ints in 0..2**31-1")
    ids = ids.astype(np.int64)
    # All tokens in one buffer, each followed by a newline, whose positions give
    # the tokens' places (a token holding a newline of its own needs measuring).
    try:
      data = ("\n".join(tokens) + "\n").encode("utf-8", "surrogatepass")
    except TypeError as e:
      raise ValueError("vocab tokens must be str") from e
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == ord("\n"))
    if ends.size == len(tokens):
      starts = np.zeros(len(tokens), dtype=np.int64)
      starts[1:] = ends[:-1] + 1
    else:
      sizes = np.fromiter((len(t.encode("utf-8", "surrogatepass")) + 1 for t in tokens),
                          np.int64, len(tokens))
      starts = np.cumsum(sizes) - sizes
      ends = starts + sizes - 1
    sizes = (ends - starts).astype(np.int64)
    self._handle = self._lib.bert_wordpiece_new(
        data, _pointer(starts), _pointer(sizes), _pointer(ids), len(tokens),
        int(bool(do_lower_case)), int(max_input_chars_per_word), int(unk_id))

  def __del__(self):
    handle, self._handle = getattr(self, "_handle", None), None
    if handle:
      self._lib.bert_wordpiece_free(handle)

  def tokenize(self, texts: Sequence[str], num_threads: Optional[int] = None
               ) -> Tuple[np.ndarray, np.ndarray]:
    """Ids of the ASCII texts among `texts`.

    Args:
      texts: sequence of str.
      num_threads: threads to use (default: default_threads()); the library uses
        fewer for small batches.

    Returns:
      (values, row_lengths): int64 [ids] and [len(texts)]; the ids of the ASCII
      texts one after the other, and each text's number of ids, -1 for a text
      that is not all ASCII (it has no ids in values).
    """
    num = len(texts)
    if not num:
      return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    # One buffer with a NUL after every text but the last, so that text t is
    # data[offsets[t]:offsets[t + 1]] with its NUL, a control character that
    # BasicTokenizer deletes (at the end of a text it joins nothing). The NULs'
    # positions give the offsets, unless a text holds a NUL of its own.
    data = "\0".join(texts).encode("utf-8", "surrogatepass")
    separators = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 0)
    offsets = np.empty(num + 1, dtype=np.int64)
    offsets[0] = 0
    offsets[num] = len(data)
    if separators.size == num - 1:
      offsets[1:num] = separators + 1
    else:
      sizes = np.fromiter((len(t.encode("utf-8", "surrogatepass")) + 1 for t in texts),
                          np.int64, num)
      np.cumsum(sizes[:-1], out=offsets[1:num])
    values = np.empty(len(data), dtype=np.int64)
    row_lengths = np.empty(num, dtype=np.int64)
    count = self._lib.bert_wordpiece_tokenize(
        self._handle, data, _pointer(offsets), num,
        num_threads or default_threads(), _pointer(values), _pointer(row_lengths))
    return values[:count], row_lengths
