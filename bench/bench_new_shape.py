#!/usr/bin/env python3
"""What a new batch length costs a training step, and what a step costs per length.

    python bench/bench_new_shape.py --model minilm --precision bfloat16
    python bench/bench_new_shape.py --model minilm --lengths 16,20,24,28,32

With dynamic padding each batch is cut to its longest example rounded up to a
multiple (--dynamic_padding's 8). The training step is traced once for every
length, but oneDNN builds (JIT-compiles) its matmul kernels for each new shape, so
the first step at a length costs more than the next ones. A smaller multiple pads
less and meets more lengths; this measures both sides of that trade. For each
length it runs 1 + --repeats steps through Trainer.train_steps and prints the first
step's and the median later step's milliseconds, with random weights and ids.
"""

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--model", default="minilm", choices=["small", "base", "minilm"])
  parser.add_argument("--precision", default="bfloat16",
                      choices=["float32", "bfloat16"])
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--lengths", default="24,25,26,27,28,32,40",
                      help="comma-separated sequence lengths, in the order run")
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()

  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import bench_speed  # pylint: disable=g-import-not-at-top

  strategy, _, trainer = bench_speed.build_classifier_trainer(
      bench_speed.MODELS[args.model], args.precision, args.batch_size,
      num_train_steps=100000)
  num_labels = bench_speed.NUM_LABELS

  lengths = [int(v) for v in args.lengths.split(",")]
  steps_per_length = 1 + args.repeats
  rng = np.random.RandomState(0)
  b = args.batch_size

  def batches():
    for length in lengths:
      for _ in range(steps_per_length):
        yield {"input_ids": rng.randint(1, bench_speed.VOCAB_SIZE, (b, length)
                                        ).astype(np.int32),
               "input_mask": np.ones((b, length), np.int32),
               "segment_ids": np.zeros((b, length), np.int32),
               "label_ids": rng.randint(0, num_labels, (b,)).astype(np.int32)}

  spec = {name: tf.TensorSpec([b, None], tf.int32)
          for name in ("input_ids", "input_mask", "segment_ids")}
  spec["label_ids"] = tf.TensorSpec([b], tf.int32)
  dataset = tf.data.Dataset.from_generator(batches, output_signature=spec)
  iterator = iter(strategy.experimental_distribute_dataset(dataset))
  start = time.perf_counter()
  trainer.train_steps(iterator, 1)  # traces the step, on a shape of its own
  trace_ms = 1000 * (time.perf_counter() - start)
  print(json.dumps({"first_call_ms_with_trace": round(trace_ms, 1),
                    "length": lengths[0]}), flush=True)
  for index, length in enumerate(lengths):
    times = []
    for repeat in range(steps_per_length - (1 if index == 0 else 0)):
      start = time.perf_counter()
      trainer.train_steps(iterator, 1)
      times.append(1000 * (time.perf_counter() - start))
    later = sorted(times[1:] if index else times)
    print(json.dumps({"model": args.model, "precision": args.precision,
                      "length": length,
                      "first_step_ms": None if index == 0 else round(times[0], 1),
                      "median_step_ms": round(later[len(later) // 2], 1)}),
          flush=True)


if __name__ == "__main__":
  main()
