"""Shared pytest setup: quiet TensorFlow, the project root importable, CPU only."""

import json
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# The kernels the scripts run with (see run_classifier.py).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
  sys.path.insert(0, str(PROJECT_ROOT))


# ------------------------------------------------------------------ slow tests
# Tests marked `slow` (a wheel installed into a new virtual environment, ...) run
# with --slow, as CI does (.ci/run); the default run leaves them out so that it
# stays short. They are deselected, not skipped: pytest's summary counts them.
def pytest_addoption(parser):
  parser.addoption("--slow", action="store_true",
                   help="also run the tests marked slow (CI runs them)")


def pytest_configure(config):
  config.addinivalue_line("markers", "slow: runs only with --slow (several minutes)")


def pytest_collection_modifyitems(config, items):
  if config.getoption("--slow"):
    return
  slow = [item for item in items if item.get_closest_marker("slow")]
  if slow:
    config.hook.pytest_deselected(items=slow)
    items[:] = [item for item in items if not item.get_closest_marker("slow")]


# ------------------------------------------------- an original-format checkpoint
# What Google's run_pretraining.py writes, built here the same way (TF1 graph,
# tf.compat.v1 variables, Saver): the bert/ variables in the original naming, the
# pre-training heads under cls/, an adam_m and adam_v slot per variable and an int64
# global_step, with a .meta graph and no `checkpoint` state file. The names are
# written out from Google's modeling.py layout, not taken from this project's code,
# so tests comparing against them can fail.
ORIGINAL_CONFIG = {
    "attention_probs_dropout_prob": 0.1, "directionality": "bidi",
    "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 4,
    "initializer_range": 0.02,
    "intermediate_size": 16, "max_position_embeddings": 16, "num_attention_heads": 4,
    "num_hidden_layers": 2, "pooler_fc_size": 4, "pooler_num_attention_heads": 4,
    "pooler_num_fc_layers": 3, "pooler_size_per_head": 16,
    "pooler_type": "first_token_transform", "type_vocab_size": 2, "vocab_size": 15}


def _original_variable_shapes(c):
  h, i, v = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
  shapes = {"bert/embeddings/word_embeddings": [v, h],
            "bert/embeddings/token_type_embeddings": [c["type_vocab_size"], h],
            "bert/embeddings/position_embeddings": [c["max_position_embeddings"], h],
            "bert/embeddings/LayerNorm/beta": [h],
            "bert/embeddings/LayerNorm/gamma": [h]}
  for n in range(c["num_hidden_layers"]):
    layer = "bert/encoder/layer_%d/" % n
    for part in ("query", "key", "value"):
      shapes[layer + "attention/self/%s/kernel" % part] = [h, h]
      shapes[layer + "attention/self/%s/bias" % part] = [h]
    shapes[layer + "attention/output/dense/kernel"] = [h, h]
    shapes[layer + "attention/output/dense/bias"] = [h]
    shapes[layer + "attention/output/LayerNorm/beta"] = [h]
    shapes[layer + "attention/output/LayerNorm/gamma"] = [h]
    shapes[layer + "intermediate/dense/kernel"] = [h, i]
    shapes[layer + "intermediate/dense/bias"] = [i]
    shapes[layer + "output/dense/kernel"] = [i, h]
    shapes[layer + "output/dense/bias"] = [h]
    shapes[layer + "output/LayerNorm/beta"] = [h]
    shapes[layer + "output/LayerNorm/gamma"] = [h]
  shapes.update({
      "bert/pooler/dense/kernel": [h, h], "bert/pooler/dense/bias": [h],
      "cls/predictions/transform/dense/kernel": [h, h],
      "cls/predictions/transform/dense/bias": [h],
      "cls/predictions/transform/LayerNorm/beta": [h],
      "cls/predictions/transform/LayerNorm/gamma": [h],
      "cls/predictions/output_bias": [v],
      "cls/seq_relationship/output_weights": [2, h],
      "cls/seq_relationship/output_bias": [2]})
  return shapes


@pytest.fixture(scope="session")
def original_checkpoint_dir(tmp_path_factory):
  """A directory like Google's: bert_model.ckpt.{index,data-*,meta}, config, vocab."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  out = tmp_path_factory.mktemp("original_checkpoint")
  (out / "bert_config.json").write_text(json.dumps(ORIGINAL_CONFIG, indent=2) + "\n")
  vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "cat", "dog",
           "sat", "ran", "on", "mat", "##s", "."]
  (out / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
  with tf.Graph().as_default():
    init = tf.compat.v1.truncated_normal_initializer(stddev=0.02, seed=1)
    for name, shape in _original_variable_shapes(ORIGINAL_CONFIG).items():
      tf.compat.v1.get_variable(
          name, shape, initializer=(tf.compat.v1.ones_initializer()
                                    if name.endswith("gamma") else init))
      for slot in ("adam_m", "adam_v"):
        tf.compat.v1.get_variable(name + "/" + slot, shape, trainable=False,
                                  initializer=tf.compat.v1.zeros_initializer())
    tf.compat.v1.train.get_or_create_global_step()
    saver = tf.compat.v1.train.Saver()
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      saver.save(sess, str(out / "bert_model.ckpt"))
  (out / "checkpoint").unlink()  # Google's released directories have none
  return out
