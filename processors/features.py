"""InputExample -> InputFeatures -> TFRecord, as in the original run_classifier.py.

convert_single_example is the original per-example algorithm (and logging). The bulk
functions give the same features faster: all texts are tokenized at once through
tokenization.BatchTokenizer, the id matrices are filled with numpy, and the TFRecords
are serialized straight from those arrays (processors.tfrecord).
"""

import collections
import contextlib
import gc
from typing import Dict, List

from absl import logging
import numpy as np

import tokenization
from processors.base import DataError, InputFeatures, PaddingInputExample
from processors.tfrecord import serialize_int64_examples, write_tfrecord_atomic

_LOGGED_EXAMPLES = 5


def _truncate_seq_pair(tokens_a, tokens_b, max_length):
  """Truncates a sequence pair in place to the maximum length.

  One token at a time is removed from the longer sequence (from sentence B on a tie),
  which keeps more of the shorter one than cutting each by a fixed share.

  Args:
    tokens_a: list, first sequence (modified in place).
    tokens_b: list, second sequence (modified in place).
    max_length: maximum total length of the two.
  """
  while True:
    total_length = len(tokens_a) + len(tokens_b)
    if total_length <= max_length:
      break
    if len(tokens_a) > len(tokens_b):
      tokens_a.pop()
    else:
      tokens_b.pop()


def truncated_pair_lengths(len_a: int, len_b: int, max_length: int):
  """Lengths _truncate_seq_pair leaves, computed without popping.

  Args:
    len_a: tokens in sentence A.
    len_b: tokens in sentence B.
    max_length: maximum total length.

  Returns:
    (new len_a, new len_b).
  """
  if len_a + len_b <= max_length:
    return len_a, len_b
  if len_a > len_b:
    # Only A is cut while it stays strictly longer than B.
    if max_length - len_b >= len_b:
      return max_length - len_b, len_b
  elif max_length - len_a >= len_a - 1:
    # Only B is cut while it stays at least as long as A.
    return len_a, max_length - len_a
  # Both end up cut to halves; A keeps the extra token of an odd budget.
  return (max_length + 1) // 2, max_length // 2


@contextlib.contextmanager
def _gc_paused():
  """Pauses the cyclic garbage collector for a bulk conversion.

  Tokenizing a data set allocates millions of small, acyclic lists, and every
  few hundred allocations trigger a collection that scans all live objects (the
  examples included): about a quarter of the conversion time on SST-2. Reference
  counting still frees everything; only cycle detection waits until the end.
  """
  was_enabled = gc.isenabled()
  gc.disable()
  try:
    yield
  finally:
    if was_enabled:
      gc.enable()


def _label_map(label_list):
  return {label: i for i, label in enumerate(label_list)}


def _label_id(label_map, example):
  try:
    return label_map[example.label]
  except KeyError:
    raise DataError(f"example {example.guid}: label {example.label!r} is not in the "
                    f"label list {list(label_map)}") from None


def _log_example(example, tokens, input_ids, input_mask, segment_ids, label_id):
  logging.info("*** Example ***")
  logging.info("guid: %s" % (example.guid))
  logging.info("tokens: %s" % " ".join(
      [tokenization.printable_text(x) for x in tokens]))
  logging.info("input_ids: %s" % " ".join([str(x) for x in input_ids]))
  logging.info("input_mask: %s" % " ".join([str(x) for x in input_mask]))
  logging.info("segment_ids: %s" % " ".join([str(x) for x in segment_ids]))
  logging.info("label: %s (id = %d)" % (example.label, label_id))


