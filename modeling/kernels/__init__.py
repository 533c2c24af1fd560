"""CPU kernels this project compiles against the installed TensorFlow.

    python -m modeling.kernels          # build (scripts/setup_env.sh runs it)

fused_adam.cc: TensorFlow 2.20 has no one-pass kernel for the original BERT
optimizer's update (clip, weight decay, Adam). Written as TensorFlow ops it reads
and writes every variable three times, a fixed cost per step that weighs most in
short-text fine-tuning (bench/RESULTS.md, session 12); XLA was slower still.

The shared library is named after a hash of the sources, the compiler flags and
the TensorFlow version, so a stale build is never loaded: `load()` returns None
and the optimizer keeps TensorFlow's ops, which give the same values.
"""

import hashlib
import os
import shutil
import subprocess
import tempfile

import tensorflow as tf

_DIR = os.path.dirname(os.path.abspath(__file__))
_SOURCES = [os.path.join(_DIR, "fused_adam.cc")]
# -ffp-contract=off: no fused multiply-adds, so the roundings are TensorFlow's.
# -fno-math-errno lets the compiler vectorize sqrt. No -march: the library must
# run on any CPU the TensorFlow wheel runs on.
_FLAGS = ["-O3", "-fPIC", "-shared", "-ffp-contract=off", "-fno-math-errno"]

_loaded = {}


def library_path():
  """Path of the shared library built from the current sources for this TensorFlow."""
  digest = hashlib.sha256()
  for source in _SOURCES:
    with open(source, "rb") as f:
      digest.update(f.read())
  digest.update(tf.__version__.encode())
  digest.update(" ".join(_FLAGS).encode())
  return os.path.join(_DIR, "_bert_kernels.%s.so" % digest.hexdigest()[:16])


def build(compiler=None, verbose=True):
  """Compiles the sources into library_path(); returns that path.

  Raises:
    RuntimeError: no C++ compiler, or the compiler failed (its output included).
  """
  compiler = compiler or os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
  if not compiler:
    raise RuntimeError("no C++ compiler found (looked for $CXX, g++, c++); install one "
                       "(Debian/Ubuntu: apt-get install g++) and run "
                       "`python -m modeling.kernels` again")
  out = library_path()
  # Written beside the target, then renamed: a half-written library is never loaded.
  fd, tmp = tempfile.mkstemp(suffix=".so", dir=_DIR)
  os.close(fd)
  cmd = ([compiler] + _SOURCES + ["-o", tmp] + _FLAGS + tf.sysconfig.get_compile_flags() +
         tf.sysconfig.get_link_flags())
  proc = subprocess.run(cmd, capture_output=True, text=True)
  if proc.returncode != 0:
    os.unlink(tmp)
    raise RuntimeError("compiling the kernels failed:\n%s\n%s" % (" ".join(cmd),
                                                                  proc.stderr[-4000:]))
  os.replace(tmp, out)
  _loaded.pop(out, None)  # load() may have found nothing here before
  for name in os.listdir(_DIR):  # builds of older sources
    if name.startswith("_bert_kernels.") and name.endswith(".so") and \
        os.path.join(_DIR, name) != out:
      os.unlink(os.path.join(_DIR, name))
  if verbose:
    print("built %s" % out)
  return out


def load():
  """The loaded op library (bert_adam_weight_decay, bert_sparse_adam_weight_decay,
  bert_group_adam_weight_decay), or None when it is not built for these sources,
  flags and this TensorFlow."""
  path = library_path()
  if path not in _loaded:
    _loaded[path] = tf.load_op_library(path) if os.path.exists(path) else None
  return _loaded[path]


