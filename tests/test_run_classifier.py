"""End-to-end tests of run_classifier.py on a tiny config, as a user runs it."""

import glob
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from cli_helpers import (LABELS, PROJECT_ROOT, checkpoint_arrays, classifier_args,
                         cli_env, read_eval_results, run_script, write_tiny_setup)


def _train_losses(output_dir):
  """(step, loss) pairs from the TensorBoard summaries the run wrote."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  losses = {}
  for path in sorted(glob.glob(os.path.join(output_dir, "train", "events.*"))):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag == "loss":
          losses[event.step] = float(tf.make_ndarray(value.tensor))
  return [losses[k] for k in sorted(losses)], sorted(losses)


def test_train_eval_predict_end_to_end(tmp_path):
  setup = write_tiny_setup(tmp_path)
  out = tmp_path / "out"
  args = classifier_args(setup, out, "--do_train", "--do_eval", "--do_predict",
                         "--train_batch_size=8", "--num_train_epochs=20",
                         "--learning_rate=1e-3", "--save_checkpoints_steps=100",
                         "--log_every_steps=40")
  result = run_script("run_classifier.py", args)
  log = result.stderr
  # The original's logging of the first examples, the length report, progress lines.
  assert "*** Example ***" in log and "guid: train-0" in log
  assert "Token lengths of 96 training examples" in log
  assert "examples/sec" in log and "lr = " in log
  # 96 examples / 8 * 20 epochs = 240 steps.
  evals = read_eval_results(out / "eval_results.txt")
  for key in ("eval_accuracy", "eval_loss", "global_step", "loss", "eval_macro_f1",
              "eval_mcc", "eval_confusion_matrix", "eval_f1_surprise",
              "eval_precision_joy", "eval_recall_anger"):
    assert key in evals, key
  assert evals["global_step"] == "240"
  matrix = json.loads(evals["eval_confusion_matrix"])
  assert np.array(matrix).shape == (6, 6) and np.array(matrix).sum() == 24
  # The cue words make the task learnable: a working loop brings the training loss
  # well down. (Dev accuracy after 240 steps of this 2-layer model depends on the
  # random draws: the final training loss ranged 0.19-1.21 over 9 seeds with either
  # dropout, and dev accuracy with dropout off 0.25-1.0 over 4, so it is not a
  # test of the loop.)
  losses, steps = _train_losses(out)
  assert steps[-1] == 240 and losses[-1] < 0.8 * losses[0], losses
  assert np.isfinite(float(evals["eval_loss"]))

  rows = (out / "test_results.tsv").read_text().splitlines()
  assert len(rows) == 20
  probs = np.array([[float(x) for x in row.split("\t")] for row in rows])
  assert probs.shape == (20, 6)
  np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
  human = (out / "test_predictions.tsv").read_text().splitlines()
  assert human[0].split("\t") == ["guid", "prediction"] + LABELS
  assert human[1].split("\t")[0] == "test-0"
  assert human[1].split("\t")[1] == LABELS[int(np.argmax(probs[0]))]

  # Checkpoints in the original naming, with optimizer slots and global_step.
  names = checkpoint_arrays(out / "model.ckpt-240")
  assert "bert/encoder/layer_1/attention/self/query/kernel" in names
  assert "bert/encoder/layer_1/attention/self/query/kernel/adam_m" in names
  assert names["output_weights"].shape == (6, 32)
  assert int(names["global_step"]) == 240
  assert os.path.exists(out / "model.ckpt-200.index")
  assert os.path.exists(out / "train.tf_record")

  # A second run with unchanged inputs reuses the TFRecords and resumes at the end.
  result = run_script("run_classifier.py", args)
  assert "Reusing" in result.stderr
  assert "nothing to train" in result.stderr
  rows2 = (out / "test_results.tsv").read_text().splitlines()
  np.testing.assert_allclose(
      np.array([[float(x) for x in r.split("\t")] for r in rows2]), probs, atol=1e-6)


RESUME_ARGS = ("--do_train", "--train_batch_size=8", "--num_train_epochs=3",
               "--learning_rate=1e-3", "--save_checkpoints_steps=10",
               "--iterations_per_loop=1", "--log_every_steps=10", "--seed=7")
RESUME_FINAL = "model.ckpt-150"


@pytest.fixture(scope="module")
def uninterrupted_run(tmp_path_factory):
  """400 examples, 150 steps, trained in one go."""
  root = tmp_path_factory.mktemp("uninterrupted")
  setup = write_tiny_setup(root, n_train=400)
  run_script("run_classifier.py", classifier_args(setup, root / "out", *RESUME_ARGS))
  return setup, root / "out"


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_run_resumes_to_the_same_weights(uninterrupted_run, tmp_path, sig):
  setup, straight = uninterrupted_run
  interrupted = tmp_path / "interrupted"
  proc = subprocess.Popen(
      [sys.executable, str(PROJECT_ROOT / "run_classifier.py"),
       *classifier_args(setup, interrupted, *RESUME_ARGS)],
      env=cli_env(), cwd=str(PROJECT_ROOT), stdout=subprocess.DEVNULL,
      stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 240
  while time.time() < deadline and proc.poll() is None:
    if os.path.exists(interrupted / "model.ckpt-20.index"):
      break
    time.sleep(0.02)
  assert proc.poll() is None, "the run ended before it could be interrupted"
  proc.send_signal(sig)
  _, stderr = proc.communicate(timeout=120)
  assert proc.returncode != 0
  assert not os.path.exists(interrupted / f"{RESUME_FINAL}.index"), "interrupted too late"
  if sig == signal.SIGINT:
    # Ctrl-C keeps the steps done since the last periodic checkpoint.
    assert "Interrupted (SIGINT) at step" in stderr, stderr[-3000:]
    assert proc.returncode == 130
  else:
    # kill -9 leaves the run's lock, and a checkpoint save it may have been in
    # the middle of leaves a partial bundle: the next run takes the lock over
    # and removes the bundle.
    assert (interrupted / ".run.lock").exists()
    partial = interrupted / (".tmp-" + "0" * 32 +
                             "-model.ckpt-40.data-00000-of-00001.tempstate9")
    partial.write_bytes(b"\0" * 4096)

  result = run_script("run_classifier.py", classifier_args(setup, interrupted, *RESUME_ARGS))
  assert "Resuming from" in result.stderr
  if sig == signal.SIGKILL:
    assert "Taking over the lock" in result.stderr
    assert "Removed 1 temporary file(s) of an interrupted run" in result.stderr
  assert not [p for p in os.listdir(interrupted) if ".tmp" in p or p.endswith(".lock")]
  a = checkpoint_arrays(straight / RESUME_FINAL)
  b = checkpoint_arrays(interrupted / RESUME_FINAL)
  assert a.keys() == b.keys()
  for name in a:
    np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_mirrored_over_two_cpus_matches_one_device(tmp_path):
  setup = write_tiny_setup(tmp_path, dropout=0.0)
  common = ("--do_train", "--train_batch_size=8", "--num_train_epochs=1",
            "--learning_rate=1e-3", "--log_every_steps=1", "--iterations_per_loop=1")
  one = tmp_path / "one"
  two = tmp_path / "two"
  run_script("run_classifier.py", classifier_args(setup, one, *common))
  result = run_script("run_classifier.py", classifier_args(
      setup, two, *common, "--distribution_strategy=mirrored", "--num_cpu_devices=2"))
  assert "2 replicas" in result.stderr
  losses_one, steps_one = _train_losses(one)
  losses_two, steps_two = _train_losses(two)
  assert steps_one == steps_two == list(range(1, 13))
  np.testing.assert_allclose(losses_two, losses_one, rtol=1e-4, atol=1e-5)
  a = checkpoint_arrays(one / "model.ckpt-12")
  b = checkpoint_arrays(two / "model.ckpt-12")
  for name in a:
    np.testing.assert_allclose(a[name], b[name], rtol=1e-4, atol=1e-5, err_msg=name)


def _free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def test_multi_worker_mirrored_on_localhost(tmp_path):
  setup = write_tiny_setup(tmp_path, dropout=0.0)
  out = tmp_path / "out"
  ports = [_free_port(), _free_port()]
  cluster = {"worker": [f"localhost:{p}" for p in ports]}
  procs = []
  for index in range(2):
    tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
    procs.append(subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "run_classifier.py"),
         *classifier_args(setup, out, "--do_train", "--do_eval", "--train_batch_size=8",
                          "--num_train_epochs=1", "--learning_rate=1e-3",
                          "--save_checkpoints_steps=6",
                          "--distribution_strategy=multi_worker_mirrored")],
        env=cli_env(TF_CONFIG=tf_config), cwd=str(PROJECT_ROOT),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
  outputs = []
  for proc in procs:
    try:
      outputs.append(proc.communicate(timeout=300)[0])
    finally:
      proc.kill()
  for proc, output in zip(procs, outputs):
    assert proc.returncode == 0, output[-5000:]
  # One set of checkpoints, written by the chief (worker 0).
  assert sorted(os.path.basename(p) for p in glob.glob(str(out / "model.ckpt-*.index"))) \
      == ["model.ckpt-12.index", "model.ckpt-6.index"]
  assert (out / "eval_results.txt").exists()


def test_dev_split_eval_every_steps_and_best_checkpoint(tmp_path):
  setup = write_tiny_setup(tmp_path, with_dev=False)
  out = tmp_path / "out"
  result = run_script("run_classifier.py", classifier_args(
      setup, out, "--do_train", "--do_eval", "--train_batch_size=8",
      "--num_train_epochs=2", "--learning_rate=1e-3", "--dev_split=0.25",
      "--eval_every_steps=6", "--best_checkpoint_metric=eval_macro_f1",
      "--class_weights=balanced", "--gradient_accumulation_steps=2",
      "--precision=bfloat16", "--optimizer=adamw", "--adam_epsilon=1e-8",
      "--log_every_steps=6"))
  log = result.stderr
  assert "Optimizer = adamw, peak learning rate = 0.001, warmup = 1 steps" in log
  assert "epsilon = 1e-08" in log
  assert "holding out a stratified 25.0%" in log
  assert "Class weights (balanced)" in log
  assert "Using the best checkpoint" in log
  evals = read_eval_results(out / "eval_results.txt")
  # 96 examples, 16 per label; 4 per label go to dev.
  assert np.array(json.loads(evals["eval_confusion_matrix"])).sum(axis=1).tolist() \
      == [4] * 6
  state = json.loads((out / "train_state.json").read_text())
  assert [h["step"] for h in state["history"]] == [6, 12, 18]
  # One TensorBoard event file per split, however often the run logged.
  for split in ("train", "eval"):
    assert len(glob.glob(str(out / split / "events.out.tfevents.*"))) == 1, split
  # The metrics table at the end, and the same history as TSV.
  assert "Evaluations during training (* the kept best by eval_macro_f1" in log
  assert f"{state['best_step']}*" in log
  history = [line.split("\t") for line in
             (out / "eval_history.tsv").read_text().splitlines()]
  assert history[0][:2] == ["step", "train_loss"] and "eval_accuracy" in history[0]
  assert [row[0] for row in history[1:]] == ["6", "12", "18"]
  column = history[0].index("eval_macro_f1")
  assert max(float(row[column]) for row in history[1:]) == pytest.approx(
      state["best_value"], rel=1e-5)
  assert os.path.exists(out / "best_checkpoint" / f"model.ckpt-{state['best_step']}.index")
  best = checkpoint_arrays(out / "best_checkpoint" / f"model.ckpt-{state['best_step']}")
  assert "global_step" not in best and not any(k.endswith("adam_m") for k in best)


def test_length_bucketing(tmp_path):
  setup = write_tiny_setup(tmp_path)
  args = ("--do_train", "--do_eval", "--train_batch_size=8", "--num_train_epochs=2",
          "--learning_rate=1e-3", "--length_bucketing")
  first = tmp_path / "first"
  run_script("run_classifier.py", classifier_args(setup, first, *args))
  assert "eval_accuracy" in read_eval_results(first / "eval_results.txt")
  # The grouped order is a pure function of the seed: a second run ends with the
  # same weights.
  second = tmp_path / "second"
  run_script("run_classifier.py", classifier_args(setup, second, *args))
  a, b = (checkpoint_arrays(d / "model.ckpt-24") for d in (first, second))
  for name in a:
    np.testing.assert_allclose(a[name], b[name], rtol=1e-6, atol=1e-7, err_msg=name)
  result = run_script("run_classifier.py", classifier_args(
      setup, tmp_path / "full_length", "--do_train", "--train_batch_size=8",
      "--num_train_epochs=0.1", "--length_bucketing", "--nodynamic_padding"))
  assert "--length_bucketing has no effect without dynamic padding" in result.stderr


def test_early_stopping(tmp_path):
  setup = write_tiny_setup(tmp_path)
  out = tmp_path / "out"
  # A zero learning rate never improves: patience 1 stops after the second eval.
  result = run_script("run_classifier.py", classifier_args(
      setup, out, "--do_train", "--train_batch_size=8", "--num_train_epochs=3",
      "--learning_rate=0", "--eval_every_steps=4", "--early_stopping_patience=1"))
  assert "Early stopping at step 8" in result.stderr
  assert os.path.exists(out / "model.ckpt-8.index")


def test_custom_processor_module(tmp_path):
  setup = write_tiny_setup(tmp_path)
  module = tmp_path / "my_processors.py"
  module.write_text(
      "import os\n"
      "import processors\n"
      "import tokenization\n"
      "class PolarityProcessor(processors.DataProcessor):\n"
      "  def get_train_examples(self, data_dir):\n"
      "    return self._create(os.path.join(data_dir, 'train.txt'), 'train')\n"
      "  def get_dev_examples(self, data_dir):\n"
      "    return self._create(os.path.join(data_dir, 'val.txt'), 'dev')\n"
      "  def get_test_examples(self, data_dir):\n"
      "    return self._create(os.path.join(data_dir, 'test.txt'), 'test')\n"
      "  def get_labels(self):\n"
      "    return ['negative', 'positive']\n"
      "  def _create(self, path, set_type):\n"
      "    examples = []\n"
      "    with open(path, encoding='utf-8') as f:\n"
      "      for i, line in enumerate(f):\n"
      "        text, label = line.rstrip('\\n').rsplit(';', 1)\n"
      "        label = 'positive' if label in ('joy', 'love', 'surprise') else 'negative'\n"
      "        examples.append(processors.InputExample(\n"
      "            guid='%s-%d' % (set_type, i), text_a=tokenization.convert_to_unicode(text),\n"
      "            label=label))\n"
      "    return examples\n", encoding="utf-8")
  out = tmp_path / "out"
  args = classifier_args(setup, out, "--do_train", "--do_eval",
                         "--train_batch_size=16", "--num_train_epochs=1",
                         f"--processor_module={module}")
  args = [a.replace("--task_name=emotion", "--task_name=Polarity") for a in args]
  run_script("run_classifier.py", args)
  evals = read_eval_results(out / "eval_results.txt")
  assert "eval_f1_positive" in evals and "eval_f1_negative" in evals


@pytest.mark.parametrize("extra, expected", [
    ((), "At least one of `do_train`, `do_eval` or `do_predict' must be True"),
    (("--do_train", "--max_seq_length=100"), "Cannot use sequence length 100"),
    (("--do_train", "--train_batch_size=500"), "train.txt: fewer than one batch"),
    (("--do_train", "--do_lower_case=false"), "uncased vocab"),
    (("--do_eval",), "holds no checkpoint to evaluate"),
])
def test_user_errors_stop_before_training(tmp_path, extra, expected):
  setup = write_tiny_setup(tmp_path)
  result = run_script("run_classifier.py",
                      classifier_args(setup, tmp_path / "out", *extra), check=False)
  assert result.returncode != 0
  assert expected in result.stderr, result.stderr[-3000:]


def test_data_and_task_errors_name_the_problem(tmp_path):
  setup = write_tiny_setup(tmp_path)
  args = classifier_args(setup, tmp_path / "out", "--do_train")
  bad_task = [a.replace("--task_name=emotion", "--task_name=nosuchtask") for a in args]
  result = run_script("run_classifier.py", bad_task, check=False)
  assert result.returncode != 0
  assert "nosuchtask" in result.stderr and "mrpc" in result.stderr

  with open(setup["data"] / "train.txt", "a", encoding="utf-8") as f:
    f.write("i feel odd;boredom\n")
  result = run_script("run_classifier.py", args, check=False)
  assert result.returncode != 0
  assert "train.txt" in result.stderr and "97" in result.stderr
  assert "boredom" in result.stderr

  # An empty training file: the message names it.
  (setup["data"] / "train.txt").write_text("", encoding="utf-8")
  result = run_script("run_classifier.py", args, check=False)
  assert result.returncode == 2 and "Traceback" not in result.stderr
  assert f"Only 0 training examples in {setup['data'] / 'train.txt'}" in result.stderr


def test_output_dir_of_another_task_is_not_overwritten(tmp_path):
  setup = write_tiny_setup(tmp_path)
  out = tmp_path / "out"
  run_script("run_classifier.py", classifier_args(
      setup, out, "--do_train", "--train_batch_size=32", "--num_train_epochs=1"))
  before = checkpoint_arrays(out / "model.ckpt-3")
  result = run_script("run_classifier.py", classifier_args(
      setup, out, "--do_train", "--train_batch_size=32", "--num_train_epochs=1",
      "--max_seq_length=20"), check=False)
  assert result.returncode != 0
  assert "holds checkpoints of a different run" in result.stderr
  after = checkpoint_arrays(out / "model.ckpt-3")
  for name in before:
    np.testing.assert_array_equal(before[name], after[name])


def test_readme_custom_processor_example_works(tmp_path):
  """The worked example in the README runs as written."""
  readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
  section = readme[readme.index("## Your own task"):]
  code = section[section.index("```python\n") + len("```python\n"):]
  code = code[:code.index("```")]
  (tmp_path / "my_processors.py").write_text(code, encoding="utf-8")
  setup = write_tiny_setup(tmp_path)
  data = tmp_path / "sentiment"
  data.mkdir()
  polarity = {"joy": "positive", "love": "positive", "surprise": "neutral",
              "sadness": "negative", "anger": "negative", "fear": "negative"}
  for src, dst in (("train.txt", "train.tsv"), ("val.txt", "dev.tsv"),
                   ("test.txt", "test.tsv")):
    rows = []
    for line in (setup["data"] / src).read_text(encoding="utf-8").splitlines():
      text, label = line.rsplit(";", 1)
      rows.append(f"{polarity[label]}\t{text}")
    (data / dst).write_text("\n".join(rows) + "\n", encoding="utf-8")
  setup = dict(setup, data=data)
  args = classifier_args(setup, tmp_path / "out", "--do_train", "--do_eval",
                         "--do_predict", "--train_batch_size=16",
                         "--num_train_epochs=1",
                         f"--processor_module={tmp_path / 'my_processors.py'}")
  args = [a.replace("--task_name=emotion", "--task_name=sentiment") for a in args]
  run_script("run_classifier.py", args)
  evals = read_eval_results(tmp_path / "out" / "eval_results.txt")
  assert "eval_f1_neutral" in evals
  assert len((tmp_path / "out" / "test_results.tsv").read_text().splitlines()) == 20


def test_vocab_config_and_checkpoint_that_do_not_fit(tmp_path):
  from modeling import checkpoint as ckpt_lib  # pylint: disable=g-import-not-at-top
  from modeling.config import BertConfig  # pylint: disable=g-import-not-at-top
  from modeling.encoder import BertModel  # pylint: disable=g-import-not-at-top
  from cli_helpers import write_bert_config  # pylint: disable=g-import-not-at-top

  setup = write_tiny_setup(tmp_path)
  vocab_size = len(setup["vocab"].read_text(encoding="utf-8").split())
  small = dict(setup, config=write_bert_config(tmp_path / "small.json", vocab_size - 5))
  result = run_script("run_classifier.py", classifier_args(
      small, tmp_path / "out1", "--do_train"), check=False)
  assert result.returncode == 2
  assert f"has {vocab_size} entries but the model's vocab_size is {vocab_size - 5}" \
      in result.stderr

  # A checkpoint of another architecture (hidden 16 instead of 32).
  other = BertModel(BertConfig(vocab_size=vocab_size, hidden_size=16,
                               num_hidden_layers=2, num_attention_heads=4,
                               intermediate_size=64, max_position_embeddings=64,
                               type_vocab_size=2))
  prefix = ckpt_lib.save_checkpoint(str(tmp_path / "other" / "bert_model.ckpt"),
                                    other.named_variables())
  result = run_script("run_classifier.py", classifier_args(
      setup, tmp_path / "out2", "--do_train", f"--init_checkpoint={prefix}"),
      check=False)
  assert result.returncode == 2
  assert "bert/embeddings/word_embeddings" in result.stderr
  assert "[%d, 16]" % vocab_size in result.stderr and "[%d, 32]" % vocab_size in result.stderr
  assert not list((tmp_path / "out2").glob("model.ckpt-*"))
