"""C++ parts of the project that are not TensorFlow kernels, and the build helper
that both they and modeling/kernels use.

    python -m native          # builds the WordPiece tokenizer (wordpiece.cc)
"""
