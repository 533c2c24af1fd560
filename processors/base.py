"""Examples, features and the DataProcessor base class of the original run_classifier.py.

The public names and constructor arguments are the original ones, so custom processors
written for google-research/bert (subclass DataProcessor, call self._read_tsv, wrap
fields with tokenization.convert_to_unicode) work unchanged. What is added: every
problem with the input files is raised as one exception type, DataError, whose message
names the file, the line and what was expected.
"""

import contextlib
import csv
import gc
import os
from typing import Dict, List, Optional, Sequence

import tensorflow as tf


@contextlib.contextmanager
def gc_paused():
  """Pauses the cyclic garbage collector while a data set is read or converted.

  Reading or tokenizing a data set allocates hundreds of thousands of small,
  acyclic objects, and every few hundred allocations trigger a collection; the
  full ones scan every live object, TensorFlow's included (about 400,000 after
  `import tensorflow`). On SST-2 train they took more than half of the reading
  time and a quarter of the conversion time. Reference counting still frees
  everything; only cycle detection waits until the end.
  """
  was_enabled = gc.isenabled()
  gc.disable()
  try:
    yield
  finally:
    if was_enabled:
      gc.enable()


class DataError(ValueError):
  """Raised for unreadable or malformed input data; the message names file and line.

  Attributes:
    missing_file: True when the error is that an input file does not exist (its
      directory does), so callers can fall back, e.g. hold out a dev split when a
      data set ships without a dev file.
  """

  def __init__(self, message, missing_file=False):
    super().__init__(message)
    self.missing_file = missing_file


class InputExample(object):
  """A single training/test example for simple sequence classification."""

  def __init__(self, guid, text_a, text_b=None, label=None):
    """Constructs a InputExample.

    Args:
      guid: Unique id for the example.
      text_a: string. The untokenized text of the first sequence. For single
        sequence tasks, only this sequence must be specified.
      text_b: (Optional) string. The untokenized text of the second sequence.
        Only must be specified for sequence pair tasks.
      label: (Optional) string. The label of the example. This should be
        specified for train and dev examples, but not for test examples.
    """
    self.guid = guid
    self.text_a = text_a
    self.text_b = text_b
    self.label = label

  def __repr__(self):
    return (f"InputExample(guid={self.guid!r}, text_a={self.text_a!r}, "
            f"text_b={self.text_b!r}, label={self.label!r})")


class PaddingInputExample(object):
  """Fake example so the number of input examples is a multiple of the batch size.

  TPUs (and drop_remainder=True pipelines) need fixed batch shapes, so the last
  eval/predict batch is filled with these. They become all-zero features with
  is_real_example=False and are ignored by the metrics.
  """


class InputFeatures(object):
  """A single set of features of data."""

  def __init__(self, input_ids, input_mask, segment_ids, label_id,
               is_real_example=True):
    """Constructs an InputFeatures.

    Args:
      input_ids: list of int [max_seq_length], wordpiece ids with [CLS]/[SEP].
      input_mask: list of int [max_seq_length], 1 for real tokens, 0 for padding.
      segment_ids: list of int [max_seq_length], 0 for sentence A, 1 for B.
      label_id: int, index of the label in the processor's label list.
      is_real_example: False for features made from a PaddingInputExample.
    """
    self.input_ids = input_ids
    self.input_mask = input_mask
    self.segment_ids = segment_ids
    self.label_id = label_id
    self.is_real_example = is_real_example


class TsvRows(list):
  """The rows of a TSV file (a plain list of lists of str) plus where they came from.

  Built-in processors use `path` and `line_numbers` to name the offending line in
  errors; custom processors can keep treating the value as the list the original
  _read_tsv returned.
  """

  def __init__(self, rows, path, line_numbers):
    super().__init__(rows)
    self.path = path
    self.line_numbers = list(line_numbers)


def read_text_lines(input_file: str):
  """Reads a UTF-8 text file as (line_number, text) pairs.

  A UTF-8 byte order mark at the start is dropped (GLUE's MRPC files have one).
  Lines are split on \\n, \\r\\n or \\r only, never on Unicode separators inside a
  sentence.

  Args:
    input_file: path of the file.

  Returns:
    list of (1-based line number, str without the line ending).

  Raises:
    DataError: the file or its directory is missing, or a line is not UTF-8.
  """
  with _open_binary(input_file) as f:
    data = f.read()
  if data.startswith(b"\xef\xbb\xbf"):
    data = data[3:]
  raw_lines = data.splitlines()
  try:
    texts = [raw.decode("utf-8") for raw in raw_lines]
  except UnicodeDecodeError:
    _raise_for_first_bad_line(input_file, raw_lines)
  return list(enumerate(texts, start=1))


def _raise_for_first_bad_line(input_file, raw_lines):
  """Raises DataError naming the first of `raw_lines` that is not UTF-8."""
  for number, raw in enumerate(raw_lines, start=1):
    try:
      raw.decode("utf-8")
    except UnicodeDecodeError as e:
      raise DataError(f"{input_file}:{number}: bytes are not valid UTF-8 "
                      f"(byte {e.start + 1} of the line: {raw[e.start:e.start + 4]!r})"
                      ) from None


def _is_file(path: str) -> bool:
  # tf.io.gfile, so data may also live in a gs:// bucket (Cloud TPU VMs).
  return tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path)


# While get_examples runs, the files its processor opens, so that messages about
# the examples (none, too few) can name the files they came from.
_files_opened: Optional[List[str]] = None
_sources_by_split: Dict[str, List[str]] = {}


