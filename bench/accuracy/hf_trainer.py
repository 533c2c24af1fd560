#!/usr/bin/env python3
"""The Hugging Face side of bench/accuracy/run.py: fine-tune with transformers'
Trainer (PyTorch, CPU) and write the dev-set predictions.

Runs in .venv-bench (bash bench/setup_bench_env.sh), which has no TensorFlow and none
of the project's code: the data is read here with its own readers, tokenized with
BertTokenizerFast, and for SQuAD windowed and post-processed the way transformers'
run_qa.py example does it. Prints one line `RESULT {json}` at the end:
  classification: {"predictions": [label index per dev example, in file order]}
  squad: {"predictions_file": path of {question id: answer text}}
The caller scores both systems' predictions with the same code.
"""

import argparse
import collections
import json
import os
import sys

import numpy as np
import torch
import transformers

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench_common import DEV_SPLIT, read_classification  # pylint: disable=g-import-not-at-top,wrong-import-position


class _Encoded(torch.utils.data.Dataset):
  """Tokenized examples with their labels, for the Trainer."""

  def __init__(self, encodings, labels=None):
    self.encodings = encodings
    self.labels = labels

  def __len__(self):
    return len(self.encodings["input_ids"])

  def __getitem__(self, i):
    item = {k: v[i] for k, v in self.encodings.items()}
    if self.labels is not None:
      item["labels"] = self.labels[i]
    return item


def _training_arguments(args):
  return transformers.TrainingArguments(
      output_dir=args.output_dir, per_device_train_batch_size=args.train_batch_size,
      per_device_eval_batch_size=64, learning_rate=args.learning_rate,
      num_train_epochs=args.num_train_epochs, warmup_ratio=args.warmup_proportion,
      lr_scheduler_type="linear", weight_decay=args.weight_decay,
      adam_epsilon=args.adam_epsilon, max_grad_norm=1.0, use_cpu=True,
      bf16=args.precision == "bfloat16", save_strategy="no", eval_strategy="no",
      logging_steps=50, report_to=[], seed=args.seed, dataloader_num_workers=0,
      disable_tqdm=True)


# ------------------------------------------------------------------ classification
def run_classification(args, tokenizer):
  a, b, labels, num_labels = read_classification(args.task, args.data_dir, "train")
  train = _Encoded(tokenizer(a, b, truncation=True, max_length=args.max_seq_length),
                   labels)
  a, b, dev_labels, _ = read_classification(args.task, args.data_dir, DEV_SPLIT[args.task])
  dev = _Encoded(tokenizer(a, b, truncation=True, max_length=args.max_seq_length))
  model = transformers.BertForSequenceClassification.from_pretrained(
      args.model_dir, num_labels=num_labels)
  trainer = transformers.Trainer(
      model=model, args=_training_arguments(args),
      train_dataset=train,
      data_collator=transformers.DataCollatorWithPadding(tokenizer))
  trainer.train()
  logits = trainer.predict(dev).predictions
  predictions = np.argmax(logits, axis=-1).tolist()
  assert len(predictions) == len(dev_labels)
  return {"predictions": predictions}


# ------------------------------------------------------------------------- SQuAD
def _squad_examples(path, first_answer_only):
  """(id, question, context, answer_start, answer_text) per question of a SQuAD file."""
  with open(path, encoding="utf-8") as f:
    data = json.load(f)["data"]
  out = []
  for article in data:
    for paragraph in article["paragraphs"]:
      for qa in paragraph["qas"]:
        answers = qa["answers"][:1] if first_answer_only else qa["answers"]
        out.append((qa["id"], qa["question"].lstrip(), paragraph["context"],
                    answers[0]["answer_start"] if answers else None,
                    answers[0]["text"] if answers else None))
  return out


def _squad_train_features(examples, tokenizer, args):
  """Windows of each (question, context) with the answer's token span, or [CLS]
  (position 0) when the window does not hold the whole answer, as run_qa.py."""
  enc = tokenizer([e[1] for e in examples], [e[2] for e in examples],
                  truncation="only_second", max_length=args.max_seq_length,
                  stride=args.doc_stride, return_overflowing_tokens=True,
                  return_offsets_mapping=True, padding="max_length")
  starts, ends = [], []
  for i, offsets in enumerate(enc["offset_mapping"]):
    example = examples[enc["overflow_to_sample_mapping"][i]]
    sequence_ids = enc.sequence_ids(i)
    answer_start = example[3]
    answer_end = answer_start + len(example[4])
    context = [t for t, s in enumerate(sequence_ids) if s == 1]
    first, last = context[0], context[-1]
    if not (offsets[first][0] <= answer_start and offsets[last][1] >= answer_end):
      starts.append(0)
      ends.append(0)
      continue
    start = first
    while start <= last and offsets[start][0] <= answer_start:
      start += 1
    end = last
    while end >= first and offsets[end][1] >= answer_end:
      end -= 1
    starts.append(start - 1)
    ends.append(end + 1)
  enc.pop("offset_mapping")
  enc.pop("overflow_to_sample_mapping")
  enc["start_positions"] = starts
  enc["end_positions"] = ends
  return enc


