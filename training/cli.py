"""What run_classifier.py and run_squad.py share at the command line.

The flags both original scripts define with the same text, the flags this port adds
to both, and the checks and set-up steps that turn those flags into a tokenizer, a
strategy and a training configuration. Every function takes the flag values
explicitly (`flag_values`, normally `absl.flags.FLAGS`), so the scripts stay the only
readers of the global FLAGS.
"""

import atexit
import errno
import json
import os
import re
import sys

from absl import flags
from absl import logging

from modeling import checkpoint as ckpt_lib
from modeling import config as config_lib
from modeling import optimization
from training import distribution
from training import files
from training import loop as loop_lib
from training import run_lock

# Dynamic padding rounds each batch's length up to a multiple of this: 8 where a
# GPU runs the model (tensor cores want multiples of 8), none on CPUs. On CPUs the
# exact lengths made an Emotion MiniLM epoch with --length_bucketing 6-14% shorter
# than multiples of 8 (bench/RESULTS.md, session 7): 15% fewer positions, and a
# new length costs no retrace.
DYNAMIC_PADDING_MULTIPLE_GPU = 8
DYNAMIC_PADDING_MULTIPLE_CPU = 1
EXPORT_PRECISIONS = ("float32", "bfloat16", "float16")


class UsageError(ValueError):
  """A problem with the flags or inputs, found before any training."""


# ------------------------------------------------------------------------- flags
def define_original_flags(flag_values=flags.FLAGS):
  """The original flags that run_classifier.py and run_squad.py define alike."""
  flags.DEFINE_string(
      "bert_config_file", None,
      "The config json file corresponding to the pre-trained BERT model. "
      "This specifies the model architecture.", flag_values=flag_values)
  flags.DEFINE_string("vocab_file", None,
                      "The vocabulary file that the BERT model was trained on.",
                      flag_values=flag_values)
  flags.DEFINE_string(
      "output_dir", None,
      "The output directory where the model checkpoints will be written.",
      flag_values=flag_values)
  flags.DEFINE_string(
      "init_checkpoint", None,
      "Initial checkpoint (usually from a pre-trained BERT model).",
      flag_values=flag_values)
  flags.DEFINE_bool(
      "do_lower_case", True,
      "Whether to lower case the input text. Should be True for uncased "
      "models and False for cased models.", flag_values=flag_values)
  flags.DEFINE_bool("do_train", False, "Whether to run training.",
                    flag_values=flag_values)
  flags.DEFINE_integer("train_batch_size", 32, "Total batch size for training.",
                       flag_values=flag_values)
  flags.DEFINE_float("learning_rate", 5e-5, "The initial learning rate for Adam.",
                     flag_values=flag_values)
  flags.DEFINE_float("num_train_epochs", 3.0,
                     "Total number of training epochs to perform.",
                     flag_values=flag_values)
  flags.DEFINE_float(
      "warmup_proportion", 0.1,
      "Proportion of training to perform linear learning rate warmup for. "
      "E.g., 0.1 = 10% of training.", flag_values=flag_values)
  flags.DEFINE_integer("save_checkpoints_steps", 1000,
                       "How often to save the model checkpoint.",
                       flag_values=flag_values)
  flags.DEFINE_integer("iterations_per_loop", 1000,
                       "How many steps to make in each estimator call (here: the "
                       "most steps run inside one tf.function call).",
                       flag_values=flag_values)
  flags.DEFINE_bool("use_tpu", False, "Whether to use TPU or GPU/CPU. Same as "
                    "--distribution_strategy=tpu.", flag_values=flag_values)
  flags.DEFINE_string(
      "tpu_name", None,
      "The Cloud TPU to use for training. This should be either the name "
      "used when creating the Cloud TPU, or a grpc://ip.address.of.tpu:8470 "
      "url. Use 'local' on a TPU VM.", flag_values=flag_values)
  flags.DEFINE_string(
      "tpu_zone", None,
      "[Optional] GCE zone where the Cloud TPU is located in. If not "
      "specified, we will attempt to automatically detect the GCE project from "
      "metadata.", flag_values=flag_values)
  flags.DEFINE_string(
      "gcp_project", None,
      "[Optional] Project name for the Cloud TPU-enabled project. If not "
      "specified, we will attempt to automatically detect the GCE project from "
      "metadata.", flag_values=flag_values)
  flags.DEFINE_string("master", None, "[Optional] TensorFlow master URL.",
                      flag_values=flag_values)
  flags.DEFINE_integer(
      "num_tpu_cores", 8,
      "Only used if `use_tpu` is True. Total number of TPU cores to use. "
      "(TPUStrategy uses every core of the TPU it connects to; a mismatch is "
      "logged.)", flag_values=flag_values)


