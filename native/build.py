"""Builds shared libraries from this project's C++ sources into a user cache.

Both compiled parts of the project use it: the WordPiece tokenizer (native/,
loaded with ctypes) and the optimizer's kernel (modeling/kernels, loaded by
TensorFlow). The sources ship with the Python code; the libraries are built on
first use (or by `python -m native` / `python -m modeling.kernels`) into
cache_dir(), never into the installed package, which may be read-only or shared.
A library is named after a hash of its sources, its compiler flags and whatever
else it is built against, so a stale build is never loaded, and one cache serves
any number of environments. Without a compiler the callers keep their Python and
TensorFlow paths, which give the same results, slower.
"""

import hashlib
import os
import shutil
import subprocess
import tempfile
from typing import Callable, Sequence

from absl import logging

CACHE_ENV = "BERT_TF2_CACHE_DIR"
# Set to 0 to never compile on first use (the libraries are then only loaded when
# `python -m native` / `python -m modeling.kernels` built them).
BUILD_ON_FIRST_USE_ENV = "BERT_TF2_BUILD_ON_FIRST_USE"

_paths = {}  # library_path's results, by sources (with their stats), flags, extra
_first_use_tried = set()  # library paths whose build this process attempted


def cache_dir() -> str:
  """$BERT_TF2_CACHE_DIR, else $XDG_CACHE_HOME/bert-tf2, else ~/.cache/bert-tf2."""
  if os.environ.get(CACHE_ENV):
    return os.path.abspath(os.path.expanduser(os.environ[CACHE_ENV]))
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"),
                                                          ".cache")
  return os.path.join(base, "bert-tf2")


def library_path(directory: str, prefix: str, sources: Sequence[str],
                 flags: Sequence[str], extra: str = "") -> str:
  """Where the library built from these sources, flags and `extra` lives.

  Args:
    directory: the folder for the library (cache_dir() for this project's).
    prefix: the library's file name starts with this (e.g. "_wordpiece").
    sources: paths of the C++ sources.
    flags: the compiler flags that change the code (part of the name).
    extra: anything else the build depends on, e.g. the TensorFlow version.

  Returns:
    <directory>/<prefix>.<16 hex digits>.so
  """
  # Model code asks for the library at every LayerNorm and bias it traces: the
  # sources are hashed again only when one of them changed on disk.
  stats = tuple((source, os.stat(source).st_mtime_ns, os.stat(source).st_size)
                for source in sources)
  key = (directory, prefix, stats, tuple(flags), extra)
  if key not in _paths:
    digest = hashlib.sha256()
    for source in sources:
      with open(source, "rb") as f:
        digest.update(f.read())
    digest.update(extra.encode())
    digest.update(" ".join(flags).encode())
    _paths[key] = os.path.join(directory,
                               "%s.%s.so" % (prefix, digest.hexdigest()[:16]))
  return _paths[key]


def find_compiler() -> str:
  """$CXX, else g++, else c++.

  Raises:
    RuntimeError: none of them is there.
  """
  compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
  if not compiler:
    raise RuntimeError("no C++ compiler found (looked for $CXX, g++, c++); install one "
                       "(Debian/Ubuntu: apt-get install g++); the next run builds it")
  return compiler


def compile_library(out: str, sources: Sequence[str], flags: Sequence[str],
                    link_flags: Sequence[str] = (), what: str = "the library") -> str:
  """Compiles `sources` into `out`.

  The library is written beside `out` and renamed into place, so a half-written
  file is never loaded, and processes building the same library at once each
  leave a complete one. Other builds in the directory are kept: they may be
  another environment's (another TensorFlow version).

  Args:
    out: a path from library_path().
    sources: C++ source paths.
    flags: compiler flags (the ones library_path() was given).
    link_flags: further flags that do not change the code (include and link paths).
    what: what is being built, for the error message.

  Returns:
    out.

  Raises:
    RuntimeError: no compiler, or the compiler failed (its output included).
  """
  compiler = find_compiler()
  directory = os.path.dirname(out)
  try:
    os.makedirs(directory, exist_ok=True)
  except OSError as e:
    raise RuntimeError(f"cannot create the build directory {directory}: {e}; set "
                       f"{CACHE_ENV} to a writable directory") from e
  fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".so", dir=directory)
  os.close(fd)
  cmd = [compiler] + list(sources) + ["-o", tmp] + list(flags) + list(link_flags)
  try:
    proc = subprocess.run(cmd, capture_output=True, text=True)
  except OSError as e:  # $CXX names no runnable program
    os.unlink(tmp)
    raise RuntimeError(f"cannot run the compiler {compiler}: {e}") from e
  if proc.returncode != 0:
    os.unlink(tmp)
    raise RuntimeError("compiling %s failed:\n%s\n%s" % (what, " ".join(cmd),
                                                          proc.stderr[-4000:]))
  os.replace(tmp, out)
  return out


def ensure_built(out: str, build: Callable[[], str], what: str) -> bool:
  """True when the library `out` exists, compiling it first on first use.

  Compiles at most once per process and library; a failure (no compiler, an
  unwritable cache) is logged once as a warning, and the caller keeps its
  slower path with the same results.

  Args:
    out: the library's path (from library_path()).
    build: compiles it (the module's build function).
    what: what it is, for the log.
  """
  if os.path.exists(out):
    return True
  if out in _first_use_tried or os.environ.get(BUILD_ON_FIRST_USE_ENV, "1") == "0":
    return False
  _first_use_tried.add(out)
  logging.info("Building %s into %s (once per source and TensorFlow version)...",
               what, os.path.dirname(out))
  try:
    build()
  except RuntimeError as e:
    logging.warning("%s is not available, so the slower path with the same results "
                    "runs instead: %s", what, e)
    return False
  return os.path.exists(out)
