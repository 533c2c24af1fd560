# coding=utf-8
"""Export of fine-tuned models: SavedModels and bert-as-service model directories.

SavedModel (export_classifier_saved_model, export_squad_saved_model): a tf.Module
holding a fresh copy of the model's float32 variables and inference-only functions
(no dropout, no optimizer slots), saved under a temporary name beside export_dir and
renamed into place. An existing export_dir is replaced only when it is empty or a
previous export of this module (it holds EXPORT_INFO_FILE); anything else is refused,
so a wrong path never deletes a user's files.

Classifier signatures:
  serving_default    int32 input_ids, input_mask, segment_ids [batch, seq]
                     -> probabilities, logits [batch, num_labels] float32
  serving_text       string text_a [batch]
                     -> probabilities, logits, label_ids int32 [batch], labels string
  serving_text_pair  string text_a, text_b [batch] (an empty text_b means a single
                     sentence, as in the original) -> the same outputs
  wordpiece_ids      string text [batch] -> token_ids int32 [total], row_lengths
                     int32 [batch] (untruncated word pieces, for exactness checks)
The text signatures tokenize in the graph with exactly the ids of
tokenization.FullTokenizer (processors.text_encoder); the vocab is an asset of the
SavedModel. For SentencePiece models the text signatures are left out (logged).

A 16-bit export (precision bfloat16 or float16) still saves every float32 variable,
and its serving graph holds the encoder layers' kernels as constants in that dtype:
TensorFlow's CPU kernels keep constant weights in the matrix units' own layout
(modeling.encoder._GraphConstant), which made a loaded BERT-Small bfloat16 export
serve batches of 32 about 1.5x faster (bench/RESULTS.md, session 4). The price is
memory while TensorFlow optimises the graph at its first call (1.3-3.4 GB per
traced BERT-Base graph in the benchmark).

bert-as-service directory (export_bert_serving_dir): bert_model.ckpt.{index,data},
bert_config.json and vocab.txt, weights only, in the original variable names, checked
by verify_bert_serving_dir.
"""

import json
import os
import shutil
import tempfile

from absl import logging
import tensorflow as tf

from modeling import checkpoint as ckpt_lib
from modeling import heads

EXPORT_INFO_FILE = "bert_export.json"
PRECISIONS = {"float32": tf.float32, "bfloat16": tf.bfloat16, "float16": tf.float16}
BERT_SERVING_PREFIX = "bert_model.ckpt"
# bert-serving-server 1.10's modeling.get_activation: these names (lower-cased) or
# an empty value (no activation); anything else stops the server.
BERT_SERVING_ACTIVATIONS = ("linear", "relu", "gelu", "tanh")


class ExportError(ValueError):
  """An export cannot be written or an exported directory is not what was expected."""


def _compute_dtype(precision):
  if precision not in PRECISIONS:
    raise ExportError(f"precision must be one of {', '.join(PRECISIONS)}, got "
                      f"{precision!r}")
  return PRECISIONS[precision]


def _copy_weights(source, target):
  """Assigns every variable of `source` to the same-named variable of `target`."""
  src = source.named_variables()
  for name, var in target.named_variables().items():
    if name not in src:
      raise ExportError(f"model has no variable {name}; cannot export")
    # read_value() of a mirrored variable in cross-replica context: the primary copy.
    var.assign(tf.cast(src[name].read_value(), tf.float32))


def _ids_signature():
  spec = tf.TensorSpec([None, None], tf.int32)
  return [spec, spec, spec]


def _check_export_dir(export_dir):
  """Raises unless export_dir is absent, empty, or a previous export of ours."""
  if not tf.io.gfile.exists(export_dir):
    return
  if not tf.io.gfile.isdir(export_dir):
    raise ExportError(f"{export_dir} exists and is not a directory")
  contents = tf.io.gfile.listdir(export_dir)
  if contents and EXPORT_INFO_FILE not in [c.rstrip("/") for c in contents]:
    raise ExportError(
        f"{export_dir} is not empty and is not a previous export (no "
        f"{EXPORT_INFO_FILE} there): refusing to overwrite it; pass an empty or new "
        "directory")


