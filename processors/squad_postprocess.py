"""SQuAD post-processing: window logits -> answer texts, as the original write_predictions.

For each question: the top `n_best_size` start and end positions of every window are
combined, spans that leave the context, run backwards, exceed `max_answer_length` or
sit in a window that is not the token's max-context window are dropped, the rest are
ranked by start + end logit and mapped back to the original text (get_final_text).
With SQuAD v2.0 the null answer (position 0, the smallest over the windows) competes,
and "" is predicted when its score minus the best non-null score exceeds
`null_score_diff_threshold`. Outputs are the original's files: predictions.json,
nbest_predictions.json and, for v2.0, null_odds.json.
"""

import collections
import json
import math
from typing import Dict, List, Sequence

from absl import logging
import numpy as np

# Model Garden's get_final_text is the original's character alignment, unchanged.
from official.nlp.data.squad_lib import get_final_text  # pylint: disable=unused-import

RawResult = collections.namedtuple("RawResult",
                                   ["unique_id", "start_logits", "end_logits"])

_PrelimPrediction = collections.namedtuple(
    "PrelimPrediction",
    ["feature_index", "start_index", "end_index", "start_logit", "end_logit"])
_NbestPrediction = collections.namedtuple(
    "NbestPrediction", ["text", "start_logit", "end_logit"])


def get_best_indexes(logits, n_best_size):
  """Indexes of the n_best_size largest logits, ties broken by position (as sorted())."""
  order = np.argsort(-np.asarray(logits, np.float64), kind="stable")
  return [int(i) for i in order[:n_best_size]]


def compute_softmax(scores):
  """Softmax over raw logits in Python floats, as the original _compute_softmax."""
  if not scores:
    return []
  max_score = max(scores)
  exp_scores = [math.exp(score - max_score) for score in scores]
  total_sum = sum(exp_scores)
  return [x / total_sum for x in exp_scores]


def _detokenize(tok_tokens):
  """Joins WordPieces (or SentencePiece pieces) into the text they spell."""
  tok_text = " ".join(tok_tokens)
  # De-tokenize WordPieces that have been split off.
  tok_text = tok_text.replace(" ##", "")
  tok_text = tok_text.replace("##", "")
  # SentencePiece marks word starts with U+2581 instead.
  tok_text = tok_text.replace(" ", "").replace("\u2581", " ") if (
      "\u2581" in tok_text) else tok_text
  # Clean whitespace
  tok_text = tok_text.strip()
  return " ".join(tok_text.split())


