# coding=utf-8
"""Run BERT on SQuAD 1.1 and SQuAD 2.0.

Same flags, inputs and outputs as Google's original run_squad.py (train.tf_record,
eval.tf_record, predictions.json, nbest_predictions.json, null_odds.json), on
TensorFlow 2 with the custom training loop of training/loop.py under any
tf.distribute strategy. New: --do_eval scores the predictions in-process with the
official SQuAD evaluation and writes eval_results.txt.
"""

import os
import random
import time

# Run as a program: TensorFlow's environment first (training/environment.py).
# Imported as a library, the process's environment is left alone.
if __name__ == "__main__":
  from training import environment  # pylint: disable=g-import-not-at-top
  environment.configure()

from absl import app
from absl import flags
from absl import logging

from processors import squad as squad_lib
from processors import squad_postprocess
from training import cli
from training import distribution
from training import files
from training import loop as loop_lib

FLAGS = flags.FLAGS

## Required parameters

# bert_config_file, vocab_file, output_dir, init_checkpoint, do_lower_case, do_train,
# train_batch_size, learning_rate, num_train_epochs, warmup_proportion,
# save_checkpoints_steps, iterations_per_loop and the TPU flags: as in the original,
# defined once for both scripts.
cli.define_original_flags()

## Other parameters
flags.DEFINE_string("train_file", None,
                    "SQuAD json for training. E.g., train-v1.1.json")

flags.DEFINE_string(
    "predict_file", None,
    "SQuAD json for predictions. E.g., dev-v1.1.json or test-v1.1.json")

flags.DEFINE_integer(
    "max_seq_length", 384,
    "The maximum total input sequence length after WordPiece tokenization. "
    "Sequences longer than this will be truncated, and sequences shorter "
    "than this will be padded.")

flags.DEFINE_integer(
    "doc_stride", 128,
    "When splitting up a long document into chunks, how much stride to "
    "take between chunks.")

flags.DEFINE_integer(
    "max_query_length", 64,
    "The maximum number of tokens for the question. Questions longer than "
    "this will be truncated to this length.")

flags.DEFINE_bool("do_predict", False, "Whether to run eval on the dev set.")

flags.DEFINE_bool(
    "do_eval", False,
    "Score the predictions of --do_predict against the answers in --predict_file "
    "with the official SQuAD evaluation (v1.1 or v2.0) and write "
    "eval_results.txt.")

flags.DEFINE_integer("predict_batch_size", 8,
                     "Total batch size for predictions.")

flags.DEFINE_integer(
    "n_best_size", 20,
    "The total number of n-best predictions to generate in the "
    "nbest_predictions.json output file.")

flags.DEFINE_integer(
    "max_answer_length", 30,
    "The maximum length of an answer that can be generated. This is needed "
    "because the start and end predictions are not conditioned on one another.")

flags.DEFINE_bool(
    "verbose_logging", False,
    "If true, all of the warnings related to data processing will be printed. "
    "A number of warnings are expected for a normal SQuAD evaluation.")

flags.DEFINE_bool(
    "version_2_with_negative", False,
    "If true, the SQuAD examples contain some that do not have an answer.")

flags.DEFINE_float(
    "null_score_diff_threshold", 0.0,
    "If null_score - best_non_null is greater than the threshold predict null.")

## New in this port

cli.define_port_flags(
    seed_help="Random seed: the shuffle of the training examples (the original's "
    "fixed 12345), data order, dropout, head initialisation. A resumed run "
    "continues exactly where it stopped.",
    dynamic_padding_help="Cut each batch to its longest window (on a GPU rounded "
    "up to a multiple of 8) instead of always computing max_seq_length positions. "
    "Start/end positions keep their meaning. Differences from the original: in "
    "training the cut padding positions no longer enter the softmax of the loss, "
    "and in prediction they cannot take n-best slots (the original gives them "
    "logits too). Always off on TPU, which needs static shapes.",
    overwrite_help="Allow a run whose model, max_seq_length or SQuAD version differ "
    "from the checkpoints in output_dir: removes those checkpoints first.",
    export_help="After training/predict, export the model as a SavedModel here: "
    "signature serving_default, int32 input_ids, input_mask, segment_ids [batch, "
    "seq] -> start_logits, end_logits [batch, seq].")

cli.define_eval_during_training_flags(
    eval_what="--predict_file (scored against its answers with the official SQuAD "
    "evaluation, as --do_eval)",
    default_metric="f1",
    metric_help="f1 or exact_match (v1.1); f1, exact, best_f1, HasAns_f1 and the "
    "other keys of eval_results.txt (v2.0)")

