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


def worker(stack, precision):
  results = []
  if stack == "tf":
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    dtype = tf.bfloat16 if precision == "bfloat16" else tf.float32
    for m, k, n in SHAPES:
      a = tf.cast(tf.random.normal([m, k]), dtype)
      b = tf.cast(tf.random.normal([k, n]), dtype)
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
      for m, k, n in SHAPES:
        a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
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
                                  "shape": f"{m}x{k}x{n}",
                                  "gflops": round(2 * m * k * n / seconds / 1e9, 1)}))


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--precision", default="bfloat16", choices=["bfloat16", "float32"])
  parser.add_argument("--worker", choices=["tf", "torch"], help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    worker(args.worker, args.precision)
    return 0
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_ENABLE_ONEDNN_OPTS="1",
             CUDA_VISIBLE_DEVICES="")
  figures = {}
  for stack, python in (("tf", os.path.join(ROOT, ".venv", "bin", "python")),
                        ("torch", os.path.join(ROOT, ".venv-bench", "bin", "python"))):
    proc = subprocess.run([python, os.path.abspath(__file__), "--worker", stack,
                           "--precision", args.precision], capture_output=True,
                          text=True, env=env)
    if proc.returncode != 0:
      print(json.dumps({"stack": stack, "error": proc.stderr.strip()[-500:]}))
      return 1
    for line in proc.stdout.splitlines():
      if line.startswith("RESULT "):
        row = json.loads(line[len("RESULT "):])
        figures[(stack, row["shape"])] = row["gflops"]
        print(json.dumps(row), flush=True)
  for m, k, n in SHAPES:
    shape = f"{m}x{k}x{n}"
    print(json.dumps({"ratio": "tf/torch", "precision": args.precision, "shape": shape,
                      "value": round(figures[("tf", shape)] / figures[("torch", shape)],
                                     3)}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