def _check_bert_serving_dir(output_dir):
  """Raises unless output_dir is absent, empty, or a previous bert-serving export."""
  if os.path.isdir(output_dir) and os.listdir(output_dir) and not os.path.exists(
      os.path.join(output_dir, BERT_SERVING_PREFIX + ".index")):
    raise ExportError(f"{output_dir} is not empty and is not a previous bert-serving "
                      f"export (no {BERT_SERVING_PREFIX}.index): refusing to "
                      "overwrite it; pass an empty or new directory")
  if os.path.exists(output_dir) and not os.path.isdir(output_dir):
    raise ExportError(f"{output_dir} exists and is not a directory")


def check_export_targets(export_dir=None, bert_serving_dir=None,
                         spm_model_file=None):
  """Checks, before any work, that the exports asked for can be written.

  Args:
    export_dir: SavedModel directory or None.
    bert_serving_dir: bert-as-service directory or None.
    spm_model_file: the SentencePiece model the run tokenizes with, if any.

  Raises:
    ExportError: a directory holds files that are not a previous export, or a
      bert-as-service directory is asked for a SentencePiece model (bert-serving
      only tokenizes with a WordPiece vocab.txt).
  """
  if export_dir:
    _check_export_dir(os.fspath(export_dir).rstrip("/"))
  if bert_serving_dir:
    if spm_model_file:
      raise ExportError(
          f"a bert-as-service directory needs a WordPiece vocab.txt, but this model "
          f"tokenizes with the SentencePiece model {spm_model_file}: bert-serving "
          "cannot load it; export a SavedModel (--export_dir) instead")
    _check_bert_serving_dir(os.fspath(bert_serving_dir).rstrip("/"))


def export_classifier(model, bert_config, label_list, *, export_dir=None,
                      bert_serving_dir=None, vocab_file=None, spm_model_file=None,
                      do_lower_case=True, max_seq_length=128, precision="float32"):
  """Writes the exports asked for of a fine-tuned classifier.

  Args:
    model: a modeling.heads.BertClassifier holding the weights to export.
    bert_config: its BertConfig.
    label_list: label names in label-id order.
    export_dir: SavedModel directory, or None.
    bert_serving_dir: bert-as-service directory, or None.
    vocab_file: the WordPiece vocab.txt (None with spm_model_file).
    spm_model_file: a SentencePiece model instead of vocab_file.
    do_lower_case: the casing of the fine-tuning run.
    max_seq_length: truncation length of the raw-text signatures.
    precision: matmul dtype of the SavedModel.
  """
  check_export_targets(export_dir, bert_serving_dir, spm_model_file)
  if export_dir:
    export_classifier_saved_model(
        model, export_dir, label_list,
        vocab_file=None if spm_model_file else vocab_file,
        do_lower_case=do_lower_case, spm_model_file=spm_model_file,
        max_seq_length=max_seq_length, precision=precision)
  if bert_serving_dir:
    export_bert_serving_dir(model, bert_config, vocab_file, bert_serving_dir)


def _save_atomic(module, export_dir, signatures, info):
  """tf.saved_model.save to a temporary directory beside export_dir, then rename.

  Args:
    module: the tf.Module to save.
    export_dir: final directory.
    signatures: dict name -> concrete function.
    info: dict written as EXPORT_INFO_FILE (what the export holds).

  Returns:
    export_dir.
  """
  export_dir = os.fspath(export_dir).rstrip("/")
  _check_export_dir(export_dir)
  parent = os.path.dirname(os.path.abspath(export_dir))
  tf.io.gfile.makedirs(parent)
  base = os.path.basename(export_dir)
  tmp_dir, old_dir = ckpt_lib.staging_dirs(parent, base)
  try:
    tf.saved_model.save(module, tmp_dir, signatures=signatures)
    with tf.io.gfile.GFile(os.path.join(tmp_dir, EXPORT_INFO_FILE), "w") as f:
      f.write(json.dumps(info, indent=2, sort_keys=True) + "\n")
    if tf.io.gfile.exists(export_dir):
      # Move the previous export aside first: a crash between the two renames
      # leaves it recoverable under .<name>.old-* instead of half-overwritten.
      tf.io.gfile.rename(export_dir, old_dir)
    tf.io.gfile.rename(tmp_dir, export_dir)
  finally:
    for leftover in (tmp_dir, old_dir):
      if tf.io.gfile.exists(leftover):
        tf.io.gfile.rmtree(leftover)
  logging.info("Wrote SavedModel %s (signatures: %s)", export_dir,
               ", ".join(sorted(signatures)))
  return export_dir


