#!/usr/bin/env python3
"""Data path, SST-2 train: this project's tokenization + feature conversion vs
Hugging Face tokenizers (Rust), side by side.

    .venv/bin/python bench/bench_data_path.py --data_dir ../shared/data
    .venv/bin/python bench/bench_data_path.py --hf_variants encode_batch_fast_numpy

Work: all 67,349 SST-2 train sentences, uncased BERT vocab, max_seq_length 128, to
the model-ready int64 arrays input_ids / input_mask / segment_ids [N, 128] and the
label ids [N].

One run starts one worker process per stack, one after the other so they never
share the cores: this project in .venv (processors.get_examples with the "sst-2"
processor to read, as run_classifier.py reads,
processors.convert_examples_to_arrays to convert: the function the CLI's
file_based_convert_examples_to_features runs before writing train.tf_record; with
the C++ tokenizer of native/ on all cores when it is built, and once more without
it, the Python path, for the before/after figure), and
Hugging Face in .venv-bench (`bash bench/setup_bench_env.sh`; the TSV read with the
csv module, a transformers.BertTokenizerFast built from the same vocab.txt). The
Hugging Face worker runs once with TOKENIZERS_PARALLELISM unset (its default: all
cores) and once more with it set to false for the single-thread figure.

Hugging Face variants, all giving the same arrays (checked against the first):
  call_max_length_np       tok(texts, truncation=True, max_length=128,
                           padding="max_length", return_tensors="np"): the usual call
  call_longest_np_pad      padding="longest", return_tensors="np", then np.pad to 128
  call_lists_numpy         no padding, Python lists, filled into arrays with numpy
  encode_batch_fast_numpy  the Rust tokenizer itself (tok.backend_tokenizer with
                           truncation on), encode_batch_fast (no offsets), ids filled
                           with numpy, mask from the lengths, type ids zero (one
                           sentence per row)

Figures (one JSON line each): read seconds, tokenizer build seconds, conversion
seconds cold (a fresh tokenizer, so an empty word cache, first call) and warm (the
same tokenizer, second call) as medians over --repeats, with CPU seconds; for this
project also the TFRecord writing step alone and the CLI's whole
file_based_convert_examples_to_features; how many rows' input_ids (and masks,
segments, labels) differ between the two stacks, with a few examples; and the
ratios, the headline being this project cold against the fastest Hugging Face
variant cold, then the same with each side's reading and with the TFRecord
writing added. Every timed run starts after gc.collect(), on both stacks.
"""

import argparse
import csv
import gc
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time

import bench_common  # pylint: disable=g-import-not-at-top

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT_PYTHON = os.path.join(ROOT, ".venv", "bin", "python")
BENCH_PYTHON = os.path.join(ROOT, ".venv-bench", "bin", "python")
HF_VARIANTS = ("call_max_length_np", "call_longest_np_pad", "call_lists_numpy",
               "encode_batch_fast_numpy")
SST2_LABELS = ("0", "1")


