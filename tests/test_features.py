"""Tests of feature conversion, the fast TFRecord encoder and the input pipelines."""

import logging
import os

import numpy as np
import pytest
import tensorflow as tf

import processors
import tokenization
from processors import InputExample, PaddingInputExample
from processors.features import (_truncate_seq_pair, truncated_pair_lengths,
                                 truncated_pair_lengths_array)
from processors import tfrecord
from processors.tfrecord import serialize_int64_examples, write_tfrecord_atomic

_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on",
          "mat", "a", "dog", "ran", "##s", "un", "##want", "##ed", ",", ".", "run",
          "##ning", "very", "long", "sentence"]
_LABELS = ["neg", "pos"]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
  path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
  path.write_text("\n".join(_VOCAB) + "\n", encoding="utf-8")
  return tokenization.FullTokenizer(vocab_file=str(path), do_lower_case=True)


def _ids(*tokens):
  return [_VOCAB.index(t) for t in tokens]


def _examples():
  return [
      InputExample("t-0", "The cat sat on the mat.", None, "pos"),
      InputExample("t-1", "The dog runs", "a cat sat", "neg"),
      InputExample("t-2", "very long sentence " * 6, "the dog", "pos"),
      InputExample("t-3", "unwanted", "very long sentence " * 5, "neg"),
      PaddingInputExample(),
      InputExample("t-5", "Xyzzy running!", "", "pos"),  # empty text_b -> single
      InputExample("t-6", "the cat", "!!!", "neg"),  # text_b tokenizes to [UNK]s
      InputExample("t-7", "very long sentence " * 10, None, "pos"),
  ]


def test_convert_single_example_single_sentence(tokenizer):
  f = processors.convert_single_example(
      10, InputExample("g", "The cat sat", None, "pos"), _LABELS, 8, tokenizer)
  assert f.input_ids == _ids("[CLS]", "the", "cat", "sat", "[SEP]") + [0, 0, 0]
  assert f.input_mask == [1, 1, 1, 1, 1, 0, 0, 0]
  assert f.segment_ids == [0] * 8
  assert f.label_id == 1 and f.is_real_example


def test_convert_single_example_pair_truncation(tokenizer):
  # a = 6 tokens, b = 2 tokens, budget 10 - 3 = 7: one token is cut from a.
  example = InputExample("g", "the cat sat on the mat", "a dog", "neg")
  f = processors.convert_single_example(10, example, _LABELS, 10, tokenizer)
  assert f.input_ids == _ids("[CLS]", "the", "cat", "sat", "on", "the", "[SEP]",
                             "a", "dog", "[SEP]")
  assert f.segment_ids == [0] * 7 + [1] * 3
  assert f.input_mask == [1] * 10
  assert f.label_id == 0


def test_convert_single_example_truncates_single_sentence(tokenizer):
  f = processors.convert_single_example(
      10, InputExample("g", "the cat sat on the mat", None, "pos"), _LABELS, 5,
      tokenizer)
  assert f.input_ids == _ids("[CLS]", "the", "cat", "sat", "[SEP]")


def test_padding_example(tokenizer):
  f = processors.convert_single_example(0, PaddingInputExample(), _LABELS, 6, tokenizer)
  assert f.input_ids == [0] * 6 and f.input_mask == [0] * 6
  assert f.segment_ids == [0] * 6 and f.label_id == 0
  assert f.is_real_example is False


def test_unknown_label_in_features(tokenizer):
  with pytest.raises(processors.DataError, match="example g: label 'maybe'"):
    processors.convert_examples_to_features(
        [InputExample("g", "cat", None, "maybe")], _LABELS, 8, tokenizer)


def test_truncated_pair_lengths_matches_pop_loop():
  for max_length in range(0, 14):
    for len_a in range(0, 16):
      for len_b in range(0, 16):
        a, b = list(range(len_a)), list(range(len_b))
        _truncate_seq_pair(a, b, max_length)
        assert truncated_pair_lengths(len_a, len_b, max_length) == (len(a), len(b)), (
            len_a, len_b, max_length)


def test_truncated_pair_lengths_array_matches_scalar():
  len_a, len_b = np.meshgrid(np.arange(16), np.arange(16), indexing="ij")
  len_a, len_b = len_a.ravel(), len_b.ravel()
  for max_length in range(0, 14):
    new_a, new_b = truncated_pair_lengths_array(len_a, len_b, max_length)
    expected = [truncated_pair_lengths(a, b, max_length) for a, b in zip(len_a, len_b)]
    assert list(zip(new_a.tolist(), new_b.tolist())) == expected, max_length


