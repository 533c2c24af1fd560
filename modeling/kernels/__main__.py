"""python -m modeling.kernels: builds the CPU kernels for the installed TensorFlow."""

import sys

from training import environment  # before TensorFlow loads
environment.configure()
from modeling import kernels  # pylint: disable=g-import-not-at-top,wrong-import-position

if __name__ == "__main__":
  try:
    kernels.build()
  except RuntimeError as e:
    sys.exit("modeling.kernels: %s" % e)
