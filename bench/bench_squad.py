"""SQuAD v1.1 on real data: fine-tune, predict and score with run_squad.py.

  .venv/bin/python bench/bench_squad.py \
      --squad_file ../shared/data/squad/dev-v1.1-part1.json \
      --bert_dir out/demo/minilm_bert_checkpoint --work_dir /tmp/bench_squad

Splits the SQuAD file by article (the first --train_articles for training, the last
--predict_articles for prediction; no article is in both), keeps the first answer of
each training question (the original trains on exactly one answer per question, and
dev questions carry several), runs run_squad.py --do_train --do_predict --do_eval as
a user would, and prints one JSON line per figure: the split sizes, the time of the
run, and exact match / F1 from eval_results.txt.
"""

import argparse
import json
import os
import subprocess
import sys
import time

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _emit(**fields):
  print(json.dumps(fields), flush=True)


def split_by_article(squad_file, work_dir, train_articles, predict_articles):
  """Writes train.json / predict.json; returns (n_train_questions, n_predict_questions)."""
  with open(squad_file, encoding="utf-8") as f:
    dataset = json.load(f)
  articles = dataset["data"]
  if train_articles + predict_articles > len(articles):
    raise SystemExit(f"{squad_file} has {len(articles)} articles, fewer than "
                     f"{train_articles} + {predict_articles}")
  train = json.loads(json.dumps(articles[:train_articles]))
  predict = articles[len(articles) - predict_articles:]
  for article in train:
    for paragraph in article["paragraphs"]:
      for qa in paragraph["qas"]:
        qa["answers"] = qa["answers"][:1]
  counts = []
  for name, data in (("train.json", train), ("predict.json", predict)):
    with open(os.path.join(work_dir, name), "w", encoding="utf-8") as f:
      json.dump({"version": dataset.get("version", "1.1"), "data": data}, f)
    counts.append(sum(len(p["qas"]) for a in data for p in a["paragraphs"]))
  return counts


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--squad_file",
                      default=os.path.join(_ROOT, "..", "shared", "data", "squad",
                                           "dev-v1.1-part1.json"))
  parser.add_argument("--bert_dir",
                      default=os.path.join(_ROOT, "out", "demo",
                                           "minilm_bert_checkpoint"))
  parser.add_argument("--work_dir", default="/tmp/bench_squad")
  parser.add_argument("--train_articles", type=int, default=28)
  parser.add_argument("--predict_articles", type=int, default=8)
  parser.add_argument("--max_seq_length", type=int, default=256)
  parser.add_argument("--doc_stride", type=int, default=128)
  parser.add_argument("--train_batch_size", type=int, default=16)
  parser.add_argument("--num_train_epochs", type=float, default=1.0)
  parser.add_argument("--learning_rate", type=float, default=5e-5)
  parser.add_argument("--predict_batch_size", type=int, default=32)
  args, extra = parser.parse_known_args()

  os.makedirs(args.work_dir, exist_ok=True)
  n_train, n_predict = split_by_article(args.squad_file, args.work_dir,
                                        args.train_articles, args.predict_articles)
  _emit(figure="split", train_articles=args.train_articles, train_questions=n_train,
        predict_articles=args.predict_articles, predict_questions=n_predict)
  output_dir = os.path.join(args.work_dir, "output")
  command = [
      sys.executable, os.path.join(_ROOT, "run_squad.py"),
      f"--vocab_file={args.bert_dir}/vocab.txt",
      f"--bert_config_file={args.bert_dir}/bert_config.json",
      f"--init_checkpoint={args.bert_dir}/bert_model.ckpt",
      f"--train_file={args.work_dir}/train.json",
      f"--predict_file={args.work_dir}/predict.json",
      f"--output_dir={output_dir}", "--do_train", "--do_predict", "--do_eval",
      f"--max_seq_length={args.max_seq_length}", f"--doc_stride={args.doc_stride}",
      f"--train_batch_size={args.train_batch_size}",
      f"--predict_batch_size={args.predict_batch_size}",
      f"--num_train_epochs={args.num_train_epochs}",
      f"--learning_rate={args.learning_rate}", *extra]
  _emit(figure="command", command=" ".join(command[1:]))
  started = time.time()
  log_path = os.path.join(args.work_dir, "run_squad.log")
  with open(log_path, "w", encoding="utf-8") as log:
    result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT,
                            cwd=_ROOT, check=False)
  elapsed = time.time() - started
  if result.returncode != 0:
    raise SystemExit(f"run_squad.py failed ({result.returncode}); see {log_path}")
  metrics = {}
  with open(os.path.join(output_dir, "eval_results.txt"), encoding="utf-8") as f:
    for line in f:
      key, value = line.strip().split(" = ", 1)
      metrics[key] = float(value)
  _emit(figure="time", seconds=round(elapsed, 1), log=log_path)
  _emit(figure="squad_v1.1", exact_match=round(metrics["exact_match"], 2),
        f1=round(metrics["f1"], 2), global_step=int(metrics["global_step"]))


if __name__ == "__main__":
  main()
