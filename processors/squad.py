"""SQuAD v1.1 / v2.0: JSON -> SquadExample -> windowed features -> TFRecords -> tf.data.

The logic is that of Google's original run_squad.py: whitespace-split contexts with a
character-to-word map, answer spans refined on WordPiece tokens (_improve_answer_span),
sliding windows of `doc_stride` tokens, "max context" bookkeeping
(_check_is_max_context), and the original TFRecord feature names (`unique_ids`,
`input_ids`, `input_mask`, `segment_ids`, plus `start_positions`, `end_positions`,
`is_impossible` for training). What is added: the JSON is validated while it is read
(every problem names the file, the article and the question id), skipped answers and
truncated questions are counted and reported, tokenization goes through
tokenization.BatchTokenizer (identical tokens, much faster), each context is tokenized
once for all its questions, and records are written atomically from numpy arrays.
"""

import collections
import dataclasses
import json
from typing import Dict, List, Optional, Sequence

from absl import logging
import numpy as np

import tokenization
from processors.base import DataError, gc_paused

FIRST_UNIQUE_ID = 1000000000  # the original's first feature id


class SquadExample(object):
  """A single training/test example for the SQuAD dataset (the original's fields).

  For examples without an answer, the start and end position are -1.
  """

  def __init__(self, qas_id, question_text, doc_tokens, orig_answer_text=None,
               start_position=None, end_position=None, is_impossible=False,
               paragraph_index=None):
    self.qas_id = qas_id
    self.question_text = question_text
    self.doc_tokens = doc_tokens
    self.orig_answer_text = orig_answer_text
    self.start_position = start_position
    self.end_position = end_position
    self.is_impossible = is_impossible
    # Questions of one paragraph share doc_tokens; this lets them share tokenization.
    self.paragraph_index = paragraph_index

  def __str__(self):
    return self.__repr__()

  def __repr__(self):
    s = "qas_id: %s" % tokenization.printable_text(self.qas_id)
    s += ", question_text: %s" % tokenization.printable_text(self.question_text)
    s += ", doc_tokens: [%s]" % " ".join(self.doc_tokens)
    if self.start_position is not None:
      s += ", start_position: %d" % self.start_position
    if self.end_position is not None:
      s += ", end_position: %d" % self.end_position
    if self.is_impossible:
      s += ", is_impossible: %r" % self.is_impossible
    return s


@dataclasses.dataclass
class ReadReport:
  """What read_squad_examples skipped or noticed, for the end-of-reading summary.

  Attributes:
    num_questions: questions in the file.
    num_examples: examples returned.
    skipped_answers: qids whose answer text does not match the context at its offset
      (training only; the original skips them with a warning).
    has_impossible_key: some question carries an `is_impossible` field.
  """
  num_questions: int = 0
  num_examples: int = 0
  skipped_answers: List[str] = dataclasses.field(default_factory=list)
  has_impossible_key: bool = False


def is_whitespace(c):
  """The original's whitespace test for splitting contexts into words."""
  return c == " " or c == "\t" or c == "\r" or c == "\n" or ord(c) == 0x202F


def split_context(paragraph_text):
  """Splits a context into whitespace-separated words, as the original does.

  Args:
    paragraph_text: the context string.

  Returns:
    (doc_tokens: list of str, char_to_word_offset: list of int, one per character;
    whitespace maps to the word before it, or -1 at the start).
  """
  doc_tokens = []
  char_to_word_offset = []
  prev_is_whitespace = True
  for c in paragraph_text:
    if is_whitespace(c):
      prev_is_whitespace = True
    else:
      if prev_is_whitespace:
        doc_tokens.append(c)
      else:
        doc_tokens[-1] += c
      prev_is_whitespace = False
    char_to_word_offset.append(len(doc_tokens) - 1)
  return doc_tokens, char_to_word_offset


def _require(mapping, key, kind, where, input_file):
  """Returns mapping[key] or raises a DataError naming the file and the place."""
  if not isinstance(mapping, dict):
    raise DataError(f"{input_file}: {where}: expected a JSON object for the {kind}, "
                    f"got {type(mapping).__name__}")
  if key not in mapping:
    raise DataError(f"{input_file}: {where}: the {kind} has no {key!r} field; this "
                    "does not look like a SQuAD file")
  return mapping[key]