def define_port_flags(*, seed_help, dynamic_padding_help, overwrite_help,
                      export_help, flag_values=flags.FLAGS):
  """The flags this port adds to both scripts.

  Args:
    seed_help, dynamic_padding_help, overwrite_help, export_help: the help texts of
      the flags whose meaning differs between classification and SQuAD.
    flag_values: where to define them.
  """
  flags.DEFINE_enum(
      "distribution_strategy", None, list(distribution.STRATEGIES),
      "How to spread training over devices: one_device (default; the GPU if there "
      "is one, else the CPU), mirrored (all local GPUs, or --num_cpu_devices "
      "logical CPUs), multi_worker_mirrored (several machines; needs TF_CONFIG), "
      "tpu (same as --use_tpu).", flag_values=flag_values)
  flags.DEFINE_integer(
      "num_cpu_devices", 1,
      "Split the host CPU into this many logical devices, so that "
      "--distribution_strategy=mirrored can be tried without GPUs.",
      flag_values=flag_values)
  flags.DEFINE_enum(
      "precision", "float32", list(loop_lib.PRECISIONS),
      "Compute precision. Variables stay float32; bfloat16 suits TPUs and CPUs "
      "with AMX, float16 suits GPUs (with dynamic loss scaling).",
      flag_values=flag_values)
  flags.DEFINE_bool(
      "use_xla", False,
      "Compile the training step with XLA (jit_compile). Helps on GPU; on CPU it "
      "is usually slower.", flag_values=flag_values)
  flags.DEFINE_integer(
      "gradient_accumulation_steps", 1,
      "Split each train batch into this many micro-batches and accumulate their "
      "gradients before one optimizer step: train_batch_size stays the effective "
      "batch size while memory holds only a micro-batch.", flag_values=flag_values)
  flags.DEFINE_enum(
      "optimizer", "adamweightdecay", list(optimization.OPTIMIZERS),
      "adamweightdecay: the original BERT optimizer (Adam without bias correction, "
      "decoupled weight decay), for which the original recipes were tuned. adamw: "
      "the same with Adam's bias correction, the update of torch.optim.AdamW and "
      "the Hugging Face Trainer, for their recipes (e.g. learning rate 1e-4 for "
      "small models). Without the correction early steps are several times "
      "larger than the learning rate says, so the original wants a lower one. "
      "Both keep the original's learning-rate schedule.",
      flag_values=flag_values)
  flags.DEFINE_float(
      "adam_epsilon", 1e-6,
      "Adam's epsilon (the original's 1e-6; torch and the Trainer use 1e-8).",
      flag_values=flag_values)
  flags.DEFINE_float(
      "weight_decay_rate", 0.01,
      "Decoupled weight decay of every variable except LayerNorm and biases "
      "(the original's 0.01).", flag_values=flag_values)
  flags.DEFINE_integer("keep_checkpoint_max", 5,
                       "How many recent checkpoints to keep in output_dir (0: all).",
                       flag_values=flag_values)
  flags.DEFINE_integer("seed", 12345, seed_help, flag_values=flag_values)
  flags.DEFINE_string(
      "spm_model_file", None,
      "A SentencePiece model file, for models pre-trained with one (ALBERT-style). "
      "Replaces --vocab_file for tokenization.", flag_values=flag_values)
  flags.DEFINE_integer("log_every_steps", 50,
                       "Log loss, learning rate, speed and time left every this many "
                       "steps.", flag_values=flag_values)
  flags.DEFINE_bool("dynamic_padding", True, dynamic_padding_help,
                    flag_values=flag_values)
  flags.DEFINE_bool("overwrite_output_dir", False, overwrite_help,
                    flag_values=flag_values)
  flags.DEFINE_string("export_dir", None, export_help, flag_values=flag_values)
  flags.DEFINE_enum(
      "export_precision", "float32", list(EXPORT_PRECISIONS),
      "Matmul dtype of the --export_dir SavedModel (weights and outputs stay "
      "float32).", flag_values=flag_values)


