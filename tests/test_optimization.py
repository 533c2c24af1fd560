"""Tests for modeling.optimization: schedule, AdamWeightDecay vs numpy, gradient
accumulation, loss scaling, and MirroredStrategy equivalence."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from modeling import BertClassifier, BertConfig, classification_loss
from modeling.optimization import (AdamWeightDecay, DynamicLossScale,
                                   LinearWarmupLinearDecay, accumulated_gradients,
                                   summed_rows)

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def test_schedule_values():
  sched = LinearWarmupLinearDecay(init_lr=1e-3, num_train_steps=100,
                                  num_warmup_steps=10)
  got = [float(sched(s)) for s in (0, 5, 9, 10, 55, 100, 150)]
  expected = [0.0, 5e-4, 9e-4, 1e-3 * 0.9, 1e-3 * 0.45, 0.0, 0.0]
  np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-12)
  no_warmup = LinearWarmupLinearDecay(2.0, 4, 0)
  np.testing.assert_allclose([float(no_warmup(s)) for s in range(5)],
                             [2.0, 1.5, 1.0, 0.5, 0.0])
  opt = AdamWeightDecay(sched)
  assert float(opt.learning_rate_at(55)) == pytest.approx(4.5e-4)


def numpy_adamw(params, grads, m, v, lr, wd_names, clip=1.0, wd=0.01, b1=0.9,
                b2=0.999, eps=1e-6):
  """The original BERT update (optimization.py's AdamWeightDecayOptimizer)."""
  norm = np.sqrt(sum((g ** 2).sum() for g in grads.values()))
  scale = clip / max(norm, clip)
  for name in params:
    g = grads[name] * scale
    m[name] = b1 * m[name] + (1 - b1) * g
    v[name] = b2 * v[name] + (1 - b2) * g * g
    update = m[name] / (np.sqrt(v[name]) + eps)
    if name in wd_names:
      update = update + wd * params[name]
    params[name] = params[name] - lr * update


def numpy_torch_adamw(params, grads, m, v, lr, step, wd_names, clip=1.0, wd=0.01,
                      b1=0.9, b2=0.999, eps=1e-8):
  """torch.optim.AdamW's update (single-tensor path, as the Hugging Face Trainer
  runs it after clip_grad_norm_), written out from its documented algorithm."""
  norm = np.sqrt(sum((g ** 2).sum() for g in grads.values()))
  scale = min(1.0, clip / (norm + 1e-6))  # clip_grad_norm_'s factor
  for name in params:
    g = grads[name] * scale
    if name in wd_names:
      params[name] = params[name] * (1 - lr * wd)
    m[name] = b1 * m[name] + (1 - b1) * g
    v[name] = b2 * v[name] + (1 - b2) * g * g
    bias_correction1 = 1 - b1 ** step
    bias_correction2 = 1 - b2 ** step
    denom = np.sqrt(v[name]) / np.sqrt(bias_correction2) + eps
    params[name] = params[name] - lr / bias_correction1 * m[name] / denom


def test_adam_weight_decay_matches_numpy():
  rng = np.random.RandomState(0)
  init = {"dense/kernel": rng.randn(2, 3), "dense/bias": rng.randn(3),
          "x/LayerNorm/gamma": rng.randn(3), "y/layer_norm/beta": rng.randn(3)}
  init = {k: v.astype(np.float32) for k, v in init.items()}
  variables = {k: tf.Variable(v, name=k) for k, v in init.items()}
  sched = LinearWarmupLinearDecay(0.1, num_train_steps=10, num_warmup_steps=2)
  opt = AdamWeightDecay(sched, weight_decay_rate=0.01)
  opt.build(variables)
  params = {k: v.astype(np.float64) for k, v in init.items()}
  m = {k: np.zeros_like(v) for k, v in params.items()}
  v2 = {k: np.zeros_like(v) for k, v in params.items()}
  step_fn = tf.function(opt.apply_gradients)
  for step in range(4):
    # Step 1 has a large gradient so that global-norm clipping is active.
    scale = 10.0 if step == 1 else 0.1
    grads = {k: (rng.randn(*val.shape) * scale).astype(np.float32)
             for k, val in init.items()}
    lr = float(sched(step))
    numpy_adamw(params, grads, m, v2, lr, wd_names={"dense/kernel"})
    (step_fn if step % 2 else opt.apply_gradients)(
        [tf.constant(grads[k]) for k in variables])
  assert int(opt.global_step.numpy()) == 4
  # The fused Adam kernel forms 1 - beta_2 in float32 (0.00099998713 instead of
  # 0.001), a 1.3e-5 relative change of v's increment: allow for it, and no more.
  for k in variables:
    np.testing.assert_allclose(variables[k].numpy(), params[k], rtol=1e-4, atol=1e-5)
  slots = opt.slot_variables()
  assert set(slots) == ({k + "/adam_m" for k in init} | {k + "/adam_v" for k in init}
                        | {"global_step"})
  np.testing.assert_allclose(slots["dense/bias/adam_m"].numpy(), m["dense/bias"],
                             rtol=1e-5, atol=1e-7)
  assert opt._use_wd == [True, False, False, False]


@pytest.mark.parametrize("use_cpu_kernel", [True, False])
def test_adamw_bias_correction_matches_torch_formula(use_cpu_kernel):
  # --optimizer=adamw must be the Trainer's AdamW, step for step, on the kernel
  # path and on TensorFlow's ops, and must differ from the original.
  rng = np.random.RandomState(3)
  init = {"dense/kernel": rng.randn(4, 3), "dense/bias": rng.randn(3),
          "x/LayerNorm/gamma": rng.randn(3)}
  init = {k: val.astype(np.float32) for k, val in init.items()}
  variables = {k: tf.Variable(val, name=k) for k, val in init.items()}
  sched = LinearWarmupLinearDecay(0.01, num_train_steps=20, num_warmup_steps=3)
  opt = AdamWeightDecay(sched, weight_decay_rate=0.01, epsilon=1e-8,
                        bias_correction=True, use_cpu_kernel=use_cpu_kernel)
  opt.build(variables)
  assert opt.has_cpu_kernel == use_cpu_kernel
  params = {k: val.astype(np.float64) for k, val in init.items()}
  original = {k: val.copy() for k, val in params.items()}
  m = {k: np.zeros_like(val) for k, val in params.items()}
  v = {k: np.zeros_like(val) for k, val in params.items()}
  m0 = {k: np.zeros_like(val) for k, val in params.items()}
  v0 = {k: np.zeros_like(val) for k, val in params.items()}
  step_fn = tf.function(opt.apply_gradients)
  for step in range(6):
    scale = 10.0 if step == 2 else 0.05  # clipping active on one step
    grads = {k: (rng.randn(*val.shape) * scale).astype(np.float32)
             for k, val in init.items()}
    lr = float(sched(step))
    numpy_torch_adamw(params, grads, m, v, lr, step + 1, wd_names={"dense/kernel"})
    numpy_adamw(original, grads, m0, v0, lr, wd_names={"dense/kernel"}, eps=1e-8)
    step_fn([tf.constant(grads[k]) for k in variables])
  for k in variables:
    np.testing.assert_allclose(variables[k].numpy(), params[k], rtol=2e-5, atol=2e-6)
    # The original's steps are several times larger this early: clearly apart.
    assert np.max(np.abs(params[k] - original[k])) > 1e-3
  # Same slots as the original: the checkpoint format does not change.
  np.testing.assert_allclose(opt.slot_variables()["dense/kernel/adam_v"].numpy(),
                             v["dense/kernel"], rtol=1e-4)


def test_summed_rows_equals_the_dense_gradient():
  slices = tf.IndexedSlices(
      values=tf.constant([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]]),
      indices=tf.constant([3, 0, 3, 3]), dense_shape=tf.constant([5, 2]))
  summed = summed_rows(slices)
  assert sorted(summed.indices.numpy().tolist()) == [0, 3]
  np.testing.assert_array_equal(tf.convert_to_tensor(summed),
                                tf.convert_to_tensor(slices))


