"""One run per output_dir (training/run_lock.py): the lock refuses a live holder,
takes over from a dead one, and leftovers of interrupted writes are removed."""

import json
import os
import signal
import subprocess
import sys

import pytest

from cli_helpers import classifier_args, run_script, write_tiny_setup
from training import run_lock


def _write_lock(directory, pid, **extra):
  holder = {"pid": pid, "host": __import__("socket").gethostname(),
            "start_time": run_lock._process_start_time(pid), "started": "earlier",
            "command": "run_classifier.py --output_dir=x"}
  holder.update(extra)
  (directory / run_lock.LOCK_NAME).write_text(json.dumps(holder), encoding="utf-8")


def test_a_live_holder_is_refused_and_named(tmp_path):
  _write_lock(tmp_path, os.getppid())
  with pytest.raises(run_lock.OutputDirBusy, match=f"in use by process {os.getppid()}"):
    run_lock.RunLock(str(tmp_path)).acquire()
  # Another host's lock cannot be checked: refused, with how to clear it.
  _write_lock(tmp_path, 1, host="elsewhere")
  with pytest.raises(run_lock.OutputDirBusy, match="on host elsewhere.*delete"):
    run_lock.RunLock(str(tmp_path)).acquire()


@pytest.mark.parametrize("how", ["exited", "killed_not_reaped", "pid_reused"])
def test_a_dead_holder_is_taken_over(tmp_path, caplog, how):
  proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
  if how == "exited":
    proc.kill()
    proc.wait()
    _write_lock(tmp_path, proc.pid)
  elif how == "killed_not_reaped":  # a zombie still answers kill(pid, 0)
    _write_lock(tmp_path, proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    for _ in range(100):
      if (run_lock._proc_stat_fields(proc.pid) or ["?"])[0] == "Z":
        break
      __import__("time").sleep(0.05)
  else:  # a live process with the recorded pid but another start time
    _write_lock(tmp_path, proc.pid, start_time="1")
  try:
    lock = run_lock.RunLock(str(tmp_path))
    with caplog.at_level("WARNING"):
      lock.acquire()
    assert "Taking over the lock" in caplog.text
    holder = json.loads((tmp_path / run_lock.LOCK_NAME).read_text(encoding="utf-8"))
    assert holder["pid"] == os.getpid()
    lock.release()
    assert not (tmp_path / run_lock.LOCK_NAME).exists()
  finally:
    proc.kill()
    proc.wait()


def test_temporary_files_of_interrupted_writes_are_removed(tmp_path):
  ours = [".tmp-" + "a" * 32 + "-model.ckpt-20.data-00000-of-00001.tempstate1234",
          ".tmp-" + "b" * 32 + "-model.ckpt-20.index", "eval_results.txt.tmp-4242",
          "train.tf_record.tmp-17-0123abcd", ".tmp_config_" + "c" * 32,
          ".checkpoint.tmp-" + "d" * 32]
  kept = ["model.ckpt-20.index", "model.ckpt-20.data-00000-of-00001", "notes.tmp",
          "train.tf_record", "my.tmp-file", ".tmp-short-name", "checkpoint"]
  for name in ours + kept:
    (tmp_path / name).write_bytes(b"x" * 1000)
  (tmp_path / "best_checkpoint.tmp-77").mkdir()
  (tmp_path / "best_checkpoint.tmp-77" / "model.ckpt-5.index").write_bytes(b"x")
  (tmp_path / "best_checkpoint").mkdir()
  removed = run_lock.remove_temporary_files(str(tmp_path))
  assert sorted(removed) == sorted(ours + ["best_checkpoint.tmp-77"])
  assert sorted(os.listdir(tmp_path)) == sorted(kept + ["best_checkpoint"])


def test_run_classifier_refuses_an_output_dir_in_use(tmp_path):
  setup = write_tiny_setup(tmp_path)
  out = tmp_path / "out"
  out.mkdir()
  _write_lock(out, os.getpid())  # this test process: alive
  leftover = out / ("model.ckpt-1.index.tmp-99")
  leftover.write_text("x")
  result = run_script("run_classifier.py", classifier_args(
      setup, out, "--do_train", "--train_batch_size=16"), check=False)
  assert result.returncode == 2, result.stderr[-3000:]
  assert f"is in use by process {os.getpid()}" in result.stderr
  assert leftover.exists()  # nothing is touched while another run holds it
