#!/usr/bin/env python3
"""This project against Hugging Face (PyTorch), one figure, in interleaved blocks.

    python bench/bench_paired.py --model base --figure latency --pairs 20
    python bench/bench_paired.py --model base --figure infer --pairs 8 --calls 3

bench_speed.py runs each stack in its own process one after the other, and on a
shared host the speed of the machine can move by tens of percent between two such
runs. Here both stacks are loaded at once, in two worker processes (this project in
.venv, PyTorch in .venv-bench), and take turns: a block of --calls timed calls of
one stack, then a block of the other, in the order ours-hf, hf-ours, ours-hf, ...
so that a slow spell falls on both sides of a pair alike. Only one worker computes
at a time; the other waits on its pipe (each block line shows the CPU seconds the
waiting worker used meanwhile, which should be about 0).

Each block's figure is the median of its calls; each pair gives a ratio (Hugging
Face's time over ours: above 1 means this project is faster). Prints one JSON line
per block, then a summary: each stack's median and best block, the ratio of the
medians, and the pairs' ratios (median, lowest, highest, and how many pairs this
project won).

Figures: "train" (one training step at --batch_size), "infer" (inference on the
batch), "latency" (inference on one example). The models, inputs and optimizers
are bench_speed.py's.
"""

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_speed  # pylint: disable=g-import-not-at-top,wrong-import-position

FIGURES = ("train", "infer", "latency")


def serve(args):
  """Worker: builds one stack, then runs blocks of calls on request.

  Reads one line per request from stdin: a number N runs N timed calls and prints
  "TIMES " and their seconds as JSON; "quit" ends.
  """
  model_cfg = bench_speed.MODELS[args.model]
  builder = bench_speed.build_ours if args.worker == "ours" else bench_speed.build_hf
  train_step, infer_batch, infer_one, _ = builder(args, model_cfg)
  fn = {"train": train_step, "infer": infer_batch, "latency": infer_one}[args.figure]
  if args.train_first:
    train_step()
  for _ in range(args.warmup):
    fn()
  print("READY", flush=True)
  for line in sys.stdin:
    line = line.strip()
    if line == "quit":
      break
    times = bench_speed._timed(fn, 0, int(line))  # pylint: disable=protected-access
    print("TIMES " + json.dumps(times), flush=True)
  return 0


def _start(stack, args):
  python, env = bench_speed.worker_python_and_env(stack)
  cmd = [python, os.path.abspath(__file__), "--worker", stack]
  for name in ("model", "figure", "precision", "batch_size", "seq_length", "warmup",
               "hf_adamw"):
    cmd += ["--" + name, str(getattr(args, name))]
  if args.train_first:
    cmd.append("--train_first")
  return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True, env=env, cwd=bench_speed.ROOT)


def _cpu_seconds(proc):
  """CPU time (user + system) the process has used so far, from /proc."""
  with open(f"/proc/{proc.pid}/stat") as f:
    fields = f.read().rsplit(")", 1)[1].split()
  return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _read(proc, prefix, stack):
  for line in proc.stdout:
    if line.startswith(prefix):
      return line[len(prefix):].strip()
  raise SystemExit(f"the {stack} worker ended (exit code {proc.wait()}) before "
                   f"printing {prefix.strip()}; its errors are above")


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--model", choices=sorted(bench_speed.MODELS), default="base")
  parser.add_argument("--figure", choices=FIGURES, default="latency")
  parser.add_argument("--precision", choices=["float32", "bfloat16"],
                      default="float32")
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--seq_length", type=int, default=128)
  parser.add_argument("--warmup", type=int, default=3,
                      help="untimed calls in each worker before the first block")
  parser.add_argument("--pairs", type=int, default=10)
  parser.add_argument("--calls", type=int, default=10, help="timed calls per block")
  parser.add_argument("--hf_adamw", choices=["fused", "loop"], default="fused")
  parser.add_argument("--train_first", action="store_true",
                      help="run one training step in each worker before timing "
                      "inference, as bench_speed.py's workers do. Without it the "
                      "workers are inference-only processes, like a server: there "
                      "every PyTorch call page-faults in fresh memory (about "
                      "20,000 page faults per Base batch-1 call here), while "
                      "TensorFlow's allocator reuses its own")
  parser.add_argument("--worker", choices=["ours", "hf"], help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.pairs < 1 or args.calls < 1:
    parser.error("--pairs and --calls must be at least 1")
  if args.worker:
    return serve(args)
  if not os.path.exists(bench_speed.BENCH_PYTHON):
    print(f"{bench_speed.BENCH_PYTHON} is missing: run `bash bench/setup_bench_env.sh` "
          "first", file=sys.stderr)
    return 1
  # Built one after the other, so neither build slows the other's warm-up.
  workers = {}
  for stack in ("ours", "hf"):
    workers[stack] = _start(stack, args)
    _read(workers[stack], "READY", stack)
  blocks = {"ours": [], "hf": []}
  ratios = []
  try:
    for pair in range(args.pairs):
      order = ("ours", "hf") if pair % 2 == 0 else ("hf", "ours")
      for stack in order:
        proc = workers[stack]
        idle = workers["hf" if stack == "ours" else "ours"]
        idle_cpu = _cpu_seconds(idle)
        proc.stdin.write(f"{args.calls}\n")
        proc.stdin.flush()
        times = json.loads(_read(proc, "TIMES ", stack))
        block = bench_speed._median(times)  # pylint: disable=protected-access
        blocks[stack].append(block)
        # The waiting worker should use no CPU while the other computes; its CPU
        # seconds during the block are printed so that a run shows it did not.
        print(json.dumps({"pair": pair, "stack": stack, "block_median_ms":
                          round(1000 * block, 2), "min_ms": round(1000 * min(times), 2),
                          "other_worker_cpu_s": round(_cpu_seconds(idle) - idle_cpu, 2),
                          "at": round(time.time(), 1)}), flush=True)
      ratios.append(blocks["hf"][-1] / blocks["ours"][-1])
  finally:
    for proc in workers.values():
      if proc.poll() is None:
        proc.stdin.write("quit\n")
        proc.stdin.flush()
        proc.wait()
  median = bench_speed._median  # pylint: disable=protected-access
  per_call = args.batch_size if args.figure != "latency" else 1
  summary = {"model": args.model, "figure": args.figure, "precision": args.precision,
             "batch_size": per_call, "seq_length": args.seq_length,
             "train_first": args.train_first,
             "pairs": args.pairs, "calls_per_block": args.calls}
  for stack, values in blocks.items():
    summary[f"{stack}_median_ms"] = round(1000 * median(values), 2)
    summary[f"{stack}_best_ms"] = round(1000 * min(values), 2)
  summary["hf_over_ours_of_medians"] = round(median(blocks["hf"]) /
                                             median(blocks["ours"]), 3)
  summary["pair_ratio_median"] = round(median(ratios), 3)
  summary["pair_ratio_min"] = round(min(ratios), 3)
  summary["pair_ratio_max"] = round(max(ratios), 3)
  summary["pairs_ours_faster"] = sum(r > 1.0 for r in ratios)
  print(json.dumps(summary), flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
