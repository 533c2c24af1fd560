# coding=utf-8
"""Export end to end: run_classifier.py --export_dir / --export_bert_serving_dir on a
tiny fine-tuned model, then saved_model_cli, the prediction command and bert-serving
directory checks against test_results.tsv."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from cli_helpers import (LABELS, PROJECT_ROOT, checkpoint_arrays, classifier_args,
                         cli_env, run_script, write_tiny_setup)

SAVED_MODEL_CLI = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A tiny classifier fine-tuned and exported both ways by run_classifier.py."""
  tmp = tmp_path_factory.mktemp("export")
  setup = write_tiny_setup(tmp)
  out = tmp / "out"
  args = classifier_args(setup, out, "--do_train", "--do_predict",
                         "--train_batch_size=8", "--num_train_epochs=3",
                         "--learning_rate=1e-3", "--log_every_steps=100",
                         f"--export_dir={tmp / 'saved_model'}",
                         f"--export_bert_serving_dir={tmp / 'bert_serving'}")
  run_script("run_classifier.py", args)
  test_texts = [line.rsplit(";", 1)[0] for line in
                (setup["data"] / "test.txt").read_text(encoding="utf-8").splitlines()]
  probs = np.array([[float(x) for x in row.split("\t")] for row in
                    (out / "test_results.tsv").read_text().splitlines()])
  return {"setup": setup, "out": out, "saved_model": tmp / "saved_model",
          "bert_serving": tmp / "bert_serving", "texts": test_texts, "probs": probs,
          "tmp": tmp}


def _reference_features(setup, texts, max_seq_length=16):
  import tokenization  # pylint: disable=g-import-not-at-top
  from processors import features  # pylint: disable=g-import-not-at-top
  from processors.base import InputExample  # pylint: disable=g-import-not-at-top
  tokenizer = tokenization.FullTokenizer(str(setup["vocab"]), do_lower_case=True)
  feats = [features.convert_single_example(99, InputExample(f"t{i}", t, None, LABELS[0]),
                                           LABELS, max_seq_length, tokenizer)
           for i, t in enumerate(texts)]
  return {name: np.array([getattr(f, name) for f in feats], np.int32)
          for name in ("input_ids", "input_mask", "segment_ids")}


def _run_cli(*args):
  result = subprocess.run([SAVED_MODEL_CLI, *args], capture_output=True, text=True,
                          timeout=300, env=cli_env(), cwd=str(PROJECT_ROOT))
  assert result.returncode == 0, result.stderr[-4000:]
  return result.stdout


def test_saved_model_cli_show_and_run_match_test_results(trained, tmp_path):
  show = _run_cli("show", "--all", "--dir", str(trained["saved_model"]))
  for name in ("serving_default", "serving_text", "serving_text_pair"):
    assert f"signature_def['{name}']" in show
  assert "probabilities" in show and "input_ids" in show and "text_a" in show

  feats = _reference_features(trained["setup"], trained["texts"])
  np.save(tmp_path / "ids.npy", feats["input_ids"])
  np.save(tmp_path / "mask.npy", feats["input_mask"])
  np.save(tmp_path / "seg.npy", feats["segment_ids"])
  _run_cli("run", "--dir", str(trained["saved_model"]), "--tag_set", "serve",
           "--signature_def", "serving_default", "--inputs",
           f"input_ids={tmp_path / 'ids.npy'};input_mask={tmp_path / 'mask.npy'};"
           f"segment_ids={tmp_path / 'seg.npy'}", "--outdir", str(tmp_path / "ids_out"))
  probs = np.load(tmp_path / "ids_out" / "probabilities.npy")
  np.testing.assert_allclose(probs, trained["probs"], atol=1e-5)

  # The raw-text signature, through --input_exprs as a user would type it.
  texts = trained["texts"][:3]
  _run_cli("run", "--dir", str(trained["saved_model"]), "--tag_set", "serve",
           "--signature_def", "serving_text", "--input_exprs",
           f"text_a={texts!r}", "--outdir", str(tmp_path / "text_out"))
  probs = np.load(tmp_path / "text_out" / "probabilities.npy")
  np.testing.assert_allclose(probs, trained["probs"][:3], atol=1e-5)
  labels = np.load(tmp_path / "text_out" / "labels.npy", allow_pickle=True)
  assert [l.decode() for l in labels] == [LABELS[i] for i in
                                          trained["probs"][:3].argmax(axis=1)]