def load_squad_json(input_file):
  """Reads a SQuAD JSON file and returns its "data" list (articles).

  Raises:
    DataError: unreadable file, invalid JSON, or no "data" list.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if not tf.io.gfile.exists(input_file):
    raise DataError(f"{input_file}: file not found", missing_file=True)
  with tf.io.gfile.GFile(input_file, "rb") as reader:
    raw = reader.read()
  try:
    input_json = json.loads(raw.decode("utf-8-sig"))
  except (UnicodeDecodeError, json.JSONDecodeError) as e:
    raise DataError(f"{input_file}: not valid UTF-8 JSON ({e})") from None
  data = _require(input_json, "data", "file", "top level", input_file)
  if not isinstance(data, list):
    raise DataError(f"{input_file}: \"data\" must be a list of articles, got "
                    f"{type(data).__name__}")
  return data


@gc_paused()  # see processors.base.gc_paused
def read_squad_examples(input_file, is_training, version_2_with_negative=False,
                        require_answers=False):
  """Reads a SQuAD JSON file into SquadExamples, validating it on the way.

  Same examples as the original read_squad_examples. Every structural problem raises
  before anything is converted; answers whose text does not match the context at
  their offset are skipped with a warning (training only, as the original) and
  counted in the returned report.

  Args:
    input_file: path of a SQuAD v1.1 or v2.0 JSON file.
    is_training: read the answer spans (training needs exactly one answer per
      answerable question).
    version_2_with_negative: the --version_2_with_negative flag.
    require_answers: every question must carry an "answers" list (for --do_eval).

  Returns:
    (list of SquadExample, ReadReport).

  Raises:
    DataError: with the file, the article title or index and the question id.
  """
  data = load_squad_json(input_file)
  report = ReadReport()
  examples = []
  seen_ids = {}
  paragraph_counter = 0
  for article_index, entry in enumerate(data):
    title = entry.get("title") if isinstance(entry, dict) else None
    article = f"article {article_index}" + (f" ({title!r})" if title else "")
    paragraphs = _require(entry, "paragraphs", "article", article, input_file)
    if not isinstance(paragraphs, list):
      raise DataError(f"{input_file}: {article}: \"paragraphs\" must be a list")
    for paragraph_index, paragraph in enumerate(paragraphs):
      where = f"{article}, paragraph {paragraph_index}"
      paragraph_text = _require(paragraph, "context", "paragraph", where, input_file)
      qas = _require(paragraph, "qas", "paragraph", where, input_file)
      if not isinstance(paragraph_text, str) or not isinstance(qas, list):
        raise DataError(f"{input_file}: {where}: \"context\" must be a string and "
                        "\"qas\" a list")
      doc_tokens, char_to_word_offset = split_context(paragraph_text)
      if qas and not doc_tokens:
        ids = ", ".join(str(qa.get("id")) for qa in qas if isinstance(qa, dict))
        raise DataError(f"{input_file}: {where}: the context is empty (only "
                        f"whitespace), so questions {ids} cannot be answered from it")
      this_paragraph = paragraph_counter
      paragraph_counter += 1
      for qa in qas:
        qas_id = _require(qa, "id", "question", where, input_file)
        qwhere = f"{where}, question id {qas_id!r}"
        question_text = _require(qa, "question", "question", qwhere, input_file)
        if not isinstance(question_text, str):
          raise DataError(f"{input_file}: {qwhere}: \"question\" must be a string")
        if qas_id in seen_ids:
          raise DataError(f"{input_file}: {qwhere}: the id is used twice (also in "
                          f"{seen_ids[qas_id]}); predictions are keyed by id")
        seen_ids[qas_id] = where
        report.num_questions += 1
        is_impossible = False
        if "is_impossible" in qa:
          report.has_impossible_key = True
          is_impossible = bool(qa["is_impossible"])
          if is_impossible and not version_2_with_negative:
            raise DataError(
                f"{input_file}: {qwhere}: is_impossible is true (SQuAD v2.0 data) but "
                "--version_2_with_negative is not set")
        elif is_training and version_2_with_negative:
          raise DataError(
              f"{input_file}: {qwhere}: no \"is_impossible\" field, which "
              "--version_2_with_negative needs in the training file (SQuAD v2.0). "
              "For SQuAD v1.1 data, drop --version_2_with_negative.")
        answers = qa.get("answers")
        if (is_training or require_answers) and not isinstance(answers, list):
          raise DataError(f"{input_file}: {qwhere}: no \"answers\" list"
                          + (" (needed by --do_eval)" if not is_training else ""))
        if require_answers and not all(
            isinstance(a, dict) and isinstance(a.get("text"), str) for a in answers):
          raise DataError(f"{input_file}: {qwhere}: every answer needs a \"text\" "
                          "string (the evaluation compares against it)")
        start_position = None
        end_position = None
        orig_answer_text = None
        if is_training:
          if len(answers) != 1 and not is_impossible:
            raise DataError(
                f"{input_file}: {qwhere}: for training, each question should have "
                f"exactly 1 answer, found {len(answers)}")
          if not is_impossible:
            answer = answers[0]
            orig_answer_text = _require(answer, "text", "answer", qwhere, input_file)
            answer_offset = _require(answer, "answer_start", "answer", qwhere,
                                     input_file)
            if not isinstance(orig_answer_text, str) or not isinstance(
                answer_offset, int) or isinstance(answer_offset, bool):
              raise DataError(f"{input_file}: {qwhere}: the answer needs a string "
                              "\"text\" and an integer \"answer_start\"")
            answer_length = len(orig_answer_text)
            last_char = answer_offset + answer_length - 1
            if (answer_length == 0 or answer_offset < 0 or
                last_char >= len(char_to_word_offset)):
              logging.warning("Answer %r at offset %d is outside the context of %s "
                              "(%d characters); skipping it", orig_answer_text,
                              answer_offset, qwhere, len(paragraph_text))
              report.skipped_answers.append(qas_id)
              continue
            start_position = max(char_to_word_offset[answer_offset], 0)
            end_position = char_to_word_offset[last_char]
            # Only answers whose text is found at their offset are kept: bad offsets
            # or odd Unicode would otherwise teach the model wrong spans.
            actual_text = " ".join(doc_tokens[start_position:(end_position + 1)])
            cleaned_answer_text = " ".join(
                tokenization.whitespace_tokenize(orig_answer_text))
            if actual_text.find(cleaned_answer_text) == -1:
              logging.warning("Could not find answer of %s: '%s' vs. '%s'", qwhere,
                              actual_text, cleaned_answer_text)
              report.skipped_answers.append(qas_id)
              continue
          else:
            start_position = -1
            end_position = -1
            orig_answer_text = ""
        examples.append(SquadExample(
            qas_id=qas_id, question_text=question_text, doc_tokens=doc_tokens,
            orig_answer_text=orig_answer_text, start_position=start_position,
            end_position=end_position,
            # As the original, only training examples carry the flag.
            is_impossible=is_impossible if is_training else False,
            paragraph_index=this_paragraph))
  report.num_examples = len(examples)
  if version_2_with_negative and not report.has_impossible_key:
    logging.warning("%s has no \"is_impossible\" fields: it looks like SQuAD v1.1 "
                    "data, read with --version_2_with_negative", input_file)
  if report.skipped_answers:
    shown = ", ".join(map(str, report.skipped_answers[:10]))
    logging.warning("%s: skipped %d of %d questions whose answer text does not match "
                    "the context at answer_start: %s%s", input_file,
                    len(report.skipped_answers), report.num_questions, shown,
                    " ..." if len(report.skipped_answers) > 10 else "")
  logging.info("Read %d examples from %s (%d questions)", len(examples), input_file,
               report.num_questions)
  return examples, report


# ------------------------------------------------------------------------- features


class InputFeatures(object):
  """A single set of features of one window (the original's fields)."""

  def __init__(self, unique_id, example_index, doc_span_index, tokens,
               token_to_orig_map, token_is_max_context, input_ids, input_mask,
               segment_ids, start_position=None, end_position=None,
               is_impossible=None):
    self.unique_id = unique_id
    self.example_index = example_index
    self.doc_span_index = doc_span_index
    self.tokens = tokens
    self.token_to_orig_map = token_to_orig_map
    self.token_is_max_context = token_is_max_context
    self.input_ids = input_ids
    self.input_mask = input_mask
    self.segment_ids = segment_ids
    self.start_position = start_position
    self.end_position = end_position
    self.is_impossible = is_impossible


DocSpan = collections.namedtuple("DocSpan", ["start", "length"])


def improve_answer_span(doc_tokens, input_start, input_end, tokenized_answer):
  """Narrows a word-level answer span to the sub-tokens matching the answer.

  The character annotation maps to whole words ("(1895-1943)." for the answer
  1895); WordPiece often splits such words so that the exact answer can be found.
  The first (leftmost, then longest) match wins, as in the original.

  Args:
    doc_tokens: the context's sub-tokens.
    input_start: first sub-token of the word-level span.
    input_end: last sub-token of the word-level span.
    tokenized_answer: tokenizer.tokenize(orig_answer_text).

  Returns:
    (start, end) sub-token indexes, inclusive.
  """
  tok_answer_text = " ".join(tokenized_answer)
  for new_start in range(input_start, input_end + 1):
    for new_end in range(input_end, new_start - 1, -1):
      if " ".join(doc_tokens[new_start:(new_end + 1)]) == tok_answer_text:
        return new_start, new_end
  return input_start, input_end


def doc_spans_for(num_doc_tokens, max_tokens_for_doc, doc_stride):
  """The sliding windows over a context, as the original computes them.

  Args:
    num_doc_tokens: sub-tokens in the context.
    max_tokens_for_doc: room for the context in one window.
    doc_stride: how far each window starts after the previous one (at most).

  Returns:
    list of DocSpan(start, length).
  """
  doc_spans = []
  start_offset = 0
  while start_offset < num_doc_tokens:
    length = min(num_doc_tokens - start_offset, max_tokens_for_doc)
    doc_spans.append(DocSpan(start=start_offset, length=length))
    if start_offset + length == num_doc_tokens:
      break
    start_offset += min(length, doc_stride)
  return doc_spans


def max_context_span(doc_spans, num_doc_tokens):
  """For every sub-token, the window in which it has the most context.

  Same decision as the original _check_is_max_context, for all tokens at once: a
  token's score in a window is min(left context, right context) + 0.01 * window
  length, and the first window with the highest score wins.

  Args:
    doc_spans: the windows (DocSpan).
    num_doc_tokens: sub-tokens in the context.

  Returns:
    int array [num_doc_tokens]: the index of each token's max-context window.
  """
  positions = np.arange(num_doc_tokens)
  scores = np.full((len(doc_spans), num_doc_tokens), -np.inf)
  for i, span in enumerate(doc_spans):
    end = span.start + span.length - 1
    inside = slice(span.start, end + 1)
    left = positions[inside] - span.start
    right = end - positions[inside]
    scores[i, inside] = np.minimum(left, right) + 0.01 * span.length
  return np.argmax(scores, axis=0)  # first maximum, like the original's strict ">"


def check_is_max_context(doc_spans, cur_span_index, position):
  """The original's per-token test: is `cur_span_index` the token's best window?"""
  best_score = None
  best_span_index = None
  for span_index, doc_span in enumerate(doc_spans):
    end = doc_span.start + doc_span.length - 1
    if position < doc_span.start or position > end:
      continue
    score = min(position - doc_span.start, end - position) + 0.01 * doc_span.length
    if best_score is None or score > best_score:
      best_score = score
      best_span_index = span_index
  return cur_span_index == best_span_index


@dataclasses.dataclass
class ConversionReport:
  """Figures of one conversion, logged at its end.

  Attributes:
    num_examples: examples converted.
    num_features: windows written.
    truncated_questions: qids whose question was cut to max_query_length tokens.
    empty_contexts: qids whose context has no sub-tokens (these get no feature).
  """
  num_examples: int = 0
  num_features: int = 0
  truncated_questions: List[str] = dataclasses.field(default_factory=list)
  empty_contexts: List[str] = dataclasses.field(default_factory=list)


@gc_paused()  # about a third of the time on SQuAD dev otherwise
def convert_examples_to_features(examples: Sequence[SquadExample], tokenizer,
                                 max_seq_length: int, doc_stride: int,
                                 max_query_length: int, is_training: bool,
                                 log_examples: int = 20):
  """Windows every example into features, exactly as the original does.

  Args:
    examples: SquadExamples (from read_squad_examples).
    tokenizer: FullTokenizer or SentencePieceTokenizer.
    max_seq_length: tokens per window, [CLS] and [SEP]s included.
    doc_stride: distance between window starts.
    max_query_length: questions are cut to this many sub-tokens.
    is_training: compute start/end positions.
    log_examples: log the first this many features, as the original.

  Returns:
    (list of InputFeatures, ConversionReport).

  Raises:
    DataError: when a context has no sub-tokens at all (e.g. only control
      characters): found for all examples before any feature is built.
    ValueError: when max_seq_length leaves no room for the context.
  """
  if max_seq_length <= max_query_length + 3:
    raise ValueError(f"max_seq_length ({max_seq_length}) must be greater than "
                     f"max_query_length ({max_query_length}) + 3")
  batch = tokenization.BatchTokenizer(tokenizer)
  report = ConversionReport(num_examples=len(examples))

  # Contexts are shared by the questions of a paragraph: tokenize each once.
  paragraph_key = {}
  unique_docs = []
  for ex in examples:
    key = ex.paragraph_index if ex.paragraph_index is not None else id(ex.doc_tokens)
    if key not in paragraph_key:
      paragraph_key[key] = len(unique_docs)
      unique_docs.append(ex.doc_tokens)
  doc_word_tokens = [batch.tokenize(doc) for doc in unique_docs]
  query_tokens_all = batch.tokenize([ex.question_text for ex in examples])
  answer_tokens_all = (batch.tokenize([ex.orig_answer_text or "" for ex in examples])
                       if is_training else None)

  docs = []  # per unique context: (all_doc_tokens, tok_to_orig_index, orig_to_tok)
  for word_tokens in doc_word_tokens:
    tok_to_orig_index, orig_to_tok_index, all_doc_tokens = [], [], []
    for i, sub_tokens in enumerate(word_tokens):
      orig_to_tok_index.append(len(all_doc_tokens))
      tok_to_orig_index.extend([i] * len(sub_tokens))
      all_doc_tokens.extend(sub_tokens)
    docs.append((all_doc_tokens, tok_to_orig_index, orig_to_tok_index,
                 tokenizer.convert_tokens_to_ids(all_doc_tokens)))

  empty = [ex.qas_id for ex in examples
           if not docs[paragraph_key[ex.paragraph_index if ex.paragraph_index
                                     is not None else id(ex.doc_tokens)]][0]]
  if empty:
    raise DataError(
        f"{len(empty)} question(s) have a context without any token after "
        f"tokenization (e.g. only control characters), so no window can hold an "
        f"answer: {', '.join(map(str, empty[:10]))}")

  cls_id, sep_id = tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]"])

  features = []
  unique_id = FIRST_UNIQUE_ID
  span_cache = {}
  for example_index, example in enumerate(examples):
    query_tokens = query_tokens_all[example_index]
    if len(query_tokens) > max_query_length:
      query_tokens = query_tokens[0:max_query_length]
      report.truncated_questions.append(example.qas_id)
    doc_index = paragraph_key[example.paragraph_index if example.paragraph_index
                              is not None else id(example.doc_tokens)]
    all_doc_tokens, tok_to_orig_index, orig_to_tok_index, all_doc_ids = docs[doc_index]

    tok_start_position = None
    tok_end_position = None
    if is_training and example.is_impossible:
      tok_start_position = -1
      tok_end_position = -1
    if is_training and not example.is_impossible:
      tok_start_position = orig_to_tok_index[example.start_position]
      if example.end_position < len(example.doc_tokens) - 1:
        tok_end_position = orig_to_tok_index[example.end_position + 1] - 1
      else:
        tok_end_position = len(all_doc_tokens) - 1
      tok_start_position, tok_end_position = improve_answer_span(
          all_doc_tokens, tok_start_position, tok_end_position,
          answer_tokens_all[example_index])

    # The -3 accounts for [CLS], [SEP] and [SEP]
    max_tokens_for_doc = max_seq_length - len(query_tokens) - 3
    cache_key = (doc_index, max_tokens_for_doc)
    if cache_key not in span_cache:
      spans = doc_spans_for(len(all_doc_tokens), max_tokens_for_doc, doc_stride)
      span_cache[cache_key] = (spans, max_context_span(spans, len(all_doc_tokens)))
    doc_spans, best_span = span_cache[cache_key]
    query_ids = tokenizer.convert_tokens_to_ids(query_tokens)

    for doc_span_index, doc_span in enumerate(doc_spans):
      doc_offset = len(query_tokens) + 2
      span_tokens = all_doc_tokens[doc_span.start:doc_span.start + doc_span.length]
      tokens = ["[CLS]"] + list(query_tokens) + ["[SEP]"] + span_tokens + ["[SEP]"]
      token_to_orig_map = {}
      token_is_max_context = {}
      for i in range(doc_span.length):
        split_token_index = doc_span.start + i
        token_to_orig_map[doc_offset + i] = tok_to_orig_index[split_token_index]
        token_is_max_context[doc_offset + i] = bool(
            best_span[split_token_index] == doc_span_index)
      input_ids = ([cls_id] + query_ids + [sep_id] +
                   all_doc_ids[doc_span.start:doc_span.start + doc_span.length] +
                   [sep_id])
      segment_ids = [0] * doc_offset + [1] * (doc_span.length + 1)
      input_mask = [1] * len(input_ids)
      padding = max_seq_length - len(input_ids)
      input_ids += [0] * padding
      input_mask += [0] * padding
      segment_ids += [0] * padding

      start_position = None
      end_position = None
      if is_training and not example.is_impossible:
        # For training, if our document chunk does not contain an annotation we
        # throw it out, since there is nothing to predict: it points at [CLS].
        doc_start = doc_span.start
        doc_end = doc_span.start + doc_span.length - 1
        if tok_start_position >= doc_start and tok_end_position <= doc_end:
          start_position = tok_start_position - doc_start + doc_offset
          end_position = tok_end_position - doc_start + doc_offset
        else:
          start_position = 0
          end_position = 0
      if is_training and example.is_impossible:
        start_position = 0
        end_position = 0

      feature = InputFeatures(
          unique_id=unique_id, example_index=example_index,
          doc_span_index=doc_span_index, tokens=tokens,
          token_to_orig_map=token_to_orig_map,
          token_is_max_context=token_is_max_context, input_ids=input_ids,
          input_mask=input_mask, segment_ids=segment_ids,
          start_position=start_position, end_position=end_position,
          is_impossible=example.is_impossible)
      if example_index < log_examples:
        _log_feature(feature, example, is_training)
      features.append(feature)
      unique_id += 1
  report.num_features = len(features)
  if report.truncated_questions:
    logging.warning("%d of %d questions are longer than max_query_length and were "
                    "truncated to its %d tokens, e.g. %s", len(report.truncated_questions),
                    len(examples), max_query_length,
                    ", ".join(map(str, report.truncated_questions[:5])))
  logging.info("Converted %d examples into %d features (windows)", len(examples),
               len(features))
  return features, report