def define_eval_during_training_flags(*, eval_what, default_metric, metric_help,
                                      flag_values=flags.FLAGS):
  """--eval_every_steps, --best_checkpoint_metric, --early_stopping_patience.

  Args:
    eval_what: what is evaluated, for the help text ("the dev set").
    default_metric: the metric that picks the best checkpoint by default.
    metric_help: the metrics a user can choose from, for the help text.
    flag_values: where to define them.
  """
  flags.DEFINE_integer(
      "eval_every_steps", 0,
      f"Evaluate on {eval_what} every this many steps during training, keep the "
      "best weights in output_dir/best_checkpoint, and use them for the final "
      "eval, predict and export. 0: evaluate only after training.",
      flag_values=flag_values)
  flags.DEFINE_string(
      "best_checkpoint_metric", default_metric,
      "Metric that picks the best checkpoint with --eval_every_steps: "
      f"{metric_help} (lower is better for a name ending in 'loss').",
      flag_values=flag_values)
  flags.DEFINE_integer(
      "early_stopping_patience", 0,
      "With --eval_every_steps, stop training after this many evaluations without "
      "improvement of --best_checkpoint_metric. 0: never stop early.",
      flag_values=flag_values)


# ------------------------------------------------------------------------ checks
def check_common_flags(flag_values, bert_config, positive_int_flags):
  """Checks the flags both scripts share, before anything is built.

  Args:
    flag_values: the parsed flags.
    bert_config: the BertConfig of --bert_config_file.
    positive_int_flags: names of integer flags that must be at least 1.

  Raises:
    UsageError: on the first problem found.
  """
  import tokenization  # pylint: disable=g-import-not-at-top
  try:
    tokenization.validate_case_matches_checkpoint(flag_values.do_lower_case,
                                                  flag_values.init_checkpoint)
  except ValueError as e:
    raise UsageError(str(e)) from e
  if flag_values.max_seq_length > bert_config.max_position_embeddings:
    raise UsageError(
        "Cannot use sequence length %d because the BERT model "
        "was only trained up to sequence length %d" %
        (flag_values.max_seq_length, bert_config.max_position_embeddings))
  if not flag_values.vocab_file and not flag_values.spm_model_file:
    raise UsageError("Pass --vocab_file (WordPiece) or --spm_model_file "
                     "(SentencePiece)")
  for name in ("vocab_file", "spm_model_file", "bert_config_file"):
    path = getattr(flag_values, name)
    if path and not _exists(path):
      raise UsageError(f"--{name}={path} does not exist")
  for name in positive_int_flags:
    if getattr(flag_values, name) < 1:
      raise UsageError(f"--{name} must be at least 1, got "
                       f"{getattr(flag_values, name)}")
  if flag_values.do_train and flag_values.num_train_epochs <= 0:
    raise UsageError("--num_train_epochs must be positive")
  if not 0.0 <= flag_values.warmup_proportion <= 1.0:
    raise UsageError("--warmup_proportion must be in [0, 1]")
  try:
    distribution.resolve_strategy_name(flag_values.distribution_strategy,
                                       flag_values.use_tpu)
  except ValueError as e:
    raise UsageError(str(e)) from e


def _exists(path):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.io.gfile.exists(path)


