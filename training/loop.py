"""A custom training loop under any tf.distribute strategy, with original checkpoints.

What it adds over the original Estimator loop: resumable runs that end with the same
weights as an uninterrupted run (stateless, step-seeded dropout and a data order that
is a pure function of the seed), gradient accumulation, mixed precision with dynamic
loss scaling, periodic evaluation with keep-best and early stopping, and logging of
loss, learning rate, throughput and time left.

Checkpoints are written in the original TF1 naming (model variables, `<var>/adam_m`,
`<var>/adam_v`, `global_step`) as `output_dir/model.ckpt-<step>`, with the usual
`checkpoint` state file, so tools written for the original read them.
"""

import dataclasses
import json
import math
import os
import signal
import threading
import time
from typing import Callable, Dict, List, Optional

from absl import logging
import numpy as np
import tensorflow as tf

from modeling import checkpoint as ckpt_lib
from modeling import optimization
from training import files

# A loss function: (features dict, training flag, dropout seed [2] int tensor) ->
# per-example loss [micro_batch] float32.
LossFn = Callable[[Dict[str, tf.Tensor], bool, tf.Tensor], tf.Tensor]

PRECISIONS = {"float32": tf.float32, "bfloat16": tf.bfloat16, "float16": tf.float16}

BEST_DIR = "best_checkpoint"
TRAIN_STATE_FILE = "train_state.json"
EVAL_HISTORY_FILE = "eval_history.tsv"
# Columns of the evaluation table logged when training ends, when present
# (classification, then SQuAD v1.1 and v2.0).
HISTORY_TABLE_KEYS = ("eval_loss", "eval_accuracy", "eval_macro_f1", "eval_mcc",
                      "exact_match", "f1", "exact", "HasAns_f1", "NoAns_f1")


@dataclasses.dataclass
class TrainConfig:
  """Hyperparameters and schedule of one training run.

  Attributes:
    train_batch_size: global batch per optimizer step (all replicas, all micro-batches).
    num_train_steps: optimizer steps in total.
    learning_rate: peak learning rate.
    num_warmup_steps: linear warmup steps.
    gradient_accumulation_steps: micro-batches per optimizer step.
    save_checkpoints_steps: write a checkpoint every this many steps (and at the end).
    keep_checkpoint_max: how many recent checkpoints to keep (0 keeps all).
    iterations_per_loop: most steps run inside one tf.function call.
    log_every_steps: how often progress is logged.
    seed: base seed of the data order and of dropout.
    precision: "float32", "bfloat16" or "float16".
    use_xla: compile the replica step with XLA.
    optimizer: "adamweightdecay" (the original's update) or "adamw" (with Adam's
      bias correction); see modeling.optimization.AdamWeightDecay.
    adam_epsilon: Adam's epsilon.
    weight_decay_rate: decoupled weight decay (LayerNorm and biases excluded).
    eval_every_steps: evaluate every this many steps (0: only at the end).
    best_metric: metric that picks the best checkpoint, e.g. "eval_accuracy".
    best_metric_mode: "max" or "min".
    early_stopping_patience: stop after this many evaluations without improvement
      (0 disables early stopping).
  """
  train_batch_size: int
  num_train_steps: int
  learning_rate: float
  num_warmup_steps: int = 0
  gradient_accumulation_steps: int = 1
  save_checkpoints_steps: int = 1000
  keep_checkpoint_max: int = 5
  iterations_per_loop: int = 1000
  log_every_steps: int = 50
  seed: int = 12345
  precision: str = "float32"
  use_xla: bool = False
  optimizer: str = "adamweightdecay"
  adam_epsilon: float = 1e-6
  weight_decay_rate: float = 0.01
  eval_every_steps: int = 0
  best_metric: str = "eval_accuracy"
  best_metric_mode: str = "max"
  early_stopping_patience: int = 0


def checkpoint_prefix(output_dir: str, step: int) -> str:
  """The original Estimator's checkpoint name: `<output_dir>/model.ckpt-<step>`."""
  return os.path.join(output_dir, f"model.ckpt-{step}")


