"""End-to-end tests of run_squad.py on a tiny config, as a user runs it."""

import json

import numpy as np
import pytest
import tensorflow as tf

from cli_helpers import checkpoint_arrays, read_eval_results, run_script, write_bert_config
from official.nlp.tools import squad_evaluate_v1_1, squad_evaluate_v2_0
import squad_helpers


def _setup(tmp_path, unanswerable=False):
  vocab = tmp_path / "vocab.txt"
  tokens = squad_helpers.synthetic_vocab_tokens()
  vocab.write_text("\n".join(tokens) + "\n", encoding="utf-8")
  config = write_bert_config(tmp_path / "bert_config.json", len(tokens))
  version = "v2.0" if unanswerable else "1.1"
  train = squad_helpers.write_squad(
      tmp_path / "train.json", squad_helpers.synthetic_data(12, 0, unanswerable),
      version)
  dev = squad_helpers.write_squad(
      tmp_path / "dev.json", squad_helpers.synthetic_data(5, 1, unanswerable), version)
  return {"vocab": vocab, "config": config, "train": train, "dev": dev}


def _args(setup, output_dir, *extra):
  return [f"--vocab_file={setup['vocab']}", f"--bert_config_file={setup['config']}",
          f"--train_file={setup['train']}", f"--predict_file={setup['dev']}",
          f"--output_dir={output_dir}", "--max_seq_length=40", "--doc_stride=8",
          "--max_query_length=10", "--train_batch_size=8", "--learning_rate=1e-3",
          "--log_every_steps=5", *extra]


def _dataset(path):
  return json.loads(path.read_text(encoding="utf-8"))["data"]


def test_v1_train_predict_eval_then_predict_from_checkpoint(tmp_path):
  setup = _setup(tmp_path)
  out = tmp_path / "out"
  result = run_script("run_squad.py", _args(
      setup, out, "--do_train", "--do_predict", "--do_eval", "--num_train_epochs=2",
      "--save_checkpoints_steps=4"))
  log = result.stderr
  assert "*** Example ***" in log and "start_position:" in log
  assert "Num orig examples = 24" in log
  # 24 examples / 8 * 2 epochs = 6 steps (counted on examples, as the original).
  assert "Num steps = 6" in log
  predictions = json.loads((out / "predictions.json").read_text(encoding="utf-8"))
  qids = [q["id"] for a in _dataset(setup["dev"]) for p in a["paragraphs"]
          for q in p["qas"]]
  assert list(predictions) == qids
  nbest = json.loads((out / "nbest_predictions.json").read_text(encoding="utf-8"))
  assert [e["text"] for e in nbest[qids[0]]][0] == predictions[qids[0]]
  assert not (out / "null_odds.json").exists()
  evals = read_eval_results(out / "eval_results.txt")
  official = squad_evaluate_v1_1.evaluate(_dataset(setup["dev"]), predictions)
  assert float(evals["exact_match"]) == pytest.approx(100 * official["exact_match"])
  assert float(evals["f1"]) == pytest.approx(100 * official["final_f1"])
  assert evals["global_step"] == "6"

  names = checkpoint_arrays(out / "model.ckpt-6")
  assert names["cls/squad/output_weights"].shape == (2, 32)
  assert "cls/squad/output_bias/adam_m" in names and int(names["global_step"]) == 6
  record = next(iter(tf.data.TFRecordDataset(str(out / "train.tf_record"))))
  assert set(tf.train.Example.FromString(record.numpy()).features.feature) == {
      "unique_ids", "input_ids", "input_mask", "segment_ids", "start_positions",
      "end_positions", "is_impossible"}

  # Predicting again from the checkpoint (no training, no dynamic padding) gives
  # the same answers, and the SavedModel export computes the checkpoint's logits.
  (out / "predictions.json").unlink()
  export_dir = tmp_path / "export"
  result = run_script("run_squad.py", _args(setup, out, "--do_predict",
                                            "--dynamic_padding=false",
                                            f"--export_dir={export_dir}"))
  assert "Resuming from" in result.stderr
  again = json.loads((out / "predictions.json").read_text(encoding="utf-8"))
  assert again == predictions

  from modeling import checkpoint as ckpt_lib  # pylint: disable=g-import-not-at-top
  from modeling import config as config_lib  # pylint: disable=g-import-not-at-top
  from modeling import heads  # pylint: disable=g-import-not-at-top
  from processors import squad  # pylint: disable=g-import-not-at-top
  model = heads.BertSquad(config_lib.BertConfig.from_json_file(str(setup["config"])))
  ckpt_lib.restore_checkpoint(str(out / "model.ckpt-6"), model.named_variables())
  batch = next(iter(squad.make_squad_dataset(str(out / "eval.tf_record"), 40, 4,
                                             is_training=False)))
  inputs = [batch[k] for k in ("input_ids", "input_mask", "segment_ids")]
  start, end = model(*inputs)
  served = tf.saved_model.load(str(export_dir)).signatures["serving_default"](
      input_ids=inputs[0], input_mask=inputs[1], segment_ids=inputs[2])
  np.testing.assert_allclose(served["start_logits"].numpy(), start.numpy(), atol=1e-4)
  np.testing.assert_allclose(served["end_logits"].numpy(), end.numpy(), atol=1e-4)


