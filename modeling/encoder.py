"""The BERT encoder as a tf.Module holding its variables under the original names.

The math follows Google's original modeling.py: post-LayerNorm Transformer layers,
LayerNorm epsilon 1e-12, tanh-approximation GELU for "gelu", an additive -10000 mask on
padded key positions, and a pooler tanh(dense(first token)).

Mixed precision: variables are always float32. With compute_dtype bfloat16/float16 the
weights and activations are cast for the matmuls; LayerNorm, softmax and the residual
stream stay float32, so every tensor this module returns is float32.
"""

import math
from typing import List, NamedTuple

import tensorflow as tf

from modeling import kernels
from modeling.config import BertConfig

LAYER_NORM_EPSILON = 1e-12
# Inference LayerNorms of at least this many values take oneDNN's fused kernel,
# whose fixed cost (about 0.15 ms a call on the benchmark host) is more than it saves
# on small tensors: the two forms break even at about 73K values (96 x 768 and
# 192 x 384), bench/RESULTS.md, session 9.
FUSED_LAYER_NORM_MIN_SIZE = 96 * 1024
# Added to the attention scores of padded positions, as the original (not -inf, so a
# fully padded row still gives a finite uniform softmax).
MASK_ADDER = -10000.0


def gelu(x):
  """GELU, tanh approximation (Google's original "gelu").

  0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3))), the original's formula,
  written as tf.nn.gelu: in inference graphs TensorFlow's oneDNN rewrite then fuses
  it with the preceding matmul and bias into one kernel (a [B*S, I] tensor is no
  longer written and re-read by five element-wise ops: 1.7x faster for that layer).

  Args:
    x: float tensor.

  Returns:
    Tensor of the same shape and dtype.
  """
  with tf.name_scope("gelu"):
    return tf.nn.gelu(x, approximate=True)


def gelu_exact(x):
  """GELU with the exact erf form (Hugging Face's "gelu").

  0.5 * x * (1 + erf(x / sqrt(2))), as tf.nn.gelu for the same fusion as `gelu`.

  Args:
    x: float tensor.

  Returns:
    Tensor of the same shape and dtype.
  """
  with tf.name_scope("gelu_exact"):
    return tf.nn.gelu(x, approximate=False)


_SQRT_HALF = 0.7071067811865476  # 1 / sqrt(2)
_INV_SQRT_2PI = 0.3989422804014327  # 1 / sqrt(2 pi)
_TANH_SCALE = 0.7978845608028654  # sqrt(2 / pi)


def _fused_for_training(parts):
  """An op (x, bias) -> parts(x + bias)[0] in float32, one XLA-compiled pass each way.

  parts(x32) returns (y32, dy/dx32). On CPU every TensorFlow element-wise op is a
  pass over the whole tensor in memory, and a tanh GELU and its gradient take
  about fifteen of them. Here the forward pass (cast, bias, the formula, cast back)
  is one XLA-compiled loop, and the backward pass another that recomputes the
  factor from x instead of saving it, so a 16-bit step keeps x (16-bit) rather than
  a float32 factor. A [4096, 3072] bfloat16 forward and backward pass (BERT-Base's
  feed-forward at batch 32 x 128) went from 79-84 to 18-20 ms, float32 from 79-88
  to 28-30 ms (bench/RESULTS.md, session 11). XLA compiles each pass once per new
  shape (about 55 ms for both on 2 cores); a training loop sees a bounded set of
  shapes. The values agree with the unfused ops to float32 rounding, then rounded
  to x's dtype.

  Taking the bias here lets the matmul before it run without one: in training
  (weights read from variables) TensorFlow's oneDNN rewrite gives a matmul with a
  fused bias an inner-product kernel that does not use AMX, and a plain matmul
  one that does (ONEDNN_VERBOSE shows x64:gemm:jit for the first).

  Returns:
    op(x, bias=None): x [..., N] of any float dtype, bias [N] in x's dtype or
    float32 (the variable itself, whose gradient then stays float32), or None.
  """
  @tf.function(jit_compile=True, autograph=False)
  def forward(x, bias):
    y, _ = parts(tf.cast(x, tf.float32) + tf.cast(bias, tf.float32))
    return tf.cast(y, x.dtype)

  @tf.function(jit_compile=True, autograph=False)
  def backward(dy, x, bias):
    _, factor = parts(tf.cast(x, tf.float32) + tf.cast(bias, tf.float32))
    return tf.cast(tf.cast(dy, tf.float32) * factor, dy.dtype)

  @tf.custom_gradient
  def with_bias(x, bias):
    def grad(dy):
      dx = backward(dy, x, bias)
      # The bias's gradient summed in float32 where this project's kernel runs
      # (see bias_add_for_training), else by TensorFlow in dx's dtype.
      library = kernels.for_model_code()
      if library is not None:
        return dx, tf.cast(library.bert_bias_grad(dx), bias.dtype)
      return dx, tf.cast(tf.raw_ops.BiasAddGrad(out_backprop=dx), bias.dtype)
    return forward(x, bias), grad

  @tf.custom_gradient
  def without_bias(x):
    zero = tf.zeros([], x.dtype)
    return forward(x, zero), lambda dy: backward(dy, x, zero)

  def op(x, bias=None):
    return without_bias(x) if bias is None else with_bias(x, bias)

  return op


