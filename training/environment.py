"""TensorFlow's process environment, set by each entry point before TensorFlow loads.

Every command-line entry point (run_classifier.py, run_squad.py, extract_features.py,
the scripts/ tools and their console scripts) calls configure() first, before it
imports anything that imports TensorFlow: the variables below are read once, when
TensorFlow's C++ runtime starts. A value the user has set is always kept.

This module must not import TensorFlow.
"""

import glob
import os
import sys


def _has_nvidia_device() -> bool:
  """True when a GPU driver may be there (or this cannot be told off Linux)."""
  if not sys.platform.startswith("linux"):
    return True
  return bool(glob.glob("/dev/nvidia*") or os.path.exists("/proc/driver/nvidia"))


def configure() -> None:
  """Sets TF_ENABLE_ONEDNN_OPTS and TF_CPP_MIN_LOG_LEVEL unless the user did.

  TF_ENABLE_ONEDNN_OPTS=1: TensorFlow turns its oneDNN CPU kernels on by itself
  only on CPUs with AVX-512; BERT trains faster with them on AVX2-only CPUs too.

  TF_CPP_MIN_LOG_LEVEL: 2 hides the C++ runtime's INFO and WARNING notices (CUDA
  stubs, oneDNN and CPU-feature banners) that a run prints before its first line;
  on a Linux machine without an NVIDIA driver, 3, which also hides the ERROR line
  of the CUDA probe ("failed call to cuInit"), the only C++ error such a machine
  prints. Python-side errors and this project's log are not affected. Set
  TF_CPP_MIN_LOG_LEVEL=0 to see everything.
  """
  os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2" if _has_nvidia_device() else "3")
