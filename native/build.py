"""Builds a shared library from C++ sources beside this project's Python code.

Both compiled parts of the project use it: the WordPiece tokenizer (native/,
loaded with ctypes) and the optimizer's kernel (modeling/kernels, loaded by
TensorFlow). A library is named after a hash of its sources, its compiler flags and
whatever else it is built against, so a stale build is never loaded: the caller
finds no file under the expected name and keeps its Python path.
"""

import hashlib
import os
import shutil
import subprocess
import tempfile
from typing import Sequence

_paths = {}  # library_path's results, by sources (with their stats), flags, extra


def library_path(directory: str, prefix: str, sources: Sequence[str],
                 flags: Sequence[str], extra: str = "") -> str:
  """Where the library built from these sources, flags and `extra` lives.

  Args:
    directory: the folder holding the sources and the library.
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
                       "(Debian/Ubuntu: apt-get install g++) and run "
                       "`bash scripts/setup_env.sh` again")
  return compiler


def compile_library(out: str, sources: Sequence[str], flags: Sequence[str],
                    link_flags: Sequence[str] = (), what: str = "the library") -> str:
  """Compiles `sources` into `out`, then deletes older builds with the same prefix.

  The library is written beside `out` and renamed into place, so a half-written
  file is never loaded.

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
  fd, tmp = tempfile.mkstemp(suffix=".so", dir=directory)
  os.close(fd)
  cmd = [compiler] + list(sources) + ["-o", tmp] + list(flags) + list(link_flags)
  proc = subprocess.run(cmd, capture_output=True, text=True)
  if proc.returncode != 0:
    os.unlink(tmp)
    raise RuntimeError("compiling %s failed:\n%s\n%s" % (what, " ".join(cmd),
                                                          proc.stderr[-4000:]))
  os.replace(tmp, out)
  prefix = os.path.basename(out).split(".")[0] + "."
  for name in os.listdir(directory):  # builds of older sources
    path = os.path.join(directory, name)
    if name.startswith(prefix) and name.endswith(".so") and path != out:
      os.unlink(path)
  return out
