# coding=utf-8
"""Extract pre-computed feature vectors from BERT (the original extract_features.py).

Same flags, input and output as Google's script: one text per line of --input_file
(`text_a ||| text_b` for a pair), and one JSON line per input in --output_file:

  {"linex_index": 0, "features": [{"token": "[CLS]", "layers": [{"index": -1,
   "values": [0.123456, ...]}, ...]}, ...]}

("linex_index" is spelled as the original spells it, so existing readers work.)
Values are the hidden states of the requested encoder layers (-1 is the last) for
every real token, rounded to 6 decimals.
"""

import collections
import json
import os
import re
import uuid

# Run as a program: TensorFlow's environment first (training/environment.py).
# Imported as a library, the process's environment is left alone.
if __name__ == "__main__":
  from training import environment  # pylint: disable=g-import-not-at-top
  environment.configure()

from absl import app
from absl import flags
from absl import logging

import tokenization
from training import cli

FLAGS = flags.FLAGS

flags.DEFINE_string("input_file", None, "Text file, one input per line; "
                    "`text_a ||| text_b` for a sentence pair.")

flags.DEFINE_string("output_file", None, "JSON lines output file.")

flags.DEFINE_string("layers", "-1,-2,-3,-4", "Encoder layers to output (negative: "
                    "counted from the last).")

flags.DEFINE_string(
    "bert_config_file", None,
    "The config json file corresponding to the pre-trained BERT model. "
    "This specifies the model architecture.")

flags.DEFINE_integer(
    "max_seq_length", 128,
    "The maximum total input sequence length after WordPiece tokenization. "
    "Sequences longer than this will be truncated, and sequences shorter "
    "than this will be padded.")

flags.DEFINE_string(
    "init_checkpoint", None,
    "Initial checkpoint (usually from a pre-trained BERT model).")

flags.DEFINE_string("vocab_file", None,
                    "The vocabulary file that the BERT model was trained on.")

flags.DEFINE_bool(
    "do_lower_case", True,
    "Whether to lower case the input text. Should be True for uncased "
    "models and False for cased models.")

flags.DEFINE_integer("batch_size", 32, "Batch size for predictions.")

flags.DEFINE_bool("use_tpu", False, "Whether to use TPU or GPU/CPU (accepted for "
                  "compatibility; runs on the local device).")

flags.DEFINE_string("master", None,
                    "If using a TPU, the address of the master (accepted for "
                    "compatibility, unused).")

flags.DEFINE_integer("num_tpu_cores", 8, "Only used if `use_tpu` is True (accepted "
                     "for compatibility, unused).")

flags.DEFINE_bool(
    "use_one_hot_embeddings", False,
    "Accepted for compatibility and has no effect: the original used one-hot "
    "matmuls for TPUs; the embedding lookup here is a gather on every device and "
    "gives the same values.")

_PAIR_RE = re.compile(r"^(.*) \|\|\| (.*)$")


class InputExample(object):
  """One input line: unique_id, text_a and optional text_b."""

  def __init__(self, unique_id, text_a, text_b):
    self.unique_id = unique_id
    self.text_a = text_a
    self.text_b = text_b