@pytest.mark.parametrize("max_seq_length", [5, 9, 16, 64])
def test_bulk_conversion_equals_single(tokenizer, max_seq_length):
  # At 64 nothing is truncated, so the ids are copied without a gather.
  examples = _examples()
  expected = [processors.convert_single_example(i, e, _LABELS, max_seq_length, tokenizer)
              for i, e in enumerate(examples)]
  got = processors.convert_examples_to_features(examples, _LABELS, max_seq_length,
                                                tokenizer)
  assert len(got) == len(expected)
  for g, e in zip(got, expected):
    assert (g.input_ids, g.input_mask, g.segment_ids, g.label_id, g.is_real_example) == (
        e.input_ids, e.input_mask, e.segment_ids, e.label_id, e.is_real_example)


def test_bulk_conversion_text_b_without_tokens(tokenizer):
  # A text_b of control characters only is non-empty but has no tokens: the
  # original then treats the example as a single sentence.
  examples = [InputExample("t-0", "the dog " * 5, "\x07", "neg"),
              InputExample("t-1", "the dog", "\x00\x07", "pos"),
              PaddingInputExample(),
              InputExample("t-3", "a cat", "the mat", "pos")]
  expected = [processors.convert_single_example(i, e, _LABELS, 8, tokenizer)
              for i, e in enumerate(examples)]
  got = processors.convert_examples_to_features(examples, _LABELS, 8, tokenizer)
  for g, e in zip(got, expected):
    assert (g.input_ids, g.input_mask, g.segment_ids, g.label_id, g.is_real_example) == (
        e.input_ids, e.input_mask, e.segment_ids, e.label_id, e.is_real_example)


def test_first_examples_are_logged(tokenizer, caplog):
  with caplog.at_level(logging.INFO):
    processors.convert_examples_to_arrays(_examples()[:2], _LABELS, 12, tokenizer)
  text = "\n".join(r.getMessage() for r in caplog.records)
  assert "guid: t-1" in text
  assert "tokens: [CLS] the dog run ##s [SEP] a cat sat [SEP]" in text
  assert "label: neg (id = 0)" in text


def test_token_lengths(tokenizer):
  lengths = processors.token_lengths(_examples(), tokenizer)
  # [CLS] + 7 tokens + [SEP]; [CLS] the dog run ##s [SEP] a cat sat [SEP]; padding 0.
  assert lengths[0] == 9 and lengths[1] == 10 and lengths[4] == 0
  assert lengths[7] == 32
  assert lengths.dtype == np.int64


def _reference_example(row):
  feature = {k: tf.train.Feature(int64_list=tf.train.Int64List(value=list(v)))
             for k, v in row.items()}
  return tf.train.Example(features=tf.train.Features(feature=feature))


def test_fast_encoder_matches_tf_example_bytes():
  rng = np.random.default_rng(0)
  features = {
      "input_ids": rng.integers(0, 40000, size=(20, 7)),
      "input_mask": rng.integers(0, 2, size=(20, 7)),
      "segment_ids": np.zeros((20, 7), dtype=np.int64),
      "label_ids": rng.integers(0, 6, size=20),
      "is_real_example": np.ones(20, dtype=np.int64),
  }
  # Edge values: every varint width, the int64 limits and negatives (10 bytes).
  edge = np.array([0, 127, 128, 16383, 16384, 2**21, 2**35, 2**63 - 1, -1, -2**63],
                  dtype=np.int64)
  features["input_ids"][:10, 0] = edge
  features["label_ids"][10:] = edge
  records = serialize_int64_examples(features)
  assert len(records) == 20
  spec = {k: tf.io.FixedLenFeature([7] if v.ndim == 2 else [], tf.int64)
          for k, v in features.items()}
  for i, record in enumerate(records):
    row = {k: np.atleast_1d(v[i]) for k, v in features.items()}
    expected = _reference_example(row)
    assert record == expected.SerializeToString(deterministic=True)
    assert tf.train.Example.FromString(record) == expected
    parsed = tf.io.parse_single_example(record, spec)
    for k, v in features.items():
      np.testing.assert_array_equal(parsed[k].numpy(), v[i])


def test_fast_encoder_token_ids_and_chunks(monkeypatch):
  # Token-id-like matrices (mostly single-byte padding, some 2- and 3-byte
  # values); small chunks make records straddle chunk boundaries.
  monkeypatch.setattr(tfrecord, "_ROWS_PER_CHUNK", 150)
  rng = np.random.default_rng(1)
  ids = rng.integers(0, 3000, size=(200, 128))
  ids[:, 0] = 2
  ids[5, :] = 16383  # one row of 2-byte values next to 1- and 3-byte ones
  ids[6, 1] = 16384
  lengths = rng.integers(1, 128, size=200)
  ids[np.arange(128)[None, :] >= lengths[:, None]] = 0
  features = {"input_ids": ids, "label_ids": rng.integers(0, 3, size=200)}
  records = serialize_int64_examples(features)
  for i, record in enumerate(records):
    expected = _reference_example({"input_ids": ids[i], "label_ids": [features[
        "label_ids"][i]]}).SerializeToString(deterministic=True)
    assert record == expected, i