def check_vocab_fits(tokenizer, bert_config, do_lower_case, vocab_file):
  """Refuses a vocab that cannot belong to the model config or the casing flag.

  Args:
    tokenizer: the tokenizer built from the vocab (or SentencePiece model).
    bert_config: the model's BertConfig.
    do_lower_case: the casing flag.
    vocab_file: the WordPiece vocab path, or None for SentencePiece (whose casing
      is part of the model, so only the size is checked).

  Raises:
    UsageError: the vocab is larger than the embedding table, or its casing
      contradicts --do_lower_case.
  """
  vocab = tokenizer.vocab
  source = vocab_file or "the SentencePiece model"
  if len(vocab) > bert_config.vocab_size:
    raise UsageError(
        f"{source} has {len(vocab)} entries but the model's vocab_size is "
        f"{bert_config.vocab_size}: the vocab and --bert_config_file belong to "
        "different models")
  if vocab_file is None:
    return
  cased_entries = sum(1 for token in vocab
                      if not token.startswith("[") and token.lower() != token)
  if not do_lower_case and cased_entries == 0:
    raise UsageError(
        f"--do_lower_case=False but {vocab_file} has no upper-case entries (an "
        "uncased vocab): upper-case words would become [UNK]. Use "
        "--do_lower_case=True.")
  if do_lower_case and cased_entries >= 1000:
    raise UsageError(
        f"--do_lower_case=True but {vocab_file} has {cased_entries} upper-case "
        "entries (a cased vocab). Use --do_lower_case=False.")


def build_tokenizer(flag_values, bert_config):
  """The tokenizer of --vocab_file or --spm_model_file, checked against the model.

  Returns:
    (tokenizer, tokenizer_id): tokenizer_id names the vocab file, its content hash
    and the casing, so cached features and resumed checkpoints can be matched to it.
  """
  import tokenization  # pylint: disable=g-import-not-at-top
  vocab_file = None if flag_values.spm_model_file else flag_values.vocab_file
  tokenizer = tokenization.create_tokenizer(
      vocab_file=vocab_file, do_lower_case=flag_values.do_lower_case,
      spm_model_file=flag_values.spm_model_file)
  check_vocab_fits(tokenizer, bert_config, flag_values.do_lower_case, vocab_file)
  tokenizer_file = flag_values.spm_model_file or flag_values.vocab_file
  tokenizer_id = (f"{os.path.basename(tokenizer_file)}:"
                  f"{files.file_sha256(tokenizer_file)[:16]}:"
                  f"lower={flag_values.do_lower_case}")
  return tokenizer, tokenizer_id


