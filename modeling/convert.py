"""Conversion between Hugging Face BERT directories and original BERT checkpoints.

Hugging Face: config.json + model.safetensors (or pytorch_model.bin) + vocab.txt, with
names like `encoder.layer.0.attention.self.query.weight` ([out, in]).
Original: bert_config.json + bert_model.ckpt.{index,data-00000-of-00001} + vocab.txt,
with names like `bert/encoder/layer_0/attention/self/query/kernel` ([in, out]).
"""

import json
import os
import re
import shutil
from typing import Dict, List, NamedTuple

import numpy as np

from modeling import checkpoint as checkpoint_lib
from modeling.config import BertConfig

# HF activation name -> BertConfig.hidden_act (in memory: "gelu_exact" is the erf
# form, written to files as "gelu" with "gelu_approximate": false; see
# modeling.config.GELU_APPROXIMATE_KEY). HF "gelu" is the exact erf form.
HF_TO_BERT_ACT = {"gelu": "gelu_exact", "gelu_new": "gelu", "gelu_pytorch_tanh": "gelu",
                  "relu": "relu", "tanh": "tanh"}
BERT_TO_HF_ACT = {"gelu": "gelu_new", "gelu_new": "gelu_new", "gelu_exact": "gelu",
                  "relu": "relu", "tanh": "tanh"}

_CONFIG_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                "intermediate_size", "hidden_act", "hidden_dropout_prob",
                "attention_probs_dropout_prob", "max_position_embeddings",
                "type_vocab_size", "initializer_range")


class ConversionError(ValueError):
  """The input directory cannot be converted."""


class ConversionReport(NamedTuple):
  """Result of a conversion.

  output_dir: the directory written.
  converted: names written (in the output's naming).
  ignored: input names that were not converted (heads, buffers, optimizer state).
  config: the output config as a dict.
  """
  output_dir: str
  converted: List[str]
  ignored: List[str]
  config: Dict


def _hf_name_to_bert(name):
  """Returns (original name, transpose?) for an HF encoder weight, or None."""
  if name.startswith("bert."):
    name = name[len("bert."):]
  m = re.fullmatch(r"embeddings\.(word|position|token_type)_embeddings\.weight", name)
  if m:
    return "bert/embeddings/%s_embeddings" % m.group(1), False
  m = re.fullmatch(r"(embeddings|encoder\.layer\.\d+\.(?:attention\.output|output)|"
                   r")\.?LayerNorm\.(weight|gamma|bias|beta)", name)
  if m and m.group(1):
    path = re.sub(r"encoder\.layer\.(\d+)", r"encoder.layer_\1", m.group(1))
    leaf = "gamma" if m.group(2) in ("weight", "gamma") else "beta"
    return "bert/%s/LayerNorm/%s" % (path.replace(".", "/"), leaf), False
  m = re.fullmatch(r"encoder\.layer\.(\d+)\.(attention\.self\.(?:query|key|value)|"
                   r"attention\.output\.dense|intermediate\.dense|output\.dense)\."
                   r"(weight|bias)", name)
  if m:
    leaf = "kernel" if m.group(3) == "weight" else "bias"
    return ("bert/encoder/layer_%s/%s/%s" % (m.group(1), m.group(2).replace(".", "/"),
                                             leaf), leaf == "kernel")
  m = re.fullmatch(r"pooler\.dense\.(weight|bias)", name)
  if m:
    leaf = "kernel" if m.group(1) == "weight" else "bias"
    return "bert/pooler/dense/%s" % leaf, leaf == "kernel"
  return None


def _bert_name_to_hf(name):
  """Returns (HF name, transpose?) for an original encoder variable, or None."""
  m = re.fullmatch(r"bert/embeddings/(word|position|token_type)_embeddings", name)
  if m:
    return "embeddings.%s_embeddings.weight" % m.group(1), False
  m = re.fullmatch(r"bert/(embeddings|encoder/layer_\d+/(?:attention/output|output))/"
                   r"LayerNorm/(gamma|beta)", name)
  if m:
    path = re.sub(r"layer_(\d+)", r"layer.\1", m.group(1)).replace("/", ".")
    return "%s.LayerNorm.%s" % (path, "weight" if m.group(2) == "gamma" else "bias"), \
        False
  m = re.fullmatch(r"bert/encoder/layer_(\d+)/(attention/self/(?:query|key|value)|"
                   r"attention/output/dense|intermediate/dense|output/dense)/"
                   r"(kernel|bias)", name)
  if m:
    leaf = "weight" if m.group(3) == "kernel" else "bias"
    return ("encoder.layer.%s.%s.%s" % (m.group(1), m.group(2).replace("/", "."), leaf),
            leaf == "weight")
  m = re.fullmatch(r"bert/pooler/dense/(kernel|bias)", name)
  if m:
    leaf = "weight" if m.group(1) == "kernel" else "bias"
    return "pooler.dense.%s" % leaf, leaf == "weight"
  return None


