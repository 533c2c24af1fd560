# coding=utf-8
"""Classifies texts with an exported classifier SavedModel (run_classifier.py --export_dir).

  python scripts/predict.py --export_dir=out/emotion/export "i feel great" "so sad"
  python scripts/predict.py --export_dir=out/emotion/export --input_file=texts.txt
  cat texts.txt | python scripts/predict.py --export_dir=out/emotion/export --format=jsonl

Input: one text per line, or `text_a<TAB>text_b` for sentence pairs. Output, one line
per input in input order: TSV (header `label<TAB><class names...>`, then the predicted
label and each class probability) or JSON lines ({"text", "label", "probabilities"}).
The model is loaded once and texts go through it in batches of --batch_size;
tokenization runs inside the SavedModel with the ids of tokenization.FullTokenizer.
"""

import os
import sys

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if __name__ == "__main__":  # a program: TensorFlow's environment first
  from training import environment  # pylint: disable=g-import-not-at-top
  environment.configure()
from training import cli  # pylint: disable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS

flags.DEFINE_string("export_dir", None, "SavedModel directory written by "
                    "run_classifier.py --export_dir or scripts/export_model.py.")
flags.DEFINE_string("input_file", None, "Text file, one text (or text_a<TAB>text_b) "
                    "per line. Without it: the texts given as arguments, else stdin.")
flags.DEFINE_enum("format", "tsv", ["tsv", "jsonl"], "Output format.")
flags.DEFINE_integer("batch_size", 32, "Texts per model call.")
flags.DEFINE_bool("header", True, "Print the TSV header line.")


def _read_inputs(argv):
  """Returns the list of input lines (arguments, --input_file or stdin)."""
  if len(argv) > 1 and FLAGS.input_file:
    raise cli.UsageError("pass texts as arguments or --input_file, not both")
  if len(argv) > 1:
    return list(argv[1:])
  if FLAGS.input_file:
    if not os.path.isfile(FLAGS.input_file):
      raise cli.UsageError(f"--input_file={FLAGS.input_file} does not exist")
    with open(FLAGS.input_file, encoding="utf-8") as f:
      return f.read().splitlines()
  if sys.stdin.isatty():
    raise cli.UsageError("no input: pass texts as arguments, --input_file, or pipe "
                     "lines to stdin")
  return sys.stdin.read().splitlines()


def main(argv):
  from serving import predict as predict_lib  # pylint: disable=g-import-not-at-top
  if not FLAGS.export_dir:
    raise cli.UsageError("--export_dir is required")
  lines = _read_inputs(argv)
  if not lines:
    raise cli.UsageError("empty input: no text to classify")
  predictor = predict_lib.Predictor(FLAGS.export_dir)
  pairs = [predict_lib.parse_line(line) for line in lines]
  out = sys.stdout
  if FLAGS.format == "tsv" and FLAGS.header:
    out.write(predict_lib.tsv_header(predictor.labels) + "\n")
  for prediction in predictor.predict(pairs, batch_size=FLAGS.batch_size):
    if FLAGS.format == "tsv":
      out.write(predict_lib.format_tsv(prediction) + "\n")
    else:
      out.write(predict_lib.format_jsonl(prediction, predictor.labels) + "\n")
  out.flush()


def run(argv):
  """Runs main, turning user errors into one message and exit code 2."""
  from serving import predict as predict_lib  # pylint: disable=g-import-not-at-top
  cli.run_main(main, argv, "predict.py",
               user_errors=(predict_lib.PredictError, UnicodeDecodeError))


def console_main():
  """Runs the command line (installed as the `bert-predict` console script)."""
  app.run(run)


if __name__ == "__main__":
  console_main()