def test_text_signatures_match_reference_ids_and_truncation(trained):
  loaded = tf.saved_model.load(str(trained["saved_model"]))
  texts = trained["texts"]
  out = loaded.signatures["serving_text"](text_a=tf.constant(texts))
  np.testing.assert_allclose(out["probabilities"].numpy(), trained["probs"], atol=1e-5)
  np.testing.assert_array_equal(out["label_ids"].numpy(),
                                trained["probs"].argmax(axis=1))
  # Pairs, with texts long enough that _truncate_seq_pair cuts both sides, and an
  # empty text_b, which the original treats as a single sentence.
  import tokenization  # pylint: disable=g-import-not-at-top
  from processors import features  # pylint: disable=g-import-not-at-top
  from processors.base import InputExample  # pylint: disable=g-import-not-at-top
  tokenizer = tokenization.FullTokenizer(str(trained["setup"]["vocab"]))
  pairs = [(texts[0], texts[1]), (" ".join(texts[2:5]), texts[5]),
           (texts[6], " ".join(texts[7:10])), (texts[10], "")]
  feats = [features.convert_single_example(99, InputExample("p", a, b, LABELS[0]),
                                           LABELS, 16, tokenizer) for a, b in pairs]
  ids = np.array([f.input_ids for f in feats], np.int32)
  mask = np.array([f.input_mask for f in feats], np.int32)
  seg = np.array([f.segment_ids for f in feats], np.int32)
  want = loaded.signatures["serving_default"](input_ids=ids, input_mask=mask,
                                              segment_ids=seg)["probabilities"].numpy()
  got = loaded.signatures["serving_text_pair"](
      text_a=tf.constant([a for a, _ in pairs]),
      text_b=tf.constant([b for _, b in pairs]))["probabilities"].numpy()
  np.testing.assert_allclose(got, want, atol=1e-5)