def test_fast_encoder_rejects_mismatched_rows():
  with pytest.raises(ValueError, match="has 2 rows, expected 3"):
    serialize_int64_examples({"a": np.zeros(3, np.int64), "b": np.zeros((2, 4), np.int64)})


def _read_all(dataset):
  out = {}
  for batch in dataset:
    for k, v in batch.items():
      out.setdefault(k, []).append(v.numpy())
  return {k: np.concatenate(v) for k, v in out.items()}


def test_tfrecord_round_trip(tokenizer, tmp_path):
  examples = _examples()
  path = str(tmp_path / "train.tf_record")
  count = processors.file_based_convert_examples_to_features(
      examples, _LABELS, 16, tokenizer, path)
  assert count == len(examples)
  assert os.listdir(tmp_path) == ["train.tf_record"]
  expected = processors.convert_examples_to_arrays(examples, _LABELS, 16, tokenizer)

  input_fn = processors.file_based_input_fn_builder(path, 16, is_training=False,
                                                    drop_remainder=False)
  from_input_fn = _read_all(input_fn({"batch_size": 3}))
  from_make = _read_all(processors.make_dataset(path, 16, batch_size=3,
                                                is_training=False))
  for got in (from_input_fn, from_make):
    assert set(got) == set(expected)
    for k, v in expected.items():
      assert got[k].dtype == np.int32
      np.testing.assert_array_equal(got[k], v)
  assert from_make["is_real_example"].tolist() == [1, 1, 1, 1, 0, 1, 1, 1]

  dropped = processors.make_dataset(path, 16, batch_size=3, is_training=False,
                                    drop_remainder=True)
  assert [b["input_ids"].shape[0] for b in dropped] == [3, 3]


def test_training_dataset_repeats_and_shuffles(tokenizer, tmp_path):
  path = str(tmp_path / "train.tf_record")
  examples = [InputExample(str(i), "cat " * (i + 1), None, "pos") for i in range(8)]
  processors.file_based_convert_examples_to_features(examples, _LABELS, 12, tokenizer,
                                                     path)
  d = processors.make_dataset(path, 12, batch_size=4, is_training=True, seed=1,
                              drop_remainder=True)
  batches = [b["input_mask"].numpy().sum(axis=1) for b in d.take(6)]
  epoch_orders = [np.concatenate(batches[i:i + 2]).tolist() for i in (0, 2, 4)]
  for order in epoch_orders:  # every epoch holds each record exactly once
    assert sorted(order) == list(range(3, 11))
  assert len({tuple(o) for o in epoch_orders}) > 1  # reshuffled between epochs
  assert all(b.shape == (4, 12) for b in
             (x["input_ids"] for x in d.take(2)))
  train_fn = processors.file_based_input_fn_builder(path, 12, True, True)
  assert len(list(train_fn({"batch_size": 4}).take(5))) == 5  # repeats forever


def test_group_by_length_sorts_a_window_into_batches():
  lengths = np.array([5, 1, 7, 3, 3, 8, 2, 6])
  window = {"input_mask": tf.constant((np.arange(9) < lengths[:, None]).astype(np.int32)),
            "label_ids": tf.constant(np.arange(8, dtype=np.int32))}
  batches = list(processors.input_pipeline.group_by_length(window, batch_size=2))
  assert len(batches) == 4
  got = [b["input_mask"].numpy().sum(axis=1).tolist() for b in batches]
  assert got == [[1, 2], [3, 3], [5, 6], [7, 8]]
  # Rows travel together, and ties keep their order.
  assert [b["label_ids"].numpy().tolist() for b in batches] == [
      [1, 6], [3, 4], [0, 7], [2, 5]]


def _write_random_lengths(tokenizer, path, count, seed):
  """Writes `count` texts of 1 to 29 words (max_seq_length 32); returns them."""
  rng = np.random.RandomState(seed)
  examples = [InputExample(str(i), "cat " * int(rng.randint(1, 30)), None, "pos")
              for i in range(count)]
  processors.file_based_convert_examples_to_features(examples, _LABELS, 32, tokenizer,
                                                     path)
  return examples