def test_v2_train_with_eval_every_steps_predict_eval(tmp_path):
  setup = _setup(tmp_path, unanswerable=True)
  out = tmp_path / "out"
  result = run_script("run_squad.py", _args(
      setup, out, "--do_train", "--do_predict", "--do_eval", "--num_train_epochs=1",
      "--version_2_with_negative", "--null_score_diff_threshold=0.5",
      "--eval_every_steps=1", "--best_checkpoint_metric=HasAns_f1"))
  # Scored during training on predict_file's answers; the best weights predict.
  assert "Evaluations during training (* the kept best by HasAns_f1" in result.stderr
  assert "Using the best checkpoint" in result.stderr
  state = json.loads((out / "train_state.json").read_text())
  history = [line.split("\t") for line in
             (out / "eval_history.tsv").read_text().splitlines()]
  steps = [int(row[0]) for row in history[1:]]
  assert steps == list(range(1, steps[-1] + 1)) and len(steps) >= 2
  assert {"f1", "exact", "HasAns_f1"} <= set(history[0])
  assert (out / "best_checkpoint" / f"model.ckpt-{state['best_step']}.index").exists()
  predictions = json.loads((out / "predictions.json").read_text(encoding="utf-8"))
  null_odds = json.loads((out / "null_odds.json").read_text(encoding="utf-8"))
  assert set(predictions) == set(null_odds) and len(predictions) == 15
  for qid, diff in null_odds.items():
    assert (predictions[qid] == "") == (diff > 0.5)
  evals = read_eval_results(out / "eval_results.txt")
  official = squad_evaluate_v2_0.evaluate(_dataset(setup["dev"]), predictions,
                                          null_odds)
  for key in ("exact", "f1", "HasAns_exact", "NoAns_f1", "best_f1",
              "best_f1_thresh"):
    assert float(evals[key]) == pytest.approx(
        official[key.replace("best_", "final_")]), key
  assert evals["NoAns_total"] == "5" and evals["HasAns_total"] == "10"
  # The final predictions are the kept best checkpoint's.
  assert float(evals["HasAns_f1"]) == pytest.approx(state["best_value"])


@pytest.mark.parametrize("problem,extra,message", [
    ("v2_data", [], "is_impossible is true.*--version_2_with_negative is not set"),
    ("none", ["--max_query_length=40"], r"max_seq_length \(40\) must be greater"),
    ("none", ["--do_train=false"], "`do_train` or `do_predict` must be True"),
    ("bad_answer_only", [], "yields no usable question.*2 skipped"),
    ("none", ["--do_train=false", "--do_predict", "--eval_every_steps=2"],
     "needs --do_train and --predict_file"),
])
def test_bad_input_stops_with_a_message(tmp_path, problem, extra, message):
  setup = _setup(tmp_path)
  if problem == "v2_data":
    squad_helpers.write_squad(setup["train"], squad_helpers.synthetic_data(
        12, 0, unanswerable=True), "v2.0")
  if problem == "bad_answer_only":
    data = squad_helpers.synthetic_data(1, 0)
    for q in data[0]["paragraphs"][0]["qas"]:
      q["answers"][0]["answer_start"] = 0
    squad_helpers.write_squad(setup["train"], data)
  out = tmp_path / "out"
  result = run_script("run_squad.py", _args(setup, out, "--do_train", *extra),
                      check=False)
  assert result.returncode == 2, result.stderr[-3000:]
  assert "Traceback" not in result.stderr
  import re  # pylint: disable=g-import-not-at-top
  assert re.search(message, result.stderr, re.S), result.stderr[-3000:]
  assert not list(out.glob("*.tf_record"))
