"""Tests for modeling.kernels: the one-pass CPU update of AdamWeightDecay gives the
values of the TensorFlow ops it replaces, to the bit; the training LayerNorm gives
them to float32 rounding; both reject bad input."""

import numpy as np
import pytest
import tensorflow as tf

from modeling import BertConfig, BertModel
from modeling import encoder as encoder_lib
from modeling import kernels
from modeling.optimization import (AdamWeightDecay, DynamicLossScale,
                                   LinearWarmupLinearDecay)


def _kernel():
  lib = kernels.load()
  assert lib is not None, (
      "the CPU kernels are not built for these sources and TensorFlow (%s missing): run "
      "`python -m modeling.kernels` (scripts/setup_env.sh does)" % kernels.library_path())
  return lib


def test_kernels_are_built_for_these_sources():
  lib = _kernel()
  for op in ("bert_adam_weight_decay", "bert_sparse_adam_weight_decay",
             "bert_group_adam_weight_decay", "bert_layer_norm", "bert_layer_norm_grad",
             "bert_bias_grad"):
    assert hasattr(lib, op)


def test_library_name_follows_the_sources(tmp_path, monkeypatch):
  # A library built from other sources is never loaded: its name differs.
  monkeypatch.setenv("BERT_TF2_BUILD_ON_FIRST_USE", "0")
  edited = tmp_path / "fused_adam.cc"
  edited.write_bytes(open(kernels._SOURCES[0], "rb").read() + b"\n// edited\n")
  built = kernels.library_path()
  monkeypatch.setattr(kernels, "_SOURCES", [str(edited)] + kernels._SOURCES[1:])
  assert kernels.library_path() != built
  assert kernels.load() is None


def _train(use_cpu_kernel, loss_scale=None, steps=5):
  """Word embeddings read by a gather (repeated rows), a decayed kernel and a bias
  excluded from decay, trained for `steps` steps; returns every variable and slot."""
  rng = np.random.RandomState(3)
  table = tf.Variable(rng.randn(50, 8).astype(np.float32))
  kernel = tf.Variable(rng.randn(8, 5).astype(np.float32))
  bias = tf.Variable(rng.randn(5).astype(np.float32))
  ls = DynamicLossScale(initial_scale=4.0) if loss_scale else None
  opt = AdamWeightDecay(LinearWarmupLinearDecay(0.05, 10, 2), loss_scale=ls,
                        use_cpu_kernel=use_cpu_kernel)
  opt.build({"bert/embeddings/word_embeddings": table, "dense/kernel": kernel,
             "dense/bias": bias})
  ids = tf.constant([[1, 7, 7, 30], [7, 1, 2, 49]])

  @tf.function
  def step(scale):
    with tf.GradientTape() as tape:
      x = tf.gather(tf.convert_to_tensor(table), ids)  # [2, 4, 8]
      y = tf.tanh(tf.einsum("bsh,hk->bsk", x, kernel) + bias)
      loss = scale * tf.reduce_sum(y * y)
      if ls is not None:
        loss = ls.scale_loss(loss)
    grads = tape.gradient(loss, [table, kernel, bias])
    if ls is not None:
      grads = ls.unscale(grads)
    opt.apply_gradients(grads)

  for i in range(steps):
    # Clipping on odd steps; with a loss scale, step 2's gradients are not finite.
    scale = np.inf if (loss_scale and i == 2) else (20.0 if i % 2 else 0.01)
    step(tf.constant(scale, tf.float32))
  assert int(opt.global_step.numpy()) == (steps - 1 if loss_scale else steps)
  out = [table.numpy(), kernel.numpy(), bias.numpy()]
  out += [s.numpy() for s in opt.slot_variables().values()]
  return out


