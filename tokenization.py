# coding=utf-8
"""Tokenization: the original BERT API, SentencePiece, and an exact fast batch path.

The public names and behaviour are those of google-research/bert's tokenization.py
(FullTokenizer, BasicTokenizer, WordpieceTokenizer, convert_to_unicode, ...), so code
written against the original module (`tokenization.convert_to_unicode(line[3])`) works
unchanged. Two deliberate differences, both about bad input: bytes that are not UTF-8
raise instead of being silently dropped, and a missing or empty vocab file raises an
error naming the file.

Added:
  SentencePieceTokenizer: the FullTokenizer interface over a SentencePiece model,
    with ALBERT's text preprocessing.
  create_tokenizer: picks WordPiece or SentencePiece from the flags a script has.
  BatchTokenizer: bulk text -> ids conversion that returns exactly what
    `tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text))` returns, much faster,
    as lists or as flat numpy arrays (tokenize_to_ragged_ids).
  shared_batch_tokenizer: a BatchTokenizer sharing one word cache per tokenizer.

This module imports TensorFlow only to read `gs://`-style paths.
"""

import collections
import itertools
import os
import re
import unicodedata
import weakref
from typing import Dict, List, Sequence, Tuple

import numpy as np

from native import wordpiece as native_wordpiece

SPIECE_UNDERLINE = u"\u2581"

# Model names of Google's released checkpoints, used to catch a --do_lower_case
# that disagrees with how the checkpoint was pre-trained.
_LOWER_CASED_MODELS = (
    "uncased_L-24_H-1024_A-16",
    "uncased_L-12_H-768_A-12",
    "multilingual_L-12_H-768_A-12",
    "chinese_L-12_H-768_A-12",
)
_CASED_MODELS = (
    "cased_L-12_H-768_A-12",
    "cased_L-24_H-1024_A-16",
    "multi_cased_L-12_H-768_A-12",
)


def validate_case_matches_checkpoint(do_lower_case, init_checkpoint):
  """Checks whether the casing config is consistent with the checkpoint name.

  The casing is not stored in bert_config.json, so, like the original, this guesses
  it from the directory name of Google's released checkpoints.

  Args:
    do_lower_case: bool, the value of --do_lower_case.
    init_checkpoint: str or None, the value of --init_checkpoint.

  Returns:
    None.

  Raises:
    ValueError: if the checkpoint is a known cased model and do_lower_case is True,
      or a known uncased model and do_lower_case is False.
  """
  if not init_checkpoint:
    return
  match = re.match("^.*?([A-Za-z0-9_-]+)/bert_model.ckpt", init_checkpoint)
  if match is None:
    return
  model_name = match.group(1)

  if model_name in _LOWER_CASED_MODELS and not do_lower_case:
    actual_flag, case_name, opposite_flag = "False", "lowercased", "True"
  elif model_name in _CASED_MODELS and do_lower_case:
    actual_flag, case_name, opposite_flag = "True", "cased", "False"
  else:
    return
  raise ValueError(
      "You passed in `--do_lower_case=%s` with `--init_checkpoint=%s`. "
      "However, `%s` seems to be a %s model, so you "
      "should pass in `--do_lower_case=%s` so that the fine-tuning matches "
      "how the model was pre-training. If this error is wrong, please "
      "just comment out this check." %
      (actual_flag, init_checkpoint, model_name, case_name, opposite_flag))


def _decode_utf8(text):
  """Decodes bytes as UTF-8, raising a ValueError that says where it is not UTF-8."""
  try:
    return text.decode("utf-8")
  except UnicodeDecodeError as e:
    raise ValueError(
        "Input is not valid UTF-8: byte 0x%02x at position %d cannot be decoded "
        "(%s); expected UTF-8 encoded text." %
        (text[e.start], e.start, e.reason)) from None


def convert_to_unicode(text):
  """Converts `text` to Unicode (if it's not already), assuming UTF-8 input.

  Args:
    text: str or bytes.

  Returns:
    The text as str.

  Raises:
    ValueError: if `text` is bytes that are not valid UTF-8, or neither str nor
      bytes.
  """
  if isinstance(text, str):
    return text
  if isinstance(text, bytes):
    return _decode_utf8(text)
  raise ValueError("Unsupported string type: %s" % (type(text)))


def printable_text(text):
  """Returns text encoded in a way suitable for print or logging.

  Args:
    text: str or bytes.

  Returns:
    The text as str (on Python 3 both cases are str).

  Raises:
    ValueError: if `text` is bytes that are not valid UTF-8, or neither str nor
      bytes.
  """
  return convert_to_unicode(text)


def _is_remote_path(path):
  """True for paths (gs://, s3://, hdfs://...) that only tf.io.gfile can open."""
  return "://" in str(path)


