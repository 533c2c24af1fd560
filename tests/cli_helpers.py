"""Fixtures for the end-to-end CLI tests: a tiny vocab, model config and data set.

Everything here is written by the tests themselves; nothing comes from a public
dataset.
"""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]

LABELS = ["sadness", "joy", "love", "anger", "fear", "surprise"]
# Each label gets its own cue words so a tiny model can learn the task quickly.
CUES = {
    "sadness": ["sad", "lonely", "gloomy", "down"],
    "joy": ["happy", "glad", "cheerful", "great"],
    "love": ["loving", "tender", "fond", "sweet"],
    "anger": ["angry", "furious", "annoyed", "mad"],
    "fear": ["scared", "afraid", "nervous", "worried"],
    "surprise": ["amazed", "shocked", "stunned", "surprised"],
}
FILLER = ["i", "feel", "so", "today", "at", "work", "with", "my", "friends", "and",
          "the", "weather", "is", "very", "really", "about", "this", "it", "was",
          "after", "school", "home", "again", "we", "they", "a", "bit", "too"]


def write_vocab(path: Path) -> Path:
  """A WordPiece vocab covering the fixture sentences (plus a few sub-words)."""
  tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
  tokens += FILLER + [w for words in CUES.values() for w in words]
  tokens += ["##s", "##ed", "##ly", ".", ",", "!"]
  path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
  return path


def write_bert_config(path: Path, vocab_size: int, dropout: float = 0.1,
                      hidden_act: str = "gelu") -> Path:
  config = {
      "vocab_size": vocab_size, "hidden_size": 32, "num_hidden_layers": 2,
      "num_attention_heads": 4, "intermediate_size": 64, "hidden_act": hidden_act,
      "hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout,
      "max_position_embeddings": 64, "type_vocab_size": 2, "initializer_range": 0.02,
  }
  path.write_text(json.dumps(config, indent=2), encoding="utf-8")
  return path


def make_sentence(rng: random.Random, label: str) -> str:
  words = [rng.choice(FILLER) for _ in range(rng.randint(3, 9))]
  words.insert(rng.randint(0, len(words)), rng.choice(CUES[label]))
  return " ".join(words)


def write_emotion_data(data_dir: Path, n_train: int = 96, n_dev: int = 24,
                       n_test: int = 20, seed: int = 0, with_dev: bool = True) -> Path:
  """Writes train.txt / val.txt / test.txt in the Kaggle `text;label` layout."""
  rng = random.Random(seed)
  data_dir.mkdir(parents=True, exist_ok=True)

  def lines(n):
    return [f"{make_sentence(rng, LABELS[i % len(LABELS)])};{LABELS[i % len(LABELS)]}"
            for i in range(n)]

  (data_dir / "train.txt").write_text("\n".join(lines(n_train)) + "\n", encoding="utf-8")
  if with_dev:
    (data_dir / "val.txt").write_text("\n".join(lines(n_dev)) + "\n", encoding="utf-8")
  (data_dir / "test.txt").write_text("\n".join(lines(n_test)) + "\n", encoding="utf-8")
  return data_dir


def write_tiny_setup(tmp_path: Path, dropout: float = 0.1, **data_kwargs):
  """Writes vocab, config and data; returns a dict of their paths."""
  vocab = write_vocab(tmp_path / "vocab.txt")
  vocab_size = len(vocab.read_text(encoding="utf-8").split())
  config = write_bert_config(tmp_path / "bert_config.json", vocab_size, dropout)
  data = write_emotion_data(tmp_path / "data", **data_kwargs)
  return {"vocab": vocab, "config": config, "data": data}


def classifier_args(setup, output_dir, *extra):
  return [
      "--task_name=emotion", f"--data_dir={setup['data']}",
      f"--vocab_file={setup['vocab']}", f"--bert_config_file={setup['config']}",
      f"--output_dir={output_dir}", "--max_seq_length=16", *extra,
  ]


def cli_env(**extra):
  env = dict(os.environ)
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  env["CUDA_VISIBLE_DEVICES"] = ""
  env["PYTHONHASHSEED"] = "0"
  env.update(extra)
  return env


def run_script(script: str, args, timeout: int = 300, env=None, check: bool = True):
  """Runs a project script with the current interpreter; returns CompletedProcess."""
  result = subprocess.run(
      [sys.executable, str(PROJECT_ROOT / script), *args], capture_output=True,
      text=True, timeout=timeout, env=env or cli_env(), cwd=str(PROJECT_ROOT))
  if check and result.returncode != 0:
    raise AssertionError(f"{script} failed ({result.returncode}):\n"
                         f"{result.stderr[-6000:]}")
  return result


def read_eval_results(path: Path) -> dict:
  result = {}
  for line in path.read_text(encoding="utf-8").splitlines():
    key, value = line.split(" = ", 1)
    result[key] = value
  return result


def checkpoint_arrays(prefix) -> dict:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  reader = tf.train.load_checkpoint(str(prefix))
  return {name: reader.get_tensor(name)
          for name in reader.get_variable_to_shape_map()}
