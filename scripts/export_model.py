# coding=utf-8
"""Exports a fine-tuned classifier as a SavedModel and/or a bert-as-service directory.

From a run_classifier.py output directory (labels, max_seq_length, casing and model
config come from its classifier_config.json; weights from its latest checkpoint,
--checkpoint, or best_checkpoint/ with --use_best):

  python scripts/export_model.py --output_dir=out/emotion --vocab_file=$BERT_DIR/vocab.txt \
      --export_dir=out/emotion/export --export_bert_serving_dir=out/emotion/bert_serving

From a plain checkpoint:

  python scripts/export_model.py --checkpoint=ckpt/model.ckpt-900 \
      --bert_config_file=$BERT_DIR/bert_config.json --vocab_file=$BERT_DIR/vocab.txt \
      --labels=negative,positive --max_seq_length=128 --export_dir=/tmp/export
"""

import json
import os
import sys

from absl import app
from absl import flags
from absl import logging

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if __name__ == "__main__":  # a program: TensorFlow's environment first
  from training import environment  # pylint: disable=g-import-not-at-top
  environment.configure()
from training import cli  # pylint: disable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS

flags.DEFINE_string("output_dir", None, "A run_classifier.py output directory.")
flags.DEFINE_string("checkpoint", None, "Checkpoint prefix to export (default: the "
                    "latest in --output_dir).")
flags.DEFINE_bool("use_best", False, "Export --output_dir/best_checkpoint (written "
                  "with --eval_every_steps).")
flags.DEFINE_string("bert_config_file", None, "bert_config.json (default: the one "
                    "recorded in --output_dir/classifier_config.json).")
flags.DEFINE_string("vocab_file", None, "The WordPiece vocab the model was trained "
                    "with.")
flags.DEFINE_string("spm_model_file", None, "A SentencePiece model instead of a vocab.")
flags.DEFINE_string("labels", None, "Comma-separated label names in label-id order "
                    "(default: from classifier_config.json).")
flags.DEFINE_integer("max_seq_length", None, "Truncation length of the raw-text "
                     "signatures (default: from classifier_config.json, else 128).")
flags.DEFINE_bool("do_lower_case", None, "Casing (default: from "
                  "classifier_config.json, else True).")
flags.DEFINE_string("export_dir", None, "Where to write the SavedModel.")
flags.DEFINE_string("export_bert_serving_dir", None, "Where to write the "
                    "bert-as-service model directory.")
flags.DEFINE_enum("export_precision", "float32", ["float32", "bfloat16", "float16"],
                  "Matmul dtype of the SavedModel (weights and outputs stay float32).")


def _settings():
  """Merges classifier_config.json of --output_dir with the flags (flags win)."""
  from modeling import config as config_lib  # pylint: disable=g-import-not-at-top
  recorded = {}
  if FLAGS.output_dir:
    path = os.path.join(FLAGS.output_dir, "classifier_config.json")
    if not os.path.exists(path):
      raise cli.UsageError(f"{path} not found: --output_dir must be a run_classifier.py "
                       "output directory")
    with open(path, encoding="utf-8") as f:
      recorded = json.load(f)
  if FLAGS.bert_config_file:
    bert_config = config_lib.BertConfig.from_json_file(FLAGS.bert_config_file)
  elif "bert_config" in recorded:
    bert_config = config_lib.BertConfig.from_dict(recorded["bert_config"],
                                                  source="classifier_config.json")
  else:
    raise cli.UsageError("pass --bert_config_file (or an --output_dir with "
                     "classifier_config.json)")
  labels = (FLAGS.labels.split(",") if FLAGS.labels else recorded.get("label_list"))
  if not labels:
    raise cli.UsageError("pass --labels (or an --output_dir with classifier_config.json)")
  max_seq_length = FLAGS.max_seq_length or recorded.get("max_seq_length", 128)
  do_lower_case = (FLAGS.do_lower_case if FLAGS.do_lower_case is not None
                   else recorded.get("do_lower_case", True))
  return bert_config, labels, max_seq_length, do_lower_case


def _checkpoint():
  """The checkpoint prefix to export."""
  from modeling import checkpoint as ckpt_lib  # pylint: disable=g-import-not-at-top
  if FLAGS.checkpoint:
    return ckpt_lib.resolve_checkpoint_prefix(FLAGS.checkpoint)
  if not FLAGS.output_dir:
    raise cli.UsageError("pass --output_dir or --checkpoint")
  if FLAGS.use_best:
    return ckpt_lib.resolve_checkpoint_prefix(os.path.join(FLAGS.output_dir,
                                                           "best_checkpoint"))
  return ckpt_lib.resolve_checkpoint_prefix(FLAGS.output_dir)


def main(_):
  logging.set_verbosity(logging.INFO)
  from modeling import checkpoint as ckpt_lib  # pylint: disable=g-import-not-at-top
  from modeling import export as export_lib  # pylint: disable=g-import-not-at-top
  from modeling import heads  # pylint: disable=g-import-not-at-top
  if not FLAGS.export_dir and not FLAGS.export_bert_serving_dir:
    raise cli.UsageError("pass --export_dir and/or --export_bert_serving_dir")
  if not FLAGS.vocab_file and not FLAGS.spm_model_file:
    raise cli.UsageError("pass --vocab_file (or --spm_model_file)")
  export_lib.check_export_targets(FLAGS.export_dir, FLAGS.export_bert_serving_dir,
                                  FLAGS.spm_model_file)
  bert_config, labels, max_seq_length, do_lower_case = _settings()
  prefix = _checkpoint()
  model = heads.BertClassifier(bert_config, len(labels))
  # Strict: every model variable must be in the checkpoint (slots may be extra).
  ckpt_lib.restore_checkpoint(prefix, model.named_variables())
  logging.info("Exporting %s (labels %s)", prefix, labels)
  export_lib.export_classifier(
      model, bert_config, labels, export_dir=FLAGS.export_dir,
      bert_serving_dir=FLAGS.export_bert_serving_dir, vocab_file=FLAGS.vocab_file,
      spm_model_file=FLAGS.spm_model_file, do_lower_case=do_lower_case,
      max_seq_length=max_seq_length, precision=FLAGS.export_precision)


def run(argv):
  """Runs main, turning user errors into one message and exit code 2."""
  cli.run_main(main, argv, "export_model.py")


def console_main():
  """Runs the command line (installed as the `bert-export-model` console script)."""
  app.run(run)


if __name__ == "__main__":
  console_main()