@pytest.mark.parametrize("loss_scale", [False, True])
def test_kernel_update_equals_the_tensorflow_ops_to_the_bit(loss_scale, monkeypatch):
  _kernel()
  with_kernel, with_ops = _train(True, loss_scale), _train(False, loss_scale)
  for got, want in zip(with_kernel, with_ops):
    np.testing.assert_array_equal(got, want)
  # One kernel call per variable, as with several replicas, gives the same too.
  monkeypatch.setattr(AdamWeightDecay, "_grouped_kernel_update",
                      lambda *args, **kwargs: None)
  for got, want in zip(_train(True, loss_scale), with_ops):
    np.testing.assert_array_equal(got, want)
  # Rows no gradient reached moved too (moments and weight decay), as in the original.
  untouched = np.random.RandomState(3).randn(50, 8).astype(np.float32)[20]
  assert not np.array_equal(with_kernel[0][20], untouched)


def _graph_ops(sparse):
  table = tf.Variable(tf.ones([6, 2]))
  kernel = tf.Variable(tf.ones([2, 2]))
  opt = AdamWeightDecay(0.1)
  opt.build({"bert/embeddings/word_embeddings": table, "dense/kernel": kernel})

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(tf.gather(tf.convert_to_tensor(table), [1, 1, 3]) @ kernel)
    opt.apply_gradients(tape.gradient(loss, [table, kernel]), sparse=sparse)

  graph = step.get_concrete_function().graph
  return {op.type for op in graph.get_operations()}


def test_the_kernel_runs_on_cpu_and_not_where_xla_or_tpus_need_static_shapes():
  _kernel()
  kernel_ops = {"BertSparseAdamWeightDecay", "BertGroupAdamWeightDecay",
                "BertAdamWeightDecay"}
  ops = _graph_ops(sparse=True)
  # One call for the dense gradients, one for the embedding's distinct rows.
  assert {"BertSparseAdamWeightDecay", "BertGroupAdamWeightDecay"} <= ops
  assert "ResourceApplyAdam" not in ops and "UnsortedSegmentSum" in ops  # summed rows
  ops = _graph_ops(sparse=False)  # XLA and TPU steps pass sparse=False
  assert "ResourceApplyAdam" in ops
  assert not kernel_ops & ops


def _scalars():
  return dict(lr=tf.constant(0.1), decay=tf.constant(0.999), clip_scale=tf.constant(1.0),
              beta1=tf.constant(0.9), beta2=tf.constant(0.999),
              epsilon=tf.constant(1e-6))


def test_sparse_kernel_rejects_repeated_and_out_of_range_rows():
  lib = _kernel()
  var, m, v = (tf.Variable(tf.zeros([4, 3])) for _ in range(3))
  slots = dict(var=var.handle, m=m.handle, v=v.handle)
  with pytest.raises(tf.errors.InvalidArgumentError, match="row 1 appears twice"):
    lib.bert_sparse_adam_weight_decay(indices=[1, 1], values=tf.ones([2, 3]),
                                      **slots, **_scalars())
  with pytest.raises(tf.errors.InvalidArgumentError, match=r"index 4 .* outside \[0, 4\)"):
    lib.bert_sparse_adam_weight_decay(indices=[0, 4], values=tf.ones([2, 3]),
                                      **slots, **_scalars())
  with pytest.raises(tf.errors.InvalidArgumentError, match="values of shape"):
    lib.bert_sparse_adam_weight_decay(indices=[0], values=tf.ones([1, 2]),
                                      **slots, **_scalars())
  assert not var.numpy().any()  # nothing was written


def test_group_kernel_rejects_mismatched_shapes():
  lib = _kernel()
  a = [tf.Variable(tf.zeros([4, 3])) for _ in range(3)]
  b = [tf.Variable(tf.zeros([2])) for _ in range(3)]
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=r"variable 1: gradient of shape \[3\]"):
    lib.bert_group_adam_weight_decay(
        var=[a[0].handle, b[0].handle], m=[a[1].handle, b[1].handle],
        v=[a[2].handle, b[2].handle], grad=[tf.ones([4, 3]), tf.ones([3])],
        use_decay=[True, False], **_scalars())
  assert not a[0].numpy().any()  # nothing was written


