"""Classification metrics computed from predictions in numpy.

The original run_classifier.py reports accuracy and loss only. Users of imbalanced
data (Emotion) and of CoLA need per-class precision/recall/F1, macro-F1 and the
Matthews correlation, so they are computed here from the confusion matrix.
"""

import math
import re
from typing import Dict, Sequence

import numpy as np


def confusion_matrix(label_ids: np.ndarray, predicted_ids: np.ndarray,
                     num_labels: int) -> np.ndarray:
  """Counts (true, predicted) pairs.

  Args:
    label_ids: int array [N] of true label indices.
    predicted_ids: int array [N] of predicted label indices.
    num_labels: number of classes.

  Returns:
    int64 array [num_labels, num_labels]; rows are true labels, columns predictions.
  """
  label_ids = np.asarray(label_ids, dtype=np.int64)
  predicted_ids = np.asarray(predicted_ids, dtype=np.int64)
  if label_ids.shape != predicted_ids.shape:
    raise ValueError(f"label_ids {label_ids.shape} and predicted_ids "
                     f"{predicted_ids.shape} differ in shape")
  flat = label_ids * num_labels + predicted_ids
  counts = np.bincount(flat, minlength=num_labels * num_labels)
  return counts.reshape(num_labels, num_labels)


def _safe_div(num: float, den: float) -> float:
  return float(num) / float(den) if den else 0.0


def matthews_corrcoef(cm: np.ndarray) -> float:
  """Multi-class Matthews correlation (Gorodkin's R_K) from a confusion matrix.

  For two classes it equals the usual MCC that GLUE reports for CoLA.

  Args:
    cm: [K, K] confusion matrix, rows true, columns predicted.

  Returns:
    The correlation in [-1, 1]; 0.0 when it is undefined (a constant predictor).
  """
  cm = cm.astype(np.float64)
  t = cm.sum(axis=1)  # true counts per class
  p = cm.sum(axis=0)  # predicted counts per class
  c = np.trace(cm)
  s = cm.sum()
  cov_ytyp = c * s - np.dot(t, p)
  cov_ypyp = s * s - np.dot(p, p)
  cov_ytyt = s * s - np.dot(t, t)
  den = math.sqrt(cov_ytyt * cov_ypyp)
  return float(cov_ytyp / den) if den else 0.0


def sanitize_label(label: str) -> str:
  """Makes a label usable inside a `key = value` key (no spaces or '=')."""
  return re.sub(r"[^0-9A-Za-z_.\-]+", "_", str(label)) or "_"


def classification_metrics(label_ids: np.ndarray, predicted_ids: np.ndarray,
                           label_list: Sequence[str]) -> Dict[str, object]:
  """Accuracy, per-class precision/recall/F1, macro-F1, MCC and the confusion matrix.

  Args:
    label_ids: int array [N] of true label indices (real examples only).
    predicted_ids: int array [N] of predicted label indices.
    label_list: the label names, index i naming class i.

  Returns:
    A dict with keys eval_accuracy, eval_macro_f1, eval_mcc,
    eval_precision_<label>, eval_recall_<label>, eval_f1_<label>,
    eval_confusion_matrix (nested lists, rows true, columns predicted).
  """
  num_labels = len(label_list)
  cm = confusion_matrix(label_ids, predicted_ids, num_labels)
  total = int(cm.sum())
  result: Dict[str, object] = {
      "eval_accuracy": _safe_div(np.trace(cm), total),
  }
  f1s = []
  for i, label in enumerate(label_list):
    tp = cm[i, i]
    precision = _safe_div(tp, cm[:, i].sum())
    recall = _safe_div(tp, cm[i, :].sum())
    f1 = _safe_div(2 * precision * recall, precision + recall)
    f1s.append(f1)
    key = sanitize_label(label)
    result[f"eval_precision_{key}"] = precision
    result[f"eval_recall_{key}"] = recall
    result[f"eval_f1_{key}"] = f1
  result["eval_macro_f1"] = float(np.mean(f1s)) if f1s else 0.0
  result["eval_mcc"] = matthews_corrcoef(cm)
  result["eval_confusion_matrix"] = cm.tolist()
  return result