def read_examples(input_file):
  """Reads the input lines as the original does (` ||| ` separates a pair).

  Args:
    input_file: path of a UTF-8 text file.

  Returns:
    list of InputExample with unique_id = line number from 0.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  examples = []
  with tf.io.gfile.GFile(input_file, "rb") as reader:
    for unique_id, raw in enumerate(reader.read().splitlines()):
      line = tokenization.convert_to_unicode(raw).strip()
      match = _PAIR_RE.match(line)
      if match is None:
        examples.append(InputExample(unique_id, line, None))
      else:
        examples.append(InputExample(unique_id, match.group(1), match.group(2)))
  return examples


def convert_example(example, max_seq_length, tokenizer):
  """Tokens and ids of one example, truncated as the original.

  Returns:
    (tokens list of str, input_ids, input_type_ids): unpadded lists.
  """
  # pylint: disable=g-import-not-at-top
  from processors.features import _truncate_seq_pair  # pylint: disable=protected-access
  tokens_a = tokenizer.tokenize(example.text_a)
  tokens_b = tokenizer.tokenize(example.text_b) if example.text_b else None
  if tokens_b:
    # [CLS], [SEP], [SEP] take 3 positions.
    _truncate_seq_pair(tokens_a, tokens_b, max_seq_length - 3)
  elif len(tokens_a) > max_seq_length - 2:
    tokens_a = tokens_a[0:(max_seq_length - 2)]
  tokens = ["[CLS]"] + tokens_a + ["[SEP]"]
  input_type_ids = [0] * len(tokens)
  if tokens_b:
    tokens += tokens_b + ["[SEP]"]
    input_type_ids += [1] * (len(tokens_b) + 1)
  return tokens, tokenizer.convert_tokens_to_ids(tokens), input_type_ids


def extract(model, examples, tokenizer, layer_indexes, max_seq_length, batch_size):
  """Yields the original's JSON object for each example, in order.

  Args:
    model: a modeling.encoder.BertModel with its weights loaded.
    examples: list of InputExample.
    tokenizer: FullTokenizer.
    layer_indexes: list of int layer indexes into all_encoder_layers.
    max_seq_length: truncation length.
    batch_size: examples per model call.

  Yields:
    collections.OrderedDict {"linex_index", "features"}.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  spec = tf.TensorSpec([None, None], tf.int32)

  @tf.function(input_signature=[spec, spec, spec], autograph=False)
  def layers_fn(input_ids, input_mask, input_type_ids):
    out = model(input_ids, input_mask, input_type_ids, training=False)
    return tf.stack([out.all_encoder_layers[i] for i in layer_indexes])  # [L, B, S, H]

  for begin in range(0, len(examples), batch_size):
    batch = examples[begin:begin + batch_size]
    converted = [convert_example(ex, max_seq_length, tokenizer) for ex in batch]
    # Padded to the batch's longest input: the outputs of real tokens do not depend
    # on the padding length (masked positions get -10000 before the softmax).
    width = max(len(c[0]) for c in converted)
    ids = np.zeros([len(batch), width], np.int32)
    mask = np.zeros([len(batch), width], np.int32)
    types = np.zeros([len(batch), width], np.int32)
    for row, (tokens, input_ids, input_type_ids) in enumerate(converted):
      ids[row, :len(tokens)] = input_ids
      mask[row, :len(tokens)] = 1
      types[row, :len(tokens)] = input_type_ids
    values = layers_fn(ids, mask, types).numpy()  # [L, B, S, H]
    for row, (example, (tokens, _, _)) in enumerate(zip(batch, converted)):
      features = []
      for i, token in enumerate(tokens):
        layers = []
        for j, layer_index in enumerate(layer_indexes):
          layers.append(collections.OrderedDict([
              ("index", layer_index),
              ("values", [round(float(x), 6) for x in values[j, row, i]]),
          ]))
        features.append(collections.OrderedDict([("token", token),
                                                 ("layers", layers)]))
      yield collections.OrderedDict([("linex_index", example.unique_id),
                                     ("features", features)])


def main(_):
  logging.set_verbosity(logging.INFO)
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from modeling import checkpoint as ckpt_lib  # pylint: disable=g-import-not-at-top
  from modeling import config as config_lib  # pylint: disable=g-import-not-at-top
  from modeling import encoder  # pylint: disable=g-import-not-at-top

  try:
    layer_indexes = [int(x) for x in FLAGS.layers.split(",")]
  except ValueError:
    raise cli.UsageError(f"--layers={FLAGS.layers}: expected comma-separated layer "
                         "indexes such as -1,-2,-3,-4") from None
  bert_config = config_lib.BertConfig.from_json_file(FLAGS.bert_config_file)
  bert_config.validate(max_seq_length=FLAGS.max_seq_length)
  for index in layer_indexes:
    if not -bert_config.num_hidden_layers <= index < bert_config.num_hidden_layers:
      raise cli.UsageError(f"--layers: {index} is not a layer of a "
                       f"{bert_config.num_hidden_layers}-layer model")
  if FLAGS.use_tpu:
    logging.warning("--use_tpu is accepted for compatibility; features are "
                    "computed on the local device")
  tokenizer = tokenization.FullTokenizer(vocab_file=FLAGS.vocab_file,
                                         do_lower_case=FLAGS.do_lower_case)
  examples = read_examples(FLAGS.input_file)
  model = encoder.BertModel(bert_config)
  ckpt_lib.load_init_checkpoint(model.named_variables(), FLAGS.init_checkpoint)

  directory = os.path.dirname(os.path.abspath(FLAGS.output_file))
  tf.io.gfile.makedirs(directory)
  tmp = os.path.join(directory, f".{os.path.basename(FLAGS.output_file)}."
                                f"tmp-{uuid.uuid4().hex}")
  try:
    with tf.io.gfile.GFile(tmp, "w") as writer:
      for output_json in extract(model, examples, tokenizer, layer_indexes,
                                 FLAGS.max_seq_length, FLAGS.batch_size):
        writer.write(json.dumps(output_json) + "\n")
    tf.io.gfile.rename(tmp, FLAGS.output_file, overwrite=True)
  finally:
    if tf.io.gfile.exists(tmp):
      tf.io.gfile.remove(tmp)
  logging.info("Wrote features of %d inputs to %s", len(examples), FLAGS.output_file)


def run(argv):
  """Runs main, turning input errors into one message and exit code 2."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  cli.run_main(main, argv, "extract_features.py",
               user_errors=(FileNotFoundError, tf.errors.NotFoundError))


def console_main():
  """Runs the command line (installed as the `bert-extract-features` console script)."""
  flags.mark_flag_as_required("input_file")
  flags.mark_flag_as_required("vocab_file")
  flags.mark_flag_as_required("bert_config_file")
  flags.mark_flag_as_required("init_checkpoint")
  flags.mark_flag_as_required("output_file")
  app.run(run)


if __name__ == "__main__":
  console_main()
