#!/usr/bin/env bash
# The benchmark peers' environment, kept apart from the project's .venv: PyTorch
# (the CPU wheel), Hugging Face transformers and accelerate (its Trainer), for
# bench/bench_speed.py and bench/bench_emotion_e2e.py.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-bench"
[[ -x "$VENV/bin/python" ]] || "${PYTHON:-python3}" -m venv "$VENV"
# Pinned in one command so that nothing can pull a newer (CUDA) torch.
"$VENV/bin/python" -m pip install --quiet "torch==2.13.0" "transformers==4.57.6" \
  "tokenizers==0.22.2" "safetensors==0.8.0" "numpy==2.4.6" "accelerate==1.15.0"
"$VENV/bin/python" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'
