#!/usr/bin/env python3
"""One training dense layer (forward and backward) in TensorFlow, several ways.

    python bench/bench_train_dense.py --precision bfloat16
    python bench/bench_train_dense.py --precision bfloat16 --rows 768 --shapes 384x1536

A training step casts each float32 kernel variable to the compute dtype and runs
matmul + bias_add (+ GELU), then the gradients of all three. The weight is then not
a graph constant, and oneDNN picks a different kernel for it than for a frozen
weight (ONEDNN_VERBOSE=1 prints which). This times the variants of that layer that
keep the same math, so a change to modeling/encoder.py can be chosen by
measurement. Prints one JSON line per shape and variant: the median milliseconds of
a forward + backward call, and GFLOP/s counting the three matmuls.
"""

import argparse
import json
import time

import tensorflow as tf


def _median(values):
  values = sorted(values)
  return values[len(values) // 2]


def variants(dtype):
  """name -> fn(x float32 [M, K], kernel var, bias var) -> loss scalar."""

  def matmul_2d(x, kernel, bias):
    y = tf.nn.bias_add(tf.matmul(tf.cast(x, dtype), tf.cast(kernel, dtype)),
                       tf.cast(bias, dtype))
    return tf.reduce_sum(tf.cast(y, tf.float32))

  def matmul_add(x, kernel, bias):
    y = tf.matmul(tf.cast(x, dtype), tf.cast(kernel, dtype)) + tf.cast(bias, dtype)
    return tf.reduce_sum(tf.cast(y, tf.float32))

  def batch_matmul_3d(x, kernel, bias):
    x3 = tf.expand_dims(tf.cast(x, dtype), 0)  # [1, M, K]: BatchMatMulV2
    y = tf.matmul(x3, tf.cast(kernel, dtype)) + tf.cast(bias, dtype)
    return tf.reduce_sum(tf.cast(y, tf.float32))

  def einsum(x, kernel, bias):
    y = tf.einsum("mk,kn->mn", tf.cast(x, dtype), tf.cast(kernel, dtype))
    y = tf.nn.bias_add(y, tf.cast(bias, dtype))
    return tf.reduce_sum(tf.cast(y, tf.float32))

  @tf.custom_gradient
  def bias_add_matmul_grad(y, b):
    def grad(dy):
      ones = tf.ones([1, tf.shape(dy)[0]], dy.dtype)
      return dy, tf.reshape(tf.matmul(ones, dy), [-1])
    return tf.nn.bias_add(y, b), grad

  @tf.custom_gradient
  def bias_add_sum32_grad(y, b):
    def grad(dy):
      return dy, tf.cast(tf.reduce_sum(tf.cast(dy, tf.float32), axis=0), dy.dtype)
    return tf.nn.bias_add(y, b), grad

  def einsum_ones_grad(x, kernel, bias):
    y = tf.einsum("mk,kn->mn", tf.cast(x, dtype), tf.cast(kernel, dtype))
    y = bias_add_matmul_grad(y, tf.cast(bias, dtype))
    return tf.reduce_sum(tf.cast(y, tf.float32))

  def einsum_sum32_grad(x, kernel, bias):
    y = tf.einsum("mk,kn->mn", tf.cast(x, dtype), tf.cast(kernel, dtype))
    y = bias_add_sum32_grad(y, tf.cast(bias, dtype))
    return tf.reduce_sum(tf.cast(y, tf.float32))

  def matmul_2d_ones_grad(x, kernel, bias):
    y = tf.matmul(tf.cast(x, dtype), tf.cast(kernel, dtype))
    y = bias_add_matmul_grad(y, tf.cast(bias, dtype))
    return tf.reduce_sum(tf.cast(y, tf.float32))

  return {"matmul_2d": matmul_2d, "matmul_add": matmul_add,
          "einsum_ones_grad": einsum_ones_grad, "einsum_sum32_grad": einsum_sum32_grad,
          "matmul_2d_ones_grad": matmul_2d_ones_grad,
          "batch_matmul_3d": batch_matmul_3d,
          "einsum": einsum}


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--precision", default="bfloat16",
                      choices=["float32", "bfloat16"])
  parser.add_argument("--rows", type=int, default=768,
                      help="tokens in the batch (batch x sequence length)")
  parser.add_argument("--shapes", default="384x1152,384x384,384x1536,1536x384",
                      help="comma-separated KxN kernel shapes")
  parser.add_argument("--variants", default="",
                      help="comma-separated subset of the variants (default: all)")
  parser.add_argument("--calls", type=int, default=30)
  parser.add_argument("--rounds", type=int, default=1,
                      help="time the variants this many times, alternating")
  args = parser.parse_args()
  dtype = tf.bfloat16 if args.precision == "bfloat16" else tf.float32
  all_variants = variants(dtype)
  names = args.variants.split(",") if args.variants else list(all_variants)
  for shape in args.shapes.split(","):
    k, n = (int(v) for v in shape.split("x"))
    x = tf.random.normal([args.rows, k])
    kernel = tf.Variable(tf.random.normal([k, n], stddev=0.02))
    bias = tf.Variable(tf.random.normal([n], stddev=0.02))
    steps = {}
    for name in names:
      fn = all_variants[name]

      @tf.function
      def step(x, fn=fn):
        with tf.GradientTape() as tape:
          tape.watch(x)
          loss = fn(x, kernel, bias)
        dx, dk, db = tape.gradient(loss, [x, kernel, bias])
        return loss, dx, dk, db

      for _ in range(3):
        [t.numpy() for t in step(x)]
      steps[name] = step
    for name in names * args.rounds:
      step = steps[name]
      times = []
      for _ in range(args.calls):
        start = time.perf_counter()
        [t.numpy() for t in step(x)]
        times.append(time.perf_counter() - start)
      ms = 1000 * _median(times)
      flops = 3 * 2 * args.rows * k * n
      print(json.dumps({"variant": name, "precision": args.precision,
                        "rows": args.rows, "k": k, "n": n, "ms": round(ms, 3),
                        "gflops": round(flops / ms / 1e6, 1)}), flush=True)


if __name__ == "__main__":
  main()
