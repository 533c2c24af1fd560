"""Checkpoint I/O in Google's original (TF1 name-based) format.

Variables are read and written under their original names (`bert/...`, `output_weights`,
`<var>/adam_m`, `global_step`), so checkpoints are interchangeable with the original
run_classifier.py / run_pretraining.py and with tools built for them.
"""

import os
import re
import uuid
from typing import Dict, List, NamedTuple

import numpy as np
import tensorflow as tf
from absl import logging as absl_logging
from google.protobuf import text_format

# Checkpoint variables that are expected to be left unused when initialising a model
# for fine-tuning: pre-training optimizer state.
_EXPECTED_UNUSED_RE = re.compile(r"(/adam_m$|/adam_v$|^global_step$)")


class CheckpointError(ValueError):
  """A checkpoint is missing, unreadable or does not match the model.

  Attributes:
    unreadable: True when the files are there but cannot be read (truncated or
      corrupted), so that a caller may fall back to an older checkpoint.
  """

  def __init__(self, message, unreadable=False):
    super().__init__(message)
    self.unreadable = unreadable


def _unreadable(prefix, error):
  """The CheckpointError for a TensorFlow read error of checkpoint `prefix`."""
  detail = (getattr(error, "message", None) or str(error)).strip().splitlines()
  return CheckpointError(
      "%s: the checkpoint cannot be read, its files are truncated or corrupted (%s)"
      % (prefix, detail[0] if detail else type(error).__name__), unreadable=True)


# What reading a truncated or corrupted bundle raises: TensorFlow's DataLossError
# and kin, and IndexError ("Read less bytes than requested") from the reader.
_READ_ERRORS = (tf.errors.OpError, IndexError)

_STEP_RE = re.compile(r"model\.ckpt-(\d+)$")


def checkpoint_step(prefix):
  """The step of a training checkpoint prefix `.../model.ckpt-<step>` (else -1)."""
  match = _STEP_RE.search(os.path.basename(os.fspath(prefix)))
  return int(match.group(1)) if match else -1


def checkpoints_newest_first(ckpt_dir):
  """The training checkpoints (model.ckpt-<step>) of a directory, newest first.

  Both those the `checkpoint` state file lists and those whose .index is there, so
  that a damaged state file or a newer unlisted checkpoint still counts.

  Args:
    ckpt_dir: the output directory.

  Returns:
    list of prefixes whose .index file exists, by step, highest first.
  """
  ckpt_dir = os.fspath(ckpt_dir)
  prefixes = set()
  try:
    state = tf.train.get_checkpoint_state(ckpt_dir)
    if state:
      prefixes.update(state.all_model_checkpoint_paths)
      if state.model_checkpoint_path:
        prefixes.add(state.model_checkpoint_path)
  except (text_format.ParseError, tf.errors.OpError, UnicodeDecodeError) as e:
    absl_logging.warning("%s/checkpoint cannot be read (%s); looking for the "
                         "checkpoints themselves", ckpt_dir, e)
  prefixes.update(p[:-len(".index")] for p in
                  tf.io.gfile.glob(os.path.join(ckpt_dir, "model.ckpt-*.index")))
  # get_checkpoint_state joins the listed names to ckpt_dir, as the glob does.
  found = {os.path.normpath(p) for p in prefixes
           if checkpoint_step(p) >= 0 and tf.io.gfile.exists(p + ".index")}
  return sorted(found, key=checkpoint_step, reverse=True)


class InitReport(NamedTuple):
  """What load_init_checkpoint did.

  loaded: model variable names initialised from the checkpoint.
  missing: model variable names not in the checkpoint (left at their initialiser).
  unused: checkpoint variable names that no model variable took, including the
    expected ones.
  expected_unused: the subset of `unused` that is optimizer state (adam_m/adam_v slots
    and global_step), which is normal when fine-tuning from a pre-training checkpoint.
  """
  loaded: List[str]
  missing: List[str]
  unused: List[str]
  expected_unused: List[str] = []

  @property
  def unexpected_unused(self):
    """Unused checkpoint variables that are not optimizer state."""
    expected = set(self.expected_unused)
    return [n for n in self.unused if n not in expected]