def test_dense_kernel_rejects_mismatched_shapes():
  lib = _kernel()
  var, m = tf.Variable(tf.zeros([4, 3])), tf.Variable(tf.zeros([4, 3]))
  v = tf.Variable(tf.zeros([3, 4]))
  with pytest.raises(tf.errors.InvalidArgumentError, match="slot 2 has shape"):
    lib.bert_adam_weight_decay(var=var.handle, m=m.handle, v=v.handle,
                               grad=tf.ones([4, 3]), **_scalars())
  v = tf.Variable(tf.zeros([4, 3]))
  with pytest.raises(tf.errors.InvalidArgumentError, match="gradient of shape"):
    lib.bert_adam_weight_decay(var=var.handle, m=m.handle, v=v.handle,
                               grad=tf.ones([3]), **_scalars())
  with pytest.raises(tf.errors.InvalidArgumentError, match="lr must be a scalar"):
    lib.bert_adam_weight_decay(var=var.handle, m=m.handle, v=v.handle,
                               grad=tf.ones([4, 3]), **dict(_scalars(), lr=[0.1]))


def test_kernel_leaves_a_buffer_a_reader_holds_unchanged():
  # A value read before the update keeps its values (the kernel copies a shared buffer).
  lib = _kernel()
  var, m, v = (tf.Variable(tf.fill([5], 2.0)) for _ in range(3))
  before = var.read_value()
  lib.bert_adam_weight_decay(var=var.handle, m=m.handle, v=v.handle,
                             grad=tf.ones([5]), **_scalars())
  np.testing.assert_array_equal(before.numpy(), np.full([5], 2.0, np.float32))
  assert not np.array_equal(var.numpy(), before.numpy())


def _tiny_trainer(tmp_path, use_xla):
  from modeling import BertConfig, heads  # pylint: disable=g-import-not-at-top
  from training import loop  # pylint: disable=g-import-not-at-top
  tf.random.set_seed(5)
  config = BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2,
                      num_attention_heads=4, intermediate_size=64,
                      max_position_embeddings=32, type_vocab_size=2,
                      hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
  strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
  with strategy.scope():
    model = heads.BertClassifier(config, 3)

    def loss_fn(features, training, seed):
      logits = model(features["input_ids"], features["input_mask"],
                     features["segment_ids"], training=training, dropout_seed=seed)
      return heads.classification_loss(logits, features["label_ids"], 3)

    trainer = loop.Trainer(strategy, model, loss_fn, loop.TrainConfig(
        train_batch_size=4, num_train_steps=10, learning_rate=1e-2,
        num_warmup_steps=0, use_xla=use_xla), output_dir=str(tmp_path / str(use_xla)),
        is_chief=False)
  return strategy, model, trainer


def test_xla_training_step_keeps_to_ops_xla_compiles(tmp_path):
  # --use_xla compiles the whole step: the update must not use the project's
  # kernel there (XLA cannot compile it), and the step must train as the kernel
  # step does.
  rng = np.random.RandomState(8)
  features = {"input_ids": rng.randint(1, 60, size=(4, 7)).astype(np.int32),
              "input_mask": np.ones((4, 7), np.int32),
              "segment_ids": np.zeros((4, 7), np.int32),
              "label_ids": np.array([0, 1, 2, 1], np.int32)}
  results = []
  for use_xla in (False, True):
    strategy, model, trainer = _tiny_trainer(tmp_path, use_xla)
    dataset = tf.data.Dataset.from_tensors(features).repeat()
    iterator = iter(strategy.experimental_distribute_dataset(dataset))
    losses = [trainer.train_steps(iterator, 1) for _ in range(3)]
    results.append((losses, [v.numpy() for v in model.named_variables().values()]))
  (losses, weights), (xla_losses, xla_weights) = results
  np.testing.assert_allclose(xla_losses, losses, rtol=1e-4)
  for got, want in zip(xla_weights, weights):
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-5)


