#!/usr/bin/env python3
"""Downloads Google's published BERT checkpoints and the GLUE data (needs internet).

    python scripts/fetch.py checkpoint uncased_L-12_H-768_A-12 --dest checkpoints/
    python scripts/fetch.py checkpoint small --dest checkpoints/   # all 24 small BERTs
    python scripts/fetch.py glue SST-2 --dest data/glue/
    python scripts/fetch.py list

Each checkpoint unpacks to a directory with bert_model.ckpt.*, bert_config.json and
vocab.txt, ready for --init_checkpoint/--bert_config_file/--vocab_file. Without a
network connection every command fails with a clear message and leaves nothing
half-written behind.
"""

import argparse
import csv
import io
import os
import shutil
import sys
import urllib.error
import urllib.request
import uuid
import zipfile

GOOGLE = "https://storage.googleapis.com/bert_models"
CHECKPOINTS = {
    "uncased_L-12_H-768_A-12": f"{GOOGLE}/2018_10_18/uncased_L-12_H-768_A-12.zip",
    "uncased_L-24_H-1024_A-16": f"{GOOGLE}/2018_10_18/uncased_L-24_H-1024_A-16.zip",
    "cased_L-12_H-768_A-12": f"{GOOGLE}/2018_10_18/cased_L-12_H-768_A-12.zip",
    "cased_L-24_H-1024_A-16": f"{GOOGLE}/2018_10_18/cased_L-24_H-1024_A-16.zip",
    "wwm_uncased_L-24_H-1024_A-16": f"{GOOGLE}/2019_05_30/wwm_uncased_L-24_H-1024_A-16.zip",
    "wwm_cased_L-24_H-1024_A-16": f"{GOOGLE}/2019_05_30/wwm_cased_L-24_H-1024_A-16.zip",
    "multi_cased_L-12_H-768_A-12": f"{GOOGLE}/2018_11_23/multi_cased_L-12_H-768_A-12.zip",
    "multilingual_L-12_H-768_A-12": f"{GOOGLE}/2018_11_03/multilingual_L-12_H-768_A-12.zip",
    "chinese_L-12_H-768_A-12": f"{GOOGLE}/2018_11_03/chinese_L-12_H-768_A-12.zip",
}
# The 24 smaller BERT models (Turc et al., 2019): L layers, H hidden, A = H / 64 heads.
for _layers in (2, 4, 6, 8, 10, 12):
  for _hidden in (128, 256, 512, 768):
    _name = f"uncased_L-{_layers}_H-{_hidden}_A-{_hidden // 64}"
    CHECKPOINTS[_name] = f"{GOOGLE}/2020_02_20/{_name}.zip"
SMALL_BERTS = [n for n in CHECKPOINTS if n.startswith("uncased_L-") and "2020" in CHECKPOINTS[n]]

GLUE_BASE = "https://dl.fbaipublicfiles.com/glue/data"
GLUE_TASKS = ["CoLA", "SST-2", "QQP", "STS-B", "MNLI", "QNLI", "RTE", "WNLI", "diagnostic"]
MRPC_TRAIN = "https://dl.fbaipublicfiles.com/senteval/senteval_data/msr_paraphrase_train.txt"
MRPC_TEST = "https://dl.fbaipublicfiles.com/senteval/senteval_data/msr_paraphrase_test.txt"
MRPC_DEV_IDS = ("https://firebasestorage.googleapis.com/v0/b/mtl-sentence-representations."
                "appspot.com/o/data%2Fmrpc_dev_ids.tsv?alt=media&token=ec5c0836-31d5-48f4-"
                "b431-7480817f1adc")


class FetchError(RuntimeError):
  pass


def download(url: str) -> bytes:
  """Returns the body of `url`, or raises FetchError saying why (offline, 404...)."""
  print(f"Downloading {url}", file=sys.stderr)
  try:
    with urllib.request.urlopen(url, timeout=60) as response:
      return response.read()
  except urllib.error.HTTPError as e:
    raise FetchError(f"{url}: HTTP {e.code} {e.reason}") from e
  except (urllib.error.URLError, OSError) as e:
    raise FetchError(
        f"Cannot reach {url} ({getattr(e, 'reason', e)}). This command needs internet "
        "access; on an offline machine, copy the files in by hand instead.") from e