def inference_copy(model, precision="float32"):
  """A copy of a BertClassifier or BertSquad made for inference only.

  The copy computes in `precision` and holds its inference weights precomputed
  (BertModel.freeze_for_inference): what the SavedModel exports serve, and what
  the speed benchmark measures.

  Args:
    model: a modeling.heads.BertClassifier or BertSquad with its weights loaded.
    precision: "float32", "bfloat16" or "float16".

  Returns:
    A new model of the same class and config.
  """
  dtype = _compute_dtype(precision)
  if isinstance(model, heads.BertSquad):
    copy = heads.BertSquad(model.config, compute_dtype=dtype)
  else:
    copy = heads.BertClassifier(model.config, model.num_labels, compute_dtype=dtype)
  _copy_weights(model, copy)
  copy.bert.freeze_for_inference()
  return copy


class _SquadServing(tf.Module):
  """Inference-only SQuAD model: start and end logits from ids."""

  def __init__(self, model):
    super().__init__(name="bert_squad_serving")
    self.model = model

  @tf.function(autograph=False, input_signature=_ids_signature())
  def serve(self, input_ids, input_mask, segment_ids):
    """int32 [B, S] x 3 -> {"start_logits", "end_logits"} float32 [B, S]."""
    start_logits, end_logits = self.model(input_ids, input_mask, segment_ids,
                                          training=False)
    return {"start_logits": start_logits, "end_logits": end_logits}


def export_squad_saved_model(model, export_dir, precision="float32"):
  """Exports a BertSquad as a SavedModel.

  Signature serving_default: int32 input_ids, input_mask, segment_ids [batch, seq]
  (both dimensions dynamic) -> start_logits, end_logits float32 [batch, seq].

  Args:
    model: a modeling.heads.BertSquad with its weights loaded (any compute dtype).
    export_dir: output directory (absent, empty, or a previous export).
    precision: "float32" (default), "bfloat16" or "float16": the dtype of the
      matmuls in the export; variables and outputs stay float32.

  Returns:
    export_dir.
  """
  serving_model = inference_copy(model, precision)
  module = _SquadServing(serving_model)
  info = {"kind": "squad", "precision": precision,
          "bert_config": model.config.to_dict()}
  return _save_atomic(module, export_dir,
                      {"serving_default": module.serve.get_concrete_function()}, info)


class _ClassifierServing(tf.Module):
  """Inference-only classifier: ids or raw text -> class probabilities."""

  def __init__(self, model, label_list):
    super().__init__(name="bert_classifier_serving")
    self.model = model
    self.label_names = tf.constant(list(label_list), tf.string)  # [num_labels]
    # One traced forward pass shared by all signatures, stored and loaded once. A
    # concrete function, not a tf.function: saving would trace a tf.function
    # attribute a second time, and in 16-bit exports each trace holds the
    # weights as constants (see modeling.encoder._GraphConstant).
    self._logits = tf.function(
        lambda ids, mask, segments: model(ids, mask, segments, training=False),
        input_signature=_ids_signature(), autograph=False).get_concrete_function()

  def _outputs(self, input_ids, input_mask, segment_ids):
    logits = self._logits(input_ids, input_mask, segment_ids)  # [B, num_labels]
    return {"probabilities": tf.nn.softmax(logits, axis=-1), "logits": logits}

  @tf.function(autograph=False, input_signature=_ids_signature())
  def serve(self, input_ids, input_mask, segment_ids):
    """int32 [B, S] x 3 -> {"probabilities", "logits"} float32 [B, num_labels]."""
    return self._outputs(input_ids, input_mask, segment_ids)


class _ClassifierTextServing(_ClassifierServing):
  """The classifier plus the raw-text signatures (in-graph tokenization)."""

  def __init__(self, model, label_list, encoder):
    super().__init__(model, label_list)
    self.encoder = encoder

  def _text_outputs(self, text_a, text_b):
    outputs = self._outputs(*self.encoder.encode(text_a, text_b))
    label_ids = tf.argmax(outputs["probabilities"], axis=-1, output_type=tf.int32)
    outputs["label_ids"] = label_ids  # [B]
    outputs["labels"] = tf.gather(self.label_names, label_ids)  # [B] string
    return outputs

  @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="text_a")])
  def serve_text(self, text_a):
    """string [B] -> probabilities, logits, label_ids, labels."""
    return self._text_outputs(text_a, None)

  @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="text_a"),
                                tf.TensorSpec([None], tf.string, name="text_b")])
  def serve_text_pair(self, text_a, text_b):
    """string [B] x 2 -> probabilities, logits, label_ids, labels."""
    return self._text_outputs(text_a, text_b)

  @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="text")])
  def wordpiece_ids(self, text):
    """string [B] -> token_ids int32 [total], row_lengths int32 [B]."""
    ids = self.encoder.tokenize_ids(text)
    return {"token_ids": tf.cast(ids.flat_values, tf.int32),
            "row_lengths": tf.cast(ids.row_lengths(), tf.int32)}


