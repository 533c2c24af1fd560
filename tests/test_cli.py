"""The script-level pieces run_classifier.py and run_squad.py share (training/cli.py)."""

import json

import numpy as np
import pytest

from modeling import checkpoint as ckpt_lib
from modeling import export as export_lib
from modeling.config import BertConfig
from training import cli
from training import files
import tokenization


def _write_checkpoint(output_dir, step=3):
  prefix = str(output_dir / f"model.ckpt-{step}")
  ckpt_lib.save_checkpoint(prefix, {"w": np.ones([2], np.float32)})
  ckpt_lib.update_checkpoint_state(str(output_dir), prefix, [prefix])
  return prefix


def test_check_output_dir_resumes_refuses_and_overwrites(tmp_path):
  run = {"task_name": "emotion", "max_seq_length": 128, "bert_config": {"a": 1}}
  assert cli.check_output_dir(str(tmp_path), "run.json", run, overwrite=False) is False
  _write_checkpoint(tmp_path)
  cli.write_run_config(str(tmp_path), "run.json", run)
  assert json.loads((tmp_path / "run.json").read_text()) == run
  # Same run: its checkpoints are resumed.
  assert cli.check_output_dir(str(tmp_path), "run.json", run, overwrite=False) is True

  other = dict(run, max_seq_length=64, bert_config={"a": 2})
  with pytest.raises(cli.UsageError) as e:
    cli.check_output_dir(str(tmp_path), "run.json", other, overwrite=False)
  message = str(e.value)
  assert "max_seq_length: was 128, now 64" in message
  assert "bert_config differs" in message and "--overwrite_output_dir" in message
  assert (tmp_path / "model.ckpt-3.index").exists()  # nothing deleted unasked

  assert cli.check_output_dir(str(tmp_path), "run.json", other, overwrite=True) is False
  assert not list(tmp_path.glob("model.ckpt-*"))


def test_checkpoints_without_a_run_config_are_resumed(tmp_path):
  _write_checkpoint(tmp_path)
  assert cli.check_output_dir(str(tmp_path), "run.json", {"x": 1}, False) is True


def _vocab(path, tokens):
  path.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + tokens) + "\n")
  return str(path)


def test_check_vocab_fits_size_and_casing(tmp_path):
  config = BertConfig(vocab_size=10, hidden_size=8, num_hidden_layers=1,
                      num_attention_heads=2, intermediate_size=8)
  uncased = _vocab(tmp_path / "uncased.txt", ["the", "cat"])
  tok = tokenization.FullTokenizer(uncased, do_lower_case=False)
  with pytest.raises(cli.UsageError, match="uncased.txt has no upper-case entries"):
    cli.check_vocab_fits(tok, config, False, uncased)
  cli.check_vocab_fits(tok, config, True, uncased)

  cased = _vocab(tmp_path / "cased.txt", [f"W{i}" for i in range(1000)])
  tok = tokenization.FullTokenizer(cased, do_lower_case=True)
  big = BertConfig(vocab_size=2000, hidden_size=8, num_hidden_layers=1,
                   num_attention_heads=2, intermediate_size=8)
  with pytest.raises(cli.UsageError, match="1000 upper-case entries"):
    cli.check_vocab_fits(tok, big, True, cased)
  with pytest.raises(cli.UsageError, match="1004 entries but the model's vocab_size "
                     "is 10"):
    cli.check_vocab_fits(tok, config, False, cased)


def test_format_eval_results_is_sorted_key_value_lines():
  text = cli.format_eval_results({"eval_loss": 0.5, "eval_accuracy": 0.75,
                                  "eval_confusion_matrix": [[1, 0], [0, 1]]})
  assert text == ("eval_accuracy = 0.75\neval_confusion_matrix = [[1, 0], [0, 1]]\n"
                  "eval_loss = 0.5\n")


def test_write_text_atomic_replaces_and_leaves_no_temporary(tmp_path):
  path = tmp_path / "eval_results.txt"
  files.write_text_atomic(str(path), "old\n")
  files.write_text_atomic(str(path), "new\n")
  assert path.read_text() == "new\n"
  assert [p.name for p in tmp_path.iterdir()] == ["eval_results.txt"]


def test_bert_serving_export_with_sentencepiece_is_refused_before_work(tmp_path):
  with pytest.raises(export_lib.ExportError, match="needs a WordPiece vocab.txt"):
    export_lib.check_export_targets(None, str(tmp_path / "bs"),
                                    spm_model_file="m.model")
  assert not (tmp_path / "bs").exists()


def test_padding_multiple_follows_the_device_and_the_flags(monkeypatch):
  import types  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  def flags_of(dynamic_padding=True, distribution_strategy="",
               use_tpu=False):
    return types.SimpleNamespace(dynamic_padding=dynamic_padding,
                                 distribution_strategy=distribution_strategy,
                                 use_tpu=use_tpu)

  assert cli.padding_multiple(flags_of(dynamic_padding=False)) is None
  assert cli.padding_multiple(flags_of(use_tpu=True)) is None
  # No GPU visible: exact lengths.
  monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
  assert cli.padding_multiple(flags_of()) == cli.DYNAMIC_PADDING_MULTIPLE_CPU == 1
  # With a GPU visible, lengths are rounded up to multiples of 8.
  monkeypatch.setattr(
      tf.config, "list_physical_devices",
      lambda kind=None: ["/physical_device:GPU:0"] if kind == "GPU" else [])
  assert cli.padding_multiple(flags_of()) == cli.DYNAMIC_PADDING_MULTIPLE_GPU == 8


def test_storage_failures_become_one_line_naming_the_path():
  import errno  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  full = tf.errors.ResourceExhaustedError(
      None, None, "{{function_node __wrapped__SaveV2_dtypes_1_device_/job:localhost}} "
      "/out/.tmp-ab-model.ckpt-4.data-00000-of-00001.tempstate1; No space left on "
      "device [Op:SaveV2]")
  assert cli.storage_failure_message(full).startswith(
      "cannot write /out/.tmp-ab-model.ckpt-4.data-00000-of-00001.tempstate1; No space "
      "left on device. The checkpoints and outputs written before are intact")
  assert cli.storage_failure_message(
      PermissionError(errno.EACCES, "Permission denied", "/data/train.tsv")).startswith(
          "cannot access /data/train.tsv: Permission denied.")
  assert cli.storage_failure_message(OSError(errno.EROFS, "Read-only file system",
                                             "/out/x")).startswith("cannot write /out/x")
  assert cli.storage_failure_message(ValueError("a bug")) is None
  assert cli.storage_failure_message(tf.errors.InvalidArgumentError(
      None, None, "shape mismatch")) is None