def _open_binary(input_file):
  if _is_file(input_file):
    if _files_opened is not None:
      _files_opened.append(input_file)
    return tf.io.gfile.GFile(input_file, "rb")
  parent = os.path.dirname(input_file) or "."
  if not tf.io.gfile.isdir(parent):
    raise DataError(f"data directory {parent} does not exist "
                    f"(looked for {os.path.basename(input_file)} in it)")
  raise DataError(f"file not found: {input_file}", missing_file=True)


class DataProcessor(object):
  """Base class for data converters for sequence classification data sets."""

  def get_train_examples(self, data_dir):
    """Gets a collection of `InputExample`s for the train set."""
    raise NotImplementedError()

  def get_dev_examples(self, data_dir):
    """Gets a collection of `InputExample`s for the dev set."""
    raise NotImplementedError()

  def get_test_examples(self, data_dir):
    """Gets a collection of `InputExample`s for prediction."""
    raise NotImplementedError()

  def get_labels(self):
    """Gets the list of labels for this data set."""
    raise NotImplementedError()

  @classmethod
  def _read_tsv(cls, input_file, quotechar=None):
    """Reads a tab separated value file.

    Args:
      input_file: path of the file.
      quotechar: csv quote character; None (the default, as in the original)
        reads quotes as ordinary characters.

    Returns:
      TsvRows: a list of rows (lists of str), with .path and .line_numbers.
    """
    numbered = read_text_lines(input_file)
    if quotechar is None:
      # Without quoting no field spans lines: line k is row k. The csv module
      # does the whole file in one call; on an error the loop below names the line.
      try:
        rows = list(csv.reader([text for _, text in numbered], delimiter="\t",
                               quotechar=None))
        return TsvRows(rows, input_file, [number for number, _ in numbered])
      except csv.Error:
        pass
    # Keep the line endings so a quoted field spanning lines still parses when
    # quotechar is given; reader.line_num then points at the row's last line.
    physical = [text + "\n" for _, text in numbered]
    reader = csv.reader(iter(physical), delimiter="\t", quotechar=quotechar)
    rows, line_numbers = [], []
    try:
      for row in reader:
        rows.append(row)
        line_numbers.append(reader.line_num)
    except csv.Error as e:
      raise DataError(f"{input_file}:{reader.line_num}: malformed TSV ({e})") from None
    return TsvRows(rows, input_file, line_numbers)

  # Helpers for processors that want errors naming the file and line. They work on
  # the value returned by _read_tsv.

  @staticmethod
  def _line_number(lines, i):
    numbers = getattr(lines, "line_numbers", None)
    return numbers[i] if numbers is not None else i + 1

  @classmethod
  def _where(cls, lines, i):
    return f"{getattr(lines, 'path', '<tsv>')}:{cls._line_number(lines, i)}"

  @classmethod
  def _check_columns(cls, lines, i, expected):
    """Raises DataError unless row i of `lines` has at least `expected` columns."""
    found = len(lines[i])
    if found < expected:
      raise DataError(f"{cls._where(lines, i)}: expected at least {expected} "
                      f"tab-separated columns, found {found}")

  @classmethod
  def _text(cls, lines, i, column):
    """Returns column `column` of row i, raising DataError if it is empty."""
    text = lines[i][column]
    if not text.strip():
      raise DataError(f"{cls._where(lines, i)}: empty text in column {column + 1}")
    return text

  def _row_label(self, lines, i, label):
    """Returns `label`, read from row i of `lines`, if get_labels() has it.

    Raises:
      DataError: naming the file and line, when the label is unknown.
    """
    if label not in self.get_labels():
      self._check_label(self._where(lines, i), label)  # raises
    return label

  def _check_label(self, where, label):
    """Raises DataError if `label` is not one of get_labels()."""
    labels = self.get_labels()
    if label not in labels:
      raise DataError(f"{where}: unknown label {label!r}; expected one of "
                      f"{', '.join(repr(x) for x in labels)}")
    return label


def get_examples(processor: DataProcessor, split: str, data_dir: str
                 ) -> List[InputExample]:
  """Calls the processor's getter for a split, with the garbage collector paused.

  Args:
    processor: a DataProcessor (built-in or custom).
    split: "train", "dev" or "test".
    data_dir: the directory the getter reads.

  Returns:
    what processor.get_train_examples / get_dev_examples / get_test_examples
    returns for data_dir.
  """
  getter = {"train": processor.get_train_examples, "dev": processor.get_dev_examples,
            "test": processor.get_test_examples}[split]
  global _files_opened
  _files_opened = []
  try:
    with gc_paused():
      examples = getter(data_dir)
    _sources_by_split[split] = list(dict.fromkeys(_files_opened))
  finally:
    _files_opened = None
  return examples


def example_sources(split: str, data_dir: str) -> str:
  """The files the last get_examples(split) read, for messages (else data_dir).

  Args:
    split: "train", "dev" or "test".
    data_dir: what to name when the processor read its files another way.
  """
  files = _sources_by_split.get(split)
  return ", ".join(files) if files else f"--data_dir={data_dir}"


def require_dir(data_dir: str) -> None:
  """Raises DataError if `data_dir` is not an existing directory.

  Args:
    data_dir: the --data_dir given by the user.
  """
  if not tf.io.gfile.isdir(data_dir):
    raise DataError(f"data directory {data_dir} does not exist")


def first_existing(data_dir: str, names: Sequence[str]) -> str:
  """Returns the path of the first of `names` that exists in `data_dir`.

  Args:
    data_dir: directory to look in.
    names: candidate file names, in order of preference.

  Returns:
    the path of the first existing file.

  Raises:
    DataError: data_dir is missing, or none of the names exists (all are listed).
  """
  require_dir(data_dir)
  for name in names:
    path = os.path.join(data_dir, name)
    if _is_file(path):
      return path
  raise DataError(f"none of {', '.join(names)} found in {data_dir}",
                  missing_file=True)