def _log_feature(feature, example, is_training):
  """The original's logging of the first features."""
  logging.info("*** Example ***")
  logging.info("unique_id: %s", feature.unique_id)
  logging.info("example_index: %s", feature.example_index)
  logging.info("doc_span_index: %s", feature.doc_span_index)
  logging.info("tokens: %s", " ".join(
      tokenization.printable_text(x) for x in feature.tokens))
  logging.info("token_to_orig_map: %s", " ".join(
      "%d:%d" % (x, y) for x, y in feature.token_to_orig_map.items()))
  logging.info("token_is_max_context: %s", " ".join(
      "%d:%s" % (x, y) for x, y in feature.token_is_max_context.items()))
  logging.info("input_ids: %s", " ".join(str(x) for x in feature.input_ids))
  logging.info("input_mask: %s", " ".join(str(x) for x in feature.input_mask))
  logging.info("segment_ids: %s", " ".join(str(x) for x in feature.segment_ids))
  if is_training and example.is_impossible:
    logging.info("impossible example")
  if is_training and not example.is_impossible:
    answer_text = " ".join(
        feature.tokens[feature.start_position:(feature.end_position + 1)])
    logging.info("start_position: %d", feature.start_position)
    logging.info("end_position: %d", feature.end_position)
    logging.info("answer: %s", tokenization.printable_text(answer_text))


