"""Unit tests of the training package's pieces: metrics, strategy choice, dev split."""

import collections

import numpy as np
import pytest
import tensorflow as tf
from sklearn import metrics as sk

from processors import InputExample
from processors.split import stratified_split
from training import distribution
from training import metrics as metrics_lib


def test_classification_metrics_match_sklearn():
  rng = np.random.RandomState(3)
  labels = rng.randint(0, 4, 500)
  predictions = np.where(rng.rand(500) < 0.6, labels, rng.randint(0, 4, 500))
  names = ["a", "b c", "d=e", "f"]
  result = metrics_lib.classification_metrics(labels, predictions, names)
  assert result["eval_accuracy"] == pytest.approx(sk.accuracy_score(labels, predictions))
  assert result["eval_mcc"] == pytest.approx(sk.matthews_corrcoef(labels, predictions))
  assert result["eval_macro_f1"] == pytest.approx(
      sk.f1_score(labels, predictions, average="macro"))
  precision = sk.precision_score(labels, predictions, average=None)
  recall = sk.recall_score(labels, predictions, average=None)
  f1 = sk.f1_score(labels, predictions, average=None)
  for i, key in enumerate(["a", "b_c", "d_e", "f"]):
    assert result[f"eval_precision_{key}"] == pytest.approx(precision[i])
    assert result[f"eval_recall_{key}"] == pytest.approx(recall[i])
    assert result[f"eval_f1_{key}"] == pytest.approx(f1[i])
  assert result["eval_confusion_matrix"] == sk.confusion_matrix(labels, predictions).tolist()


def test_binary_mcc_and_degenerate_cases():
  labels = np.array([0, 0, 1, 1, 1, 0, 1, 0])
  predictions = np.array([0, 1, 1, 1, 0, 0, 1, 0])
  result = metrics_lib.classification_metrics(labels, predictions, ["neg", "pos"])
  assert result["eval_mcc"] == pytest.approx(sk.matthews_corrcoef(labels, predictions))
  # A constant predictor has an undefined MCC; GLUE (and sklearn) report 0.
  constant = metrics_lib.classification_metrics(labels, np.zeros(8, int), ["neg", "pos"])
  assert constant["eval_mcc"] == 0.0
  assert constant["eval_precision_pos"] == 0.0 and constant["eval_f1_pos"] == 0.0


def test_resolve_strategy_name():
  assert distribution.resolve_strategy_name(None, use_tpu=False) == "one_device"
  assert distribution.resolve_strategy_name(None, use_tpu=True) == "tpu"
  assert distribution.resolve_strategy_name("tpu", use_tpu=True) == "tpu"
  assert distribution.resolve_strategy_name("Mirrored", use_tpu=False) == "mirrored"
  with pytest.raises(ValueError, match="conflicts"):
    distribution.resolve_strategy_name("mirrored", use_tpu=True)
  with pytest.raises(ValueError, match="one_device, mirrored"):
    distribution.resolve_strategy_name("horovod", use_tpu=False)


def test_tpu_strategy_needs_a_name():
  with pytest.raises(ValueError, match="--tpu_name"):
    distribution.get_strategy("tpu")


def test_multi_worker_needs_tf_config(monkeypatch):
  monkeypatch.delenv("TF_CONFIG", raising=False)
  with pytest.raises(ValueError, match="TF_CONFIG"):
    distribution.get_strategy("multi_worker_mirrored")


def test_stratified_split_keeps_label_shares():
  labels = ["joy"] * 50 + ["sadness"] * 30 + ["surprise"] * 3 + ["love"] * 1
  examples = [InputExample(guid=f"train-{i}", text_a=f"t{i}", label=l)
              for i, l in enumerate(labels)]
  train, dev = stratified_split(examples, 0.2, seed=1)
  assert len(train) + len(dev) == len(examples)
  assert not {e.guid for e in train} & {e.guid for e in dev}
  counts = collections.Counter(e.label for e in dev)
  assert counts == {"joy": 10, "sadness": 6, "surprise": 1}
  # File order is kept within each part.
  assert [e.guid for e in train] == sorted((e.guid for e in train),
                                           key=lambda g: int(g.split("-")[1]))
  again, _ = stratified_split(examples, 0.2, seed=1)
  assert [e.guid for e in again] == [e.guid for e in train]
  other, _ = stratified_split(examples, 0.2, seed=2)
  assert [e.guid for e in other] != [e.guid for e in train]
  with pytest.raises(ValueError):
    stratified_split(examples, 1.0, seed=1)


def test_predict_keeps_order_and_traces_once_over_ragged_batches():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from training import loop  # pylint: disable=g-import-not-at-top
  traces = []

  def predict_fn(features):
    traces.append(features["x"].shape)  # runs only while tracing
    return {"row_sum": tf.reduce_sum(features["x"], axis=1),
            "first": features["x"][:, 0]}

  # Batches of 3 rows whose width varies as dynamic padding makes it vary.
  batches = [np.full([3 if i < 5 else 2, 8 * (i % 4 + 1)], i, np.float32)
             for i in range(6)]
  dataset = tf.data.Dataset.from_generator(
      lambda: ({"x": b} for b in batches),
      output_signature={"x": tf.TensorSpec([None, None], tf.float32)})
  out = loop.predict(tf.distribute.OneDeviceStrategy("/cpu:0"), predict_fn, dataset)
  np.testing.assert_array_equal(out["first"], np.repeat(np.arange(6), [3] * 5 + [2]))
  np.testing.assert_array_equal(
      out["row_sum"], np.concatenate([b.sum(axis=1) for b in batches]))
  assert len(traces) == 1, traces