def test_predict_command_matches_test_results(trained, tmp_path):
  from serving import predict as predict_lib  # pylint: disable=g-import-not-at-top
  predictor = predict_lib.Predictor(str(trained["saved_model"]))
  assert predictor.labels == LABELS
  predictions = list(predictor.predict([(t, None) for t in trained["texts"]],
                                       batch_size=7))
  np.testing.assert_allclose(np.array([p.probabilities for p in predictions]),
                             trained["probs"], atol=1e-5)

  # The command, reading stdin (one text per line; a TAB makes a pair).
  result = subprocess.run(
      [sys.executable, str(PROJECT_ROOT / "scripts/predict.py"),
       f"--export_dir={trained['saved_model']}", "--batch_size=8"],
      input="\n".join(trained["texts"]) + "\nhappy\tsad\n", capture_output=True,
      text=True, env=cli_env(), cwd=str(PROJECT_ROOT), timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  lines = result.stdout.splitlines()
  assert lines[0].split("\t") == ["label"] + LABELS
  rows = [line.split("\t") for line in lines[1:]]
  assert len(rows) == len(trained["texts"]) + 1
  np.testing.assert_allclose(np.array([[float(x) for x in r[1:]] for r in rows[:-1]]),
                             trained["probs"], atol=1e-5)
  assert [r[0] for r in rows[:-1]] == [LABELS[i] for i in
                                       trained["probs"].argmax(axis=1)]
  pair = predictor.predict_batch(["happy"], ["sad"])[0]
  np.testing.assert_allclose([float(x) for x in rows[-1][1:]], pair, atol=1e-5)

  # Clear errors: a missing directory, a directory that is not an export.
  result = run_script("scripts/predict.py", [f"--export_dir={tmp_path / 'nope'}", "x"],
                      check=False)
  assert result.returncode == 2 and "export directory not found" in result.stderr
  with pytest.raises(predict_lib.PredictError, match="not a SavedModel written"):
    predict_lib.Predictor(str(trained["bert_serving"]))


def test_bert_serving_dir_reloads_and_check_catches_doctored_dirs(trained, tmp_path):
  from modeling import checkpoint as ckpt_lib  # pylint: disable=g-import-not-at-top
  from modeling import config as config_lib  # pylint: disable=g-import-not-at-top
  from modeling import export  # pylint: disable=g-import-not-at-top
  from modeling import heads  # pylint: disable=g-import-not-at-top
  directory = trained["bert_serving"]
  assert sorted(os.listdir(directory)) == [
      "bert_config.json", "bert_model.ckpt.data-00000-of-00001",
      "bert_model.ckpt.index", "checkpoint", "vocab.txt"]
  arrays = checkpoint_arrays(directory / "bert_model.ckpt")
  assert not [n for n in arrays if n.endswith(("adam_m", "adam_v")) or
              n == "global_step"]
  assert arrays["output_weights"].shape == (len(LABELS), 32)
  config = json.loads((directory / "bert_config.json").read_text())
  assert config["hidden_size"] == 32 and config["hidden_act"] == "gelu"
  assert len(export.verify_bert_serving_dir(directory)) == 5 + 2 * 16 + 2

  # A fresh classifier restored from the directory gives test_results.tsv again.
  model = heads.BertClassifier(config_lib.BertConfig.from_dict(config), len(LABELS))
  ckpt_lib.restore_checkpoint(str(directory / "bert_model.ckpt"),
                              model.named_variables())
  feats = _reference_features(trained["setup"], trained["texts"])
  logits = model(feats["input_ids"], feats["input_mask"], feats["segment_ids"])
  np.testing.assert_allclose(tf.nn.softmax(logits).numpy(), trained["probs"],
                             atol=1e-5)

  # The self-check fails on a doctored directory: one variable renamed.
  doctored = tmp_path / "doctored"
  shutil.copytree(directory, doctored)
  renamed = {("bert/encoder/layer_1/attention/self/kezy/kernel"
              if n == "bert/encoder/layer_1/attention/self/key/kernel" else n): v
             for n, v in arrays.items()}
  ckpt_lib.save_checkpoint(str(doctored / "bert_model.ckpt"),
                           {n: tf.constant(v) for n, v in renamed.items()})
  with pytest.raises(export.ExportError,
                     match="layer_1/attention/self/key/kernel missing"):
    export.verify_bert_serving_dir(doctored)
  # ... or a layer missing altogether (config says 3 layers).
  config["num_hidden_layers"] = 3
  (doctored / "bert_config.json").write_text(json.dumps(config))
  with pytest.raises(export.ExportError, match="layer_2/output/LayerNorm/beta missing"):
    export.verify_bert_serving_dir(doctored)


def test_export_refuses_foreign_directory_and_replaces_previous_export(trained,
                                                                       tmp_path):
  from modeling import export  # pylint: disable=g-import-not-at-top
  foreign = tmp_path / "foreign"
  foreign.mkdir()
  (foreign / "notes.txt").write_text("mine")
  with pytest.raises(export.ExportError, match="refusing to overwrite"):
    export.check_export_targets(str(foreign), None)
  with pytest.raises(export.ExportError, match="refusing to overwrite"):
    export.check_export_targets(None, str(foreign))
  # run_classifier refuses before doing any work.
  result = run_script("run_classifier.py", classifier_args(
      trained["setup"], trained["out"], "--do_predict", f"--export_dir={foreign}"),
                      check=False)
  assert result.returncode == 2 and "refusing to overwrite" in result.stderr
  assert (foreign / "notes.txt").read_text() == "mine"
  # A previous export is fine to replace.
  export.check_export_targets(str(trained["saved_model"]),
                              str(trained["bert_serving"]))


def test_standalone_export_command_from_an_output_dir(trained, tmp_path):
  """scripts/export_model.py re-exports an existing run_classifier.py output_dir."""
  from modeling import export  # pylint: disable=g-import-not-at-top
  from serving import predict as predict_lib  # pylint: disable=g-import-not-at-top
  saved_model, bert_serving = tmp_path / "saved_model", tmp_path / "bert_serving"
  run_script("scripts/export_model.py", [
      f"--output_dir={trained['out']}", f"--vocab_file={trained['setup']['vocab']}",
      f"--export_dir={saved_model}", f"--export_bert_serving_dir={bert_serving}"])
  # Labels, casing and max_seq_length came from classifier_config.json; the weights
  # from the latest checkpoint: the same probabilities as test_results.tsv.
  predictor = predict_lib.Predictor(str(saved_model))
  assert predictor.labels == LABELS
  probs = np.array([p.probabilities for p in
                    predictor.predict([(t, None) for t in trained["texts"]])])
  np.testing.assert_allclose(probs, trained["probs"], atol=1e-5)
  assert len(export.verify_bert_serving_dir(bert_serving)) == 5 + 2 * 16 + 2

  # Mistakes stop with one message and exit code 2, before anything is written.
  result = run_script("scripts/export_model.py", [
      f"--output_dir={trained['out']}", f"--vocab_file={trained['setup']['vocab']}"],
                      check=False)
  assert result.returncode == 2 and "--export_dir and/or" in result.stderr
  result = run_script("scripts/export_model.py", [
      f"--output_dir={tmp_path}", f"--vocab_file={trained['setup']['vocab']}",
      f"--export_dir={tmp_path / 'x'}"], check=False)
  assert result.returncode == 2 and "classifier_config.json not found" in result.stderr
  result = run_script("scripts/export_model.py", [
      f"--output_dir={trained['out']}", "--spm_model_file=any.model",
      f"--export_bert_serving_dir={tmp_path / 'bs'}"], check=False)
  assert result.returncode == 2 and "needs a WordPiece vocab.txt" in result.stderr
  assert not (tmp_path / "x").exists() and not (tmp_path / "bs").exists()


@pytest.mark.parametrize("onednn", [None, "1", "0"])
def test_saved_model_in_plain_tensorflow_matches_test_results(trained, tmp_path, onednn):
  # A process that imports nothing of this project, with TensorFlow's own oneDNN
  # default (None: on for CPUs with AVX-512), forced on, or off: grappler's oneDNN
  # remapper rewrites LayerNorm patterns in loaded graphs, which must not change
  # the probabilities.
  env = cli_env()
  env.pop("TF_ENABLE_ONEDNN_OPTS", None)
  if onednn is not None:
    env["TF_ENABLE_ONEDNN_OPTS"] = onednn
  code = ("import sys, numpy as np, tensorflow as tf\n"
          "f = tf.saved_model.load(sys.argv[1]).signatures['serving_text']\n"
          "texts = open(sys.argv[2], encoding='utf-8').read().splitlines()\n"
          "np.save(sys.argv[3], f(text_a=tf.constant(texts))['probabilities'].numpy())\n")
  (tmp_path / "texts.txt").write_text("\n".join(trained["texts"]), encoding="utf-8")
  result = subprocess.run(
      [sys.executable, "-c", code, str(trained["saved_model"]),
       str(tmp_path / "texts.txt"), str(tmp_path / "probs.npy")],
      capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  np.testing.assert_allclose(np.load(tmp_path / "probs.npy"), trained["probs"],
                             atol=1e-5)
