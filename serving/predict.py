# coding=utf-8
"""Online prediction with an exported classifier SavedModel.

The SavedModel is loaded once; texts are sent in batches to its raw-text signatures
(serving_text, serving_text_pair), which tokenize in the graph with the ids of
tokenization.FullTokenizer. Signatures are concrete functions, so batches of any size
and length run without retracing.
"""

import json
from typing import Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from modeling import export as export_lib


class PredictError(ValueError):
  """The export directory or the input cannot be used for prediction."""


class Prediction(NamedTuple):
  """One classified text."""
  text_a: str
  text_b: Optional[str]
  label: str
  probabilities: np.ndarray  # float32 [num_labels]


def parse_line(line: str) -> Tuple[str, Optional[str]]:
  """Splits an input line: `a<TAB>b` is a sentence pair, anything else one text.

  Args:
    line: one input line (its line break is removed).

  Returns:
    (text_a, text_b or None).
  """
  line = line.rstrip("\r\n")
  if "\t" in line:
    text_a, text_b = line.split("\t", 1)
    return text_a, text_b
  return line, None


class Predictor(object):
  """Loads a classifier export once and classifies texts in batches."""

  def __init__(self, export_dir: str):
    """Loads the SavedModel.

    Args:
      export_dir: a directory written by export_classifier_saved_model (or
        run_classifier.py --export_dir).

    Raises:
      PredictError: missing directory, not an export of this project, not a
        classifier, or an export without the raw-text signatures.
    """
    try:
      info = export_lib.read_export_info(export_dir)
    except export_lib.ExportError as e:
      raise PredictError(str(e)) from None
    if info.get("kind") != "classifier":
      raise PredictError(f"{export_dir}: a {info.get('kind')!r} export, not a "
                         "classifier (export it with run_classifier.py --export_dir)")
    if "serving_text" not in info.get("signatures", []):
      raise PredictError(
          f"{export_dir}: this export has no raw-text signature (a SentencePiece "
          "model); feed input_ids/input_mask/segment_ids to serving_default instead")
    self.export_dir = export_dir
    self.labels: List[str] = list(info["labels"])
    self.max_seq_length = int(info["max_seq_length"])
    self._loaded = tf.saved_model.load(export_dir)
    self._single = self._loaded.signatures["serving_text"]
    self._pair = self._loaded.signatures["serving_text_pair"]

  def predict_batch(self, texts_a: Sequence[str],
                    texts_b: Optional[Sequence[Optional[str]]] = None) -> np.ndarray:
    """Class probabilities of one batch.

    Args:
      texts_a: the texts (first sentences).
      texts_b: optional second sentences; None entries mean single sentences.

    Returns:
      float32 [len(texts_a), num_labels].
    """
    if not texts_a:
      return np.zeros([0, len(self.labels)], np.float32)
    text_a = tf.constant([t.encode("utf-8") for t in texts_a], tf.string)
    if texts_b is not None and any(texts_b):
      # An empty text_b is a single sentence in the pair signature, as in the original.
      text_b = tf.constant([(t or "").encode("utf-8") for t in texts_b], tf.string)
      out = self._pair(text_a=text_a, text_b=text_b)
    else:
      out = self._single(text_a=text_a)
    return out["probabilities"].numpy()

  def predict(self, pairs: Iterable[Tuple[str, Optional[str]]],
              batch_size: int = 32) -> Iterator[Prediction]:
    """Classifies (text_a, text_b) pairs, batch by batch, in input order.

    Args:
      pairs: iterable of (text_a, text_b or None).
      batch_size: texts per call of the model.

    Yields:
      Prediction per input.
    """
    if batch_size < 1:
      raise PredictError(f"batch_size must be at least 1, got {batch_size}")
    batch: List[Tuple[str, Optional[str]]] = []

    def flush():
      probs = self.predict_batch([a for a, _ in batch], [b for _, b in batch])
      for (a, b), row in zip(batch, probs):
        yield Prediction(a, b, self.labels[int(np.argmax(row))], row)

    for pair in pairs:
      batch.append(pair)
      if len(batch) == batch_size:
        yield from flush()
        batch = []
    if batch:
      yield from flush()


def tsv_header(labels: Sequence[str]) -> str:
  """Header line of the TSV output: label, then one column per class."""
  return "\t".join(["label"] + list(labels))


def format_tsv(prediction: Prediction) -> str:
  """One TSV line: predicted label, then the probability of each class."""
  return "\t".join([prediction.label] +
                   [f"{float(p):.6f}" for p in prediction.probabilities])


def format_jsonl(prediction: Prediction, labels: Sequence[str]) -> str:
  """One JSON line: {"text": ..., ["text_b": ...,] "label": ..., "probabilities": {...}}."""
  record = {"text": prediction.text_a}
  if prediction.text_b is not None:
    record["text_b"] = prediction.text_b
  record["label"] = prediction.label
  record["probabilities"] = {label: round(float(p), 6)
                             for label, p in zip(labels, prediction.probabilities)}
  return json.dumps(record, ensure_ascii=False)