def export_classifier_saved_model(model, export_dir, label_list, vocab_file=None,
                                  do_lower_case=True, spm_model_file=None,
                                  max_seq_length=128, precision="float32"):
  """Exports a BertClassifier as a self-contained SavedModel.

  See the module docstring for the signatures. The raw-text signatures need a
  WordPiece vocab_file; with spm_model_file (or no vocab) only serving_default is
  written and the log says so.

  Args:
    model: a modeling.heads.BertClassifier with its weights loaded.
    export_dir: output directory (absent, empty, or a previous export).
    label_list: label names, in label-id order.
    vocab_file: the WordPiece vocab.txt the model was fine-tuned with.
    do_lower_case: the casing flag of the fine-tuning run.
    spm_model_file: a SentencePiece model instead of vocab_file.
    max_seq_length: truncation length of the text signatures.
    precision: "float32" (default), "bfloat16" or "float16" matmuls; variables and
      outputs stay float32.

  Returns:
    export_dir.

  Raises:
    ExportError: bad arguments, or export_dir holds something else.
  """
  from processors import text_encoder  # pylint: disable=g-import-not-at-top
  _compute_dtype(precision)  # validates it before the work below
  label_list = [str(label) for label in label_list]
  if len(label_list) != model.num_labels:
    raise ExportError(f"label_list has {len(label_list)} labels but the model has "
                      f"{model.num_labels} outputs")
  if max_seq_length < 3 or max_seq_length > model.config.max_position_embeddings:
    raise ExportError(f"max_seq_length must be in [3, "
                      f"{model.config.max_position_embeddings}], got {max_seq_length}")
  serving_model = inference_copy(model, precision)
  info = {"kind": "classifier", "labels": label_list, "precision": precision,
          "max_seq_length": int(max_seq_length), "do_lower_case": bool(do_lower_case),
          "bert_config": model.config.to_dict()}
  with tempfile.TemporaryDirectory() as tmp:
    encoder = None
    if spm_model_file:
      logging.warning("SentencePiece model: the SavedModel gets only serving_default "
                      "(ids in); the raw-text signatures need a WordPiece vocab")
    elif not vocab_file:
      logging.warning("No vocab_file: the SavedModel gets only serving_default")
    else:
      asset = os.path.join(tmp, "vocab.txt")
      replaced = text_encoder.write_vocab_asset(vocab_file, asset)
      if replaced:
        logging.info("%s: %d empty or repeated lines can never be produced; they "
                     "are placeholders in the exported vocab", vocab_file, replaced)
      encoder = text_encoder.BertTextEncoder(asset, do_lower_case, max_seq_length)
    if encoder is None:
      module = _ClassifierServing(serving_model, label_list)
    else:
      module = _ClassifierTextServing(serving_model, label_list, encoder)
    signatures = {"serving_default": module.serve.get_concrete_function()}
    if encoder is not None:
      signatures.update({
          "serving_text": module.serve_text.get_concrete_function(),
          "serving_text_pair": module.serve_text_pair.get_concrete_function(),
          "wordpiece_ids": module.wordpiece_ids.get_concrete_function(),
      })
    info["signatures"] = sorted(signatures)
    return _save_atomic(module, export_dir, signatures, info)


def read_export_info(export_dir):
  """Reads EXPORT_INFO_FILE of an export.

  Returns:
    The dict written at export time.

  Raises:
    ExportError: export_dir is missing or not an export of this module.
  """
  export_dir = os.fspath(export_dir)
  if not tf.io.gfile.isdir(export_dir):
    raise ExportError(f"{export_dir}: export directory not found")
  path = os.path.join(export_dir, EXPORT_INFO_FILE)
  if not tf.io.gfile.exists(path) or not tf.io.gfile.exists(
      os.path.join(export_dir, "saved_model.pb")):
    raise ExportError(f"{export_dir}: not a SavedModel written by this project "
                      f"(expected saved_model.pb and {EXPORT_INFO_FILE})")
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


# --------------------------------------------------------------------------------
# bert-as-service model directory
# --------------------------------------------------------------------------------


