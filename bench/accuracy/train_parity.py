#!/usr/bin/env python3
"""One fine-tuning trajectory of this project against the Hugging Face Trainer's.

    .venv/bin/python bench/accuracy/train_parity.py --data_dir ../shared/data \
        --work_dir /tmp/parity

Both sides start from the same weights (MiniLM: the Hugging Face directory for torch,
its original-format conversion for this project; the same classifier init for both),
see the same MRPC training batches (tokenized once here, each padded to its longest
pair) and run with dropout off, so both trajectories are deterministic:
  ours   BertClassifier + AdamWeightDecay(LinearWarmupLinearDecay), loss sum / batch,
         --optimizer adamw (bias correction) and adamweightdecay (the original)
  torch  BertForSequenceClassification in .venv-bench, torch.optim.AdamW (fused, the
         Trainer's default) with its two weight decay groups, clip_grad_norm_(1.0), and:
           hf        get_linear_schedule_with_warmup, what the Trainer uses
           original  the original BERT schedule (this project's), as a LambdaLR
Warmup is int(0.1 * steps) on both sides (the project's rounding; the Trainer's
warmup_ratio rounds up). The schedules agree during warmup only: after it, the
original decays from lr * (1 - warmup / steps), the Trainer's from lr. The
`original` torch run isolates the optimizer update from that difference.

Prints one JSON line per figure: per comparison the max |loss difference| over the
steps and the losses at a few steps, the learning rates of both sides, and the
difference of a few weights at the end (absolute, relative to the weight, relative
to its change over training). Exits 1 when adamw's losses differ from those of the
torch run on the same (original) schedule by more than --tolerance (float32 rounding
of two frameworks stays far below it; a different learning rate in one step goes far
above it). The run on the Trainer's own schedule is reported, not checked: it differs
by design after warmup.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH_PYTHON = os.path.join(ROOT, ".venv-bench", "bin", "python")
# Project name -> (Hugging Face name, whether the HF tensor is the transpose).
COMPARED = {
    "output_weights": ("classifier.weight", False),
    "bert/pooler/dense/kernel": ("bert.pooler.dense.weight", True),
    "bert/encoder/layer_0/attention/self/query/kernel":
        ("bert.encoder.layer.0.attention.self.query.weight", True),
    "bert/embeddings/word_embeddings": ("bert.embeddings.word_embeddings.weight", False),
}
TORCH_SCHEDULES = ("hf", "original")


def _emit(**fields):
  print(json.dumps(fields), flush=True)


def original_lr(step, lr, steps, warmup):
  """The original BERT schedule (modeling.optimization.LinearWarmupLinearDecay)."""
  if step < warmup:
    return lr * step / warmup
  return lr * (1.0 - min(step, steps) / steps)


# ------------------------------------------------------------------------ data
def write_batches(args, vocab_file, path):
  """Tokenizes the first steps * batch_size MRPC pairs into padded batches (.npz).

  The arrays are ids_<i>, mask_<i>, segments_<i> [B, S_i] and labels_<i> [B] for
  batch i, plus output_weights [2, H] and output_bias [2], the classifier init.
  """
  import tokenization  # pylint: disable=g-import-not-at-top
  tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=True)
  n = args.steps * args.batch_size
  mrpc = os.path.join(args.data_dir, "glue", "MRPC", "train.tsv")
  with open(mrpc, encoding="utf-8-sig") as f:
    rows = [line.rstrip("\n").split("\t") for line in list(f)[1:n + 1]]
  if len(rows) < n:
    raise SystemExit("MRPC has %d training pairs, %d needed" % (len(rows), n))
  examples = []
  for row in rows:
    a, b = tokenizer.tokenize(row[3]), tokenizer.tokenize(row[4])
    while len(a) + len(b) > args.max_seq_length - 3:  # the longer side loses first
      (a if len(a) > len(b) else b).pop()
    tokens = ["[CLS]"] + a + ["[SEP]"] + b + ["[SEP]"]
    examples.append((tokenizer.convert_tokens_to_ids(tokens),
                     [0] * (len(a) + 2) + [1] * (len(b) + 1), int(row[0])))
  arrays = {}
  for i in range(args.steps):
    batch = examples[i * args.batch_size:(i + 1) * args.batch_size]
    s = max(len(ids) for ids, _, _ in batch)
    ids, mask, seg = (np.zeros((len(batch), s), np.int32) for _ in range(3))
    for j, (tok, types, _) in enumerate(batch):
      ids[j, :len(tok)], mask[j, :len(tok)], seg[j, :len(tok)] = tok, 1, types
    arrays.update({"ids_%d" % i: ids, "mask_%d" % i: mask, "segments_%d" % i: seg,
                   "labels_%d" % i: np.array([e[2] for e in batch], np.int32)})
  hidden = json.load(open(os.path.join(args.bert_dir, "bert_config.json")))["hidden_size"]
  rng = np.random.RandomState(args.seed)
  arrays["output_weights"] = (rng.normal(size=(2, hidden)) * 0.02).astype(np.float32)
  arrays["output_bias"] = np.zeros([2], np.float32)
  np.savez(path, **arrays)
  return arrays


# ------------------------------------------------------------------- TF side
def run_tf(args, data, optimizer):
  """Trains with this project's optimizer; returns per-step losses, lrs, weights."""
  # pylint: disable=g-import-not-at-top
  import logging
  import tensorflow as tf
  from modeling import BertClassifier, BertConfig, optimization
  from modeling.checkpoint import load_init_checkpoint
  from modeling.heads import classification_loss

  config = BertConfig.from_json_file(os.path.join(args.bert_dir, "bert_config.json"))
  config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
  model = BertClassifier(config, num_labels=2)
  named = model.named_variables()
  quiet = logging.getLogger("train_parity")
  quiet.setLevel(logging.ERROR)  # the head's "not in checkpoint" is expected
  report = load_init_checkpoint(named, args.bert_dir, quiet)
  assert report.missing == ["output_weights", "output_bias"], report.missing
  named["output_weights"].assign(data["output_weights"])
  named["output_bias"].assign(data["output_bias"])
  schedule = optimization.LinearWarmupLinearDecay(args.learning_rate, args.steps,
                                                  args.warmup)
  opt = optimization.AdamWeightDecay(schedule, weight_decay_rate=0.01,
                                     epsilon=args.adam_epsilon,
                                     bias_correction=optimizer == "adamw")
  opt.build(named)
  variables = list(named.values())
  spec = tf.TensorSpec([None, None], tf.int32)

  @tf.function(input_signature=[spec, spec, spec, tf.TensorSpec([None], tf.int32)])
  def train_step(ids, mask, segments, labels):
    with tf.GradientTape() as tape:
      logits = model(ids, mask, segments, training=True)  # [B, 2]
      per_example = classification_loss(logits, labels, 2)  # [B]
      loss = tf.reduce_sum(per_example) / tf.cast(tf.shape(labels)[0], tf.float32)
    opt.apply_gradients(tape.gradient(loss, variables))
    return loss

  rows = np.unique(data["ids_0"])
  def weights():
    out = {k: named[k].numpy() for k in COMPARED}
    out["bert/embeddings/word_embeddings"] = out["bert/embeddings/word_embeddings"][rows]
    return out

  init, losses, lrs = weights(), [], []
  start = time.time()
  for i in range(args.steps):
    lrs.append(float(opt.learning_rate_at(i)))
    losses.append(float(train_step(*(data[k % i] for k in (
        "ids_%d", "mask_%d", "segments_%d", "labels_%d")))))
  return dict(losses=np.array(losses), lrs=np.array(lrs), init=init, final=weights(),
              seconds=time.time() - start, cpu_kernel=opt.has_cpu_kernel)


