#!/usr/bin/env bash
# Fine-tune BERT on SQuAD v1.1 (or v2.0) on a Cloud TPU VM (TPU v2/v3/v4/v5,
# bfloat16), predict on the dev set and score it.
#
# Run on the TPU VM itself after `bash scripts/setup_env.sh` (install the TPU build
# of TensorFlow 2.20 there as Google documents for TPU VMs; this project's code is
# the same). Data, checkpoints and outputs may live in Cloud Storage (gs://...).
#
# Not run by this project's CI: its machines have no TPU. The code path uses
# TPUClusterResolver + TPUStrategy as TensorFlow documents them; batches keep the
# static max_seq_length shape and the prediction records are padded to full batches.
set -euo pipefail

# ---- edit these ----------------------------------------------------------------
BERT_DIR="gs://YOUR_BUCKET/bert/uncased_L-12_H-768_A-12"   # vocab.txt, bert_config.json, bert_model.ckpt.*
SQUAD_DIR="gs://YOUR_BUCKET/data/squad"                   # train-v1.1.json, dev-v1.1.json
OUTPUT_DIR="gs://YOUR_BUCKET/output/squad"                # checkpoints and predictions
TRAIN_FILE="$SQUAD_DIR/train-v1.1.json"                   # v2.0: train-v2.0.json
PREDICT_FILE="$SQUAD_DIR/dev-v1.1.json"                   # v2.0: dev-v2.0.json
VERSION_2_WITH_NEGATIVE=false                             # v2.0: true
TPU_NAME="local"          # "local" on a TPU VM, or the TPU's name from a separate VM
TPU_ZONE=""               # only needed with a TPU name from another VM
GCP_PROJECT=""
MAX_SEQ_LENGTH=384
DOC_STRIDE=128
TRAIN_BATCH_SIZE=32       # the original README's setting for BERT-Base/Large on TPU
LEARNING_RATE=3e-5
NUM_TRAIN_EPOCHS=2.0
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
  --predict_batch_size=64 \
  --learning_rate="$LEARNING_RATE" \
  --num_train_epochs="$NUM_TRAIN_EPOCHS" \
  --output_dir="$OUTPUT_DIR" \
  --use_tpu=true --tpu_name="$TPU_NAME" \
  ${TPU_ZONE:+--tpu_zone="$TPU_ZONE"} ${GCP_PROJECT:+--gcp_project="$GCP_PROJECT"} \
  --precision=bfloat16 \
  "$@"