def test_eager_update_equals_the_tensorflow_ops_to_the_bit():
  # Eager (no tf.function) the grouped kernel call must run once, as in a graph.
  rng = np.random.RandomState(4)
  init = [rng.randn(3, 2).astype(np.float32), rng.randn(2).astype(np.float32)]
  grads = [tf.constant(rng.randn(*x.shape).astype(np.float32) * 5) for x in init]
  results = []
  for use_cpu_kernel in (True, False):
    variables = [tf.Variable(x) for x in init]
    opt = AdamWeightDecay(0.1, use_cpu_kernel=use_cpu_kernel)
    opt.build({"dense/kernel": variables[0], "dense/bias": variables[1]})
    opt.apply_gradients(grads)
    opt.apply_gradients(grads)
    results.append([v.numpy() for v in variables])
  for got, want in zip(*results):
    np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------------ LayerNorm


def _layer_norm_and_grads(fn, x, gamma, beta, dy):
  with tf.GradientTape() as tape:
    tape.watch([x, gamma, beta])
    y = fn(x, gamma, beta)
  return [y] + tape.gradient(y, [x, gamma, beta], output_gradients=dy)


@pytest.mark.parametrize("shape", [(3, 5, 16), (70, 33), (1, 384), (2, 1), (0, 8)])
def test_layer_norm_kernel_matches_the_tensorflow_ops(shape):
  lib = _kernel()
  rng = np.random.default_rng(sum(shape))
  x = tf.constant(rng.normal(size=shape) * 3 + 1, tf.float32)
  gamma = tf.constant(rng.normal(size=shape[-1]), tf.float32)
  beta = tf.constant(rng.normal(size=shape[-1]), tf.float32)
  dy = tf.constant(rng.normal(size=shape), tf.float32)
  expected = _layer_norm_and_grads(encoder_lib._layer_norm_float32, x, gamma, beta, dy)

  def kernel(x, gamma, beta):
    return encoder_lib._layer_norm_kernel(lib, x, gamma, beta)

  got = _layer_norm_and_grads(kernel, x, gamma, beta, dy)
  for name, ours, ref in zip(("y", "dx", "dgamma", "dbeta"), got, expected):
    assert ours.shape == ref.shape, name
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=2e-5, err_msg=name)
  # Traced the same: the row blocks are summed in a fixed order.
  traced = tf.function(lambda *a: _layer_norm_and_grads(kernel, *a))(x, gamma, beta, dy)
  for ours, again in zip(got, traced):
    np.testing.assert_array_equal(ours, again)


def test_layer_norm_kernel_rejects_mismatched_shapes():
  lib = _kernel()
  x = tf.ones([4, 8])
  with pytest.raises(tf.errors.InvalidArgumentError, match=r"gamma and beta must be \[8\]"):
    lib.bert_layer_norm(x, tf.ones([7]), tf.ones([7]), epsilon=1e-12)
  with pytest.raises(tf.errors.InvalidArgumentError, match="beta has shape"):
    lib.bert_layer_norm(x, tf.ones([8]), tf.ones([9]), epsilon=1e-12)
  y, mean, inv_std = lib.bert_layer_norm(x, tf.ones([8]), tf.zeros([8]), epsilon=1e-12)
  with pytest.raises(tf.errors.InvalidArgumentError, match="dy has shape"):
    lib.bert_layer_norm_grad(tf.ones([4, 9]), x, mean, inv_std, tf.ones([8]))
  with pytest.raises(tf.errors.InvalidArgumentError, match="mean and inv_std need 4"):
    lib.bert_layer_norm_grad(y, x, mean[:3], inv_std, tf.ones([8]))


