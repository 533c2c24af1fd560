"""The console scripts of an install (pyproject.toml's [project.scripts]).

Each sets TensorFlow's environment (training/environment.py) and only then imports
its script, whose imports load TensorFlow, and runs it as `python <script>` would.
"""

import importlib

from training import environment


def _script(name):
  """Sets the environment, then imports a script module (top-level or of scripts/)."""
  environment.configure()
  return importlib.import_module(name)


def _run(name):
  _script(name).console_main()


def run_classifier():
  """bert-run-classifier: run_classifier.py."""
  _run("run_classifier")


def run_squad():
  """bert-run-squad: run_squad.py."""
  _run("run_squad")


def extract_features():
  """bert-extract-features: extract_features.py."""
  _run("extract_features")


def export_model():
  """bert-export-model: scripts/export_model.py."""
  _run(__package__ + ".export_model")


def predict():
  """bert-predict: scripts/predict.py."""
  _run(__package__ + ".predict")


def convert_checkpoint():
  """bert-convert-checkpoint: scripts/convert_checkpoint.py."""
  return _script(__package__ + ".convert_checkpoint").main()
