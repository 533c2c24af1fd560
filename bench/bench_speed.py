#!/usr/bin/env python3
"""Training and inference speed, side by side: this project vs Hugging Face (PyTorch)
vs tf-models-official (Model Garden), on random weights and random token ids.

    python bench/bench_speed.py                           # BERT-Small and BERT-Base, fp32 + bf16
    python bench/bench_speed.py --models small --precisions float32 --train_steps 5

One run starts one worker process per stack and configuration (this project and
Model Garden in .venv, PyTorch in .venv-bench: `bash bench/setup_bench_env.sh`) one
after the other, so they never share the cores, and prints one JSON line per figure
plus the ratios. Same batch, sequence length, model config, optimizer (Adam with
decoupled weight decay 0.01, epsilon 1e-6, global-norm clipping 1.0, linear warmup
and decay) and precision on every side. The PyTorch side updates with the fused
AdamW kernel (`torch.optim.AdamW(fused=True)`), which the Hugging Face Trainer picks
by default (`optim="adamw_torch_fused"` in transformers 4.57); `--hf_adamw=loop`
gives torch's per-tensor AdamW, which sessions 2-6 of bench/RESULTS.md measured
against. Warm-up steps are excluded and step times
are medians. With --rounds N every stack runs N times, alternating, and each stack's
best round is compared (this host's neighbours only ever slow a run down).

Figures: training examples/s, inference examples/s at the batch size, batch-1
latency (median and p90), achieved training GFLOP/s and its share of the matmul
ceiling that the same stack reaches on this machine in the same precision, and the
worker's peak resident memory.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT_PYTHON = os.path.join(ROOT, ".venv", "bin", "python")
BENCH_PYTHON = os.path.join(ROOT, ".venv-bench", "bin", "python")

MODELS = {
    # Google's BERT-Small (uncased_L-4_H-512_A-8) and BERT-Base shapes.
    "small": dict(hidden_size=512, num_hidden_layers=4, num_attention_heads=8,
                  intermediate_size=2048),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072),
    # all-MiniLM-L6-v2, the end-to-end benchmark's model (exact GELU).
    "minilm": dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                   intermediate_size=1536, hidden_act="gelu_exact"),
}
VOCAB_SIZE = 30522
NUM_LABELS = 2


def train_flops_per_example(model, seq_length):
  """Matmul FLOPs of one training example (forward + backward = 3x forward)."""
  h, layers, inner = (model["hidden_size"], model["num_hidden_layers"],
                      model["intermediate_size"])
  per_token = layers * (8 * h * h + 4 * h * inner + 4 * seq_length * h)
  return 3 * per_token * seq_length


def _median(values):
  values = sorted(values)
  return values[len(values) // 2]


def _p90(values):
  values = sorted(values)
  return values[min(len(values) - 1, int(round(0.9 * (len(values) - 1))))]


def _timed(fn, warmup, repeats):
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return times


# ----------------------------------------------------------------------- workers
def build_classifier_trainer(model_cfg, precision, batch_size, num_train_steps=10000):
  """This project's random classifier and its Trainer on one CPU device.

  Args:
    model_cfg: one of MODELS.
    precision: "float32", "bfloat16" or "float16".
    batch_size: the training batch.
    num_train_steps: length of the learning-rate schedule (speed does not depend
      on it).

  Returns:
    (strategy, model, trainer).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  sys.path.insert(0, ROOT)
  from modeling.config import BertConfig  # pylint: disable=g-import-not-at-top
  from modeling import heads  # pylint: disable=g-import-not-at-top
  from training import loop  # pylint: disable=g-import-not-at-top

  config = BertConfig(vocab_size=VOCAB_SIZE, max_position_embeddings=512,
                      type_vocab_size=2, **model_cfg)
  strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
  with strategy.scope():
    model = heads.BertClassifier(config, NUM_LABELS,
                                 compute_dtype=loop.PRECISIONS[precision])

    def loss_fn(features, training, seed):
      logits = model(features["input_ids"], features["input_mask"],
                     features["segment_ids"], training=training, dropout_seed=seed)
      return heads.classification_loss(logits, features["label_ids"], NUM_LABELS)

    trainer = loop.Trainer(strategy, model, loss_fn, loop.TrainConfig(
        train_batch_size=batch_size, num_train_steps=num_train_steps,
        learning_rate=5e-5, num_warmup_steps=100, precision=precision), output_dir="/tmp/unused",
        is_chief=False)
  return strategy, model, trainer


