"""Tests of the data processors and the task registry on small hand-written files."""

import gc
import logging
import os
import sys

import pytest

import processors
from processors import registry


def _write(path, text, encoding="utf-8"):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  data = text.encode(encoding) if isinstance(text, str) else text
  with open(path, "wb") as f:
    f.write(data)
  return str(path)


@pytest.fixture
def clean_registry():
  """Restores the registry and sys.modules after a test that registers processors."""
  saved = dict(registry._REGISTRY)
  modules = set(sys.modules)
  yield
  registry._REGISTRY.clear()
  registry._REGISTRY.update(saved)
  for name in set(sys.modules) - modules:
    del sys.modules[name]


# ----------------------------------------------------------------------- emotion

def test_emotion_txt_splits_on_last_semicolon(tmp_path):
  _write(tmp_path / "train.txt",
         "i feel sad;sadness\nsemi; colons; inside;joy\n\ni love it;love\n")
  _write(tmp_path / "val.txt", "so angry;anger\n")
  _write(tmp_path / "test.txt", "scared of spiders\ni am; surprised;surprise\n")
  p = processors.get_processor("emotion")
  assert p.get_labels() == ["sadness", "joy", "love", "anger", "fear", "surprise"]
  train = p.get_train_examples(str(tmp_path))
  assert [(e.guid, e.text_a, e.text_b, e.label) for e in train] == [
      ("train-0", "i feel sad", None, "sadness"),
      ("train-1", "semi; colons; inside", None, "joy"),
      ("train-2", "i love it", None, "love"),
  ]
  dev = p.get_dev_examples(str(tmp_path))
  assert [(e.guid, e.label) for e in dev] == [("dev-0", "anger")]
  test = p.get_test_examples(str(tmp_path))
  # Unlabeled line -> placeholder first label; labeled line keeps its label.
  assert [(e.guid, e.text_a, e.label) for e in test] == [
      ("test-0", "scared of spiders", "sadness"),
      ("test-1", "i am; surprised", "surprise"),
  ]


def test_emotion_tsv_layout_with_header_and_tabs(tmp_path):
  _write(tmp_path / "train.tsv", "text\tlabel\nfear; of the dark\tfear\nok;joy\n")
  _write(tmp_path / "val.tsv", "wow\tsurprise\n")
  _write(tmp_path / "test.tsv", "no label here; really\n")
  p = processors.get_processor("Emotion")
  train = p.get_train_examples(str(tmp_path))
  assert [(e.text_a, e.label) for e in train] == [("fear; of the dark", "fear"),
                                                  ("ok", "joy")]
  assert [(e.guid, e.label) for e in p.get_dev_examples(str(tmp_path))] == [
      ("dev-0", "surprise")]
  # "really" is not a label, so the whole line is text with the placeholder.
  test = p.get_test_examples(str(tmp_path))
  assert [(e.text_a, e.label) for e in test] == [("no label here; really", "sadness")]


def test_emotion_prefers_dev_tsv_over_val_tsv(tmp_path):
  _write(tmp_path / "dev.tsv", "from dev;joy\n")
  _write(tmp_path / "val.tsv", "from val;joy\n")
  dev = processors.get_processor("emotion").get_dev_examples(str(tmp_path))
  assert [e.text_a for e in dev] == ["from dev"]


# ----------------------------------------------------------------------- GLUE

_MRPC_HEADER = "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"


def test_mrpc(tmp_path):
  _write(tmp_path / "train.tsv", _MRPC_HEADER + "1\t11\t12\tHe said \"yes\" .\tHe agreed .\n"
         "0\t13\t14\tA b .\tC d .\n")
  _write(tmp_path / "dev.tsv", _MRPC_HEADER + "0\t1\t2\tx .\ty .\n")
  _write(tmp_path / "test.tsv", "index\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
         "0\t5\t6\tp .\tq .\n")
  p = processors.get_processor("MRPC")
  train = p.get_train_examples(str(tmp_path))
  assert [(e.guid, e.text_a, e.text_b, e.label) for e in train] == [
      ("train-1", "He said \"yes\" .", "He agreed .", "1"),
      ("train-2", "A b .", "C d .", "0"),
  ]
  assert [e.guid for e in p.get_dev_examples(str(tmp_path))] == ["dev-1"]
  test = p.get_test_examples(str(tmp_path))
  assert [(e.guid, e.text_a, e.text_b, e.label) for e in test] == [
      ("test-1", "p .", "q .", "0")]