def test_length_bucketing_pads_less_and_stays_reproducible(tokenizer, tmp_path):
  path = str(tmp_path / "train.tf_record")
  examples = _write_random_lengths(tokenizer, path, 64, seed=0)

  def make(window):
    return processors.make_dataset(path, 32, batch_size=4, is_training=True, seed=3,
                                   drop_remainder=True, dynamic_padding_multiple=8,
                                   length_bucketing_window=window)

  def padded_positions(d, n):
    return sum(int(np.prod(b["input_ids"].shape)) for b in d.take(n))

  grouped = [b["input_mask"].numpy() for b in make(4).take(48)]
  assert all(b.shape[0] == 4 and b.shape[1] % 8 == 0 for b in grouped)
  assert padded_positions(make(4), 48) < 0.8 * padded_positions(make(None), 48)
  # Three epochs of batches hold each example three times, except for the at most
  # 8 batches (32 examples) that the shuffle of batches carries across the end.
  epoch = np.bincount([min(len(tokenizer.tokenize(e.text_a)) + 2, 32)
                       for e in examples], minlength=33)
  got = np.bincount(np.concatenate([b.sum(axis=1) for b in grouped]), minlength=33)
  assert np.abs(got - 3 * epoch).sum() <= 2 * 32
  again = [b["input_mask"].numpy() for b in make(4).take(48)]
  for a, b in zip(grouped, again):
    np.testing.assert_array_equal(a, b)
  # Resuming skips batches of the same sequence.
  resumed = [b["input_mask"].numpy() for b in make(4).skip(20).take(5)]
  for a, b in zip(grouped[20:25], resumed):
    np.testing.assert_array_equal(a, b)


def test_length_sorted_inference_batches_cover_the_file_once(tokenizer, tmp_path):
  path = str(tmp_path / "eval.tf_record")
  _write_random_lengths(tokenizer, path, 45, seed=1)

  def make(window):
    return processors.make_dataset(path, 32, batch_size=4, is_training=False,
                                   dynamic_padding_multiple=8,
                                   length_sorted_window=window)

  plain = list(make(None))
  assert all(processors.EXAMPLE_INDEX not in b for b in plain)
  plain_ids = np.concatenate([np.pad(b["input_ids"].numpy(),
                                     [[0, 0], [0, 32 - b["input_ids"].shape[1]]])
                              for b in plain])
  # Windows of 5 batches (20 examples): 45 records make windows of 20, 20 and 5.
  sorted_batches = list(make(5))
  index = np.concatenate([b[processors.EXAMPLE_INDEX].numpy() for b in sorted_batches])
  np.testing.assert_array_equal(np.sort(index), np.arange(45))
  for start in (0, 20, 40):  # no example leaves its window
    assert set(index[start:start + 20]) == set(range(start, min(start + 20, 45)))
  lengths = np.concatenate([b["input_mask"].numpy().sum(axis=1)
                            for b in sorted_batches])
  for start in (0, 20, 40):
    window = lengths[start:start + 20]
    assert (np.diff(window) >= 0).all()
  assert [b["input_ids"].shape[0] for b in sorted_batches] == [4] * 11 + [1]
  assert all(b["input_ids"].shape[1] % 8 == 0 for b in sorted_batches)
  # Each row is its record's features, cut to the batch's width.
  for batch in sorted_batches:
    rows = batch[processors.EXAMPLE_INDEX].numpy()
    width = batch["input_ids"].shape[1]
    np.testing.assert_array_equal(batch["input_ids"].numpy(),
                                  plain_ids[rows, :width])
    assert not plain_ids[rows, width:].any()
  padded = lambda batches: sum(int(np.prod(b["input_ids"].shape)) for b in batches)
  assert padded(sorted_batches) < 0.85 * padded(plain)
  # Without dynamic padding (TPU) nothing is sorted.
  static = processors.make_dataset(path, 32, batch_size=4, is_training=False,
                                   length_sorted_window=5)
  assert all(processors.EXAMPLE_INDEX not in b for b in static)


def test_make_dataset_missing_file(tmp_path):
  with pytest.raises(ValueError, match="TFRecord file not found: .*absent"):
    processors.make_dataset(str(tmp_path / "absent"), 8, 2, False)


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
  target = tmp_path / "out.tf_record"
  good = serialize_int64_examples({"label_ids": np.arange(3)})

  def failing():
    yield good[0]
    yield good[1]
    raise RuntimeError("interrupted")

  with pytest.raises(RuntimeError, match="interrupted"):
    write_tfrecord_atomic(failing(), str(target))
  assert os.listdir(tmp_path) == []

  assert write_tfrecord_atomic(good, str(target)) == 3
  with pytest.raises(RuntimeError):
    write_tfrecord_atomic(failing(), str(target))
  # The earlier complete file survives a failed rewrite.
  assert os.listdir(tmp_path) == ["out.tf_record"]
  assert len(list(tf.data.TFRecordDataset(str(target)))) == 3


def test_conversion_error_leaves_no_file(tokenizer, tmp_path):
  path = tmp_path / "bad.tf_record"
  examples = [InputExample("a", "cat", None, "pos"), InputExample("b", "dog", None, "x")]
  with pytest.raises(processors.DataError, match="example b"):
    processors.file_based_convert_examples_to_features(examples, _LABELS, 8, tokenizer,
                                                       str(path))
  assert os.listdir(tmp_path) == []