def _read_file_bytes(path, what):
  """Reads a whole local or tf.io.gfile-readable file.

  Args:
    path: file path or URL.
    what: description for error messages, e.g. "vocab file".

  Returns:
    The file contents as bytes.

  Raises:
    FileNotFoundError: if the file does not exist.
  """
  if _is_remote_path(path):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    if not tf.io.gfile.exists(path):
      raise FileNotFoundError("%s not found: %s" % (what, path))
    with tf.io.gfile.GFile(path, "rb") as f:
      return f.read()
  if not os.path.isfile(path):
    raise FileNotFoundError("%s not found: %s" % (what, path))
  with open(path, "rb") as f:
    return f.read()


def load_vocab(vocab_file):
  """Loads a vocabulary file (one token per line) into an ordered dictionary.

  Like the original, each line is stripped of surrounding whitespace and the line
  number is the id (a repeated token keeps its last id, but still uses up an id).

  Args:
    vocab_file: path to the vocab file (local or any tf.io.gfile URL).

  Returns:
    collections.OrderedDict mapping token (str) -> id (int).

  Raises:
    FileNotFoundError: if the file does not exist.
    ValueError: if the file is empty or a line is not valid UTF-8.
  """
  data = _read_file_bytes(vocab_file, "vocab file")
  vocab = collections.OrderedDict()
  # Split only on \n, like the original's readline(): a stray \r or \x0c inside a
  # line must not shift the ids of the tokens after it.
  lines = data.split(b"\n")
  if lines[-1] == b"":
    lines.pop()
  for index, raw_line in enumerate(lines):
    try:
      token = raw_line.decode("utf-8")
    except UnicodeDecodeError as e:
      raise ValueError("%s, line %d: not valid UTF-8 (byte 0x%02x at column %d); "
                       "expected one UTF-8 token per line." %
                       (vocab_file, index + 1, raw_line[e.start], e.start + 1)) from None
    vocab[token.strip()] = index
  if not vocab:
    raise ValueError("%s: vocab file is empty; expected one token per line "
                     "(e.g. BERT's vocab.txt)." % (vocab_file,))
  return vocab


def convert_by_vocab(vocab, items):
  """Converts a sequence of [tokens|ids] using the vocab.

  Args:
    vocab: dict mapping item -> converted item.
    items: sequence of keys of `vocab`.

  Returns:
    list of converted items.
  """
  return [vocab[item] for item in items]


def convert_tokens_to_ids(vocab, tokens):
  """Converts tokens to ids.

  Args:
    vocab: dict token -> id.
    tokens: sequence of tokens.

  Returns:
    list of int ids.
  """
  return convert_by_vocab(vocab, tokens)


def convert_ids_to_tokens(inv_vocab, ids):
  """Converts ids to tokens.

  Args:
    inv_vocab: dict id -> token.
    ids: sequence of int ids.

  Returns:
    list of tokens.
  """
  return convert_by_vocab(inv_vocab, ids)


def whitespace_tokenize(text):
  """Runs basic whitespace cleaning and splitting on a piece of text.

  Args:
    text: str.

  Returns:
    list of the whitespace-separated words of `text`.
  """
  return text.split()


class FullTokenizer(object):
  """Runs end-to-end tokenization: BasicTokenizer then WordpieceTokenizer."""

  def __init__(self, vocab_file, do_lower_case=True):
    """Loads the vocab and builds the two stages.

    Args:
      vocab_file: path to a BERT vocab.txt.
      do_lower_case: whether to lower-case and strip accents (uncased models).
    """
    self.vocab = load_vocab(vocab_file)
    self.inv_vocab = {v: k for k, v in self.vocab.items()}
    self.do_lower_case = do_lower_case
    self.basic_tokenizer = BasicTokenizer(do_lower_case=do_lower_case)
    self.wordpiece_tokenizer = WordpieceTokenizer(vocab=self.vocab)

  def tokenize(self, text):
    """Tokenizes text into word pieces.

    Args:
      text: str (or UTF-8 bytes).

    Returns:
      list of word-piece strings, all in the vocab (or the unknown token).
    """
    split_tokens = []
    for token in self.basic_tokenizer.tokenize(text):
      split_tokens.extend(self.wordpiece_tokenizer.tokenize(token))
    return split_tokens

  def convert_tokens_to_ids(self, tokens):
    """Converts word pieces to ids.

    Args:
      tokens: sequence of vocab tokens.

    Returns:
      list of int ids.
    """
    return convert_by_vocab(self.vocab, tokens)

  def convert_ids_to_tokens(self, ids):
    """Converts ids to word pieces.

    Args:
      ids: sequence of int ids.

    Returns:
      list of tokens.
    """
    return convert_by_vocab(self.inv_vocab, ids)


# ASCII characters BasicTokenizer removes (control characters other than \t \n \r)
# or turns into a space, for the ASCII fast path in BasicTokenizer.tokenize.
_ASCII_CLEAN_TABLE = {cp: None for cp in itertools.chain(range(0, 32), [127])}
_ASCII_CLEAN_TABLE.update({ord("\t"): " ", ord("\n"): " ", ord("\r"): " "})
# One ASCII punctuation character, or a run of other non-space characters.
_ASCII_PUNC_SPLIT_RE = re.compile(r"[!-/:-@\[-`{-~]|[^ !-/:-@\[-`{-~]+")


