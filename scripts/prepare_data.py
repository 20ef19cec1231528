#!/usr/bin/env python3
r"""Prepares a LIDC data set once (TFDS, array_record; no TensorFlow needed).

    python scripts/prepare_data.py --format lidc_slices \
        --manual_dir /path/to/LIDC-IDRI-slices \
        --data_dir /path/to/tensorflow_datasets

    python scripts/prepare_data.py --format lidc_raw \
        --manual_dir /path/to/LIDC-IDRI \
        --data_dir /path/to/tensorflow_datasets [--crops_dir /path/to/crops]

Formats (--format: one of hpu_jax.data.lidc.FORMATS):
  lidc_slices  LIDC-IDRI slices: the .tar.gz, a folder holding it, or the
               extracted folder. 128 x 128. Split by patient (70/15/15,
               deterministic; the rule is printed and stored).
  lidc_crops   DeepMind's LIDC crops: a folder with train.tar.gz, val.tar.gz,
               test.tar.gz (or their extracted folders). 180 x 180.
  lidc_pickle  PHiSeg / PyTorch ports' data_lidc.pickle (or its folder).
               128 x 128. Split by series uid.
  lidc_raw     TCIA's LIDC-IDRI collection (DICOM + XML). Two steps: 180 x
               180 crops at 0.5 mm, centred on each outlined abnormality,
               one mask per reader, written in DeepMind's crops layout to
               --crops_dir (default <data_dir>/lidc_raw_crops), split by
               patient; then prepared from there as lidc_crops would be.
               --hu_window=min,max (HU to 0..255, default -1350,150, a lung
               window) and --num_workers (default: all cores) apply to it
               only.

Prints the split sizes, the patients per split, the count of examples by
number of raters who marked something, and the bad examples skipped
(lidc_raw first prints the crops step's counts: patients, series, readings,
abnormalities, crops, and what each rule filtered out). Bad
input stops with an error naming the file and what was expected (exit code
1), unless --skip_bad_examples. Running it again on a prepared data_dir does
nothing (delete <data_dir>/<format> to prepare again; for lidc_raw the
crops of finished patients are kept too). Bad flags: exit code 2.
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
CROPS_DIR = flags.DEFINE_string(
    'crops_dir', None, 'lidc_raw: where the crops go (default '
    '<data_dir>/lidc_raw_crops).')
HU_WINDOW = flags.DEFINE_string(
    'hu_window', None, 'lidc_raw: "min,max" HU mapped linearly to 0..255, '
    'clipped (default -1350,150: the lung window, level -600 width 1500). '
    'Write it with "=": --hu_window=-1350,150.')
NUM_WORKERS = flags.DEFINE_integer(
    'num_workers', None, 'lidc_raw: worker processes, one patient each at a '
    'time (default: the number of cores; 1: no extra processes).',
    lower_bound=1)
flags.mark_flags_as_required(['format', 'manual_dir', 'data_dir'])
_OWN_FLAGS = (FORMAT, MANUAL_DIR, DATA_DIR, SKIP_BAD_EXAMPLES, CROPS_DIR,
              HU_WINDOW, NUM_WORKERS)
_RAW_FLAGS = (CROPS_DIR, HU_WINDOW, NUM_WORKERS)


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
  raw = FORMAT.value == lidc.LidcRaw.FORMAT
  given = [f'--{f.name}' for f in _RAW_FLAGS if f.value is not None]
  if given and not raw:
    raise app.UsageError(f'{", ".join(given)}: only for --format lidc_raw',
                         exitcode=USAGE_EXIT_CODE)
  try:
    if raw:
      report = _prepare_raw(manual_dir, data_dir)
    else:
      report = lidc.prepare(FORMAT.value, manual_dir, data_dir,
                            skip_bad_examples=SKIP_BAD_EXAMPLES.value)
  except lidc.LidcDataError as exc:
    print(f'error: {exc}', file=sys.stderr)
    if lidc.is_skippable(exc) and not SKIP_BAD_EXAMPLES.value:
      print('(rerun with --skip_bad_examples to skip bad examples and list '
            'them)', file=sys.stderr)
    return 1
  print(report.summary())
  return 0


def _prepare_raw(manual_dir: str, data_dir: str) -> lidc.PrepareReport:
  """lidc_raw's two steps; prints the crops step's counts in between."""
  try:
    hu_window = (lidc.DEFAULT_HU_WINDOW if HU_WINDOW.value is None else
                 lidc.parse_hu_window(HU_WINDOW.value))
  except ValueError as exc:
    raise app.UsageError(f'--{exc}', exitcode=USAGE_EXIT_CODE) from None
  crops_dir = (None if CROPS_DIR.value is None
               else os.path.expanduser(CROPS_DIR.value))
  _, report = lidc.prepare_raw(
      manual_dir, data_dir, crops_dir=crops_dir, hu_window=hu_window,
      num_workers=NUM_WORKERS.value,
      skip_bad_examples=SKIP_BAD_EXAMPLES.value,
      echo=lambda text: print(text, flush=True))
  return report


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
