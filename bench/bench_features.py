"""Benchmark of the data path: example counts, conversion speed, output equality.

  .venv/bin/python bench/bench_features.py [--data_dir ../shared/data] [--limit N]

Prints one JSON line per figure:
  1. the example count of every split read through the processors (Emotion, MRPC,
     SST-2); exits non-zero if a count differs from the published one;
  2. token length percentiles of each train split ([CLS] a [SEP] (b [SEP]) before
     truncation), to choose max_seq_length;
  3. examples/second of feature conversion + TFRecord writing on SST-2 train
     (max_seq_length 128) for the reference path, written the way the original
     run_classifier.py does it (Model Garden's pure-Python FullTokenizer,
     convert_single_example, one tf.train.Example per row), and for the fast path
     (processors.file_based_convert_examples_to_features), and their ratio;
     plus the peer, Model Garden's classifier_data_lib conversion (skip it with
     --skip_model_garden);
  4. whether the TFRecord files parse to identical features (exit non-zero if not).
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import bench_common  # pylint: disable=g-import-not-at-top

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from official.nlp.data import classifier_data_lib  # pylint: disable=g-import-not-at-top
from official.nlp.tools import tokenization as official_tokenization  # pylint: disable=g-import-not-at-top
import processors  # pylint: disable=g-import-not-at-top
import tokenization  # pylint: disable=g-import-not-at-top

_EXPECTED_COUNTS = {
    "emotion": {"train": 16000, "dev": 2000},
    "mrpc": {"train": 3668, "dev": 408, "test": 1725},
    "sst-2": {"train": 67349, "dev": 872, "test": 1821},
}
_TASK_DIRS = {"emotion": "emotion", "mrpc": "glue/MRPC", "sst-2": "glue/SST-2"}


def _emit(**fields):
  print(json.dumps(fields), flush=True)


def read_splits(data_dir):
  """Reads every split and checks its count.

  Args:
    data_dir: root of the shared data (holding emotion/ and glue/).

  Returns:
    (dict task -> split -> examples, True if all counts match).
  """
  ok = True
  splits = {}
  for task, expected in _EXPECTED_COUNTS.items():
    processor = processors.get_processor(task)
    task_dir = os.path.join(data_dir, _TASK_DIRS[task])
    splits[task] = {}
    for split, count in expected.items():
      start = time.perf_counter()
      # As run_classifier.py reads (the garbage collector paused).
      examples = processors.get_examples(processor, split, task_dir)
      seconds = time.perf_counter() - start
      splits[task][split] = examples
      match = len(examples) == count
      ok &= match
      _emit(figure="example_count", task=task, split=split, count=len(examples),
            expected=count, ok=match, read_seconds=round(seconds, 3))
  return splits, ok


def length_percentiles(splits, tokenizer, max_seq_length):
  """Prints token length percentiles of each train split."""
  for task, by_split in splits.items():
    lengths = processors.token_lengths(by_split["train"], tokenizer)
    p50, p90, p99 = np.percentile(lengths, [50, 90, 99])
    _emit(figure="token_length", task=task, split="train", p50=float(p50),
          p90=float(p90), p99=float(p99), max=int(lengths.max()),
          truncated_fraction_at_max_seq_length=round(
              float(np.mean(lengths > max_seq_length)), 5),
          max_seq_length=max_seq_length)


def reference_convert(examples, label_list, max_seq_length, tokenizer, output_file):
  """The original's file_based_convert_examples_to_features, one row at a time."""
  with tf.io.TFRecordWriter(output_file) as writer:
    for index, example in enumerate(examples):
      feature = processors.convert_single_example(index, example, label_list,
                                                  max_seq_length, tokenizer)

      def create_int_feature(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))

      features = {
          "input_ids": create_int_feature(feature.input_ids),
          "input_mask": create_int_feature(feature.input_mask),
          "segment_ids": create_int_feature(feature.segment_ids),
          "label_ids": create_int_feature([feature.label_id]),
          "is_real_example": create_int_feature([int(feature.is_real_example)]),
      }
      tf_example = tf.train.Example(features=tf.train.Features(feature=features))
      writer.write(tf_example.SerializeToString())