def build_ours(args, model_cfg):
  """This project's classifier, trainer and inference function on random inputs.

  Args:
    args: needs precision, batch_size, seq_length.
    model_cfg: one of MODELS.

  Returns:
    (train_step, infer_batch, infer_one, matmul_ceiling): callables that each run
    one step to completion; matmul_ceiling() returns GFLOP/s.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  sys.path.insert(0, ROOT)
  from training import loop  # pylint: disable=g-import-not-at-top

  dtype = loop.PRECISIONS[args.precision]
  strategy, model, trainer = build_classifier_trainer(model_cfg, args.precision,
                                                      args.batch_size)
  rng = np.random.RandomState(0)
  b, s = args.batch_size, args.seq_length
  features = {"input_ids": rng.randint(1, VOCAB_SIZE, (b, s)).astype(np.int32),
              "input_mask": np.ones((b, s), np.int32),
              "segment_ids": np.zeros((b, s), np.int32),
              "label_ids": rng.randint(0, NUM_LABELS, (b,)).astype(np.int32),
              "is_real_example": np.ones((b,), np.int32)}
  dataset = tf.data.Dataset.from_tensors(features).repeat()
  iterator = iter(strategy.experimental_distribute_dataset(dataset))

  from modeling import export  # pylint: disable=g-import-not-at-top
  # A fine-tuned model has no all-zero bias, and a fresh one does: in the 16-bit
  # inference copy, where weights are graph constants, TensorFlow would drop a
  # zero bias_add, and with it the matmul's fused bias and GELU. Small random
  # biases keep the benchmark's graph that of a real model.
  bias_rng = np.random.RandomState(1)
  for name, var in model.named_variables().items():
    if name.endswith("bias") or name.endswith("beta"):
      var.assign(bias_rng.normal(0.0, 0.02, var.shape.as_list()).astype(np.float32))
  # Inference runs on the copy that the SavedModel exports serve: same weights,
  # inference weights precomputed (see modeling.export.inference_copy).
  serving_model = export.inference_copy(model, args.precision)

  # Traced once for any batch and length, as the SavedModel signatures and the
  # evaluation and prediction loops are: shapes unknown when the graph is built
  # (with known shapes LayerNorm keeps its plain ops, modeling.encoder.layer_norm).
  spec = tf.TensorSpec([None, None], tf.int32)

  @tf.function(input_signature=[spec] * 3)
  def infer(ids, mask, seg):
    return tf.nn.softmax(serving_model(ids, mask, seg, training=False))

  ids, mask, seg = (tf.constant(features[k]) for k in
                    ("input_ids", "input_mask", "segment_ids"))
  one = [t[:1] for t in (ids, mask, seg)]

  def matmul_ceiling():
    x = tf.random.normal([2048, 2048], dtype=tf.float32)
    if dtype != tf.float32:
      x = tf.cast(x, dtype)
    mm = tf.function(lambda a: tf.matmul(a, a))
    times = _timed(lambda: mm(x).numpy(), 2, 10)
    return 2 * 2048 ** 3 / _median(times) / 1e9

  return (lambda: trainer.train_steps(iterator, 1),
          lambda: infer(ids, mask, seg).numpy(),
          lambda: infer(*one).numpy(),
          matmul_ceiling)


def worker_ours(args, model_cfg):
  train_step, infer_batch, infer_one, matmul_ceiling = build_ours(args, model_cfg)
  train_times = _timed(train_step, args.warmup, args.train_steps)
  infer_times = _timed(infer_batch, args.warmup, args.infer_steps)
  latency = _timed(infer_one, args.warmup, args.latency_steps)
  return train_times, infer_times, latency, matmul_ceiling()


def worker_model_garden(args, model_cfg):
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tf_keras  # pylint: disable=g-import-not-at-top
  from official.modeling import activations  # pylint: disable=g-import-not-at-top
  from official.nlp import optimization  # pylint: disable=g-import-not-at-top
  from official.nlp.modeling import models, networks  # pylint: disable=g-import-not-at-top

  if args.precision == "bfloat16":
    tf_keras.mixed_precision.set_global_policy("mixed_bfloat16")
  elif args.precision == "float16":
    tf_keras.mixed_precision.set_global_policy("mixed_float16")
  encoder = networks.BertEncoderV2(
      vocab_size=VOCAB_SIZE, hidden_size=model_cfg["hidden_size"],
      num_layers=model_cfg["num_hidden_layers"],
      num_attention_heads=model_cfg["num_attention_heads"],
      inner_dim=model_cfg["intermediate_size"],
      inner_activation=(activations.gelu if model_cfg.get("hidden_act", "gelu") == "gelu"
                        else lambda x: tf.nn.gelu(x, approximate=False)),
      max_sequence_length=512, type_vocab_size=2)
  classifier = models.BertClassifier(encoder, num_classes=NUM_LABELS)
  optimizer = optimization.create_optimizer(5e-5, 10000, 100, optimizer_type="adamw")
  rng = np.random.RandomState(0)
  b, s = args.batch_size, args.seq_length
  inputs = {"input_word_ids": tf.constant(rng.randint(1, VOCAB_SIZE, (b, s)), tf.int32),
            "input_mask": tf.ones((b, s), tf.int32),
            "input_type_ids": tf.zeros((b, s), tf.int32)}
  labels = tf.constant(rng.randint(0, NUM_LABELS, (b,)), tf.int32)

  @tf.function
  def train_step():
    with tf.GradientTape() as tape:
      logits = tf.cast(classifier(inputs, training=True), tf.float32)
      loss = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(
          labels, logits, from_logits=True))
    grads = tape.gradient(loss, classifier.trainable_variables)
    grads, _ = tf.clip_by_global_norm(grads, 1.0)
    optimizer.apply_gradients(zip(grads, classifier.trainable_variables))
    return loss

  train_times = _timed(lambda: train_step().numpy(), args.warmup, args.train_steps)

  @tf.function
  def infer(batch):
    return tf.nn.softmax(tf.cast(classifier(batch, training=False), tf.float32))

  infer_times = _timed(lambda: infer(inputs).numpy(), args.warmup, args.infer_steps)
  one = {k: v[:1] for k, v in inputs.items()}
  latency = _timed(lambda: infer(one).numpy(), args.warmup, args.latency_steps)
  return train_times, infer_times, latency, None


def build_hf(args, model_cfg):
  """Hugging Face's BertForSequenceClassification, AdamW and inference on random inputs.

  Args:
    args: needs precision, batch_size, seq_length, hf_adamw.
    model_cfg: one of MODELS.

  Returns:
    (train_step, infer_batch, infer_one, matmul_ceiling), as build_ours.
  """
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top

  torch.manual_seed(0)
  model_cfg = dict(model_cfg)
  # This project's "gelu" is the tanh approximation (HF "gelu_new"); its
  # "gelu_exact" is the erf GELU (HF "gelu").
  hidden_act = {"gelu": "gelu_new", "gelu_exact": "gelu"}[model_cfg.pop("hidden_act",
                                                                      "gelu")]
  config = transformers.BertConfig(
      vocab_size=VOCAB_SIZE, max_position_embeddings=512, type_vocab_size=2,
      hidden_act=hidden_act, num_labels=NUM_LABELS, **model_cfg)
  model = transformers.BertForSequenceClassification(config)
  no_decay = ("bias", "LayerNorm.weight")
  groups = [
      {"params": [p for n, p in model.named_parameters()
                  if not any(x in n for x in no_decay)], "weight_decay": 0.01},
      {"params": [p for n, p in model.named_parameters()
                  if any(x in n for x in no_decay)], "weight_decay": 0.0}]
  # fused=True is what transformers.Trainer uses by default on this torch
  # (optim="adamw_torch_fused"): one kernel per tensor for decay, moments and update.
  optimizer = torch.optim.AdamW(groups, lr=5e-5, eps=1e-6,
                                fused=args.hf_adamw == "fused")
  scheduler = transformers.get_linear_schedule_with_warmup(optimizer, 100, 10000)
  b, s = args.batch_size, args.seq_length
  gen = torch.Generator().manual_seed(0)
  ids = torch.randint(1, VOCAB_SIZE, (b, s), generator=gen)
  mask = torch.ones((b, s), dtype=torch.long)
  seg = torch.zeros((b, s), dtype=torch.long)
  labels = torch.randint(0, NUM_LABELS, (b,), generator=gen)
  bf16 = args.precision == "bfloat16"

  def train_step():
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
      loss = model(input_ids=ids, attention_mask=mask, token_type_ids=seg,
                   labels=labels).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)

  def infer(i, m, t):
    if model.training:  # after train_step
      model.eval()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16,
                                                enabled=bf16):
      return torch.softmax(model(input_ids=i, attention_mask=m,
                                 token_type_ids=t).logits.float(), -1).numpy()

  def matmul_ceiling():
    x = torch.randn(2048, 2048)
    if bf16:
      x = x.to(torch.bfloat16)
    times = _timed(lambda: torch.matmul(x, x), 2, 10)
    return 2 * 2048 ** 3 / _median(times) / 1e9

  return (train_step, lambda: infer(ids, mask, seg),
          lambda: infer(ids[:1], mask[:1], seg[:1]), matmul_ceiling)


def worker_hf(args, model_cfg):
  train_step, infer_batch, infer_one, matmul_ceiling = build_hf(args, model_cfg)
  train_times = _timed(train_step, args.warmup, args.train_steps)
  infer_times = _timed(infer_batch, args.warmup, args.infer_steps)
  latency = _timed(infer_one, args.warmup, args.latency_steps)
  return train_times, infer_times, latency, matmul_ceiling()


def worker_python_and_env(stack, ours_onednn="on"):
  """The interpreter and environment of one stack's worker process.

  Hugging Face runs in .venv-bench, this project and Model Garden in .venv. Only
  this project's worker gets TF_ENABLE_ONEDNN_OPTS set ("on" is what
  run_classifier.py sets); Model Garden runs with TensorFlow's default.
  """
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
  env.pop("TF_ENABLE_ONEDNN_OPTS", None)
  if stack == "ours":
    env["TF_ENABLE_ONEDNN_OPTS"] = "1" if ours_onednn == "on" else "0"
  return (BENCH_PYTHON if stack == "hf" else PROJECT_PYTHON), env


def best_of(runs):
  """Each figure's best value over rounds: highest throughput, lowest latency."""
  best = dict(runs[0])
  for run in runs[1:]:
    for key, value in run.items():
      if key.endswith("_per_sec") or key == "matmul_ceiling_gflops":
        best[key] = max(best[key], value)
      elif key.endswith("_ms") or key == "peak_rss_mb":
        best[key] = min(best[key], value)
  if "matmul_ceiling_gflops" in best:
    best["train_fraction_of_ceiling"] = round(
        best["train_gflops_per_sec"] / best["matmul_ceiling_gflops"], 3)
  return best