def _format_duration(seconds: float) -> str:
  seconds = int(max(0, seconds))
  hours, rem = divmod(seconds, 3600)
  minutes, secs = divmod(rem, 60)
  return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _write_json_atomic(path: str, obj) -> None:
  files.write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _is_better(value: float, best: Optional[float], mode: str) -> bool:
  if best is None:
    return True
  return value > best if mode == "max" else value < best


class TrainingInterrupted(Exception):
  """Training stopped on SIGINT/SIGTERM after saving a checkpoint."""


class _StopOnSignal:
  """Turns the first SIGINT (Ctrl-C) or SIGTERM (preemption) into a polite request.

  The loop checks `requested` between tf.function calls, when the variables hold a
  whole number of steps, saves a checkpoint there and stops: no work is lost. A
  second signal interrupts at once, as usual.
  """

  def __init__(self):
    self.requested = None
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    if self.requested:
      raise KeyboardInterrupt
    self.requested = signal.Signals(signum).name
    logging.warning("%s received: stopping after the current step (again to abort)",
                    self.requested)

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for signum in (signal.SIGINT, signal.SIGTERM):
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc):
    for signum, previous in self._previous.items():
      signal.signal(signum, previous)
    return False


class Trainer:
  """Runs the training loop and owns the checkpoints in `output_dir`.

  Build the model and call `Trainer(...)` inside `strategy.scope()`: the optimizer
  slots are created here.
  """

  def __init__(self, strategy: tf.distribute.Strategy, model: tf.Module,
               loss_fn: LossFn, config: TrainConfig, output_dir: str,
               is_chief: bool = True):
    """Creates the optimizer and its slots under `strategy`.

    Args:
      strategy: the tf.distribute strategy the model was built under.
      model: a module with `named_variables()` (original names) and
        `trainable_variables`.
      loss_fn: computes the per-example loss of a micro-batch (see LossFn).
      config: the run's TrainConfig.
      output_dir: where checkpoints, summaries and train_state.json go.
      is_chief: False on non-chief workers, which write nothing.
    """
    if config.train_batch_size % config.gradient_accumulation_steps:
      raise ValueError(
          f"train_batch_size={config.train_batch_size} is not divisible by "
          f"gradient_accumulation_steps={config.gradient_accumulation_steps}")
    micro = config.train_batch_size // config.gradient_accumulation_steps
    if micro % strategy.num_replicas_in_sync:
      raise ValueError(
          f"The micro-batch ({micro} = train_batch_size / gradient_accumulation_steps)"
          f" must be divisible by the {strategy.num_replicas_in_sync} replicas")
    if config.optimizer not in optimization.OPTIMIZERS:
      raise ValueError(f"Unknown optimizer {config.optimizer!r}; expected one of "
                       f"{', '.join(optimization.OPTIMIZERS)}")
    if config.precision not in PRECISIONS:
      raise ValueError(f"Unknown precision {config.precision!r}; expected one of "
                       f"{', '.join(PRECISIONS)}")
    self.strategy = strategy
    self.model = model
    self.loss_fn = loss_fn
    self.config = config
    self.output_dir = output_dir
    self.is_chief = is_chief
    self.model_variables = model.named_variables()
    self.schedule = optimization.LinearWarmupLinearDecay(
        config.learning_rate, config.num_train_steps, config.num_warmup_steps)
    with strategy.scope():
      # float16 gradients underflow without loss scaling; bfloat16 has float32's range.
      self.loss_scale = (optimization.DynamicLossScale()
                         if config.precision == "float16" else None)
      self.optimizer = optimization.AdamWeightDecay(
          learning_rate=self.schedule, weight_decay_rate=config.weight_decay_rate,
          epsilon=config.adam_epsilon, loss_scale=self.loss_scale,
          bias_correction=config.optimizer == "adamw")
      self.optimizer.build(self.model_variables)
    self._variable_list = list(self.model_variables.values())
    self._train_chunk = None
    # One TensorBoard writer (one event file) per split for the whole run.
    self._summary_writers: Dict[str, tf.summary.SummaryWriter] = {}

  # ---------------------------------------------------------------- checkpoints
  def checkpoint_variables(self) -> Dict[str, tf.Variable]:
    """Model variables, optimizer slots and global_step, by original name."""
    variables = dict(self.model_variables)
    variables.update(self.optimizer.slot_variables())
    return variables

  @property
  def global_step(self) -> int:
    return int(self.optimizer.global_step.numpy())

  def restore_or_initialize(self, init_checkpoint: Optional[str]) -> int:
    """Resumes from the latest checkpoint in output_dir, or initialises from init_checkpoint.

    A checkpoint that cannot be read (truncated, corrupted) is skipped with a
    warning naming it, for the newest one before it that reads.

    Args:
      init_checkpoint: an original-format checkpoint (prefix or directory), or None
        to start from the random initialisation.

    Returns:
      The global step training starts from.
    """
    unreadable = []
    for prefix in ckpt_lib.checkpoints_newest_first(self.output_dir):
      try:
        ckpt_lib.restore_checkpoint(prefix, self.checkpoint_variables())
      except ckpt_lib.CheckpointError as e:
        if not e.unreadable:
          raise
        logging.warning("%s; trying the checkpoint before it", e)
        unreadable.append(prefix)
        continue
      logging.info("Resuming from %s", prefix)
      return self.global_step
    if unreadable:
      raise ckpt_lib.CheckpointError(
          f"No checkpoint in {self.output_dir} can be read ({', '.join(unreadable)}). "
          "Move them away to start from --init_checkpoint again, or pass "
          "--overwrite_output_dir to delete them.")
    if init_checkpoint:
      report = ckpt_lib.load_init_checkpoint(self.model_variables, init_checkpoint)
      logging.info("Initialised %d variables from %s", len(report.loaded),
                   init_checkpoint)
    else:
      logging.warning("No --init_checkpoint: training starts from random weights")
    return self.global_step

  def save(self) -> str:
    """Writes model.ckpt-<step> with slots and global_step; prunes old ones."""
    step = self.global_step
    prefix = checkpoint_prefix(self.output_dir, step)
    if not self.is_chief:
      return prefix
    ckpt_lib.save_checkpoint(prefix, self.checkpoint_variables())
    # Oldest first; the list is read from the files, so a damaged state file or a
    # damaged newer checkpoint (skipped at resume) does not stop the pruning.
    kept = sorted(set(ckpt_lib.checkpoints_newest_first(self.output_dir)) |
                  {os.path.normpath(prefix)}, key=ckpt_lib.checkpoint_step)
    dropped: List[str] = []
    if self.config.keep_checkpoint_max > 0:
      dropped = kept[:-self.config.keep_checkpoint_max]
      kept = kept[-self.config.keep_checkpoint_max:]
    # The state file moves to the new checkpoint only once it is complete, and old
    # files go only after that: a crash at any point leaves a usable checkpoint.
    ckpt_lib.update_checkpoint_state(self.output_dir, prefix, kept)
    for old in dropped:
      ckpt_lib.delete_checkpoint(old)
    logging.info("Saved checkpoint %s", prefix)
    return prefix

  # ---------------------------------------------------------------- training
  def _replica_step(self, features: Dict[str, tf.Tensor], step: tf.Tensor,
                    global_batch: int) -> tf.Tensor:
    """One optimizer step on this replica's share of the global batch.

    Returns:
      This replica's contribution to the global mean loss (sum over replicas = mean).
    """
    replica_ctx = tf.distribute.get_replica_context()
    replica_id = tf.cast(replica_ctx.replica_id_in_sync_group, tf.int64)
    base = tf.constant([self.config.seed, 0], tf.int64)
    seed = tf.random.experimental.stateless_fold_in(base, step)
    seed = tf.random.experimental.stateless_fold_in(seed, replica_id)
    loss_scale = self.loss_scale

    def micro_loss(micro_features, micro_index):
      micro_seed = tf.random.experimental.stateless_fold_in(seed, micro_index)
      per_example = self.loss_fn(micro_features, True, micro_seed)
      loss = tf.reduce_sum(per_example) / global_batch
      return loss_scale.scale_loss(loss) if loss_scale is not None else loss

    loss, grads = optimization.accumulated_gradients(
        micro_loss, self._variable_list, features,
        self.config.gradient_accumulation_steps)
    if loss_scale is not None:
      loss = loss / loss_scale.scale
      grads = loss_scale.unscale(grads)
    # XLA and TPUs need static shapes, which the sparse gradient path lacks.
    self.optimizer.apply_gradients(
        grads, sparse=not (self.config.use_xla or
                           isinstance(self.strategy, tf.distribute.TPUStrategy)))
    return loss

  def _build_train_chunk(self):
    global_batch = self.config.train_batch_size
    # No autograph: the step's Python control flow is over Python values only, and
    # converting the model, loss and optimizer code took about 40% of the
    # first call's tracing (py-spy on an Emotion run, bench/RESULTS.md, session 5).
    replica_fn = tf.autograph.experimental.do_not_convert(self._replica_step)
    if self.config.use_xla:
      replica_fn = tf.function(replica_fn, jit_compile=True, autograph=False)

    @tf.function(autograph=False)
    def train_chunk(iterator, num_steps):

      def body(i, total):
        step = tf.identity(self.optimizer.global_step)
        per_replica = self.strategy.run(
            replica_fn, args=(next(iterator), step, global_batch))
        return i + 1, total + self.strategy.reduce(tf.distribute.ReduceOp.SUM,
                                                   per_replica, axis=None)

      _, total = tf.while_loop(lambda i, _: i < num_steps, body,
                               (tf.constant(0, tf.int32), tf.constant(0.0, tf.float32)))
      return total

    return train_chunk

  def train_steps(self, iterator, num_steps: int) -> float:
    """Runs `num_steps` optimizer steps without logging or checkpoints.

    Args:
      iterator: an iterator over `strategy.experimental_distribute_dataset(...)`.
      num_steps: optimizer steps to run inside one tf.function call.

    Returns:
      The sum over the steps of the global mean loss.
    """
    if self._train_chunk is None:
      self._train_chunk = self._build_train_chunk()
    return float(self._train_chunk(iterator, tf.constant(num_steps, tf.int32)))

  def _log_summaries(self, scalars: Dict[str, float], step: int, subdir: str) -> None:
    if not self.is_chief:
      return
    writer = self._summary_writers.get(subdir)
    if writer is None:
      writer = tf.summary.create_file_writer(os.path.join(self.output_dir, subdir))
      self._summary_writers[subdir] = writer
    with writer.as_default(step=step):
      for key, value in scalars.items():
        if isinstance(value, (int, float, np.floating, np.integer)):
          tf.summary.scalar(key, float(value))
    writer.flush()

  def _load_train_state(self) -> Dict:
    path = os.path.join(self.output_dir, TRAIN_STATE_FILE)
    if tf.io.gfile.exists(path):
      with tf.io.gfile.GFile(path) as f:
        return json.load(f)
    return {"best_value": None, "best_step": None, "evals_without_improvement": 0,
            "history": []}

  def _after_eval(self, metrics: Dict, state: Dict, train_loss: float) -> bool:
    """Records an evaluation, keeps the best weights; returns True to stop early.

    Args:
      metrics: the evaluation's metrics.
      state: the run's train state (history, best value), updated in place.
      train_loss: mean training loss of the steps since the previous evaluation.
    """
    step = self.global_step
    cfg = self.config
    if cfg.best_metric not in metrics:
      raise ValueError(f"--best_checkpoint_metric={cfg.best_metric!r} is not among "
                       f"the evaluation metrics: {', '.join(sorted(metrics))}")
    value = float(metrics[cfg.best_metric])
    entry = {"step": step, "train_loss": train_loss}
    entry.update({k: float(v) for k, v in metrics.items()
                  if isinstance(v, (int, float, np.floating, np.integer))
                  and k != "global_step"})
    state["history"].append(entry)
    if _is_better(value, state["best_value"], cfg.best_metric_mode):
      state["best_value"], state["best_step"] = value, step
      state["evals_without_improvement"] = 0
      if self.is_chief:
        self._save_best(metrics)
      logging.info("New best %s = %.5f at step %d", cfg.best_metric, value, step)
    else:
      state["evals_without_improvement"] += 1
      logging.info("%s = %.5f at step %d; best %.5f at step %d (%d evaluations "
                   "without improvement)", cfg.best_metric, value, step,
                   state["best_value"], state["best_step"],
                   state["evals_without_improvement"])
    if self.is_chief:
      _write_json_atomic(os.path.join(self.output_dir, TRAIN_STATE_FILE), state)
      files.write_text_atomic(os.path.join(self.output_dir, EVAL_HISTORY_FILE),
                              history_tsv(state["history"]))
    patience = cfg.early_stopping_patience
    return patience > 0 and state["evals_without_improvement"] >= patience

  def _save_best(self, metrics: Dict) -> None:
    """Keeps the best weights (weights only) in output_dir/best_checkpoint/."""
    best_dir = os.path.join(self.output_dir, BEST_DIR)
    tmp_dir = f"{best_dir}.tmp-{os.getpid()}"
    if tf.io.gfile.exists(tmp_dir):
      tf.io.gfile.rmtree(tmp_dir)
    tf.io.gfile.makedirs(tmp_dir)
    step = self.global_step
    ckpt_lib.save_checkpoint(os.path.join(tmp_dir, f"model.ckpt-{step}"),
                             self.model_variables)
    ckpt_lib.update_checkpoint_state(tmp_dir, os.path.join(tmp_dir, f"model.ckpt-{step}"),
                                     [os.path.join(tmp_dir, f"model.ckpt-{step}")])
    _write_json_atomic(os.path.join(tmp_dir, "eval_results.json"),
                       {k: v for k, v in metrics.items()})
    # Rewrite the state file with paths relative to the final directory name.
    with tf.io.gfile.GFile(os.path.join(tmp_dir, "checkpoint"), "w") as f:
      f.write(f'model_checkpoint_path: "model.ckpt-{step}"\n'
              f'all_model_checkpoint_paths: "model.ckpt-{step}"\n')
    if tf.io.gfile.exists(best_dir):
      old = f"{best_dir}.old-{os.getpid()}"
      tf.io.gfile.rename(best_dir, old, overwrite=True)
      tf.io.gfile.rename(tmp_dir, best_dir)
      tf.io.gfile.rmtree(old)
    else:
      tf.io.gfile.rename(tmp_dir, best_dir)

  def best_checkpoint(self) -> Optional[str]:
    """Prefix of the kept best checkpoint, if evaluation during training made one."""
    return tf.train.latest_checkpoint(os.path.join(self.output_dir, BEST_DIR))

  def train(self, dataset_fn: Callable[[int], tf.data.Dataset],
            eval_fn: Optional[Callable[[], Dict]] = None) -> Dict:
    """Trains until num_train_steps (or early stopping), checkpointing on the way.

    Args:
      dataset_fn: skip_batches -> the training dataset of global batches, repeated,
        in an order fixed by the seed, with the first `skip_batches` batches dropped
        (so a resumed run sees exactly the batches the interrupted one had left).
      eval_fn: returns evaluation metrics for the current weights; called every
        eval_every_steps when that is > 0.

    Returns:
      {"global_step", "loss" (mean of the last logged window), "stopped_early",
       "best_step", "best_value"}.
    """
    cfg = self.config
    start_step = self.global_step
    if start_step >= cfg.num_train_steps:
      logging.info("global_step %d already reached num_train_steps %d: nothing to "
                   "train", start_step, cfg.num_train_steps)
      state = self._load_train_state()
      return {"global_step": start_step, "loss": float("nan"), "stopped_early": False,
              "best_step": state["best_step"], "best_value": state["best_value"]}
    # Finite: the pipeline ends with the last step. Deleting the iterator of a
    # still-running endless pipeline waited for its background thread (py-spy:
    # ~MultiDeviceIterator in LogicalThreadWrapper's destructor), 16.5 to 49 s
    # after the last step of an Emotion epoch.
    dataset = _shard_by_data(
        dataset_fn(start_step).take(cfg.num_train_steps - start_step))
    iterator = iter(self.strategy.experimental_distribute_dataset(dataset))
    state = self._load_train_state()
    logging.info("***** Training from step %d to %d *****", start_step,
                 cfg.num_train_steps)
    logging.info("  Batch size = %d (%d replicas, %d accumulation steps), precision "
                 "= %s, XLA = %s", cfg.train_batch_size,
                 self.strategy.num_replicas_in_sync, cfg.gradient_accumulation_steps,
                 cfg.precision, cfg.use_xla)
    logging.info("  Optimizer = %s, peak learning rate = %g, warmup = %d steps, "
                 "weight decay = %g, epsilon = %g", cfg.optimizer, cfg.learning_rate,
                 cfg.num_warmup_steps, cfg.weight_decay_rate, cfg.adam_epsilon)
    if not self.optimizer.has_cpu_kernel:
      logging.info("  The optimizer's one-pass CPU kernel is not built; the update "
                   "runs as TensorFlow ops (same values, slower). Build it with "
                   "`python -m modeling.kernels`.")
    run_start, run_start_step = time.time(), start_step
    try:
      with _StopOnSignal() as stop:
        result = self._train_loop(iterator, eval_fn, state, stop, start_step,
                                  run_start, run_start_step)
    finally:
      for writer in self._summary_writers.values():
        writer.close()
      self._summary_writers.clear()
    if state["history"]:
      logging.info("Evaluations during training (* the kept best by %s; all "
                   "metrics in %s):\n%s", cfg.best_metric,
                   os.path.join(self.output_dir, EVAL_HISTORY_FILE),
                   history_table(state["history"], cfg.best_metric,
                                 state["best_step"]))
    # Releasing the input pipeline stops its background threads. It takes
    # milliseconds; tf.data's autotuning thread once made it take up to a minute
    # (_without_autotune_thread): say so if it happens again.
    release_start = time.time()
    del iterator, dataset
    if time.time() - release_start > 1.0:
      logging.info("Releasing the training input pipeline took %.1f s",
                   time.time() - release_start)
    return result

  def _train_loop(self, iterator, eval_fn, state, stop, start_step, run_start,
                  run_start_step) -> Dict:
    """The body of train(): runs chunks of steps until done, stopped or interrupted."""
    cfg = self.config
    step = start_step
    loss_value = float("nan")
    stopped_early = False
    window_start, window_steps, window_loss = time.time(), 0, 0.0
    eval_window_steps, eval_window_loss = 0, 0.0
    while step < cfg.num_train_steps:
      boundaries = [cfg.num_train_steps, _next_multiple(step, cfg.save_checkpoints_steps),
                    _next_multiple(step, cfg.log_every_steps)]
      if eval_fn is not None and cfg.eval_every_steps > 0:
        boundaries.append(_next_multiple(step, cfg.eval_every_steps))
      num_steps = min(min(boundaries) - step, cfg.iterations_per_loop)
      chunk_loss = self.train_steps(iterator, num_steps)
      step = self.global_step
      if not math.isfinite(chunk_loss) and self.loss_scale is None:
        raise FloatingPointError(
            f"Loss became {chunk_loss} at step {step}. The last checkpoint in "
            f"{self.output_dir} is intact; lower --learning_rate or check the data.")
      window_steps += num_steps
      window_loss += chunk_loss
      eval_window_steps += num_steps
      eval_window_loss += chunk_loss
      if step % cfg.log_every_steps == 0 or step >= cfg.num_train_steps:
        now = time.time()
        loss_value = window_loss / max(window_steps, 1)
        examples_per_sec = window_steps * cfg.train_batch_size / max(now - window_start, 1e-9)
        done = step - run_start_step
        rate = done / max(now - run_start, 1e-9)
        eta = (cfg.num_train_steps - step) / rate if rate > 0 else 0.0
        lr = float(self.schedule(step))
        logging.info("step %d/%d  loss = %.5f  lr = %.3e  %.1f examples/sec  "
                     "elapsed %s  left %s", step, cfg.num_train_steps, loss_value, lr,
                     examples_per_sec, _format_duration(now - run_start),
                     _format_duration(eta))
        scalars = {"loss": loss_value, "learning_rate": lr,
                   "examples_per_second": examples_per_sec}
        if self.loss_scale is not None:
          scalars["loss_scale"] = float(self.loss_scale.scale.numpy())
        self._log_summaries(scalars, step, "train")
        window_start, window_steps, window_loss = now, 0, 0.0
      if (step % cfg.save_checkpoints_steps == 0 or step >= cfg.num_train_steps or
          stop.requested):
        self.save()
      if stop.requested:
        raise TrainingInterrupted(
            f"Interrupted ({stop.requested}) at step {step}; checkpoint saved in "
            f"{self.output_dir}. Run the same command again to resume.")
      if (eval_fn is not None and cfg.eval_every_steps > 0 and
          (step % cfg.eval_every_steps == 0 or step >= cfg.num_train_steps)):
        metrics = eval_fn()
        self._log_summaries(metrics, step, "eval")
        train_loss = eval_window_loss / max(eval_window_steps, 1)
        eval_window_steps, eval_window_loss = 0, 0.0
        if self._after_eval(metrics, state, train_loss):
          logging.info("Early stopping at step %d: %s did not improve for %d "
                       "evaluations", step, cfg.best_metric,
                       cfg.early_stopping_patience)
          if step % cfg.save_checkpoints_steps != 0:
            self.save()
          stopped_early = True
          break
    return {"global_step": step, "loss": loss_value, "stopped_early": stopped_early,
            "best_step": state["best_step"], "best_value": state["best_value"]}