def _gelu_exact_parts(x):
  cdf = 0.5 * (1.0 + tf.math.erf(x * _SQRT_HALF))
  pdf = _INV_SQRT_2PI * tf.exp(-0.5 * tf.square(x))
  return x * cdf, cdf + x * pdf


def _gelu_tanh_parts(x):
  t = tf.tanh(_TANH_SCALE * (x + 0.044715 * x * tf.square(x)))
  half_x = 0.5 * x
  dt = (1.0 - tf.square(t)) * _TANH_SCALE * (1.0 + 0.134145 * tf.square(x))
  return half_x * (1.0 + t), 0.5 * (1.0 + t) + half_x * dt


_gelu_exact_fused = _fused_for_training(_gelu_exact_parts)
_gelu_tanh_fused = _fused_for_training(_gelu_tanh_parts)


def gelu_for_training(x, bias=None):
  """`gelu` (tanh approximation) of x + bias for training, to float32 rounding.

  Training has no use for the inference fusion of tf.nn.gelu (the gradient needs
  the matmul's output); _fused_for_training computes it and its gradient in one
  pass each, in any dtype, adding the bias (if any) in the same pass.
  """
  with tf.name_scope("gelu"):
    return _gelu_tanh_fused(x, bias)


def gelu_exact_for_training(x, bias=None):
  """`gelu_exact` for training, as gelu_for_training (one fused pass each way).

  A [4096, 1536] bfloat16 forward and backward pass (MiniLM's feed-forward at batch
  32 x 128) went from 31-36 to 11 ms (bench/RESULTS.md, session 11).
  """
  with tf.name_scope("gelu_exact"):
    return _gelu_exact_fused(x, bias)


_TRAINING_ACTIVATIONS = {gelu: gelu_for_training, gelu_exact: gelu_exact_for_training}
# Training activations that add the dense layer's bias themselves: fn(x, bias).
_TAKES_BIAS = frozenset(_TRAINING_ACTIVATIONS.values())


_ACTIVATIONS = {
    "gelu": gelu,
    "gelu_new": gelu,
    "gelu_exact": gelu_exact,
    "relu": tf.nn.relu,
    "tanh": tf.tanh,
}


def get_activation(name):
  """Maps an activation name from bert_config.json to a function.

  Args:
    name: one of "gelu", "gelu_new" (both tanh approximation), "gelu_exact", "relu",
      "tanh".

  Returns:
    A function tensor -> tensor.

  Raises:
    ValueError: for an unknown name.
  """
  if name not in _ACTIVATIONS:
    raise ValueError("Unknown activation %r; expected one of %s"
                     % (name, ", ".join(sorted(_ACTIVATIONS))))
  return _ACTIVATIONS[name]


def layer_norm(x, gamma, beta, fused=None, training=False):
  """LayerNorm over the last axis, computed in float32 with epsilon 1e-12.

  Args:
    x: tensor [..., H], any float dtype.
    gamma: float32 variable [H].
    beta: float32 variable [H].
    fused: None, or a scalar bool tensor from fused_layer_norm_condition: where it
      is true, oneDNN's fused LayerNorm (_layer_norm_onednn) computes the result.
    training: python bool. In training on CPUs the LayerNorm and its gradient are
      this project's kernel (modeling/kernels/layer_norm.cc) when it is built and
      the graph is not compiled by XLA; inference graphs (and so exported models)
      never use it.

  Returns:
    float32 tensor [..., H].
  """
  with tf.name_scope("layer_norm"):
    x = tf.cast(x, tf.float32)
    gamma, beta = tf.convert_to_tensor(gamma), tf.convert_to_tensor(beta)
    library = kernels.for_model_code() if training and fused is None else None
    if library is not None:
      return _layer_norm_kernel(library, x, gamma, beta)
    if fused is None:
      return _layer_norm_float32(x, gamma, beta)
    return tf.cond(fused, lambda: _layer_norm_onednn(x, gamma, beta),
                   lambda: _layer_norm_float32(x, gamma, beta))


def fused_layer_norm_condition(x, training):
  """Whether inference LayerNorms of tensors the size of x take oneDNN's kernel.

  Only for inference on an unknown number of rows (see _layer_norm_onednn), with
  TensorFlow's oneDNN CPU kernels on and no GPU or TPU visible; then a scalar bool
  tensor, true from FUSED_LAYER_NORM_MIN_SIZE values. One condition serves all the
  LayerNorms of that size in a model, since every tf.cond adds a few graph nodes:
  BERT-Small at batch 1, with the variants alternating in one process, paid 4.1% a
  call for a size test per LayerNorm and 2.5% for one shared test (bench/RESULTS.md,
  session 9).

  Args:
    x: tensor [..., H].
    training: python bool.

  Returns:
    None (plain ops) or a scalar bool tensor, for layer_norm's `fused`.
  """
  if (training or x.shape[:-1].num_elements() is not None
      or not _onednn_layer_norm_available()):
    return None
  return tf.size(x) >= FUSED_LAYER_NORM_MIN_SIZE