def _strip_suffix(path):
  # Accept "model.ckpt.index" or "model.ckpt.data-00000-of-00001" for the prefix.
  for pattern in (r"\.index$", r"\.data-\d{5}-of-\d{5}$", r"\.meta$"):
    if re.search(pattern, path):
      return re.sub(pattern, "", path)
  return path


def resolve_checkpoint_prefix(path):
  """Turns a checkpoint prefix or directory into an existing checkpoint prefix.

  Args:
    path: `.../bert_model.ckpt` (prefix), a file of it, or a directory holding a
      `checkpoint` state file or exactly one `*.index` file.

  Returns:
    The prefix string.

  Raises:
    CheckpointError: if nothing is found (the message lists what was looked for).
  """
  path = os.fspath(path)
  if tf.io.gfile.isdir(path):
    latest = tf.train.latest_checkpoint(path)
    if latest is not None and tf.io.gfile.exists(latest + ".index"):
      return latest
    indexes = sorted(tf.io.gfile.glob(os.path.join(path, "*.index")))
    if len(indexes) == 1:
      return indexes[0][:-len(".index")]
    if not indexes:
      raise CheckpointError(
          "%s: no checkpoint in this directory (looked for a 'checkpoint' state file "
          "and for <prefix>.index files)" % path)
    raise CheckpointError(
        "%s: several checkpoints and no 'checkpoint' state file; pass one prefix, "
        "one of: %s" % (path, ", ".join(i[:-len(".index")] for i in indexes)))
  prefix = _strip_suffix(path)
  if (not tf.io.gfile.exists(prefix + ".index") or
      not tf.io.gfile.glob(prefix + ".data-*")):
    raise CheckpointError(
        "Checkpoint not found: looked for %s.index and %s.data-* (pass the prefix, "
        "e.g. .../bert_model.ckpt, or the directory)" % (prefix, prefix))
  return prefix


def list_checkpoint_variables(path):
  """Lists a checkpoint's variables.

  Args:
    path: checkpoint prefix or directory.

  Returns:
    dict {name: shape as a list of ints}, sorted by name.
  """
  prefix = resolve_checkpoint_prefix(path)
  reader = tf.train.load_checkpoint(prefix)
  shapes = reader.get_variable_to_shape_map()
  return {name: list(shapes[name]) for name in sorted(shapes)}


def _assign(var, value):
  """Assigns a numpy value, casting to the variable's dtype.

  A MirroredVariable assigned in cross-replica context updates every replica.
  """
  var.assign(np.asarray(value).astype(var.dtype.as_numpy_dtype))


