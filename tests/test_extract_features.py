# coding=utf-8
"""extract_features.py on a tiny config: the original's JSON lines, exact values."""

import json

import numpy as np

from cli_helpers import run_script, write_bert_config, write_vocab


def test_extract_features_matches_the_encoder(tmp_path):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tokenization  # pylint: disable=g-import-not-at-top
  from modeling import checkpoint as ckpt_lib  # pylint: disable=g-import-not-at-top
  from modeling import config as config_lib  # pylint: disable=g-import-not-at-top
  from modeling import encoder  # pylint: disable=g-import-not-at-top
  vocab = write_vocab(tmp_path / "vocab.txt")
  config_file = write_bert_config(tmp_path / "bert_config.json",
                                  len(vocab.read_text().split()))
  config = config_lib.BertConfig.from_json_file(config_file)
  tf.random.set_seed(3)
  model = encoder.BertModel(config)
  ckpt_lib.save_checkpoint(str(tmp_path / "bert_model.ckpt"), model.named_variables())
  lines = ["I feel so happy today!", "sad at work ||| angry with my friends",
           "the weather is " + "very " * 20 + "great"]
  (tmp_path / "input.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
  output = tmp_path / "features.jsonl"
  run_script("extract_features.py", [
      f"--input_file={tmp_path / 'input.txt'}", f"--output_file={output}",
      f"--vocab_file={vocab}", f"--bert_config_file={config_file}",
      f"--init_checkpoint={tmp_path / 'bert_model.ckpt'}", "--layers=-1,-2",
      "--max_seq_length=12", "--batch_size=2", "--use_one_hot_embeddings=true"])
  records = [json.loads(line) for line in output.read_text().splitlines()]
  assert [r["linex_index"] for r in records] == [0, 1, 2]
  assert list(records[0]) == ["linex_index", "features"]
  first = records[0]["features"][0]
  assert list(first) == ["token", "layers"]
  assert [layer["index"] for layer in first["layers"]] == [-1, -2]
  assert all(list(layer) == ["index", "values"] for layer in first["layers"])

  tokenizer = tokenization.FullTokenizer(str(vocab))
  assert [f["token"] for f in records[0]["features"]] == (
      ["[CLS]"] + tokenizer.tokenize(lines[0]) + ["[SEP]"])
  pair_tokens = [f["token"] for f in records[1]["features"]]
  assert pair_tokens == (["[CLS]", "sad", "at", "work", "[SEP]", "angry", "with", "my",
                          "friends", "[SEP]"])
  assert len(records[2]["features"]) == 12  # truncated to max_seq_length

  for index, (text_a, text_b) in enumerate([(lines[0], None),
                                            ("sad at work", "angry with my friends")]):
    tokens = [f["token"] for f in records[index]["features"]]
    ids = tokenizer.convert_tokens_to_ids(tokens)
    types = [0] * len(tokens)
    if text_b:
      first_sep = tokens.index("[SEP]")
      types = [0] * (first_sep + 1) + [1] * (len(tokens) - first_sep - 1)
    out = model(tf.constant([ids]), tf.ones([1, len(ids)], tf.int32),
                tf.constant([types]))
    for layer_pos, layer_index in enumerate([-1, -2]):
      got = np.array([f["layers"][layer_pos]["values"]
                      for f in records[index]["features"]])
      want = out.all_encoder_layers[layer_index][0].numpy()
      np.testing.assert_allclose(got, want, atol=1e-5)
  # Layer -1 is the model's sequence_output for the same input.
  ids = tokenizer.convert_tokens_to_ids([f["token"] for f in records[0]["features"]])
  sequence_output = model(tf.constant([ids])).sequence_output.numpy()[0]
  np.testing.assert_allclose(
      np.array([f["layers"][0]["values"] for f in records[0]["features"]]),
      sequence_output, atol=1e-5)
