# coding=utf-8
"""BERT finetuning runner: sentence and sentence-pair classification.

Same flags, inputs and outputs as Google's original run_classifier.py, on
TensorFlow 2 with a custom training loop under any tf.distribute strategy.
"""

import hashlib
import json
import os

# Run as a program: TensorFlow's environment first (training/environment.py).
# Imported as a library, the process's environment is left alone.
if __name__ == "__main__":
  from training import environment  # pylint: disable=g-import-not-at-top
  environment.configure()

from absl import app
from absl import flags
from absl import logging
import numpy as np

import processors
# The original's names, so user code written as `from run_classifier import
# DataProcessor` (as many tutorials do) keeps working.
from processors import (DataProcessor, InputExample, InputFeatures,  # pylint: disable=unused-import
                        PaddingInputExample, convert_examples_to_features,
                        convert_single_example, file_based_convert_examples_to_features,
                        file_based_input_fn_builder)
from processors import split as split_lib
from training import cli
from training import distribution
from training import files
from training import loop as loop_lib
from training import metrics as metrics_lib

FLAGS = flags.FLAGS

## Required parameters
flags.DEFINE_string(
    "data_dir", None,
    "The input data dir. Should contain the .tsv files (or other data files) "
    "for the task.")

flags.DEFINE_string("task_name", None, "The name of the task to train "
                    "(emotion, mrpc, sst2, cola, mnli, xnli, or one registered "
                    "by --processor_module).")

# bert_config_file, vocab_file, output_dir, init_checkpoint, do_lower_case, do_train,
# train_batch_size, learning_rate, num_train_epochs, warmup_proportion,
# save_checkpoints_steps, iterations_per_loop and the TPU flags: as in the original,
# defined once for both scripts.
cli.define_original_flags()

## Other parameters

flags.DEFINE_integer(
    "max_seq_length", 128,
    "The maximum total input sequence length after WordPiece tokenization. "
    "Sequences longer than this will be truncated, and sequences shorter "
    "than this will be padded.")

flags.DEFINE_bool("do_eval", False, "Whether to run eval on the dev set.")

flags.DEFINE_bool(
    "do_predict", False,
    "Whether to run the model in inference mode on the test set.")

flags.DEFINE_integer("eval_batch_size", 8, "Total batch size for eval.")

flags.DEFINE_integer("predict_batch_size", 8, "Total batch size for predict.")

## New in this port

cli.define_port_flags(
    seed_help="Random seed: data order, dropout, head initialisation, dev split. A "
    "resumed run continues exactly where it stopped.",
    dynamic_padding_help="Cut each batch to its longest example (on a GPU rounded "
    "up to a multiple of 8) instead of always computing max_seq_length positions; "
    "eval and predict also batch texts of similar length together (outputs stay in "
    "input order). Results are unchanged up to float rounding; short texts train "
    "and predict several times faster. Always off on TPU, which needs static "
    "shapes.",
    overwrite_help="Allow a run whose task, labels, model or max_seq_length differ "
    "from the checkpoints already in output_dir: removes those checkpoints first.",
    export_help="After training/eval/predict, export the model (the best checkpoint "
    "with --eval_every_steps) as a SavedModel here: signatures serving_default (ids "
    "in), serving_text and serving_text_pair (raw text in, tokenized in the graph).")

cli.define_eval_during_training_flags(
    eval_what="the dev set",
    default_metric="eval_accuracy",
    metric_help="any key of eval_results.txt, e.g. eval_accuracy, eval_f1_1 (the F1 "
    "of label 1: MRPC's F1), eval_macro_f1, eval_mcc or eval_loss")

flags.DEFINE_string(
    "processor_module", None,
    "A Python file (or module name) defining your own DataProcessor subclasses; "
    "they register themselves under their class name lower-cased without "
    "'Processor' (MyTaskProcessor -> --task_name=mytask).")

flags.DEFINE_enum(
    "class_weights", "none", ["none", "balanced"],
    "Weight each example's loss by its class: balanced = n_examples / (n_classes * "
    "n_examples_of_class), for imbalanced data such as Emotion.")