def load_init_checkpoint(named_vars, ckpt_path, logger=absl_logging):
  """Initialises model variables from a checkpoint, as the original init_checkpoint.

  Args:
    named_vars: dict {original name: tf.Variable} (e.g. model.named_variables()).
    ckpt_path: checkpoint prefix (`.../bert_model.ckpt`) or directory.
    logger: object with .info and .warning (absl.logging by default).

  Returns:
    InitReport.

  Raises:
    CheckpointError: the path does not exist, a shape differs, or no variable of the
      checkpoint matches the model.
  """
  prefix = resolve_checkpoint_prefix(ckpt_path)
  try:
    reader = tf.train.load_checkpoint(prefix)
  except _READ_ERRORS as e:
    raise _unreadable(prefix, e) from None
  ckpt_shapes = reader.get_variable_to_shape_map()

  loaded, missing = [], []
  for name, var in named_vars.items():
    if name not in ckpt_shapes:
      missing.append(name)
      continue
    want = list(var.shape)
    have = list(ckpt_shapes[name])
    if want != have:
      raise CheckpointError(
          "%s: variable %s has shape %s in the checkpoint but %s in the model (check "
          "bert_config.json / num_labels match the checkpoint)" % (prefix, name, have,
                                                                  want))
    loaded.append(name)
  if named_vars and not loaded:
    raise CheckpointError(
        "%s: no checkpoint variable matches the model (model has e.g. %s; checkpoint "
        "has e.g. %s)" % (prefix, next(iter(named_vars)),
                          ", ".join(sorted(ckpt_shapes)[:3])))
  try:
    for name in loaded:
      _assign(named_vars[name], reader.get_tensor(name))
  except _READ_ERRORS as e:
    raise _unreadable(prefix, e) from None

  taken = set(loaded)
  unused = sorted(n for n in ckpt_shapes if n not in taken)
  expected_unused = [n for n in unused if _EXPECTED_UNUSED_RE.search(n)]

  logger.info("**** Trainable Variables ****")
  for name, var in named_vars.items():
    init_string = ", *INIT_FROM_CKPT*" if name in taken else ""
    logger.info("  name = %s, shape = %s%s", name, list(var.shape), init_string)
  if missing:
    logger.info("Not in checkpoint %s (initialised randomly): %s", prefix,
                ", ".join(missing))
  unexpected = [n for n in unused if n not in set(expected_unused)]
  if unexpected:
    logger.info("Checkpoint variables not used by this model: %s", ", ".join(unexpected))
  if expected_unused:
    logger.info("Expected unused (pre-training optimizer state): %d variables "
                "(adam_m/adam_v slots, global_step)", len(expected_unused))
  return InitReport(loaded=loaded, missing=missing, unused=unused,
                    expected_unused=expected_unused)


def restore_checkpoint(path_prefix, named_vars):
  """Strictly restores every variable (model, optimizer slots, global_step).

  Args:
    path_prefix: checkpoint prefix or directory.
    named_vars: dict {name: tf.Variable}; every name must be in the checkpoint.

  Raises:
    CheckpointError: listing the names missing from the checkpoint, a shape
      mismatch, or (with .unreadable) files that cannot be read; variables may
      then hold values of part of the checkpoint.
  """
  prefix = resolve_checkpoint_prefix(path_prefix)
  try:
    reader = tf.train.load_checkpoint(prefix)
  except _READ_ERRORS as e:
    raise _unreadable(prefix, e) from None
  ckpt_shapes = reader.get_variable_to_shape_map()
  missing = [n for n in named_vars if n not in ckpt_shapes]
  if missing:
    shown = ", ".join(missing[:20]) + (" ..." if len(missing) > 20 else "")
    raise CheckpointError("%s: cannot resume, %d variable(s) missing from the "
                          "checkpoint: %s" % (prefix, len(missing), shown))
  for name, var in named_vars.items():
    if list(ckpt_shapes[name]) != list(var.shape):
      raise CheckpointError("%s: variable %s has shape %s in the checkpoint but %s "
                            "in the model" % (prefix, name, list(ckpt_shapes[name]),
                                              list(var.shape)))
  try:
    for name, var in named_vars.items():
      _assign(var, reader.get_tensor(name))
  except _READ_ERRORS as e:
    raise _unreadable(prefix, e) from None


def _data_files(prefix):
  # tf.io.gfile so that gs:// output directories (Cloud TPU) work like local ones.
  return tf.io.gfile.glob(prefix + ".data-?????-of-?????")