class BasicTokenizer(object):
  """Runs basic tokenization (punctuation splitting, lower casing, etc.)."""

  def __init__(self, do_lower_case=True):
    """Constructs a BasicTokenizer.

    Args:
      do_lower_case: Whether to lower case the input and strip accents.
    """
    self.do_lower_case = do_lower_case

  def tokenize(self, text):
    """Tokenizes a piece of text into words and punctuation.

    Args:
      text: str (or UTF-8 bytes).

    Returns:
      list of str tokens.
    """
    text = convert_to_unicode(text)
    if text.isascii() and type(self) is BasicTokenizer:  # pylint: disable=unidiomatic-typecheck
      # Pure ASCII has no CJK, no accents and only ASCII punctuation, so (at most)
      # one translate and one regex give what the general path below gives. Skipped
      # for subclasses, which may override the private steps.
      if not text.isprintable():  # printable ASCII (0x20-0x7e) has nothing to clean
        text = text.translate(_ASCII_CLEAN_TABLE)
      if self.do_lower_case:
        text = text.lower()
      return _ASCII_PUNC_SPLIT_RE.findall(text)

    text = self._clean_text(text)
    # Added by the original on 2018-11-01 for the multilingual and Chinese models;
    # applied to every model since English vocabs hold few CJK characters anyway.
    text = self._tokenize_chinese_chars(text)
    split_tokens = []
    for token in whitespace_tokenize(text):
      if self.do_lower_case:
        token = token.lower()
        token = self._run_strip_accents(token)
      split_tokens.extend(self._run_split_on_punc(token))
    # Lower-casing or accent stripping can leave empty tokens: join and re-split.
    return whitespace_tokenize(" ".join(split_tokens))

  def _run_strip_accents(self, text):
    """Strips accents (combining marks, category Mn) after NFD decomposition."""
    text = unicodedata.normalize("NFD", text)
    return "".join(c for c in text if unicodedata.category(c) != "Mn")

  def _run_split_on_punc(self, text):
    """Splits text so every punctuation character is a token of its own."""
    output = []
    current = []
    for char in text:
      if _is_punctuation(char):
        if current:
          output.append("".join(current))
          current = []
        output.append(char)
      else:
        current.append(char)
    if current:
      output.append("".join(current))
    return output

  def _tokenize_chinese_chars(self, text):
    """Adds whitespace around any CJK character."""
    output = []
    for char in text:
      if self._is_chinese_char(ord(char)):
        output.append(" ")
        output.append(char)
        output.append(" ")
      else:
        output.append(char)
    return "".join(output)

  def _is_chinese_char(self, cp):
    """Checks whether the code point `cp` is a CJK Unified Ideograph.

    Hangul, Hiragana and Katakana are not included: those scripts write
    space-separated words and are tokenized like any other language.
    """
    return ((0x4E00 <= cp <= 0x9FFF) or
            (0x3400 <= cp <= 0x4DBF) or
            (0x20000 <= cp <= 0x2A6DF) or
            (0x2A700 <= cp <= 0x2B73F) or
            (0x2B740 <= cp <= 0x2B81F) or
            (0x2B820 <= cp <= 0x2CEAF) or
            (0xF900 <= cp <= 0xFAFF) or
            (0x2F800 <= cp <= 0x2FA1F))

  def _clean_text(self, text):
    """Removes NUL, U+FFFD and control characters; maps whitespace to spaces."""
    output = []
    for char in text:
      cp = ord(char)
      if cp == 0 or cp == 0xFFFD or _is_control(char):
        continue
      output.append(" " if _is_whitespace(char) else char)
    return "".join(output)


class WordpieceTokenizer(object):
  """Runs WordPiece tokenization (greedy longest-match-first)."""

  def __init__(self, vocab, unk_token="[UNK]", max_input_chars_per_word=200):
    """Constructs a WordpieceTokenizer.

    Args:
      vocab: dict (or set) of word pieces; continuation pieces start with "##".
      unk_token: token emitted for a word that cannot be split into pieces.
      max_input_chars_per_word: words longer than this become `unk_token`.
    """
    self.vocab = vocab
    self.unk_token = unk_token
    self.max_input_chars_per_word = max_input_chars_per_word

  def tokenize(self, text):
    """Tokenizes a piece of text into its word pieces.

    For example, "unaffable" -> ["un", "##aff", "##able"].

    Args:
      text: a single token or whitespace separated tokens, already passed
        through BasicTokenizer.

    Returns:
      list of word pieces.
    """
    text = convert_to_unicode(text)
    vocab = self.vocab
    output_tokens = []
    for token in whitespace_tokenize(text):
      n = len(token)
      if n > self.max_input_chars_per_word:
        output_tokens.append(self.unk_token)
        continue
      if token in vocab:  # what the greedy loop below tries first
        output_tokens.append(token)
        continue
      sub_tokens = []
      start = 0
      while start < n:
        end = n
        cur_substr = None
        while start < end:
          substr = token[start:end]
          if start > 0:
            substr = "##" + substr
          if substr in vocab:
            cur_substr = substr
            break
          end -= 1
        if cur_substr is None:
          sub_tokens = None
          break
        sub_tokens.append(cur_substr)
        start = end
      if sub_tokens is None:
        output_tokens.append(self.unk_token)
      else:
        output_tokens.extend(sub_tokens)
    return output_tokens


