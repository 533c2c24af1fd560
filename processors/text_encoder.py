# coding=utf-8
"""In-graph BERT text encoding with exactly the ids of tokenization.FullTokenizer.

tensorflow_text's BertTokenizer / FastBertTokenizer differ from the original
BasicTokenizer on some inputs (accents of some scripts, Unicode categories the two
disagree on, Python's final-sigma lower-casing, characters Python splits on such as
U+2028, canonical reordering of combining marks). This module rebuilds BasicTokenizer
from TensorFlow ops instead, driven by per-codepoint tables computed at export time
from the very Python predicates tokenization.py uses (_is_control, _is_whitespace,
_is_punctuation, _is_chinese_char, str.isspace, str.lower, NFD, category Mn), and
then runs WordPiece (greedy longest-match-first, as the original) as a tf.while_loop
over a vocab table read from a SavedModel asset. Only core TensorFlow ops are used
(no tensorflow_text kernels), so saved_model_cli, TensorFlow Serving and any
TensorFlow 2 runtime can load the SavedModel.

The steps mirror BasicTokenizer.tokenize on a flat array of codepoints:
  1. drop NUL, U+FFFD and control characters; whitespace separates words;
     every CJK ideograph is a word of its own;
  2. (do_lower_case) str.lower per codepoint, with Python's one context rule:
     a capital sigma at the end of a cased word becomes a final sigma;
  3. (do_lower_case) NFD: per-codepoint canonical decomposition, then canonical
     reordering of combining marks (a stable sort by combining class), then
     removal of category Mn;
  4. every punctuation character becomes a word of its own;
  5. words longer than 200 characters become [UNK], the rest go to WordPiece.
"""

import functools
import unicodedata

import numpy as np
import tensorflow as tf

import tokenization

NUM_CODEPOINTS = 0x110000
MAX_INPUT_CHARS_PER_WORD = 200
CAPITAL_SIGMA = 0x3A3
SMALL_SIGMA = 0x3C3
FINAL_SIGMA = 0x3C2

# Bits of the per-codepoint flag table.
DROP = 1  # removed by _clean_text
SPACE = 2  # separates words before lower-casing (_is_whitespace or str.isspace)
CJK = 4  # a word of its own (_is_chinese_char)
CASE_IGNORABLE = 8  # skipped when looking for the final-sigma context
CASED = 16  # a cased letter that is not case-ignorable
MARK_NONSPACING = 32  # category Mn, removed by _run_strip_accents
PUNCT = 64  # _is_punctuation: a word of its own
SEPARATOR = 128  # str.isspace after lower-casing: splits words in the final split


@functools.lru_cache(maxsize=1)
def codepoint_tables():
  """Computes the per-codepoint tables from tokenization.py's own predicates.

  Returns:
    (flags uint8 [0x110000], combining_class uint8 [0x110000],
     lower_keys int64 [K], lower_starts int64 [K], lower_lengths int64 [K],
     lower_values int32 [V]): the flag bits above, unicodedata.combining(), and the
     codepoints whose NFD(lower(c)) is not c itself, with their expansions as
     lower_values[start:start + length].
  """
  basic = tokenization.BasicTokenizer()
  flags = np.zeros(NUM_CODEPOINTS, np.uint8)
  ccc = np.zeros(NUM_CODEPOINTS, np.uint8)
  keys, starts, lengths, values = [], [], [], []
  for cp in range(NUM_CODEPOINTS):
    c = chr(cp)
    f = 0
    if cp == 0 or cp == 0xFFFD or tokenization._is_control(c):  # pylint: disable=protected-access
      f |= DROP
    elif tokenization._is_whitespace(c) or c.isspace():  # pylint: disable=protected-access
      f |= SPACE
    if basic._is_chinese_char(cp):  # pylint: disable=protected-access
      f |= CJK
    # Cased / case-ignorable as CPython's final-sigma rule sees them, probed with
    # str.lower itself: "<c>Σ" ends in ς iff c is cased and not case-ignorable;
    # "AΣ<c>" keeps ς iff c is case-ignorable or not cased.
    if cp not in (CAPITAL_SIGMA,) and not 0xD800 <= cp <= 0xDFFF:
      if (c + "\u03a3").lower()[-1] == "\u03c2":
        f |= CASED
      elif ("A\u03a3" + c).lower()[1] == "\u03c2" and ("A" + c + "\u03a3").lower()[-1] == "\u03c2":
        f |= CASE_IGNORABLE
    elif cp == CAPITAL_SIGMA:
      f |= CASED
    category = unicodedata.category(c)
    if category == "Mn":
      f |= MARK_NONSPACING
    if tokenization._is_punctuation(c):  # pylint: disable=protected-access
      f |= PUNCT
    if c.isspace():
      f |= SEPARATOR
    flags[cp] = f
    ccc[cp] = unicodedata.combining(c)
    if f & (DROP | SPACE) or 0xD800 <= cp <= 0xDFFF:
      continue
    mapped = unicodedata.normalize("NFD", c.lower())
    if mapped != c:
      keys.append(cp)
      starts.append(len(values))
      lengths.append(len(mapped))
      values.extend(ord(m) for m in mapped)
  return (flags, ccc, np.asarray(keys, np.int64), np.asarray(starts, np.int64),
          np.asarray(lengths, np.int64), np.asarray(values, np.int32))


