# coding=utf-8
"""The in-graph text encoder against tokenization.FullTokenizer, and the prediction
command's input parsing and output formats."""

import json
import random

import numpy as np
import pytest
import tensorflow as tf

import tokenization
from processors import features
from processors.base import InputExample
from serving import predict as predict_lib
from processors import text_encoder

MULTILINGUAL = [
    "Hello, World! It's a test -- isn't it?",
    "naïve café, résumé and Ångström; ÉCOLE",
    "ΟΔΥΣΣΕΥΣ ΣΟΦΟΣ. Σ ΑΣ'Σ ΑΣ.Β (ΣΑ)",  # Greek capital sigma, final and not
    "İstanbul'da ÇOK güzel; DIŞ ışık",  # Turkish dotted/dotless i
    "中文字符和日本語のテキスト、한국어 문장입니다",
    "Ǆemal ǅ ﬁnance ẞtraße ß",  # titlecase digraphs, ligature, capital sharp s
    "a\u2028b\u2029c\u0085d\u000be\u001cf",  # separators Python splits on
    "zero\u200bwidth\u200djoiner\ufeffbom\u00adsoft",
    "x\u0000y\ufffdz\u0007w",  # NUL, replacement char, BEL
    "e\u0301\u0327 q\u0327\u0301 \u1d165\u1d16d \u0f73",  # combining mark orders
    "emoji 😀👍🏽 family 👨‍👩‍👧 flags 🇫🇷",
    "Ελληνικά, русский ТЕКСТ, עברית, العربية, हिन्दी",
    "a" * 201 + " " + "b" * 200 + " ok",  # 200 characters is the WordPiece limit
    "",
    "   \t  ",
]


def _random_text(rng):
  pools = [range(0x20, 0x7F), range(0xA0, 0x250), range(0x300, 0x370),
           range(0x370, 0x400), range(0x400, 0x460), range(0x4E00, 0x4E40),
           range(0x3040, 0x30FF), range(0xAC00, 0xAC20), range(0x1F300, 0x1F650),
           range(0x2000, 0x2070), range(0, 0x20), range(0x600, 0x660),
           range(0x10000, 0x110000),
           [0x3A3, 0x130, 0x131, 0x345, 0x1E9E, 0x2028, 0x85, 0xFEFF, 0x200B, 0xFFFD,
            0x1D165, 0x1D16D, 0x302E, 0xF73, 0x34F, 0x1C4, 0x1C5, 0xE0001]]
  out = []
  for _ in range(rng.randint(0, 30)):
    cp = rng.choice(rng.choice(pools))
    out.append(chr(0x41 if 0xD800 <= cp <= 0xDFFF else cp))
    if rng.random() < 0.25:
      out.append(" ")
  if rng.random() < 0.05:
    out.append(" " + "ab" * rng.randint(95, 105))  # around the 200-character limit
  return "".join(out)


@pytest.fixture(scope="module")
def texts():
  rng = random.Random(1234)
  return MULTILINGUAL + [_random_text(rng) for _ in range(1500)]


