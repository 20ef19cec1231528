#!/usr/bin/env python3
"""Prepares a LIDC data set once (TFDS, array_record; no TensorFlow needed).

    python scripts/prepare_data.py --format lidc_slices \
        --manual_dir ../shared/data/lidc-idri-slices --data_dir ~/tfds_lidc

Formats (hpu_jax.data.lidc):
  lidc_slices  LIDC-IDRI slices: the .tar.gz, a folder holding it, or the
               extracted folder. 128 x 128. Split by patient (70/15/15,
               deterministic; the rule is printed and stored).
  lidc_crops   DeepMind's LIDC crops: a folder with train.tar.gz, val.tar.gz,
               test.tar.gz (or their extracted folders). 180 x 180.
  lidc_pickle  PHiSeg / PyTorch ports' data_lidc.pickle (or its folder).
               128 x 128. Split by series uid.

Prints the split sizes, the patients per split, the count of examples by
number of raters who marked something, and the bad examples skipped. Bad
input stops with an error naming the file and what was expected, unless
--skip_bad_examples. Running it again on a prepared data_dir does nothing
(delete <data_dir>/<format> to prepare again).
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..'))

from hpu_jax.data import lidc  # pylint: disable=g-import-not-at-top


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      description=__doc__.split('\n\n')[0],
      formatter_class=argparse.RawDescriptionHelpFormatter,
      epilog=__doc__.split('\n\n', 1)[1])
  parser.add_argument('--format', required=True, choices=lidc.FORMATS)
  parser.add_argument('--manual_dir', required=True,
                      help='the raw data: archive, folder or pickle')
  parser.add_argument('--data_dir', required=True,
                      help='where the prepared data goes (not the repo)')
  parser.add_argument('--skip_bad_examples', action='store_true',
                      help='skip (and list) bad examples instead of stopping')
  args = parser.parse_args(argv)
  data_dir = os.path.expanduser(args.data_dir)
  manual_dir = os.path.expanduser(args.manual_dir)
  try:
    report = lidc.prepare(args.format, manual_dir, data_dir,
                          skip_bad_examples=args.skip_bad_examples)
  except lidc.LidcDataError as exc:
    print(f'error: {exc}', file=sys.stderr)
    if not args.skip_bad_examples:
      print('(rerun with --skip_bad_examples to skip bad examples and list '
            'them)', file=sys.stderr)
    return 1
  print(report.summary())
  return 0


if __name__ == '__main__':
  sys.exit(main())