@pytest.mark.parametrize("name", ["sst2", "SST-2", "sst-2"])
def test_sst2_and_alias(tmp_path, name):
  _write(tmp_path / "train.tsv", "sentence\tlabel\ngood film \t1\nbad\t0\n\n")
  _write(tmp_path / "dev.tsv", "sentence\tlabel\nfine\t1\n")
  _write(tmp_path / "test.tsv", "index\tsentence\n0\tunseen\n")
  p = processors.get_processor(name)
  assert isinstance(p, processors.Sst2Processor)
  assert [(e.guid, e.text_a, e.label) for e in p.get_train_examples(str(tmp_path))] == [
      ("train-1", "good film ", "1"), ("train-2", "bad", "0")]
  assert [(e.guid, e.label) for e in p.get_dev_examples(str(tmp_path))] == [("dev-1", "1")]
  assert [(e.guid, e.text_a, e.label) for e in p.get_test_examples(str(tmp_path))] == [
      ("test-1", "unseen", "0")]


def test_cola_header_only_in_test(tmp_path):
  _write(tmp_path / "train.tsv", "gj04\t1\t\tThe sailors rode the breeze .\n"
         "gj04\t0\t*\tThe more we study .\n")
  _write(tmp_path / "dev.tsv", "gj04\t1\t\tOk .\n")
  _write(tmp_path / "test.tsv", "index\tsentence\n0\tBill left .\n")
  p = processors.get_processor("cola")
  train = p.get_train_examples(str(tmp_path))
  assert [(e.guid, e.text_a, e.label) for e in train] == [
      ("train-0", "The sailors rode the breeze .", "1"),
      ("train-1", "The more we study .", "0")]
  assert [e.guid for e in p.get_dev_examples(str(tmp_path))] == ["dev-0"]
  assert [(e.guid, e.text_a, e.label) for e in p.get_test_examples(str(tmp_path))] == [
      ("test-1", "Bill left .", "0")]


def _mnli_row(pair_id, a, b, label):
  return "\t".join([pair_id, "1", "2", "g", "(a)", "(b)", "(A)", "(B)", a, b, label]) + "\n"


def test_mnli_matched_files_and_pair_id_guids(tmp_path):
  header = "\t".join(["index", "promptID", "pairID", "genre", "p1", "p2", "p", "h",
                      "sentence1", "sentence2", "gold_label"]) + "\n"
  _write(tmp_path / "train.tsv", header + _mnli_row("7", "A man .", "A person .",
                                                    "entailment"))
  _write(tmp_path / "dev_matched.tsv", header + _mnli_row("9", "x", "y", "neutral"))
  _write(tmp_path / "test_matched.tsv", header.replace("\tgold_label", "") +
         "\t".join(["3", "1", "2", "g", "(a)", "(b)", "(A)", "(B)", "t1", "t2"]) + "\n")
  p = processors.get_processor("mnli")
  assert p.get_labels() == ["contradiction", "entailment", "neutral"]
  assert [(e.guid, e.text_a, e.text_b, e.label)
          for e in p.get_train_examples(str(tmp_path))] == [
              ("train-7", "A man .", "A person .", "entailment")]
  assert [(e.guid, e.label) for e in p.get_dev_examples(str(tmp_path))] == [
      ("dev_matched-9", "neutral")]
  assert [(e.guid, e.text_a, e.label) for e in p.get_test_examples(str(tmp_path))] == [
      ("test-3", "t1", "contradiction")]


