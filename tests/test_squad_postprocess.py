"""SQuAD post-processing and metrics, against Model Garden's port of the original."""

import json
import logging as std_logging

import numpy as np
import pytest

from official.nlp.data import squad_lib as reference_lib
from official.nlp.tools import squad_evaluate_v1_1
from processors import squad
from processors import squad_postprocess
import squad_helpers
import tokenization


def _features(tmp_path, version_2, max_seq_length=32, doc_stride=8):
  data = squad_helpers.v2_data() if version_2 else squad_helpers.v1_data()
  path = squad_helpers.write_squad(tmp_path / "squad.json", data)
  vocab = squad_helpers.write_squad_vocab(tmp_path / "vocab.txt", data)
  tok = tokenization.FullTokenizer(str(vocab), do_lower_case=True)
  examples, _ = squad.read_squad_examples(str(path), False, version_2)
  features, _ = squad.convert_examples_to_features(
      examples, tok, max_seq_length, doc_stride, 12, False, log_examples=0)
  return data, examples, features


def _random_results(features, seed, seq_length=32, ties=False):
  rng = np.random.RandomState(seed)
  results = []
  for f in features:
    start = rng.normal(size=seq_length).astype(np.float32)
    end = rng.normal(size=seq_length).astype(np.float32)
    if ties:  # many equal logits: the order of equal scores must match
      start, end = np.round(start), np.round(end)
    results.append(squad_postprocess.RawResult(f.unique_id, start, end))
  return results


@pytest.mark.parametrize("version_2", [False, True])
@pytest.mark.parametrize("seed,ties", [(0, False), (2, True)])
@pytest.mark.parametrize("n_best_size,max_answer_length,threshold",
                         [(20, 30, 0.0), (3, 2, -1.0), (5, 4, 1.5)])
def test_predictions_match_reference(tmp_path, version_2, seed, ties, n_best_size,
                                     max_answer_length, threshold):
  _, examples, features = _features(tmp_path, version_2)
  results = _random_results(features, seed, ties=ties)
  ours = squad_postprocess.compute_predictions(
      examples, features, results, n_best_size, max_answer_length, True,
      version_2_with_negative=version_2, null_score_diff_threshold=threshold)
  # The reference works on Python floats, as the original's RawResult does.
  ref_results = [squad_postprocess.RawResult(r.unique_id,
                                             [float(x) for x in r.start_logits],
                                             [float(x) for x in r.end_logits])
                 for r in results]
  reference = reference_lib.postprocess_output(
      examples, features, ref_results, n_best_size, max_answer_length, True,
      version_2_with_negative=version_2, null_score_diff_threshold=threshold)
  assert json.dumps(ours[0]) == json.dumps(reference[0])
  assert json.dumps(ours[1]) == json.dumps(reference[1])
  assert json.dumps(ours[2]) == json.dumps(reference[2])
  assert list(ours[0]) == [ex.qas_id for ex in examples]
  assert bool(ours[2]) == version_2


def test_known_logits_give_the_original_text(tmp_path):
  """Hand-set logits: the answer maps back to the original, accented text."""
  _, examples, features = _features(tmp_path, False, max_seq_length=48,
                                    doc_stride=16)
  results = []
  for f in features:
    start = np.full(48, -5.0, np.float32)
    end = np.full(48, -5.0, np.float32)
    ex = examples[f.example_index]
    if ex.qas_id == "c1":
      # "hans bruckner" -> "Hans Brückner" (without the comma of "Brückner,").
      s = f.tokens.index("hans")
      start[s], end[s + 1] = 5.0, 5.0
    if ex.qas_id == "r2":
      s = f.tokens.index("1895")
      start[s], end[s] = 5.0, 5.0
    results.append(squad_postprocess.RawResult(f.unique_id, start, end))
  predictions, nbest, null_odds = squad_postprocess.compute_predictions(
      examples, features, results, 20, 30, True)
  assert predictions["c1"] == "Hans Brückner"
  assert predictions["r2"] == "1895"  # not "(1895-1943)."
  assert not null_odds
  probs = [e["probability"] for e in nbest["c1"]]
  assert abs(sum(probs) - 1.0) < 1e-9 and probs == sorted(probs, reverse=True)
  assert len(nbest["c1"]) == 20


