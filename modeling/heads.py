"""Task heads on top of BertModel, with the original variable names and losses."""

import numpy as np
import tensorflow as tf

from modeling.encoder import BertModel, NamedVariableModule, dropout

# Dropout site of the classifier head; the encoder's layers use 1..num_layers.
HEAD_DROPOUT_SITE = 1_000_000


class BertClassifier(NamedVariableModule):
  """Sentence (pair) classifier as in the original run_classifier.py's create_model.

  Variables: the encoder's bert/... plus `output_weights` [num_labels, H] and
  `output_bias` [num_labels].
  """

  def __init__(self, config, num_labels, compute_dtype=tf.float32):
    """Creates the encoder and the output layer.

    Args:
      config: BertConfig.
      num_labels: number of classes (>= 1).
      compute_dtype: dtype of the matmuls (variables are float32).
    """
    super().__init__(name="bert_classifier")
    if int(num_labels) < 1:
      raise ValueError("num_labels must be >= 1, got %r" % (num_labels,))
    self.config = config
    self.num_labels = int(num_labels)
    self.compute_dtype = tf.as_dtype(compute_dtype)
    self.bert = BertModel(config, compute_dtype=compute_dtype)
    self._named.update(self.bert.named_variables())
    self.output_weights = self._add_variable(
        "output_weights",
        tf.random.truncated_normal([self.num_labels, config.hidden_size], stddev=0.02))
    self.output_bias = self._add_variable("output_bias", tf.zeros([self.num_labels]))

  def __call__(self, input_ids, input_mask, segment_ids, training=False,
               dropout_seed=None):
    """Computes the class logits.

    Args:
      input_ids: int [B, S].
      input_mask: int [B, S].
      segment_ids: int [B, S].
      training: python bool; enables dropout.
      dropout_seed: optional int [2] tensor for stateless (reproducible) dropout.

    Returns:
      float32 logits [B, num_labels].
    """
    pooled = self.bert(input_ids, input_mask, segment_ids, training=training,
                       dropout_seed=dropout_seed,
                       pooled_only=True).pooled_output  # [B, H]
    pooled = dropout(pooled, self.config.hidden_dropout_prob, training, dropout_seed,
                     HEAD_DROPOUT_SITE)
    dt = self.compute_dtype
    logits = tf.matmul(tf.cast(pooled, dt), tf.cast(self.output_weights, dt),
                       transpose_b=True)  # [B, num_labels]
    return tf.cast(logits, tf.float32) + self.output_bias


def classification_loss(logits, label_ids, num_labels, class_weights=None):
  """Softmax cross-entropy per example, as the original create_model.

  Args:
    logits: float [B, num_labels].
    label_ids: int [B].
    num_labels: number of classes.
    class_weights: optional float [num_labels]; each example's loss is multiplied by
      the weight of its true class.

  Returns:
    float32 per_example_loss [B].
  """
  logits = tf.cast(logits, tf.float32)
  log_probs = tf.nn.log_softmax(logits, axis=-1)  # [B, num_labels]
  one_hot = tf.one_hot(tf.cast(label_ids, tf.int32), depth=num_labels, dtype=tf.float32)
  per_example_loss = -tf.reduce_sum(one_hot * log_probs, axis=-1)  # [B]
  if class_weights is not None:
    weights = tf.convert_to_tensor(class_weights, dtype=tf.float32)  # [num_labels]
    per_example_loss *= tf.reduce_sum(one_hot * weights, axis=-1)
  return per_example_loss


def compute_class_weights(label_counts, scheme="balanced"):
  """Class weights for an imbalanced training set.

  Args:
    label_counts: sequence of counts indexed by label id (or a dict id -> count).
    scheme: "balanced": n_samples / (n_classes * count) (scikit-learn's formula);
      "none": all ones.

  Returns:
    float32 np.ndarray [n_classes].

  Raises:
    ValueError: on an unknown scheme, a negative count, or a class with no examples.
  """
  if isinstance(label_counts, dict):
    n = max(label_counts) + 1 if label_counts else 0
    label_counts = [label_counts.get(i, 0) for i in range(n)]
  counts = np.asarray(label_counts, dtype=np.float64)
  if counts.ndim != 1 or counts.size == 0:
    raise ValueError("label_counts must be a non-empty 1-D list of counts, got %r"
                     % (label_counts,))
  if scheme == "none":
    return np.ones(counts.shape, dtype=np.float32)
  if scheme != "balanced":
    raise ValueError("Unknown class weight scheme %r; expected 'balanced' or 'none'"
                     % (scheme,))
  if np.any(counts <= 0):
    missing = [int(i) for i in np.nonzero(counts <= 0)[0]]
    raise ValueError("Cannot balance class weights: label id(s) %s have no training "
                     "examples" % missing)
  return (counts.sum() / (counts.size * counts)).astype(np.float32)


class BertSquad(NamedVariableModule):
  """SQuAD span head: `cls/squad/output_weights` [2, H], `cls/squad/output_bias` [2]."""

  def __init__(self, config, compute_dtype=tf.float32):
    """Creates the encoder and the span output layer.

    Args:
      config: BertConfig.
      compute_dtype: dtype of the matmuls (variables are float32).
    """
    super().__init__(name="bert_squad")
    self.config = config
    self.compute_dtype = tf.as_dtype(compute_dtype)
    self.bert = BertModel(config, compute_dtype=compute_dtype)
    self._named.update(self.bert.named_variables())
    self.output_weights = self._add_variable(
        "cls/squad/output_weights",
        tf.random.truncated_normal([2, config.hidden_size], stddev=0.02))
    self.output_bias = self._add_variable("cls/squad/output_bias", tf.zeros([2]))

  def __call__(self, input_ids, input_mask, segment_ids, training=False,
               dropout_seed=None):
    """Computes start and end logits.

    Args:
      input_ids: int [B, S].
      input_mask: int [B, S].
      segment_ids: int [B, S].
      training: python bool; enables dropout inside the encoder.
      dropout_seed: optional int [2] tensor for stateless (reproducible) dropout.

    Returns:
      (start_logits, end_logits), each float32 [B, S].
    """
    seq = self.bert(input_ids, input_mask, segment_ids, training=training,
                    dropout_seed=dropout_seed).sequence_output  # [B, S, H]
    dt = self.compute_dtype
    logits = tf.einsum("bsh,kh->kbs", tf.cast(seq, dt),
                       tf.cast(self.output_weights, dt))  # [2, B, S]
    logits = tf.cast(logits, tf.float32) + self.output_bias[:, None, None]
    return logits[0], logits[1]


def squad_loss(start_logits, end_logits, start_positions, end_positions):
  """The original SQuAD loss: mean of the start and end position cross-entropies.

  Args:
    start_logits: float [B, S].
    end_logits: float [B, S].
    start_positions: int [B].
    end_positions: int [B].

  Returns:
    float32 scalar (start_loss + end_loss) / 2, each a batch mean.
  """
  def position_loss(logits, positions):
    logits = tf.cast(logits, tf.float32)
    seq_length = tf.shape(logits)[1]
    one_hot = tf.one_hot(tf.cast(positions, tf.int32), depth=seq_length,
                         dtype=tf.float32)  # [B, S]
    log_probs = tf.nn.log_softmax(logits, axis=-1)
    return -tf.reduce_mean(tf.reduce_sum(one_hot * log_probs, axis=-1))

  return (position_loss(start_logits, start_positions) +
          position_loss(end_logits, end_positions)) / 2.0