def _is_whitespace(char):
  """Checks whether `char` is a whitespace character (space, \\t, \\n, \\r, Zs)."""
  # \t, \n and \r are control characters but are generally meant as whitespace.
  if char in (" ", "\t", "\n", "\r"):
    return True
  return unicodedata.category(char) == "Zs"


def _is_control(char):
  """Checks whether `char` is a control character (Cc or Cf, but not \\t \\n \\r)."""
  if char in ("\t", "\n", "\r"):
    return False
  return unicodedata.category(char) in ("Cc", "Cf")


def _is_punctuation(char):
  """Checks whether `char` is punctuation (Unicode P* or any ASCII non-alnum symbol)."""
  cp = ord(char)
  # "^", "$", "`" and the like are not Unicode punctuation, but every non
  # letter/digit ASCII character is treated as punctuation for consistency.
  if (33 <= cp <= 47) or (58 <= cp <= 64) or (91 <= cp <= 96) or (123 <= cp <= 126):
    return True
  return unicodedata.category(char).startswith("P")


# --------------------------------------------------------------------------------
# SentencePiece
# --------------------------------------------------------------------------------


def preprocess_text(inputs, remove_space=True, lower=False):
  """ALBERT's text normalisation before SentencePiece encoding.

  Args:
    inputs: str (or UTF-8 bytes).
    remove_space: collapse runs of whitespace into one space and strip the ends.
    lower: lower-case, and strip accents (NFKD then drop combining marks).

  Returns:
    The normalised str.
  """
  outputs = convert_to_unicode(inputs)
  if remove_space:
    outputs = " ".join(outputs.strip().split())
  # LaTeX-style quotes (common in SQuAD/Wikipedia dumps) mean a plain double quote.
  outputs = outputs.replace("``", '"').replace("''", '"')
  if lower:
    outputs = unicodedata.normalize("NFKD", outputs)
    outputs = "".join(c for c in outputs if not unicodedata.combining(c))
    outputs = outputs.lower()
  return outputs


def encode_pieces(sp_model, text, sample=False):
  """Segments text into SentencePiece pieces, ALBERT style.

  A piece like "▁1999," is re-split into "▁1999" and "," so that numbers followed
  by a comma get the same pieces as numbers alone.

  Args:
    sp_model: a sentencepiece.SentencePieceProcessor.
    text: str, already preprocessed.
    sample: sample a segmentation (subword regularisation) instead of the best one.

  Returns:
    list of str pieces.
  """
  if sample:
    pieces = sp_model.SampleEncodeAsPieces(text, 64, 0.1)
  else:
    pieces = sp_model.EncodeAsPieces(text)
  new_pieces = []
  for piece in pieces:
    if len(piece) > 1 and piece[-1] == "," and piece[-2].isdigit():
      cur_pieces = sp_model.EncodeAsPieces(piece[:-1].replace(SPIECE_UNDERLINE, ""))
      # Re-encoding adds a word-start marker the original piece did not have.
      if piece[0] != SPIECE_UNDERLINE and cur_pieces and cur_pieces[0][0] == SPIECE_UNDERLINE:
        if len(cur_pieces[0]) == 1:
          cur_pieces = cur_pieces[1:]
        else:
          cur_pieces[0] = cur_pieces[0][1:]
      cur_pieces.append(piece[-1])
      new_pieces.extend(cur_pieces)
    else:
      new_pieces.append(piece)
  return new_pieces


