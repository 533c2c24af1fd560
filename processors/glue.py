"""GLUE and XNLI processors with the original file names, columns, headers and guids.

MRPC, CoLA, MNLI and XNLI follow google-research/bert's run_classifier.py; SST-2
follows the TSV processor of Model Garden's classifier_data_lib. Test files carry no
labels, so their examples get the first label as a placeholder, as the original does.
"""

import os

from processors.base import DataProcessor, InputExample, require_dir


class _TsvProcessor(DataProcessor):
  """Shared reading: checks the data dir, then reads one TSV file of it."""

  def _lines(self, data_dir, *parts):
    require_dir(data_dir)
    return self._read_tsv(os.path.join(data_dir, *parts))


class MrpcProcessor(_TsvProcessor):
  """Processor for the MRPC data set (GLUE version)."""

  def get_train_examples(self, data_dir):
    """See base class."""
    return self._create_examples(self._lines(data_dir, "train.tsv"), "train")

  def get_dev_examples(self, data_dir):
    """See base class."""
    return self._create_examples(self._lines(data_dir, "dev.tsv"), "dev")

  def get_test_examples(self, data_dir):
    """See base class."""
    return self._create_examples(self._lines(data_dir, "test.tsv"), "test")

  def get_labels(self):
    """See base class."""
    return ["0", "1"]

  def _create_examples(self, lines, set_type):
    """Creates examples for the training, dev and test sets."""
    examples = []
    for i in range(len(lines)):
      if not lines[i]:  # blank line, e.g. a trailing empty line
        continue
      if i == 0:  # header
        continue
      self._check_columns(lines, i, 5)
      guid = "%s-%s" % (set_type, i)
      text_a = self._text(lines, i, 3)
      text_b = self._text(lines, i, 4)
      if set_type == "test":
        label = "0"
      else:
        label = self._row_label(lines, i, lines[i][0])
      examples.append(_example(guid, text_a, text_b, label))
    return examples


class Sst2Processor(_TsvProcessor):
  """Processor for the SST-2 data set (GLUE version)."""

  def get_train_examples(self, data_dir):
    """See base class."""
    return self._create_examples(self._lines(data_dir, "train.tsv"), "train")

  def get_dev_examples(self, data_dir):
    """See base class."""
    return self._create_examples(self._lines(data_dir, "dev.tsv"), "dev")

  def get_test_examples(self, data_dir):
    """See base class."""
    return self._create_examples(self._lines(data_dir, "test.tsv"), "test")

  def get_labels(self):
    """See base class."""
    return ["0", "1"]

  def _create_examples(self, lines, set_type):
    """Creates examples: header `sentence\\tlabel`; test header `index\\tsentence`."""
    examples = []
    for i in range(len(lines)):
      if not lines[i]:  # blank line, e.g. a trailing empty line
        continue
      if i == 0:  # header
        continue
      self._check_columns(lines, i, 2)
      guid = "%s-%s" % (set_type, i)
      if set_type == "test":
        text_a = self._text(lines, i, 1)
        label = "0"
      else:
        text_a = self._text(lines, i, 0)
        label = self._row_label(lines, i, lines[i][1])
      examples.append(_example(guid, text_a, None, label))
    return examples


class ColaProcessor(_TsvProcessor):
  """Processor for the CoLA data set (GLUE version)."""

  def get_train_examples(self, data_dir):
    """See base class."""
    return self._create_examples(self._lines(data_dir, "train.tsv"), "train")

  def get_dev_examples(self, data_dir):
    """See base class."""
    return self._create_examples(self._lines(data_dir, "dev.tsv"), "dev")

  def get_test_examples(self, data_dir):
    """See base class."""
    return self._create_examples(self._lines(data_dir, "test.tsv"), "test")

  def get_labels(self):
    """See base class."""
    return ["0", "1"]

  def _create_examples(self, lines, set_type):
    """Creates examples; only the test set has a header, as in GLUE's CoLA files."""
    examples = []
    for i in range(len(lines)):
      if not lines[i]:  # blank line, e.g. a trailing empty line
        continue
      if set_type == "test" and i == 0:
        continue
      guid = "%s-%s" % (set_type, i)
      if set_type == "test":
        self._check_columns(lines, i, 2)
        text_a = self._text(lines, i, 1)
        label = "0"
      else:
        self._check_columns(lines, i, 4)
        text_a = self._text(lines, i, 3)
        label = self._row_label(lines, i, lines[i][1])
      examples.append(_example(guid, text_a, None, label))
    return examples


