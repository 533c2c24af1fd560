"""SQuAD reading, windowing and TFRecords, checked against Model Garden's port of the original."""

import gc
import json

import numpy as np
import pytest
import tensorflow as tf

from official.nlp.data import squad_lib as reference_lib
from official.nlp.tools import tokenization as reference_tokenization
from processors import squad
from processors.base import DataError
import squad_helpers
import tokenization


def _tokenizers(tmp_path, data):
  vocab = squad_helpers.write_squad_vocab(tmp_path / "vocab.txt", data)
  ours = tokenization.FullTokenizer(str(vocab), do_lower_case=True)
  reference = reference_tokenization.FullTokenizer(str(vocab), do_lower_case=True)
  reference.wordpiece_tokenizer.max_input_chars_per_word = 200  # the original's value
  return ours, reference


def test_split_context_whitespace_oddities():
  tokens, offsets = squad.split_context(" ab  c\td\u202fe\nf ")
  assert tokens == ["ab", "c", "d", "e", "f"]
  # Leading whitespace maps to -1; whitespace maps to the word before it.
  assert offsets == [-1, 0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4]


@pytest.mark.parametrize("version_2", [False, True])
@pytest.mark.parametrize("is_training", [False, True])
def test_examples_match_reference(tmp_path, is_training, version_2):
  data = squad_helpers.v2_data() if version_2 else squad_helpers.v1_data()
  path = squad_helpers.write_squad(tmp_path / "squad.json", data)
  ours, report = squad.read_squad_examples(str(path), is_training, version_2)
  reference = reference_lib.read_squad_examples(str(path), is_training, version_2)
  assert len(ours) == len(reference) == report.num_examples
  assert not report.skipped_answers
  for a, b in zip(ours, reference):
    assert (a.qas_id, a.question_text, a.doc_tokens, a.orig_answer_text,
            a.start_position, a.end_position, a.is_impossible) == (
                b.qas_id, b.question_text, b.doc_tokens, b.orig_answer_text,
                b.start_position, b.end_position, b.is_impossible)
  if is_training:
    by_id = {ex.qas_id: ex for ex in ours}
    # "(1895-1943)." is one whitespace word; the answer 1895 maps to it.
    assert by_id["r2"].doc_tokens[by_id["r2"].start_position] == "(1895-1943)."
    assert by_id["l1"].start_position == 0
    assert by_id["l4"].end_position == len(by_id["l4"].doc_tokens) - 1


@pytest.mark.parametrize("max_seq_length,doc_stride,max_query_length",
                         [(24, 4, 8), (32, 8, 12), (40, 16, 6), (128, 128, 64)])
@pytest.mark.parametrize("is_training", [False, True])
def test_features_match_reference(tmp_path, max_seq_length, doc_stride,
                                  max_query_length, is_training):
  data = squad_helpers.v2_data()
  path = squad_helpers.write_squad(tmp_path / "squad.json", data)
  ours_tok, reference_tok = _tokenizers(tmp_path, data)
  examples, _ = squad.read_squad_examples(str(path), is_training, True)
  features, report = squad.convert_examples_to_features(
      examples, ours_tok, max_seq_length, doc_stride, max_query_length, is_training,
      log_examples=0)
  reference = []
  ref_examples = reference_lib.read_squad_examples(str(path), is_training, True)
  reference_lib.convert_examples_to_features(
      ref_examples, reference_tok, max_seq_length, doc_stride, max_query_length,
      is_training, lambda feature, is_padding=False: reference.append(feature),
      batch_size=1)
  assert len(features) == len(reference) == report.num_features
  for f, r in zip(features, reference):
    assert f.unique_id == r.unique_id
    assert (f.example_index, f.doc_span_index) == (r.example_index, r.doc_span_index)
    assert f.tokens == r.tokens
    assert f.token_to_orig_map == r.token_to_orig_map
    assert f.token_is_max_context == r.token_is_max_context
    assert f.input_ids == list(r.input_ids)
    assert f.input_mask == list(r.input_mask)
    assert f.segment_ids == list(r.segment_ids)
    if is_training:
      assert (f.start_position, f.end_position) == (r.start_position, r.end_position)
      # Model Garden flags windows without the answer here; the original (and this
      # port) keep the example's flag.
      assert f.is_impossible == examples[f.example_index].is_impossible
  if max_seq_length == 24:
    # Short windows: the long context needs many, and some answers fall outside.
    long_windows = [f for f in features if examples[f.example_index].qas_id == "l5"]
    assert len(long_windows) > 5
    if is_training:
      hits = [f for f in long_windows if f.start_position > 0]
      assert hits and any(f.start_position == 0 for f in long_windows)
      for f in hits:
        assert f.tokens[f.start_position:f.end_position + 1] == ours_tok.tokenize(
            "alphas bravos")