def convert_single_example(ex_index, example, label_list, max_seq_length,
                           tokenizer):
  """Converts a single `InputExample` into a single `InputFeatures`.

  Args:
    ex_index: position of the example; the first 5 are logged.
    example: InputExample or PaddingInputExample.
    label_list: list of label strings; a label's id is its index.
    max_seq_length: length of the padded id lists.
    tokenizer: object with tokenize(text) and convert_tokens_to_ids(tokens).

  Returns:
    InputFeatures with lists of length max_seq_length.

  Raises:
    DataError: the example's label is not in label_list.
  """
  if isinstance(example, PaddingInputExample):
    return InputFeatures(
        input_ids=[0] * max_seq_length,
        input_mask=[0] * max_seq_length,
        segment_ids=[0] * max_seq_length,
        label_id=0,
        is_real_example=False)

  label_map = _label_map(label_list)
  tokens_a = tokenizer.tokenize(example.text_a)
  tokens_b = None
  if example.text_b:
    tokens_b = tokenizer.tokenize(example.text_b)

  if tokens_b:
    # Account for [CLS], [SEP], [SEP] with "- 3".
    _truncate_seq_pair(tokens_a, tokens_b, max_seq_length - 3)
  else:
    # Account for [CLS] and [SEP] with "- 2".
    if len(tokens_a) > max_seq_length - 2:
      tokens_a = tokens_a[0:(max_seq_length - 2)]

  tokens = ["[CLS]"] + list(tokens_a) + ["[SEP]"]
  segment_ids = [0] * len(tokens)
  if tokens_b:
    tokens += list(tokens_b) + ["[SEP]"]
    segment_ids += [1] * (len(tokens_b) + 1)

  input_ids = tokenizer.convert_tokens_to_ids(tokens)
  # Real tokens get mask 1; padding (zeros up to the sequence length) gets 0.
  input_mask = [1] * len(input_ids)
  padding = max_seq_length - len(input_ids)
  input_ids = list(input_ids) + [0] * padding
  input_mask += [0] * padding
  segment_ids += [0] * padding

  label_id = _label_id(label_map, example)
  if ex_index < _LOGGED_EXAMPLES:
    _log_example(example, tokens, input_ids, input_mask, segment_ids, label_id)

  return InputFeatures(
      input_ids=input_ids,
      input_mask=input_mask,
      segment_ids=segment_ids,
      label_id=label_id,
      is_real_example=True)


def _special_ids(tokenizer):
  cls_id, sep_id = tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]"])
  return cls_id, sep_id


def _tokenize_examples(examples, tokenizer):
  """Tokenizes every text_a and non-empty text_b in one batch.

  Returns:
    (ids_a, ids_b): lists aligned with examples; ids_b[i] is None without text_b,
    and padding examples get ids_a[i] = None.
  """
  texts, where = [], []
  for i, example in enumerate(examples):
    if isinstance(example, PaddingInputExample):
      continue
    texts.append(example.text_a)
    where.append((i, 0))
    if example.text_b:
      texts.append(example.text_b)
      where.append((i, 1))
  ids = tokenization.BatchTokenizer(tokenizer).tokenize_to_ids(texts)
  ids_a = [None] * len(examples)
  ids_b = [None] * len(examples)
  for (i, side), piece in zip(where, ids):
    if side == 0:
      ids_a[i] = piece
    else:
      ids_b[i] = piece
  return ids_a, ids_b


def convert_examples_to_arrays(examples, label_list, max_seq_length,
                               tokenizer) -> Dict[str, np.ndarray]:
  """Converts examples to feature arrays; same values as convert_single_example.

  Args:
    examples: list of InputExample / PaddingInputExample.
    label_list: list of label strings.
    max_seq_length: sequence length.
    tokenizer: a FullTokenizer (or compatible) for tokenization.BatchTokenizer.

  Returns:
    dict with int64 arrays input_ids, input_mask, segment_ids [N, max_seq_length]
    and label_ids, is_real_example [N].

  Raises:
    DataError: an example's label is not in label_list.
    ValueError: max_seq_length < 3.
  """
  with _gc_paused():
    return _convert_examples_to_arrays(examples, label_list, max_seq_length,
                                       tokenizer)


