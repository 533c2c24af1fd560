#!/usr/bin/env python3
"""Where a training step's wall time goes: the step cut into cumulative parts.

    python bench/bench_step_parts.py --model minilm --seq_length 24
    python bench/bench_step_parts.py --model small --seq_length 128 --precision bfloat16

bench/profile_step.py sums kernel times by op, but on two cores element-wise ops
run beside the matmuls, so a kernel's time there is not time the step waits for.
This times what the step waits for instead: the same random classifier and batch
(bench_speed.build_classifier_trainer) run as four tf.functions, each a prefix of
the step, alternated round by round so the host's drift hits all alike:

  forward, inference     the model without dropout (training=False)
  forward, training      with dropout, as a training step computes it
  forward and backward   the gradients of every variable (summed to a scalar)
  whole step             Trainer.train_steps: gradients, clipping, AdamWeightDecay

and next to them the matmul floor: the step's matmul FLOPs (forward, and three
times that for a training step) at the speed a chain of the same matmuls reaches
in one graph (--floor_gflops, default: measured here on the largest feed-forward
shape). Prints one JSON line per part (best of --rounds medians) and the floor.
"""

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def forward_matmul_flops(model_cfg, batch_size, seq_length, pooled_only=True):
  """Matmul FLOPs of one forward pass of the classifier (2 per multiply-add).

  Under the classifier head the last layer computes the [CLS] position only
  (BertModel's pooled_only): its query/key/value projection still covers every
  position, the rest one position per example.
  """
  h = model_cfg["hidden_size"]
  i = model_cfg["intermediate_size"]
  layers = model_cfg["num_hidden_layers"]
  tokens = batch_size * seq_length
  qkv = 2 * tokens * h * 3 * h
  attention = 2 * 2 * batch_size * seq_length * seq_length * h  # scores + context
  rest = 2 * tokens * (h * h + 2 * h * i)  # attention output + feed-forward
  flops = layers * (qkv + attention + rest)
  if pooled_only:
    last_share = 1.0 / seq_length
    flops -= (1 - last_share) * (rest + attention)
  return flops


def measure_floor_gflops(tf, rows, k, n, dtype, repeats=10, chain=20):
  """GFLOP/s of [rows, k] x [k, n] matmuls chained in one graph (call cost amortised)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  a = tf.cast(tf.random.normal([rows, k]), dtype)
  w = tf.Variable(tf.random.normal([k, n]))

  @tf.function
  def chained(x):
    w_dt = tf.cast(w, dtype)
    return tf.add_n([tf.matmul(x + tf.cast(j, dtype), w_dt)[0, 0] for j in range(chain)])

  @tf.function
  def inputs_only(x):
    return tf.add_n([(x + tf.cast(j, dtype))[0, 0] for j in range(chain)])

  for _ in range(3):
    chained(a).numpy()
    inputs_only(a).numpy()
  with_mm, without = [], []
  for _ in range(repeats):
    start = time.perf_counter()
    chained(a).numpy()
    with_mm.append(time.perf_counter() - start)
    start = time.perf_counter()
    inputs_only(a).numpy()
    without.append(time.perf_counter() - start)
  seconds = (float(np.median(with_mm)) - float(np.median(without))) / chain
  return 2.0 * rows * k * n / seconds / 1e9


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--model", default="minilm", choices=["small", "base", "minilm"])
  parser.add_argument("--precision", default="float32", choices=["float32", "bfloat16"])
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--seq_length", type=int, default=24)
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--calls", type=int, default=5, help="timed calls per part and round")
  parser.add_argument("--floor_gflops", type=float, default=0.0)
  args = parser.parse_args()

  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import bench_speed  # pylint: disable=g-import-not-at-top
  from modeling import heads  # pylint: disable=g-import-not-at-top

  model_cfg = bench_speed.MODELS[args.model]
  strategy, model, trainer = bench_speed.build_classifier_trainer(
      model_cfg, args.precision, args.batch_size)
  b, s = args.batch_size, args.seq_length
  labels = bench_speed.NUM_LABELS
  rng = np.random.RandomState(0)
  features = {
      "input_ids": tf.constant(rng.randint(1, bench_speed.VOCAB_SIZE, (b, s)), tf.int32),
      "input_mask": tf.ones((b, s), tf.int32),
      "segment_ids": tf.zeros((b, s), tf.int32),
      "label_ids": tf.constant(rng.randint(0, labels, (b,)), tf.int32),
      "is_real_example": tf.ones((b,), tf.int32)}
  variables = list(model.named_variables().values())
  seed = tf.constant([1, 2], tf.int64)

  def mean_loss(training):
    logits = model(features["input_ids"], features["input_mask"],
                   features["segment_ids"], training=training,
                   dropout_seed=seed if training else None)
    return tf.reduce_mean(heads.classification_loss(logits, features["label_ids"],
                                                    labels))

  @tf.function(autograph=False)
  def forward_inference():
    return mean_loss(False)

  @tf.function(autograph=False)
  def forward_training():
    return mean_loss(True)

  @tf.function(autograph=False)
  def forward_backward():
    with tf.GradientTape() as tape:
      loss = mean_loss(True)
    grads = tape.gradient(loss, variables)
    # One value of each gradient keeps every gradient computed, at no cost.
    return tf.add_n([tf.reshape(tf.convert_to_tensor(g), [-1])[0]
                     for g in grads if g is not None])

  dataset = tf.data.Dataset.from_tensors(features).repeat()
  iterator = iter(strategy.experimental_distribute_dataset(dataset))
  parts = [("forward, inference", forward_inference),
           ("forward, training", forward_training),
           ("forward and backward", forward_backward),
           ("whole step", lambda: trainer.train_steps(iterator, 1))]
  for _, fn in parts:
    for _ in range(3):
      float(fn())
  rounds = {name: [] for name, _ in parts}
  for _ in range(args.rounds):
    for name, fn in parts:
      times = []
      for _ in range(args.calls):
        start = time.perf_counter()
        float(fn())
        times.append(time.perf_counter() - start)
      rounds[name].append(float(np.median(times)))

  dtype = tf.bfloat16 if args.precision == "bfloat16" else tf.float32
  floor = args.floor_gflops or measure_floor_gflops(
      tf, b * s, model_cfg["hidden_size"], model_cfg["intermediate_size"], dtype)
  forward_flops = forward_matmul_flops(model_cfg, b, s)
  common = {"model": args.model, "precision": args.precision, "batch_size": b,
            "seq_length": s}
  for name, _ in parts:
    print(json.dumps(dict(common, part=name, ms=round(1000 * min(rounds[name]), 1),
                          ms_median_of_rounds=round(
                              1000 * float(np.median(rounds[name])), 1))))
  print(json.dumps(dict(
      common, matmul_floor_gflops=round(floor, 1),
      forward_matmul_floor_ms=round(1000 * forward_flops / (floor * 1e9), 1),
      training_matmul_floor_ms=round(1000 * 3 * forward_flops / (floor * 1e9), 1))))
  return 0


if __name__ == "__main__":
  sys.exit(main())
