"""CPU kernels this project compiles against the installed TensorFlow.

    python -m modeling.kernels          # build now (else the first use builds it)

fused_adam.cc: TensorFlow 2.20 has no one-pass kernel for the original BERT
optimizer's update (clip, weight decay, Adam). Written as TensorFlow ops it reads
and writes every variable three times, a fixed cost per step that weighs most in
short-text fine-tuning (bench/RESULTS.md, session 12); XLA was slower still.

layer_norm.cc: the training LayerNorm and its gradient, one pass over the rows
each, in place of about eighteen TensorFlow ops, and bias gradients summed in
float32 (bench/RESULTS.md, session 13). Same formulas, float32 rounding differs
(sums in another order).

The shared library is compiled into the user cache (native.build.cache_dir()) on
first use, named after a hash of the sources, the compiler flags and the
TensorFlow version, so a stale build is never loaded. When it cannot be built (no
compiler) `load()` returns None and the optimizer and the model keep TensorFlow's
ops (the optimizer's give the same values to the bit, the LayerNorm's to float32
rounding).
"""

import os

import tensorflow as tf

from native import build as native_build

_DIR = os.path.dirname(os.path.abspath(__file__))
_SOURCES = [os.path.join(_DIR, name) for name in ("fused_adam.cc", "layer_norm.cc")]
# -ffp-contract=off: no fused multiply-adds, so the roundings are TensorFlow's.
# -fno-math-errno lets the compiler vectorize sqrt. No -march: the library must
# run on any CPU the TensorFlow wheel runs on.
_FLAGS = ["-O3", "-fPIC", "-shared", "-ffp-contract=off", "-fno-math-errno"]

_loaded = {}


def library_path():
  """Path of the shared library built from the current sources for this TensorFlow."""
  return native_build.library_path(native_build.cache_dir(), "_bert_kernels",
                                   _SOURCES, _FLAGS, extra=tf.__version__)


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
  bert_group_adam_weight_decay, bert_layer_norm, bert_layer_norm_grad,
  bert_bias_grad), compiled first on first use; None when it cannot be built."""
  path = library_path()
  if path not in _loaded:
    built = native_build.ensure_built(path, lambda: build(verbose=False),
                                      "the optimizer and LayerNorm CPU kernels")
    _loaded[path] = tf.load_op_library(path) if built else None
  return _loaded[path]


def _in_xla_context():
  """True while tracing code that XLA will compile (jit_compile, TPUs), or when
  that cannot be told (TensorFlow moved the private helper)."""
  try:
    from tensorflow.python.framework import ops  # pylint: disable=g-import-not-at-top
    from tensorflow.python.ops import control_flow_util  # pylint: disable=g-import-not-at-top
    return control_flow_util.GraphOrParentsInXlaContext(ops.get_default_graph())
  except (ImportError, AttributeError):
    return True


def for_model_code():
  """The op library for model code being traced now, or None where it cannot run.

  None inside a function XLA compiles (tf.function(jit_compile=True), and so the
  training step under --use_xla; TPU programs), when a GPU or TPU is visible (the
  model's ops would be placed there), or when the library is not built.
  """
  if tf.config.list_physical_devices("GPU") or tf.config.list_physical_devices("TPU"):
    return None
  if _in_xla_context():
    return None
  return load()