def original_bert_variable_shapes(bert_config):
  """Every variable of the original BERT graph (bert/...) with its shape.

  These are what bert-as-service's graph builds; it silently initialises any of
  them missing from the checkpoint with random values.

  Args:
    bert_config: modeling.config.BertConfig.

  Returns:
    dict {name: shape list}.
  """
  h, i = bert_config.hidden_size, bert_config.intermediate_size
  shapes = {
      "bert/embeddings/word_embeddings": [bert_config.vocab_size, h],
      "bert/embeddings/token_type_embeddings": [bert_config.type_vocab_size, h],
      "bert/embeddings/position_embeddings": [bert_config.max_position_embeddings, h],
      "bert/embeddings/LayerNorm/gamma": [h],
      "bert/embeddings/LayerNorm/beta": [h],
      "bert/pooler/dense/kernel": [h, h],
      "bert/pooler/dense/bias": [h],
  }
  for n in range(bert_config.num_hidden_layers):
    p = f"bert/encoder/layer_{n}/"
    for dense in ("attention/self/query", "attention/self/key", "attention/self/value",
                  "attention/output/dense"):
      shapes[p + dense + "/kernel"] = [h, h]
      shapes[p + dense + "/bias"] = [h]
    shapes[p + "intermediate/dense/kernel"] = [h, i]
    shapes[p + "intermediate/dense/bias"] = [i]
    shapes[p + "output/dense/kernel"] = [i, h]
    shapes[p + "output/dense/bias"] = [h]
    for norm in ("attention/output/LayerNorm", "output/LayerNorm"):
      shapes[p + norm + "/gamma"] = [h]
      shapes[p + norm + "/beta"] = [h]
  return shapes


def _is_weight(name):
  return not (name == "global_step" or name.endswith("/adam_m") or
              name.endswith("/adam_v"))


def export_bert_serving_dir(named_vars, bert_config, vocab_file, output_dir):
  """Writes a bert-as-service model directory.

  Contents: bert_model.ckpt.index, bert_model.ckpt.data-00000-of-00001 (weights only,
  original names and shapes, including a classifier's output_weights/output_bias or
  the SQuAD head), a `checkpoint` state file, bert_config.json (original field
  names) and vocab.txt. The directory is written under a temporary name and renamed;
  an existing output_dir is replaced only if it is empty or holds a previous
  bert-serving export (a bert_model.ckpt.index).

  bert-serving's "gelu" is the erf form, its only GELU. An erf model (e.g. MiniLM
  converted from Hugging Face) is written "hidden_act": "gelu" with
  "gelu_approximate": false, which the server computes exactly and this project
  reads back as the erf form. A model with the tanh approximation (Google's
  original "gelu") is written "gelu" too, the closest name the server has: it then
  computes the erf form, which differs from the tanh approximation by at most
  4.8e-4 per activation (logged as a warning).

  Args:
    named_vars: dict {original name: tf.Variable or array}, or a model with
      named_variables() (BertClassifier, BertSquad, BertModel).
    bert_config: modeling.config.BertConfig.
    vocab_file: the model's vocab.txt.
    output_dir: the directory to write.

  Returns:
    dict report: {"output_dir", "num_variables", "checked": verify_bert_serving_dir
    result}.

  Raises:
    ExportError: output_dir holds something else, or the check fails.
  """
  if hasattr(named_vars, "named_variables"):
    named_vars = named_vars.named_variables()
  weights = {n: v for n, v in named_vars.items() if _is_weight(n)}
  if not tf.io.gfile.exists(vocab_file):
    raise ExportError(f"vocab file not found: {vocab_file}")
  output_dir = os.fspath(output_dir).rstrip("/")
  _check_bert_serving_dir(output_dir)
  served_config = bert_serving_config(bert_config)
  if bert_config.hidden_act in ("gelu", "gelu_new"):
    logging.warning(
        "This model's GELU is the tanh approximation; bert-serving-server computes "
        "'gelu' in the erf form, so its vectors will differ slightly (each GELU by "
        "at most 4.8e-4) from this project's")
  parent = os.path.dirname(os.path.abspath(output_dir))
  os.makedirs(parent, exist_ok=True)
  base = os.path.basename(output_dir)
  tmp_dir, old_dir = ckpt_lib.staging_dirs(parent, base)
  try:
    os.makedirs(tmp_dir)
    prefix = os.path.join(tmp_dir, BERT_SERVING_PREFIX)
    ckpt_lib.save_checkpoint(prefix, weights)
    ckpt_lib.update_checkpoint_state(tmp_dir, BERT_SERVING_PREFIX,
                                     [BERT_SERVING_PREFIX])
    served_config.to_json_file(os.path.join(tmp_dir, "bert_config.json"))
    with tf.io.gfile.GFile(vocab_file, "rb") as src, open(
        os.path.join(tmp_dir, "vocab.txt"), "wb") as dst:
      dst.write(src.read())
    checked = verify_bert_serving_dir(tmp_dir)
    if os.path.exists(output_dir):
      os.rename(output_dir, old_dir)
    os.rename(tmp_dir, output_dir)
  finally:
    for leftover in (tmp_dir, old_dir):
      if os.path.exists(leftover):
        shutil.rmtree(leftover)
  logging.info("Wrote bert-serving model directory %s (%d variables)", output_dir,
               len(weights))
  return {"output_dir": output_dir, "num_variables": len(weights), "checked": checked}