class SentencePieceTokenizer(object):
  """The FullTokenizer interface over a SentencePiece model (ALBERT-style models).

  tokenize() applies ALBERT's preprocess_text (whitespace collapsing, `` and '' to ",
  and, when do_lower_case, NFKD accent stripping and lower-casing) and then
  encode_pieces().
  """

  def __init__(self, spm_model_file, do_lower_case=True):
    """Loads the SentencePiece model.

    Args:
      spm_model_file: path to a SentencePiece .model file (local or gfile URL).
      do_lower_case: lower-case and strip accents before encoding.

    Raises:
      FileNotFoundError: if the file does not exist.
      ValueError: if the file is not a SentencePiece model.
    """
    import sentencepiece as spm  # pylint: disable=g-import-not-at-top
    proto = _read_file_bytes(spm_model_file, "SentencePiece model file")
    self.sp_model = spm.SentencePieceProcessor()
    try:
      self.sp_model.LoadFromSerializedProto(proto)
    except (RuntimeError, OSError) as e:
      raise ValueError("%s: not a SentencePiece model file (%s); expected the .model "
                       "file written by SentencePieceTrainer." % (spm_model_file, e)) from None
    self.do_lower_case = do_lower_case
    self.vocab = collections.OrderedDict(
        (self.sp_model.IdToPiece(i), i) for i in range(self.sp_model.GetPieceSize()))
    self.inv_vocab = {v: k for k, v in self.vocab.items()}

  def tokenize(self, text):
    """Tokenizes text into SentencePiece pieces.

    Args:
      text: str (or UTF-8 bytes).

    Returns:
      list of str pieces.
    """
    text = preprocess_text(text, lower=self.do_lower_case)
    return encode_pieces(self.sp_model, text)

  def convert_tokens_to_ids(self, tokens):
    """Converts pieces to ids (unknown pieces get the model's unk id).

    Args:
      tokens: sequence of str pieces.

    Returns:
      list of int ids.
    """
    return [self.sp_model.PieceToId(printable_text(token)) for token in tokens]

  def convert_ids_to_tokens(self, ids):
    """Converts ids to pieces.

    Args:
      ids: sequence of int ids.

    Returns:
      list of str pieces.
    """
    return [self.sp_model.IdToPiece(int(i)) for i in ids]


def create_tokenizer(vocab_file=None, do_lower_case=True, spm_model_file=None):
  """Builds the tokenizer a script's flags ask for.

  Args:
    vocab_file: BERT WordPiece vocab.txt; used when spm_model_file is not given.
    do_lower_case: whether the model is uncased.
    spm_model_file: SentencePiece model; takes precedence over vocab_file.

  Returns:
    A SentencePieceTokenizer or a FullTokenizer.

  Raises:
    ValueError: if neither file is given.
  """
  if spm_model_file:
    return SentencePieceTokenizer(spm_model_file, do_lower_case=do_lower_case)
  if vocab_file:
    return FullTokenizer(vocab_file, do_lower_case=do_lower_case)
  raise ValueError("No tokenizer files given: pass vocab_file (a WordPiece vocab.txt, "
                   "--vocab_file) or spm_model_file (a SentencePiece .model, "
                   "--spm_model_file).")


# --------------------------------------------------------------------------------
# Fast batch path
# --------------------------------------------------------------------------------

# Characters that str.split() treats as separators but BasicTokenizer deletes
# (control characters), so "a\x1cb" is one word to BERT and two to str.split().
_SPLIT_UNSAFE_CHARS = "\x0b\x0c\x1c\x1d\x1e\x1f\x85"
_SPLIT_UNSAFE_RE = re.compile("[%s]" % _SPLIT_UNSAFE_CHARS)


_TEXTS_PER_CHUNK = 1 << 17  # bounds the memory of the per-word arrays
_TEXTS_PER_SPLIT = 256  # texts split and numbered at a time (see _ragged_chunk)


def _check_batch(texts):
  if isinstance(texts, (str, bytes)):
    raise ValueError("BatchTokenizer expects a sequence of texts, got a single %s."
                     % type(texts).__name__)


def _ragged_from_lists(id_lists):
  """(flat int64 values, int64 row lengths) of a list of id lists."""
  row_lengths = np.fromiter(map(len, id_lists), np.int64, len(id_lists))
  values = np.fromiter(itertools.chain.from_iterable(id_lists), np.int64,
                       int(row_lengths.sum()))
  return values, row_lengths


def segment_index(starts, lengths):
  """Positions of consecutive segments, concatenated: the index that gathers them.

  Args:
    starts: int array [N], where each segment starts.
    lengths: int array [N], each segment's length (0 allowed).

  Returns:
    int64 array [sum(lengths)]: starts[0] .. starts[0] + lengths[0] - 1, then the
    same for segment 1, and so on; `source[segment_index(...)]` concatenates
    source[starts[i]:starts[i] + lengths[i]] for all i.
  """
  starts = np.asarray(starts, dtype=np.int64)
  lengths = np.asarray(lengths, dtype=np.int64)
  smallest = lengths.min() if lengths.size else 1
  if smallest < 0:
    raise ValueError(f"segment lengths must be >= 0, got {smallest}")
  if smallest == 0:
    keep = lengths > 0
    starts, lengths = starts[keep], lengths[keep]
  if not lengths.size:
    return np.zeros(0, dtype=np.int64)
  # Steps of +1 inside a segment and a jump to the next start at each boundary,
  # summed up: one cumsum instead of an arange plus a repeat of the offsets.
  ends = np.cumsum(lengths)
  index = np.ones(int(ends[-1]), dtype=np.int64)
  index[0] = starts[0]
  index[ends[:-1]] = starts[1:] - (starts[:-1] + lengths[:-1] - 1)
  return np.cumsum(index, out=index)


def _is_word_decomposable(tokenizer):
  """True if `tokenizer` is this module's unmodified WordPiece FullTokenizer."""
  # pylint: disable=unidiomatic-typecheck
  return (type(tokenizer) is FullTokenizer and
          type(tokenizer.basic_tokenizer) is BasicTokenizer and
          type(tokenizer.wordpiece_tokenizer) is WordpieceTokenizer)


