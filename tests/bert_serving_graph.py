"""Runs bert-serving-server's own graph builder on a model directory (a test helper).

    TF_USE_LEGACY_KERAS=1 python tests/bert_serving_graph.py MODEL_DIR INPUTS.npz OUT.json

bert-serving-server 1.10 (PyPI) is written for TensorFlow 1.x. Its graph code runs
here unchanged on tf.compat.v1: its modules get a `tf` whose `contrib.layers.layer_norm`
is tf_slim's (tf.contrib is gone), and tf.compat.v1.layers needs the legacy Keras
(TF_USE_LEGACY_KERAS=1, tf_keras). For each pooling strategy it calls the server's
`optimize_graph` exactly as `bert-serving-start -model_dir MODEL_DIR` would, records
which trainable variables the server found in the checkpoint (the server initialises
the others randomly, silently), runs the frozen graph on the inputs and writes
{strategy: {"vectors", "variables", "initialized"}} as JSON. Any error the server
raises (e.g. "Unsupported activation") ends the script with its message.
"""

import json
import os
import sys
import types

import numpy as np
import tensorflow as tf
import tf_slim

STRATEGIES = ("CLS_POOLED", "REDUCE_MEAN")


def _tf1_module():
  """tf.compat.v1 as a module, with the tf.contrib pieces the server uses."""
  v1 = tf.compat.v1
  shim = types.ModuleType("tensorflow")
  shim.__dict__.update({k: getattr(v1, k) for k in dir(v1) if not k.startswith("__")})
  shim.contrib = types.SimpleNamespace(
      layers=types.SimpleNamespace(layer_norm=tf_slim.layers.layer_norm))
  return shim


def main(model_dir, inputs_path, output_path):
  tf.compat.v1.disable_v2_behavior()
  tf1 = _tf1_module()
  # pylint: disable=g-import-not-at-top
  from bert_serving.server import graph as server_graph
  from bert_serving.server.bert import modeling as server_modeling
  from bert_serving.server.helper import get_args_parser
  server_modeling.tf = tf1
  server_graph.import_tf = lambda **unused: tf1
  found = {}
  assignment_map_of = server_modeling.get_assignment_map_from_checkpoint

  def recorded(tvars, init_checkpoint):
    assignment_map, initialized = assignment_map_of(tvars, init_checkpoint)
    found["variables"] = sorted(v.name.split(":")[0] for v in tvars)
    found["initialized"] = sorted({n.split(":")[0] for n in initialized})
    return assignment_map, initialized

  server_modeling.get_assignment_map_from_checkpoint = recorded
  inputs = np.load(inputs_path)
  results = {}
  for strategy in STRATEGIES:
    args = get_args_parser().parse_args([
        "-model_dir", model_dir, "-pooling_strategy", strategy, "-pooling_layer",
        "-1", "-graph_tmp_dir", os.path.dirname(os.path.abspath(output_path))])
    with tf.Graph().as_default():
      built = server_graph.optimize_graph(args)
    if built is None:
      raise SystemExit("bert-serving-server could not build its graph (see above)")
    graph_file, _ = built
    graph_def = tf1.GraphDef()
    with open(graph_file, "rb") as f:
      graph_def.ParseFromString(f.read())
    os.remove(graph_file)
    # TF 2's grappler remapper would turn the frozen graph's LayerNorm into a fused
    # kernel with another epsilon; bert-serving runs on TF 1.x, which has no such pass.
    config = tf1.ConfigProto()
    config.graph_options.rewrite_options.remapping = (
        config.graph_options.rewrite_options.OFF)
    with tf.Graph().as_default() as graph:
      tf1.import_graph_def(graph_def, name="")
      with tf1.Session(graph=graph, config=config) as session:
        vectors = session.run("final_encodes:0", {
            "input_ids:0": inputs["input_ids"], "input_mask:0": inputs["input_mask"],
            "input_type_ids:0": inputs["segment_ids"]})
    results[strategy] = dict(found, vectors=vectors.tolist())
  with open(output_path, "w", encoding="utf-8") as f:
    json.dump(results, f)


if __name__ == "__main__":
  main(*sys.argv[1:4])