def _onednn_layer_norm_available():
  """True when TensorFlow's oneDNN CPU kernels are on and no GPU or TPU is visible."""
  try:
    from tensorflow.python.util import _pywrap_util_port  # pylint: disable=g-import-not-at-top
    onednn = _pywrap_util_port.IsMklEnabled()
  except (ImportError, AttributeError):
    return False
  return bool(onednn and not tf.config.list_physical_devices("GPU")
              and not tf.config.list_physical_devices("TPU"))


def _layer_norm_onednn(x, gamma, beta):
  """Inference LayerNorm in the form TensorFlow's CPU graph rewrite fuses.

  Each row of x becomes one channel of an NCHW batch norm in training mode (so its
  statistics are the row's), with scale and offset from Fill ops, then gamma and
  beta: TensorFlow's grappler remapper turns exactly this into one _MklLayerNorm,
  oneDNN's layer normalization, with the epsilon given here. A [4096, 768]
  LayerNorm takes 1.2 ms instead of 4.5 (bench/RESULTS.md, session 9). The rewrite
  needs the number of rows unknown when the graph is optimized: for a static shape
  the Fills become constants, the rewrite does not apply, and the batch norm runs
  unfused, slower than _layer_norm_float32. So layer_norm takes this form only for
  an unknown number of rows (fused_layer_norm_condition), as in the SavedModel
  signatures and the evaluation and prediction loops.

  Args:
    x: float32 [..., H], H static.
    gamma, beta: float32 [H].

  Returns:
    float32 [..., H].
  """
  h = x.shape[-1]
  rows = tf.size(x) // h
  channels = tf.reshape(rows, [1])
  normed, _, _ = tf.compat.v1.nn.fused_batch_norm(
      tf.reshape(x, tf.stack([1, rows, h, 1])), tf.fill(channels, 1.0),
      tf.fill(channels, 0.0), epsilon=LAYER_NORM_EPSILON, data_format="NCHW")
  return tf.reshape(normed, tf.shape(x)) * gamma + beta


def _layer_norm_kernel(library, x, gamma, beta):
  """_layer_norm_float32's math as two kernel calls, forward and backward.

  Args:
    library: the loaded modeling/kernels op library.
    x: float32 [..., H].
    gamma, beta: float32 [H].

  Returns:
    float32 [..., H].
  """
  @tf.custom_gradient
  def forward(x, gamma, beta):
    y, mean, inv_std = library.bert_layer_norm(x, gamma, beta,
                                               epsilon=LAYER_NORM_EPSILON)

    def grad(dy):
      return library.bert_layer_norm_grad(dy, x, mean, inv_std, gamma)

    return y, grad

  return forward(x, gamma, beta)


@tf.custom_gradient
def _layer_norm_float32(x, gamma, beta):
  """LayerNorm with a hand-written gradient.

  Automatic differentiation of the forward ops (through tf.nn.moments) builds about
  twenty element-wise ops and reductions; the closed form below needs about ten,
  which matters because on CPU every op is a pass over [B*S, H] in memory.

  Args:
    x: float32 [..., H].
    gamma, beta: float32 [H].

  Returns:
    (float32 [..., H], the gradient function).
  """
  mean = tf.reduce_mean(x, axis=-1, keepdims=True)  # [..., 1]
  centered = x - mean
  variance = tf.reduce_mean(tf.square(centered), axis=-1, keepdims=True)
  inv_std = tf.math.rsqrt(variance + LAYER_NORM_EPSILON)  # [..., 1]
  normed = centered * inv_std  # [..., H]

  def grad(dy):
    g = dy * gamma
    # d normed / dx projects out the mean and the component along normed.
    dx = inv_std * (g - tf.reduce_mean(g, axis=-1, keepdims=True)
                    - normed * tf.reduce_mean(g * normed, axis=-1, keepdims=True))
    h = tf.shape(dy)[-1]
    flat_dy = tf.reshape(dy, [-1, h])
    dgamma = tf.reduce_sum(flat_dy * tf.reshape(normed, [-1, h]), axis=0)
    dbeta = tf.reduce_sum(flat_dy, axis=0)
    return dx, dgamma, dbeta

  return normed * gamma + beta, grad


def dropout(x, rate, training, seed=None, site=0):
  """Applies dropout only when training and rate > 0.

  With a seed the mask is a pure function of (seed, site): the training loop passes
  a seed derived from the global step, so a resumed run draws exactly the masks an
  uninterrupted run would have drawn.

  Args:
    x: tensor.
    rate: float drop probability.
    training: python bool.
    seed: optional int [2] tensor for stateless dropout; None uses the global RNG.
    site: python int that makes each dropout call's mask distinct under one seed.

  Returns:
    Tensor like x.
  """
  if not training or rate is None or rate == 0.0:
    return x
  with tf.name_scope("dropout"):
    if seed is None:
      return tf.nn.dropout(x, rate=rate)
    site_seed = tf.random.experimental.stateless_fold_in(seed, site)
    return stateless_dropout_16bit(x, rate, site_seed)


