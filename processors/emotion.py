"""Processor for the Kaggle "Emotions dataset for NLP" (same split as dair-ai/emotion).

Layout: train.txt, val.txt, test.txt with one `text;label` line each, no header. The
label is what follows the LAST `;`, so a `;` inside the text is kept. The same splits
are also accepted as train.tsv, dev.tsv (or val.tsv) and test.tsv, with either `;` or
a tab before the label (the tab wins when the line has one). A first line whose label
field is literally `label` is taken as a header and skipped.

Test files may be unlabeled: a line without a separator, or whose last field is not a
known label, is all text and gets the first label ("sadness") as a placeholder, as the
original does for every test set.
"""

from processors.base import (DataError, DataProcessor, InputExample,
                             first_existing, read_text_lines)

_LABELS = ["sadness", "joy", "love", "anger", "fear", "surprise"]


class EmotionProcessor(DataProcessor):
  """Processor for the six-class Emotion data set."""

  def get_train_examples(self, data_dir):
    """See base class."""
    path = first_existing(data_dir, ["train.txt", "train.tsv"])
    return self._create_examples(path, "train")

  def get_dev_examples(self, data_dir):
    """See base class."""
    path = first_existing(data_dir, ["val.txt", "dev.tsv", "val.tsv", "dev.txt"])
    return self._create_examples(path, "dev")

  def get_test_examples(self, data_dir):
    """See base class."""
    path = first_existing(data_dir, ["test.txt", "test.tsv"])
    return self._create_examples(path, "test")

  def get_labels(self):
    """See base class."""
    return list(_LABELS)

  def _create_examples(self, path, set_type):
    """Reads `text;label` lines of `path` into InputExamples.

    Args:
      path: the split's file.
      set_type: "train", "dev" or "test"; used in guids and to allow unlabeled lines.

    Returns:
      list of InputExample with guids "<set_type>-<0-based example index>".
    """
    examples = []
    first = True
    for number, line in read_text_lines(path):
      if not line.strip():
        continue
      text, label = _split(line, tab_allowed=path.endswith(".tsv"))
      if first and label is not None and label.strip().lower() == "label":
        first = False
        continue
      first = False
      if set_type == "test":
        if label is None or label.strip() not in _LABELS:
          text, label = line, _LABELS[0]
      elif label is None:
        raise DataError(f"{path}:{number}: expected `text;label` (2 fields separated "
                        f"by the last ';'), found 1 field")
      label = label.strip()
      if not text.strip():
        raise DataError(f"{path}:{number}: empty text")
      if label not in self.get_labels():
        self._check_label(f"{path}:{number}", label)  # raises, naming the line
      guid = "%s-%d" % (set_type, len(examples))
      examples.append(InputExample(guid=guid, text_a=text, text_b=None, label=label))
    return examples


def _split(line, tab_allowed):
  """Splits a line into (text, label) at the last tab or ';'; label None if neither."""
  if tab_allowed and "\t" in line:
    text, _, label = line.rpartition("\t")
    return text, label
  if ";" in line:
    text, _, label = line.rpartition(";")
    return text, label
  return line, None
