"""BertConfig: the hyper-parameters of a BERT encoder, read from `bert_config.json`."""

import copy
import json
import os
import uuid

# Activations the encoder knows. "gelu" is the tanh approximation used by Google's
# original modeling.py; "gelu_exact" is the erf form (Hugging Face's "gelu").
KNOWN_ACTIVATIONS = ("gelu", "gelu_exact", "gelu_new", "relu", "tanh")

# "gelu" means the tanh approximation to Google's final modeling.py but the erf form
# to bert-as-service (whose get_activation knows only linear, relu, gelu and tanh)
# and to Hugging Face. So files say the erf form as "hidden_act": "gelu" with
# "gelu_approximate": false: those tools read "gelu" and compute erf, this project
# reads both keys, and a file without the key keeps the original's meaning. In
# memory the erf form is "gelu_exact", which older files of this project also use.
GELU_APPROXIMATE_KEY = "gelu_approximate"

_REQUIRED_FIELDS = ("vocab_size",)


def read_json_file(json_file):
  """The JSON object of a `bert_config.json`, as written (no field is interpreted).

  Raises:
    ConfigError: naming the file (and the line) when it is missing or not JSON.
  """
  json_file = os.fspath(json_file)
  if not os.path.isfile(json_file):
    raise ConfigError("%s: BERT config file not found" % json_file)
  with open(json_file, "r", encoding="utf-8") as reader:
    text = reader.read()
  try:
    return json.loads(text)
  except json.JSONDecodeError as e:
    raise ConfigError("%s: line %d: invalid JSON (%s); expected a BERT config object"
                      % (json_file, e.lineno, e.msg)) from e


def with_current_gelu_spelling(json_object):
  """A config dict with the erf GELU spelled as files spell it now.

  This project's older files said "hidden_act": "gelu_exact"; the same model is now
  "gelu" with "gelu_approximate": false (GELU_APPROXIMATE_KEY). Other dicts are
  returned as they are.
  """
  if (isinstance(json_object, dict) and json_object.get("hidden_act") == "gelu_exact"
      and GELU_APPROXIMATE_KEY not in json_object):
    return dict(json_object, hidden_act="gelu", **{GELU_APPROXIMATE_KEY: False})
  return json_object


class ConfigError(ValueError):
  """A BERT configuration is malformed or inconsistent."""


