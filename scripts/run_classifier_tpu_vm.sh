#!/usr/bin/env bash
# Fine-tune a classifier on a Cloud TPU VM (TPU v2/v3/v4/v5, bfloat16).
#
# Run on the TPU VM itself after `bash scripts/setup_env.sh` (install the TPU build
# of TensorFlow 2.20 there as Google documents for TPU VMs; this project's code is
# the same). Data, checkpoints and outputs may live in Cloud Storage (gs://...).
#
# Not run by this project's CI: its machines have no TPU. The code path uses
# TPUClusterResolver + TPUStrategy as TensorFlow documents them.
set -euo pipefail

# ---- edit these ----------------------------------------------------------------
BERT_DIR="gs://YOUR_BUCKET/bert/uncased_L-12_H-768_A-12"   # vocab.txt, bert_config.json, bert_model.ckpt.*
DATA_DIR="gs://YOUR_BUCKET/data/emotion"                  # the task's data files
OUTPUT_DIR="gs://YOUR_BUCKET/output/emotion"              # checkpoints and results
TASK_NAME="emotion"
TPU_NAME="local"          # "local" on a TPU VM, or the TPU's name from a separate VM
TPU_ZONE=""               # only needed with a TPU name from another VM
GCP_PROJECT=""
MAX_SEQ_LENGTH=128
TRAIN_BATCH_SIZE=256      # a multiple of 8 * number of TPU cores works best
LEARNING_RATE=5e-5
NUM_TRAIN_EPOCHS=3.0
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
  --eval_batch_size=64 --predict_batch_size=64 \
  --learning_rate="$LEARNING_RATE" \
  --num_train_epochs="$NUM_TRAIN_EPOCHS" \
  --output_dir="$OUTPUT_DIR" \
  --use_tpu=true --tpu_name="$TPU_NAME" \
  ${TPU_ZONE:+--tpu_zone="$TPU_ZONE"} ${GCP_PROJECT:+--gcp_project="$GCP_PROJECT"} \
  --precision=bfloat16 \
  "$@"