def test_improved_span_and_unicode_answers(tmp_path):
  data = squad_helpers.v1_data()
  path = squad_helpers.write_squad(tmp_path / "squad.json", data)
  tok, _ = _tokenizers(tmp_path, data)
  examples, _ = squad.read_squad_examples(str(path), True)
  features, _ = squad.convert_examples_to_features(examples, tok, 64, 32, 16, True,
                                                   log_examples=0)
  answer = {examples[f.example_index].qas_id:
            f.tokens[f.start_position:f.end_position + 1] for f in features}
  assert answer["r2"] == ["1895"]  # narrowed from "( 1895 - 1943 ) ."
  assert answer["r1"] == ["bra", "##zil"]  # "brazil" is not in the vocab
  assert answer["c1"] == ["hans", "bruckner"]  # accents stripped, comma dropped
  assert answer["r4"] == ["volume", "."]


def test_max_context_matches_per_token_rule():
  for n, room, stride in [(52, 10, 3), (52, 7, 7), (30, 29, 1), (9, 4, 2)]:
    spans = squad.doc_spans_for(n, room, stride)
    best = squad.max_context_span(spans, n)
    for i in range(len(spans)):
      for pos in range(spans[i].start, spans[i].start + spans[i].length):
        assert (best[pos] == i) == squad.check_is_max_context(spans, i, pos)


def test_question_truncation_is_reported(tmp_path):
  data = squad_helpers.v1_data()
  path = squad_helpers.write_squad(tmp_path / "squad.json", data)
  tok, _ = _tokenizers(tmp_path, data)
  examples, _ = squad.read_squad_examples(str(path), False)
  features, report = squad.convert_examples_to_features(examples, tok, 32, 8, 4,
                                                        False, log_examples=0)
  long_questions = {ex.qas_id for ex in examples if len(tok.tokenize(ex.question_text)) > 4}
  assert set(report.truncated_questions) == long_questions and long_questions
  for f in features:
    assert f.tokens[0] == "[CLS]" and f.tokens.index("[SEP]") <= 5


def test_tfrecords_have_original_feature_names(tmp_path):
  data = squad_helpers.v2_data()
  path = squad_helpers.write_squad(tmp_path / "squad.json", data)
  tok, _ = _tokenizers(tmp_path, data)
  for is_training in (True, False):
    examples, _ = squad.read_squad_examples(str(path), is_training, True)
    features, _ = squad.convert_examples_to_features(examples, tok, 32, 8, 12,
                                                     is_training, log_examples=0)
    out = str(tmp_path / f"{is_training}.tf_record")
    assert squad.write_features(features, is_training, out, pad_to_multiple=8) % 8 == 0
    records = list(tf.data.TFRecordDataset(out).as_numpy_iterator())
    first = tf.train.Example.FromString(records[0]).features.feature
    expected = {"unique_ids", "input_ids", "input_mask", "segment_ids"}
    if is_training:
      expected |= {"start_positions", "end_positions", "is_impossible"}
    assert set(first) == expected
    assert first["unique_ids"].int64_list.value[0] == squad.FIRST_UNIQUE_ID
    assert list(first["input_ids"].int64_list.value) == features[0].input_ids
    # Padding records (for TPU batches) carry unique_id 0.
    last = tf.train.Example.FromString(records[-1]).features.feature
    assert (len(records) == len(features) or
            last["unique_ids"].int64_list.value[0] == 0)
    batches = list(squad.make_squad_dataset(out, 32, 4, is_training=False,
                                            dynamic_padding_multiple=8,
                                            with_positions=is_training))
    assert batches[0]["input_ids"].dtype == tf.int32
    ids = np.concatenate([b["unique_ids"].numpy() for b in batches])
    assert len(ids) == len(records)
    if is_training:
      starts = np.concatenate([b["start_positions"].numpy() for b in batches])
      assert list(starts[:len(features)]) == [f.start_position for f in features]


def _expect_error(tmp_path, data, match, is_training=True, version_2=False,
                  raw=None, **kwargs):
  path = tmp_path / "bad.json"
  if raw is not None:
    path.write_text(raw, encoding="utf-8")
  else:
    squad_helpers.write_squad(path, data)
  with pytest.raises(DataError, match=match) as info:
    squad.read_squad_examples(str(path), is_training, version_2, **kwargs)
  assert str(path) in str(info.value)


