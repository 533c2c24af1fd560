#!/usr/bin/env python3
"""Matmul throughput at BERT's shapes: TensorFlow (oneDNN) vs PyTorch, same machine.

    python bench/bench_matmul.py                 # runs both workers, one after the other
    python bench/bench_matmul.py --precision float32

The forward matmuls of one BERT-Small layer at batch 32 x sequence 128 (4,096 rows):
the fused query/key/value projection [4096, 512] x [512, 1536], the attention output
[4096, 512] x [512, 512], the feed-forward [4096, 512] x [512, 2048] and
[4096, 2048] x [2048, 512], plus the square 2048 matmul that bench_speed.py calls the
ceiling. Prints one JSON line per shape and stack (GFLOP/s, median of 20 calls) and
the ratio. Inference at batch 32 spends three quarters of its kernel time in these
matmuls (bench/profile_step.py --mode infer), so their speed bounds it.

    python bench/bench_matmul.py --precision float32 --chain 20 \
        --shapes 768x384x1536,768x1536x384,128x768x3072

--chain N times N matmuls inside one call (one tf.function; a Python loop for
PyTorch) and subtracts the same call without the matmuls: a tf.function call costs
0.1-0.3 ms, which a single small matmul cannot hide, while inside a training or
inference graph that cost is paid once per step, not per matmul. --shapes takes
[rows]x[in]x[out] triples (MiniLM at batch 32 x 24 tokens has 768 rows).
"""

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAPES = [(4096, 512, 1536), (4096, 512, 512), (4096, 512, 2048), (4096, 2048, 512),
          (2048, 2048, 2048), (128, 512, 1536), (128, 512, 2048)]


def _median(values):
  values = sorted(values)
  return values[len(values) // 2]


def _chained_seconds(call_with, call_without, chain):
  """Seconds per matmul: median call with `chain` matmuls minus one without."""
  for _ in range(3):
    call_with()
    call_without()
  with_mm, without = [], []
  for _ in range(15):
    start = time.perf_counter()
    call_with()
    with_mm.append(time.perf_counter() - start)
    start = time.perf_counter()
    call_without()
    without.append(time.perf_counter() - start)
  return max(_median(with_mm) - _median(without), 1e-9) / chain


def worker(stack, precision, shapes, chain):
  results = []
  if stack == "tf":
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    dtype = tf.bfloat16 if precision == "bfloat16" else tf.float32
    for m, k, n in shapes:
      a = tf.cast(tf.random.normal([m, k]), dtype)
      b = tf.cast(tf.random.normal([k, n]), dtype)
      if chain:
        # Each matmul gets its own input (a + j), so none can be merged away.
        with_mm = tf.function(lambda x, y: tf.add_n(
            [tf.matmul(x + tf.cast(j, dtype), y)[0, 0] for j in range(chain)]))
        without = tf.function(lambda x: tf.add_n(
            [(x + tf.cast(j, dtype))[0, 0] for j in range(chain)]))
        results.append(((m, k, n), _chained_seconds(
            lambda: with_mm(a, b).numpy(), lambda: without(a).numpy(), chain)))
        continue
      mm = tf.function(lambda x, y: tf.matmul(x, y))
      for _ in range(3):
        mm(a, b).numpy()
      times = []
      for _ in range(20):
        start = time.perf_counter()
        mm(a, b).numpy()
        times.append(time.perf_counter() - start)
      results.append(((m, k, n), _median(times)))
  else:
    import torch  # pylint: disable=g-import-not-at-top
    dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
    with torch.inference_mode():
      for m, k, n in shapes:
        a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
        if chain:
          def with_mm():
            return sum(float(torch.matmul(a + j, b)[0, 0]) for j in range(chain))

          def without():
            return sum(float((a + j)[0, 0]) for j in range(chain))

          results.append(((m, k, n), _chained_seconds(with_mm, without, chain)))
          continue
        for _ in range(3):
          torch.matmul(a, b)
        times = []
        for _ in range(20):
          start = time.perf_counter()
          torch.matmul(a, b)
          times.append(time.perf_counter() - start)
        results.append(((m, k, n), _median(times)))
  for (m, k, n), seconds in results:
    print("RESULT " + json.dumps({"stack": stack, "precision": precision,
                                  "shape": f"{m}x{k}x{n}", "chain": chain,
                                  "gflops": round(2 * m * k * n / seconds / 1e9, 1)}))


def _parse_shapes(text):
  return [tuple(int(v) for v in shape.split("x")) for shape in text.split(",")]


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--precision", default="bfloat16", choices=["bfloat16", "float32"])
  parser.add_argument("--shapes", default=",".join("x".join(str(v) for v in shape)
                                                   for shape in SHAPES),
                      help="comma-separated [rows]x[in]x[out]")
  parser.add_argument("--chain", type=int, default=0,
                      help="time this many matmuls per call (0: one per call)")
  parser.add_argument("--worker", choices=["tf", "torch"], help=argparse.SUPPRESS)
  args = parser.parse_args()
  shapes = _parse_shapes(args.shapes)
  if args.worker:
    worker(args.worker, args.precision, shapes, args.chain)
    return 0
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_ENABLE_ONEDNN_OPTS="1",
             CUDA_VISIBLE_DEVICES="")
  figures = {}
  for stack, python in (("tf", os.path.join(ROOT, ".venv", "bin", "python")),
                        ("torch", os.path.join(ROOT, ".venv-bench", "bin", "python"))):
    proc = subprocess.run([python, os.path.abspath(__file__), "--worker", stack,
                           "--precision", args.precision, "--shapes", args.shapes,
                           "--chain", str(args.chain)], capture_output=True,
                          text=True, env=env)
    if proc.returncode != 0:
      print(json.dumps({"stack": stack, "error": proc.stderr.strip()[-500:]}))
      return 1
    for line in proc.stdout.splitlines():
      if line.startswith("RESULT "):
        row = json.loads(line[len("RESULT "):])
        figures[(stack, row["shape"])] = row["gflops"]
        print(json.dumps(row), flush=True)
  for m, k, n in shapes:
    shape = f"{m}x{k}x{n}"
    print(json.dumps({"ratio": "tf/torch", "precision": args.precision, "shape": shape,
                      "value": round(figures[("tf", shape)] / figures[("torch", shape)],
                                     3)}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