def test_null_answer_and_threshold(tmp_path):
  _, examples, features = _features(tmp_path, True, max_seq_length=48,
                                    doc_stride=16)
  results = []
  for f in features:
    start = np.full(48, -5.0, np.float32)
    end = np.full(48, -5.0, np.float32)
    start[0], end[0] = 2.0, 2.0  # null score 4
    s = len(f.tokens) - 3
    start[s], end[s] = 1.5, 1.0  # best span score 2.5
    results.append(squad_postprocess.RawResult(f.unique_id, start, end))
  for threshold, expect_null in ((0.0, True), (1.4, True), (1.6, False)):
    predictions, nbest, null_odds = squad_postprocess.compute_predictions(
        examples, features, results, 20, 30, True, version_2_with_negative=True,
        null_score_diff_threshold=threshold)
    for qid, diff in null_odds.items():
      assert diff == pytest.approx(1.5)
      assert (predictions[qid] == "") == expect_null
      assert "" in [e["text"] for e in nbest[qid]]


def test_verbose_logging_reports_alignment_failures(caplog):
  # On the absl logger itself: code run by earlier tests in the same process
  # (tf.saved_model.save) can leave its level at WARNING.
  caplog.set_level(std_logging.INFO, logger="absl")
  # "xyz" is not in the original text: the whole words are returned.
  assert squad_postprocess.get_final_text("xyz", "Steve Smith's", True, True) == (
      "Steve Smith's")
  assert "Unable to find text" in caplog.text
  assert squad_postprocess.get_final_text("steve smith", "Steve Smith's", True) == (
      "Steve Smith")


def test_output_json_layout_is_the_originals(tmp_path):
  _, examples, features = _features(tmp_path, True)
  predictions, nbest, null_odds = squad_postprocess.compute_predictions(
      examples, features, _random_results(features, 0), 20, 30, True,
      version_2_with_negative=True)
  # The original: json.dumps(obj, indent=4) + "\n", keys in example order.
  for obj in (predictions, nbest, null_odds):
    text = squad_postprocess.to_json(obj)
    assert text == json.dumps(obj, indent=4) + "\n"
    assert list(json.loads(text)) == list(obj)
  assert set(nbest) == set(predictions) == set(null_odds)


def test_v1_metrics_by_hand():
  data = squad_helpers.v1_data()
  predictions = {"r1": "Brazil", "r2": "the 1895", "r3": "Amazon River flows",
                 "r4": "volume"}
  result = squad_postprocess.evaluate_predictions(data[:1], predictions, False)
  # r1 exact; r2 "the" is an article, normalised away -> exact; r3 gold "The
  # Amazon River" -> tokens {amazon, river} vs {amazon, river, flows}: P 2/3, R 1,
  # F1 0.8; r4 "volume." normalises to "volume" -> exact.
  assert result["exact_match"] == pytest.approx(75.0)
  assert result["f1"] == pytest.approx(100 * (3 + 0.8) / 4)
  reference = squad_evaluate_v1_1.evaluate(data[:1], predictions)
  assert result["f1"] == pytest.approx(100 * reference["final_f1"])
  # A missing prediction scores 0 for its question, as the official script.
  del predictions["r4"]
  result = squad_postprocess.evaluate_predictions(data[:1], predictions, False)
  assert result["exact_match"] == pytest.approx(50.0)


def test_v2_metrics_by_hand():
  data = squad_helpers.v2_data()[:1]  # r1..r4 answerable, r5 unanswerable
  predictions = {"r1": "Brazil", "r2": "1943", "r3": "The Amazon River",
                 "r4": "volume", "r5": "Brazil"}
  null_odds = {"r1": -3.0, "r2": 0.5, "r3": -2.0, "r4": -1.0, "r5": 0.8}
  result = squad_postprocess.evaluate_predictions(data, predictions, True, null_odds)
  assert result["exact"] == pytest.approx(60.0)  # r2 and r5 wrong
  assert result["HasAns_exact"] == pytest.approx(75.0)
  assert result["HasAns_total"] == 4 and result["NoAns_total"] == 1
  assert result["NoAns_exact"] == pytest.approx(0.0)
  assert result["total"] == 5
  # Answering null above odds -1.0 (r2, r5) fixes r5 and costs nothing (r2 was
  # wrong anyway): 4 of 5.
  assert result["best_exact"] == pytest.approx(80.0)
  assert result["best_exact_thresh"] == pytest.approx(-1.0)
  assert not any(k.startswith(("final_", "pr_")) for k in result)
  # Odds above 1.0 count as null answers, as evaluate-v2.0.py --na-prob-file does.
  null_odds["r5"] = 1.2
  result = squad_postprocess.evaluate_predictions(data, predictions, True, null_odds)
  assert result["exact"] == pytest.approx(80.0)