def _median(values):
  values = sorted(values)
  return values[len(values) // 2]


def _result(**fields):
  print("RESULT " + json.dumps(fields), flush=True)


def _clock(fn):
  """Runs fn(); returns (its result, wall seconds, CPU seconds of this process)."""
  # A full collection first, on both stacks: otherwise the garbage collector's
  # debt from reading the data (67k new objects) falls into a random timed run.
  gc.collect()
  wall, cpu = time.perf_counter(), time.process_time()
  out = fn()
  return out, time.perf_counter() - wall, time.process_time() - cpu


def _timing_fields(colds, warms):
  """Median figures of [(wall, cpu)] cold and warm runs."""
  cold, warm = _median([w for w, _ in colds]), _median([w for w, _ in warms])
  return {"cold_seconds": round(cold, 4), "warm_seconds": round(warm, 4),
          "cold_cpu_seconds": round(_median([c for _, c in colds]), 4),
          "warm_cpu_seconds": round(_median([c for _, c in warms]), 4),
          "cold_all": [round(w, 4) for w, _ in colds],
          "warm_all": [round(w, 4) for w, _ in warms]}


def _save_arrays(path, input_ids, input_mask, segment_ids, label_ids):
  """Writes the arrays for the comparison, narrowed to uint16/uint8 to stay small."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  if input_ids.max() >= 1 << 16 or input_ids.min() < 0:
    raise ValueError("input_ids do not fit uint16")
  np.savez(path, input_ids=input_ids.astype(np.uint16),
           input_mask=input_mask.astype(np.uint8),
           segment_ids=segment_ids.astype(np.uint8),
           label_ids=label_ids.astype(np.uint8))


# ----------------------------------------------------------------------- workers
def worker_ours(args):
  """This project: processors read, convert_examples_to_arrays, TFRecord writing."""
  sys.path.insert(0, ROOT)
  import numpy as np  # pylint: disable=g-import-not-at-top
  import processors  # pylint: disable=g-import-not-at-top
  import tokenization  # pylint: disable=g-import-not-at-top
  from processors import tfrecord  # pylint: disable=g-import-not-at-top

  processor = processors.get_processor("sst-2")
  task_dir = os.path.join(args.data_dir, "glue", "SST-2")
  examples, read_s, _ = _clock(lambda: processors.get_examples(processor, "train",
                                                                task_dir))
  label_list = processor.get_labels()
  _result(stack="ours", figure="read", seconds=round(read_s, 4), rows=len(examples))

  native = tokenization.BatchTokenizer(tokenization.FullTokenizer(
      args.vocab_file, do_lower_case=True)).native_tokenizer()
  if native is None:
    print("bench_data_path: the C++ tokenizer is not built (python -m native); "
          "this project's figures are its Python path's", file=sys.stderr)
  load_native = tokenization.native_wordpiece.load

  def timed_conversions(use_native):
    # Without the C++ tokenizer: as on a machine where it is not built.
    tokenization.native_wordpiece.load = load_native if use_native else lambda: None
    colds, warms, builds, arrays = [], [], [], None
    for _ in range(args.repeats):
      tokenizer, build_s, _ = _clock(lambda: tokenization.FullTokenizer(
          args.vocab_file, do_lower_case=True))
      builds.append(build_s)

      def convert(tokenizer=tokenizer):
        return processors.convert_examples_to_arrays(examples, label_list,
                                                     args.max_seq_length, tokenizer)

      # Cold: a fresh tokenizer, so an empty word cache and (with the C++
      # tokenizer) its vocab tables built inside the timed call.
      arrays, wall, cpu = _clock(convert)
      colds.append((wall, cpu))
      _, wall, cpu = _clock(convert)  # the same tokenizer: its word cache is warm
      warms.append((wall, cpu))
    tokenization.native_wordpiece.load = load_native
    return colds, warms, builds, arrays

  if native is not None:
    colds, warms, _, python_arrays = timed_conversions(use_native=False)
    _result(stack="ours", figure="convert_python_tokenizer",
            variant="convert_examples_to_arrays without the C++ tokenizer",
            rows=len(examples), threads=1, **_timing_fields(colds, warms))
  colds, warms, builds, arrays = timed_conversions(use_native=native is not None)
  if native is not None:
    assert all(np.array_equal(arrays[k], python_arrays[k]) for k in arrays), \
        "the C++ and Python tokenizer paths gave different arrays"
  _result(stack="ours", figure="tokenizer_build", seconds=round(_median(builds), 4))
  _result(stack="ours", figure="convert", variant="convert_examples_to_arrays",
          rows=len(examples),
          tokenizer="c++" if native is not None else "python",
          threads=tokenization.native_wordpiece.default_threads() if native else 1,
          dtypes=[str(arrays[k].dtype) for k in ("input_ids", "input_mask",
                                                  "segment_ids", "label_ids")],
          **_timing_fields(colds, warms))

  with tempfile.TemporaryDirectory(prefix="bench_data_path_") as work_dir:
    output_file = os.path.join(work_dir, "train.tf_record")
    serialize, write, whole = [], [], []
    for _ in range(args.repeats):
      records, wall, _ = _clock(lambda: tfrecord.serialize_int64_examples(arrays))
      serialize.append(wall)
      _, wall, _ = _clock(lambda: tfrecord.write_tfrecord_atomic(records, output_file))
      write.append(wall)
      del records
      tokenizer = tokenization.FullTokenizer(args.vocab_file, do_lower_case=True)
      _, wall, _ = _clock(lambda: processors.file_based_convert_examples_to_features(
          examples, label_list, args.max_seq_length, tokenizer, output_file))
      whole.append(wall)
    size = os.path.getsize(output_file)
  _result(stack="ours", figure="tfrecord_write", rows=len(examples), file_bytes=size,
          serialize_seconds=round(_median(serialize), 4),
          write_seconds=round(_median(write), 4),
          seconds=round(_median(serialize) + _median(write), 4))
  _result(stack="ours", figure="convert_and_write",
          variant="file_based_convert_examples_to_features (cold)",
          rows=len(examples), seconds=round(_median(whole), 4),
          all=[round(w, 4) for w in whole])
  _save_arrays(os.path.join(args.out_dir, "ours.npz"), arrays["input_ids"],
               arrays["input_mask"], arrays["segment_ids"], arrays["label_ids"])


def _hf_variant(name, max_seq_length):
  """Returns fn(tokenizer, texts) -> (input_ids, attention_mask, token_type_ids)."""
  import numpy as np  # pylint: disable=g-import-not-at-top

  def fill(rows, lengths):
    """Right-pads ragged rows (lists) into a zero int64 [N, max_seq_length] array."""
    out = np.zeros((len(rows), max_seq_length), dtype=np.int64)
    flat = np.fromiter(itertools.chain.from_iterable(rows), np.int64,
                       int(lengths.sum()))
    out[np.arange(max_seq_length)[None, :] < lengths[:, None]] = flat
    return out

  def call_max_length_np(tok, texts):
    enc = tok(texts, truncation=True, max_length=max_seq_length,
              padding="max_length", return_tensors="np")
    return enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]

  def call_longest_np_pad(tok, texts):
    enc = tok(texts, truncation=True, max_length=max_seq_length, padding="longest",
              return_tensors="np")
    pad = max_seq_length - enc["input_ids"].shape[1]
    return tuple(np.pad(enc[k], ((0, 0), (0, pad)))
                 for k in ("input_ids", "attention_mask", "token_type_ids"))

  def call_lists_numpy(tok, texts):
    enc = tok(texts, truncation=True, max_length=max_seq_length)
    ids = enc["input_ids"]
    lengths = np.fromiter(map(len, ids), np.int64, len(ids))
    return (fill(ids, lengths), fill(enc["attention_mask"], lengths),
            fill(enc["token_type_ids"], lengths))

  def encode_batch_fast_numpy(tok, texts):
    backend = tok.backend_tokenizer
    backend.enable_truncation(max_length=max_seq_length)
    backend.no_padding()
    encodings = backend.encode_batch_fast(texts)
    ids = [e.ids for e in encodings]
    lengths = np.fromiter(map(len, ids), np.int64, len(ids))
    mask = np.zeros((len(ids), max_seq_length), dtype=np.int64)
    np.less(np.arange(max_seq_length)[None, :], lengths[:, None], out=mask,
            casting="unsafe")
    return fill(ids, lengths), mask, np.zeros_like(mask)

  return locals()[name]


def worker_hf(args):
  """Hugging Face: csv read, BertTokenizerFast from vocab.txt, each variant."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tokenizers  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top

  stack = "hf" if args.worker == "hf" else "hf_1thread"
  threads = 1 if stack == "hf_1thread" else os.cpu_count()
  path = os.path.join(args.data_dir, "glue", "SST-2", "train.tsv")

  def read():
    with open(path, encoding="utf-8", newline="") as f:
      rows = list(csv.reader(f, delimiter="\t", quotechar=None))[1:]
    return [r[0] for r in rows], [r[1] for r in rows]

  (texts, labels), read_s, _ = _clock(read)
  label_map = {label: i for i, label in enumerate(SST2_LABELS)}
  _result(stack=stack, figure="read", seconds=round(read_s, 4), rows=len(texts),
          tokenizers=tokenizers.__version__, transformers=transformers.__version__)

  def build():
    return transformers.BertTokenizerFast(vocab_file=args.vocab_file,
                                          do_lower_case=True)

  reference = None
  for name in args.hf_variants.split(","):
    variant = _hf_variant(name, args.max_seq_length)

    def convert(tok, variant=variant):
      ids, mask, types = variant(tok, texts)
      return ids, mask, types, np.array([label_map[x] for x in labels], np.int64)

    colds, warms, builds, arrays = [], [], [], None
    for _ in range(args.repeats):
      tok, build_s, _ = _clock(build)
      builds.append(build_s)
      arrays, wall, cpu = _clock(lambda tok=tok: convert(tok))
      colds.append((wall, cpu))
      _, wall, cpu = _clock(lambda tok=tok: convert(tok))
      warms.append((wall, cpu))
    if reference is None:
      reference = arrays
      _save_arrays(os.path.join(args.out_dir, f"{stack}.npz"), *arrays)
    same = all(a.shape == r.shape and np.array_equal(a, r)
               for a, r in zip(arrays, reference))
    _result(stack=stack, figure="convert", variant=name, rows=len(texts),
            threads=threads, same_arrays_as_first_variant=bool(same),
            tokenizer_build_seconds=round(_median(builds), 4),
            dtypes=[str(a.dtype) for a in arrays], **_timing_fields(colds, warms))


WORKERS = {"ours": worker_ours, "hf": worker_hf, "hf_1thread": worker_hf}


# -------------------------------------------------------------------- comparison
def compare(out_dir, data_dir, vocab_file, stacks, show):
  """Compares the arrays of this project and Hugging Face row by row.

  Returns:
    list of result dicts (figure=ids_compared, differing_row).
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  hf_stack = next((s for s in stacks if s.startswith("hf")), None)
  if "ours" not in stacks or hf_stack is None:
    return []
  ours = np.load(os.path.join(out_dir, "ours.npz"))
  hf = np.load(os.path.join(out_dir, f"{hf_stack}.npz"))
  differ = {}
  for key in ("input_ids", "input_mask", "segment_ids"):
    differ[key] = np.flatnonzero((ours[key] != hf[key]).any(axis=1))
  label_differ = int((ours["label_ids"] != hf["label_ids"]).sum())
  results = [dict(figure="ids_compared", against=hf_stack, rows=len(ours["input_ids"]),
                  rows_input_ids_differ=len(differ["input_ids"]),
                  rows_input_mask_differ=len(differ["input_mask"]),
                  rows_segment_ids_differ=len(differ["segment_ids"]),
                  label_ids_differ=label_differ)]
  if len(differ["input_ids"]):
    with open(vocab_file, encoding="utf-8") as f:
      vocab = [line.rstrip("\n").strip() for line in f]
    with open(os.path.join(data_dir, "glue", "SST-2", "train.tsv"), encoding="utf-8",
              newline="") as f:
      texts = [r[0] for r in list(csv.reader(f, delimiter="\t", quotechar=None))[1:]]
    for row in differ["input_ids"][:show]:
      def tokens(ids):
        return [vocab[i] for i in ids[ids != 0]]
      results.append(dict(figure="differing_row", row=int(row), text=texts[row],
                          ours=tokens(ours["input_ids"][row]),
                          hf=tokens(hf["input_ids"][row])))
  return results


def machine():
  """The CPU model and core count, for the record."""
  model = None
  if os.path.exists("/proc/cpuinfo"):
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      model = next((line.split(":", 1)[1].strip() for line in f
                    if line.startswith("model name")), None)
  return dict(figure="machine", cpu=model, cores=os.cpu_count(),
              python=sys.version.split()[0])


def ratios(results):
  """The ratio figures: Hugging Face seconds over this project's seconds."""
  ours = next((r for r in results if r.get("stack") == "ours" and
               r.get("figure") == "convert"), None)
  peers = [r for r in results if r.get("stack", "").startswith("hf") and
           r.get("figure") == "convert"]
  if ours is None or not peers:
    return []
  out = []
  for peer in peers:
    out.append(dict(figure="ratio", ours="convert_examples_to_arrays",
                    peer=f"{peer['stack']}:{peer['variant']}",
                    cold=round(peer["cold_seconds"] / ours["cold_seconds"], 2),
                    warm=round(peer["warm_seconds"] / ours["warm_seconds"], 2)))
  python_path = next((r for r in results if r.get("stack") == "ours" and
                      r.get("figure") == "convert_python_tokenizer"), None)
  if python_path is not None:
    out.append(dict(figure="ratio", ours="convert_examples_to_arrays",
                    peer="ours without the C++ tokenizer",
                    cold=round(python_path["cold_seconds"] / ours["cold_seconds"], 2),
                    warm=round(python_path["warm_seconds"] / ours["warm_seconds"], 2)))
  same = [p for p in peers if p["same_arrays_as_first_variant"]]
  fastest = min(same, key=lambda p: p["cold_seconds"])
  ratio = fastest["cold_seconds"] / ours["cold_seconds"]
  fastest_name = f"{fastest['stack']}:{fastest['variant']}"
  out.append(dict(figure="headline_ratio",
                  ours_cold_seconds=ours["cold_seconds"],
                  fastest_hf=fastest_name,
                  fastest_hf_cold_seconds=fastest["cold_seconds"],
                  ours_over_fastest_hf=round(ratio, 2), target=5.0,
                  target_met=bool(ratio >= 5.0)))

  def seconds(stack, figure):
    return next((r["seconds"] for r in results
                 if r.get("stack") == stack and r.get("figure") == figure), None)

  # The same comparison read the other ways: with each stack's TSV reading, and
  # with this project's TFRecord writing (which the Hugging Face path does not do).
  ours_read, peer_read = seconds("ours", "read"), seconds(fastest["stack"], "read")
  written = seconds("ours", "convert_and_write")
  if ours_read is not None and peer_read is not None:
    out.append(dict(figure="ratio_including_read", peer=fastest_name,
                    ours_seconds=round(ours_read + ours["cold_seconds"], 4),
                    peer_seconds=round(peer_read + fastest["cold_seconds"], 4),
                    ratio=round((peer_read + fastest["cold_seconds"]) /
                                (ours_read + ours["cold_seconds"]), 2)))
  if written is not None:
    out.append(dict(figure="ratio_including_tfrecord_write", peer=fastest_name,
                    ours_seconds=written, peer_seconds=fastest["cold_seconds"],
                    ratio=round(fastest["cold_seconds"] / written, 2)))
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--data_dir", default=os.path.join(ROOT, "..", "shared", "data"))
  parser.add_argument("--vocab_file", default=None)
  parser.add_argument("--max_seq_length", type=int, default=128)
  parser.add_argument("--repeats", type=int, default=3,
                      help="cold runs (each with a fresh tokenizer) and warm runs")
  parser.add_argument("--stacks", default="ours,hf,hf_1thread")
  parser.add_argument("--hf_variants", default=",".join(HF_VARIANTS))
  parser.add_argument("--hf_1thread_variants", default="encode_batch_fast_numpy",
                      help="variants run again with TOKENIZERS_PARALLELISM=false")
  parser.add_argument("--show_differences", type=int, default=3)
  parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
  parser.add_argument("--out_dir", help=argparse.SUPPRESS)
  args = parser.parse_args()
  args.data_dir = os.path.abspath(args.data_dir)
  args.vocab_file = os.path.abspath(args.vocab_file or bench_common.default_vocab_file())
  if args.worker:
    WORKERS[args.worker](args)
    return 0
  for name in args.hf_variants.split(",") + args.hf_1thread_variants.split(","):
    if name not in HF_VARIANTS:
      parser.error(f"unknown Hugging Face variant {name!r}; expected one of "
                   f"{', '.join(HF_VARIANTS)}")
  stacks = args.stacks.split(",")
  if any(s.startswith("hf") for s in stacks) and not os.path.exists(BENCH_PYTHON):
    print(f"{BENCH_PYTHON} is missing: run `bash bench/setup_bench_env.sh` first "
          "(transformers + tokenizers, kept out of the project's .venv)",
          file=sys.stderr)
    return 1

  print(json.dumps(machine()), flush=True)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
  env.pop("TOKENIZERS_PARALLELISM", None)
  results, failed = [], False
  with tempfile.TemporaryDirectory(prefix="bench_data_path_") as out_dir:
    for stack in stacks:
      python = PROJECT_PYTHON if stack == "ours" else BENCH_PYTHON
      variants = args.hf_1thread_variants if stack == "hf_1thread" else args.hf_variants
      cmd = [python, os.path.abspath(__file__), "--worker", stack, "--out_dir", out_dir,
             "--data_dir", args.data_dir, "--vocab_file", args.vocab_file,
             "--max_seq_length", str(args.max_seq_length),
             "--repeats", str(args.repeats), "--hf_variants", variants]
      stack_env = dict(env)
      if stack == "hf_1thread":
        stack_env["TOKENIZERS_PARALLELISM"] = "false"
      proc = subprocess.run(cmd, capture_output=True, text=True, env=stack_env,
                            cwd=ROOT)
      lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
      for line in lines:
        results.append(json.loads(line[len("RESULT "):]))
        print(json.dumps(results[-1]), flush=True)
      if proc.returncode != 0:
        failed = True
        print(json.dumps({"stack": stack,
                          "error": proc.stderr.strip().splitlines()[-3:]}), flush=True)
    if not failed:
      for record in compare(out_dir, args.data_dir, args.vocab_file, stacks,
                            args.show_differences) + ratios(results):
        print(json.dumps(record), flush=True)
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