flags.DEFINE_float(
    "dev_split", 0.0,
    "When the task has no dev file, hold out this fraction of the training file "
    "(stratified by label) as the dev set, e.g. 0.1.")

flags.DEFINE_bool(
    "length_bucketing", False,
    "With --dynamic_padding: put training examples of similar length in the same "
    "batch (each window of 50 shuffled batches is sorted by length), so batches "
    "pad far less: on short, varied texts such as Emotion's a batch pads to about "
    "the median length instead of the longest of 32 random texts. It changes which "
    "examples share a batch, so results differ slightly from random batches (the "
    "examples per epoch do not).")

flags.DEFINE_string(
    "export_bert_serving_dir", None,
    "After training/eval/predict, write a bert-as-service model directory here "
    "(bert_model.ckpt.*, bert_config.json, vocab.txt; weights only).")

CONFIG_FILE = "classifier_config.json"
# Batches per length-sorted window of --length_bucketing (Hugging Face's
# group_by_length uses the same 50).
LENGTH_BUCKETING_WINDOW = 50
# Examples per length-sorted window of evaluation and prediction (with dynamic
# padding): the whole of a dev set like Emotion's 2,000, and a few MB of features.
INFERENCE_SORT_EXAMPLES = 4096
# Bump when the TFRecord feature layout changes, so cached files are rebuilt.
FEATURE_FORMAT_VERSION = 1

UsageError = cli.UsageError


