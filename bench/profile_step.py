#!/usr/bin/env python3
"""Where the time of one training (or inference) step goes: a per-op-type profile.

    python bench/profile_step.py --model small --precision bfloat16
    python bench/profile_step.py --model base --precision float32 --mode infer

Builds this project's classifier exactly as bench/bench_speed.py does (random
weights, random ids, batch 32, sequence 128 by default), runs a few warm-up steps,
then traces `--steps` steps with the TensorFlow profiler and sums the time of the
executed kernels by op type (MatMul, BatchMatMulV2, Mul, ...). Prints one JSON line
per op type, largest first, with its share of the total kernel time, then one line
with the step time. Shares are of kernel time: with two cores, two kernels can run
at once, so kernel time can exceed wall time.
"""

import argparse
import collections
import glob
import json
import os
import re
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


_NOT_KERNELS = {"Process", "Generator", "FunctionRun", "ExecutorState::Process"}


# Name scopes of modeling/ and the optimizer, innermost first.
_PARTS = ("adam_update", "clip_by_global_norm", "dropout", "layer_norm", "gelu_exact",
          "gelu", "attention", "ffn")


def _model_part(op_name, op_type):
  """'forward/dropout:StatelessRandomUniformV2'-style key of an op."""
  # A scope entered again gets a suffix (attention_3, ffn_1); count it with the rest.
  scopes = [re.sub(r"_\d+$", "", scope) for scope in op_name.split("/")]
  direction = "backward" if "gradient_tape" in scopes else "forward"
  for part in _PARTS:
    if part in scopes:
      return f"{direction}/{part}:{op_type}"
  return f"{direction}/other:{op_type}"


def op_time_by_type(logdir, by="type"):
  """Sums kernel durations over every TensorFlow op thread of an xplane trace.

  Args:
    logdir: the directory tf.profiler.experimental.start wrote to.
    by: "type" sums by op type (MatMul); "name" by op name with layer indices and
      numeric suffixes removed (bert/encoder/layer_N/.../Mul), to find where an op
      type comes from.

  Returns:
    Counter key -> total microseconds.
  """
  from tensorflow.tsl.profiler.protobuf import xplane_pb2  # pylint: disable=g-import-not-at-top
  paths = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
  if not paths:
    raise RuntimeError(f"no *.xplane.pb under {logdir}")
  space = xplane_pb2.XSpace()
  with open(paths[0], "rb") as f:
    space.ParseFromString(f.read())
  totals = collections.Counter()
  for plane in space.planes:
    if not plane.name.startswith("/host:CPU"):
      continue
    for line in plane.lines:
      # Kernel executions run on the TensorFlow op threads; the Python thread and
      # the tf.function/executor bookkeeping lines would double count.
      if not line.name.startswith("tf_"):
        continue
      for event in line.events:
        name = plane.event_metadata[event.metadata_id].name
        # "name:OpType" for TF ops; anything else (framework events) is skipped.
        if ":" not in name:
          continue
        op_name, op_type = name.rsplit(":", 1)
        # "Process" and friends are the executor's own spans around whole functions.
        if op_type in _NOT_KERNELS:
          continue
        if by == "type":
          key = op_type
        elif by == "part":
          key = _model_part(op_name, op_type)
        else:
          key = re.sub(r"_\d+(?=/|$)", "_N", op_name) + ":" + op_type
        totals[key] += event.duration_ps / 1e6
  return totals


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--model", default="small", choices=["small", "base", "minilm"])
  parser.add_argument("--precision", default="float32",
                      choices=["float32", "bfloat16", "float16"])
  parser.add_argument("--mode", default="train", choices=["train", "infer", "latency"],
                      help="a training step, inference on the batch, or inference "
                      "on one example")
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--seq_length", type=int, default=128)
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--top", type=int, default=25)
  parser.add_argument("--by", default="type", choices=["type", "part", "name"],
                      help="sum by op type; by part of the model (attention, "
                      "ffn, gelu, layer_norm, dropout, adam_update...) and op type; "
                      "or by op name")
  args = parser.parse_args()

  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import bench_speed  # pylint: disable=g-import-not-at-top

  step_fn = bench_speed.build_ours(args, bench_speed.MODELS[args.model])[
      ("train", "infer", "latency").index(args.mode)]
  for _ in range(args.warmup):
    step_fn()
  logdir = tempfile.mkdtemp(prefix="profile_step_")
  tf.profiler.experimental.start(logdir)
  start = time.perf_counter()
  for _ in range(args.steps):
    step_fn()
  wall = (time.perf_counter() - start) / args.steps
  tf.profiler.experimental.stop()
  totals = op_time_by_type(logdir, args.by)
  kernel_total = sum(totals.values())
  for op_type, micros in totals.most_common(args.top):
    print(json.dumps({"op": op_type, "ms_per_step": round(micros / 1000 / args.steps, 2),
                      "share": round(micros / kernel_total, 4)}))
  print(json.dumps({"model": args.model, "precision": args.precision,
                    "mode": args.mode, "batch_size": args.batch_size,
                    "seq_length": args.seq_length,
                    "wall_ms_per_step": round(1000 * wall, 1),
                    "kernel_ms_per_step": round(kernel_total / 1000 / args.steps, 1)}))


if __name__ == "__main__":
  main()
