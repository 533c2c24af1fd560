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

import os

import tensorflow as tf

from native import build as native_build

_DIR = os.path.dirname(os.path.abspath(__file__))
_SOURCES = [os.path.join(_DIR, "fused_adam.cc")]
# -ffp-contract=off: no fused multiply-adds, so the roundings are TensorFlow's.
# -fno-math-errno lets the compiler vectorize sqrt. No -march: the library must
# run on any CPU the TensorFlow wheel runs on.
_FLAGS = ["-O3", "-fPIC", "-shared", "-ffp-contract=off", "-fno-math-errno"]

_loaded = {}


def library_path():
  """Path of the shared library built from the current sources for this TensorFlow."""
  return native_build.library_path(_DIR, "_bert_kernels", _SOURCES, _FLAGS,
                                   extra=tf.__version__)


def build(verbose=True):
  """Compiles the sources into library_path(); returns that path.

  Raises:
    RuntimeError: no C++ compiler, or the compiler failed (its output included).
  """
  out = native_build.compile_library(
      library_path(), _SOURCES, _FLAGS,
      link_flags=tf.sysconfig.get_compile_flags() + tf.sysconfig.get_link_flags(),
      what="the optimizer kernel")
  _loaded.pop(out, None)  # load() may have found nothing here before
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