CONFIG_FILE = "squad_config.json"
# Padding logits of a batch cut by --dynamic_padding: far below any real logit, so
# they never reach the n-best (a padding position never yields an answer anyway).
PADDING_LOGIT = -10000.0


UsageError = cli.UsageError


def validate_flags_or_throw(bert_config):
  """Validate the input FLAGS or throw an exception (the original's checks and more)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if not FLAGS.do_train and not FLAGS.do_predict:
    raise UsageError("At least one of `do_train` or `do_predict` must be True.")
  if FLAGS.do_train and not FLAGS.train_file:
    raise UsageError(
        "If `do_train` is True, then `train_file` must be specified.")
  if FLAGS.do_predict and not FLAGS.predict_file:
    raise UsageError(
        "If `do_predict` is True, then `predict_file` must be specified.")
  if FLAGS.do_eval and not FLAGS.do_predict:
    raise UsageError("--do_eval scores the predictions: it needs --do_predict")
  cli.check_eval_during_training_flags(FLAGS)
  if FLAGS.eval_every_steps and not (FLAGS.do_train and FLAGS.predict_file):
    raise UsageError("--eval_every_steps evaluates during training on the answers "
                     "of --predict_file: it needs --do_train and --predict_file")
  cli.check_common_flags(
      FLAGS, bert_config,
      positive_int_flags=("train_batch_size", "predict_batch_size",
                          "save_checkpoints_steps", "iterations_per_loop",
                          "gradient_accumulation_steps", "log_every_steps",
                          "doc_stride", "max_query_length", "n_best_size",
                          "max_answer_length"))
  if FLAGS.max_seq_length <= FLAGS.max_query_length + 3:
    raise UsageError(
        "The max_seq_length (%d) must be greater than max_query_length "
        "(%d) + 3" % (FLAGS.max_seq_length, FLAGS.max_query_length))
  for name, needed in (("train_file", FLAGS.do_train),
                       ("predict_file", FLAGS.do_predict or FLAGS.eval_every_steps)):
    path = getattr(FLAGS, name)
    if needed and not tf.io.gfile.exists(path):
      raise UsageError(f"--{name}={path} does not exist")


def read_examples(path, is_training, require_answers=False):
  """Reads a SQuAD file, turning a missing file into a UsageError."""
  examples, report = squad_lib.read_squad_examples(
      path, is_training=is_training,
      version_2_with_negative=FLAGS.version_2_with_negative,
      require_answers=require_answers)
  if not examples:
    raise UsageError(f"{path} yields no usable question"
                     + (f" ({len(report.skipped_answers)} skipped: answer text not "
                        "found at answer_start)" if report.skipped_answers else ""))
  return examples, report


def main(_):
  logging.set_verbosity(logging.INFO)
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  # Devices must be configured before TensorFlow initialises them.
  distribution.split_cpu_into_logical_devices(FLAGS.num_cpu_devices)

  from modeling import checkpoint as ckpt_lib  # pylint: disable=g-import-not-at-top
  from modeling import config as config_lib  # pylint: disable=g-import-not-at-top
  from modeling import heads  # pylint: disable=g-import-not-at-top

  bert_config = config_lib.BertConfig.from_json_file(FLAGS.bert_config_file)
  validate_flags_or_throw(bert_config)
  bert_config.validate(max_seq_length=FLAGS.max_seq_length)
  if FLAGS.export_dir:
    # Refuse an unusable export target now rather than after hours of training.
    from modeling import export as export_lib  # pylint: disable=g-import-not-at-top
    export_lib.check_export_targets(FLAGS.export_dir)

  tokenizer, tokenizer_id = cli.build_tokenizer(FLAGS, bert_config)

  # Read and convert every input before building the model, so that data errors
  # surface in seconds, not after training.
  train_examples, predict_examples, predict_dataset_json = None, None, None
  num_train_steps, num_warmup_steps = 0, 0
  if FLAGS.do_train:
    train_examples, _ = read_examples(FLAGS.train_file, is_training=True)
    num_train_steps = int(len(train_examples) / FLAGS.train_batch_size *
                          FLAGS.num_train_epochs)
    if num_train_steps < 1:
      raise UsageError(
          f"{len(train_examples)} training examples make no full step of "
          f"--train_batch_size={FLAGS.train_batch_size} in "
          f"--num_train_epochs={FLAGS.num_train_epochs}")
    num_warmup_steps = int(num_train_steps * FLAGS.warmup_proportion)
    # Pre-shuffle the input to avoid having to make a very large shuffle buffer in
    # the input pipeline (the original does this with a fixed 12345).
    random.Random(FLAGS.seed).shuffle(train_examples)
  scores_predictions = FLAGS.do_eval or FLAGS.eval_every_steps > 0
  if FLAGS.do_predict or FLAGS.eval_every_steps:
    predict_examples, _ = read_examples(FLAGS.predict_file, is_training=False,
                                        require_answers=scores_predictions)
    if scores_predictions:
      predict_dataset_json = squad_lib.load_squad_json(FLAGS.predict_file)

  cli.claim_output_dir(FLAGS)  # one run per output_dir; fails early if unwritable
  use_padding = cli.strategy_name(FLAGS) == "tpu"  # TPUs need every batch full
  padding_multiple = cli.padding_multiple(FLAGS)

  train_features = None
  if FLAGS.do_train:
    train_features, _ = squad_lib.convert_examples_to_features(
        train_examples, tokenizer, FLAGS.max_seq_length, FLAGS.doc_stride,
        FLAGS.max_query_length, is_training=True)
  eval_features = None
  if predict_examples is not None:
    eval_features, _ = squad_lib.convert_examples_to_features(
        predict_examples, tokenizer, FLAGS.max_seq_length, FLAGS.doc_stride,
        FLAGS.max_query_length, is_training=False)

  run_config = {"max_seq_length": FLAGS.max_seq_length,
                "version_2_with_negative": FLAGS.version_2_with_negative,
                "tokenizer": tokenizer_id, "bert_config": bert_config.to_dict()}
  has_checkpoint = cli.check_output_dir(FLAGS.output_dir, CONFIG_FILE, run_config,
                                        FLAGS.overwrite_output_dir)
  if not FLAGS.do_train and not has_checkpoint and not FLAGS.init_checkpoint:
    raise UsageError(f"{FLAGS.output_dir} holds no checkpoint to predict with, and "
                     "no --init_checkpoint was given: run --do_train first")

  strategy, is_chief = cli.make_strategy(FLAGS)
  if is_chief:
    cli.write_run_config(FLAGS.output_dir, CONFIG_FILE, run_config)

  tf.random.set_seed(FLAGS.seed)
  compute_dtype = loop_lib.PRECISIONS[FLAGS.precision]
  with strategy.scope():
    model = heads.BertSquad(bert_config, compute_dtype=compute_dtype)

  def position_loss(logits, positions):
    # Cross-entropy of one position per example: [B, S], [B] -> [B].
    log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
    one_hot = tf.one_hot(positions, depth=tf.shape(logits)[1], dtype=tf.float32)
    return -tf.reduce_sum(one_hot * log_probs, axis=-1)

  def loss_fn(features, training, dropout_seed):
    start_logits, end_logits = model(
        features["input_ids"], features["input_mask"], features["segment_ids"],
        training=training, dropout_seed=dropout_seed)
    # The original's (start_loss + end_loss) / 2, per example (the Trainer sums and
    # divides by the global batch, which gives the original's batch means).
    return (position_loss(start_logits, features["start_positions"]) +
            position_loss(end_logits, features["end_positions"])) / 2.0

  def predict_fn(features):
    start_logits, end_logits = model(
        features["input_ids"], features["input_mask"], features["segment_ids"],
        training=False)
    # Batches cut by --dynamic_padding are padded back, so all batches concatenate.
    pad = [[0, 0], [0, FLAGS.max_seq_length - tf.shape(start_logits)[1]]]
    return {"unique_ids": features["unique_ids"],
            "start_logits": tf.pad(start_logits, pad, constant_values=PADDING_LOGIT),
            "end_logits": tf.pad(end_logits, pad, constant_values=PADDING_LOGIT)}

  with strategy.scope():
    trainer = loop_lib.Trainer(
        strategy, model, loss_fn,
        cli.train_config(FLAGS, num_train_steps, num_warmup_steps,
                         **cli.eval_during_training_config(FLAGS)),
        FLAGS.output_dir, is_chief=is_chief)
    trainer.restore_or_initialize(FLAGS.init_checkpoint)

  eval_file = os.path.join(FLAGS.output_dir, "eval.tf_record")
  if eval_features is not None:
    # Every worker predicts its share during training, so each writes its copy.
    squad_lib.write_features(eval_features, False, eval_file,
                             pad_to_multiple=FLAGS.predict_batch_size
                             if use_padding else None)

  def predict_windows(what):
    """Logits of every predict_file window: a list of RawResults in feature order."""
    dataset = squad_lib.make_squad_dataset(
        eval_file, FLAGS.max_seq_length, FLAGS.predict_batch_size,
        is_training=False, drop_remainder=use_padding,
        dynamic_padding_multiple=padding_multiple)
    out = loop_lib.predict(strategy, predict_fn, dataset, what=what)
    all_results = squad_postprocess.results_from_arrays(
        out["unique_ids"], out["start_logits"], out["end_logits"])
    if len(all_results) != len(eval_features):
      raise RuntimeError(f"Expected {len(eval_features)} results, got "
                         f"{len(all_results)}")
    return all_results

  def score(predictions, null_odds):
    result = squad_postprocess.evaluate_predictions(
        predict_dataset_json, predictions, FLAGS.version_2_with_negative,
        null_odds if FLAGS.version_2_with_negative else None)
    result["global_step"] = trainer.global_step
    return result

  def evaluate_during_training():
    predictions, _, null_odds = squad_postprocess.compute_predictions(
        predict_examples, eval_features, predict_windows("Evaluating"),
        FLAGS.n_best_size, FLAGS.max_answer_length, FLAGS.do_lower_case,
        version_2_with_negative=FLAGS.version_2_with_negative,
        null_score_diff_threshold=FLAGS.null_score_diff_threshold)
    return score(predictions, null_odds)

  if FLAGS.do_train:
    train_file = os.path.join(FLAGS.output_dir, "train.tf_record")
    # Every worker writes its own copy (workers may not share a disk); the write is
    # atomic, so identical copies in a shared directory are harmless.
    squad_lib.write_features(train_features, True, train_file)
    logging.info("***** Running training *****")
    logging.info("  Num orig examples = %d", len(train_examples))
    logging.info("  Num split examples = %d", len(train_features))
    logging.info("  Batch size = %d", FLAGS.train_batch_size)
    logging.info("  Num steps = %d", num_train_steps)
    del train_features  # the records hold them now

    def dataset_fn(skip_batches):
      dataset = squad_lib.make_squad_dataset(
          train_file, FLAGS.max_seq_length, FLAGS.train_batch_size,
          is_training=True, drop_remainder=True, seed=FLAGS.seed,
          dynamic_padding_multiple=padding_multiple)
      return dataset.skip(skip_batches)

    trainer.train(dataset_fn, evaluate_during_training
                  if FLAGS.eval_every_steps else None)

  if FLAGS.eval_every_steps and (FLAGS.do_predict or FLAGS.export_dir):
    best = trainer.best_checkpoint()
    if best:
      logging.info("Using the best checkpoint %s for predict and export", best)
      ckpt_lib.restore_checkpoint(best, model.named_variables())

  if FLAGS.do_predict and is_chief:
    logging.info("***** Running predictions *****")
    logging.info("  Num orig examples = %d", len(predict_examples))
    logging.info("  Num split examples = %d", len(eval_features))
    logging.info("  Batch size = %d", FLAGS.predict_batch_size)
    started = time.time()
    all_results = predict_windows("Predicting")
    logging.info("Predicted %d windows in %.1f s", len(all_results),
                 time.time() - started)
    output_dir = FLAGS.output_dir
    predictions, nbest, null_odds = squad_postprocess.compute_predictions(
        predict_examples, eval_features, all_results, FLAGS.n_best_size,
        FLAGS.max_answer_length, FLAGS.do_lower_case,
        version_2_with_negative=FLAGS.version_2_with_negative,
        null_score_diff_threshold=FLAGS.null_score_diff_threshold,
        verbose_logging=FLAGS.verbose_logging)
    # The original's three files (null_odds.json with v2.0 only).
    outputs = {"predictions.json": predictions, "nbest_predictions.json": nbest}
    if FLAGS.version_2_with_negative:
      outputs["null_odds.json"] = null_odds
    for name, content in outputs.items():
      logging.info("Writing %s", os.path.join(output_dir, name))
      files.write_text_atomic(os.path.join(output_dir, name),
                              squad_postprocess.to_json(content))

    if FLAGS.do_eval:
      result = score(predictions, null_odds)
      logging.info("***** Eval results *****")
      for key in sorted(result):
        logging.info("  %s = %s", key, result[key])
      files.write_text_atomic(os.path.join(output_dir, "eval_results.txt"),
                              cli.format_eval_results(result))

  if is_chief and FLAGS.export_dir:
    # The model holds the weights used above: the best checkpoint's when
    # --eval_every_steps chose one, else the latest.
    from modeling import export as export_lib  # pylint: disable=g-import-not-at-top
    export_lib.export_squad_saved_model(model, FLAGS.export_dir,
                                        precision=FLAGS.export_precision)
    logging.info("Exported the SavedModel to %s", FLAGS.export_dir)


def run(argv):
  """Entry point that turns user errors into one clear message and exit code 2."""
  cli.run_main(main, argv, "run_squad.py")


def console_main():
  """Runs the command line (installed as the `bert-run-squad` console script)."""
  flags.mark_flag_as_required("bert_config_file")
  flags.mark_flag_as_required("output_dir")
  app.run(run)


if __name__ == "__main__":
  console_main()