def test_xnli_language_filter_and_contradictory(tmp_path):
  _write(tmp_path / "multinli" / "multinli.train.zh.tsv",
         "premise\thypo\tlabel\n\u4e00\u4e8c\t\u4e09\tcontradictory\n"
         "a\tb\tneutral\n")
  dev_cols = lambda lang, label, a, b: "\t".join(
      [lang, label, "x", "x", "x", "x", a, b]) + "\n"
  _write(tmp_path / "xnli.dev.tsv", "language\tgold_label\tc\tc\tc\tc\ts1\ts2\n" +
         dev_cols("en", "neutral", "e1", "e2") + dev_cols("zh", "entailment", "z1", "z2"))
  p = processors.get_processor("XNLI")
  assert p.language == "zh"
  train = p.get_train_examples(str(tmp_path))
  assert [(e.guid, e.text_a, e.label) for e in train] == [
      ("train-1", "\u4e00\u4e8c", "contradiction"), ("train-2", "a", "neutral")]
  dev = p.get_dev_examples(str(tmp_path))
  assert [(e.guid, e.text_a, e.text_b, e.label) for e in dev] == [
      ("dev-2", "z1", "z2", "entailment")]
  p.language = "en"
  assert [e.guid for e in p.get_dev_examples(str(tmp_path))] == ["dev-1"]


# ----------------------------------------------------------------------- errors

def test_missing_data_dir(tmp_path):
  missing = str(tmp_path / "nope")
  for task in ["emotion", "mrpc"]:
    with pytest.raises(processors.DataError, match="nope.*does not exist") as err:
      processors.get_processor(task).get_train_examples(missing)
    assert err.value.missing_file is False


def test_missing_file_names_what_was_looked_for(tmp_path):
  with pytest.raises(processors.DataError, match=r"file not found: .*dev\.tsv") as err:
    processors.get_processor("mrpc").get_dev_examples(str(tmp_path))
  assert err.value.missing_file is True
  with pytest.raises(processors.DataError, match=r"val\.txt, dev\.tsv, val\.tsv") as err:
    processors.get_processor("emotion").get_dev_examples(str(tmp_path))
  assert err.value.missing_file is True


def test_too_few_columns_names_file_line_and_counts(tmp_path):
  _write(tmp_path / "train.tsv", _MRPC_HEADER + "1\t1\t2\ta\tb\n1\t1\t2\tonly a\n")
  with pytest.raises(processors.DataError) as err:
    processors.get_processor("mrpc").get_train_examples(str(tmp_path))
  message = str(err.value)
  assert "train.tsv:3:" in message
  assert "expected at least 5" in message and "found 4" in message


def test_emotion_line_without_label_in_train(tmp_path):
  _write(tmp_path / "train.txt", "fine;joy\nno separator here\n")
  with pytest.raises(processors.DataError, match=r"train\.txt:2: expected `text;label`"):
    processors.get_processor("emotion").get_train_examples(str(tmp_path))


def test_unknown_label(tmp_path):
  _write(tmp_path / "train.txt", "fine;joy\n\nbad;happiness\n")
  with pytest.raises(processors.DataError) as err:
    processors.get_processor("emotion").get_train_examples(str(tmp_path))
  assert err.value.missing_file is False
  message = str(err.value)
  assert "train.txt:3:" in message and "'happiness'" in message
  assert "'sadness'" in message and "'surprise'" in message
  _write(tmp_path / "sst" / "train.tsv", "sentence\tlabel\nok\t1\nbad\t2\n")
  with pytest.raises(processors.DataError, match=r"train\.tsv:3: unknown label '2'"):
    processors.get_processor("sst2").get_train_examples(str(tmp_path / "sst"))


def test_empty_text(tmp_path):
  _write(tmp_path / "train.txt", "fine;joy\n ;anger\n")
  with pytest.raises(processors.DataError, match=r"train\.txt:2: empty text"):
    processors.get_processor("emotion").get_train_examples(str(tmp_path))
  _write(tmp_path / "mrpc" / "dev.tsv", _MRPC_HEADER + "1\t1\t2\ta\t\n")
  with pytest.raises(processors.DataError, match=r"dev\.tsv:2: empty text in column 5"):
    processors.get_processor("mrpc").get_dev_examples(str(tmp_path / "mrpc"))