def check_output_dir(output_dir, config_file, run_config, overwrite):
  """Makes sure output_dir holds no checkpoints of a different run.

  Args:
    output_dir: the run's output directory.
    config_file: name of the JSON file that records run_config in output_dir.
    run_config: dict of what must match for checkpoints to be resumed.
    overwrite: --overwrite_output_dir: delete mismatching checkpoints instead of
      refusing.

  Returns:
    True when output_dir holds checkpoints of this same run (they will be resumed).

  Raises:
    UsageError: output_dir holds checkpoints of a different run.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  path = os.path.join(output_dir, config_file)
  has_checkpoint = bool(ckpt_lib.checkpoints_newest_first(output_dir))
  if not has_checkpoint:
    return False
  if not tf.io.gfile.exists(path):
    logging.info("%s holds checkpoints without %s; assuming they are this run's",
                 output_dir, config_file)
    return True
  with tf.io.gfile.GFile(path) as f:
    previous = json.load(f)
  # An older run's config may spell the same model differently.
  if "bert_config" in previous:
    previous["bert_config"] = config_lib.with_current_gelu_spelling(
        previous["bert_config"])
  diffs = [key for key in sorted(run_config)
           if previous.get(key) != run_config.get(key)]
  if not diffs:
    return True
  if not overwrite:
    details = "; ".join(f"{k}: was {previous.get(k)!r}, now {run_config.get(k)!r}"
                        for k in diffs if k != "bert_config")
    if "bert_config" in diffs:
      details += ("; " if details else "") + "bert_config differs"
    raise UsageError(
        f"{output_dir} holds checkpoints of a different run ({details}). Use "
        "another --output_dir, or pass --overwrite_output_dir to delete those "
        "checkpoints.")
  logging.warning("--overwrite_output_dir: removing the checkpoints in %s",
                  output_dir)
  loop_lib.remove_checkpoints(output_dir)
  return False


def claim_output_dir(flag_values):
  """Creates --output_dir, takes its run lock and cleans what interrupted runs left.

  Fails at start, before any training work, when the directory cannot be written
  or another live run holds it. The lock is released when the process exits.

  Args:
    flag_values: the parsed flags (output_dir, distribution_strategy).

  Returns:
    The held RunLock, or None for a remote directory (gs://...), which is not
    locked.

  Raises:
    UsageError: the directory cannot be created or written, or is in use.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  output_dir = flag_values.output_dir
  try:
    tf.io.gfile.makedirs(output_dir)
  except (tf.errors.OpError, OSError) as e:
    raise UsageError(f"cannot create --output_dir={output_dir}: "
                     f"{getattr(e, 'message', None) or e}") from e
  if "://" in output_dir:
    logging.info("%s is remote: not locked against concurrent runs", output_dir)
    return None
  worker = distribution.worker_index_from_tf_config(strategy_name(flag_values))
  lock = run_lock.RunLock(output_dir, worker)
  try:
    lock.acquire()
  except run_lock.OutputDirBusy as e:
    raise UsageError(str(e)) from e
  except OSError as e:
    raise UsageError(f"cannot write to --output_dir={output_dir}: "
                     f"{e.strerror or e}") from e
  atexit.register(lock.release)
  others = [name for name in os.listdir(output_dir)
            if name.endswith(".lock") and name != os.path.basename(lock.path)]
  if worker == 0 and not others:
    run_lock.remove_temporary_files(output_dir)
  return lock


def write_run_config(output_dir, config_file, run_config):
  files.write_text_atomic(os.path.join(output_dir, config_file),
                          json.dumps(run_config, indent=2, sort_keys=True) + "\n")


# ----------------------------------------------------------------------- set-up
def strategy_name(flag_values):
  """The strategy --distribution_strategy / --use_tpu ask for."""
  try:
    return distribution.resolve_strategy_name(flag_values.distribution_strategy,
                                              flag_values.use_tpu)
  except ValueError as e:
    raise UsageError(str(e)) from e


def make_strategy(flag_values):
  """Builds the tf.distribute strategy of the flags.

  Returns:
    (strategy, is_chief).
  """
  name = strategy_name(flag_values)
  try:
    strategy = distribution.get_strategy(name, flag_values.tpu_name,
                                         flag_values.tpu_zone,
                                         flag_values.gcp_project, flag_values.master)
  except ValueError as e:
    raise UsageError(str(e)) from e
  if name == "tpu" and strategy.num_replicas_in_sync != flag_values.num_tpu_cores:
    logging.warning("--num_tpu_cores=%d but the TPU has %d cores; using all of them",
                    flag_values.num_tpu_cores, strategy.num_replicas_in_sync)
  return strategy, distribution.is_chief(strategy)


def padding_multiple(flag_values):
  """The dynamic-padding multiple, or None where batches keep max_seq_length.

  TPUs compile one program per shape, so they always get full-length batches.
  """
  if not flag_values.dynamic_padding or strategy_name(flag_values) == "tpu":
    return None
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if tf.config.list_physical_devices("GPU"):
    return DYNAMIC_PADDING_MULTIPLE_GPU
  return DYNAMIC_PADDING_MULTIPLE_CPU


def check_eval_during_training_flags(flag_values):
  """The checks of define_eval_during_training_flags's flags."""
  if flag_values.eval_every_steps < 0:
    raise UsageError("--eval_every_steps must be >= 0")
  if flag_values.early_stopping_patience < 0:
    raise UsageError("--early_stopping_patience must be >= 0")
  if flag_values.early_stopping_patience and not flag_values.eval_every_steps:
    raise UsageError("--early_stopping_patience needs --eval_every_steps")


def eval_during_training_config(flag_values):
  """TrainConfig fields of define_eval_during_training_flags's flags."""
  metric = flag_values.best_checkpoint_metric
  return {"eval_every_steps": flag_values.eval_every_steps,
          "best_metric": metric,
          "best_metric_mode": "min" if metric.endswith("loss") else "max",
          "early_stopping_patience": flag_values.early_stopping_patience}


def train_config(flag_values, num_train_steps, num_warmup_steps, **extra):
  """The loop's TrainConfig from the shared flags; `extra` adds task-specific fields."""
  return loop_lib.TrainConfig(
      train_batch_size=flag_values.train_batch_size,
      num_train_steps=max(num_train_steps, 1),
      learning_rate=flag_values.learning_rate,
      num_warmup_steps=num_warmup_steps,
      gradient_accumulation_steps=flag_values.gradient_accumulation_steps,
      save_checkpoints_steps=flag_values.save_checkpoints_steps,
      keep_checkpoint_max=flag_values.keep_checkpoint_max,
      iterations_per_loop=flag_values.iterations_per_loop,
      log_every_steps=flag_values.log_every_steps,
      seed=flag_values.seed,
      precision=flag_values.precision,
      use_xla=flag_values.use_xla,
      optimizer=flag_values.optimizer,
      adam_epsilon=flag_values.adam_epsilon,
      weight_decay_rate=flag_values.weight_decay_rate,
      **extra)


# ----------------------------------------------------------------------- outputs
def format_eval_results(result):
  """`key = value` lines in sorted key order, as the original writes them."""
  lines = []
  for key in sorted(result):
    value = result[key]
    if isinstance(value, (list, tuple)):
      value = json.dumps(value)
    lines.append(f"{key} = {value}")
  return "\n".join(lines) + "\n"


def run_main(main, argv, program, user_errors=()):
  """Runs a script's main, turning user errors into one message and exit code 2.

  An interrupted training run (SIGINT/SIGTERM, checkpoint saved) exits with 130.

  Args:
    main: the script's main(argv).
    argv: its arguments.
    program: the script's name, for the message.
    user_errors: further exception types that mean bad input for this script.
  """
  from modeling.checkpoint import CheckpointError  # pylint: disable=g-import-not-at-top
  from modeling.config import ConfigError  # pylint: disable=g-import-not-at-top
  from modeling.export import ExportError  # pylint: disable=g-import-not-at-top
  from processors.base import DataError  # pylint: disable=g-import-not-at-top
  try:
    main(argv)
  except (UsageError, DataError, ConfigError, CheckpointError, ExportError,
          *user_errors) as e:
    logging.error("%s", e)
    print(f"{program}: error: {e}", file=sys.stderr)
    sys.exit(2)
  except loop_lib.TrainingInterrupted as e:
    logging.warning("%s", e)
    sys.exit(130)
  except Exception as e:  # pylint: disable=broad-except
    message = storage_failure_message(e)
    if message is None:
      raise
    logging.error("%s", message)
    print(f"{program}: error: {message}", file=sys.stderr)
    sys.exit(1)


# What the operating system says when a write cannot happen: disk full, quota,
# file size limit, read-only file system, no permission.
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES,
                   errno.EPERM}