def bert_serving_config(bert_config):
  """The config to write for bert-serving: hidden_act a name its server accepts.

  The erf GELU keeps its meaning (written "gelu" with "gelu_approximate": false);
  the tanh approximation's "gelu_new" becomes "gelu", which the server runs in the
  erf form (no name of its computes the tanh approximation).

  Args:
    bert_config: modeling.config.BertConfig.

  Returns:
    A new BertConfig.
  """
  from modeling import config as config_lib  # pylint: disable=g-import-not-at-top
  served = config_lib.BertConfig.from_dict(bert_config.to_dict())
  if served.hidden_act == "gelu_new":
    served.hidden_act = "gelu"
  return served


def verify_bert_serving_dir(output_dir):
  """Checks a bert-as-service directory against the original BERT graph.

  bert_config.json must name an activation bert-serving-server accepts
  (BERT_SERVING_ACTIVATIONS), every variable the original graph builds for it
  (embeddings, the 16 variables of every layer, the pooler) must be in
  bert_model.ckpt with its shape, the checkpoint must hold no optimizer state, and
  vocab.txt must fit vocab_size.

  Args:
    output_dir: a directory written by export_bert_serving_dir.

  Returns:
    Sorted list of the checked variable names.

  Raises:
    ExportError: naming every missing or mis-shaped variable.
  """
  from modeling import config as config_lib  # pylint: disable=g-import-not-at-top
  output_dir = os.fspath(output_dir)
  config_path = os.path.join(output_dir, "bert_config.json")
  prefix = os.path.join(output_dir, BERT_SERVING_PREFIX)
  for path in (config_path, prefix + ".index", os.path.join(output_dir, "vocab.txt")):
    if not os.path.exists(path):
      raise ExportError(f"bert-serving check: {path} is missing")
  written = config_lib.read_json_file(config_path)
  config = config_lib.BertConfig.from_dict(written, source=config_path)
  act = written.get("hidden_act")
  if act and not (isinstance(act, str) and act.lower() in BERT_SERVING_ACTIVATIONS):
    raise ExportError(
        f"bert-serving check: {config_path} has hidden_act {act!r}, which "
        "bert-serving-server refuses ('Unsupported activation'); it accepts "
        f"{', '.join(BERT_SERVING_ACTIVATIONS)}")
  have = ckpt_lib.list_checkpoint_variables(prefix)
  want = original_bert_variable_shapes(config)
  problems = []
  for name, shape in want.items():
    if name not in have:
      problems.append(f"{name} missing")
    elif list(have[name]) != shape:
      problems.append(f"{name} has shape {have[name]}, expected {shape}")
  slots = [n for n in have if not _is_weight(n)]
  if slots:
    problems.append(f"optimizer state in the checkpoint: {', '.join(slots[:5])}")
  with open(os.path.join(output_dir, "vocab.txt"), "rb") as f:
    vocab_lines = len(f.read().rstrip(b"\n").split(b"\n"))
  if vocab_lines > config.vocab_size:
    problems.append(f"vocab.txt has {vocab_lines} lines but vocab_size is "
                    f"{config.vocab_size}")
  if problems:
    raise ExportError(
        f"bert-serving check of {output_dir} failed (bert-as-service would "
        f"initialise missing variables randomly): " + "; ".join(problems))
  logging.info("bert-serving check: all %d variables of the original BERT graph "
               "present with the right shapes in %s", len(want), prefix)
  return sorted(want)