def test_bad_files_name_the_place(tmp_path):
  _expect_error(tmp_path, None, "not valid UTF-8 JSON", raw="{not json")
  _expect_error(tmp_path, None, "no 'data' field", raw=json.dumps({"version": "1.1"}))
  data = squad_helpers.v1_data()
  del data[1]["paragraphs"][0]["context"]
  _expect_error(tmp_path, data, r"article 1 \('Café'\), paragraph 0: .*'context'")
  data = squad_helpers.v1_data()
  del data[0]["paragraphs"][0]["qas"][1]["question"]
  _expect_error(tmp_path, data, "question id 'r2'.*'question'")
  data = squad_helpers.v1_data()
  data[2]["paragraphs"][0]["qas"][0]["answers"].append({"text": "x", "answer_start": 0})
  _expect_error(tmp_path, data, "'l1'.*exactly 1 answer, found 2")
  data = squad_helpers.v1_data()
  data[2]["paragraphs"][0]["qas"][1]["id"] = "r1"
  _expect_error(tmp_path, data, "'r1'.*used twice", is_training=False)
  data = squad_helpers.v1_data()
  del data[0]["paragraphs"][0]["qas"][0]["answers"]
  _expect_error(tmp_path, data, "'r1'.*no \"answers\".*--do_eval", is_training=False,
                require_answers=True)
  data = squad_helpers.v1_data()
  data[1]["paragraphs"][0]["context"] = " \n\t "
  _expect_error(tmp_path, data, "context is empty.*c1, c2, c3", is_training=False)


def test_version_mismatch(tmp_path):
  # v2.0 data without --version_2_with_negative, for training and prediction.
  for is_training in (True, False):
    _expect_error(tmp_path, squad_helpers.v2_data(),
                  "'r5'.*is_impossible is true.*--version_2_with_negative",
                  is_training=is_training)
  # v1.1 training data with --version_2_with_negative.
  _expect_error(tmp_path, squad_helpers.v1_data(),
                "'r1'.*no \"is_impossible\".*drop --version_2_with_negative",
                version_2=True)


def test_mismatched_answers_are_skipped_and_counted(tmp_path):
  data = squad_helpers.v1_data()
  qas = data[0]["paragraphs"][0]["qas"]
  # Points at other words ("largest river"), which do not contain "Brazil".
  qas[0]["answers"][0]["answer_start"] = data[0]["paragraphs"][0]["context"].index(
      "largest")
  qas[1]["answers"][0]["answer_start"] = 10_000  # beyond the context
  path = squad_helpers.write_squad(tmp_path / "squad.json", data)
  examples, report = squad.read_squad_examples(str(path), True)
  assert report.skipped_answers == ["r1", "r2"]
  assert report.num_questions == 12 and len(examples) == 10
  # Prediction does not look at the answers: nothing is skipped.
  examples, report = squad.read_squad_examples(str(path), False)
  assert len(examples) == 12 and not report.skipped_answers


def test_context_without_tokens_fails_before_conversion(tmp_path):
  data = squad_helpers.v1_data()
  data[1]["paragraphs"][0]["context"] = "\x00\x01 \ufffd"
  for q in data[1]["paragraphs"][0]["qas"]:
    q["answers"] = [{"text": "\x00\x01", "answer_start": 0}]
  path = squad_helpers.write_squad(tmp_path / "squad.json", data)
  tok, _ = _tokenizers(tmp_path, squad_helpers.v1_data())
  examples, _ = squad.read_squad_examples(str(path), False)
  with pytest.raises(DataError, match="without any token.*c1, c2, c3"):
    squad.convert_examples_to_features(examples, tok, 32, 8, 12, False)
  # The garbage collector, paused for the conversion, runs again after an error.
  assert gc.isenabled()


def test_reading_and_conversion_pause_the_garbage_collector(tmp_path, monkeypatch):
  data = squad_helpers.v1_data()
  path = squad_helpers.write_squad(tmp_path / "squad.json", data)
  tok, _ = _tokenizers(tmp_path, data)
  seen = []
  loads = json.loads
  monkeypatch.setattr(squad.json, "loads", lambda *a, **k: (
      seen.append(("read", gc.isenabled())), loads(*a, **k))[1])
  tokenize = tok.tokenize
  monkeypatch.setattr(tok, "tokenize", lambda text: (
      seen.append(("convert", gc.isenabled())), tokenize(text))[1])
  examples, _ = squad.read_squad_examples(str(path), False)
  squad.convert_examples_to_features(examples, tok, 32, 8, 4, False, log_examples=0)
  assert seen and {kind for kind, _ in seen} == {"read", "convert"}
  assert not any(enabled for _, enabled in seen) and gc.isenabled()