_STORAGE_MESSAGES = ("No space left on device", "Disk quota exceeded",
                     "File too large", "Read-only file system", "Permission denied")


def storage_failure_message(error):
  """One line for a failed write (disk full, read-only, ...), else None.

  TensorFlow reports these as OpErrors whose text starts with the path; Python as
  OSErrors. Checkpoints and outputs are written under temporary names and renamed,
  so what was there before the failed write is intact, and the same command
  resumes once the cause is gone.

  Args:
    error: the exception a run ended with.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if isinstance(error, OSError) and error.errno in _STORAGE_ERRNOS:
    what = f"{error.filename}: {error.strerror}" if error.filename else str(error)
    permission = error.errno in (errno.EACCES, errno.EPERM)
  elif isinstance(error, tf.errors.OpError) and any(
      m in (error.message or "") for m in _STORAGE_MESSAGES):
    # Drop TensorFlow's "{{function_node ...}}" prefix and "[Op:...]" suffix.
    what = re.sub(r"\{\{function_node [^}]*\}\}\s*|\s*\[Op:\w+\]$", "",
                  error.message).strip()
    permission = "Permission denied" in what
  else:
    return None
  return (f"{'cannot access' if permission else 'cannot write'} {what}. The "
          "checkpoints and outputs written before are intact (every write goes to a "
          "temporary name first); fix the cause and run the same command again to "
          "resume.")