def _gather_model_steps(sparse, steps=4):
  """A table read by tf.gather (duplicate rows, as words repeat in a batch) plus a
  dense kernel, trained with apply_gradients(sparse=...). Returns variables and
  slots after `steps` steps."""
  rng = np.random.RandomState(1)
  table = tf.Variable(rng.randn(12, 4).astype(np.float32), name="table")
  kernel = tf.Variable(rng.randn(4, 3).astype(np.float32), name="kernel")
  opt = AdamWeightDecay(LinearWarmupLinearDecay(0.05, 10, 2))
  opt.build({"bert/embeddings/word_embeddings": table, "dense/kernel": kernel})
  ids = tf.constant([[1, 5, 5, 7], [5, 1, 2, 2]])  # rows 1, 2 and 5 repeat

  @tf.function
  def step(scale):
    with tf.GradientTape() as tape:
      x = tf.gather(tf.convert_to_tensor(table), ids)  # [2, 4, 4]
      loss = scale * tf.reduce_sum(tf.tanh(tf.einsum("bsh,hk->bsk", x, kernel)))
    grads = tape.gradient(loss, [table, kernel])
    assert isinstance(grads[0], tf.IndexedSlices)
    opt.apply_gradients(grads, sparse=sparse)

  for i in range(steps):
    step(tf.constant(10.0 if i % 2 else 0.01))  # clipping on every other step
  return [table.numpy(), kernel.numpy()] + [
      s.numpy() for s in opt.slot_variables().values()]