class BertConfig(object):
  """Configuration of a `BertModel` (same fields and defaults as the original)."""

  def __init__(self,
               vocab_size,
               hidden_size=768,
               num_hidden_layers=12,
               num_attention_heads=12,
               intermediate_size=3072,
               hidden_act="gelu",
               hidden_dropout_prob=0.1,
               attention_probs_dropout_prob=0.1,
               max_position_embeddings=512,
               type_vocab_size=16,
               initializer_range=0.02):
    """Constructs a BertConfig.

    Args:
      vocab_size: size of the WordPiece vocabulary.
      hidden_size: width H of every layer.
      num_hidden_layers: number of Transformer layers.
      num_attention_heads: attention heads per layer; must divide hidden_size.
      intermediate_size: width I of the feed-forward layer.
      hidden_act: one of KNOWN_ACTIVATIONS.
      hidden_dropout_prob: dropout on embeddings, attention output and FFN output.
      attention_probs_dropout_prob: dropout on the attention probabilities.
      max_position_embeddings: longest sequence the model can take.
      type_vocab_size: number of segment (token type) ids.
      initializer_range: stddev of the truncated normal weight initializer.
    """
    self.vocab_size = vocab_size
    self.hidden_size = hidden_size
    self.num_hidden_layers = num_hidden_layers
    self.num_attention_heads = num_attention_heads
    self.intermediate_size = intermediate_size
    self.hidden_act = hidden_act
    self.hidden_dropout_prob = hidden_dropout_prob
    self.attention_probs_dropout_prob = attention_probs_dropout_prob
    self.max_position_embeddings = max_position_embeddings
    self.type_vocab_size = type_vocab_size
    self.initializer_range = initializer_range
    # Keys found in a JSON file that this code does not use (e.g. "directionality",
    # "pooler_fc_size"); kept so that to_dict() writes them back unchanged.
    self.extra = {}

  _FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
             "intermediate_size", "hidden_act", "hidden_dropout_prob",
             "attention_probs_dropout_prob", "max_position_embeddings",
             "type_vocab_size", "initializer_range")

  @classmethod
  def from_dict(cls, json_object, source="<dict>"):
    """Builds a BertConfig from a dict; unknown keys are kept in `config.extra`.

    Args:
      json_object: mapping of field name to value.
      source: where the dict came from, used in error messages.

    Returns:
      A BertConfig.

    Raises:
      ConfigError: if a required field is missing or the object is not a dict.
    """
    if not isinstance(json_object, dict):
      raise ConfigError("%s: expected a JSON object with BERT config fields, got %s"
                        % (source, type(json_object).__name__))
    missing = [f for f in _REQUIRED_FIELDS if f not in json_object]
    if missing:
      raise ConfigError("%s: missing required field(s) %s" % (source, ", ".join(missing)))
    known = {k: v for k, v in json_object.items() if k in cls._FIELDS}
    approximate = json_object.get(GELU_APPROXIMATE_KEY)
    if approximate is not None:
      act = known.get("hidden_act", "gelu")
      if not isinstance(approximate, bool):
        raise ConfigError("%s: %s must be true or false, got %r"
                          % (source, GELU_APPROXIMATE_KEY, approximate))
      if act not in ("gelu", "gelu_exact", "gelu_new"):
        raise ConfigError("%s: %s is set but hidden_act is %r, not a GELU"
                          % (source, GELU_APPROXIMATE_KEY, act))
      if (act == "gelu_exact" and approximate) or (act == "gelu_new" and
                                                    not approximate):
        raise ConfigError("%s: hidden_act %r contradicts %s=%s"
                          % (source, act, GELU_APPROXIMATE_KEY,
                             json.dumps(approximate)))
      known["hidden_act"] = "gelu" if approximate else "gelu_exact"
    config = cls(**known)
    config.extra = {k: copy.deepcopy(v) for k, v in json_object.items()
                    if k not in cls._FIELDS and k != GELU_APPROXIMATE_KEY}
    return config

  @classmethod
  def from_json_file(cls, json_file):
    """Reads a BertConfig from a `bert_config.json` file.

    Args:
      json_file: path to the JSON file.

    Returns:
      A BertConfig.

    Raises:
      ConfigError: if the file is missing or is not valid JSON.
    """
    return cls.from_dict(read_json_file(json_file), source=os.fspath(json_file))

  def to_dict(self):
    """Returns the config as a dict (known fields then the kept extra keys).

    The erf GELU is written as "hidden_act": "gelu", "gelu_approximate": false
    (see GELU_APPROXIMATE_KEY).
    """
    output = {f: getattr(self, f) for f in self._FIELDS}
    if self.hidden_act == "gelu_exact":
      output["hidden_act"] = "gelu"
      output[GELU_APPROXIMATE_KEY] = False
    for k, v in self.extra.items():
      output.setdefault(k, copy.deepcopy(v))
    return output

  def to_json_string(self):
    """Returns the config as a sorted, indented JSON string."""
    return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

  def to_json_file(self, json_file):
    """Writes the config to `json_file` atomically.

    Args:
      json_file: destination path.
    """
    json_file = os.fspath(json_file)
    directory = os.path.dirname(os.path.abspath(json_file))
    # open() creates the file with the user's umask (mkstemp would make it 0600,
    # unreadable for a serving process running as another user).
    tmp = os.path.join(directory, f".tmp_config_{uuid.uuid4().hex}")
    try:
      with open(tmp, "x", encoding="utf-8") as f:
        f.write(self.to_json_string())
      os.replace(tmp, json_file)
    except BaseException:
      if os.path.exists(tmp):
        os.remove(tmp)
      raise

  def validate(self, max_seq_length=None):
    """Checks the config is consistent.

    Args:
      max_seq_length: if given, the sequence length the caller will feed.

    Raises:
      ConfigError: with a message saying which field is wrong and why.
    """
    for field in ("vocab_size", "hidden_size", "num_hidden_layers",
                  "num_attention_heads", "intermediate_size",
                  "max_position_embeddings", "type_vocab_size"):
      value = getattr(self, field)
      if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError("%s must be a positive integer, got %r" % (field, value))
    if self.hidden_size % self.num_attention_heads != 0:
      raise ConfigError(
          "The hidden size (%d) is not a multiple of the number of attention heads (%d)"
          % (self.hidden_size, self.num_attention_heads))
    if self.hidden_act not in KNOWN_ACTIVATIONS:
      raise ConfigError("Unknown hidden_act %r; expected one of %s"
                        % (self.hidden_act, ", ".join(KNOWN_ACTIVATIONS)))
    for field in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
      value = getattr(self, field)
      if not 0.0 <= float(value) < 1.0:
        raise ConfigError("%s must be in [0, 1), got %r" % (field, value))
    if max_seq_length is not None and max_seq_length > self.max_position_embeddings:
      raise ConfigError(
          "Cannot use sequence length %d because the BERT model was only trained up to "
          "sequence length %d (max_position_embeddings)"
          % (max_seq_length, self.max_position_embeddings))

  def __repr__(self):
    return "BertConfig(%s)" % ", ".join("%s=%r" % (f, getattr(self, f))
                                       for f in self._FIELDS)
