#!/usr/bin/env python
"""Converts BERT weights between Hugging Face and Google's original checkpoint format.

  python scripts/convert_checkpoint.py hf_to_bert --hf_dir HF_DIR --output_dir OUT
      HF_DIR: config.json + model.safetensors (or pytorch_model.bin, needs torch)
              + vocab.txt
      OUT:    bert_config.json + bert_model.ckpt.{index,data-00000-of-00001} + vocab.txt

  python scripts/convert_checkpoint.py bert_to_hf --bert_dir BERT_DIR --output_dir OUT
      BERT_DIR: bert_config.json + bert_model.ckpt.* + vocab.txt
      OUT:      config.json + model.safetensors + vocab.txt

Only the encoder (bert/...) is converted; heads (MLM/NSP, classifier), position_ids
buffers and optimizer state are listed as ignored. The activation is kept faithful:
Hugging Face "gelu" (exact erf) is written "hidden_act": "gelu" with
"gelu_approximate": false (bert-as-service computes that "gelu" in the erf form
too), "gelu_new"/"gelu_pytorch_tanh" become the original "gelu" (tanh
approximation), and back.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if __name__ == "__main__":  # a program: TensorFlow's environment first
  from training import environment  # pylint: disable=g-import-not-at-top
  environment.configure()

from modeling import convert  # pylint: disable=g-import-not-at-top,wrong-import-position


def main(argv=None):
  """Parses arguments, runs the conversion and prints a JSON summary.

  Args:
    argv: argument list (defaults to sys.argv[1:]).

  Returns:
    Process exit code.
  """
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest="direction", required=True)
  p = sub.add_parser("hf_to_bert", help="Hugging Face directory -> original checkpoint")
  p.add_argument("--hf_dir", required=True,
                 help="Directory with config.json, model.safetensors and vocab.txt.")
  p.add_argument("--output_dir", required=True,
                 help="New (or empty) directory for the original-format checkpoint.")
  p = sub.add_parser("bert_to_hf", help="original checkpoint -> Hugging Face directory")
  p.add_argument("--bert_dir", required=True,
                 help="Directory with bert_config.json, bert_model.ckpt.* and vocab.txt.")
  p.add_argument("--output_dir", required=True,
                 help="New (or empty) directory for the Hugging Face files.")
  args = parser.parse_args(argv)
  try:
    if args.direction == "hf_to_bert":
      report = convert.hf_to_bert(args.hf_dir, args.output_dir)
    else:
      report = convert.bert_to_hf(args.bert_dir, args.output_dir)
  except convert.ConversionError as e:
    print("error: %s" % e, file=sys.stderr)
    return 1
  summary = {"output_dir": report.output_dir, "converted": len(report.converted),
             "ignored": report.ignored, "hidden_act": report.config.get("hidden_act")}
  if "gelu_approximate" in report.config:
    summary["gelu_approximate"] = report.config["gelu_approximate"]
  print(json.dumps(summary))
  return 0


if __name__ == "__main__":
  sys.exit(main())