def read_tfrecord(path, seq_length):
  """Parses a classification TFRecord file into numpy arrays."""
  dataset = processors.make_dataset(path, seq_length, batch_size=4096,
                                    is_training=False)
  parts = {}
  for batch in dataset:
    for name, value in batch.items():
      parts.setdefault(name, []).append(value.numpy())
  return {name: np.concatenate(values) for name, values in parts.items()}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data_dir", default=os.path.join(_ROOT, "..", "shared", "data"))
  parser.add_argument("--vocab_file", default=None)
  parser.add_argument("--max_seq_length", type=int, default=128)
  parser.add_argument("--limit", type=int, default=0,
                      help="convert only the first N SST-2 train rows (0 = all)")
  parser.add_argument("--skip_model_garden", action="store_true",
                      help="do not run Model Garden's conversion as a peer")
  args = parser.parse_args()
  vocab_file = args.vocab_file or bench_common.default_vocab_file()

  splits, counts_ok = read_splits(args.data_dir)
  fast_tokenizer = tokenization.FullTokenizer(vocab_file=vocab_file, do_lower_case=True)
  length_percentiles(splits, fast_tokenizer, args.max_seq_length)

  examples = splits["sst-2"]["train"]
  if args.limit:
    examples = examples[:args.limit]
  label_list = processors.get_processor("sst-2").get_labels()
  work_dir = tempfile.mkdtemp(prefix="bench_features_")
  try:
    reference_file = os.path.join(work_dir, "reference.tf_record")
    fast_file = os.path.join(work_dir, "fast.tf_record")

    reference_tokenizer = official_tokenization.FullTokenizer(
        vocab_file=vocab_file, do_lower_case=True)
    start = time.perf_counter()
    reference_convert(examples, label_list, args.max_seq_length, reference_tokenizer,
                      reference_file)
    reference_seconds = time.perf_counter() - start
    reference_rate = len(examples) / reference_seconds
    _emit(figure="convert_and_write", path="reference (official FullTokenizer + "
          "convert_single_example + tf.train.Example per row)", task="sst-2",
          examples=len(examples), max_seq_length=args.max_seq_length,
          seconds=round(reference_seconds, 2),
          examples_per_second=round(reference_rate, 1))

    start = time.perf_counter()
    processors.file_based_convert_examples_to_features(
        examples, label_list, args.max_seq_length, fast_tokenizer, fast_file)
    fast_seconds = time.perf_counter() - start
    fast_rate = len(examples) / fast_seconds
    _emit(figure="convert_and_write", path="fast (processors.file_based_convert_"
          "examples_to_features)", task="sst-2", examples=len(examples),
          max_seq_length=args.max_seq_length, seconds=round(fast_seconds, 2),
          examples_per_second=round(fast_rate, 1))
    _emit(figure="convert_and_write_speedup", task="sst-2",
          fast_over_reference=round(fast_rate / reference_rate, 2))

    files = {"reference": reference_file}
    if not args.skip_model_garden:
      peer_file = os.path.join(work_dir, "model_garden.tf_record")
      peer_examples = [classifier_data_lib.InputExample(e.guid, e.text_a, e.text_b,
                                                        e.label) for e in examples]
      start = time.perf_counter()
      classifier_data_lib.file_based_convert_examples_to_features(
          peer_examples, label_list, args.max_seq_length, reference_tokenizer,
          peer_file)
      peer_rate = len(examples) / (time.perf_counter() - start)
      _emit(figure="convert_and_write", path="peer (Model Garden classifier_data_lib."
            "file_based_convert_examples_to_features)", task="sst-2",
            examples=len(examples), max_seq_length=args.max_seq_length,
            seconds=round(len(examples) / peer_rate, 2),
            examples_per_second=round(peer_rate, 1))
      _emit(figure="convert_and_write_speedup", task="sst-2",
            fast_over_model_garden=round(fast_rate / peer_rate, 2))
      files["model_garden"] = peer_file

    fast = read_tfrecord(fast_file, args.max_seq_length)
    identical = True
    for name, path in files.items():
      other = read_tfrecord(path, args.max_seq_length)
      same = (set(other) == set(fast) and
              all(np.array_equal(other[k], fast[k]) for k in fast))
      identical &= same
      _emit(figure="tfrecords_identical", task="sst-2", records=len(examples),
            fast_vs=name, identical=bool(same))
  finally:
    shutil.rmtree(work_dir, ignore_errors=True)

  if not counts_ok or not identical:
    sys.exit(1)


if __name__ == "__main__":
  main()
