"""A stratified train/dev split, for datasets that ship without a dev file."""

from typing import List, Sequence, Tuple

import numpy as np


def stratified_split(examples: Sequence, fraction: float, seed: int,
                     label_of=lambda example: example.label) -> Tuple[List, List]:
  """Splits examples into (train, dev) keeping each label's share in both parts.

  Imbalanced sets (Emotion's "surprise" is 3.6% of the data) need this: a plain
  random split can leave a rare class nearly absent from dev.

  Args:
    examples: the examples to split, in file order.
    fraction: share of each label's examples that goes to dev, in (0, 1).
    seed: fixes which examples go where.
    label_of: returns an example's label.

  Returns:
    (train, dev): two lists, each in the original file order.
  """
  if not 0.0 < fraction < 1.0:
    raise ValueError(f"dev split fraction must be in (0, 1), got {fraction}")
  rng = np.random.RandomState(seed)
  by_label = {}
  for index, example in enumerate(examples):
    by_label.setdefault(label_of(example), []).append(index)
  dev_indices = set()
  for label in sorted(by_label, key=str):
    indices = np.array(by_label[label])
    rng.shuffle(indices)
    # Round, but keep at least one dev and one train example of every label that
    # has two or more.
    count = int(round(len(indices) * fraction))
    if len(indices) >= 2:
      count = min(max(count, 1), len(indices) - 1)
    dev_indices.update(indices[:count].tolist())
  train = [ex for i, ex in enumerate(examples) if i not in dev_indices]
  dev = [ex for i, ex in enumerate(examples) if i in dev_indices]
  return train, dev
