"""Choosing a tf.distribute strategy from the scripts' flags.

Tested on this project's CPU machines: one_device, mirrored over logical CPU
devices, and multi_worker_mirrored with localhost workers. The GPU and TPU paths
use the same tf.distribute APIs as documented by TensorFlow; they have not been
run on real accelerators by this project's tests.
"""

import json
import os
from typing import Optional

from absl import logging
import tensorflow as tf

STRATEGIES = ("one_device", "mirrored", "multi_worker_mirrored", "tpu")


def split_cpu_into_logical_devices(num_devices: int) -> None:
  """Splits the host CPU into `num_devices` logical devices.

  Lets MirroredStrategy run several replicas on a machine without GPUs (how this
  project tests the mirrored path). Must run before TensorFlow initialises its
  devices, i.e. before any op executes.

  Args:
    num_devices: number of logical CPU devices (>= 2 to take effect).
  """
  if num_devices <= 1:
    return
  cpus = tf.config.list_physical_devices("CPU")
  tf.config.set_logical_device_configuration(
      cpus[0], [tf.config.LogicalDeviceConfiguration()] * num_devices)


def resolve_strategy_name(distribution_strategy: Optional[str], use_tpu: bool) -> str:
  """Maps the original `--use_tpu` and the new `--distribution_strategy` to one name.

  Args:
    distribution_strategy: one of STRATEGIES, or None/"" for the default.
    use_tpu: the original flag; True means "tpu".

  Returns:
    The strategy name.

  Raises:
    ValueError: on an unknown name, or on --use_tpu with a non-TPU strategy.
  """
  name = (distribution_strategy or "").strip().lower()
  if use_tpu:
    if name and name != "tpu":
      raise ValueError(f"--use_tpu conflicts with --distribution_strategy={name}; "
                       "drop one of them")
    return "tpu"
  if not name:
    return "one_device"
  if name not in STRATEGIES:
    raise ValueError(f"Unknown --distribution_strategy={name!r}; expected one of "
                     f"{', '.join(STRATEGIES)}")
  return name


def get_strategy(name: str, tpu_name: Optional[str] = None,
                 tpu_zone: Optional[str] = None, gcp_project: Optional[str] = None,
                 master: Optional[str] = None) -> tf.distribute.Strategy:
  """Builds the tf.distribute strategy.

  Args:
    name: one of STRATEGIES (see resolve_strategy_name).
    tpu_name: Cloud TPU name or "local" on a TPU VM (tpu only).
    tpu_zone: GCE zone of the TPU (tpu only, optional).
    gcp_project: GCP project of the TPU (tpu only, optional).
    master: gRPC address of the TPU master, used when tpu_name is not given.

  Returns:
    The strategy.
  """
  if name == "one_device":
    device = "/gpu:0" if tf.config.list_physical_devices("GPU") else "/cpu:0"
    return tf.distribute.OneDeviceStrategy(device)
  if name == "mirrored":
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
      devices = [d.name for d in gpus]
    else:
      devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    logging.info("MirroredStrategy over %s", devices)
    return tf.distribute.MirroredStrategy(devices=devices)
  if name == "multi_worker_mirrored":
    if "TF_CONFIG" not in os.environ:
      raise ValueError("--distribution_strategy=multi_worker_mirrored needs the "
                       "TF_CONFIG environment variable (cluster and task); see README")
    json.loads(os.environ["TF_CONFIG"])  # fail early on malformed JSON
    return tf.distribute.MultiWorkerMirroredStrategy()
  if name == "tpu":
    tpu = tpu_name or master
    if not tpu:
      raise ValueError("--use_tpu / --distribution_strategy=tpu needs --tpu_name "
                       "(the TPU's name, or 'local' on a TPU VM) or --master")
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
        tpu=tpu, zone=tpu_zone, project=gcp_project)
    if tpu != "local":
      tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
  raise ValueError(f"Unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}")


def worker_index_from_tf_config(strategy_name: str) -> int:
  """This process's position among the workers (0: the chief or a single process).

  Read from TF_CONFIG before the strategy exists (a chief task is 0, the workers
  after it 1, 2, ...; without a chief, worker i is i).

  Args:
    strategy_name: the --distribution_strategy in use.
  """
  if strategy_name != "multi_worker_mirrored" or "TF_CONFIG" not in os.environ:
    return 0
  try:
    config = json.loads(os.environ["TF_CONFIG"])
    task = config.get("task", {})
    index = int(task.get("index", 0))
  except (ValueError, AttributeError, TypeError):
    return 0  # make_strategy reports a malformed TF_CONFIG
  if task.get("type") == "chief":
    return 0
  return index + 1 if "chief" in config.get("cluster", {}) else index


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """True on the worker that writes checkpoints and outputs.

  Args:
    strategy: the active strategy.

  Returns:
    False only on non-chief workers of a multi-worker cluster.
  """
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return True
  task_type, task_id = resolver.task_type, resolver.task_id
  if task_type in (None, "chief"):
    return True
  if task_type == "worker":
    cluster = resolver.cluster_spec().as_dict()
    return "chief" not in cluster and task_id == 0
  return False