def hf_config_to_bert(hf_config, source="config.json"):
  """Maps a Hugging Face BERT config dict to an original BertConfig.

  Args:
    hf_config: dict from config.json.
    source: file name for error messages.

  Returns:
    BertConfig with a faithful hidden_act ("gelu_exact" for HF "gelu").

  Raises:
    ConversionError: on a non-BERT architecture detail the original cannot express.
  """
  act = hf_config.get("hidden_act", "gelu")
  if act not in HF_TO_BERT_ACT:
    raise ConversionError("%s: hidden_act %r has no original BERT equivalent "
                          "(expected one of %s)" % (source, act,
                                                    ", ".join(HF_TO_BERT_ACT)))
  pos_type = hf_config.get("position_embedding_type", "absolute")
  if pos_type != "absolute":
    raise ConversionError("%s: position_embedding_type %r is not supported (the "
                          "original BERT uses absolute positions)" % (source, pos_type))
  eps = hf_config.get("layer_norm_eps", 1e-12)
  if abs(float(eps) - 1e-12) > 1e-15:
    raise ConversionError("%s: layer_norm_eps %r differs from the original BERT's fixed "
                          "1e-12" % (source, eps))
  fields = {k: hf_config[k] for k in _CONFIG_KEYS if k in hf_config}
  fields["hidden_act"] = HF_TO_BERT_ACT[act]
  try:
    config = BertConfig.from_dict(fields, source=source)
    config.validate()
  except ValueError as e:
    raise ConversionError(str(e)) from e
  return config


def bert_config_to_hf(config):
  """Maps a BertConfig to a Hugging Face BERT config dict.

  Args:
    config: BertConfig.

  Returns:
    dict for config.json.
  """
  out = {k: getattr(config, k) for k in _CONFIG_KEYS}
  out["hidden_act"] = BERT_TO_HF_ACT[config.hidden_act]
  out.update({"architectures": ["BertModel"], "model_type": "bert",
              "layer_norm_eps": 1e-12, "position_embedding_type": "absolute",
              "pad_token_id": 0})
  return dict(sorted(out.items()))


def _read_hf_weights(hf_dir):
  st_path = os.path.join(hf_dir, "model.safetensors")
  bin_path = os.path.join(hf_dir, "pytorch_model.bin")
  if os.path.isfile(st_path):
    from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
    return load_file(st_path), st_path
  if os.path.isfile(bin_path):
    try:
      import torch  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise ConversionError(
          "%s: reading pytorch_model.bin needs PyTorch, which is not installed. "
          "Install the CPU build (pip install torch --index-url "
          "https://download.pytorch.org/whl/cpu) or convert the file to "
          "model.safetensors first." % bin_path) from e
    state = torch.load(bin_path, map_location="cpu", weights_only=True)
    return {k: v.numpy() for k, v in state.items()}, bin_path
  raise ConversionError("%s: no model.safetensors or pytorch_model.bin found" % hf_dir)


def _require_file(directory, name):
  path = os.path.join(directory, name)
  if not os.path.isfile(path):
    raise ConversionError("%s: missing %s" % (directory, name))
  return path


class _AtomicOutputDir(object):
  """Writes into a temporary sibling directory, renamed to the target on success."""

  def __init__(self, output_dir):
    self.output_dir = os.path.abspath(output_dir)

  def __enter__(self):
    if os.path.exists(self.output_dir) and os.listdir(self.output_dir):
      raise ConversionError("%s: output directory exists and is not empty"
                            % self.output_dir)
    parent = os.path.dirname(self.output_dir)
    os.makedirs(parent, exist_ok=True)
    # mkdir gives the user's umask (mkdtemp would make it 0700, unreadable for a
    # serving process running as another user).
    self.tmp, _ = checkpoint_lib.staging_dirs(parent, os.path.basename(self.output_dir))
    os.mkdir(self.tmp)
    return self.tmp

  def __exit__(self, exc_type, exc, tb):
    if exc_type is not None:
      shutil.rmtree(self.tmp, ignore_errors=True)
      return False
    if os.path.isdir(self.output_dir):
      os.rmdir(self.output_dir)  # empty, checked in __enter__
    os.replace(self.tmp, self.output_dir)
    return False


def _expected_bert_names(config):
  names = ["bert/embeddings/word_embeddings", "bert/embeddings/token_type_embeddings",
           "bert/embeddings/position_embeddings", "bert/embeddings/LayerNorm/gamma",
           "bert/embeddings/LayerNorm/beta", "bert/pooler/dense/kernel",
           "bert/pooler/dense/bias"]
  for i in range(config.num_hidden_layers):
    p = "bert/encoder/layer_%d/" % i
    for part in ("attention/self/query", "attention/self/key", "attention/self/value",
                 "attention/output/dense", "intermediate/dense", "output/dense"):
      names += [p + part + "/kernel", p + part + "/bias"]
    for part in ("attention/output/LayerNorm", "output/LayerNorm"):
      names += [p + part + "/gamma", p + part + "/beta"]
  return names