def unpack_zip(data: bytes, target: str) -> None:
  """Extracts a zip to the directory `target`, via a temporary one (never half-written).

  Archives holding a single top-level directory (Google's BERT-Base zips, GLUE's)
  and archives holding bare files (the small BERTs) both end up as `target/<files>`.
  """
  if os.path.exists(target):
    print(f"{target} exists; keeping it", file=sys.stderr)
    return
  parent = os.path.dirname(os.path.abspath(target))
  os.makedirs(parent, exist_ok=True)
  # mkdir gives the user's umask (mkdtemp would make it 0700).
  tmp = os.path.join(parent, f".fetch-{uuid.uuid4().hex}")
  os.mkdir(tmp)
  try:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
      archive.extractall(tmp)
    entries = [e for e in os.listdir(tmp) if not e.startswith("__MACOSX")]
    source = tmp
    if len(entries) == 1 and os.path.isdir(os.path.join(tmp, entries[0])):
      source = os.path.join(tmp, entries[0])
    os.replace(source, target)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


def fetch_checkpoint(name: str, dest: str) -> None:
  names = SMALL_BERTS if name == "small" else [name]
  for n in names:
    if n not in CHECKPOINTS:
      raise FetchError(f"Unknown checkpoint {n!r}; `python scripts/fetch.py list` "
                       "shows the known ones")
    target = os.path.join(dest, n)
    unpack_zip(download(CHECKPOINTS[n]), target)
    print(f"{n}: {target}")


def fetch_mrpc(dest: str) -> None:
  """Builds GLUE's MRPC train/dev/test.tsv as GLUE's own download script does."""
  train_raw = download(MRPC_TRAIN).decode("utf-8-sig").splitlines()
  test_raw = download(MRPC_TEST).decode("utf-8-sig").splitlines()
  dev_ids = {tuple(row) for row in csv.reader(
      download(MRPC_DEV_IDS).decode("utf-8").splitlines(), delimiter="\t")}
  out_dir = os.path.join(dest, "MRPC")
  os.makedirs(out_dir, exist_ok=True)
  header = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
  train_lines, dev_lines = [header], [header]
  for row in train_raw[1:]:
    label, id1, id2, s1, s2 = row.split("\t")
    (dev_lines if (id1, id2) in dev_ids else train_lines).append(
        f"{label}\t{id1}\t{id2}\t{s1}\t{s2}\n")
  test_lines = ["index\t#1 ID\t#2 ID\t#1 String\t#2 String\n"]
  for index, row in enumerate(test_raw[1:]):
    _, id1, id2, s1, s2 = row.split("\t")
    test_lines.append(f"{index}\t{id1}\t{id2}\t{s1}\t{s2}\n")
  for name, lines in (("train.tsv", train_lines), ("dev.tsv", dev_lines),
                      ("test.tsv", test_lines)):
    path = os.path.join(out_dir, name)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
      f.writelines(lines)
    os.replace(path + ".tmp", path)
  print(f"MRPC: {out_dir}")


def fetch_glue(task: str, dest: str) -> None:
  tasks = GLUE_TASKS + ["MRPC"] if task == "all" else [task]
  for t in tasks:
    if t == "MRPC":
      fetch_mrpc(dest)
    elif t in GLUE_TASKS:
      unpack_zip(download(f"{GLUE_BASE}/{t}.zip"), os.path.join(dest, t))
      print(f"{t}: {os.path.join(dest, t)}")
    else:
      raise FetchError(f"Unknown GLUE task {t!r}; known: {', '.join(GLUE_TASKS + ['MRPC'])}")


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest="command", required=True)
  ckpt = sub.add_parser("checkpoint", help="a Google BERT checkpoint, or 'small' for all 24 small BERTs")
  ckpt.add_argument("name")
  ckpt.add_argument("--dest", default="checkpoints")
  glue = sub.add_parser("glue", help="a GLUE task (MRPC, SST-2, CoLA, MNLI, ...) or 'all'")
  glue.add_argument("task")
  glue.add_argument("--dest", default="data/glue")
  sub.add_parser("list", help="list the known checkpoints and GLUE tasks")
  args = parser.parse_args(argv)
  try:
    if args.command == "list":
      print("checkpoints:\n  " + "\n  ".join(CHECKPOINTS) + "\n  small (all 24 small BERTs)")
      print("glue tasks:\n  " + "\n  ".join(GLUE_TASKS + ["MRPC", "all"]))
    elif args.command == "checkpoint":
      fetch_checkpoint(args.name, args.dest)
    else:
      fetch_glue(args.task, args.dest)
  except FetchError as e:
    print(f"fetch.py: error: {e}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