def test_not_utf8(tmp_path):
  _write(tmp_path / "train.txt", b"fine;joy\ncaf\xe9;joy\n")
  with pytest.raises(processors.DataError, match=r"train\.txt:2: bytes are not valid UTF-8"):
    processors.get_processor("emotion").get_train_examples(str(tmp_path))
  _write(tmp_path / "sst" / "train.tsv", b"sentence\tlabel\nok\t1\nna\xefve\t0\n")
  with pytest.raises(processors.DataError, match=r"train\.tsv:3: bytes are not valid"):
    processors.get_processor("sst2").get_train_examples(str(tmp_path / "sst"))


def test_data_error_is_a_value_error():
  assert issubclass(processors.DataError, ValueError)


# ----------------------------------------------------------------------- registry

def test_registry_is_case_insensitive_and_lists_known_names():
  assert isinstance(processors.get_processor("  MrPc "), processors.MrpcProcessor)
  assert processors.known_tasks() == sorted(processors.known_tasks())
  for name in ["cola", "emotion", "mnli", "mrpc", "sst-2", "sst2", "xnli"]:
    assert name in processors.known_tasks()
  with pytest.raises(ValueError) as err:
    processors.get_processor("imdb")
  assert "'imdb'" in str(err.value)
  assert "cola, emotion, mnli, mrpc, sst-2, sst2, xnli" in str(err.value)


def test_register_processor_direct_and_decorator(clean_registry):
  @processors.register_processor("Reviews")
  class ReviewsProcessor(processors.DataProcessor):
    def get_labels(self):
      return ["neg", "pos"]

  assert isinstance(processors.get_processor("reviews"), ReviewsProcessor)
  processors.register_processor("reviews2", ReviewsProcessor)
  assert "reviews2" in processors.known_tasks()
  with pytest.raises(TypeError, match="subclass of processors.DataProcessor"):
    processors.register_processor("bad", object)


_USER_MODULE = '''
import os
import processors
import tokenization
from processors import DataProcessor, InputExample


class MyTaskProcessor(DataProcessor):
  """Written the way users wrote processors for the original run_classifier.py."""

  def get_train_examples(self, data_dir):
    return self._create_examples(
        self._read_tsv(os.path.join(data_dir, "train.tsv")), "train")

  def get_labels(self):
    return ["neg", "pos"]

  def _create_examples(self, lines, set_type):
    examples = []
    for (i, line) in enumerate(lines):
      guid = "%s-%s" % (set_type, i)
      text_a = tokenization.convert_to_unicode(line[1])
      label = tokenization.convert_to_unicode(line[0])
      examples.append(InputExample(guid=guid, text_a=text_a, text_b=None, label=label))
    return examples


class EmotionProcessor(DataProcessor):
  def get_labels(self):
    return ["happy", "sad"]


@processors.register_processor("explicit_name")
class SomethingProcessor(DataProcessor):
  def get_labels(self):
    return ["a"]
'''


def test_load_user_module_file(tmp_path, clean_registry, caplog):
  path = _write(tmp_path / "my_processors.py", _USER_MODULE)
  _write(tmp_path / "data" / "train.tsv", "pos\tnice \"quoted\" film\nneg\tdull\n")
  builtin = processors.get_processor("emotion")
  with caplog.at_level(logging.WARNING):
    module = processors.load_processor_module(path)
  mine = processors.get_processor("MyTask")
  assert type(mine) is module.MyTaskProcessor
  examples = mine.get_train_examples(str(tmp_path / "data"))
  assert [(e.guid, e.text_a, e.label) for e in examples] == [
      ("train-0", "nice \"quoted\" film", "pos"), ("train-1", "dull", "neg")]
  # The user's EmotionProcessor shadows the built-in one, with a warning.
  assert type(builtin) is processors.EmotionProcessor
  assert processors.get_processor("emotion").get_labels() == ["happy", "sad"]
  assert any("'emotion'" in r.getMessage() for r in caplog.records)
  # An explicitly registered class keeps its explicit name only.
  assert type(processors.get_processor("explicit_name")) is module.SomethingProcessor
  assert "something" not in processors.known_tasks()