def _inference_sort_window(batch_size):
  """Batches per length-sorted window of eval and predict."""
  return max(1, INFERENCE_SORT_EXAMPLES // batch_size)


def _examples_fingerprint(examples, label_list, max_seq_length, tokenizer_id):
  digest = hashlib.sha256()
  digest.update(json.dumps([FEATURE_FORMAT_VERSION, list(label_list), max_seq_length,
                            tokenizer_id]).encode("utf-8"))
  for ex in examples:
    if isinstance(ex, processors.PaddingInputExample):
      digest.update(b"\x00PAD\x00")
      continue
    digest.update(json.dumps([ex.guid, ex.text_a, ex.text_b, ex.label],
                             ensure_ascii=False).encode("utf-8"))
  return digest.hexdigest()


def cached_tf_record(examples, label_list, max_seq_length, tokenizer, tokenizer_id,
                     output_file):
  """Writes the TFRecord file unless an identical one is already there.

  The cache key covers the examples' text and labels, the label list, the vocab (or
  SentencePiece model), the casing and max_seq_length; anything else rebuilds.

  Args:
    examples: InputExamples (and PaddingInputExamples).
    label_list: label names.
    max_seq_length: sequence length of the features.
    tokenizer: the tokenizer.
    tokenizer_id: a string identifying the vocab and casing.
    output_file: the TFRecord path.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  fingerprint = _examples_fingerprint(examples, label_list, max_seq_length,
                                      tokenizer_id)
  stamp_file = output_file + ".fingerprint"
  if tf.io.gfile.exists(output_file) and tf.io.gfile.exists(stamp_file):
    with tf.io.gfile.GFile(stamp_file) as f:
      if f.read().strip() == fingerprint:
        logging.info("Reusing %s (inputs, vocab and max_seq_length unchanged)",
                     output_file)
        return
  processors.file_based_convert_examples_to_features(
      examples, label_list, max_seq_length, tokenizer, output_file)
  files.write_text_atomic(stamp_file, fingerprint + "\n")


def report_token_lengths(examples, tokenizer, max_seq_length):
  """Logs token-length percentiles so users can choose max_seq_length.

  Returns:
    dict of the figures (also logged).
  """
  lengths = np.asarray(processors.token_lengths(examples, tokenizer))
  if lengths.size == 0:
    return {}
  pcts = {p: int(np.percentile(lengths, p)) for p in (50, 90, 95, 99)}
  truncated = float(np.mean(lengths > max_seq_length))
  logging.info(
      "Token lengths of %d training examples ([CLS] and [SEP] included): mean %.1f, "
      "p50 %d, p90 %d, p95 %d, p99 %d, max %d. max_seq_length=%d truncates %.2f%% "
      "of them.", lengths.size, lengths.mean(), pcts[50], pcts[90], pcts[95],
      pcts[99], lengths.max(), max_seq_length, 100.0 * truncated)
  return {"mean": float(lengths.mean()), "max": int(lengths.max()),
          "truncated_fraction": truncated, **{f"p{p}": v for p, v in pcts.items()}}


def _run_config(label_list, bert_config, tokenizer_id):
  """What checkpoints in output_dir must share with this run to be resumed."""
  return {
      "task_name": FLAGS.task_name.lower(),
      "label_list": list(label_list),
      "max_seq_length": FLAGS.max_seq_length,
      "do_lower_case": FLAGS.do_lower_case,
      "tokenizer": tokenizer_id,
      "bert_config": bert_config.to_dict(),
  }


def load_examples(processor, split):
  """Calls the processor's getter for `split` ("train", "dev" or "test") on --data_dir."""
  return processors.get_examples(processor, split, FLAGS.data_dir)


def validate_flags_or_throw(bert_config):
  """The original's checks, plus the new flags'."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if not FLAGS.do_train and not FLAGS.do_eval and not FLAGS.do_predict:
    raise UsageError(
        "At least one of `do_train`, `do_eval` or `do_predict' must be True.")
  cli.check_common_flags(
      FLAGS, bert_config,
      positive_int_flags=("train_batch_size", "eval_batch_size",
                          "predict_batch_size", "save_checkpoints_steps",
                          "iterations_per_loop", "gradient_accumulation_steps",
                          "log_every_steps"))
  if FLAGS.max_seq_length < 3:
    raise UsageError("--max_seq_length must be at least 3 ([CLS] x [SEP])")
  if not tf.io.gfile.isdir(FLAGS.data_dir):
    raise UsageError(f"--data_dir={FLAGS.data_dir} is not a directory")
  if not 0.0 <= FLAGS.dev_split < 1.0:
    raise UsageError("--dev_split must be in [0, 1)")
  cli.check_eval_during_training_flags(FLAGS)


def main(_):
  logging.set_verbosity(logging.INFO)
  # Devices must be configured before TensorFlow initialises them.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  distribution.split_cpu_into_logical_devices(FLAGS.num_cpu_devices)

  from modeling import checkpoint as ckpt_lib  # pylint: disable=g-import-not-at-top
  from modeling import config as config_lib  # pylint: disable=g-import-not-at-top
  from modeling import heads  # pylint: disable=g-import-not-at-top

  bert_config = config_lib.BertConfig.from_json_file(FLAGS.bert_config_file)
  validate_flags_or_throw(bert_config)
  bert_config.validate(max_seq_length=FLAGS.max_seq_length)
  if FLAGS.export_dir or FLAGS.export_bert_serving_dir:
    # Refuse an unusable export target now rather than after hours of training.
    from modeling import export as export_lib  # pylint: disable=g-import-not-at-top
    export_lib.check_export_targets(FLAGS.export_dir, FLAGS.export_bert_serving_dir,
                                    FLAGS.spm_model_file)

  if FLAGS.processor_module:
    processors.load_processor_module(FLAGS.processor_module)
  try:
    processor = processors.get_processor(FLAGS.task_name)
  except ValueError as e:
    raise UsageError(str(e)) from e
  label_list = list(processor.get_labels())
  num_labels = len(label_list)

  tokenizer, tokenizer_id = cli.build_tokenizer(FLAGS, bert_config)

  # Read every input before building anything, so data errors surface first.
  train_examples, dev_examples, test_examples = None, None, None
  if FLAGS.do_train or FLAGS.do_eval:
    if FLAGS.do_train or FLAGS.dev_split > 0:
      train_examples = load_examples(processor, "train")
    if FLAGS.do_eval or FLAGS.eval_every_steps:
      try:
        dev_examples = load_examples(processor, "dev")
      except processors.DataError as e:
        if FLAGS.dev_split <= 0 or not getattr(e, "missing_file", False):
          if getattr(e, "missing_file", False):
            raise UsageError(f"{e}\nThis task has no dev file: pass --dev_split=0.1 "
                             "to hold out 10% of the training file instead.") from e
          raise
        logging.info("No dev file (%s): holding out a stratified %.1f%% of the "
                     "training examples as dev (--dev_split)", e,
                     100 * FLAGS.dev_split)
        train_examples, dev_examples = split_lib.stratified_split(
            train_examples, FLAGS.dev_split, FLAGS.seed)
  if FLAGS.do_predict:
    test_examples = load_examples(processor, "test")

  num_train_steps, num_warmup_steps = 0, 0
  if FLAGS.do_train:
    if len(train_examples) < FLAGS.train_batch_size:
      raise UsageError(
          f"Only {len(train_examples)} training examples in "
          f"{processors.example_sources('train', FLAGS.data_dir)}"
          f"{' (after --dev_split)' if FLAGS.dev_split > 0 else ''}: fewer than "
          f"one batch of --train_batch_size={FLAGS.train_batch_size}")
    num_train_steps = int(len(train_examples) / FLAGS.train_batch_size *
                          FLAGS.num_train_epochs)
    if num_train_steps < 1:
      raise UsageError("--num_train_epochs is too small for a single step")
    num_warmup_steps = int(num_train_steps * FLAGS.warmup_proportion)
  for name, examples in (("dev", dev_examples), ("test", test_examples)):
    if examples is not None and not examples:
      raise UsageError(f"The {name} set has no examples: "
                       f"{processors.example_sources(name, FLAGS.data_dir)}")

  cli.claim_output_dir(FLAGS)  # one run per output_dir; fails early if unwritable
  run_config = _run_config(label_list, bert_config, tokenizer_id)
  has_checkpoint = cli.check_output_dir(FLAGS.output_dir, CONFIG_FILE, run_config,
                                        FLAGS.overwrite_output_dir)
  if not FLAGS.do_train and not has_checkpoint and not FLAGS.init_checkpoint:
    raise UsageError(f"{FLAGS.output_dir} holds no checkpoint to evaluate or predict "
                     "with, and no --init_checkpoint was given: run --do_train first")

  strategy, is_chief = cli.make_strategy(FLAGS)
  if is_chief:
    cli.write_run_config(FLAGS.output_dir, CONFIG_FILE, run_config)
  use_padding = cli.strategy_name(FLAGS) == "tpu"  # TPUs need every batch full
  padding_multiple = cli.padding_multiple(FLAGS)
  if FLAGS.length_bucketing and padding_multiple is None:
    logging.warning("--length_bucketing has no effect without dynamic padding "
                    "(--nodynamic_padding, or a TPU): batches keep max_seq_length")

  tf.random.set_seed(FLAGS.seed)
  compute_dtype = loop_lib.PRECISIONS[FLAGS.precision]

  class_weights = None
  if FLAGS.do_train and FLAGS.class_weights == "balanced":
    counts = np.zeros(num_labels, np.int64)
    label_index = {label: i for i, label in enumerate(label_list)}
    for ex in train_examples:
      counts[label_index[ex.label]] += 1
    class_weights = heads.compute_class_weights(counts, "balanced")
    logging.info("Class weights (balanced): %s", dict(zip(label_list,
                                                          class_weights.round(4))))
  class_weights_tensor = (tf.constant(class_weights, tf.float32)
                          if class_weights is not None else None)

  with strategy.scope():
    model = heads.BertClassifier(bert_config, num_labels, compute_dtype=compute_dtype)

  def loss_fn(features, training, dropout_seed):
    logits = model(features["input_ids"], features["input_mask"],
                   features["segment_ids"], training=training,
                   dropout_seed=dropout_seed)
    per_example = heads.classification_loss(logits, features["label_ids"], num_labels,
                                            class_weights=class_weights_tensor)
    return per_example * tf.cast(features["is_real_example"], per_example.dtype)

  def predict_fn(features):
    logits = model(features["input_ids"], features["input_mask"],
                   features["segment_ids"], training=False)
    per_example = heads.classification_loss(logits, features["label_ids"], num_labels)
    return {"logits": logits, "probabilities": tf.nn.softmax(logits, axis=-1),
            "per_example_loss": per_example, "label_ids": features["label_ids"],
            "is_real_example": features["is_real_example"]}

  def features_file(name):
    return os.path.join(FLAGS.output_dir, f"{name}.tf_record")

  def eval_dataset():
    examples = list(dev_examples)
    if use_padding:
      while len(examples) % FLAGS.eval_batch_size:
        examples.append(processors.PaddingInputExample())
    cached_tf_record(examples, label_list, FLAGS.max_seq_length, tokenizer,
                     tokenizer_id, features_file("eval"))
    return processors.make_dataset(
        features_file("eval"), FLAGS.max_seq_length, FLAGS.eval_batch_size,
        is_training=False, drop_remainder=use_padding,
        dynamic_padding_multiple=padding_multiple,
        length_sorted_window=_inference_sort_window(FLAGS.eval_batch_size))

  def evaluate(dataset):
    # Batches come sorted by length; predict puts the outputs back in file order,
    # so the per-batch "loss" below groups the examples as the original does.
    out = loop_lib.predict(strategy, predict_fn, dataset,
                           index_key=processors.EXAMPLE_INDEX, what="Evaluating")
    real = out["is_real_example"].astype(bool)
    labels = out["label_ids"][real]
    predictions = np.argmax(out["logits"][real], axis=-1)
    result = metrics_lib.classification_metrics(labels, predictions, label_list)
    result["eval_loss"] = float(np.mean(out["per_example_loss"][real]))
    # The Estimator's "loss" is the mean over eval batches of each batch's mean loss.
    batch_losses = [
        float(np.mean(out["per_example_loss"][i:i + FLAGS.eval_batch_size][
            real[i:i + FLAGS.eval_batch_size]]))
        for i in range(0, len(real), FLAGS.eval_batch_size)
        if real[i:i + FLAGS.eval_batch_size].any()]
    result["loss"] = float(np.mean(batch_losses))
    result["global_step"] = int(trainer.global_step)
    return result

  with strategy.scope():
    trainer = loop_lib.Trainer(
        strategy, model, loss_fn,
        cli.train_config(
            FLAGS, num_train_steps, num_warmup_steps,
            **cli.eval_during_training_config(FLAGS)),
        FLAGS.output_dir, is_chief=is_chief)
    trainer.restore_or_initialize(FLAGS.init_checkpoint)

  if FLAGS.do_train:
    report_token_lengths(train_examples, tokenizer, FLAGS.max_seq_length)
    cached_tf_record(train_examples, label_list, FLAGS.max_seq_length, tokenizer,
                     tokenizer_id, features_file("train"))
    logging.info("***** Running training *****")
    logging.info("  Num examples = %d", len(train_examples))
    logging.info("  Batch size = %d", FLAGS.train_batch_size)
    logging.info("  Num steps = %d", num_train_steps)

    def dataset_fn(skip_batches):
      dataset = processors.make_dataset(
          features_file("train"), FLAGS.max_seq_length, FLAGS.train_batch_size,
          is_training=True, drop_remainder=True, seed=FLAGS.seed,
          dynamic_padding_multiple=padding_multiple,
          length_bucketing_window=(LENGTH_BUCKETING_WINDOW if FLAGS.length_bucketing
                                   else None))
      return dataset.skip(skip_batches)

    eval_fn = None
    if FLAGS.eval_every_steps:
      periodic_eval_data = eval_dataset()
      eval_fn = lambda: evaluate(periodic_eval_data)
    trainer.train(dataset_fn, eval_fn)

  if FLAGS.eval_every_steps and (FLAGS.do_eval or FLAGS.do_predict):
    best = trainer.best_checkpoint()
    if best:
      logging.info("Using the best checkpoint %s for eval and predict", best)
      ckpt_lib.restore_checkpoint(best, model.named_variables())

  if FLAGS.do_eval and is_chief:
    logging.info("***** Running evaluation *****")
    logging.info("  Num examples = %d", len(dev_examples))
    logging.info("  Batch size = %d", FLAGS.eval_batch_size)
    result = evaluate(eval_dataset())
    output_eval_file = os.path.join(FLAGS.output_dir, "eval_results.txt")
    logging.info("***** Eval results *****")
    for key in sorted(result):
      logging.info("  %s = %s", key, result[key])
    files.write_text_atomic(output_eval_file, cli.format_eval_results(result))

  if FLAGS.do_predict and is_chief:
    examples = list(test_examples)
    num_actual = len(examples)
    if use_padding:
      while len(examples) % FLAGS.predict_batch_size:
        examples.append(processors.PaddingInputExample())
    logging.info("***** Running prediction *****")
    logging.info("  Num examples = %d (%d actual, %d padding)", len(examples),
                 num_actual, len(examples) - num_actual)
    logging.info("  Batch size = %d", FLAGS.predict_batch_size)
    cached_tf_record(examples, label_list, FLAGS.max_seq_length, tokenizer,
                     tokenizer_id, features_file("predict"))
    dataset = processors.make_dataset(
        features_file("predict"), FLAGS.max_seq_length, FLAGS.predict_batch_size,
        is_training=False, drop_remainder=use_padding,
        dynamic_padding_multiple=padding_multiple,
        length_sorted_window=_inference_sort_window(FLAGS.predict_batch_size))
    out = loop_lib.predict(strategy, predict_fn, dataset,
                           index_key=processors.EXAMPLE_INDEX)
    probabilities = out["probabilities"][:num_actual]
    if len(probabilities) != num_actual:
      raise RuntimeError(f"Expected {num_actual} predictions, got "
                         f"{len(probabilities)}")
    lines = ["\t".join(str(p) for p in row) + "\n" for row in probabilities]
    files.write_text_atomic(os.path.join(FLAGS.output_dir, "test_results.tsv"),
                      "".join(lines))
    header = "\t".join(["guid", "prediction"] + list(label_list)) + "\n"
    human = [header] + [
        "\t".join([str(ex.guid), label_list[int(np.argmax(row))]] +
                  [f"{p:.6f}" for p in row]) + "\n"
        for ex, row in zip(test_examples, probabilities)]
    files.write_text_atomic(os.path.join(FLAGS.output_dir, "test_predictions.tsv"),
                      "".join(human))
    logging.info("Wrote %d predictions to %s", num_actual,
                 os.path.join(FLAGS.output_dir, "test_results.tsv"))

  if is_chief and (FLAGS.export_dir or FLAGS.export_bert_serving_dir):
    # The model holds the weights used above: the best checkpoint's when
    # --eval_every_steps chose one, else the latest.
    from modeling import export as export_lib  # pylint: disable=g-import-not-at-top
    export_lib.export_classifier(
        model, bert_config, label_list, export_dir=FLAGS.export_dir,
        bert_serving_dir=FLAGS.export_bert_serving_dir, vocab_file=FLAGS.vocab_file,
        spm_model_file=FLAGS.spm_model_file, do_lower_case=FLAGS.do_lower_case,
        max_seq_length=FLAGS.max_seq_length, precision=FLAGS.export_precision)


def run(argv):
  """Entry point that turns user errors into one clear message and exit code 2."""
  cli.run_main(main, argv, "run_classifier.py")


def console_main():
  """Runs the command line (installed as the `bert-run-classifier` console script)."""
  flags.mark_flag_as_required("data_dir")
  flags.mark_flag_as_required("task_name")
  flags.mark_flag_as_required("bert_config_file")
  flags.mark_flag_as_required("output_dir")
  app.run(run)


if __name__ == "__main__":
  console_main()
