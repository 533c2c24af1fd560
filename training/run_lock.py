"""One run per output_dir, and what an interrupted run left behind cleaned up.

A run takes output_dir/.run.lock before it writes anything there: the file names the
process (pid, host, start time, command). A second run on the same directory is
refused with that holder named; a lock whose process is gone (a run killed with
kill -9, a crashed machine's run seen from the same host) is taken over with a
warning. Once the lock is held, no other live run of this project writes to the
directory, so the temporary files of interrupted writes (checkpoint bundles,
atomically written files, the best-checkpoint directory's staging copies) can be
removed: only names this project's writers use are touched.

With several workers (multi_worker_mirrored) each worker takes its own lock
(.run.lock for the chief, .run-worker-<i>.lock for the others), since workers
write their own copies of the input records into a shared output_dir.
"""

import json
import os
import re
import shutil
import socket
import sys
import time
from typing import Dict, List, Optional

from absl import logging

LOCK_NAME = ".run.lock"

# Temporary names of this project's writers (see modeling/checkpoint.py,
# training/files.py, processors/tfrecord.py, modeling/config.py, training/loop.py).
_TEMPORARY_PATTERNS = [
    re.compile(r"^\.tmp-[0-9a-f]{32}-"),           # checkpoint bundles being written
    re.compile(r"\.tmp-\d+(-[0-9a-f]{8})?$"),       # files written atomically
    re.compile(r"^\.tmp_config_[0-9a-f]{32}$"),     # bert_config.json being written
    # The checkpoint state file, and exports written inside output_dir (their
    # .<name>.old-* copy of a previous export is left to the next export).
    re.compile(r"^\..+\.tmp-[0-9a-f]{32}$"),
    re.compile(r"^best_checkpoint\.(tmp|old)-\d+$"),  # best checkpoint being replaced
]


class OutputDirBusy(RuntimeError):
  """Another live run holds the output directory."""


def _proc_stat_fields(pid: int) -> Optional[List[str]]:
  """/proc/<pid>/stat's fields from the state (field 3) on (Linux), else None."""
  try:
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
      # After the parenthesised command name, which may hold spaces.
      return f.read().rsplit(")", 1)[1].split()
  except (OSError, IndexError):
    return None


def _process_start_time(pid: int) -> Optional[str]:
  """The kernel's start time of a process (field 22), to tell a reused pid apart."""
  fields = _proc_stat_fields(pid)
  return fields[19] if fields and len(fields) > 19 else None


def _is_alive(pid: int, start_time: Optional[str]) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    pass  # another user's process: alive
  fields = _proc_stat_fields(pid)
  if fields:
    if fields[0] in ("Z", "X"):
      return False  # killed, not yet reaped by its parent
    if start_time is not None and len(fields) > 19 and fields[19] != start_time:
      return False  # the pid was reused by another process
  return True


def lock_name(worker_index: int = 0) -> str:
  """The lock file's name for a worker (0: the chief or a single process)."""
  return LOCK_NAME if worker_index == 0 else f".run-worker-{worker_index}.lock"


class RunLock(object):
  """Holds output_dir's lock file for this process; release() or process exit frees it."""

  def __init__(self, output_dir: str, worker_index: int = 0):
    self.path = os.path.join(output_dir, lock_name(worker_index))
    self.held = False

  def _holder(self) -> Optional[Dict]:
    try:
      with open(self.path, encoding="utf-8") as f:
        return json.load(f)
    except FileNotFoundError:
      return None
    except (OSError, ValueError):
      return {}  # unreadable or half-written: treated as a stale lock

  def acquire(self) -> None:
    """Takes the lock, or takes over a stale one.

    Raises:
      OutputDirBusy: a live process holds it (named in the message).
      OSError: the directory is not writable (the caller reports it).
    """
    me = {"pid": os.getpid(), "host": socket.gethostname(),
          "start_time": _process_start_time(os.getpid()),
          "started": time.strftime("%Y-%m-%d %H:%M:%S"),
          "command": " ".join(sys.argv)}
    for _ in range(3):
      try:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
      except FileExistsError:
        holder = self._holder()
        if holder is None:
          continue  # released meanwhile
        if holder.get("host") not in (None, me["host"]):
          raise OutputDirBusy(
              f"{os.path.dirname(self.path)} is in use by process {holder.get('pid')} "
              f"on host {holder.get('host')} (started {holder.get('started')}: "
              f"{holder.get('command')}). Use another --output_dir, or, if that run "
              f"is gone, delete {self.path}.")
        pid = holder.get("pid")
        if isinstance(pid, int) and _is_alive(pid, holder.get("start_time")):
          raise OutputDirBusy(
              f"{os.path.dirname(self.path)} is in use by process {pid} (started "
              f"{holder.get('started')}: {holder.get('command')}). Wait for it to "
              "finish or use another --output_dir.")
        logging.warning("Taking over the lock of %s from process %s, which is gone "
                        "(it was interrupted)", os.path.dirname(self.path),
                        holder.get("pid", "?"))
        try:
          os.remove(self.path)
        except FileNotFoundError:
          pass
        continue
      with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(me, f)
      self.held = True
      return
    raise OutputDirBusy(f"could not take the lock {self.path}: other runs keep "
                        "taking it")

  def release(self) -> None:
    """Removes the lock file if this process holds it."""
    if not self.held:
      return
    self.held = False
    holder = self._holder()
    if holder and holder.get("pid") == os.getpid():
      try:
        os.remove(self.path)
      except FileNotFoundError:
        pass


def remove_temporary_files(output_dir: str) -> List[str]:
  """Deletes what interrupted writes of this project left in output_dir.

  Call only while holding output_dir's lock as its chief (no other live run writes
  there). Only names this project's writers use are removed, in output_dir itself
  (not in subdirectories other than through a staging directory removed whole).

  Returns:
    The removed names.
  """
  removed, freed = [], 0
  try:
    names = sorted(os.listdir(output_dir))
  except FileNotFoundError:
    return removed
  for name in names:
    if not any(p.search(name) for p in _TEMPORARY_PATTERNS):
      continue
    path = os.path.join(output_dir, name)
    try:
      if os.path.isdir(path) and not os.path.islink(path):
        freed += sum(os.path.getsize(os.path.join(root, f))
                     for root, _, files in os.walk(path) for f in files)
        shutil.rmtree(path)
      else:
        freed += os.path.getsize(path)
        os.remove(path)
    except FileNotFoundError:
      continue
    removed.append(name)
  if removed:
    logging.warning("Removed %d temporary file(s) of an interrupted run from %s "
                    "(%.1f MB): %s", len(removed), output_dir, freed / 1e6,
                    ", ".join(removed))
  return removed