def features_to_arrays(features: Sequence[InputFeatures], is_training: bool
                       ) -> Dict[str, np.ndarray]:
  """The TFRecord columns of the features, with the original feature names.

  Args:
    features: InputFeatures.
    is_training: add start_positions, end_positions and is_impossible (the
      original writes them only for training).

  Returns:
    dict name -> int64 array [N] or [N, max_seq_length].
  """
  arrays = {
      "unique_ids": np.array([f.unique_id for f in features], np.int64),
      "input_ids": np.array([f.input_ids for f in features], np.int64),
      "input_mask": np.array([f.input_mask for f in features], np.int64),
      "segment_ids": np.array([f.segment_ids for f in features], np.int64),
  }
  if is_training:
    arrays["start_positions"] = np.array([f.start_position for f in features],
                                         np.int64)
    arrays["end_positions"] = np.array([f.end_position for f in features], np.int64)
    arrays["is_impossible"] = np.array([int(bool(f.is_impossible)) for f in features],
                                       np.int64)
  return arrays


def write_features(features: Sequence[InputFeatures], is_training: bool,
                   output_file: str, pad_to_multiple: Optional[int] = None) -> int:
  """Writes features as a TFRecord file (atomically), the original's feature names.

  Args:
    features: InputFeatures.
    is_training: write the training columns too.
    output_file: destination path.
    pad_to_multiple: append all-zero records (unique_id 0) until the count is a
      multiple of this; TPUs need every batch full.

  Returns:
    the number of records written.
  """
  from processors.tfrecord import (serialize_int64_examples,  # pylint: disable=g-import-not-at-top
                                   write_tfrecord_atomic)
  arrays = features_to_arrays(features, is_training)
  if pad_to_multiple and len(features) % pad_to_multiple:
    extra = pad_to_multiple - len(features) % pad_to_multiple
    arrays = {name: np.concatenate([a, np.zeros((extra,) + a.shape[1:], np.int64)])
              for name, a in arrays.items()}
  return write_tfrecord_atomic(serialize_int64_examples(arrays), output_file)


