"""Tests for modeling.config, modeling.encoder, modeling.heads and the Model Garden
parity reference."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from modeling import (BertClassifier, BertConfig, BertModel, BertSquad, ConfigError,
                      classification_loss, compute_class_weights, squad_loss)
from modeling import encoder as encoder_lib
from modeling.parity import build_model_garden_encoder



def tiny_config(**overrides):
  kwargs = dict(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                num_attention_heads=4, intermediate_size=64,
                max_position_embeddings=64, type_vocab_size=2)
  kwargs.update(overrides)
  return BertConfig(**kwargs)


def tiny_inputs(batch=3, seq=10, seed=0):
  rng = np.random.RandomState(seed)
  ids = rng.randint(1, 100, size=(batch, seq)).astype(np.int32)
  lengths = [seq, seq - 3, 4][:batch]
  mask = np.zeros((batch, seq), np.int32)
  for b, n in enumerate(lengths):
    mask[b, :n] = 1
  types = np.zeros((batch, seq), np.int32)
  types[:, seq // 2:] = 1
  return ids * mask, mask, types * mask


# ---------------------------------------------------------------- config


def test_config_from_json_file_keeps_extra_keys(original_checkpoint_dir, tmp_path):
  path = original_checkpoint_dir / "bert_config.json"
  assert path.exists(), "format fixture missing: %s" % path
  config = BertConfig.from_json_file(path)
  assert (config.vocab_size, config.hidden_size, config.num_hidden_layers) == (15, 4, 2)
  assert config.extra["directionality"] == "bidi"
  config.validate(max_seq_length=16)
  out = tmp_path / "c.json"
  config.to_json_file(out)
  assert json.loads(out.read_text()) == json.loads(path.read_text())


def test_config_missing_field_names_file(tmp_path):
  path = tmp_path / "bert_config.json"
  path.write_text(json.dumps({"hidden_size": 8}))
  with pytest.raises(ConfigError, match=r"bert_config\.json.*vocab_size"):
    BertConfig.from_json_file(path)


def test_config_bad_json_and_missing_file(tmp_path):
  path = tmp_path / "bad.json"
  path.write_text('{"vocab_size": 10,\n "hidden_size": }')
  with pytest.raises(ConfigError, match=r"bad\.json: line 2"):
    BertConfig.from_json_file(path)
  with pytest.raises(ConfigError, match="nope.json: BERT config file not found"):
    BertConfig.from_json_file(tmp_path / "nope.json")


def test_config_names_the_erf_gelu_so_bert_serving_and_hf_read_it(tmp_path):
  # On disk the erf form is "gelu" + "gelu_approximate": false (bert-serving's and
  # Hugging Face's "gelu" is erf); "gelu" alone keeps the original's tanh meaning.
  exact = BertConfig(vocab_size=10, hidden_act="gelu_exact")
  exact.to_json_file(tmp_path / "exact.json")
  on_disk = json.loads((tmp_path / "exact.json").read_text())
  assert on_disk["hidden_act"] == "gelu" and on_disk["gelu_approximate"] is False
  assert BertConfig.from_json_file(tmp_path / "exact.json").hidden_act == "gelu_exact"
  assert "gelu_approximate" not in BertConfig(vocab_size=10).to_dict()
  for written, meant in ((dict(hidden_act="gelu"), "gelu"),
                         (dict(hidden_act="gelu_exact"), "gelu_exact"),
                         (dict(hidden_act="gelu", gelu_approximate=True), "gelu"),
                         (dict(hidden_act="gelu_new", gelu_approximate=True), "gelu")):
    config = BertConfig.from_dict(dict(vocab_size=10, **written))
    assert config.hidden_act == meant, written
    assert "gelu_approximate" not in config.extra
  for written, message in (
      (dict(hidden_act="gelu_exact", gelu_approximate=True), "contradicts"),
      (dict(hidden_act="gelu_new", gelu_approximate=False), "contradicts"),
      (dict(hidden_act="relu", gelu_approximate=False), "not a GELU"),
      (dict(hidden_act="gelu", gelu_approximate="no"), "must be true or false")):
    with pytest.raises(ConfigError, match=f"x.json: .*{message}"):
      BertConfig.from_dict(dict(vocab_size=10, **written), source="x.json")


def test_config_validate_errors():
  with pytest.raises(ConfigError, match="not a multiple of the number of attention"):
    tiny_config(num_attention_heads=5).validate()
  with pytest.raises(ConfigError, match="Unknown hidden_act 'swish'"):
    tiny_config(hidden_act="swish").validate()
  with pytest.raises(ConfigError, match="sequence length 128.*up to sequence length 64"):
    tiny_config().validate(max_seq_length=128)
  tiny_config(hidden_act="gelu_new").validate(max_seq_length=64)
  with pytest.raises(ConfigError):
    BertModel(tiny_config(num_attention_heads=3))


def test_config_dict_round_trip():
  config = BertConfig.from_dict(dict(tiny_config().to_dict(), pooler_type="x"))
  assert config.to_dict()["pooler_type"] == "x"
  assert json.loads(config.to_json_string())["hidden_size"] == 32


# ---------------------------------------------------------------- activations


@pytest.mark.parametrize("name", ["gelu", "gelu_new", "gelu_exact", "relu", "tanh"])
def test_activations_match_formulas(name):
  x = np.linspace(-5, 5, 41).astype(np.float32)
  erf = np.vectorize(math.erf)
  expected = {
      "gelu": 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))),
      "gelu_exact": 0.5 * x * (1 + erf(x / np.sqrt(2))),
      "relu": np.maximum(x, 0),
      "tanh": np.tanh(x),
  }
  expected["gelu_new"] = expected["gelu"]
  got = encoder_lib.get_activation(name)(tf.constant(x)).numpy()
  np.testing.assert_allclose(got, expected[name], atol=1e-6)
  with pytest.raises(ValueError, match="Unknown activation"):
    encoder_lib.get_activation("swish")


# ---------------------------------------------------------------- encoder


def test_variable_names_match_original_checkpoint(original_checkpoint_dir):
  config = BertConfig.from_json_file(original_checkpoint_dir / "bert_config.json")
  model = BertModel(config)
  reader = tf.train.load_checkpoint(
      str(original_checkpoint_dir / "bert_model.ckpt"))
  ckpt = {k: v for k, v in reader.get_variable_to_shape_map().items()
          if k.startswith("bert/") and "adam" not in k}
  ours = {k: list(v.shape) for k, v in model.named_variables().items()}
  assert ours == ckpt
  assert all(":" not in v.name or v.name == k + ":0"
             for k, v in model.named_variables().items())
  assert len(model.trainable_variables) == len(ours)


def test_initializers():
  tf.random.set_seed(1)
  model = BertModel(tiny_config(initializer_range=0.02))
  v = model.named_variables()
  k = v["bert/encoder/layer_0/intermediate/dense/kernel"].numpy()
  assert abs(k.std() - 0.02 * 0.88) < 0.004 and np.abs(k).max() <= 0.04 + 1e-7
  assert not v["bert/encoder/layer_0/intermediate/dense/bias"].numpy().any()
  assert (v["bert/embeddings/LayerNorm/gamma"].numpy() == 1).all()


def test_output_shapes_and_getters():
  model = BertModel(tiny_config())
  ids, mask, types = tiny_inputs()
  out = model(ids, mask, types)
  assert out.get_sequence_output().shape == (3, 10, 32)
  assert out.get_pooled_output().shape == (3, 32)
  assert len(out.get_all_encoder_layers()) == 2
  assert out.get_embedding_output().shape == (3, 10, 32)
  np.testing.assert_array_equal(out.sequence_output, out.all_encoder_layers[-1])
  # Pooler is tanh(dense(first token)).
  v = model.named_variables()
  first = out.sequence_output[:, 0].numpy()
  pooled = np.tanh(first @ v["bert/pooler/dense/kernel"].numpy() +
                   v["bert/pooler/dense/bias"].numpy())
  np.testing.assert_allclose(out.pooled_output, pooled, atol=1e-6)


def test_attention_mask_hides_padding():
  model = BertModel(tiny_config())
  ids, mask, types = tiny_inputs()
  base = model(ids, mask, types).sequence_output.numpy()
  noisy = ids.copy()
  noisy[mask == 0] = 7  # change only padded tokens
  other = model(noisy, mask, types).sequence_output.numpy()
  real = mask.astype(bool)
  np.testing.assert_allclose(base[real], other[real], atol=1e-6)
  assert np.abs(base[~real] - other[~real]).max() > 1e-4
  # Without the mask the padded tokens do leak into the real positions.
  leaked = model(noisy, None, types).sequence_output.numpy()
  assert np.abs(leaked[real] - base[real]).max() > 1e-4


def test_dropout_training_deterministic_with_seed():
  model = BertModel(tiny_config())
  ids, mask, types = tiny_inputs()
  tf.random.set_seed(3)
  a = model(ids, mask, types, training=True).sequence_output.numpy()
  tf.random.set_seed(3)
  b = model(ids, mask, types, training=True).sequence_output.numpy()
  c = model(ids, mask, types, training=False).sequence_output.numpy()
  np.testing.assert_array_equal(a, b)
  assert np.abs(a - c).max() > 1e-3


@pytest.mark.parametrize("precision,tol", [("float32", 1e-5), ("bfloat16", 0.05)])
def test_inference_copy_matches_and_freezes(precision, tol):
  from modeling import export
  tf.random.set_seed(8)
  model = BertClassifier(tiny_config(), num_labels=3)
  ids, mask, types = tiny_inputs()
  copy = export.inference_copy(model, precision)
  np.testing.assert_allclose(copy(ids, mask, types), model(ids, mask, types),
                             atol=tol, rtol=tol)
  assert copy.named_variables().keys() == model.named_variables().keys()
  assert len(copy.trainable_variables) == len(model.trainable_variables)
  # Frozen: inference reads the fused query/key/value copy made by
  # freeze_for_inference (and in bfloat16 cast copies of the other kernels),
  # training the variables.
  before = copy(ids, mask, types).numpy()
  for name, var in copy.bert.layers[0].named_variables().items():
    if "attention/self" in name or (precision != "float32" and "LayerNorm" not in name):
      var.assign(var * 3.0)
  np.testing.assert_array_equal(copy(ids, mask, types), before)
  assert np.abs(copy(ids, mask, types, training=True).numpy() - before).max() > 1e-3


def test_bfloat16_saved_model_holds_kernels_as_constants_once(tmp_path):
  """16-bit exports carry the frozen kernels as graph constants, each stored once."""
  from tensorflow.core.protobuf import saved_model_pb2
  from modeling import export
  tf.random.set_seed(10)
  config = tiny_config()
  model = BertClassifier(config, num_labels=3)
  for name, var in model.named_variables().items():
    if name.endswith("bias") or name.endswith("beta"):
      var.assign(tf.random.normal(var.shape, stddev=0.1))
  ids, mask, types = tiny_inputs()
  export_dir = tmp_path / "bf16"
  export.export_classifier_saved_model(model, str(export_dir), ["a", "b", "c"],
                                       max_seq_length=16, precision="bfloat16")
  served = tf.saved_model.load(str(export_dir)).signatures["serving_default"](
      input_ids=ids, input_mask=mask, segment_ids=types)["logits"]
  np.testing.assert_allclose(served, model(ids, mask, types), atol=0.05, rtol=0.05)
  proto = saved_model_pb2.SavedModel()
  proto.ParseFromString((export_dir / "saved_model.pb").read_bytes())
  h, i = config.hidden_size, config.intermediate_size
  shapes = []
  for function in proto.meta_graphs[0].graph_def.library.function:
    for node in function.node_def:
      if node.op == "Const" and node.attr["dtype"].type == tf.bfloat16.as_datatype_enum:
        shapes.append(tuple(d.size for d in node.attr["value"].tensor.tensor_shape.dim))
  layers = config.num_hidden_layers
  assert shapes.count((h, 3 * h)) == layers  # the fused query/key/value kernels
  assert shapes.count((h, i)) == layers and shapes.count((i, h)) == layers


def test_pooled_only_gives_the_same_pooled_output_and_gradients():
  tf.random.set_seed(9)
  model = BertModel(tiny_config(hidden_dropout_prob=0.0,
                                attention_probs_dropout_prob=0.0))
  ids, mask, types = tiny_inputs()
  results = []
  for pooled_only in (False, True):
    with tf.GradientTape() as tape:
      out = model(ids, mask, types, training=True, pooled_only=pooled_only)
      loss = tf.reduce_sum(out.pooled_output * tf.range(32, dtype=tf.float32))
    results.append((out, tape.gradient(loss, model.trainable_variables)))
  (full, full_grads), (lean, lean_grads) = results
  np.testing.assert_allclose(lean.pooled_output, full.pooled_output, atol=1e-6)
  assert lean.sequence_output.shape == (3, 1, 32)
  np.testing.assert_allclose(lean.sequence_output[:, 0], full.sequence_output[:, 0],
                             atol=1e-5)
  for a, b in zip(full_grads, lean_grads):
    np.testing.assert_allclose(tf.convert_to_tensor(b), tf.convert_to_tensor(a),
                               rtol=1e-5, atol=1e-5)


def test_gelu_formulas_are_the_originals():
  x = np.linspace(-6, 6, 1001).astype(np.float64)
  tanh_form = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
  erf_form = 0.5 * x * (1 + np.vectorize(math.erf)(x / np.sqrt(2)))
  x32 = tf.constant(x, tf.float32)
  np.testing.assert_allclose(encoder_lib.gelu(x32), tanh_form, atol=2e-6)
  np.testing.assert_allclose(encoder_lib.gelu_exact(x32), erf_form, atol=2e-6)
  assert np.abs(tanh_form - erf_form).max() > 1e-4  # the two are told apart


@pytest.mark.parametrize("name,approximate", [("gelu", True), ("gelu_exact", False)])
def test_training_gelu_matches_tf_nn_gelu_and_its_gradient(name, approximate):
  training_fn = encoder_lib._TRAINING_ACTIVATIONS[encoder_lib.get_activation(name)]
  x = tf.random.stateless_normal([64, 48], seed=[3, 4], stddev=3.0)
  weights = tf.random.stateless_normal([64, 48], seed=[5, 6])

  def value_and_grad(fn, inputs):
    with tf.GradientTape() as tape:
      tape.watch(inputs)
      y = fn(inputs)
      loss = tf.reduce_sum(tf.cast(y, tf.float32) * weights[:, :tf.shape(inputs)[1]])
    return tf.cast(y, tf.float32), tf.cast(tape.gradient(loss, inputs), tf.float32)

  ref_y, ref_g = value_and_grad(lambda t: tf.nn.gelu(t, approximate=approximate), x)
  y, g = value_and_grad(training_fn, x)
  np.testing.assert_allclose(y, ref_y, atol=2e-6)
  # float32 tanh and erf differ by a few ulps between TensorFlow's kernels and
  # XLA's; both gradients are within 4e-6 of the float64 formula.
  np.testing.assert_allclose(g, ref_g, atol=1e-5)
  xd = x.numpy().astype(np.float64)
  if approximate:
    t = np.tanh(np.sqrt(2 / np.pi) * (xd + 0.044715 * xd ** 3))
    exact_g = 0.5 * (1 + t) + 0.5 * xd * (1 - t ** 2) * np.sqrt(2 / np.pi) * (
        1 + 3 * 0.044715 * xd ** 2)
  else:
    cdf = 0.5 * (1 + np.vectorize(math.erf)(xd / np.sqrt(2)))
    exact_g = cdf + xd * np.exp(-0.5 * xd ** 2) / np.sqrt(2 * np.pi)
  np.testing.assert_allclose(g, exact_g * weights.numpy(), atol=5e-6)
  # bfloat16 in and out, float32 inside: within bfloat16 rounding of the reference.
  y16, g16 = value_and_grad(training_fn, tf.cast(x, tf.bfloat16))
  assert y16.dtype == tf.float32  # (cast back by value_and_grad)
  np.testing.assert_allclose(y16, ref_y, atol=0.05, rtol=0.01)
  np.testing.assert_allclose(g16, ref_g, atol=0.05, rtol=0.01)
  # Inside a graph traced for any shape (the training loop's), where the fused
  # passes are compiled per concrete shape: two shapes, the same values.
  traced = tf.function(lambda t: value_and_grad(training_fn, t),
                       input_signature=[tf.TensorSpec([None, None], tf.float32)])
  for cols in (48, 17):
    y_g, g_g = traced(x[:, :cols])
    np.testing.assert_allclose(y_g, ref_y[:, :cols], atol=2e-6)
    np.testing.assert_allclose(g_g, ref_g[:, :cols], atol=1e-5)


@pytest.mark.parametrize("name,approximate", [("gelu", True), ("gelu_exact", False)])
@pytest.mark.parametrize("dtype,tol", [(tf.float32, 1e-5), (tf.bfloat16, 0.05)])
def test_training_gelu_adds_the_bias_in_its_pass(name, approximate, dtype, tol):
  training_fn = encoder_lib._TRAINING_ACTIVATIONS[encoder_lib.get_activation(name)]
  x = tf.random.stateless_normal([40, 24], seed=[7, 8], stddev=2.0)
  bias = tf.random.stateless_normal([24], seed=[9, 10])
  weights = tf.random.stateless_normal([40, 24], seed=[11, 12])

  def value_and_grads(fn, a, b):
    with tf.GradientTape() as tape:
      tape.watch([a, b])
      loss = tf.reduce_sum(tf.cast(fn(a, b), tf.float32) * weights)
    return [tf.cast(t, tf.float32) for t in [loss] + tape.gradient(loss, [a, b])]

  want = value_and_grads(
      lambda a, b: tf.nn.gelu(tf.nn.bias_add(a, b), approximate=approximate), x, bias)
  got = value_and_grads(training_fn, tf.cast(x, dtype), tf.cast(bias, dtype))
  np.testing.assert_allclose(got[0], want[0], rtol=tol)
  np.testing.assert_allclose(got[1], want[1], atol=tol, rtol=tol)
  # The bias gradient sums 40 rows: bfloat16 rounding of each row adds up.
  np.testing.assert_allclose(got[2], want[2], atol=tol * 10, rtol=tol)


def test_training_step_gives_the_same_gradients_inside_an_xla_function():
  """--use_xla compiles the whole step; the fused GELU passes nest inside it."""
  tf.random.set_seed(12)
  model = BertModel(tiny_config(hidden_dropout_prob=0.0,
                                attention_probs_dropout_prob=0.0))
  ids, mask, types = tiny_inputs()

  def grads():
    with tf.GradientTape() as tape:
      out = model(ids, mask, types, training=True)
      loss = tf.reduce_sum(out.sequence_output * tf.range(32, dtype=tf.float32))
      loss += tf.reduce_sum(out.pooled_output)
    return [tf.convert_to_tensor(g) for g in tape.gradient(loss, model.trainable_variables)]

  plain = tf.function(grads, autograph=False)()
  xla = tf.function(grads, jit_compile=True, autograph=False)()
  for a, b in zip(plain, xla):
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)


def test_layer_norm_gradient_matches_autodiff():
  rng = np.random.RandomState(4)
  x = tf.constant(rng.randn(3, 5, 16) * 3 + 1, tf.float32)
  gamma = tf.Variable(rng.randn(16).astype(np.float32))
  beta = tf.Variable(rng.randn(16).astype(np.float32))
  dy = tf.constant(rng.randn(3, 5, 16), tf.float32)

  def reference(x):  # the original's formula, differentiated by TensorFlow
    mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
    return (x - mean) * tf.math.rsqrt(variance + 1e-12) * gamma + beta

  results = []
  for fn in (encoder_lib.layer_norm, lambda t: reference(t)):
    with tf.GradientTape() as tape:
      tape.watch(x)
      out = fn(x) if fn is not encoder_lib.layer_norm else fn(x, gamma, beta)
      loss = tf.reduce_sum(out * dy)
    results.append([out] + tape.gradient(loss, [x, gamma, beta]))
  for ours, ref in zip(*results):
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5)


def _layer_norm_reference(x, gamma, beta):
  x = x.astype(np.float64)
  mean = x.mean(-1, keepdims=True)
  variance = ((x - mean) ** 2).mean(-1, keepdims=True)
  return (x - mean) / np.sqrt(variance + 1e-12) * gamma + beta


def _executed_op_types(fetch, feed, init=None):
  """The op types a v1 session ran for `fetch`, after TensorFlow's graph rewrites."""
  with tf.compat.v1.Session(graph=fetch.graph) as sess:
    if init is not None:
      sess.run(init)
    metadata = tf.compat.v1.RunMetadata()
    sess.run(fetch, feed, options=tf.compat.v1.RunOptions(trace_level=3),
             run_metadata=metadata)
  return {node.timeline_label.split(" = ")[1].split("(")[0]
          for dev in metadata.step_stats.dev_stats for node in dev.node_stats
          if " = " in node.timeline_label}