def test_sparse_embedding_gradient_gives_the_dense_update():
  # Untouched rows must still move (momentum and weight decay), and the clipping
  # norm must be that of the summed rows, not of every gathered position.
  sparse, dense = _gather_model_steps(True), _gather_model_steps(False)
  for got, want in zip(sparse, dense):
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
  assert not np.allclose(sparse[0][0], np.random.RandomState(1).randn(12, 4)[0])


def test_none_gradient_leaves_variable_untouched():
  a, b = tf.Variable([1.0], name="a"), tf.Variable([2.0], name="b")
  opt = AdamWeightDecay(0.1)
  opt.build({"a": a, "b": b})
  opt.apply_gradients([tf.constant([1.0]), None])
  assert b.numpy()[0] == 2.0 and a.numpy()[0] != 1.0
  with pytest.raises(ValueError, match="got 1 gradients for 2 variables"):
    opt.apply_gradients([None])


def test_gradient_accumulation_equals_big_batch():
  config = BertConfig(vocab_size=60, hidden_size=16, num_hidden_layers=1,
                      num_attention_heads=2, intermediate_size=32,
                      max_position_embeddings=16, type_vocab_size=2)
  model = BertClassifier(config, num_labels=3)
  rng = np.random.RandomState(0)
  features = {"input_ids": rng.randint(1, 60, (8, 6)).astype(np.int32),
              "input_mask": np.ones((8, 6), np.int32),
              "segment_ids": np.zeros((8, 6), np.int32),
              "label_ids": rng.randint(0, 3, (8,)).astype(np.int32)}
  variables = list(model.named_variables().values())
  global_batch = 8.0

  def loss_fn(f, micro_index=None):
    del micro_index  # no dropout here
    logits = model(f["input_ids"], f["input_mask"], f["segment_ids"], training=False)
    return tf.reduce_sum(classification_loss(logits, f["label_ids"], 3)) / global_batch

  with tf.GradientTape() as tape:
    big_loss = loss_fn(features)
  big = tape.gradient(big_loss, variables)
  for k in (1, 4):
    loss, grads = accumulated_gradients(loss_fn, variables, features, k)
    np.testing.assert_allclose(loss, big_loss, atol=1e-6)
    for g, ref in zip(grads, big):
      np.testing.assert_allclose(tf.convert_to_tensor(g), tf.convert_to_tensor(ref),
                                 atol=1e-6)
  graph_fn = tf.function(lambda f: accumulated_gradients(loss_fn, variables, f, 2))
  loss, grads = graph_fn(features)
  np.testing.assert_allclose(loss, big_loss, atol=1e-6)
  np.testing.assert_allclose(grads[0], tf.convert_to_tensor(big[0]), atol=1e-6)
  with pytest.raises(tf.errors.InvalidArgumentError, match="not divisible"):
    accumulated_gradients(loss_fn, variables, features, 3)


def test_loss_scale_skips_non_finite_step():
  w = tf.Variable([1.0, 2.0], name="w")
  loss_scale = DynamicLossScale(initial_scale=2.0 ** 15, growth_interval=2)
  opt = AdamWeightDecay(0.1, loss_scale=loss_scale)
  opt.build({"w": w})

  @tf.function
  def step(g):
    opt.apply_gradients(loss_scale.unscale([g]))

  scaled_loss = loss_scale.scale_loss(tf.constant(2.0))
  assert float(scaled_loss) == 2.0 ** 16
  step(tf.constant([np.inf, 1.0]))
  np.testing.assert_array_equal(w.numpy(), [1.0, 2.0])
  np.testing.assert_array_equal(opt.slot_variables()["w/adam_m"].numpy(), [0, 0])
  assert float(loss_scale.scale.numpy()) == 2.0 ** 14
  assert int(opt.global_step.numpy()) == 0
  step(tf.constant([np.nan, 1.0]))
  assert float(loss_scale.scale.numpy()) == 2.0 ** 13
  step(tf.constant([1.0, 1.0]) * 2.0 ** 13)
  assert not np.array_equal(w.numpy(), [1.0, 2.0])
  assert int(opt.global_step.numpy()) == 1
  step(tf.constant([1.0, 1.0]))
  assert float(loss_scale.scale.numpy()) == 2.0 ** 14  # grown after 2 good steps