# ---------------------------------------------------------------- torch side
def torch_worker(args):
  """Runs in .venv-bench: trains with each torch schedule, writes torch_<s>.npz."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  transformers.logging.set_verbosity_error()  # the classifier's "newly initialized"
  torch.set_num_threads(2)
  torch.use_deterministic_algorithms(True)
  data = dict(np.load(os.path.join(args.work_dir, "batches.npz")))
  rows = torch.from_numpy(np.unique(data["ids_0"]).astype(np.int64))
  for schedule in args.torch_schedules.split(","):
    model, info = transformers.BertForSequenceClassification.from_pretrained(
        args.hf_dir, num_labels=2, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, output_loading_info=True)
    assert sorted(info["missing_keys"]) == ["classifier.bias", "classifier.weight"], info
    with torch.no_grad():
      model.classifier.weight.copy_(torch.from_numpy(data["output_weights"]))
      model.classifier.bias.copy_(torch.from_numpy(data["output_bias"]))
    model.train()
    params = dict(model.named_parameters())
    # The Trainer's groups (no decay for biases and LayerNorm weights) and its default
    # optimizer on torch >= 2.8, adamw_torch_fused.
    no_decay = [n for n in params if "bias" in n or "LayerNorm.weight" in n]
    opt = torch.optim.AdamW(
        [{"params": [p for n, p in params.items() if n not in no_decay],
          "weight_decay": 0.01},
         {"params": [params[n] for n in no_decay], "weight_decay": 0.0}],
        lr=args.learning_rate, betas=(0.9, 0.999), eps=args.adam_epsilon,
        fused=True)
    if schedule == "hf":
      sched = transformers.get_linear_schedule_with_warmup(opt, args.warmup, args.steps)
    else:
      sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: original_lr(
          s, 1.0, args.steps, args.warmup))

    def weights():
      out = {}
      for name, (hf_name, transpose) in COMPARED.items():
        w = params[hf_name].detach()
        w = w[rows] if "word_embeddings" in name else w
        out[name] = (w.T if transpose else w).numpy().copy()
      return out

    init, losses, lrs = weights(), [], []
    start = time.time()
    for i in range(args.steps):
      batch = {k: torch.from_numpy(data["%s_%d" % (k, i)].astype(np.int64))
               for k in ("ids", "mask", "segments", "labels")}
      out = model(input_ids=batch["ids"], attention_mask=batch["mask"],
                  token_type_ids=batch["segments"], labels=batch["labels"])
      out.loss.backward()  # mean cross-entropy over the batch
      torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
      lrs.append(sched.get_last_lr()[0])
      opt.step()
      sched.step()
      opt.zero_grad()
      losses.append(out.loss.item())
    seconds = time.time() - start
    final = weights()
    np.savez(os.path.join(args.work_dir, "torch_%s.npz" % schedule),
             losses=np.array(losses), lrs=np.array(lrs), seconds=seconds,
             **{"init:" + k: v for k, v in init.items()},
             **{"final:" + k: v for k, v in final.items()})


# -------------------------------------------------------------------- driver
def compare(args, ours_name, ours, peer_name, peer):
  """Emits the loss and weight figures of one pair; returns the max loss diff."""
  diff = np.abs(ours["losses"] - peer["losses"])
  over = np.nonzero(diff > args.tolerance)[0]
  shown = sorted({0, args.warmup - 1, args.warmup, args.warmup + 1,
                  args.steps // 2, args.steps - 1} & set(range(args.steps)))
  _emit(figure="loss_max_abs_diff", ours=ours_name, peer=peer_name,
        value=float(diff.max()), argmax_step=int(diff.argmax()),
        first_step_over_tolerance=int(over[0]) if len(over) else None,
        tolerance=args.tolerance, ok=bool(diff.max() <= args.tolerance),
        losses={str(s): [round(float(ours["losses"][s]), 6),
                         round(float(peer["losses"][s]), 6)] for s in shown},
        lr_max_rel_diff=float(np.max(np.abs(ours["lrs"] - peer["lrs"]) /
                                     np.maximum(peer["lrs"], 1e-30))))
  for name in COMPARED:
    a, b, a0 = ours["final"][name], peer["final"][name], ours["init"][name]
    d = float(np.max(np.abs(a - b)))
    _emit(figure="weight_diff", ours=ours_name, peer=peer_name, weight=name,
          max_abs_diff=d, rel_to_weight=d / float(np.max(np.abs(b))),
          rel_to_update=d / max(float(np.max(np.abs(b - a0))), 1e-30),
          init_max_abs_diff=float(np.max(np.abs(a0 - peer["init"][name]))))
  return float(diff.max())


def main():
  """Runs the benchmark; returns the exit code."""
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--data_dir", required=True,
                      help="../shared/data (reads glue/MRPC/train.tsv)")
  parser.add_argument("--work_dir", required=True)
  parser.add_argument("--hf_dir", default=None, help="HF BERT dir (default: MiniLM).")
  parser.add_argument("--bert_dir", default=None,
                      help="Its original-format conversion (default: made in work_dir).")
  parser.add_argument("--steps", type=int, default=30)
  parser.add_argument("--batch_size", type=int, default=16)
  parser.add_argument("--max_seq_length", type=int, default=128)
  parser.add_argument("--learning_rate", type=float, default=1e-4)
  parser.add_argument("--adam_epsilon", type=float, default=1e-6)
  parser.add_argument("--seed", type=int, default=12345, help="Classifier init seed.")
  parser.add_argument("--optimizers", default="adamw,adamweightdecay",
                      help="This project's --optimizer values to run.")
  parser.add_argument("--torch_schedules", default=",".join(TORCH_SCHEDULES))
  parser.add_argument("--tolerance", type=float, default=1e-4,
                      help="Max |loss difference| of adamw against torch on the "
                      "same schedule.")
  parser.add_argument("--worker", choices=["torch"], default=None,
                      help=argparse.SUPPRESS)
  args = parser.parse_args()
  args.warmup = int(0.1 * args.steps)
  if args.worker == "torch":
    torch_worker(args)
    return 0

  sys.path.insert(0, ROOT)
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  os.makedirs(args.work_dir, exist_ok=True)
  if args.hf_dir is None:
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    from bench_common import minilm_model_dir  # pylint: disable=g-import-not-at-top
    args.hf_dir = minilm_model_dir()
  if args.bert_dir is None:
    args.bert_dir = os.path.join(args.work_dir, "bert_checkpoint")
    if not os.path.exists(os.path.join(args.bert_dir, "vocab.txt")):
      subprocess.run([sys.executable, os.path.join(ROOT, "scripts",
                                                   "convert_checkpoint.py"),
                      "hf_to_bert", "--hf_dir", args.hf_dir, "--output_dir",
                      args.bert_dir], check=True, capture_output=True)
  data = write_batches(args, os.path.join(args.bert_dir, "vocab.txt"),
                       os.path.join(args.work_dir, "batches.npz"))
  _emit(figure="setup", steps=args.steps, batch_size=args.batch_size,
        warmup_steps=args.warmup, learning_rate=args.learning_rate,
        adam_epsilon=args.adam_epsilon, weight_decay=0.01, clip_norm=1.0,
        seq_lengths=[int(data["ids_%d" % i].shape[1]) for i in range(args.steps)])

  worker = subprocess.Popen(  # torch runs while TensorFlow trains
      [BENCH_PYTHON, os.path.abspath(__file__), "--worker", "torch"] +
      sys.argv[1:] + ["--hf_dir", args.hf_dir])
  ours = {}
  try:
    for name in args.optimizers.split(","):
      ours[name] = run_tf(args, data, name)
      _emit(figure="train_seconds", system="ours-" + name,
            value=round(ours[name]["seconds"], 1), cpu_kernel=ours[name]["cpu_kernel"])
  except BaseException:
    worker.kill()
    raise
  if worker.wait() != 0:
    raise SystemExit("torch worker failed")
  peers = {}
  for schedule in args.torch_schedules.split(","):
    z = np.load(os.path.join(args.work_dir, "torch_%s.npz" % schedule))
    peers[schedule] = dict(
        losses=z["losses"], lrs=z["lrs"],
        init={k: z["init:" + k] for k in COMPARED},
        final={k: z["final:" + k] for k in COMPARED})
    _emit(figure="train_seconds", system="torch-" + schedule,
          value=round(float(z["seconds"]), 1))
  status = 0
  for name, run in ours.items():
    for schedule, peer in peers.items():
      worst = compare(args, name, run, "torch AdamW, %s schedule" % schedule, peer)
      if name == "adamw" and schedule == "original" and worst > args.tolerance:
        status = 1
  return status


if __name__ == "__main__":
  sys.exit(main())
