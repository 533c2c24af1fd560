"""bert-serving directories in the real bert-serving-server's graph code.

The server (PyPI bert-serving-server 1.10.0, installed from requirements.lock) builds
and freezes its graph in tests/bert_serving_graph.py, a subprocess, exactly as
`bert-serving-start -model_dir DIR` does, and its vectors are compared with this
project's encoder on the same weights.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from modeling import BertClassifier, BertConfig, BertModel
from modeling import checkpoint as ckpt_lib
from modeling import convert
from modeling import export
from test_convert import write_tiny_hf_dir

PROJECT_ROOT = Path(__file__).resolve().parents[1]
VOCAB_SIZE = 40


def _run_server_graph(model_dir, inputs, tmp_path):
  """The server's vectors per pooling strategy, or the CompletedProcess on failure."""
  inputs_path, out_path = tmp_path / "inputs.npz", tmp_path / "served.json"
  np.savez(inputs_path, **inputs)
  env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2",
             CUDA_VISIBLE_DEVICES="")
  proc = subprocess.run(
      [sys.executable, str(PROJECT_ROOT / "tests" / "bert_serving_graph.py"),
       str(model_dir), str(inputs_path), str(out_path)],
      capture_output=True, text=True, env=env, cwd=PROJECT_ROOT, timeout=600)
  if proc.returncode != 0:
    return proc
  return json.loads(out_path.read_text())


def _inputs(vocab_size, seq_length=7):
  rng = np.random.RandomState(4)
  ids = rng.randint(1, vocab_size, size=(3, seq_length)).astype(np.int32)
  mask = np.ones_like(ids)
  mask[1, 4:] = 0  # padding on two rows
  mask[2, 2:] = 0
  segments = np.zeros_like(ids)
  segments[0, 3:] = 1
  return {"input_ids": ids * mask, "input_mask": mask, "segment_ids": segments}


def _expected(bert, inputs):
  """The project's pooled output and masked mean of the last layer."""
  out = bert(tf.constant(inputs["input_ids"]), tf.constant(inputs["input_mask"]),
             tf.constant(inputs["segment_ids"]))
  mask = inputs["input_mask"][:, :, None].astype(np.float32)
  mean = (out.sequence_output.numpy() * mask).sum(1) / (mask.sum(1) + 1e-10)
  return {"CLS_POOLED": out.pooled_output.numpy(), "REDUCE_MEAN": mean}


def _exported_classifier(tmp_path, hidden_act):
  """A tiny classifier with O(1) activations, exported for bert-serving."""
  config = BertConfig(vocab_size=VOCAB_SIZE, hidden_size=32, num_hidden_layers=2,
                      num_attention_heads=4, intermediate_size=64,
                      hidden_act=hidden_act, max_position_embeddings=16,
                      type_vocab_size=2, initializer_range=0.3)
  tf.random.set_seed(1)
  model = BertClassifier(config, num_labels=3)
  vocab = tmp_path / "vocab.txt"
  vocab.write_text("".join(f"tok{i}\n" for i in range(VOCAB_SIZE)))
  directory = tmp_path / f"served_{hidden_act}"
  export.export_bert_serving_dir(model, config, str(vocab), str(directory))
  return model, directory


def _check_served(served, expected, atol):
  for strategy, want in expected.items():
    result = served[strategy]
    # Every variable of the server's graph came from the checkpoint.
    assert result["initialized"] == result["variables"]
    assert len(result["variables"]) == 5 + 2 * 16 + 2
    np.testing.assert_allclose(np.array(result["vectors"]), want, atol=atol,
                               err_msg=strategy)


def test_real_server_serves_an_erf_gelu_export_exactly(tmp_path):
  model, directory = _exported_classifier(tmp_path, "gelu_exact")
  written = json.loads((directory / "bert_config.json").read_text())
  assert written["hidden_act"] == "gelu" and written["gelu_approximate"] is False
  assert BertConfig.from_dict(written).hidden_act == "gelu_exact"
  inputs = _inputs(VOCAB_SIZE)
  served = _run_server_graph(directory, inputs, tmp_path)
  assert isinstance(served, dict), served.stderr[-3000:]
  _check_served(served, _expected(model.bert, inputs), atol=2e-5)


def test_real_server_serves_a_tanh_gelu_export_with_its_erf_gelu(tmp_path):
  # The server has no tanh-approximation GELU: it runs the erf form, close to but
  # not equal to the model's own function.
  model, directory = _exported_classifier(tmp_path, "gelu_new")
  written = json.loads((directory / "bert_config.json").read_text())
  assert written["hidden_act"] == "gelu" and "gelu_approximate" not in written
  inputs = _inputs(VOCAB_SIZE)
  served = _run_server_graph(directory, inputs, tmp_path)
  assert isinstance(served, dict), served.stderr[-3000:]
  expected = _expected(model.bert, inputs)
  _check_served(served, expected, atol=5e-3)
  assert np.max(np.abs(np.array(served["REDUCE_MEAN"]["vectors"]) -
                       expected["REDUCE_MEAN"])) > 1e-6


def test_real_server_serves_a_converted_hugging_face_checkpoint(tmp_path):
  hf_dir, bert_dir = tmp_path / "hf", tmp_path / "bert"
  write_tiny_hf_dir(hf_dir)  # Hugging Face "gelu": the erf form
  convert.hf_to_bert(str(hf_dir), str(bert_dir))
  config = BertConfig.from_json_file(bert_dir / "bert_config.json")
  assert config.hidden_act == "gelu_exact"
  bert = BertModel(config)
  ckpt_lib.load_init_checkpoint(bert.named_variables(), str(bert_dir))
  inputs = _inputs(config.vocab_size)
  served = _run_server_graph(bert_dir, inputs, tmp_path)
  assert isinstance(served, dict), served.stderr[-3000:]
  # The tiny model's unit-normal weights make its activations large: compare
  # relative to them.
  for strategy, want in _expected(bert, inputs).items():
    got = np.array(served[strategy]["vectors"])
    assert served[strategy]["initialized"] == served[strategy]["variables"]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max(),
                               err_msg=strategy)


def test_check_refuses_what_the_server_refuses(tmp_path):
  _, directory = _exported_classifier(tmp_path, "gelu_exact")
  config_path = directory / "bert_config.json"
  written = json.loads(config_path.read_text())
  written.pop("gelu_approximate")
  written["hidden_act"] = "gelu_exact"  # what this project wrote before
  config_path.write_text(json.dumps(written))
  with pytest.raises(export.ExportError, match="hidden_act 'gelu_exact', which "
                     "bert-serving-server refuses"):
    export.verify_bert_serving_dir(directory)
  failed = _run_server_graph(directory, _inputs(VOCAB_SIZE), tmp_path)
  assert not isinstance(failed, dict)
  assert "Unsupported activation: gelu_exact" in failed.stderr
