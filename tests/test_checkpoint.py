"""Tests for modeling.checkpoint: original-format save/load, init and resume."""

import os
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from modeling import BertClassifier, BertConfig, BertModel, BertSquad
from modeling.checkpoint import (CheckpointError, delete_checkpoint,
                                 list_checkpoint_variables, load_init_checkpoint,
                                 restore_checkpoint, save_checkpoint,
                                 update_checkpoint_state)
from modeling.optimization import AdamWeightDecay



def tiny_config():
  return BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2,
                    num_attention_heads=2, intermediate_size=32,
                    max_position_embeddings=32, type_vocab_size=2)


class RecordingLogger(object):

  def __init__(self):
    self.lines = []

  def info(self, msg, *args):
    self.lines.append(msg % args if args else msg)

  warning = info


def test_load_original_checkpoint_reports_unused(original_checkpoint_dir):
  assert original_checkpoint_dir.exists(), (
      "format fixture %s is missing (tests/conftest.py writes it)"
      % original_checkpoint_dir)
  config = BertConfig.from_json_file(original_checkpoint_dir / "bert_config.json")
  model = BertClassifier(config, num_labels=3)
  logger = RecordingLogger()
  report = load_init_checkpoint(
      model.named_variables(), str(original_checkpoint_dir / "bert_model.ckpt"), logger)
  assert report.missing == ["output_weights", "output_bias"]
  assert len(report.loaded) == len(model.named_variables()) - 2
  cls_vars = [n for n in report.unexpected_unused]
  assert cls_vars and all(n.startswith("cls/") for n in cls_vars)
  assert "global_step" in report.expected_unused
  assert any(n.endswith("/adam_m") for n in report.expected_unused)
  assert set(report.unused) == set(report.expected_unused) | set(cls_vars)
  reader = tf.train.load_checkpoint(
      str(original_checkpoint_dir / "bert_model.ckpt"))
  np.testing.assert_array_equal(
      model.named_variables()["bert/pooler/dense/kernel"].numpy(),
      reader.get_tensor("bert/pooler/dense/kernel"))
  assert ("  name = bert/pooler/dense/kernel, shape = [4, 4], *INIT_FROM_CKPT*"
          in logger.lines)
  assert "  name = output_bias, shape = [3]" in logger.lines
  # The directory form finds the single checkpoint in it.
  report2 = load_init_checkpoint(model.named_variables(),
                                 str(original_checkpoint_dir),
                                 logger)
  assert report2.loaded == report.loaded


def test_load_errors(original_checkpoint_dir, tmp_path):
  model = BertModel(tiny_config())
  with pytest.raises(CheckpointError, match=r"looked for .*nothere\.ckpt\.index and "
                     r".*nothere\.ckpt\.data-\*"):
    load_init_checkpoint(model.named_variables(), str(tmp_path / "nothere.ckpt"))
  with pytest.raises(CheckpointError, match="no checkpoint in this directory"):
    load_init_checkpoint(model.named_variables(), str(tmp_path))
  # Shape mismatch names both shapes.
  with pytest.raises(CheckpointError, match=r"word_embeddings has shape \[15, 4\] in "
                     r"the checkpoint but \[50, 16\] in the model"):
    load_init_checkpoint(model.named_variables(), str(original_checkpoint_dir))
  # A checkpoint sharing no name with the model.
  other = {"foo/kernel": tf.Variable(tf.zeros([2]))}
  prefix = save_checkpoint(str(tmp_path / "other.ckpt"), other)
  with pytest.raises(CheckpointError, match="no checkpoint variable matches"):
    load_init_checkpoint(model.named_variables(), prefix)


def test_training_checkpoint_round_trip(tmp_path):
  config = tiny_config()
  model = BertClassifier(config, num_labels=2)
  opt = AdamWeightDecay(0.01)
  opt.build(model.named_variables())
  grads = [tf.ones_like(v) for v in model.named_variables().values()]
  opt.apply_gradients(grads)
  everything = dict(model.named_variables(), **opt.slot_variables())
  prefix = save_checkpoint(str(tmp_path / "model.ckpt-1"), everything)
  update_checkpoint_state(str(tmp_path), prefix, [prefix])
  assert tf.train.latest_checkpoint(str(tmp_path)) == prefix
  assert not [f for f in os.listdir(tmp_path) if f.startswith(".")]

  names = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
  assert "bert/encoder/layer_1/output/LayerNorm/gamma/adam_m" in names
  assert "output_weights/adam_v" in names and "global_step" in names
  assert names["bert/encoder/layer_0/attention/self/query/kernel"] == [16, 16]

  # Resume into fresh objects.
  model2 = BertClassifier(config, num_labels=2)
  opt2 = AdamWeightDecay(0.01)
  opt2.build(model2.named_variables())
  everything2 = dict(model2.named_variables(), **opt2.slot_variables())
  restore_checkpoint(str(tmp_path), everything2)
  for name, var in everything.items():
    np.testing.assert_array_equal(var.numpy(), everything2[name].numpy())
  assert int(opt2.global_step.numpy()) == 1

  # Weights only: no optimizer state.
  weights_prefix = save_checkpoint(str(tmp_path / "weights.ckpt"),
                                   model.named_variables())
  listed = list_checkpoint_variables(weights_prefix)
  assert set(listed) == set(model.named_variables())
  assert not [n for n in listed if "adam" in n or n == "global_step"]

  # Strict restore reports what is missing.
  with pytest.raises(CheckpointError, match=r"2 variable\(s\) missing.*global_step"):
    restore_checkpoint(weights_prefix, {
        "global_step": opt2.global_step,
        "output_bias/adam_m": everything2["output_bias/adam_m"]})

  # Rotating checkpoints.
  prefix2 = save_checkpoint(str(tmp_path / "model.ckpt-2"), everything)
  update_checkpoint_state(str(tmp_path), prefix2, [prefix2])
  delete_checkpoint(prefix)
  assert not [f for f in os.listdir(tmp_path) if f.startswith("model.ckpt-1")]
  assert tf.train.latest_checkpoint(str(tmp_path)) == prefix2


def test_squad_head_initialises_from_classifier_checkpoint(tmp_path):
  classifier = BertClassifier(tiny_config(), num_labels=2)
  prefix = save_checkpoint(str(tmp_path / "c.ckpt"), classifier.named_variables())
  squad = BertSquad(tiny_config())
  report = load_init_checkpoint(squad.named_variables(), prefix, RecordingLogger())
  assert report.missing == ["cls/squad/output_weights", "cls/squad/output_bias"]
  assert report.unused == ["output_bias", "output_weights"]
  assert report.expected_unused == []


def test_load_into_mirrored_variables(original_checkpoint_dir):
  strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
  config = BertConfig.from_json_file(original_checkpoint_dir / "bert_config.json")
  with strategy.scope():
    model = BertModel(config)
  load_init_checkpoint(model.named_variables(), str(original_checkpoint_dir),
                       RecordingLogger())
  reader = tf.train.load_checkpoint(
      str(original_checkpoint_dir / "bert_model.ckpt"))
  np.testing.assert_array_equal(
      model.named_variables()["bert/embeddings/word_embeddings"].numpy(),
      reader.get_tensor("bert/embeddings/word_embeddings"))