def _native_wordpiece(tok):
  """The C++ tokenizer for FullTokenizer `tok`, or False where it cannot serve."""
  lib = native_wordpiece.load()
  wordpiece = tok.wordpiece_tokenizer
  if (lib is None or wordpiece.vocab is not tok.vocab or
      wordpiece.unk_token not in tok.vocab):
    return False
  try:
    return native_wordpiece.NativeWordpiece(
        tok.vocab, tok.basic_tokenizer.do_lower_case, wordpiece.max_input_chars_per_word,
        tok.vocab[wordpiece.unk_token], lib)
  except ValueError:  # a vocab the C++ tables do not take
    return False


class BatchTokenizer(object):
  """Converts many texts at once, with exactly the reference tokenizer's output.

  For this module's FullTokenizer the result is computed from a cache keyed by
  whitespace-separated word (`text.split()`). Exactness is guaranteed by
  construction, not by testing alone: the cache is filled by calling the wrapped
  tokenizer's two stages on each new word (except where their result is plain: a
  word of ASCII letters and digits that is in the vocab, lower-cased for uncased
  models, is that one token), and FullTokenizer's output for a text is the
  concatenation of its outputs for the text's words. That holds because every step
  of BasicTokenizer and WordpieceTokenizer acts on single characters (cleaning, CJK
  spacing) or on single whitespace-separated words (lower-casing, accent stripping,
  punctuation splitting, word pieces), and none of them joins two words. The one
  exception is a character that str.split() treats as a separator but _clean_text
  deletes (\\x0b \\x0c \\x1c-\\x1f \\x85): deleting it would join its neighbours into
  one word. Texts containing any of those are routed to the wrapped tokenizer
  unchanged (counted in `num_slow_path_texts`).

  On English corpora most words repeat, so after a short warm-up nearly every word
  is a dict hit: about 10x the reference's speed on a cold cache and 15-35x warm on
  the GLUE/SQuAD/Emotion texts of bench/bench_tokenization.py. tensorflow_text's
  FastBertTokenizer, once its output is turned into Python lists, sits between the
  two, and it differs from the reference on some lines (21 of 109,312 there with
  lower-casing), so it is not used.

  tokenize_to_ragged_ids goes further for bulk conversion. When the C++ tokenizer
  (native/wordpiece.cc, built by scripts/setup_env.sh) is there, it tokenizes every
  all-ASCII text, on all cores; the others (and every text when it is not built)
  take the Python path, which splits the whole batch, looks each distinct word up
  once and assembles the ids with numpy, so its Python work grows with the number
  of distinct words rather than of words. The C++ tokenizer is tested against the
  reference like the Python path (tests/test_tokenization.py).

  Any other tokenizer (SentencePieceTokenizer, subclasses, foreign objects with the
  FullTokenizer interface) is simply called text by text.
  """

  def __init__(self, tokenizer, max_cache_words=1_000_000, use_native=True):
    """Wraps a tokenizer.

    Args:
      tokenizer: an object with tokenize(text) and convert_tokens_to_ids(tokens).
      max_cache_words: cap on the number of cached words (memory bound); words
        beyond it are computed on every occurrence.
      use_native: let tokenize_to_ragged_ids use the C++ tokenizer when it is
        built and the tokenizer is this module's FullTokenizer.
    """
    self.tokenizer = tokenizer
    self.max_cache_words = max_cache_words
    self.use_word_cache = _is_word_decomposable(tokenizer)
    self.use_native = use_native
    self.num_slow_path_texts = 0
    self._ids_cache: Dict[str, Tuple[int, ...]] = {}
    self._tokens_cache: Dict[str, Tuple[str, ...]] = {}
    self._piece_ids_cache: Dict[str, Tuple[int, ...]] = {}
    self._native = None  # a NativeWordpiece, False when it cannot be used

  def native_tokenizer(self):
    """The C++ tokenizer for this tokenizer's vocab and settings, or None.

    None when use_native is off, the library is not built (`python -m native`),
    the tokenizer is not this module's FullTokenizer, or its vocab is one the C++
    tables do not take (a WordPiece vocab other than its own, no unknown token,
    ids outside 0..2**31-1).
    """
    if self._native is None:
      self._native = self.use_native and self.use_word_cache and _native_wordpiece(
          self.tokenizer)
    return self._native or None

  def _word_ids(self, word):
    """Computes (and caches) the ids of one whitespace-free word, as a tuple."""
    tok = self.tokenizer
    vocab = tok.vocab
    wordpiece = tok.wordpiece_tokenizer
    ids = None
    if word.isascii() and word.isalnum():
      # Most words of a corpus: ASCII letters and digits are one basic token (the
      # ASCII path of BasicTokenizer.tokenize has nothing to delete or split),
      # and WordPiece returns a vocab token that fits the length limit whole.
      token = word.lower() if tok.basic_tokenizer.do_lower_case else word
      if len(token) <= wordpiece.max_input_chars_per_word and token in wordpiece.vocab:
        ids = (vocab[token],)
      basic_tokens = (token,)
    else:
      basic_tokens = tok.basic_tokenizer.tokenize(word)
    if ids is None:
      # FullTokenizer.tokenize is WordPiece applied to each basic token, and words
      # such as "paris," "(paris" and "paris." share the basic token "paris": cache
      # WordPiece results per basic token too, so a new word rarely runs WordPiece.
      # The ids are FullTokenizer.convert_tokens_to_ids's (convert_by_vocab).
      piece_cache = self._piece_ids_cache
      ids = []
      for token in basic_tokens:
        piece_ids = piece_cache.get(token)
        if piece_ids is None:
          piece_ids = tuple([vocab[piece] for piece in wordpiece.tokenize(token)])
          if len(piece_cache) < self.max_cache_words:
            piece_cache[token] = piece_ids
        ids.extend(piece_ids)
      ids = tuple(ids)
    # Tuples, not lists: the garbage collector stops tracking tuples of ints, so
    # a large cache does not add to the objects every full collection scans (or
    # bring the next full collection forward).
    if len(self._ids_cache) < self.max_cache_words:
      self._ids_cache[word] = ids
    return ids

  def _word_tokens(self, word):
    """Computes (and caches) the tokens of one whitespace-free word, as a tuple."""
    tokens = tuple(self.tokenizer.tokenize(word))
    if len(self._tokens_cache) < self.max_cache_words:
      self._tokens_cache[word] = tokens
    return tokens

  def _run(self, texts, cache, compute_word, compute_text):
    """Shared per-text loop of tokenize_to_ids and tokenize."""
    _check_batch(texts)
    if not self.use_word_cache:
      return [compute_text(t) for t in texts]
    lookup = cache.__getitem__
    chain = itertools.chain.from_iterable
    unsafe = _SPLIT_UNSAFE_RE.search
    output = []
    for text in texts:
      if not isinstance(text, str):
        text = convert_to_unicode(text)
      if unsafe(text):
        self.num_slow_path_texts += 1
        output.append(compute_text(text))
        continue
      words = text.split()
      try:
        output.append(list(chain(map(lookup, words))))
      except KeyError:
        output.append([x for w in words
                       for x in (cache[w] if w in cache else compute_word(w))])
    return output

  def _text_ids(self, text):
    """Ids of one text from the wrapped tokenizer itself."""
    tok = self.tokenizer
    return tok.convert_tokens_to_ids(tok.tokenize(text))

  def tokenize_to_ragged_ids(self, texts: Sequence[str]
                             ) -> Tuple[np.ndarray, np.ndarray]:
    """Tokenizes and converts many texts to ids held in two flat arrays.

    Args:
      texts: sequence of str (or UTF-8 bytes).

    Returns:
      (values, row_lengths): int64 arrays [total ids] and [len(texts)]. Text i's
      ids are the row_lengths[i] values after the sum(row_lengths[:i]) first
      ones, and equal `tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text))`.
    """
    _check_batch(texts)
    if not self.use_word_cache:
      return _ragged_from_lists([self._text_ids(t) for t in texts])
    texts = list(texts)
    if set(map(type, texts)) - {str}:
      texts = [t if isinstance(t, str) else convert_to_unicode(t) for t in texts]
    native = self.native_tokenizer()
    chunk = self._ragged_chunk if native is None else self._native_chunk
    parts = [chunk(texts[begin:begin + _TEXTS_PER_CHUNK])
             for begin in range(0, len(texts), _TEXTS_PER_CHUNK)]
    if not parts:
      return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if len(parts) == 1:
      return parts[0]
    return (np.concatenate([values for values, _ in parts]),
            np.concatenate([lengths for _, lengths in parts]))

  def _native_chunk(self, texts):
    """tokenize_to_ragged_ids of one chunk of str: C++ for the ASCII texts."""
    values, row_lengths = self._native.tokenize(texts)
    others = np.flatnonzero(row_lengths < 0)
    if not others.size:
      return values, row_lengths
    # The texts that are not all ASCII, through the Python path; then both sets
    # of ids are written to their rows' places.
    other_values, other_lengths = self._ragged_chunk([texts[i] for i in others])
    ascii_rows = np.flatnonzero(row_lengths >= 0)
    row_lengths[others] = other_lengths
    starts = np.cumsum(row_lengths) - row_lengths
    merged = np.empty(values.size + other_values.size, dtype=np.int64)
    merged[segment_index(starts[ascii_rows], row_lengths[ascii_rows])] = values
    merged[segment_index(starts[others], other_lengths)] = other_values
    return merged, row_lengths

  def _ragged_chunk(self, texts):
    """tokenize_to_ragged_ids of one chunk, word-cache path."""
    # Every word is numbered by its first occurrence, each distinct word is
    # looked up (or computed) once, and the ids of all word occurrences are
    # gathered with numpy, so the Python work per word is one dict operation.
    slow_texts = set()
    unsafe_rows = ()
    joined = "".join(texts)
    # A substring test per character is a memchr-like scan, far cheaper than the
    # regex over the whole batch.
    if any(char in joined for char in _SPLIT_UNSAFE_CHARS):
      unsafe_rows = {i for i, text in enumerate(texts) if _SPLIT_UNSAFE_RE.search(text)}
      slow_texts = {texts[i] for i in unsafe_rows}
      self.num_slow_path_texts += len(unsafe_rows)
    del joined
    # One dict operation per word: setdefault returns the position of the word's
    # first occurrence, which is then renumbered densely with numpy. The texts
    # are split a few hundred at a time, so each word is hashed while its string
    # is still in the CPU cache (a fifth faster on SST-2 than splitting all first).
    first_seen = {}
    setdefault = first_seen.setdefault
    position = itertools.count()
    counts, firsts = [], []
    for begin in range(0, len(texts), _TEXTS_PER_SPLIT):
      end = begin + _TEXTS_PER_SPLIT
      words_of = list(map(str.split, texts[begin:end]))
      if unsafe_rows:
        for i in range(begin, min(end, len(texts))):
          if i in unsafe_rows:
            # The whole text becomes one key; it holds a str.split() separator,
            # so no word can be equal to it.
            words_of[i - begin] = [texts[i]]
      per_text = np.fromiter(map(len, words_of), np.int64, len(words_of))
      counts.append(per_text)
      firsts.append(np.fromiter(map(setdefault, itertools.chain.from_iterable(words_of),
                                    position), np.int64, int(per_text.sum())))
    words_per_text = np.concatenate(counts)
    first = np.concatenate(firsts)
    num_words = first.size
    is_first = first == np.arange(num_words)
    word_rows = (np.cumsum(is_first) - 1)[first]  # index of each word in first_seen

    cache = self._ids_cache
    pieces = []
    for word in first_seen:
      ids = cache.get(word)
      if ids is None:
        ids = self._text_ids(word) if word in slow_texts else self._word_ids(word)
      pieces.append(ids)
    piece_values, piece_lengths = _ragged_from_lists(pieces)
    piece_starts = np.cumsum(piece_lengths) - piece_lengths

    ids_per_word = piece_lengths[word_rows]  # [number of words]
    values = piece_values[segment_index(piece_starts[word_rows], ids_per_word)]
    ids_before = np.zeros(num_words + 1, dtype=np.int64)  # ids of the first k words
    np.cumsum(ids_per_word, out=ids_before[1:])
    text_ends = np.cumsum(words_per_text)
    return values, ids_before[text_ends] - ids_before[text_ends - words_per_text]

  def tokenize_to_ids(self, texts: Sequence[str]) -> List[List[int]]:
    """Tokenizes and converts many texts to ids.

    Args:
      texts: sequence of str (or UTF-8 bytes).

    Returns:
      list of id lists, equal to
      `[tokenizer.convert_tokens_to_ids(tokenizer.tokenize(t)) for t in texts]`.
    """
    # Per text rather than through tokenize_to_ragged_ids: chaining the cached
    # tuples reuses their int objects, where the arrays' tolist() would make new
    # ones.
    return self._run(texts, self._ids_cache, self._word_ids, self._text_ids)

  def tokenize(self, texts: Sequence[str]) -> List[List[str]]:
    """Tokenizes many texts.

    Args:
      texts: sequence of str (or UTF-8 bytes).

    Returns:
      list of token lists, equal to `[tokenizer.tokenize(t) for t in texts]`.
    """
    return self._run(texts, self._tokens_cache, self._word_tokens,
                     self.tokenizer.tokenize)