def _shift_right(x, fill):
  """x [N] -> [fill, x[0], ..., x[N-2]] (empty stays empty)."""
  x = tf.convert_to_tensor(x)
  return tf.concat([tf.fill([1], tf.cast(fill, x.dtype)), x], axis=0)[:tf.size(x)]


def _shift_left(x, fill):
  """x [N] -> [x[1], ..., x[N-1], fill] (empty stays empty)."""
  x = tf.convert_to_tensor(x)
  return tf.concat([x, tf.fill([1], tf.cast(fill, x.dtype))], axis=0)[1:]


def truncated_pair_lengths(len_a, len_b, max_length):
  """Vectorised processors.features.truncated_pair_lengths (_truncate_seq_pair).

  Args:
    len_a: int [B] tokens of sentence A.
    len_b: int [B] tokens of sentence B.
    max_length: scalar, the token budget of A and B together.

  Returns:
    (new_len_a [B], new_len_b [B]).
  """
  fits = len_a + len_b <= max_length
  cut_a_only = (len_a > len_b) & (max_length - len_b >= len_b)
  cut_b_only = (len_a <= len_b) & (max_length - len_a >= len_a - 1)
  max_length = tf.cast(max_length, len_a.dtype)
  half_a = tf.fill(tf.shape(len_a), (max_length + 1) // 2)
  half_b = tf.fill(tf.shape(len_a), max_length // 2)
  new_a = tf.where(fits | cut_b_only, len_a,
                   tf.where(cut_a_only, max_length - len_b, half_a))
  new_b = tf.where(fits | cut_a_only, len_b,
                   tf.where(cut_b_only, max_length - len_a, half_b))
  return new_a, new_b


class BertTextEncoder(tf.Module):
  """Text -> input_ids / input_mask / segment_ids, exactly as FullTokenizer +
  convert_single_example, as TensorFlow ops that can be saved in a SavedModel."""

  def __init__(self, vocab_file, do_lower_case, max_seq_length, name=None):
    """Builds the tables.

    Args:
      vocab_file: a vocab.txt written for this encoder (see write_vocab_asset): one
        stripped, unique token per line, line number = id. It becomes a SavedModel
        asset.
      do_lower_case: as FullTokenizer's.
      max_seq_length: the length limit of convert_single_example (truncation).
      name: tf.Module name.
    """
    super().__init__(name=name)
    self.do_lower_case = bool(do_lower_case)
    self.max_seq_length = int(max_seq_length)
    vocab = tokenization.load_vocab(vocab_file)
    for token in ("[UNK]", "[CLS]", "[SEP]"):
      if token not in vocab:
        raise ValueError(f"{vocab_file}: has no {token} entry; a BERT WordPiece "
                         "vocab needs [UNK], [CLS] and [SEP]")
    self.cls_id = vocab["[CLS]"]
    self.sep_id = vocab["[SEP]"]
    flags, ccc, keys, starts, lengths, values = codepoint_tables()
    # Non-trainable variables, so the 1.1M-entry tables live in the variables file
    # rather than in the graph proto.
    self.flags = tf.Variable(flags, trainable=False, name="codepoint_flags",
                             dtype=tf.uint8)
    self.combining_class = tf.Variable(ccc, trainable=False, name="combining_class",
                                       dtype=tf.uint8)
    self.lower_starts = tf.Variable(starts, trainable=False, name="lower_starts")
    self.lower_lengths = tf.Variable(lengths, trainable=False, name="lower_lengths")
    self.lower_values = tf.Variable(values, trainable=False, name="lower_values")
    self.lower_table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(keys, tf.int64), tf.range(len(keys), dtype=tf.int64)),
        default_value=-1)
    self.vocab_asset = tf.saved_model.Asset(vocab_file)
    self.vocab_table = tf.lookup.StaticHashTable(
        tf.lookup.TextFileInitializer(
            self.vocab_asset, key_dtype=tf.string,
            key_index=tf.lookup.TextFileIndex.WHOLE_LINE, value_dtype=tf.int64,
            value_index=tf.lookup.TextFileIndex.LINE_NUMBER),
        default_value=-1)
    self.unk_id = vocab["[UNK]"]
    # One traced function shared by every caller, so a SavedModel stores (and loads)
    # the tokenizer graph once however many signatures use it.
    self._tokenize_fn = tf.function(
        self._tokenize_ids, autograph=False,
        input_signature=[tf.TensorSpec([None], tf.string)])

  def _flag(self, table_flags, bit):
    return tf.bitwise.bitwise_and(table_flags, bit) != 0

  def tokenize_ids(self, text):
    """Word-piece ids of each text, as FullTokenizer.tokenize + convert_tokens_to_ids.

    Args:
      text: string [B], UTF-8 (invalid UTF-8 is an error, as in tokenization.py).

    Returns:
      int64 RaggedTensor [B, (num_pieces)].
    """
    return self._tokenize_fn(tf.convert_to_tensor(text, tf.string))

  def _tokenize_ids(self, text):
    """Word-piece ids of each text, as FullTokenizer.tokenize + convert_tokens_to_ids.

    Args:
      text: string [B], UTF-8 (invalid UTF-8 is an error, as in tokenization.py).

    Returns:
      int64 RaggedTensor [B, (num_pieces)].
    """
    text = tf.convert_to_tensor(text, tf.string)
    batch = tf.shape(text, out_type=tf.int64)[0]
    cps = tf.strings.unicode_decode(text, "UTF-8", errors="strict")  # [B, (C)]
    flat = cps.flat_values  # int32 [N]
    row = cps.value_rowids()  # int64 [N]
    flags = tf.cast(tf.gather(self.flags, flat), tf.int32)  # [N]

    # 1. _clean_text, _tokenize_chinese_chars and whitespace_tokenize.
    keep = ~self._flag(flags, DROP)
    flat, row, flags = (tf.boolean_mask(flat, keep), tf.boolean_mask(row, keep),
                        tf.boolean_mask(flags, keep))
    is_space = self._flag(flags, SPACE)
    is_cjk = self._flag(flags, CJK)
    prev_breaks = _shift_right(is_space | is_cjk, True) | (_shift_right(row, -1) != row)
    token_start = ~is_space & (is_cjk | prev_breaks)
    keep = ~is_space
    flat, row, flags, token_start = (tf.boolean_mask(flat, keep),
                                     tf.boolean_mask(row, keep),
                                     tf.boolean_mask(flags, keep),
                                     tf.boolean_mask(token_start, keep))
    token = tf.cumsum(tf.cast(token_start, tf.int64))  # [N'] token number, from 1

    if self.do_lower_case:
      flat = self._final_sigma(flat, flags, token)
      flat, row, token = self._lower_nfd(flat, row, token)
      mn = self._flag(tf.cast(tf.gather(self.flags, flat), tf.int32), MARK_NONSPACING)
      flat, row, token = (tf.boolean_mask(flat, ~mn), tf.boolean_mask(row, ~mn),
                          tf.boolean_mask(token, ~mn))

    # 4. _run_split_on_punc, then the final whitespace split.
    post = tf.cast(tf.gather(self.flags, flat), tf.int32)
    punct = self._flag(post, PUNCT)
    sep = self._flag(post, SEPARATOR)
    word_start = ~sep & (punct | _shift_right(punct | sep, True) |
                         (_shift_right(token, -1) != token))
    flat, row, word_start = (tf.boolean_mask(flat, ~sep), tf.boolean_mask(row, ~sep),
                             tf.boolean_mask(word_start, ~sep))
    word = tf.cumsum(tf.cast(word_start, tf.int64)) - 1  # [M] word index
    num_words = tf.reduce_sum(tf.cast(word_start, tf.int64))
    word_chars = tf.RaggedTensor.from_value_rowids(flat, word, nrows=num_words,
                                                   validate=False)
    word_row = tf.math.unsorted_segment_min(row, word, num_words)  # [W]
    words = tf.strings.unicode_encode(word_chars, "UTF-8")  # [W]

    # 5. WordpieceTokenizer.
    piece_word, piece_id = self._wordpiece(words, word_chars.row_lengths())
    return tf.RaggedTensor.from_value_rowids(piece_id, tf.gather(word_row, piece_word),
                                             nrows=batch, validate=False)

  def _wordpiece(self, words, num_chars):
    """Greedy longest-match-first WordPiece of every word at once.

    Each loop iteration finds, for every unfinished word, the longest vocab entry
    (with "##" after the first piece) starting at its current position, by looking
    up all its remaining prefixes. A word with no match, or longer than 200
    characters, becomes the single [UNK] piece, as in the original.

    Args:
      words: string [W], non-empty words without whitespace.
      num_chars: int64 [W], their lengths in characters.

    Returns:
      (piece_word int64 [P], piece_id int64 [P]): the pieces in order, each with
      the index of its word.
    """
    num_words = tf.size(words, tf.int64)
    failed = num_chars > MAX_INPUT_CHARS_PER_WORD
    start = tf.zeros_like(num_chars)

    def body(start, failed, pieces_word, pieces_id, step):
      active = (start < num_chars) & ~failed  # [W]
      remaining = tf.where(active, num_chars - start, 0)
      # Candidate lengths per word, longest first: [W, (remaining)].
      lengths = tf.ragged.range(remaining, 0, -1, dtype=tf.int64)
      cand_word = lengths.value_rowids()
      cand_len = lengths.flat_values
      cand_start = tf.gather(start, cand_word)
      text = tf.strings.substr(tf.gather(words, cand_word), cand_start, cand_len,
                               unit="UTF8_CHAR")
      text = tf.where(cand_start > 0, tf.strings.join(["##", text]), text)
      ids = self.vocab_table.lookup(text)  # [C], -1 if absent
      found_len = tf.math.unsorted_segment_max(tf.where(ids >= 0, cand_len, 0),
                                               cand_word, num_words)  # [W]
      found_len = tf.maximum(found_len, 0)
      best = tf.where((ids >= 0) & (cand_len == tf.gather(found_len, cand_word)),
                      ids, -1)
      best_id = tf.math.unsorted_segment_max(best, cand_word, num_words)  # [W]
      matched = active & (found_len > 0)
      failed = failed | (active & (found_len == 0))
      pieces_word = pieces_word.write(step, tf.boolean_mask(
          tf.range(num_words, dtype=tf.int64), matched))
      pieces_id = pieces_id.write(step, tf.boolean_mask(best_id, matched))
      return start + found_len, failed, pieces_word, pieces_id, step + 1

    def cond(start, failed, unused_pw, unused_pi, unused_step):
      return tf.reduce_any((start < num_chars) & ~failed)

    arrays = [tf.TensorArray(tf.int64, size=0, dynamic_size=True,
                             infer_shape=False, element_shape=[None])
              for _ in range(2)]
    _, failed, pieces_word, pieces_id, _ = tf.while_loop(
        cond, body, [start, failed, arrays[0], arrays[1], tf.constant(0)])
    piece_word = pieces_word.concat()
    piece_id = pieces_id.concat()
    # A failed word's pieces are dropped and it becomes one [UNK].
    keep = ~tf.gather(failed, piece_word)
    unk_word = tf.where(failed)[:, 0]
    piece_word = tf.concat([tf.boolean_mask(piece_word, keep), unk_word], axis=0)
    piece_id = tf.concat([tf.boolean_mask(piece_id, keep),
                          tf.fill(tf.shape(unk_word), tf.constant(self.unk_id, tf.int64))],
                         axis=0)
    # Pieces were produced step by step: a stable sort by word restores text order.
    order = tf.argsort(piece_word, stable=True)
    return tf.gather(piece_word, order), tf.gather(piece_id, order)

  def _final_sigma(self, flat, flags, token):
    """Turns each capital sigma in Python's Final_Sigma context into U+03C2.

    CPython lower-cases U+03A3 to final sigma when, within the same word, the
    nearest non-case-ignorable character before it is cased and the nearest one
    after it is not cased (or there is none).
    """
    ignorable = self._flag(flags, CASE_IGNORABLE)
    cased = self._flag(flags, CASED)
    anchor_pos = tf.where(~ignorable)[:, 0]  # [K] positions of non-ignorable chars
    # Sentinels keep the gathers in range; they never match a real token number.
    anchor_pos = tf.concat([[0], anchor_pos, [0]], axis=0)
    token_pad = tf.concat([token, [-1]], axis=0)
    cased_pad = tf.concat([cased, [False]], axis=0)
    k = tf.cumsum(tf.cast(~ignorable, tf.int64), exclusive=True) + 1  # index into anchors
    num_anchors = tf.shape(anchor_pos, out_type=tf.int64)[0] - 2
    prev_pos = tf.where(k > 1, tf.gather(anchor_pos, k - 1), tf.size(token, tf.int64))
    next_pos = tf.where(k < num_anchors, tf.gather(anchor_pos, tf.minimum(k + 1, num_anchors + 1)),
                        tf.size(token, tf.int64))
    prev_cased = (tf.gather(token_pad, prev_pos) == token) & tf.gather(cased_pad, prev_pos)
    next_cased = (tf.gather(token_pad, next_pos) == token) & tf.gather(cased_pad, next_pos)
    final = (flat == CAPITAL_SIGMA) & prev_cased & ~next_cased
    return tf.where(final, tf.constant(FINAL_SIGMA, flat.dtype), flat)

  def _lower_nfd(self, flat, row, token):
    """str.lower then NFD of every word: expansion per codepoint, then reordering."""
    n = tf.size(flat, tf.int64)
    index = self.lower_table.lookup(tf.cast(flat, tf.int64))  # [N], -1: unchanged
    mapped = index >= 0
    safe = tf.maximum(index, 0)
    num_values = tf.size(self.lower_values, tf.int64)
    lengths = tf.where(mapped, tf.gather(self.lower_lengths, safe), 1)
    starts = tf.where(mapped, tf.gather(self.lower_starts, safe),
                      num_values + tf.range(n, dtype=tf.int64))
    source = tf.concat([self.lower_values, flat], axis=0)
    positions = tf.ragged.range(starts, starts + lengths).flat_values
    flat = tf.gather(source, positions)
    row = tf.repeat(row, lengths)
    token = tf.repeat(token, lengths)
    # Canonical ordering: within each run of combining marks (class > 0) that
    # follows a starter (class 0) or a word start, a stable sort by class.
    ccc = tf.cast(tf.gather(self.combining_class, flat), tf.int64)
    group_start = (ccc == 0) | (_shift_right(token, -1) != token)
    group = tf.cumsum(tf.cast(group_start, tf.int64))
    order = tf.argsort(group * 256 + ccc, stable=True)
    return tf.gather(flat, order), tf.gather(row, order), tf.gather(token, order)

  def encode(self, text_a, text_b=None):
    """convert_single_example in the graph, padded to the longest row of the batch.

    Args:
      text_a: string [B].
      text_b: optional string [B]; an empty text (or one without tokens) means a
        single sentence, as in the original.

    Returns:
      (input_ids, input_mask, segment_ids), each int32 [B, S] with
      S <= max_seq_length.
    """
    ids_a = self.tokenize_ids(text_a)  # [B, (La)]
    len_a = ids_a.row_lengths()
    batch = tf.shape(len_a, out_type=tf.int64)[0]
    if text_b is not None:
      ids_b = self.tokenize_ids(text_b)
      len_b = ids_b.row_lengths()
    else:
      ids_b = tf.RaggedTensor.from_row_lengths(tf.zeros([0], tf.int64),
                                               tf.zeros([batch], tf.int64))
      len_b = ids_b.row_lengths()
    has_b = len_b > 0
    pair_a, pair_b = truncated_pair_lengths(len_a, len_b, self.max_seq_length - 3)
    keep_a = tf.where(has_b, pair_a,
                      tf.minimum(len_a, tf.constant(self.max_seq_length - 2, tf.int64)))
    keep_b = tf.where(has_b, pair_b, tf.zeros_like(pair_b))
    ids_a = _ragged_prefix(ids_a, keep_a)
    ids_b = _ragged_prefix(ids_b, keep_b)

    def column(value, lengths):
      return tf.RaggedTensor.from_row_lengths(
          tf.fill([tf.reduce_sum(lengths)], tf.constant(value, tf.int64)), lengths)

    ones = tf.ones([batch], tf.int64)
    sep_b_len = tf.cast(has_b, tf.int64)
    ids = tf.concat([column(self.cls_id, ones), ids_a, column(self.sep_id, ones),
                     ids_b, column(self.sep_id, sep_b_len)], axis=1)
    segments = tf.concat([column(0, keep_a + 2), column(1, keep_b + sep_b_len)], axis=1)
    input_ids = tf.cast(ids.to_tensor(0), tf.int32)  # [B, S]
    input_mask = tf.cast(tf.ones_like(ids).to_tensor(0), tf.int32)
    segment_ids = tf.cast(segments.to_tensor(0), tf.int32)
    return input_ids, input_mask, segment_ids


