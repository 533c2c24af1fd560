"""A classifier SavedModel in plain TensorFlow: oneDNN at its default against off.

    .venv/bin/python bench/bench_saved_model_onednn.py --export_dir EXPORT \
      --pairs_tsv ../shared/data/glue/MRPC/dev.tsv

Loads the export (run_classifier.py --export_dir / scripts/export_model.py) in two
fresh processes that import nothing of this project, one with TensorFlow's own
oneDNN default (TF_ENABLE_ONEDNN_OPTS unset: on for CPUs with AVX-512) and one with
TF_ENABLE_ONEDNN_OPTS=0, runs serving_text_pair over the GLUE-format pairs (columns
3 and 4 as MRPC's dev.tsv; column 0 the label) and prints one JSON line: the largest
probability difference, whether the predicted labels agree, and the accuracy.
grappler's oneDNN remapper rewrites LayerNorm patterns in loaded graphs; this shows
whether that changes what the export computes.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

_WORKER = r"""
import csv, sys, numpy as np, tensorflow as tf
rows = list(csv.reader(open(sys.argv[2], encoding="utf-8"), delimiter="\t",
                       quoting=csv.QUOTE_NONE))[1:]
a, b = [r[3] for r in rows], [r[4] for r in rows]
f = tf.saved_model.load(sys.argv[1]).signatures["serving_text_pair"]
out = [f(text_a=tf.constant(a[i:i + 64]), text_b=tf.constant(b[i:i + 64]))
       ["probabilities"].numpy() for i in range(0, len(a), 64)]
np.save(sys.argv[3], np.concatenate(out))
"""


def _probabilities(export_dir, tsv, onednn, work):
  env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
  if onednn is not None:
    env["TF_ENABLE_ONEDNN_OPTS"] = onednn
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  path = os.path.join(work, f"probs_{onednn}.npy")
  subprocess.run([sys.executable, "-c", _WORKER, os.path.abspath(export_dir),
                  os.path.abspath(tsv), path], env=env,
                 check=True, cwd=work)
  return np.load(path)


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--export_dir", required=True)
  parser.add_argument("--pairs_tsv", required=True)
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as work:
    default = _probabilities(args.export_dir, args.pairs_tsv, None, work)
    off = _probabilities(args.export_dir, args.pairs_tsv, "0", work)
  with open(args.pairs_tsv, encoding="utf-8") as f:
    labels = np.array([int(line.split("\t")[0]) for line in f.read().splitlines()[1:]])
  print(json.dumps({
      "figure": "saved_model_onednn_default_vs_off", "pairs": int(len(default)),
      "max_abs_probability_difference": float(np.abs(default - off).max()),
      "labels_agree": float((default.argmax(1) == off.argmax(1)).mean()),
      "accuracy_default": float((default.argmax(1) == labels).mean()),
      "accuracy_off": float((off.argmax(1) == labels).mean())}))


if __name__ == "__main__":
  main()
