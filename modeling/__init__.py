"""BERT modeling: config, encoder, task heads, checkpoint I/O and the optimizer."""

from modeling.config import BertConfig, ConfigError
from modeling.encoder import BertModel, BertOutput
from modeling.heads import (BertClassifier, BertSquad, classification_loss,
                            compute_class_weights, squad_loss)