def test_load_user_module_by_dotted_name(tmp_path, clean_registry, monkeypatch):
  _write(tmp_path / "userpkg" / "__init__.py", "")
  _write(tmp_path / "userpkg" / "tasks.py", _USER_MODULE)
  monkeypatch.syspath_prepend(str(tmp_path))
  processors.load_processor_module("userpkg.tasks")
  assert processors.get_processor("mytask").get_labels() == ["neg", "pos"]


def test_load_user_module_errors(tmp_path):
  with pytest.raises(ValueError, match="not found"):
    processors.load_processor_module(str(tmp_path / "absent.py"))
  with pytest.raises(ValueError, match="'no_such_module_xyz' not found"):
    processors.load_processor_module("no_such_module_xyz")


def test_load_user_module_with_broken_import(tmp_path, clean_registry, monkeypatch):
  # An import error inside the user's module is reported as itself, not as
  # "module not found".
  _write(tmp_path / "broken_tasks.py", "import no_such_dependency_xyz\n")
  monkeypatch.syspath_prepend(str(tmp_path))
  with pytest.raises(ModuleNotFoundError, match="no_such_dependency_xyz"):
    processors.load_processor_module("broken_tasks")


def test_read_tsv_keeps_quotes_and_reports_lines(tmp_path):
  path = _write(tmp_path / "x.tsv", "a\t\"b\n\nc\n")
  rows = processors.DataProcessor._read_tsv(path)
  assert rows == [["a", "\"b"], [], ["c"]]
  assert rows.line_numbers == [1, 2, 3] and rows.path == path


def test_read_tsv_names_the_line_of_a_csv_error(tmp_path):
  # Lines read in one call without quoting, one by one with a quote character:
  # either way an oversized field (over the csv module's 131,072 characters) is
  # reported with its line.
  path = _write(tmp_path / "x.tsv", "a\tb\nc\t" + "x" * 140000 + "\nd\te\n")
  for quotechar in (None, '"'):
    with pytest.raises(processors.DataError, match=r"x\.tsv:2: malformed TSV"):
      processors.DataProcessor._read_tsv(path, quotechar=quotechar)


def test_get_examples_pauses_the_garbage_collector(tmp_path):
  _write(tmp_path / "train.tsv", "sentence\tlabel\ngood\t1\nbad\t0\n")
  _write(tmp_path / "dev.tsv", "sentence\tlabel\nok\t2\n")
  seen = []

  class Recording(processors.Sst2Processor):
    def _create_examples(self, lines, set_type):
      seen.append(gc.isenabled())
      return super()._create_examples(lines, set_type)

  processor = Recording()
  examples = processors.get_examples(processor, "train", str(tmp_path))
  assert [(e.guid, e.text_a, e.label) for e in examples] == [
      ("train-1", "good", "1"), ("train-2", "bad", "0")]
  # The collector runs again afterwards, also after an error.
  with pytest.raises(processors.DataError, match=r"dev\.tsv:2: unknown label '2'"):
    processors.get_examples(processor, "dev", str(tmp_path))
  assert seen == [False, False] and gc.isenabled()


def test_user_module_can_import_the_running_script(tmp_path):
  # Processor files written for the original import DataProcessor from
  # run_classifier; while run_classifier.py runs, that must not execute it again.
  import subprocess
  script = _write(tmp_path / "run_classifier.py", (
      "import sys\n"
      "import processors\n"
      "from processors import DataProcessor\n"
      "RUNS = globals().get('RUNS', 0) + 1\n"
      "if __name__ == '__main__':\n"
      "  processors.load_processor_module(sys.argv[1])\n"
      "  print(type(processors.get_processor('legacy')).__name__, RUNS)\n"))
  user = _write(tmp_path / "legacy_processors.py", (
      "import run_classifier\n"
      "from run_classifier import DataProcessor\n"
      "assert run_classifier.__name__ == '__main__', 'script imported twice'\n"
      "class LegacyProcessor(DataProcessor):\n"
      "  def get_labels(self):\n"
      "    return ['x']\n"))
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = dict(os.environ, PYTHONPATH=root, TF_CPP_MIN_LOG_LEVEL="3")
  result = subprocess.run([sys.executable, script, user], capture_output=True,
                          text=True, env=env, timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.split() == ["LegacyProcessor", "1"]