MIRRORED_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
    from modeling import BertClassifier, BertConfig, classification_loss
    from modeling.optimization import (AdamWeightDecay, DynamicLossScale,
                                       LinearWarmupLinearDecay)

    config = BertConfig(vocab_size=40, hidden_size=8, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=16,
                        max_position_embeddings=8, type_vocab_size=2,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    rng = np.random.RandomState(0)
    GLOBAL_BATCH = 4
    batches = [dict(ids=rng.randint(1, 40, (4, 5)).astype(np.int32),
                    labels=rng.randint(0, 3, (4,)).astype(np.int32))
               for _ in range(3)]

    def train(strategy):
      tf.random.set_seed(0)
      with strategy.scope():
        model = BertClassifier(config, num_labels=3)
        opt = AdamWeightDecay(LinearWarmupLinearDecay(0.05, 10, 1))
        opt.build(model.named_variables())
      variables = list(model.named_variables().values())
      initial = model.output_weights.numpy()

      def replica_step(ids, labels):
        with tf.GradientTape() as tape:
          logits = model(ids, tf.ones_like(ids), tf.zeros_like(ids), training=True)
          loss = tf.reduce_sum(classification_loss(logits, labels, 3)) / GLOBAL_BATCH
        opt.apply_gradients(tape.gradient(loss, variables))

      @tf.function
      def step(ids, labels):
        strategy.run(replica_step, args=(ids, labels))

      n = strategy.num_replicas_in_sync
      for b in batches:
        def shard(name):
          return strategy.experimental_distribute_values_from_function(
              lambda ctx: tf.constant(np.split(b[name], n)[ctx.replica_id_in_sync_group]))
        step(shard("ids"), shard("labels"))
      out = {}
      for name, var in dict(model.named_variables(), **opt.slot_variables()).items():
        copies = [c.numpy() for c in getattr(var, "values", [var])]
        out[name] = copies
      out["moved"] = [float(np.max(np.abs(model.output_weights.numpy() - initial)))]
      return out

    # One MirroredStrategy per process: a second instance would reuse collective keys.
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    two = train(strategy)
    one = train(tf.distribute.get_strategy())
    moved = two.pop("moved")[0]
    one.pop("moved")
    max_diff = max(float(np.max(np.abs(c - one[k][0]))) for k in two for c in two[k])
    replica_diff = max(float(np.max(np.abs(two[k][0] - two[k][1]))) for k in two)

    # Loss scaling: a non-finite gradient on ONE replica skips the step on all.
    with strategy.scope():
      w = tf.Variable([1.0, 2.0], name="w")
      ls = DynamicLossScale()
      opt = AdamWeightDecay(0.1, loss_scale=ls)
      opt.build({"w": w})

    @tf.function
    def bad_step():
      def fn():
        ctx = tf.distribute.get_replica_context()
        bad = tf.cast(ctx.replica_id_in_sync_group, tf.float32) * np.inf
        opt.apply_gradients(ls.unscale([tf.constant([1.0, 1.0]) + bad]))
      strategy.run(fn)
    bad_step()
    skip = dict(w=[c.numpy().tolist() for c in w.values],
                scale=[float(c.numpy()) for c in ls.scale.values],
                step=[int(c.numpy()) for c in opt.global_step.values])
    print(json.dumps(dict(max_diff=max_diff, replica_diff=replica_diff,
                          moved=moved,
                          global_step=[int(x) for x in two["global_step"]],
                          skip=skip)))
""")


def test_mirrored_strategy_matches_single_device(tmp_path):
  script = tmp_path / "mirrored_check.py"
  script.write_text(MIRRORED_SCRIPT)
  env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT), TF_CPP_MIN_LOG_LEVEL="2",
             CUDA_VISIBLE_DEVICES="")
  proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                        env=env, cwd=str(tmp_path), timeout=240)
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  assert result["max_diff"] < 1e-5, result
  assert result["replica_diff"] == 0.0, result
  assert result["moved"] > 1e-3, result  # training really changed the weights
  assert result["global_step"] == [3, 3]
  assert result["skip"]["w"] == [[1.0, 2.0], [1.0, 2.0]]
  assert result["skip"]["scale"] == [2.0 ** 14, 2.0 ** 14]
  assert result["skip"]["step"] == [0, 0]