WORKERS = {"ours": worker_ours, "model_garden": worker_model_garden, "hf": worker_hf}


def run_worker(args):
  model_cfg = MODELS[args.models]
  train_times, infer_times, latency, ceiling = WORKERS[args.worker](args, model_cfg)
  b = args.batch_size
  train_eps = b / _median(train_times)
  flops = train_flops_per_example(model_cfg, args.seq_length)
  result = {
      "stack": args.worker, "model": args.models, "precision": args.precision,
      "batch_size": b, "seq_length": args.seq_length,
      "train_examples_per_sec": round(train_eps, 3),
      "train_gflops_per_sec": round(train_eps * flops / 1e9, 1),
      "infer_examples_per_sec": round(b / _median(infer_times), 3),
      "latency_b1_median_ms": round(1000 * _median(latency), 2),
      "latency_b1_p90_ms": round(1000 * _p90(latency), 2),
      # Peak resident memory of the worker process: the training steps dominate it.
      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
  }
  if ceiling:
    result["matmul_ceiling_gflops"] = round(ceiling, 1)
    result["train_fraction_of_ceiling"] = round(result["train_gflops_per_sec"] / ceiling, 3)
  print("RESULT " + json.dumps(result), flush=True)


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--models", default="small,base")
  parser.add_argument("--precisions", default="float32,bfloat16")
  parser.add_argument("--stacks", default="ours,hf,model_garden")
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--seq_length", type=int, default=128)
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--train_steps", type=int, default=6)
  parser.add_argument("--infer_steps", type=int, default=6)
  parser.add_argument("--latency_steps", type=int, default=30)
  parser.add_argument("--rounds", type=int, default=1,
                      help="run every stack this many times, alternating, and "
                      "compare each stack's best round")
  parser.add_argument("--ours_onednn", choices=["on", "off"], default="on",
                      help="TF_ENABLE_ONEDNN_OPTS of this project's worker: on is what "
                      "run_classifier.py sets; off is TensorFlow's default on CPUs "
                      "without AVX-512 (Model Garden always runs with TensorFlow's "
                      "default)")
  parser.add_argument("--hf_adamw", choices=["fused", "loop"], default="fused",
                      help="PyTorch's AdamW: fused (the Hugging Face Trainer's "
                      "default) or loop (torch's per-tensor implementation)")
  parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
  parser.add_argument("--precision", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    run_worker(args)
    return 0
  if not os.path.exists(BENCH_PYTHON) and "hf" in args.stacks:
    print(f"{BENCH_PYTHON} is missing: run `bash bench/setup_bench_env.sh` first "
          "(PyTorch CPU + transformers, kept out of the project's .venv)", file=sys.stderr)
    return 1
  failed = False
  for model in args.models.split(","):
    for precision in args.precisions.split(","):
      runs = {}
      # Rounds alternate the stacks (ours, hf, ..., ours, hf, ...): on a shared host
      # a neighbour's load only ever slows a run down, so each stack's best round
      # is the estimate least disturbed by it, and alternating exposes every stack
      # to the same spells of load.
      for round_index in range(args.rounds):
        for stack in args.stacks.split(","):
          python, stack_env = worker_python_and_env(stack, args.ours_onednn)
          cmd = [python, os.path.abspath(__file__), "--worker", stack, "--models",
                 model, "--precision", precision]
          for name in ("batch_size", "seq_length", "warmup", "train_steps",
                       "infer_steps", "latency_steps", "hf_adamw"):
            cmd += [f"--{name}", str(getattr(args, name))]
          proc = subprocess.run(cmd, capture_output=True, text=True, env=stack_env,
                                cwd=ROOT)
          lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
          if proc.returncode != 0 or not lines:
            failed = True
            print(json.dumps({"stack": stack, "model": model, "precision": precision,
                              "error": proc.stderr.strip().splitlines()[-3:]}),
                  flush=True)
            continue
          run = json.loads(lines[-1][len("RESULT "):])
          run["round"] = round_index
          runs.setdefault(stack, []).append(run)
          print(json.dumps(run), flush=True)
      results = {stack: best_of(stack_runs) for stack, stack_runs in runs.items()}
      if args.rounds > 1:
        for stack, best in results.items():
          print(json.dumps(dict(best, round=f"best of {len(runs[stack])}")),
                flush=True)
      if "ours" in results:
        for peer in ("hf", "model_garden"):
          if peer not in results:
            continue
          ours, other = results["ours"], results[peer]
          print(json.dumps({
              "ratio": f"ours/{peer}", "model": model, "precision": precision,
              "train": round(ours["train_examples_per_sec"] /
                             other["train_examples_per_sec"], 3),
              "infer": round(ours["infer_examples_per_sec"] /
                             other["infer_examples_per_sec"], 3),
              "latency_b1_median": round(other["latency_b1_median_ms"] /
                                         ours["latency_b1_median_ms"], 3),
          }), flush=True)
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
