"""An independent reference: the same weights in tf-models-official's BertEncoderV2.

Used by tests and bench/bench_encoder_parity.py to check this encoder against Model
Garden's maintained implementation (which runs on tf_keras, Keras 2).
"""

import numpy as np
import tensorflow as tf


def _keras_activation(hidden_act):
  import tf_keras  # pylint: disable=g-import-not-at-top
  if hidden_act in ("gelu", "gelu_new"):
    return lambda x: tf_keras.activations.gelu(x, approximate=True)
  if hidden_act == "gelu_exact":
    return lambda x: tf_keras.activations.gelu(x, approximate=False)
  if hidden_act in ("relu", "tanh"):
    return hidden_act
  raise ValueError("No Model Garden activation for hidden_act %r" % (hidden_act,))


def build_model_garden_encoder(config, named_vars):
  """Builds official.nlp.modeling.networks.BertEncoderV2 holding the given weights.

  Args:
    config: BertConfig.
    named_vars: dict {original name: variable or array} with every bert/... weight.

  Returns:
    A callable (input_ids [B,S], input_mask [B,S], token_type_ids [B,S]) ->
    (sequence_output [B,S,H], pooled_output [B,H]) running Model Garden's encoder
    with dropout off.
  """
  from official.nlp.modeling import networks  # pylint: disable=g-import-not-at-top
  h, n = config.hidden_size, config.num_attention_heads
  d = h // n
  encoder = networks.BertEncoderV2(
      vocab_size=config.vocab_size, hidden_size=h,
      num_layers=config.num_hidden_layers, num_attention_heads=n,
      max_sequence_length=config.max_position_embeddings,
      type_vocab_size=config.type_vocab_size, inner_dim=config.intermediate_size,
      inner_activation=_keras_activation(config.hidden_act), output_dropout=0.0,
      attention_dropout=0.0)
  dummy = tf.zeros([1, 2], tf.int32)
  encoder(dict(input_word_ids=dummy, input_mask=tf.ones_like(dummy),
               input_type_ids=dummy))

  def get(name):
    return np.asarray(named_vars[name].numpy() if hasattr(named_vars[name], "numpy")
                      else named_vars[name])

  mapping = {
      "word_embeddings/embeddings": get("bert/embeddings/word_embeddings"),
      "position_embedding/embeddings": get("bert/embeddings/position_embeddings"),
      "type_embeddings/embeddings": get("bert/embeddings/token_type_embeddings"),
      "embeddings/layer_norm/gamma": get("bert/embeddings/LayerNorm/gamma"),
      "embeddings/layer_norm/beta": get("bert/embeddings/LayerNorm/beta"),
      "pooler_transform/kernel": get("bert/pooler/dense/kernel"),
      "pooler_transform/bias": get("bert/pooler/dense/bias"),
  }
  for i in range(config.num_hidden_layers):
    src = "bert/encoder/layer_%d/" % i
    dst = "transformer/layer_%d/" % i
    for part in ("query", "key", "value"):
      # Model Garden splits heads in the kernel: [H, H] -> [H, N, D].
      mapping[dst + "self_attention/%s/kernel" % part] = get(
          src + "attention/self/%s/kernel" % part).reshape(h, n, d)
      mapping[dst + "self_attention/%s/bias" % part] = get(
          src + "attention/self/%s/bias" % part).reshape(n, d)
    mapping[dst + "self_attention/attention_output/kernel"] = get(
        src + "attention/output/dense/kernel").reshape(n, d, h)
    mapping[dst + "self_attention/attention_output/bias"] = get(
        src + "attention/output/dense/bias")
    mapping[dst + "self_attention_layer_norm/gamma"] = get(
        src + "attention/output/LayerNorm/gamma")
    mapping[dst + "self_attention_layer_norm/beta"] = get(
        src + "attention/output/LayerNorm/beta")
    mapping[dst + "intermediate/kernel"] = get(src + "intermediate/dense/kernel")
    mapping[dst + "intermediate/bias"] = get(src + "intermediate/dense/bias")
    mapping[dst + "output/kernel"] = get(src + "output/dense/kernel")
    mapping[dst + "output/bias"] = get(src + "output/dense/bias")
    mapping[dst + "output_layer_norm/gamma"] = get(src + "output/LayerNorm/gamma")
    mapping[dst + "output_layer_norm/beta"] = get(src + "output/LayerNorm/beta")

  assigned = set()
  for weight in encoder.weights:
    key = weight.name.split("/", 1)[1]
    key = key[:-2] if key.endswith(":0") else key
    if key not in mapping:
      raise ValueError("Model Garden weight %s has no mapping" % weight.name)
    weight.assign(mapping[key])
    assigned.add(key)
  unassigned = set(mapping) - assigned
  if unassigned:
    raise ValueError("Mapped weights not found in Model Garden encoder: %s"
                     % sorted(unassigned))

  def run(input_ids, input_mask, token_type_ids):
    out = encoder(dict(input_word_ids=input_ids, input_mask=input_mask,
                       input_type_ids=token_type_ids), training=False)
    return out["sequence_output"], out["pooled_output"]

  return run
