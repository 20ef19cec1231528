"""Data: the built-in synthetic set, the LIDC TFDS builders and the input pipeline."""
