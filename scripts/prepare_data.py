#!/usr/bin/env python3
r"""Prepares a LIDC data set once (TFDS, array_record; no TensorFlow needed).

    python scripts/prepare_data.py --format lidc_slices \
        --manual_dir /path/to/LIDC-IDRI-slices \
        --data_dir /path/to/tensorflow_datasets

Formats (--format: one of hpu_jax.data.lidc.FORMATS):
  lidc_slices  LIDC-IDRI slices: the .tar.gz, a folder holding it, or the
               extracted folder. 128 x 128. Split by patient (70/15/15,
               deterministic; the rule is printed and stored).
  lidc_crops   DeepMind's LIDC crops: a folder with train.tar.gz, val.tar.gz,
               test.tar.gz (or their extracted folders). 180 x 180.
  lidc_pickle  PHiSeg / PyTorch ports' data_lidc.pickle (or its folder).
               128 x 128. Split by series uid.

Prints the split sizes, the patients per split, the count of examples by
number of raters who marked something, and the bad examples skipped. Bad
input stops with an error naming the file and what was expected (exit code
1), unless --skip_bad_examples. Running it again on a prepared data_dir does
nothing (delete <data_dir>/<format> to prepare again). Bad flags: exit code 2.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..'))

from absl import app, flags, logging  # noqa: E402

from hpu_jax.data import lidc  # noqa: E402

USAGE_EXIT_CODE = 2   # bad flags, as argparse and most command-line tools

FORMAT = flags.DEFINE_enum('format', None, lidc.FORMATS,
                           'The LIDC format to prepare.')
MANUAL_DIR = flags.DEFINE_string('manual_dir', None,
                                 'The raw data: archive, folder or pickle.')
DATA_DIR = flags.DEFINE_string(
    'data_dir', None, 'Where the prepared data goes (not the repository).')
SKIP_BAD_EXAMPLES = flags.DEFINE_bool(
    'skip_bad_examples', False,
    'Skip (and list) bad examples instead of stopping.')
flags.mark_flags_as_required(['format', 'manual_dir', 'data_dir'])
_OWN_FLAGS = (FORMAT, MANUAL_DIR, DATA_DIR, SKIP_BAD_EXAMPLES)


def run(argv: Sequence[str]) -> int:
  """Prepares what the (parsed) flags name; 0, or 1 on bad input.

  `argv`: the program name and any positional arguments (none expected), as
  `app.run` passes them.
  """
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}',
                         exitcode=USAGE_EXIT_CODE)
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)   # TFDS logs every file at INFO.
  data_dir = os.path.expanduser(DATA_DIR.value)
  manual_dir = os.path.expanduser(MANUAL_DIR.value)
  try:
    report = lidc.prepare(FORMAT.value, manual_dir, data_dir,
                          skip_bad_examples=SKIP_BAD_EXAMPLES.value)
  except lidc.LidcDataError as exc:
    print(f'error: {exc}', file=sys.stderr)
    if not SKIP_BAD_EXAMPLES.value:
      print('(rerun with --skip_bad_examples to skip bad examples and list '
            'them)', file=sys.stderr)
    return 1
  print(report.summary())
  return 0


def main(argv: Sequence[str] | None = None) -> int:
  """Parses `argv` (the flags as on the command line, without the program
  name; default `sys.argv[1:]`) and runs: for callers in Python, such as the
  tests. Each call starts from the flags' defaults."""
  argv = sys.argv[1:] if argv is None else list(argv)
  for flag in _OWN_FLAGS:
    flags.FLAGS[flag.name].unparse()
  return run(flags.FLAGS([__file__, *argv]))


def _parse_flags(argv: list[str]) -> list[str]:
  """`app.run`'s flag parser, exiting with `USAGE_EXIT_CODE` on bad flags."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as exc:
    print(f'FATAL Flags parsing error: {exc}\nPass --helpshort or --helpfull '
          'to see help on flags.', file=sys.stderr)
    sys.exit(USAGE_EXIT_CODE)


if __name__ == '__main__':
  app.run(run, flags_parser=_parse_flags)