def _write_vocab(path, texts, do_lower_case):
  """A vocab built from the texts' own basic tokens: whole words, prefixes, and
  ##suffixes, so WordPiece both matches and fails."""
  rng = random.Random(7)
  basic = tokenization.BasicTokenizer(do_lower_case=do_lower_case)
  tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
  seen = set(tokens)
  for text in texts:
    for word in basic.tokenize(text):
      choices = [word, word[:max(1, len(word) // 2)], word[:1],
                 "##" + word[len(word) // 2:], "##" + word[-1:]]
      for token in rng.sample(choices, 2):
        if token not in seen:
          seen.add(token)
          tokens.append(token)
  path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
  return path


@pytest.mark.parametrize("do_lower_case", [True, False])
def test_in_graph_ids_equal_full_tokenizer(tmp_path, texts, do_lower_case):
  vocab = _write_vocab(tmp_path / "vocab.txt", texts, do_lower_case)
  asset = tmp_path / "asset.txt"
  text_encoder.write_vocab_asset(str(vocab), str(asset))
  encoder = text_encoder.BertTextEncoder(str(asset), do_lower_case, max_seq_length=24)
  reference = tokenization.FullTokenizer(str(vocab), do_lower_case=do_lower_case)
  tokenize = tf.function(encoder.tokenize_ids, autograph=False)
  got = tokenize(tf.constant(texts)).to_list()
  differing = [(t, reference.tokenize(t)) for t, ids in zip(texts, got)
               if ids != reference.convert_tokens_to_ids(reference.tokenize(t))]
  assert not differing, differing[:3]
  # The sample exercises what it claims: unknown words and the final sigma.
  unk = reference.vocab["[UNK]"]
  assert sum(unk in ids for ids in got) > 10
  if do_lower_case:
    assert "ς" in "".join(reference.tokenize(MULTILINGUAL[2]))

  # Sentence pairs: [CLS] a [SEP] b [SEP], _truncate_seq_pair, segment ids, mask.
  rng = random.Random(5)
  pairs = [(rng.choice(texts), rng.choice(texts + ["", ""])) for _ in range(300)]
  encode = tf.function(encoder.encode, autograph=False)
  ids, mask, segments = [x.numpy() for x in encode(
      tf.constant([a for a, _ in pairs]), tf.constant([b for _, b in pairs]))]
  for row, (a, b) in enumerate(pairs):
    f = features.convert_single_example(99, InputExample("x", a, b, "l"), ["l"], 24,
                                        reference)
    n = sum(f.input_mask)
    assert ids[row, :n].tolist() == f.input_ids[:n], (a, b)
    assert segments[row, :n].tolist() == f.segment_ids[:n]
    assert mask[row].tolist() == f.input_mask[:ids.shape[1]]
    assert not ids[row, n:].any()


def test_truncated_pair_lengths_equal_the_original_rule():
  la, lb = np.meshgrid(np.arange(0, 30), np.arange(0, 30))
  la, lb = la.ravel(), lb.ravel()
  for budget in (1, 5, 13):
    got_a, got_b = text_encoder.truncated_pair_lengths(tf.constant(la), tf.constant(lb),
                                                       budget)
    for a, b, ga, gb in zip(la, lb, got_a.numpy(), got_b.numpy()):
      tokens_a, tokens_b = list(range(a)), list(range(b))
      features._truncate_seq_pair(tokens_a, tokens_b, budget)  # pylint: disable=protected-access
      assert (len(tokens_a), len(tokens_b)) == (ga, gb), (a, b, budget)


def test_vocab_asset_keeps_ids_of_repeated_and_empty_lines(tmp_path):
  vocab = tmp_path / "vocab.txt"
  vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello \nworld\n\nhello\n",
                   encoding="utf-8")
  asset = tmp_path / "asset.txt"
  assert text_encoder.write_vocab_asset(str(vocab), str(asset)) == 2
  lines = asset.read_text(encoding="utf-8").split("\n")
  assert lines[5] == "world" and lines[7] == "hello" and "\t" in lines[4]
  encoder = text_encoder.BertTextEncoder(str(asset), True, 16)
  reference = tokenization.FullTokenizer(str(vocab))
  text = "Hello world HELLO"
  assert encoder.tokenize_ids(tf.constant([text])).to_list()[0] == (
      reference.convert_tokens_to_ids(reference.tokenize(text)))


def test_parse_line_and_output_formats():
  assert predict_lib.parse_line("just one text\n") == ("just one text", None)
  assert predict_lib.parse_line("first\tsecond\tthird\r\n") == ("first",
                                                                "second\tthird")
  prediction = predict_lib.Prediction("ça va", "b", "joy",
                                      np.array([0.25, 0.75], np.float32))
  assert predict_lib.tsv_header(["sad", "joy"]) == "label\tsad\tjoy"
  assert predict_lib.format_tsv(prediction) == "joy\t0.250000\t0.750000"
  record = json.loads(predict_lib.format_jsonl(prediction, ["sad", "joy"]))
  assert record == {"text": "ça va", "text_b": "b", "label": "joy",
                    "probabilities": {"sad": 0.25, "joy": 0.75}}


def test_predictor_errors(tmp_path):
  with pytest.raises(predict_lib.PredictError, match="export directory not found"):
    predict_lib.Predictor(str(tmp_path / "missing"))
  (tmp_path / "empty").mkdir()
  with pytest.raises(predict_lib.PredictError, match="not a SavedModel written"):
    predict_lib.Predictor(str(tmp_path / "empty"))