def name_to_features(seq_length: int, is_training: bool):
  """The parsing spec of the SQuAD TFRecords."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  spec = {
      "unique_ids": tf.io.FixedLenFeature([], tf.int64),
      "input_ids": tf.io.FixedLenFeature([seq_length], tf.int64),
      "input_mask": tf.io.FixedLenFeature([seq_length], tf.int64),
      "segment_ids": tf.io.FixedLenFeature([seq_length], tf.int64),
  }
  if is_training:
    spec["start_positions"] = tf.io.FixedLenFeature([], tf.int64)
    spec["end_positions"] = tf.io.FixedLenFeature([], tf.int64)
    spec["is_impossible"] = tf.io.FixedLenFeature([], tf.int64)
  return spec


def make_squad_dataset(input_file: str, seq_length: int, batch_size: int,
                       is_training: bool, drop_remainder: bool = False,
                       seed: Optional[int] = None, shuffle_buffer: int = 10000,
                       dynamic_padding_multiple: Optional[int] = None,
                       with_positions: Optional[bool] = None):
  """Batched, parsed, prefetched dataset of a SQuAD TFRecord file.

  Args:
    input_file: TFRecord path.
    seq_length: max_seq_length the records were written with.
    batch_size: features per batch.
    is_training: shuffle and repeat forever; the records carry the positions.
    drop_remainder: drop the last partial batch (TPUs).
    seed: shuffle seed.
    shuffle_buffer: records held by the shuffle buffer.
    dynamic_padding_multiple: cut each batch to its longest window rounded up to
      this multiple (positions keep their meaning: only trailing padding goes).
    with_positions: parse start_positions, end_positions and is_impossible (only
      training records have them); defaults to is_training.

  Returns:
    tf.data.Dataset of dicts of int32 tensors.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from processors.input_pipeline import trim_batch_padding  # pylint: disable=g-import-not-at-top
  if not tf.io.gfile.exists(input_file):
    raise ValueError(f"TFRecord file not found: {input_file}")
  spec = name_to_features(
      seq_length, is_training if with_positions is None else with_positions)
  d = tf.data.TFRecordDataset(input_file)
  if is_training:
    d = d.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    d = d.repeat()
  d = d.batch(batch_size, drop_remainder=drop_remainder)

  def parse(records):
    parsed = tf.io.parse_example(records, spec)
    # int64 is what tf.Example stores, int32 what the model (and TPUs) want.
    features = {name: tf.cast(t, tf.int32) for name, t in parsed.items()}
    if dynamic_padding_multiple:
      features = trim_batch_padding(features, dynamic_padding_multiple, seq_length)
    return features

  d = d.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return d.prefetch(tf.data.AUTOTUNE)
