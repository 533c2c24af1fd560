"""Faults: damaged checkpoints, kills and signals at many points, a full or read-only
disk. Nothing is lost, every error names the file, and the same command run again
ends with the outputs of an uninterrupted run."""

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from cli_helpers import (PROJECT_ROOT, checkpoint_arrays, classifier_args, cli_env,
                         run_script, write_tiny_setup)

ARGS = ("--do_train", "--train_batch_size=8", "--num_train_epochs=1",
        "--learning_rate=1e-3", "--save_checkpoints_steps=6", "--log_every_steps=6",
        "--keep_checkpoint_max=0")


def _damage(path, how):
  data = bytearray(path.read_bytes())
  if how == "truncate":
    path.write_bytes(bytes(data[:len(data) // 10]))
  else:  # flip bits in the middle: the tensors' checksums no longer match
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(b ^ 0xFF for b in data[middle:middle + 64])
    path.write_bytes(bytes(data))


def test_resume_skips_a_corrupted_latest_checkpoint(tmp_path):
  setup = write_tiny_setup(tmp_path, dropout=0.0)
  out = tmp_path / "out"
  run_script("run_classifier.py", classifier_args(setup, out, *ARGS))
  # 96 examples / 8 = 12 steps, checkpoints at 6 and 12.
  good = checkpoint_arrays(out / "model.ckpt-12")
  for name in ("model.ckpt-12.index", "model.ckpt-12.data-00000-of-00001"):
    shutil.copy(out / name, tmp_path / name)
  _damage(out / "model.ckpt-12.data-00000-of-00001", "flip")
  (out / "checkpoint").write_bytes(b"\xff\xfe not a checkpoint state \x00")

  # The same command: the damaged step 12 is named and skipped, step 6 resumes,
  # and training redoes steps 7-12 to the same weights.
  result = run_script("run_classifier.py", classifier_args(setup, out, *ARGS))
  log = result.stderr
  assert "checkpoint cannot be read" in log and "model.ckpt-12" in log
  assert "looking for the checkpoints themselves" in log
  assert "Resuming from" in log and "model.ckpt-6" in log
  again = checkpoint_arrays(out / "model.ckpt-12")
  assert good.keys() == again.keys()
  for name in good:
    np.testing.assert_allclose(again[name], good[name], rtol=1e-5, atol=1e-6,
                               err_msg=name)

  # Every checkpoint damaged: a clear error, nothing deleted.
  _damage(out / "model.ckpt-12.data-00000-of-00001", "truncate")
  _damage(out / "model.ckpt-6.data-00000-of-00001", "truncate")
  result = run_script("run_classifier.py", classifier_args(setup, out, *ARGS),
                      check=False)
  assert result.returncode == 2 and "Traceback" not in result.stderr
  assert "No checkpoint in" in result.stderr and "can be read" in result.stderr
  assert (out / "model.ckpt-6.index").exists() and (out / "model.ckpt-12.index").exists()

  # A truncated --init_checkpoint: the error names it.
  init = tmp_path / "init"
  init.mkdir()
  for name in ("model.ckpt-12.index", "model.ckpt-12.data-00000-of-00001"):
    shutil.copy(tmp_path / name, init / name.replace("model.ckpt-12", "bert_model.ckpt"))
  _damage(init / "bert_model.ckpt.data-00000-of-00001", "truncate")
  result = run_script("run_classifier.py", classifier_args(
      setup, tmp_path / "fresh", *ARGS, f"--init_checkpoint={init / 'bert_model.ckpt'}"),
      check=False)
  assert result.returncode == 2 and "Traceback" not in result.stderr
  assert f"{init / 'bert_model.ckpt'}: the checkpoint cannot be read" in result.stderr


# ------------------------------------------------------------- fault injection
# A run is killed (SIGKILL unless noted) at one point, then the same command runs
# again to the end: its outputs must equal an uninterrupted run's, with no
# temporary file or lock left. Points inside a write are hit exactly: the run goes
# through a wrapper that signals the process at the chosen call of
# tf.io.gfile.rename (each write of this project ends with one), before it renames.
KILL_AT_RENAME = r"""
import os, runpy, signal, sys
import tensorflow as tf
pattern, nth, sig = (os.environ["KILL_AT_RENAME"] + ":SIGKILL").split(":")[:3]
calls, real = [0], tf.io.gfile.rename
def rename(src, dst, overwrite=False):
  if pattern in os.path.basename(os.fspath(src).rstrip("/")):
    calls[0] += 1
    if calls[0] == int(nth):
      os.kill(os.getpid(), getattr(signal, sig))
  return real(src, dst, overwrite)
tf.io.gfile.rename = rename
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _killed_at_rename(script, args, point):
  """Runs a script through KILL_AT_RENAME with point "pattern:nth[:SIGNAL]"."""
  return subprocess.run(
      [sys.executable, "-c", KILL_AT_RENAME, str(PROJECT_ROOT / script), *map(str, args)],
      env=cli_env(KILL_AT_RENAME=point), cwd=str(PROJECT_ROOT), capture_output=True,
      text=True, timeout=300)


def _leftovers(directory):
  """Temporary files and run locks in a directory."""
  return [p for p in os.listdir(directory) if ".tmp" in p or p.endswith(".lock")]


def _outputs(out, file_names, checkpoint):
  """What a rerun must reproduce: the files' bytes and a checkpoint's arrays."""
  return {"files": {name: (out / name).read_bytes() for name in file_names},
          "checkpoint": checkpoint_arrays(out / checkpoint)}


def _assert_same_outputs(got, want, name):
  assert got["files"] == want["files"], name
  assert got["checkpoint"].keys() == want["checkpoint"].keys(), name
  for key, value in want["checkpoint"].items():
    np.testing.assert_array_equal(got["checkpoint"][key], value, err_msg=key)

FAULT_ARGS = ("--do_train", "--do_eval", "--do_predict", "--train_batch_size=8",
              "--num_train_epochs=1", "--learning_rate=1e-3",
              "--save_checkpoints_steps=2", "--iterations_per_loop=1",
              "--log_every_steps=2", "--keep_checkpoint_max=3", "--seed=3")

# (name, rename pattern:nth call, or a (file to wait for, signal) pair)
FAULT_POINTS = [
    ("writing train.tf_record", "train.tf_record.tmp-:1"),
    ("a checkpoint save, data written, nothing renamed", "-model.ckpt-4.data-:1"),
    ("a checkpoint save, data renamed, index not", "-model.ckpt-4.index:1"),
    ("the checkpoint state file update", ".checkpoint.tmp-:3"),
    ("the last checkpoint save", "-model.ckpt-12.index:1"),
    ("writing eval_results.txt", "eval_results.txt.tmp-:1"),
    ("writing test_results.tsv", "test_results.tsv.tmp-:1"),
    ("the SavedModel export", ".export.tmp-:1"),
    ("a checkpoint save, Ctrl-C", "-model.ckpt-6.index:1:SIGINT"),
    ("the checkpoint state file update, SIGTERM", ".checkpoint.tmp-:2:SIGTERM"),
    ("the SavedModel export, SIGTERM", ".export.tmp-:1:SIGTERM"),
    ("mid-training, kill -9", ("model.ckpt-8.index", "SIGKILL")),
    ("mid-training, SIGTERM", ("model.ckpt-6.index", "SIGTERM")),
    ("during prediction, Ctrl-C", ("predict.tf_record", "SIGINT")),
]


CLASSIFIER_OUTPUTS = (("eval_results.txt", "test_results.tsv"), "model.ckpt-12")


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
  root = tmp_path_factory.mktemp("reference")
  setup = write_tiny_setup(root)
  out = root / "out"
  run_script("run_classifier.py", classifier_args(setup, out, *FAULT_ARGS,
                                                  f"--export_dir={out / 'export'}"))
  return setup, _outputs(out, *CLASSIFIER_OUTPUTS), out


@pytest.mark.slow
@pytest.mark.parametrize("name,point", FAULT_POINTS, ids=[p[0] for p in FAULT_POINTS])
def test_killed_anywhere_the_rerun_gives_the_uninterrupted_outputs(
    reference_run, tmp_path, name, point):
  setup, want, _ = reference_run
  out = tmp_path / "out"
  args = classifier_args(setup, out, *FAULT_ARGS, f"--export_dir={out / 'export'}")
  if isinstance(point, str):
    proc = _killed_at_rename("run_classifier.py", args, point)
    if point.count(":") == 1:
      assert proc.returncode == -signal.SIGKILL, (name, proc.stderr[-3000:])
    else:  # SIGINT / SIGTERM: the run stops (checkpointing first where it trains)
      assert proc.returncode != 0, (name, proc.stderr[-3000:])
  else:
    wait_for, sig = point
    proc = subprocess.Popen([sys.executable, str(PROJECT_ROOT / "run_classifier.py"),
                             *args], env=cli_env(), cwd=str(PROJECT_ROOT),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while proc.poll() is None and time.time() < deadline:
      if (out / wait_for).exists():
        proc.send_signal(getattr(signal, sig))
        break
      time.sleep(0.005)
    proc.wait(timeout=120)
    assert proc.returncode != 0, f"{name}: the run ended before the signal"
  assert not (out / "test_results.tsv").exists() or "export" in name, name

  run_script("run_classifier.py", args)
  _assert_same_outputs(_outputs(out, *CLASSIFIER_OUTPUTS), want, name)
  assert (out / "export" / "saved_model.pb").exists()
  assert not _leftovers(out), (name, _leftovers(out))


@pytest.fixture
def small_filesystem(tmp_path):
  """A 64 MB tmpfs the test can fill and make read-only (needs root and mount)."""
  mount_point = tmp_path / "fs"
  mount_point.mkdir()
  result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs",
                           str(mount_point)], capture_output=True, text=True)
  if result.returncode != 0:
    pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip()}): the disk-full "
                "and read-only checks need root")
  try:
    yield mount_point
  finally:
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _size(paths):
  return sum(os.path.getsize(p) for p in paths)


@pytest.mark.slow
def test_disk_full_and_read_only_output_dir(reference_run, small_filesystem, tmp_path):
  setup, want, _ = reference_run
  out = small_filesystem / "out"
  args = classifier_args(setup, out, *FAULT_ARGS, f"--export_dir={out / 'export'}")
  # Room for the input records and one and a half checkpoints: the second save
  # (step 4) runs out of space.
  probe = tmp_path / "probe"
  run_script("run_classifier.py", classifier_args(
      setup, probe, "--do_train", "--train_batch_size=8", "--num_train_epochs=0.2"))
  checkpoint = _size(probe.glob("model.ckpt-2.*"))
  records = _size(probe.glob("*.tf_record*")) * 3  # train, eval and predict
  free = os.statvfs(small_filesystem)
  filler = small_filesystem / "filler"
  filler.write_bytes(b"\0" * (free.f_bavail * free.f_frsize - records
                              - int(1.5 * checkpoint) - 256 * 1024))

  result = run_script("run_classifier.py", args, check=False)
  assert result.returncode == 1, result.stderr[-3000:]
  assert "Traceback" not in result.stderr
  assert f"cannot write {out}/" in result.stderr and "No space left on device" in \
      result.stderr, result.stderr[-3000:]
  assert "run the same command again to resume" in result.stderr
  assert checkpoint_arrays(out / "model.ckpt-2")  # the previous checkpoint reads
  assert not _leftovers(out)

  filler.unlink()  # space freed: the same command resumes and ends as if never stopped
  result = run_script("run_classifier.py", args)
  assert "Resuming from" in result.stderr
  _assert_same_outputs(_outputs(out, *CLASSIFIER_OUTPUTS), want, "disk full")

  # A read-only output_dir fails at start, before any work, naming the directory.
  subprocess.run(["mount", "-o", "remount,ro", str(small_filesystem)], check=True)
  result = run_script("run_classifier.py", args, check=False)
  assert result.returncode == 2 and "Traceback" not in result.stderr
  assert f"cannot write to --output_dir={out}: Read-only file system" in result.stderr



@pytest.mark.slow
def test_killed_exports_and_conversions_leave_nothing_at_the_target(reference_run,
                                                                     tmp_path):
  setup, _, trained = reference_run
  serving, saved, converted = (tmp_path / "bert_serving", tmp_path / "saved",
                               tmp_path / "converted")
  export_args = [f"--output_dir={trained}", f"--vocab_file={setup['vocab']}"]
  hf = tmp_path / "hf"
  # (script, arguments, kill point, target): a bert-serving directory killed while
  # its checkpoint is written, a SavedModel just before it is renamed into place,
  # a Hugging Face -> original conversion while its checkpoint is written.
  cases = [
      ("scripts/export_model.py", export_args + [f"--export_bert_serving_dir={serving}"],
       "-bert_model.ckpt.index:1", serving),
      ("scripts/export_model.py", export_args + [f"--export_dir={saved}"],
       ".saved.tmp-:1", saved),
      ("scripts/convert_checkpoint.py", ["hf_to_bert", "--hf_dir", hf, "--output_dir",
                                         converted], "-bert_model.ckpt.index:1",
       converted),
  ]
  for script, args, point, target in cases:
    if script.endswith("convert_checkpoint.py") and not hf.exists():
      run_script("scripts/convert_checkpoint.py",
                 ["bert_to_hf", "--bert_dir", str(serving), "--output_dir", str(hf)])
    result = _killed_at_rename(script, args, point)
    assert result.returncode == -signal.SIGKILL, (point, result.stderr[-3000:])
    assert not target.exists(), f"{target} half-written"
    staged = [p for p in os.listdir(tmp_path) if p.startswith(f".{target.name}.tmp-")]
    assert len(staged) == 1, os.listdir(tmp_path)
    result = run_script(script, [str(a) for a in args])  # the same command again
    assert "left by an interrupted export or conversion" in result.stderr
    assert not [p for p in os.listdir(tmp_path) if p.startswith(f".{target.name}.")]
    assert target.is_dir() and os.listdir(target)
  assert checkpoint_arrays(serving / "bert_model.ckpt")["output_weights"].shape[0] > 1
  assert (saved / "saved_model.pb").exists()
  assert (checkpoint_arrays(converted / "bert_model.ckpt").keys() ==
          {k for k in checkpoint_arrays(serving / "bert_model.ckpt")
           if k.startswith("bert/")})


SQUAD_ARGS = ("--do_train", "--do_predict", "--do_eval", "--num_train_epochs=2",
              "--max_seq_length=40", "--doc_stride=8", "--max_query_length=10",
              "--train_batch_size=8", "--learning_rate=1e-3",
              "--save_checkpoints_steps=2", "--iterations_per_loop=1",
              "--log_every_steps=2")
SQUAD_OUTPUTS = (("predictions.json", "nbest_predictions.json", "eval_results.txt"),
                 "model.ckpt-6")
SQUAD_POINTS = [
    ("a checkpoint save", "-model.ckpt-4.index:1"),
    ("writing predictions.json", "predictions.json.tmp-:1"),
    ("writing eval_results.txt", "eval_results.txt.tmp-:1"),
]


@pytest.fixture(scope="module")
def squad_setup(tmp_path_factory):
  import squad_helpers  # pylint: disable=g-import-not-at-top
  from cli_helpers import write_bert_config  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp("squad")
  vocab = root / "vocab.txt"
  tokens = squad_helpers.synthetic_vocab_tokens()
  vocab.write_text("\n".join(tokens) + "\n", encoding="utf-8")
  config = write_bert_config(root / "bert_config.json", len(tokens))
  train = squad_helpers.write_squad(root / "train.json",
                                    squad_helpers.synthetic_data(12, 0), "1.1")
  dev = squad_helpers.write_squad(root / "dev.json", squad_helpers.synthetic_data(5, 1),
                                  "1.1")

  def args(out):
    return [f"--vocab_file={vocab}", f"--bert_config_file={config}",
            f"--train_file={train}", f"--predict_file={dev}", f"--output_dir={out}",
            *SQUAD_ARGS]

  run_script("run_squad.py", args(root / "reference"))
  return args, _outputs(root / "reference", *SQUAD_OUTPUTS)


@pytest.mark.slow
@pytest.mark.parametrize("name,point", SQUAD_POINTS, ids=[p[0] for p in SQUAD_POINTS])
def test_run_squad_killed_inside_a_write_resumes_to_the_same_outputs(
    squad_setup, tmp_path, name, point):
  args, want = squad_setup
  out = tmp_path / "out"
  result = _killed_at_rename("run_squad.py", args(out), point)
  assert result.returncode == -signal.SIGKILL, (name, result.stderr[-3000:])
  run_script("run_squad.py", args(out))
  _assert_same_outputs(_outputs(out, *SQUAD_OUTPUTS), want, name)
  assert not _leftovers(out), (name, _leftovers(out))