def _squad_predict_features(examples, tokenizer, args):
  enc = tokenizer([e[1] for e in examples], [e[2] for e in examples],
                  truncation="only_second", max_length=args.max_seq_length,
                  stride=args.doc_stride, return_overflowing_tokens=True,
                  return_offsets_mapping=True, padding="max_length")
  example_index = list(enc.pop("overflow_to_sample_mapping"))
  offsets = []
  for i, window in enumerate(enc.pop("offset_mapping")):
    sequence_ids = enc.sequence_ids(i)
    offsets.append([o if sequence_ids[t] == 1 else None for t, o in enumerate(window)])
  return enc, example_index, offsets


def _squad_answers(examples, example_index, offsets, start_logits, end_logits,
                   n_best_size=20, max_answer_length=30):
  """The best-scoring valid span of each question over its windows (run_qa.py's
  postprocess_qa_predictions for v1.1)."""
  windows = collections.defaultdict(list)
  for window, index in enumerate(example_index):
    windows[index].append(window)
  answers = {}
  for index, example in enumerate(examples):
    best_score, best_text = None, ""
    for window in windows[index]:
      starts, ends = start_logits[window], end_logits[window]
      window_offsets = offsets[window]
      for s in np.argsort(starts)[-1:-n_best_size - 1:-1]:
        for e in np.argsort(ends)[-1:-n_best_size - 1:-1]:
          if (s >= len(window_offsets) or e >= len(window_offsets) or
              window_offsets[s] is None or window_offsets[e] is None or
              e < s or e - s + 1 > max_answer_length):
            continue
          score = starts[s] + ends[e]
          if best_score is None or score > best_score:
            best_score = score
            best_text = example[2][window_offsets[s][0]:window_offsets[e][1]]
    answers[example[0]] = best_text
  return answers


def run_squad(args, tokenizer):
  train_examples = _squad_examples(args.train_file, first_answer_only=True)
  train = _Encoded(_squad_train_features(train_examples, tokenizer, args))
  model = transformers.BertForQuestionAnswering.from_pretrained(args.model_dir)
  trainer = transformers.Trainer(
      model=model, args=_training_arguments(args),
      train_dataset=train, data_collator=transformers.default_data_collator)
  trainer.train()
  examples = _squad_examples(args.predict_file, first_answer_only=False)
  enc, example_index, offsets = _squad_predict_features(examples, tokenizer, args)
  start_logits, end_logits = trainer.predict(_Encoded(enc)).predictions
  answers = _squad_answers(examples, example_index, offsets, start_logits, end_logits)
  path = os.path.join(args.output_dir, "predictions.json")
  with open(path, "w", encoding="utf-8") as f:
    json.dump(answers, f)
  return {"predictions_file": path}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--task", required=True,
                      choices=["emotion", "mrpc", "sst2", "squad"])
  parser.add_argument("--data_dir", help="../shared/data (classification)")
  parser.add_argument("--train_file", help="SQuAD training JSON")
  parser.add_argument("--predict_file", help="SQuAD prediction JSON")
  parser.add_argument("--model_dir", required=True, help="Hugging Face model dir")
  parser.add_argument("--do_lower_case", type=int, default=1)
  parser.add_argument("--output_dir", required=True)
  parser.add_argument("--max_seq_length", type=int, default=128)
  parser.add_argument("--doc_stride", type=int, default=128)
  parser.add_argument("--train_batch_size", type=int, default=32)
  parser.add_argument("--learning_rate", type=float, default=1e-4)
  parser.add_argument("--num_train_epochs", type=float, default=3.0)
  parser.add_argument("--warmup_proportion", type=float, default=0.1)
  parser.add_argument("--weight_decay", type=float, default=0.01)
  parser.add_argument("--adam_epsilon", type=float, default=1e-6)
  parser.add_argument("--precision", default="float32",
                      choices=["float32", "bfloat16"])
  parser.add_argument("--seed", type=int, default=1)
  args = parser.parse_args()
  os.makedirs(args.output_dir, exist_ok=True)
  transformers.set_seed(args.seed)
  tokenizer = transformers.BertTokenizerFast(
      os.path.join(args.model_dir, "vocab.txt"), do_lower_case=bool(args.do_lower_case))
  if args.task == "squad":
    result = run_squad(args, tokenizer)
  else:
    result = run_classification(args, tokenizer)
  print("RESULT " + json.dumps(result), flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