def history_tsv(history: List[Dict]) -> str:
  """The evaluation history as TSV: step, train_loss, then every metric, sorted."""
  keys = sorted({k for entry in history for k in entry} - {"step", "train_loss"})
  lines = ["\t".join(["step", "train_loss"] + keys)]
  for entry in history:
    lines.append("\t".join([str(entry["step"])] + [
        "" if entry.get(k) is None else f"{entry[k]:.6g}"
        for k in ["train_loss"] + keys]))
  return "\n".join(lines) + "\n"


def history_table(history: List[Dict], best_metric: str,
                  best_step: Optional[int]) -> str:
  """The evaluation history as an aligned text table, the best step marked.

  Columns: step, train_loss, best_metric, and those of HISTORY_TABLE_KEYS that the
  evaluations report.
  """
  keys = ["train_loss", best_metric] + [
      k for k in HISTORY_TABLE_KEYS
      if k != best_metric and any(k in entry for entry in history)]
  header = ["step"] + keys
  rows = []
  for entry in history:
    mark = "*" if entry["step"] == best_step else ""
    rows.append([f"{entry['step']}{mark}"] + [
        "-" if entry.get(k) is None else f"{entry[k]:.4f}" for k in keys])
  widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
  return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(r, widths))
                   for r in [header] + rows)