def _model_graph_ops(training, jit_compile=False):
  tf.random.set_seed(3)
  model = BertModel(BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1,
                               num_attention_heads=2, intermediate_size=32,
                               max_position_embeddings=16))
  ids = tf.constant([[2, 5, 7, 0]])
  mask = tf.constant([[1, 1, 1, 0]])

  def loss():
    with tf.GradientTape() as tape:
      out = model(ids, mask, tf.zeros_like(ids), training=training)
      value = tf.reduce_sum(out.sequence_output)
    return value, tape.gradient(value, model.trainable_variables)

  fn = tf.function(loss, autograph=False, jit_compile=jit_compile)
  fn()  # runs: no kernel inside XLA
  graph = fn.get_concrete_function().graph
  ops = {op.type for op in graph.get_operations()}
  for function in graph.as_graph_def().library.function:
    ops |= {node.op for node in function.node_def}
  return ops


_MODEL_KERNEL_OPS = {"BertLayerNorm", "BertLayerNormGrad", "BertBiasGrad"}


def test_model_kernels_only_in_cpu_training_graphs_outside_xla():
  _kernel()
  assert _MODEL_KERNEL_OPS <= _model_graph_ops(training=True)
  # Inference graphs (and so exported models) and XLA-compiled steps keep TF's ops.
  assert not _MODEL_KERNEL_OPS & _model_graph_ops(training=False)
  assert not _MODEL_KERNEL_OPS & _model_graph_ops(training=True, jit_compile=True)


@pytest.mark.parametrize("dtype", [tf.float32, tf.bfloat16, tf.float16])
def test_bias_grad_kernel_sums_in_float32(dtype):
  lib = _kernel()
  rng = np.random.default_rng(6)
  for shape in [(768, 40), (3, 70, 17), (1, 5), (0, 4)]:
    dy = tf.cast(tf.constant(rng.normal(size=shape), tf.float32), dtype)
    exact = np.asarray(dy, np.float64).reshape(-1, shape[-1]).sum(axis=0)
    got = lib.bert_bias_grad(dy)
    assert got.dtype == tf.float32 and got.shape == (shape[-1],)
    # float32 sums of the (rounded) inputs: off by float32 rounding only.
    np.testing.assert_allclose(got, exact, rtol=1e-5, atol=1e-4)
  if dtype == tf.bfloat16:
    # TensorFlow's BiasAddGrad sums bfloat16 in bfloat16, far off over many rows.
    dy = tf.cast(tf.constant(rng.normal(size=(768, 64)), tf.float32), dtype)
    exact = np.asarray(dy, np.float64).sum(axis=0)
    tf_error = np.abs(np.asarray(tf.raw_ops.BiasAddGrad(out_backprop=dy), np.float64)
                      - exact).max()
    assert np.abs(np.asarray(lib.bert_bias_grad(dy)) - exact).max() < 1e-3 < tf_error


def test_bias_add_for_training_gradients():
  _kernel()
  rng = np.random.default_rng(8)
  product = tf.constant(rng.normal(size=(6, 5, 12)), tf.float32)
  bias = tf.constant(rng.normal(size=12), tf.float32)
  dy = tf.constant(rng.normal(size=(6, 5, 12)), tf.float32)
  with tf.GradientTape() as tape:
    tape.watch([product, bias])
    out = encoder_lib.bias_add_for_training(product, bias)
  d_product, d_bias = tape.gradient(out, [product, bias], output_gradients=dy)
  np.testing.assert_allclose(out, product + bias, rtol=1e-6)
  np.testing.assert_array_equal(d_product, dy)
  np.testing.assert_allclose(d_bias, np.sum(dy, axis=(0, 1)), rtol=1e-5, atol=1e-5)
  # A bfloat16 product: the float32 bias gets a float32 gradient.
  with tf.GradientTape() as tape:
    tape.watch(bias)
    out = encoder_lib.bias_add_for_training(tf.cast(product, tf.bfloat16), bias)
  d_bias = tape.gradient(out, bias, output_gradients=tf.cast(dy, tf.bfloat16))
  assert out.dtype == tf.bfloat16 and d_bias.dtype == tf.float32
  exact = np.asarray(tf.cast(tf.cast(dy, tf.bfloat16), tf.float64)).sum(axis=(0, 1))
  np.testing.assert_allclose(d_bias, exact, rtol=1e-5, atol=1e-4)
