#!/usr/bin/env bash
# Fine-tune BERT on SQuAD v1.1 (or v2.0) on all GPUs of one machine, predict on the
# dev set and score it (MirroredStrategy, float16 with dynamic loss scaling, XLA).
#
# Needs the CUDA build of TensorFlow 2.20 (`pip install tensorflow[and-cuda]==2.20.0`
# into .venv after scripts/setup_env.sh). Not run by this project's CI: its machines
# have no GPU; the mirrored path is tested there over logical CPU devices.
set -euo pipefail

# ---- edit these ----------------------------------------------------------------
BERT_DIR="$HOME/bert/uncased_L-12_H-768_A-12"   # vocab.txt, bert_config.json, bert_model.ckpt.*
SQUAD_DIR="$HOME/data/squad"                    # train-v1.1.json, dev-v1.1.json
OUTPUT_DIR="$HOME/output/squad"
TRAIN_FILE="$SQUAD_DIR/train-v1.1.json"         # v2.0: train-v2.0.json
PREDICT_FILE="$SQUAD_DIR/dev-v1.1.json"         # v2.0: dev-v2.0.json
VERSION_2_WITH_NEGATIVE=false                   # v2.0: true
MAX_SEQ_LENGTH=384
DOC_STRIDE=128
TRAIN_BATCH_SIZE=32        # global batch, split over the GPUs
GRADIENT_ACCUMULATION_STEPS=1
LEARNING_RATE=3e-5
NUM_TRAIN_EPOCHS=2.0
export CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES:-0,1,2,3}"
# ---------------------------------------------------------------------------------

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"

"$PY" "$ROOT/run_squad.py" \
  --do_train=true --do_predict=true --do_eval=true \
  --vocab_file="$BERT_DIR/vocab.txt" \
  --bert_config_file="$BERT_DIR/bert_config.json" \
  --init_checkpoint="$BERT_DIR/bert_model.ckpt" \
  --train_file="$TRAIN_FILE" \
  --predict_file="$PREDICT_FILE" \
  --version_2_with_negative="$VERSION_2_WITH_NEGATIVE" \
  --max_seq_length="$MAX_SEQ_LENGTH" \
  --doc_stride="$DOC_STRIDE" \
  --train_batch_size="$TRAIN_BATCH_SIZE" \
  --gradient_accumulation_steps="$GRADIENT_ACCUMULATION_STEPS" \
  --predict_batch_size=64 \
  --learning_rate="$LEARNING_RATE" \
  --num_train_epochs="$NUM_TRAIN_EPOCHS" \
  --output_dir="$OUTPUT_DIR" \
  --distribution_strategy=mirrored \
  --precision=float16 \
  --use_xla=true \
  "$@"
