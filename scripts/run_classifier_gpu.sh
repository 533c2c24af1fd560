#!/usr/bin/env bash
# Fine-tune a classifier on all GPUs of one machine (MirroredStrategy, float16 with
# dynamic loss scaling, XLA).
#
# Needs the CUDA build of TensorFlow 2.20 (`pip install tensorflow[and-cuda]==2.20.0`
# into .venv after scripts/setup_env.sh). Not run by this project's CI: its machines
# have no GPU; the mirrored path is tested there over logical CPU devices.
set -euo pipefail

# ---- edit these ----------------------------------------------------------------
BERT_DIR="$HOME/bert/uncased_L-12_H-768_A-12"   # vocab.txt, bert_config.json, bert_model.ckpt.*
DATA_DIR="$HOME/data/emotion"
OUTPUT_DIR="$HOME/output/emotion"
TASK_NAME="emotion"
MAX_SEQ_LENGTH=128
TRAIN_BATCH_SIZE=64        # global batch, split over the GPUs
GRADIENT_ACCUMULATION_STEPS=1
LEARNING_RATE=5e-5
NUM_TRAIN_EPOCHS=3.0
export CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES:-0,1,2,3}"
# ---------------------------------------------------------------------------------

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"

"$PY" "$ROOT/run_classifier.py" \
  --task_name="$TASK_NAME" \
  --do_train=true --do_eval=true --do_predict=true \
  --data_dir="$DATA_DIR" \
  --vocab_file="$BERT_DIR/vocab.txt" \
  --bert_config_file="$BERT_DIR/bert_config.json" \
  --init_checkpoint="$BERT_DIR/bert_model.ckpt" \
  --max_seq_length="$MAX_SEQ_LENGTH" \
  --train_batch_size="$TRAIN_BATCH_SIZE" \
  --gradient_accumulation_steps="$GRADIENT_ACCUMULATION_STEPS" \
  --eval_batch_size=64 --predict_batch_size=64 \
  --learning_rate="$LEARNING_RATE" \
  --num_train_epochs="$NUM_TRAIN_EPOCHS" \
  --output_dir="$OUTPUT_DIR" \
  --distribution_strategy=mirrored \
  --precision=float16 \
  --use_xla=true \
  "$@"
