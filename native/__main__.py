"""python -m native: builds the C++ WordPiece tokenizer (native/wordpiece.cc)."""

import sys

from native import wordpiece

if __name__ == "__main__":
  try:
    print("built %s" % wordpiece.build_library())
  except RuntimeError as e:
    sys.exit("native: %s" % e)