def test_predict_puts_length_sorted_batches_back_in_input_order():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from training import loop  # pylint: disable=g-import-not-at-top
  seen = []

  def predict_fn(features):
    seen.append(sorted(features))  # runs only while tracing
    return {"value": features["x"] * 10}

  # Batches as a length-sorted dataset delivers them: rows out of input order,
  # each carrying its position in the input.
  index = [[4, 0, 2], [5, 1], [3]]
  dataset = tf.data.Dataset.from_generator(
      lambda: ({"x": np.array(i, np.int32), "position": np.array(i, np.int32)}
               for i in index),
      output_signature={"x": tf.TensorSpec([None], tf.int32),
                        "position": tf.TensorSpec([None], tf.int32)})
  out = loop.predict(tf.distribute.OneDeviceStrategy("/cpu:0"), predict_fn, dataset,
                     index_key="position")
  assert sorted(out) == ["value"]
  np.testing.assert_array_equal(out["value"], np.arange(6) * 10)
  assert seen == [["x"]]  # the index is not passed to predict_fn


def test_pipelines_run_without_the_autotune_thread(monkeypatch):
  # Deleting an iterator could wait out tf.data's autotuning period (up to a
  # minute) after training: the loop's training and prediction datasets run
  # without that thread, and still shard by data and keep input order.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from training import loop  # pylint: disable=g-import-not-at-top
  train = loop._shard_by_data(tf.data.Dataset.range(8))
  assert train.options().autotune.enabled is False
  assert (train.options().experimental_distribute.auto_shard_policy ==
          tf.data.experimental.AutoShardPolicy.DATA)
  switched_off = []
  real = loop._without_autotune_thread
  monkeypatch.setattr(loop, "_without_autotune_thread",
                      lambda d: switched_off.append(d) or real(d))
  features = tf.data.Dataset.from_tensor_slices({"x": np.arange(10.0)}).batch(4)
  out = loop.predict(tf.distribute.get_strategy(), lambda f: {"y": f["x"] * 2.0},
                     features)
  np.testing.assert_array_equal(out["y"], np.arange(10.0) * 2.0)
  assert switched_off == [features]


def test_predict_logs_progress(caplog):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from training import loop  # pylint: disable=g-import-not-at-top
  known = tf.data.Dataset.from_tensor_slices({"x": np.arange(10.0)}).batch(4)
  unknown = known.filter(lambda f: True)  # tf.data cannot tell its length
  # absl's logger may have been set to a higher level by an earlier test.
  with caplog.at_level("INFO"), caplog.at_level("INFO", logger="absl"):
    loop.predict(tf.distribute.get_strategy(), lambda f: {"y": f["x"]}, known,
                 what="Evaluating", log_every_secs=0)
    loop.predict(tf.distribute.get_strategy(), lambda f: {"y": f["x"]}, unknown,
                 log_every_secs=0)
  lines = [r.getMessage() for r in caplog.records]
  assert any(l.startswith("Evaluating: batch 2/3 (66%)") and "left" in l
             for l in lines), lines
  assert any(l.startswith("Evaluating: 10 examples in") for l in lines), lines
  assert any(l.startswith("Predicting: batch 3,") for l in lines), lines


def test_output_dir_of_an_older_run_with_the_old_gelu_spelling_resumes(tmp_path):
  # A run written before "gelu_exact" became "gelu" + "gelu_approximate": false
  # is the same model and resumes; another model is still refused.
  import json  # pylint: disable=g-import-not-at-top
  from modeling import checkpoint as ckpt_lib  # pylint: disable=g-import-not-at-top
  from modeling.config import BertConfig  # pylint: disable=g-import-not-at-top
  from training import cli  # pylint: disable=g-import-not-at-top
  prefix = str(tmp_path / "model.ckpt-3")
  ckpt_lib.save_checkpoint(prefix, {"w": tf.Variable([1.0])})
  ckpt_lib.update_checkpoint_state(str(tmp_path), prefix, [prefix])
  old = BertConfig(vocab_size=10, hidden_act="gelu_exact").to_dict()
  old.update(hidden_act="gelu_exact")
  old.pop("gelu_approximate")
  (tmp_path / "run.json").write_text(json.dumps({"bert_config": old, "labels": ["a"]}))
  now = {"bert_config": BertConfig(vocab_size=10, hidden_act="gelu_exact").to_dict(),
         "labels": ["a"]}
  assert cli.check_output_dir(str(tmp_path), "run.json", now, overwrite=False)
  other = {"bert_config": BertConfig(vocab_size=10).to_dict(), "labels": ["a"]}
  with pytest.raises(cli.UsageError, match="bert_config differs"):
    cli.check_output_dir(str(tmp_path), "run.json", other, overwrite=False)
