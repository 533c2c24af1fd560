"""InputExample -> InputFeatures -> TFRecord, as in the original run_classifier.py.

convert_single_example is the original per-example algorithm (and logging). The bulk
functions give the same features faster: all texts are tokenized at once through
tokenization.BatchTokenizer, the id matrices are filled with numpy, and the TFRecords
are serialized straight from those arrays (processors.tfrecord).
"""

import collections
from typing import Dict, List

from absl import logging
import numpy as np

import tokenization
from processors.base import (DataError, InputFeatures, PaddingInputExample,
                             gc_paused)
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


def truncated_pair_lengths_array(len_a: np.ndarray, len_b: np.ndarray,
                                 max_length: int):
  """truncated_pair_lengths of many pairs at once.

  Args:
    len_a: int array [N] of tokens in sentence A.
    len_b: int array [N] of tokens in sentence B.
    max_length: maximum total length.

  Returns:
    (new len_a, new len_b), int64 arrays [N].
  """
  len_a = np.asarray(len_a, dtype=np.int64)
  len_b = np.asarray(len_b, dtype=np.int64)
  fits = len_a + len_b <= max_length
  # The same three cases as truncated_pair_lengths: only A cut, only B cut, halves.
  only_a_cut = ~fits & (len_a > len_b) & (max_length - len_b >= len_b)
  only_b_cut = ~fits & (len_a <= len_b) & (max_length - len_a >= len_a - 1)
  new_a = np.where(fits | only_b_cut, len_a,
                   np.where(only_a_cut, max_length - len_b, (max_length + 1) // 2))
  new_b = np.where(fits | only_a_cut, len_b,
                   np.where(only_b_cut, max_length - len_a, max_length // 2))
  return new_a, new_b


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


class _TokenizedExamples(object):
  """Ids of every text_a and non-empty text_b of a list of examples, as flat arrays.

  Attributes:
    real_rows: int64 [R], positions of the examples that are not padding.
    pair_rows: int64 [P], positions of the examples with a non-empty text_b.
    len_a: int64 [N], tokens of text_a (0 for padding examples).
    len_b: int64 [N], tokens of text_b (0 without text_b).
    values: int64 ids of all texts: the R texts_a, then the P texts_b.
    starts_a: int64 [R], where each text_a's ids start in values.
    starts_b: int64 [P], where each text_b's ids start in values.
    real_examples: the examples that are not padding, in order.
  """

  def __init__(self, examples, tokenizer):
    # Comprehensions rather than one loop with appends: this runs once per example
    # of the data set. Padding is looked for among the distinct types first.
    if any(issubclass(t, PaddingInputExample) for t in set(map(type, examples))):
      real_rows = [i for i, e in enumerate(examples)
                   if not isinstance(e, PaddingInputExample)]
      self.real_examples = [examples[i] for i in real_rows]
    else:
      real_rows = range(len(examples))
      self.real_examples = list(examples)
    texts_a = [e.text_a for e in self.real_examples]
    texts_b = [e.text_b for e in self.real_examples]
    pair_rows = []
    if any(texts_b):
      pair_rows = [real_rows[i] for i, text in enumerate(texts_b) if text]
      texts_b = [text for text in texts_b if text]
    else:
      texts_b = []
    # One batch, so both sides share the word cache.
    values, row_lengths = tokenization.shared_batch_tokenizer(
        tokenizer).tokenize_to_ragged_ids(texts_a + texts_b)
    starts = np.cumsum(row_lengths) - row_lengths
    num_real = len(real_rows)
    self.real_rows = np.asarray(real_rows, dtype=np.int64)
    self.pair_rows = np.asarray(pair_rows, dtype=np.int64)
    self.len_a = np.zeros(len(examples), dtype=np.int64)
    self.len_a[self.real_rows] = row_lengths[:num_real]
    self.len_b = np.zeros(len(examples), dtype=np.int64)
    self.len_b[self.pair_rows] = row_lengths[num_real:]
    self.values = values
    self.starts_a = starts[:num_real]
    self.starts_b = starts[num_real:]


def _copy_segments(dest, dest_starts, source, source_starts, lengths):
  """dest[dest_starts[i] + k] = source[source_starts[i] + k] for k < lengths[i]."""
  if source_starts.size and np.array_equal(source_starts[1:],
                                           (source_starts + lengths)[:-1]):
    # The segments follow each other in source (nothing was cut off by
    # truncation): one slice, no gather.
    begin = int(source_starts[0])
    source = source[begin:begin + int(lengths.sum())]
  else:
    source = source[tokenization.segment_index(source_starts, lengths)]
  dest[tokenization.segment_index(dest_starts, lengths)] = source


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
  with gc_paused():
    return _convert_examples_to_arrays(examples, label_list, max_seq_length,
                                       tokenizer)


def _convert_examples_to_arrays(examples, label_list, max_seq_length, tokenizer):
  if max_seq_length < 3:
    raise ValueError(f"max_seq_length must be at least 3, got {max_seq_length}")
  num = len(examples)
  label_map = _label_map(label_list)
  cls_id, sep_id = _special_ids(tokenizer)
  tokenized = _TokenizedExamples(examples, tokenizer)
  real = tokenized.real_rows
  label_ids = np.zeros(num, dtype=np.int64)
  try:
    label_ids[real] = [label_map[e.label] for e in tokenized.real_examples]
  except KeyError:
    for e in tokenized.real_examples:
      _label_id(label_map, e)  # raises the DataError naming the example
  is_real = np.zeros(num, dtype=np.int64)
  is_real[real] = 1

  # A text_b that tokenizes to nothing makes a single-sentence example, as in
  # convert_single_example.
  is_pair = tokenized.len_b > 0
  pair_a, pair_b = truncated_pair_lengths_array(tokenized.len_a, tokenized.len_b,
                                                max_seq_length - 3)
  len_a = np.where(is_pair, pair_a, np.minimum(tokenized.len_a, max_seq_length - 2))
  len_b = np.where(is_pair, pair_b, 0)
  lengths = np.where(is_pair, len_a + len_b + 3, len_a + 2)
  lengths[is_real == 0] = 0

  # [CLS] a [SEP] (b [SEP]) written straight into the row-major buffer of input_ids.
  input_ids = np.zeros((num, max_seq_length), dtype=np.int64)
  flat = input_ids.reshape(-1)
  row_starts = np.arange(num, dtype=np.int64) * max_seq_length
  flat[row_starts[real]] = cls_id
  _copy_segments(flat, row_starts[real] + 1, tokenized.values, tokenized.starts_a,
                 len_a[real])
  flat[row_starts[real] + len_a[real] + 1] = sep_id
  pairs = tokenized.pair_rows
  _copy_segments(flat, row_starts[pairs] + len_a[pairs] + 2, tokenized.values,
                 tokenized.starts_b, len_b[pairs])
  pair_rows = np.flatnonzero(is_pair)
  flat[row_starts[pair_rows] + lengths[pair_rows] - 1] = sep_id

  positions = np.arange(max_seq_length)[None, :]
  # Row L of mask_rows is the mask of L real tokens. Gathering rows is about twice
  # as fast as comparing positions with lengths into an int64 array.
  mask_rows = (positions < np.arange(max_seq_length + 1)[:, None]).astype(np.int64)
  input_mask = np.take(mask_rows, lengths, axis=0)
  # Segment 1 runs from after the first [SEP] to the end of the pair. Single
  # sentences are all segment 0, so their rows stay untouched zero pages.
  segment_ids = np.zeros((num, max_seq_length), dtype=np.int64)
  if pair_rows.size:
    segment_ids[pair_rows] = ((positions >= len_a[pair_rows, None] + 2) &
                              (positions < lengths[pair_rows, None]))

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
  with gc_paused():
    tokenized = _TokenizedExamples(examples, tokenizer)
  real = tokenized.real_rows
  lengths = np.zeros(len(examples), dtype=np.int64)
  lengths[real] = (tokenized.len_a + 2 +
                   np.where(tokenized.len_b > 0, tokenized.len_b + 1, 0))[real]
  return lengths