def _ragged_prefix(ragged, lengths):
  """Keeps the first lengths[i] values of each row of a 2-D RaggedTensor."""
  rowids = ragged.value_rowids()
  position = tf.range(tf.size(rowids, tf.int64), dtype=tf.int64) - tf.gather(
      ragged.row_starts(), rowids)
  keep = position < tf.gather(lengths, rowids)
  return tf.RaggedTensor.from_value_rowids(
      tf.boolean_mask(ragged.flat_values, keep), tf.boolean_mask(rowids, keep),
      nrows=ragged.nrows())


def write_vocab_asset(vocab_file, path):
  """Writes vocab_file as the asset the in-graph table reads (line number = id).

  Each line is stripped, as tokenization.load_vocab does. A line whose id can never
  be produced by the reference (an empty line, or an earlier copy of a token that
  occurs again: load_vocab keeps the last id) is replaced by a placeholder holding a
  tab, which no word can contain, so the table has unique keys and ids stay put.

  Args:
    vocab_file: the model's vocab.txt.
    path: where to write the asset.

  Returns:
    The number of lines replaced by placeholders.
  """
  data = tokenization._read_file_bytes(vocab_file, "vocab file")  # pylint: disable=protected-access
  lines = data.split(b"\n")
  if lines and lines[-1] == b"":
    lines.pop()
  tokens = [raw.decode("utf-8").strip() for raw in lines]
  last = {token: number for number, token in enumerate(tokens)}
  replaced = 0
  for number, token in enumerate(tokens):
    if not token or last[token] != number:
      tokens[number] = f"\t(unused vocab line {number + 1})"
      replaced += 1
  with open(path, "w", encoding="utf-8") as f:
    f.write("".join(t + "\n" for t in tokens))
  return replaced