def test_inference_layer_norm_takes_the_fused_kernel_from_a_size():
  """Inference with an unknown number of rows: oneDNN's LayerNorm (when TensorFlow's
  oneDNN CPU kernels are on) from FUSED_LAYER_NORM_MIN_SIZE values, with the
  original's epsilon; the plain ops below it, for a known shape and in training."""
  rng = np.random.RandomState(5)
  h = 32
  rows = (encoder_lib.FUSED_LAYER_NORM_MIN_SIZE // h // 7 + 1) * 7
  x = (rng.randn(rows, h) * 3 + 1).astype(np.float32)
  # Rows of variance 1e-6: an epsilon of 1e-3 or 1e-5 instead of 1e-12 would
  # shrink them by a factor of 30 or 3.
  x[:50] = (1 + rng.randn(50, h) * 1e-3).astype(np.float32)
  gamma = (1 + rng.randn(h) * 0.1).astype(np.float32)
  beta = (rng.randn(h) * 0.1).astype(np.float32)
  fused_expected = encoder_lib._onednn_layer_norm_available()

  graph = tf.Graph()
  with graph.as_default():
    ph = tf.compat.v1.placeholder(tf.float32, [None, h])
    known = tf.compat.v1.placeholder(tf.float32, [rows, h])
    condition = encoder_lib.fused_layer_norm_condition
    inference = encoder_lib.layer_norm(ph, tf.constant(gamma), tf.constant(beta),
                                       condition(ph, training=False))
    assert condition(ph, training=True) is None
    train = encoder_lib.layer_norm(ph, tf.constant(gamma), tf.constant(beta))
    # A known shape keeps the plain ops: there the rewrite cannot apply, and an
    # unfused batch norm would be slower.
    assert condition(known, training=False) is None
    inference_known = encoder_lib.layer_norm(known, tf.constant(gamma),
                                             tf.constant(beta))
  for fetch, feed, fused in ((inference, {ph: x}, fused_expected),
                             (inference, {ph: x[:100]}, False),
                             (train, {ph: x}, False),
                             (inference_known, {known: x}, False)):
    op_types = _executed_op_types(fetch, feed)
    assert ("_MklLayerNorm" in op_types) == fused
    assert not [t for t in op_types if "BatchNorm" in t], op_types

  fn = tf.function(lambda t: encoder_lib.layer_norm(
      t, gamma, beta, encoder_lib.fused_layer_norm_condition(t, training=False)),
                   input_signature=[tf.TensorSpec([None, None, h])])
  expected = _layer_norm_reference(x, gamma, beta)
  out = fn(x.reshape(-1, 7, h)).numpy().reshape(rows, h)
  np.testing.assert_allclose(out[50:], expected[50:], atol=2e-5, rtol=1e-5)
  np.testing.assert_allclose(out[:50], expected[:50], atol=5e-3, rtol=0)
  assert fn(np.zeros([0, 7, h], np.float32)).shape == (0, 7, h)


def test_inference_with_the_fused_layer_norm_matches_the_plain_one():
  config = tiny_config(max_position_embeddings=128)
  model = BertClassifier(config, num_labels=3)
  batch, seq = 24, 128  # 3,072 rows of 32: above FUSED_LAYER_NORM_MIN_SIZE
  assert batch * seq * 32 >= encoder_lib.FUSED_LAYER_NORM_MIN_SIZE
  ids, mask, types = tiny_inputs(3, seq)
  ids, mask, types = (np.tile(t, [batch // 3, 1]) for t in (ids, mask, types))
  spec = tf.TensorSpec([None, None], tf.int32)
  dynamic = tf.function(lambda i, m, t: model(i, m, t), input_signature=[spec] * 3)
  static = tf.function(lambda i, m, t: model(i, m, t))  # known shape: plain ops
  np.testing.assert_allclose(dynamic(ids, mask, types), static(ids, mask, types),
                             atol=1e-5, rtol=1e-5)
  # The model passes the condition to its LayerNorms: the fused kernel runs.
  graph = tf.Graph()
  with graph.as_default():
    tf.compat.v1.set_random_seed(1)
    graph_model = BertClassifier(config, num_labels=3)
    phs = [tf.compat.v1.placeholder(tf.int32, [None, None]) for _ in range(3)]
    logits = graph_model(*phs)
    init = tf.compat.v1.global_variables_initializer()
  op_types = _executed_op_types(logits, dict(zip(phs, (ids, mask, types))), init)
  assert ("_MklLayerNorm" in op_types) == encoder_lib._onednn_layer_norm_available()


@pytest.mark.parametrize("shape", [(64, 128, 64), (3, 5, 7)])
@pytest.mark.parametrize("dtype", [tf.float32, tf.bfloat16])
def test_stateless_dropout_16bit(shape, dtype):
  rate = 0.1
  x = tf.cast(tf.random.stateless_uniform(shape, [1, 2], 1.0, 2.0), dtype)
  seed = tf.constant([7, 11], tf.int64)
  y = encoder_lib.stateless_dropout_16bit(x, rate, seed)
  assert y.shape == x.shape and y.dtype == dtype
  np.testing.assert_array_equal(y, encoder_lib.stateless_dropout_16bit(x, rate, seed))
  other = encoder_lib.stateless_dropout_16bit(x, rate, tf.constant([7, 12], tf.int64))
  assert np.any(other.numpy() != y.numpy())
  dropped = (y.numpy() == 0)
  keep_prob = 1.0 - 6554 / 65536  # the rate rounded to a multiple of 1/65536
  if dropped.size > 100000:
    assert abs(dropped.mean() - (1 - keep_prob)) < 0.002
  xs, ys = x.numpy().astype(np.float32), y.numpy().astype(np.float32)
  tol = 1e-6 if dtype == tf.float32 else 1e-2
  np.testing.assert_allclose(ys[~dropped], xs[~dropped] / keep_prob, rtol=tol)
  with tf.GradientTape() as tape:
    tape.watch(x)
    out = encoder_lib.stateless_dropout_16bit(x, rate, seed)
  grad = tape.gradient(out, x).numpy().astype(np.float32)
  np.testing.assert_allclose(grad, np.where(dropped, 0.0, 1.0 / keep_prob), rtol=tol)


def test_tf_function_dynamic_shapes_and_xla():
  model = BertModel(tiny_config())
  spec = tf.TensorSpec([None, None], tf.int32)

  @tf.function(input_signature=[spec, spec, spec])
  def graph_fn(i, m, t):
    return model(i, m, t).pooled_output

  xla_fn = tf.function(lambda i, m, t: model(i, m, t).pooled_output,
                       jit_compile=True)
  for batch, seq in ((3, 10), (2, 7)):
    ids, mask, types = tiny_inputs(batch, seq)
    eager = model(ids, mask, types).pooled_output.numpy()
    np.testing.assert_allclose(graph_fn(ids, mask, types), eager, atol=1e-6)
  np.testing.assert_allclose(xla_fn(ids, mask, types), eager, atol=1e-5)


@pytest.mark.parametrize("dtype,tol", [(tf.bfloat16, 0.05), (tf.float16, 0.01)])
def test_mixed_precision_close_to_float32(dtype, tol):
  tf.random.set_seed(5)
  fp32 = BertClassifier(tiny_config(), num_labels=3)
  mixed = BertClassifier(tiny_config(), num_labels=3, compute_dtype=dtype)
  for name, var in mixed.named_variables().items():
    assert var.dtype == tf.float32
    var.assign(fp32.named_variables()[name])
  ids, mask, types = tiny_inputs()
  a = fp32(ids, mask, types)
  b = mixed(ids, mask, types)
  assert b.dtype == tf.float32
  np.testing.assert_allclose(b, a, atol=tol)
  seq_a = fp32.bert(ids, mask, types).sequence_output
  seq_b = mixed.bert(ids, mask, types).sequence_output
  assert seq_b.dtype == tf.float32
  np.testing.assert_allclose(seq_b, seq_a, atol=20 * tol)


def test_matches_model_garden_encoder():
  tf.random.set_seed(11)
  config = tiny_config()
  model = BertModel(config)
  # Non-trivial LayerNorm parameters so that a mis-mapped gamma/beta shows.
  for name, var in model.named_variables().items():
    if "LayerNorm" in name or name.endswith("bias"):
      var.assign(tf.random.normal(var.shape, stddev=0.1) + var)
  reference = build_model_garden_encoder(config, model.named_variables())
  ids, mask, types = tiny_inputs()
  ours = model(ids, mask, types)
  seq, pooled = reference(ids, mask, types)
  real = mask.astype(bool)
  np.testing.assert_allclose(ours.sequence_output.numpy()[real], seq.numpy()[real],
                             atol=1e-5)
  np.testing.assert_allclose(ours.pooled_output, pooled, atol=1e-5)


# ---------------------------------------------------------------- heads


def test_classifier_logits_by_hand():
  model = BertClassifier(tiny_config(), num_labels=3)
  assert list(model.named_variables())[-2:] == ["output_weights", "output_bias"]
  assert model.output_weights.shape == (3, 32)
  model.output_bias.assign([0.1, -0.2, 0.3])
  ids, mask, types = tiny_inputs()
  logits = model(ids, mask, types)
  pooled = model.bert(ids, mask, types).pooled_output.numpy()
  expected = pooled @ model.output_weights.numpy().T + [0.1, -0.2, 0.3]
  np.testing.assert_allclose(logits, expected, atol=1e-6)


def test_classification_loss_and_class_weights():
  logits = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]], np.float32)
  labels = np.array([1, 0])
  log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  expected = -log_probs[np.arange(2), labels]
  got = classification_loss(logits, labels, num_labels=3).numpy()
  np.testing.assert_allclose(got, expected, rtol=1e-6)
  weights = np.array([2.0, 0.5, 1.0], np.float32)
  got = classification_loss(logits, labels, 3, class_weights=weights).numpy()
  np.testing.assert_allclose(got, expected * [0.5, 2.0], rtol=1e-6)


def test_compute_class_weights():
  got = compute_class_weights([6, 3, 1])
  np.testing.assert_allclose(got, [10 / 18, 10 / 9, 10 / 3], rtol=1e-6)
  from sklearn.utils.class_weight import compute_class_weight
  y = np.array([0] * 6 + [1] * 3 + [2])
  np.testing.assert_allclose(got, compute_class_weight("balanced", classes=np.arange(3),
                                                       y=y), rtol=1e-6)
  np.testing.assert_allclose(compute_class_weights({0: 2, 1: 2}), [1, 1])
  with pytest.raises(ValueError, match=r"label id\(s\) \[1\]"):
    compute_class_weights([4, 0])
  with pytest.raises(ValueError, match="Unknown class weight scheme"):
    compute_class_weights([4, 1], scheme="sqrt")


def test_squad_head_and_loss():
  model = BertSquad(tiny_config())
  names = list(model.named_variables())
  assert names[-2:] == ["cls/squad/output_weights", "cls/squad/output_bias"]
  ids, mask, types = tiny_inputs()
  start, end = model(ids, mask, types)
  assert start.shape == (3, 10) and end.shape == (3, 10)
  seq = model.bert(ids, mask, types).sequence_output.numpy()
  w = model.output_weights.numpy()
  np.testing.assert_allclose(start, seq @ w[0], atol=1e-6)
  np.testing.assert_allclose(end, seq @ w[1], atol=1e-6)

  s = np.random.RandomState(0).randn(2, 5).astype(np.float32)
  e = np.random.RandomState(1).randn(2, 5).astype(np.float32)
  sp, ep = np.array([1, 4]), np.array([2, 4])

  def ce(logits, pos):
    lp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return -lp[np.arange(len(pos)), pos].mean()

  np.testing.assert_allclose(squad_loss(s, e, sp, ep), (ce(s, sp) + ce(e, ep)) / 2,
                             rtol=1e-6)