class MnliProcessor(_TsvProcessor):
  """Processor for the MultiNLI data set (GLUE version); dev/test are the matched sets."""

  def get_train_examples(self, data_dir):
    """See base class."""
    return self._create_examples(self._lines(data_dir, "train.tsv"), "train")

  def get_dev_examples(self, data_dir):
    """See base class."""
    return self._create_examples(self._lines(data_dir, "dev_matched.tsv"),
                                 "dev_matched")

  def get_test_examples(self, data_dir):
    """See base class."""
    return self._create_examples(self._lines(data_dir, "test_matched.tsv"), "test")

  def get_labels(self):
    """See base class."""
    return ["contradiction", "entailment", "neutral"]

  def _create_examples(self, lines, set_type):
    """Creates examples; guid uses the file's own pair id (column 0)."""
    examples = []
    for i in range(len(lines)):
      if not lines[i]:  # blank line, e.g. a trailing empty line
        continue
      if i == 0:  # header
        continue
      self._check_columns(lines, i, 10)
      guid = "%s-%s" % (set_type, lines[i][0])
      text_a = self._text(lines, i, 8)
      text_b = self._text(lines, i, 9)
      if set_type == "test":
        label = "contradiction"
      else:
        label = self._row_label(lines, i, lines[i][-1])
      examples.append(_example(guid, text_a, text_b, label))
    return examples


class XnliProcessor(_TsvProcessor):
  """Processor for the XNLI data set: MultiNLI translated train, XNLI dev.

  Attributes:
    language: the XNLI language code to read ("zh" by default, as the original).
  """

  def __init__(self, language="zh"):
    self.language = language

  def get_train_examples(self, data_dir):
    """See base class."""
    lines = self._lines(data_dir, "multinli",
                        "multinli.train.%s.tsv" % self.language)
    examples = []
    for i in range(len(lines)):
      if not lines[i]:  # blank line, e.g. a trailing empty line
        continue
      if i == 0:  # header
        continue
      self._check_columns(lines, i, 3)
      guid = "train-%d" % i
      text_a = self._text(lines, i, 0)
      text_b = self._text(lines, i, 1)
      label = lines[i][2]
      # The translated MultiNLI files spell this label differently.
      if label == "contradictory":
        label = "contradiction"
      label = self._row_label(lines, i, label)
      examples.append(_example(guid, text_a, text_b, label))
    return examples

  def get_dev_examples(self, data_dir):
    """See base class."""
    lines = self._lines(data_dir, "xnli.dev.tsv")
    examples = []
    for i in range(len(lines)):
      if not lines[i]:  # blank line, e.g. a trailing empty line
        continue
      if i == 0:  # header
        continue
      self._check_columns(lines, i, 8)
      guid = "dev-%d" % i
      if lines[i][0] != self.language:
        continue
      text_a = self._text(lines, i, 6)
      text_b = self._text(lines, i, 7)
      label = self._row_label(lines, i, lines[i][1])
      examples.append(_example(guid, text_a, text_b, label))
    return examples

  def get_test_examples(self, data_dir):
    """XNLI has no test split in the original either."""
    raise NotImplementedError("the xnli processor has no test split (as in the "
                              "original run_classifier.py); predict on the dev set")

  def get_labels(self):
    """See base class."""
    return ["contradiction", "entailment", "neutral"]


def _example(guid, text_a, text_b, label):
  return InputExample(guid=guid, text_a=text_a, text_b=text_b, label=label)