# The word caches (and C++ vocab tables) of each FullTokenizer object, so that the
# conversions of one run (token length report, train, eval and predict files) share
# them. Weak keys let the caches go with their tokenizer; they hold no reference to
# it.
_SHARED_CACHES = weakref.WeakKeyDictionary()


def shared_batch_tokenizer(tokenizer) -> BatchTokenizer:
  """Returns a BatchTokenizer that shares its word cache with earlier ones.

  Every BatchTokenizer returned for the same tokenizer object uses the same cache,
  which assumes the tokenizer's vocab and settings are not changed in between (as
  a single BatchTokenizer does).

  Args:
    tokenizer: an object with tokenize(text) and convert_tokens_to_ids(tokens).

  Returns:
    a BatchTokenizer wrapping `tokenizer`.
  """
  # pylint: disable=protected-access
  batch = BatchTokenizer(tokenizer)
  if batch.use_word_cache:  # this module's FullTokenizer, which takes weak references
    caches = _SHARED_CACHES.get(tokenizer)
    if caches is None:
      batch.native_tokenizer()  # built once: its vocab tables are shared too
      _SHARED_CACHES[tokenizer] = (batch._ids_cache, batch._tokens_cache,
                                   batch._piece_ids_cache, batch._native)
    else:
      (batch._ids_cache, batch._tokens_cache, batch._piece_ids_cache,
       batch._native) = caches
  return batch