def _convert_examples_to_arrays(examples, label_list, max_seq_length, tokenizer):
  if max_seq_length < 3:
    raise ValueError(f"max_seq_length must be at least 3, got {max_seq_length}")
  num = len(examples)
  label_map = _label_map(label_list)
  cls_id, sep_id = _special_ids(tokenizer)
  ids_a, ids_b = _tokenize_examples(examples, tokenizer)

  flat_ids = []  # [CLS] a [SEP] (b [SEP]) of every real example, unpadded, in order
  lengths = np.zeros(num, dtype=np.int64)
  # Position where segment 1 starts; max_seq_length (never reached) for singles.
  segment_starts = np.full(num, max_seq_length, dtype=np.int64)
  label_ids = np.zeros(num, dtype=np.int64)
  is_real = np.zeros(num, dtype=np.int64)
  extend = flat_ids.extend
  for i, example in enumerate(examples):
    a = ids_a[i]
    if a is None:  # PaddingInputExample: all zeros, not real
      continue
    b = ids_b[i]
    if b:
      len_a, len_b = truncated_pair_lengths(len(a), len(b), max_seq_length - 3)
      extend((cls_id,))
      extend(a[:len_a])
      extend((sep_id,))
      extend(b[:len_b])
      extend((sep_id,))
      segment_starts[i] = len_a + 2
      lengths[i] = len_a + len_b + 3
    else:
      len_a = min(len(a), max_seq_length - 2)
      extend((cls_id,))
      extend(a[:len_a])
      extend((sep_id,))
      lengths[i] = len_a + 2
    label_ids[i] = _label_id(label_map, example)
    is_real[i] = 1

  positions = np.arange(max_seq_length)[None, :]
  real_tokens = positions < lengths[:, None]  # [N, max_seq_length]
  input_ids = np.zeros((num, max_seq_length), dtype=np.int64)
  # Row-major order of the mask's True cells is the order of the rows' ids.
  input_ids[real_tokens] = np.asarray(flat_ids, dtype=np.int64)
  input_mask = real_tokens.astype(np.int64)
  segment_ids = (real_tokens & (positions >= segment_starts[:, None])).astype(np.int64)

  for i in range(min(_LOGGED_EXAMPLES, num)):
    if is_real[i]:
      count = int(lengths[i])
      tokens = tokenizer.convert_ids_to_tokens(input_ids[i, :count].tolist())
      _log_example(examples[i], tokens, input_ids[i].tolist(), input_mask[i].tolist(),
                   segment_ids[i].tolist(), int(label_ids[i]))

  return collections.OrderedDict([
      ("input_ids", input_ids),
      ("input_mask", input_mask),
      ("segment_ids", segment_ids),
      ("label_ids", label_ids),
      ("is_real_example", is_real),
  ])


def convert_examples_to_features(examples, label_list, max_seq_length,
                                 tokenizer) -> List[InputFeatures]:
  """Converts a set of `InputExample`s to a list of `InputFeatures`.

  Args:
    examples: list of InputExample / PaddingInputExample.
    label_list: list of label strings.
    max_seq_length: sequence length.
    tokenizer: a FullTokenizer (or compatible).

  Returns:
    list of InputFeatures (Python int lists), in example order.
  """
  arrays = convert_examples_to_arrays(examples, label_list, max_seq_length,
                                      tokenizer)
  return [
      InputFeatures(input_ids=ids, input_mask=mask, segment_ids=segments,
                    label_id=label, is_real_example=bool(real))
      for ids, mask, segments, label, real in zip(
          arrays["input_ids"].tolist(), arrays["input_mask"].tolist(),
          arrays["segment_ids"].tolist(), arrays["label_ids"].tolist(),
          arrays["is_real_example"].tolist())
  ]


def file_based_convert_examples_to_features(examples, label_list,
                                            max_seq_length, tokenizer,
                                            output_file) -> int:
  """Converts a set of `InputExample`s to a TFRecord file.

  Feature names are the original ones: input_ids, input_mask, segment_ids,
  label_ids, is_real_example (all int64). The file is written under a temporary
  name and renamed, so a failed conversion never leaves a partial output_file.

  Args:
    examples: list of InputExample / PaddingInputExample.
    label_list: list of label strings.
    max_seq_length: sequence length.
    tokenizer: a FullTokenizer (or compatible).
    output_file: path of the TFRecord file to write.

  Returns:
    the number of records written (len(examples)).
  """
  arrays = convert_examples_to_arrays(examples, label_list, max_seq_length,
                                      tokenizer)
  records = serialize_int64_examples(arrays)

  def _with_progress():
    for index, record in enumerate(records):
      if index % 10000 == 0:
        logging.info("Writing example %d of %d" % (index, len(records)))
      yield record

  return write_tfrecord_atomic(_with_progress(), output_file)


def token_lengths(examples, tokenizer) -> np.ndarray:
  """Untruncated lengths of [CLS] a [SEP] (b [SEP]) per example.

  Args:
    examples: list of InputExample (PaddingInputExamples count as length 0).
    tokenizer: a FullTokenizer (or compatible).

  Returns:
    int64 array [N]; compare with max_seq_length to see how much is truncated.
  """
  with _gc_paused():
    ids_a, ids_b = _tokenize_examples(examples, tokenizer)
  lengths = np.zeros(len(examples), dtype=np.int64)
  for i, (a, b) in enumerate(zip(ids_a, ids_b)):
    if a is None:
      continue
    lengths[i] = len(a) + 2 + (len(b) + 1 if b else 0)
  return lengths
