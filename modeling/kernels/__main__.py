"""python -m modeling.kernels: builds the CPU kernels for the installed TensorFlow."""

import sys

from modeling import kernels

if __name__ == "__main__":
  try:
    kernels.build()
  except RuntimeError as e:
    sys.exit("modeling.kernels: %s" % e)
