"""Shared pytest setup: quiet TensorFlow, the project root importable, CPU only."""

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# The kernels the scripts run with (see run_classifier.py).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
  sys.path.insert(0, str(PROJECT_ROOT))