def hf_to_bert(hf_dir, output_dir):
  """Converts a Hugging Face BERT directory to an original checkpoint directory.

  Args:
    hf_dir: directory with config.json, model.safetensors (or pytorch_model.bin) and
      vocab.txt.
    output_dir: new directory; gets bert_config.json, bert_model.ckpt.* and vocab.txt.

  Returns:
    ConversionReport (converted: original names; ignored: HF names not converted).

  Raises:
    ConversionError: on missing files, unsupported configs or missing weights.
  """
  hf_dir = os.fspath(hf_dir)
  config_path = _require_file(hf_dir, "config.json")
  vocab_path = _require_file(hf_dir, "vocab.txt")
  with open(config_path, encoding="utf-8") as f:
    try:
      hf_config = json.load(f)
    except json.JSONDecodeError as e:
      raise ConversionError("%s: line %d: invalid JSON (%s)" % (config_path, e.lineno,
                                                                 e.msg)) from e
  config = hf_config_to_bert(hf_config, source=config_path)
  state, weights_path = _read_hf_weights(hf_dir)

  arrays, ignored = {}, []
  for name in sorted(state):
    mapped = _hf_name_to_bert(name)
    if mapped is None:
      ignored.append(name)
      continue
    bert_name, transpose = mapped
    value = np.asarray(state[name], dtype=np.float32)
    arrays[bert_name] = np.ascontiguousarray(value.T) if transpose else value
  missing = [n for n in _expected_bert_names(config) if n not in arrays]
  if missing:
    raise ConversionError("%s: %d encoder weight(s) missing, e.g. %s"
                          % (weights_path, len(missing), ", ".join(missing[:5])))
  word = arrays["bert/embeddings/word_embeddings"]
  if list(word.shape) != [config.vocab_size, config.hidden_size]:
    raise ConversionError("%s: word embeddings have shape %s but config.json says "
                          "[vocab_size=%d, hidden_size=%d]" % (
                              weights_path, list(word.shape), config.vocab_size,
                              config.hidden_size))
  order = _expected_bert_names(config)
  with _AtomicOutputDir(output_dir) as tmp:
    checkpoint_lib.save_checkpoint(os.path.join(tmp, "bert_model.ckpt"),
                                   {n: arrays[n] for n in order})
    config.to_json_file(os.path.join(tmp, "bert_config.json"))
    shutil.copyfile(vocab_path, os.path.join(tmp, "vocab.txt"))
  return ConversionReport(os.path.abspath(output_dir), order, ignored, config.to_dict())


def bert_to_hf(bert_dir, output_dir):
  """Converts an original checkpoint directory to a Hugging Face BERT directory.

  Args:
    bert_dir: directory with bert_config.json, vocab.txt and a checkpoint
      (bert_model.ckpt.* or a `checkpoint` state file).
    output_dir: new directory; gets config.json, model.safetensors and vocab.txt.

  Returns:
    ConversionReport (converted: HF names; ignored: checkpoint names not converted,
    e.g. cls/* heads, output_weights, adam slots, global_step).

  Raises:
    ConversionError: on missing files or missing encoder weights.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
  bert_dir = os.fspath(bert_dir)
  config_path = _require_file(bert_dir, "bert_config.json")
  vocab_path = _require_file(bert_dir, "vocab.txt")
  try:
    config = BertConfig.from_json_file(config_path)
    config.validate()
  except ValueError as e:
    raise ConversionError(str(e)) from e
  preferred = os.path.join(bert_dir, "bert_model.ckpt")
  prefix = (preferred if os.path.exists(preferred + ".index")
            else checkpoint_lib.resolve_checkpoint_prefix(bert_dir))
  reader = tf.train.load_checkpoint(prefix)
  names = sorted(reader.get_variable_to_shape_map())
  tensors, ignored = {}, []
  for name in names:
    mapped = _bert_name_to_hf(name)
    if mapped is None:
      ignored.append(name)
      continue
    hf_name, transpose = mapped
    value = np.asarray(reader.get_tensor(name), dtype=np.float32)
    tensors[hf_name] = np.ascontiguousarray(value.T if transpose else value)
  missing = [n for n in _expected_bert_names(config)
             if _bert_name_to_hf(n)[0] not in tensors]
  if missing:
    raise ConversionError("%s: %d encoder variable(s) missing, e.g. %s"
                          % (prefix, len(missing), ", ".join(missing[:5])))
  hf_config = bert_config_to_hf(config)
  with _AtomicOutputDir(output_dir) as tmp:
    save_file(tensors, os.path.join(tmp, "model.safetensors"),
              metadata={"format": "pt"})
    with open(os.path.join(tmp, "config.json"), "w", encoding="utf-8") as f:
      f.write(json.dumps(hf_config, indent=2) + "\n")
    shutil.copyfile(vocab_path, os.path.join(tmp, "vocab.txt"))
  return ConversionReport(os.path.abspath(output_dir), sorted(tensors), ignored,
                          hf_config)
