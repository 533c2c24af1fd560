# coding=utf-8
"""Benchmark: the prediction command on an exported classifier SavedModel.

Figures (one JSON line each):
  - throughput of serving.predict.Predictor (raw text in, in-graph tokenization) at
    --batch_size over the texts of --texts_file, and side by side the same model fed
    by Python tokenization (tokenization.BatchTokenizer) + serving_default;
  - batch-1 latency (median, p90) of the raw-text signature;
  - in-graph tokenizer exactness: the wordpiece_ids signature against
    tokenization.FullTokenizer over every text of the shared data (the texts of
    bench/bench_tokenization.py); lines that differ must be 0 (exit status 1 if not).

Usage (from the project root):
  python bench/bench_predict.py --export_dir out/emotion/export [--data_dir ../shared/data]
"""

import argparse
import json
import os
import sys
import time

# The kernels scripts/predict.py runs with (it sets this before importing TensorFlow).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position


def _emit(figure, value, unit=None, **extra):
  record = {"bench": "predict", "figure": figure, "value": value}
  if unit:
    record["unit"] = unit
  record.update(extra)
  print(json.dumps(record), flush=True)


def _read_texts(path):
  """Texts of an Emotion-style `text;label` file (or plain lines)."""
  with open(path, encoding="utf-8") as f:
    return [line.rstrip("\n").rsplit(";", 1)[0] for line in f if line.strip()]


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--export_dir", required=True)
  parser.add_argument("--data_dir", default="../shared/data")
  parser.add_argument("--texts_file", default=None,
                      help="default: DATA_DIR/emotion/val.txt")
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--latency_texts", type=int, default=200)
  parser.add_argument("--skip_exactness", action="store_true")
  args = parser.parse_args()

  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tokenization  # pylint: disable=g-import-not-at-top
  from processors import features as features_lib  # pylint: disable=g-import-not-at-top
  from processors.base import InputExample  # pylint: disable=g-import-not-at-top
  from serving import predict as predict_lib  # pylint: disable=g-import-not-at-top

  start = time.perf_counter()
  predictor = predict_lib.Predictor(args.export_dir)
  _emit("load_seconds", round(time.perf_counter() - start, 2), "s")
  texts = _read_texts(args.texts_file or os.path.join(args.data_dir, "emotion",
                                                      "val.txt"))
  pairs = [(t, None) for t in texts]
  list(predictor.predict(pairs[:args.batch_size * 2], args.batch_size))  # warm-up

  start = time.perf_counter()
  predictions = list(predictor.predict(pairs, args.batch_size))
  elapsed = time.perf_counter() - start
  _emit("throughput_raw_text", round(len(texts) / elapsed, 1), "texts/s",
        batch_size=args.batch_size, texts=len(texts))

  # Peer: the same SavedModel fed ids tokenized in Python (the batch fast path).
  info = json.load(open(os.path.join(args.export_dir, "bert_export.json")))
  vocab_file = os.path.join(args.export_dir, "assets", "vocab.txt")
  tokenizer = tokenization.FullTokenizer(vocab_file, info["do_lower_case"])
  serving_default = predictor._loaded.signatures["serving_default"]  # pylint: disable=protected-access
  labels = info["labels"]
  start = time.perf_counter()
  peer_probs = []
  for begin in range(0, len(texts), args.batch_size):
    examples = [InputExample(str(i), t, None, labels[0])
                for i, t in enumerate(texts[begin:begin + args.batch_size])]
    arrays = features_lib.convert_examples_to_arrays(
        examples, labels, info["max_seq_length"], tokenizer)
    width = int(arrays["input_mask"].sum(axis=1).max())
    peer_probs.append(serving_default(
        input_ids=tf.constant(arrays["input_ids"][:, :width], tf.int32),
        input_mask=tf.constant(arrays["input_mask"][:, :width], tf.int32),
        segment_ids=tf.constant(arrays["segment_ids"][:, :width], tf.int32),
    )["probabilities"].numpy())
  peer_elapsed = time.perf_counter() - start
  _emit("throughput_python_tokenization_serving_default",
        round(len(texts) / peer_elapsed, 1), "texts/s", batch_size=args.batch_size,
        ratio_raw_text_over_this=round(peer_elapsed / elapsed, 2))
  diff = np.abs(np.concatenate(peer_probs) -
                np.array([p.probabilities for p in predictions])).max()
  _emit("max_probability_difference_raw_text_vs_python_ids", float(diff))

  latencies = []
  for text in texts[:args.latency_texts]:
    start = time.perf_counter()
    predictor.predict_batch([text])
    latencies.append(time.perf_counter() - start)
  _emit("latency_batch1_median", round(1000 * float(np.median(latencies)), 2), "ms")
  _emit("latency_batch1_p90", round(1000 * float(np.percentile(latencies, 90)), 2),
        "ms")

  if args.skip_exactness:
    return 0
  import bench_tokenization  # pylint: disable=g-import-not-at-top
  wordpiece_ids = predictor._loaded.signatures["wordpiece_ids"]  # pylint: disable=protected-access
  total_lines, differing = 0, 0
  start = time.perf_counter()
  for source, lines in bench_tokenization.load_texts(args.data_dir):
    bad = 0
    for begin in range(0, len(lines), 512):
      chunk = lines[begin:begin + 512]
      out = wordpiece_ids(text=tf.constant(chunk))
      got = np.split(out["token_ids"].numpy(),
                     np.cumsum(out["row_lengths"].numpy())[:-1])
      for text, ids in zip(chunk, got):
        if ids.tolist() != tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text)):
          bad += 1
    _emit("in_graph_tokenizer_lines_differing", bad, source=source, lines=len(lines))
    total_lines += len(lines)
    differing += bad
  _emit("in_graph_tokenizer_lines_differing_total", differing, lines=total_lines,
        seconds=round(time.perf_counter() - start, 1))
  return 1 if differing else 0


if __name__ == "__main__":
  sys.exit(main())