# Dropout compares 16-bit random numbers with the rate: the rate becomes a multiple
# of 1/65536 (0.1 -> 0.1000061), and each 32-bit draw of the counter-based generator
# serves two positions.
_DROPOUT_RESOLUTION = 65536


def stateless_dropout_16bit(x, rate, seed):
  """Stateless dropout drawing 16 random bits per position instead of 32.

  Drawing the random numbers was the largest non-matmul cost of a training step on
  CPU (bench/profile_step.py: 8-9% of a BERT-Small step); half the draws make the
  dropout op about 1.7x faster. Kept positions are scaled by 1 / keep probability of
  the quantised rate, so the expected output is exactly x.

  Args:
    x: float tensor, any shape.
    rate: python float in [0, 1).
    seed: int [2] tensor.

  Returns:
    Tensor like x.
  """
  threshold = int(round(rate * _DROPOUT_RESOLUTION))
  keep_prob = 1.0 - threshold / _DROPOUT_RESOLUTION
  shape = tf.shape(x)
  size = tf.size(x)
  bits = tf.random.stateless_uniform([(size + 1) // 2], seed, minval=None, maxval=None,
                                     dtype=tf.uint32)
  bits = tf.reshape(tf.bitcast(bits, tf.uint16), [-1])[:size]  # [size] uint16
  keep = tf.reshape(bits, shape) >= tf.constant(threshold, tf.uint16)
  return tf.where(keep, x * tf.cast(1.0 / keep_prob, x.dtype), tf.zeros([], x.dtype))


def _truncated_normal(shape, stddev):
  # As tf1's truncated_normal_initializer: resample outside 2 stddev.
  return tf.random.truncated_normal(shape, stddev=stddev, dtype=tf.float32)


class NamedVariableModule(tf.Module):
  """A tf.Module that registers its variables under explicit checkpoint names."""

  def __init__(self, name=None):
    super().__init__(name=name)
    self._named = {}

  def _add_variable(self, name, initial_value):
    """Creates a float32 trainable variable called `name` (no ":0").

    Args:
      name: the original checkpoint name, e.g. "bert/pooler/dense/kernel".
      initial_value: float32 tensor with the variable's shape.

    Returns:
      The tf.Variable.
    """
    if name in self._named:
      raise ValueError("Duplicate variable name %s" % name)
    var = tf.Variable(initial_value, name=name, dtype=tf.float32, trainable=True)
    self._named[name] = var
    return var

  def named_variables(self):
    """Returns an ordered dict {original checkpoint name: tf.Variable}."""
    return dict(self._named)


class BertOutput(NamedTuple):
  """What BertModel returns; all float32."""
  sequence_output: tf.Tensor  # [B, S, H], output of the last layer
  pooled_output: tf.Tensor  # [B, H], tanh(dense(sequence_output[:, 0]))
  all_encoder_layers: List[tf.Tensor]  # num_hidden_layers x [B, S, H]
  embedding_output: tf.Tensor  # [B, S, H], after embedding LayerNorm and dropout

  def get_sequence_output(self):
    """Returns the final hidden states [B, S, H]."""
    return self.sequence_output

  def get_pooled_output(self):
    """Returns the pooled [CLS] representation [B, H]."""
    return self.pooled_output

  def get_all_encoder_layers(self):
    """Returns the list of every layer's hidden states, each [B, S, H]."""
    return self.all_encoder_layers

  def get_embedding_output(self):
    """Returns the embedding output [B, S, H]."""
    return self.embedding_output


def bias_add_for_training(product, bias):
  """product + bias in training; on CPUs the bias's gradient is summed in float32.

  TensorFlow's gradient of a bfloat16 bias add (BiasAddGrad) sums the rows in
  bfloat16, and the Cast back to the float32 variable is one more op. With this
  project's kernels (modeling/kernels, CPUs, outside XLA) one kernel call sums
  the rows in float32 straight into the variable's gradient; elsewhere the
  bias add is TensorFlow's.

  Args:
    product: [..., K] in the compute dtype.
    bias: float32 [K].

  Returns:
    [..., K] in product's dtype.
  """
  library = kernels.for_model_code()
  if library is None:
    return tf.nn.bias_add(product, tf.cast(bias, product.dtype))

  @tf.custom_gradient
  def add(product, bias):
    def grad(dy):
      return dy, library.bert_bias_grad(dy)
    return tf.nn.bias_add(product, tf.cast(bias, product.dtype)), grad

  return add(product, bias)


class _Dense(object):
  """A kernel [in, out] and bias [out] pair registered on a NamedVariableModule."""

  def __init__(self, owner, prefix, in_dim, out_dim, stddev):
    self.kernel = owner._add_variable(prefix + "/kernel",
                                      _truncated_normal([in_dim, out_dim], stddev))
    self.bias = owner._add_variable(prefix + "/bias", tf.zeros([out_dim]))

    self.frozen = None  # (kernel, bias) in the compute dtype, see freeze()

  def freeze(self, dtype):
    """Keeps inference copies of the weights in `dtype`: float32 uses the variables
    themselves, a 16-bit dtype graph constants (see _GraphConstant)."""
    if tf.as_dtype(dtype) == tf.float32:
      self.frozen = (self.kernel, self.bias)
    else:
      self.frozen = (_GraphConstant(self.kernel, dtype), _GraphConstant(self.bias, dtype))

  def matmul(self, x, dtype):
    """x @ kernel in `dtype`, from the variable (no bias)."""
    return tf.matmul(tf.cast(x, dtype), tf.cast(self.kernel, dtype))

  def __call__(self, x, dtype, training=True):
    """x: [N, in] -> [N, out] in `dtype`."""
    if training:
      return bias_add_for_training(self.matmul(x, dtype),
                                   tf.convert_to_tensor(self.bias))
    if self.frozen is not None:
      kernel, bias = (_frozen_value(w) for w in self.frozen)
      product = tf.matmul(tf.cast(x, dtype), kernel)
    else:
      product, bias = self.matmul(x, dtype), tf.cast(self.bias, dtype)
    # bias_add (not +) is the pattern TensorFlow fuses into the matmul kernel.
    return tf.nn.bias_add(product, bias)


class _GraphConstant(object):
  """A frozen 16-bit inference weight, held on the host and placed in the graph.

  Called inside a tf.function trace, it adds the weight to the graph as a constant
  node. TensorFlow's oneDNN kernels treat a constant matmul weight as frozen: they
  reorder it once into the blocked layout of the CPU's matrix units (AMX) and keep
  that copy, with the bias and GELU fused into the same inner-product kernel. A
  weight read from a variable gets a plain-layout kernel instead. A BERT-Small
  bfloat16 call at batch 32 went from 119 to 183 examples/s (bench/RESULTS.md,
  session 4). float32 weights stay variables: there the constant was slower.
  """

  def __init__(self, value, dtype):
    self.value = tf.cast(value, dtype).numpy()  # numpy carries the dtype

  def __call__(self):
    return tf.constant(self.value)


def _frozen_copy(value, dtype):
  """An inference copy of a computed weight: a non-trainable variable in float32
  (tracked, so a SavedModel saves it), a _GraphConstant in a 16-bit dtype."""
  if tf.as_dtype(dtype) == tf.float32:
    return tf.Variable(value, trainable=False)
  return _GraphConstant(value, dtype)


def _frozen_value(weight):
  """A frozen weight as a tensor: a variable as it is, a _GraphConstant placed."""
  return weight() if isinstance(weight, _GraphConstant) else weight


class TransformerLayer(NamedVariableModule):
  """One post-LayerNorm Transformer layer: bert/encoder/layer_N/..."""

  def __init__(self, config, layer_index, compute_dtype=tf.float32):
    """Creates the layer's variables.

    Args:
      config: BertConfig.
      layer_index: N in the variable names.
      compute_dtype: dtype of the matmuls.
    """
    super().__init__(name="layer_%d" % layer_index)
    h, i = config.hidden_size, config.intermediate_size
    std = config.initializer_range
    p = "bert/encoder/layer_%d/" % layer_index
    self.config = config
    self.compute_dtype = compute_dtype
    self.num_heads = config.num_attention_heads
    self.head_size = h // config.num_attention_heads
    self.query = _Dense(self, p + "attention/self/query", h, h, std)
    self.key = _Dense(self, p + "attention/self/key", h, h, std)
    self.value = _Dense(self, p + "attention/self/value", h, h, std)
    self.attention_output = _Dense(self, p + "attention/output/dense", h, h, std)
    self.attention_ln_gamma = self._add_variable(p + "attention/output/LayerNorm/gamma",
                                                 tf.ones([h]))
    self.attention_ln_beta = self._add_variable(p + "attention/output/LayerNorm/beta",
                                                tf.zeros([h]))
    self.intermediate = _Dense(self, p + "intermediate/dense", h, i, std)
    self.output_dense = _Dense(self, p + "output/dense", i, h, std)
    self.output_ln_gamma = self._add_variable(p + "output/LayerNorm/gamma", tf.ones([h]))
    self.output_ln_beta = self._add_variable(p + "output/LayerNorm/beta", tf.zeros([h]))
    self.activation = get_activation(config.hidden_act)
    self.training_activation = _TRAINING_ACTIVATIONS.get(self.activation,
                                                         self.activation)
    self._frozen_qkv = None  # 16-bit inference: fused [H, 3H] kernel and bias
    self._frozen_heads = None  # float32 inference: see _heads_query_key_value

  def _qkv_weights(self, scale_query=True, bias_dtype=None):
    """The fused [H, 3H] kernel and [3H] bias in the compute dtype.

    Args:
      scale_query: fold the 1/sqrt(D) score scale into the query kernel and bias.
      bias_dtype: the bias's dtype, if not the compute dtype.
    """
    scale = 1.0 / math.sqrt(float(self.head_size)) if scale_query else 1.0
    kernel = tf.concat([self.query.kernel * scale, self.key.kernel,
                        self.value.kernel], axis=1)  # [H, 3H]
    bias = tf.concat([self.query.bias * scale, self.key.bias, self.value.bias],
                     axis=0)  # [3H]
    return (tf.cast(kernel, self.compute_dtype),
            tf.cast(bias, bias_dtype or self.compute_dtype))

  def freeze_for_inference(self):
    """Precomputes the weights of inference calls (training=False).

    Training needs the float32 variables, so every call casts each kernel to the
    compute dtype and concatenates the query, key and value kernels. Inference on
    a model that no longer trains can do that once: after this call, training=False
    reads copies made now (a batch-1 BERT-Small bfloat16 call went from 47.6 to
    29.0 ms under the profiler). In a 16-bit compute dtype every copy is a graph
    constant (_GraphConstant), which TensorFlow's CPU kernels keep in the matrix
    units' own layout. In float32 the other kernels are the variables themselves,
    and the query, key and value kernels are copied head by head
    (non-trainable variables, see _heads_query_key_value). The copies do not follow
    later changes of the variables: freeze only a model whose weights are final,
    such as the inference copy that export makes (modeling.export.inference_copy).
    """
    if self.compute_dtype == tf.float32:
      n, d = self.num_heads, self.head_size
      h = n * d
      # [H, 3H], [3H]; the scores are scaled instead (see __call__).
      kernel, bias = self._qkv_weights(scale_query=False)
      # [H, 3, N, D] -> [3, N, H, D]: one [H, D] kernel per projection and head.
      heads = tf.transpose(tf.reshape(kernel, [h, 3, n, d]), [1, 2, 0, 3])
      heads_bias = tf.reshape(bias, [3, n, 1, d])
      self._frozen_heads = (
          tf.Variable(heads[:, tf.newaxis], trainable=False),  # [3, 1, N, H, D]
          tf.Variable(heads_bias[:, tf.newaxis], trainable=False))  # [3, 1, N, 1, D]
    else:
      self._frozen_qkv = tuple(_frozen_copy(w, self.compute_dtype)
                               for w in self._qkv_weights())
    for dense in (self.attention_output, self.intermediate, self.output_dense):
      dense.freeze(self.compute_dtype)

  def _heads_query_key_value(self, x, batch_size, seq_length):
    """The frozen float32 projections, computed straight into the heads' layout.

    A batched matmul of x [1, B, 1, S, H] with the per-head kernels [3, 1, N, H, D]
    writes queries, keys and values as [3, B, N, S, D]: the transpose of a
    [B*S, 3H] result into the heads' layout disappears. Against the fused [H, 3H]
    matmul and its transpose, in alternating blocks of calls: BERT-Small 4% faster
    at batch 32 x 128, BERT-Base 1% (2,500 against 2,483 ms), MiniLM 15% at batch 1
    x 24 (bench/RESULTS.md, session 8). Training keeps the [H, 3H] matmul: the
    gradient of a broadcast kernel would sum B copies of it.

    Args:
      x: float32 [B*S, H].
      batch_size: B.
      seq_length: S.

    Returns:
      q (not scaled), k, v: float32 [B, N, S, D] each.
    """
    kernel, bias = self._frozen_heads
    h = self.num_heads * self.head_size
    x = tf.reshape(x, [1, batch_size, 1, seq_length, h])
    return tf.unstack(tf.matmul(x, kernel) + bias, num=3, axis=0)

  def _query_key_value(self, x, batch_size, seq_length, training):
    """Projects x to the attention heads with one [H, 3H] matmul.

    One matmul of three times the width keeps the CPU's matrix units busier than
    three [H, H] ones and has one transpose instead of three; the kernels stay
    separate variables (the original checkpoint names) and are concatenated on
    each call, which is cheap next to the matmul. The 1/sqrt(D) score scale is
    folded into the query kernel and bias: an [H, H] multiply instead of one over
    every query vector.

    Args:
      x: float32 [B*S, H].
      batch_size: B.
      seq_length: S.
      training: python bool; False may use the weights of freeze_for_inference.

    Returns:
      q, k, v: [B, N, S, D] in the compute dtype, q already scaled.
    """
    n, d = self.num_heads, self.head_size
    dt = self.compute_dtype
    if training:
      kernel, bias = self._qkv_weights(bias_dtype=tf.float32)
      qkv = bias_add_for_training(tf.matmul(tf.cast(x, dt), kernel), bias)
    else:
      if self._frozen_qkv is not None:
        kernel, bias = (_frozen_value(w) for w in self._frozen_qkv)
      else:
        kernel, bias = self._qkv_weights()
      qkv = tf.nn.bias_add(tf.matmul(tf.cast(x, dt), kernel), bias)
    qkv = tf.reshape(qkv, [batch_size, seq_length, 3, n, d])
    qkv = tf.transpose(qkv, [2, 0, 3, 1, 4])  # [3, B, N, S, D]
    return tf.unstack(qkv, num=3, axis=0)

  def __call__(self, x, mask_adder, batch_size, seq_length, training=False,
               dropout_seed=None, first_token_only=False, fused_layer_norm=None):
    """Runs the layer.

    Args:
      x: float32 [B*S, H], the residual stream flattened as the original does.
      mask_adder: float32 [B, 1, 1, S], 0 for real tokens and -10000 for padding.
      batch_size: B (scalar int tensor or int).
      seq_length: S (scalar int tensor or int).
      training: python bool, enables dropout.
      dropout_seed: optional int [2] tensor for stateless dropout (see `dropout`).
      first_token_only: python bool: compute the output of the first position only
        (it still attends to every position), as the last layer under a pooled
        head needs.
      fused_layer_norm: None, or fused_layer_norm_condition of the [B*S, H]
        residual stream (not used for the [B, H] LayerNorms of first_token_only).

    Returns:
      float32 [B*S, H], or [B, H] with first_token_only.
    """
    dt = self.compute_dtype
    n, d = self.num_heads, self.head_size
    h = n * d
    cfg = self.config
    with tf.name_scope("attention"):
      heads = self._frozen_heads is not None and not training
      if heads:
        q, k, v = self._heads_query_key_value(x, batch_size, seq_length)
      else:
        q, k, v = self._query_key_value(x, batch_size, seq_length,
                                        training)  # [B, N, S, D] each
      if first_token_only:
        q = q[:, :, :1, :]  # [B, N, 1, D]
        x = tf.reshape(x, [batch_size, seq_length, h])[:, 0, :]  # [B, H]
      scores = tf.matmul(q, k, transpose_b=True)  # [B, N, S or 1, S]
      if heads:
        # float32 only: matmul, scale and mask add written this way become one
        # oneDNN kernel, so the mask add is no pass of its own over the scores
        # (BERT-Base at batch 32 x 128: 1-2% faster, bench/RESULTS.md session 8).
        scores = scores * (1.0 / math.sqrt(float(d))) + mask_adder
      else:
        # Softmax in float32: the -10000 adder and exp() overflow in float16.
        scores = tf.cast(scores, tf.float32) + mask_adder
      probs = tf.nn.softmax(scores, axis=-1)  # [B, N, S or 1, S]
      probs = dropout(probs, cfg.attention_probs_dropout_prob, training, dropout_seed,
                      0)
      context = tf.matmul(tf.cast(probs, dt), v)  # [B, N, S or 1, D]
      context = tf.transpose(context, [0, 2, 1, 3])  # [B, S or 1, N, D]
      context = tf.reshape(context, [-1, h])  # [B*S or B, H]

      attn = self.attention_output(context, dt, training)  # [B*S or B, H]
      attn = dropout(attn, cfg.hidden_dropout_prob, training, dropout_seed, 1)
      fused = None if first_token_only else fused_layer_norm
      attn = layer_norm(tf.cast(attn, tf.float32) + x, self.attention_ln_gamma,
                        self.attention_ln_beta, fused,
                        training)  # float32 [B*S or B, H]

    with tf.name_scope("ffn"):
      if training and self.training_activation in _TAKES_BIAS:
        # The bias is added in the activation's fused pass (_fused_for_training).
        inter = self.training_activation(
            self.intermediate.matmul(attn, dt),
            tf.convert_to_tensor(self.intermediate.bias))  # [B*S or B, I]
      else:
        activation = self.training_activation if training else self.activation
        inter = activation(self.intermediate(attn, dt, training))  # [B*S or B, I]
      out = self.output_dense(inter, dt, training)  # [B*S or B, H]
      out = dropout(out, cfg.hidden_dropout_prob, training, dropout_seed, 2)
      return layer_norm(tf.cast(out, tf.float32) + attn, self.output_ln_gamma,
                        self.output_ln_beta, fused, training)


class BertModel(NamedVariableModule):
  """BERT encoder ("Bidirectional Encoder Representations from Transformers").

  Example:
    model = BertModel(BertConfig(vocab_size=32000, hidden_size=512,
                                 num_hidden_layers=8, num_attention_heads=8,
                                 intermediate_size=1024))
    out = model(input_ids, input_mask, token_type_ids)  # BertOutput
    pooled = out.get_pooled_output()  # [B, H]
  """

  def __init__(self, config, compute_dtype=tf.float32, name="bert"):
    """Creates every variable under its original name.

    Args:
      config: BertConfig (validated here).
      compute_dtype: tf.float32, tf.bfloat16 or tf.float16 for the matmuls.
      name: tf.Module name (does not affect variable names).

    Raises:
      ConfigError: if the config is inconsistent.
    """
    super().__init__(name=name)
    if not isinstance(config, BertConfig):
      raise TypeError("config must be a BertConfig, got %s" % type(config).__name__)
    config.validate()
    compute_dtype = tf.as_dtype(compute_dtype)
    if compute_dtype not in (tf.float32, tf.bfloat16, tf.float16):
      raise ValueError("compute_dtype must be float32, bfloat16 or float16, got %s"
                       % compute_dtype.name)
    self.config = config
    self.compute_dtype = compute_dtype
    h, std = config.hidden_size, config.initializer_range
    self.word_embeddings = self._add_variable(
        "bert/embeddings/word_embeddings", _truncated_normal([config.vocab_size, h], std))
    self.token_type_embeddings = self._add_variable(
        "bert/embeddings/token_type_embeddings",
        _truncated_normal([config.type_vocab_size, h], std))
    self.position_embeddings = self._add_variable(
        "bert/embeddings/position_embeddings",
        _truncated_normal([config.max_position_embeddings, h], std))
    self.embedding_ln_gamma = self._add_variable("bert/embeddings/LayerNorm/gamma",
                                                 tf.ones([h]))
    self.embedding_ln_beta = self._add_variable("bert/embeddings/LayerNorm/beta",
                                                tf.zeros([h]))
    self.layers = [TransformerLayer(config, i, compute_dtype)
                   for i in range(config.num_hidden_layers)]
    for layer in self.layers:
      self._named.update(layer.named_variables())
    self.pooler = _Dense(self, "bert/pooler/dense", h, h, std)

  def freeze_for_inference(self):
    """Precomputes every layer's inference weights (see TransformerLayer's)."""
    for layer in self.layers:
      layer.freeze_for_inference()

  def __call__(self, input_ids, input_mask=None, token_type_ids=None, training=False,
               dropout_seed=None, pooled_only=False):
    """Runs the encoder.

    Args:
      input_ids: int tensor [B, S], S <= max_position_embeddings.
      input_mask: optional int/float tensor [B, S], 1 for real tokens, 0 for padding.
        Defaults to all ones.
      token_type_ids: optional int tensor [B, S]. Defaults to zeros.
      training: python bool; enables dropout.
      dropout_seed: optional int [2] tensor: dropout masks become a pure function of
        it (stateless), which makes resumed training reproducible.
      pooled_only: python bool, for heads that read only pooled_output: the last
        layer then computes the first ([CLS]) position alone, which attends to
        every position as before, so pooled_output is unchanged; the other
        positions of the last layer would feed nothing. That layer then costs a
        quarter of the others (its key and value projections remain), in
        training and inference; sequence_output and the last entry of
        all_encoder_layers are [B, 1, H].

    Returns:
      BertOutput (float32 tensors).
    """
    input_ids = tf.convert_to_tensor(input_ids)
    shape = tf.shape(input_ids)
    batch_size, seq_length = shape[0], shape[1]
    if input_mask is None:
      input_mask = tf.ones_like(input_ids)
    if token_type_ids is None:
      token_type_ids = tf.zeros_like(input_ids)
    cfg = self.config
    dt = self.compute_dtype

    # Embedding tables are gathered in float32 (cheap) and summed before LayerNorm.
    # Gathered from the read tensor, not the variable: a gather on the variable
    # (ResourceGather) switches it to copy-on-read, after which every read and
    # every dense update of the table copies it whole; with the optimizer's dense
    # update that made a MiniLM-sized embedding step 60 ms instead of 34-38
    # (bench/RESULTS.md, session 4). The gradient is the same IndexedSlices.
    emb = tf.gather(tf.convert_to_tensor(self.word_embeddings), input_ids)  # [B, S, H]
    emb += tf.gather(tf.convert_to_tensor(self.token_type_embeddings), token_type_ids)
    emb += tf.expand_dims(self.position_embeddings[:seq_length], 0)  # [1, S, H]
    fused_layer_norm = fused_layer_norm_condition(emb, training)  # [B*S, H] values
    emb = layer_norm(emb, self.embedding_ln_gamma, self.embedding_ln_beta,
                     fused_layer_norm, training)
    emb = dropout(emb, cfg.hidden_dropout_prob, training, dropout_seed, 0)  # [B, S, H]

    mask = tf.cast(tf.reshape(input_mask, [batch_size, 1, 1, seq_length]), tf.float32)
    mask_adder = (1.0 - mask) * MASK_ADDER  # [B, 1, 1, S]

    x = tf.reshape(emb, [-1, cfg.hidden_size])  # [B*S, H]
    all_layers = []
    for index, layer in enumerate(self.layers):
      layer_seed = (None if dropout_seed is None else
                    tf.random.experimental.stateless_fold_in(dropout_seed, index + 1))
      last = index == len(self.layers) - 1
      x = layer(x, mask_adder, batch_size, seq_length, training=training,
                dropout_seed=layer_seed, first_token_only=pooled_only and last,
                fused_layer_norm=fused_layer_norm)
      all_layers.append(tf.reshape(x, [batch_size, -1, cfg.hidden_size]))
    sequence_output = all_layers[-1]  # [B, S, H] ([B, 1, H] with pooled_only)
    first_token = sequence_output[:, 0, :]  # [B, H]
    pooled = tf.tanh(tf.cast(self.pooler(first_token, dt, training),
                             tf.float32))  # [B, H]
    return BertOutput(sequence_output=sequence_output, pooled_output=pooled,
                      all_encoder_layers=all_layers, embedding_output=emb)