def compute_predictions(all_examples, all_features, all_results, n_best_size,
                        max_answer_length, do_lower_case,
                        version_2_with_negative=False, null_score_diff_threshold=0.0,
                        verbose_logging=False):
  """Turns the windows' logits into answers, exactly as the original write_predictions.

  Args:
    all_examples: SquadExamples, in feature order.
    all_features: InputFeatures (example_index, tokens, token_to_orig_map,
      token_is_max_context).
    all_results: RawResults (unique_id, start_logits, end_logits).
    n_best_size: n-best candidates kept per question (and start/end positions
      considered per window).
    max_answer_length: longest answer in sub-tokens.
    do_lower_case: how the text was tokenized (for get_final_text).
    version_2_with_negative: let the null answer compete.
    null_score_diff_threshold: predict "" when null score - best non-null > this.
    verbose_logging: log why get_final_text falls back to the whole words.

  Returns:
    (predictions: qid -> text, nbest: qid -> list of dicts with text, probability,
    start_logit, end_logit, null_odds: qid -> score difference (v2.0; else empty)),
    all OrderedDicts in example order.
  """
  example_index_to_features = collections.defaultdict(list)
  for feature in all_features:
    example_index_to_features[feature.example_index].append(feature)
  unique_id_to_result = {int(r.unique_id): r for r in all_results}

  all_predictions = collections.OrderedDict()
  all_nbest_json = collections.OrderedDict()
  scores_diff_json = collections.OrderedDict()
  for example_index, example in enumerate(all_examples):
    features = example_index_to_features[example_index]
    prelim_predictions = []
    # The smallest null score (start + end logit at [CLS]) over the windows.
    score_null = 1000000  # large and positive
    min_null_feature_index = 0
    null_start_logit = 0
    null_end_logit = 0
    for feature_index, feature in enumerate(features):
      result = unique_id_to_result.get(feature.unique_id)
      if result is None:
        logging.warning("No model output for feature %d of question %s",
                        feature.unique_id, example.qas_id)
        continue
      start_logits = [float(x) for x in result.start_logits]
      end_logits = [float(x) for x in result.end_logits]
      start_indexes = get_best_indexes(start_logits, n_best_size)
      end_indexes = get_best_indexes(end_logits, n_best_size)
      if version_2_with_negative:
        feature_null_score = start_logits[0] + end_logits[0]
        if feature_null_score < score_null:
          score_null = feature_null_score
          min_null_feature_index = feature_index
          null_start_logit = start_logits[0]
          null_end_logit = end_logits[0]
      num_tokens = len(feature.tokens)
      for start_index in start_indexes:
        for end_index in end_indexes:
          # Spans in the question, in padding or outside the window's own context
          # are not answers.
          if start_index >= num_tokens or end_index >= num_tokens:
            continue
          if (start_index not in feature.token_to_orig_map or
              end_index not in feature.token_to_orig_map):
            continue
          if not feature.token_is_max_context.get(start_index, False):
            continue
          if end_index < start_index:
            continue
          if end_index - start_index + 1 > max_answer_length:
            continue
          prelim_predictions.append(_PrelimPrediction(
              feature_index=feature_index, start_index=start_index,
              end_index=end_index, start_logit=start_logits[start_index],
              end_logit=end_logits[end_index]))

    if version_2_with_negative:
      prelim_predictions.append(_PrelimPrediction(
          feature_index=min_null_feature_index, start_index=0, end_index=0,
          start_logit=null_start_logit, end_logit=null_end_logit))
    prelim_predictions = sorted(prelim_predictions,
                                key=lambda x: (x.start_logit + x.end_logit),
                                reverse=True)

    seen_predictions = {}
    nbest = []
    for pred in prelim_predictions:
      if len(nbest) >= n_best_size:
        break
      feature = features[pred.feature_index]
      if pred.start_index > 0:  # this is a non-null prediction
        tok_tokens = feature.tokens[pred.start_index:(pred.end_index + 1)]
        orig_doc_start = feature.token_to_orig_map[pred.start_index]
        orig_doc_end = feature.token_to_orig_map[pred.end_index]
        orig_tokens = example.doc_tokens[orig_doc_start:(orig_doc_end + 1)]
        tok_text = _detokenize(tok_tokens)
        orig_text = " ".join(orig_tokens)
        final_text = get_final_text(tok_text, orig_text, do_lower_case,
                                    verbose=verbose_logging)
        if final_text in seen_predictions:
          continue
        seen_predictions[final_text] = True
      else:
        final_text = ""
        seen_predictions[final_text] = True
      nbest.append(_NbestPrediction(text=final_text, start_logit=pred.start_logit,
                                    end_logit=pred.end_logit))

    # if we didn't include the empty option in the n-best, include it
    if version_2_with_negative and "" not in seen_predictions:
      nbest.append(_NbestPrediction(text="", start_logit=null_start_logit,
                                    end_logit=null_end_logit))
    # In very rare edge cases we could have no valid predictions. So we
    # just create a nonce prediction in this case to avoid failure.
    if not nbest:
      nbest.append(_NbestPrediction(text="empty", start_logit=0.0, end_logit=0.0))

    total_scores = []
    best_non_null_entry = None
    for entry in nbest:
      total_scores.append(entry.start_logit + entry.end_logit)
      if not best_non_null_entry and entry.text:
        best_non_null_entry = entry
    probs = compute_softmax(total_scores)
    nbest_json = []
    for i, entry in enumerate(nbest):
      output = collections.OrderedDict()
      output["text"] = entry.text
      output["probability"] = probs[i]
      output["start_logit"] = entry.start_logit
      output["end_logit"] = entry.end_logit
      nbest_json.append(output)

    if not version_2_with_negative:
      all_predictions[example.qas_id] = nbest_json[0]["text"]
    elif best_non_null_entry is not None:
      # predict "" iff the null score - the score of best non-null > threshold
      score_diff = (score_null - best_non_null_entry.start_logit -
                    best_non_null_entry.end_logit)
      scores_diff_json[example.qas_id] = score_diff
      all_predictions[example.qas_id] = (
          "" if score_diff > null_score_diff_threshold else best_non_null_entry.text)
    else:
      # Only the null answer survived (the original would crash here).
      scores_diff_json[example.qas_id] = score_null
      all_predictions[example.qas_id] = ""
    all_nbest_json[example.qas_id] = nbest_json
  return all_predictions, all_nbest_json, scores_diff_json


def to_json(obj) -> str:
  """predictions.json / nbest_predictions.json / null_odds.json text, laid out as the
  original writes them (indent 4)."""
  return json.dumps(obj, indent=4) + "\n"


def results_from_arrays(unique_ids: np.ndarray, start_logits: np.ndarray,
                        end_logits: np.ndarray) -> List[RawResult]:
  """RawResults from the model's batched outputs (padding records, id 0, dropped)."""
  return [RawResult(int(u), s, e)
          for u, s, e in zip(unique_ids, start_logits, end_logits) if int(u) != 0]


def evaluate_predictions(dataset: Sequence[Dict], predictions: Dict[str, str],
                         version_2_with_negative: bool,
                         null_odds: Dict[str, float] = None) -> Dict[str, float]:
  """Exact match and F1 with the official SQuAD evaluation (Model Garden's copies).

  v1.1: {"exact_match", "f1"} in percent, as evaluate-v1.1.py prints them.
  v2.0: evaluate-v2.0.py's figures with --na-prob-file null_odds.json (the original
  README's command): exact, f1, total, HasAns_*, NoAns_*, best_exact,
  best_exact_thresh, best_f1, best_f1_thresh.

  Args:
    dataset: the "data" list of the SQuAD JSON (with answers).
    predictions: qid -> predicted text.
    version_2_with_negative: which evaluation script.
    null_odds: qid -> null score difference (v2.0).

  Returns:
    dict of metrics.
  """
  if not version_2_with_negative:
    from official.nlp.tools import squad_evaluate_v1_1  # pylint: disable=g-import-not-at-top
    result = squad_evaluate_v1_1.evaluate(dataset, predictions)
    # Model Garden returns fractions; the official script prints percentages.
    return {"exact_match": 100.0 * result["exact_match"],
            "f1": 100.0 * result["final_f1"]}
  from official.nlp.tools import squad_evaluate_v2_0  # pylint: disable=g-import-not-at-top
  result = squad_evaluate_v2_0.evaluate(dataset, predictions, null_odds)
  out = {}
  for key, value in result.items():
    if key.startswith("pr_"):
      continue  # precision-recall curves: the official script only plots them
    # Model Garden renamed the official best_* keys to final_*.
    out[key.replace("final_", "best_", 1) if key.startswith("final_") else key] = value
  return out