def save_checkpoint(path_prefix, named_vars):
  """Writes an original-format (TF1 name-based) checkpoint.

  The bundle is first written under a temporary prefix in the same directory, then
  renamed: data file(s) first and the `.index` last, so a reader never sees an index
  pointing at missing data. Update the `checkpoint` state file afterwards with
  update_checkpoint_state.

  Args:
    path_prefix: e.g. `out/model.ckpt-1000`.
    named_vars: dict {name: tf.Variable or tensor}; model variables, and for training
      checkpoints also "<var>/adam_m", "<var>/adam_v" and "global_step".

  Returns:
    The prefix written.
  """
  path_prefix = os.fspath(path_prefix)
  directory = os.path.dirname(path_prefix) or "."
  tf.io.gfile.makedirs(directory)
  names = list(named_vars)
  if not names:
    raise ValueError("save_checkpoint(%s): nothing to save" % path_prefix)
  # read_value() in cross-replica context returns the primary copy of a mirrored var.
  tensors = [tf.convert_to_tensor(v.read_value() if hasattr(v, "read_value") else v)
             for v in named_vars.values()]
  tmp_prefix = os.path.join(directory, ".tmp-%s-%s" % (uuid.uuid4().hex,
                                                      os.path.basename(path_prefix)))
  with tf.device("/cpu:0"):
    tf.raw_ops.SaveV2(prefix=tmp_prefix, tensor_names=names,
                      shape_and_slices=[""] * len(names), tensors=tensors)
  try:
    for old in _data_files(path_prefix):
      tf.io.gfile.remove(old)
    for data in _data_files(tmp_prefix):
      tf.io.gfile.rename(data, path_prefix + data[len(tmp_prefix):], overwrite=True)
    tf.io.gfile.rename(tmp_prefix + ".index", path_prefix + ".index", overwrite=True)
  finally:
    for leftover in tf.io.gfile.glob(tmp_prefix + "*"):
      tf.io.gfile.remove(leftover)
  return path_prefix


def update_checkpoint_state(ckpt_dir, latest_prefix, all_prefixes):
  """Atomically writes the `checkpoint` state file read by tf.train.latest_checkpoint.

  Call only after save_checkpoint returned, so the state never names an incomplete
  checkpoint.

  Args:
    ckpt_dir: directory of the checkpoints.
    latest_prefix: prefix of the newest checkpoint.
    all_prefixes: every prefix to keep listed, oldest first.
  """
  ckpt_dir = os.fspath(ckpt_dir)

  def rel(p):
    p = os.fspath(p)
    if os.path.isabs(p) and os.path.dirname(p) == os.path.abspath(ckpt_dir):
      return os.path.basename(p)
    if not os.path.isabs(p) and os.path.dirname(p) == ckpt_dir.rstrip("/"):
      return os.path.basename(p)
    return p

  state = tf.compat.v1.train.generate_checkpoint_state_proto(
      ckpt_dir, rel(latest_prefix), all_model_checkpoint_paths=[rel(p) for p in
                                                                 all_prefixes])
  tmp = os.path.join(ckpt_dir, ".checkpoint.tmp-%s" % uuid.uuid4().hex)
  with tf.io.gfile.GFile(tmp, "w") as f:
    f.write(text_format.MessageToString(state))
  tf.io.gfile.rename(tmp, os.path.join(ckpt_dir, "checkpoint"), overwrite=True)


def staging_dirs(parent, base):
  """New names beside a target `<parent>/<base>` for writing it whole.

  Writers of whole directories (exports, conversions) fill `.<base>.tmp-<hex>` and
  rename it to the target at the end (moving a previous target aside to
  `.<base>.old-<hex>` first), so a kill never leaves half a directory at the
  target. What a killed writer of the same target left there is deleted first.

  Args:
    parent: the target's directory (existing).
    base: the target's name.

  Returns:
    (tmp_dir, old_dir), neither existing.
  """
  pattern = re.compile(r"^\.%s\.(tmp|old)-[0-9a-f]{32}$" % re.escape(base))
  for name in tf.io.gfile.listdir(parent):
    name = name.rstrip("/")
    if pattern.match(name):
      absl_logging.warning("Removing %s, left by an interrupted export or conversion",
                           os.path.join(parent, name))
      tf.io.gfile.rmtree(os.path.join(parent, name))
  return tuple(os.path.join(parent, f".{base}.{kind}-{uuid.uuid4().hex}")
               for kind in ("tmp", "old"))


def delete_checkpoint(prefix):
  """Removes a checkpoint's files (.index, .data-*, .meta if any).

  Args:
    prefix: checkpoint prefix.
  """
  prefix = os.fspath(prefix)
  # The index goes first so a partially deleted checkpoint is never seen as valid.
  for path in [prefix + ".index"] + _data_files(prefix) + [prefix + ".meta"]:
    if tf.io.gfile.exists(path):
      tf.io.gfile.remove(path)