def _shard_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
  """Lets multi-worker strategies split one TFRecord file by elements, not by files."""
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = (
      tf.data.experimental.AutoShardPolicy.DATA)
  return _without_autotune_thread(dataset.with_options(options))


def _without_autotune_thread(dataset: tf.data.Dataset) -> tf.data.Dataset:
  """Switches off tf.data's autotuning thread, which could hold up deleting an iterator.

  Deleting an iterator cancels that thread. It can miss the wake-up and sleep out its
  optimization period (up to 60 s) first: py-spy caught the main thread in
  ~RootDataset::Iterator, joining it, during a 57 s pause after the last step of an
  Emotion epoch; such pauses (4.8-57 s) hit about one run in eight
  (bench/RESULTS.md, session 12). These pipelines parse a batch in about a
  millisecond against a step of 100 ms or more: AUTOTUNE's fixed starting values
  keep up without the tuning (same examples/s, RESULTS.md).
  """
  options = tf.data.Options()
  options.autotune.enabled = False
  return dataset.with_options(options)


def _next_multiple(step: int, every: int) -> int:
  """The smallest multiple of `every` strictly greater than `step`."""
  every = max(1, every)
  return (step // every + 1) * every


class _PredictProgress(object):
  """Logs batches done, examples/s and the time left, at most every log_every_secs."""

  def __init__(self, what: str, total_batches: Optional[int],
               log_every_secs: float):
    self.what, self.total, self.every = what, total_batches, log_every_secs
    self.start = self.last_log = time.time()
    self.batches = self.examples = 0

  def update(self, num_examples: int) -> None:
    self.batches += 1
    self.examples += num_examples
    now = time.time()
    if now - self.last_log < self.every:
      return
    self.last_log = now
    rate = self.examples / max(now - self.start, 1e-9)
    if self.total:
      left = (self.total - self.batches) * (now - self.start) / self.batches
      logging.info("%s: batch %d/%d (%d%%), %.1f examples/sec, %s left", self.what,
                   self.batches, self.total, 100 * self.batches // self.total, rate,
                   _format_duration(left))
    else:
      logging.info("%s: batch %d, %.1f examples/sec", self.what, self.batches, rate)

  def done(self) -> None:
    elapsed = time.time() - self.start
    logging.info("%s: %d examples in %s (%.1f examples/sec)", self.what,
                 self.examples, _format_duration(elapsed),
                 self.examples / max(elapsed, 1e-9))


def predict(strategy: tf.distribute.Strategy, predict_fn: Callable,
            dataset: tf.data.Dataset,
            index_key: Optional[str] = None, what: str = "Predicting",
            log_every_secs: float = 10.0) -> Dict[str, np.ndarray]:
  """Runs `predict_fn` over a dataset under the strategy, keeping input order.

  Args:
    strategy: the strategy the model lives under.
    predict_fn: features dict -> dict of tensors with a leading batch dimension.
    dataset: batched features, not repeated, not shuffled.
    index_key: a feature [B] of each example's position in the input, for a
      dataset whose batches are not in input order (such as one sorted by length,
      processors.make_dataset's length_sorted_window). It is not passed to
      predict_fn; the outputs are put back in the order it gives.
    what: names the work in the progress log ("Evaluating", "Predicting").
    log_every_secs: at most this often, a progress line (batches, examples/s,
      time left when the dataset's length is known).

  Returns:
    The outputs concatenated over all batches, in input order.
  """
  if index_key is not None:
    inner_fn = predict_fn

    def predict_fn(features):  # pylint: disable=function-redefined
      features = dict(features)
      index = features.pop(index_key)
      outputs = dict(inner_fn(features))
      outputs[index_key] = index
      return outputs

  local_only = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
  dataset = _without_autotune_thread(dataset)
  outputs: Dict[str, List[np.ndarray]] = {}
  cardinality = int(dataset.cardinality())
  progress = _PredictProgress(what, cardinality if cardinality > 0 else None,
                              log_every_secs)
  # Batches cut by dynamic padding (and the last, smaller batch) differ in shape:
  # tracing once for the dataset's element_spec (whose varying dimensions are None)
  # keeps every batch on one graph instead of one trace per distinct length.
  if local_only:
    # Only the chief evaluates; collectives would wait for the other workers.
    step = tf.function(predict_fn, input_signature=[dataset.element_spec],
                       autograph=False)
    for features in dataset:
      num_examples = 0
      for key, value in step(features).items():
        outputs.setdefault(key, []).append(value.numpy())
        num_examples = len(outputs[key][-1])
      progress.update(num_examples)
  else:
    dist_dataset = strategy.experimental_distribute_dataset(dataset)

    @tf.function(input_signature=[dist_dataset.element_spec], autograph=False)
    def step(features):
      return strategy.run(predict_fn, args=(features,))

    for features in dist_dataset:
      num_examples = 0
      for key, value in step(features).items():
        parts = [local.numpy() for local in strategy.experimental_local_results(value)]
        outputs.setdefault(key, []).extend(parts)
        num_examples = sum(len(part) for part in parts)
      progress.update(num_examples)
  progress.done()
  result = {key: np.concatenate(parts, axis=0) if parts else np.zeros([0])
            for key, parts in outputs.items()}
  if index_key is not None and index_key in result:
    order = np.argsort(result.pop(index_key), kind="stable")
    result = {key: value[order] for key, value in result.items()}
  return result


def remove_checkpoints(output_dir: str) -> None:
  """Deletes the training checkpoints and state of output_dir (for --overwrite_output_dir)."""
  for prefix in ckpt_lib.checkpoints_newest_first(output_dir):
    ckpt_lib.delete_checkpoint(prefix)
  for name in ("checkpoint", TRAIN_STATE_FILE, EVAL_HISTORY_FILE):
    path = os.path.join(output_dir, name)
    if tf.io.gfile.exists(path):
      tf.io.gfile.remove(path)
  best = os.path.join(output_dir, BEST_DIR)
  if tf.io.gfile.exists(best):
    tf.io.gfile.rmtree(best)
  for summaries in ("train", "eval"):
    path = os.path.join(output_dir, summaries)
    if tf.io.gfile.exists(path):
      tf.io.gfile.rmtree(path)
