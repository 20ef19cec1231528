"""Making the prepared data (`prepare`) and opening it (`load_source`).

`builder` makes a format's TFDS builder for a data directory; `prepare` runs
it once over the raw files (no download) and returns a `PrepareReport`;
`is_prepared` says whether that was done; `load_source` opens one prepared
split for random access, or raises `LidcNotPreparedError` with the command
that prepares it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import tensorflow_datasets as tfds

from hpu_jax.data.lidc.errors import (LidcDataError, LidcNotPreparedError,
                                      find_data_error)
from hpu_jax.data.lidc.formats import builder_class
from hpu_jax.data.lidc.report import PrepareReport
from hpu_jax.data.lidc.source import LidcSource
from hpu_jax.data.lidc.tfds_builder import LidcBuilder

PREPARE_COMMAND = ('python scripts/prepare_data.py --format {fmt} '
                   '--manual_dir <the raw data> --data_dir {data_dir}')


def builder(fmt: str, manual_dir: str | os.PathLike[str] | None,
            data_dir: str | os.PathLike[str],
            skip_bad_examples: bool = False) -> LidcBuilder:
  """The TFDS builder of `fmt` reading `manual_dir`, writing under `data_dir`.

  `manual_dir`: the raw data (an archive, a folder of archives, an extracted
  folder or a pickle file, per format); None when only reading. Files go to
  `<data_dir>/<fmt>/<version>/` in the array_record format.
  """
  cls = builder_class(fmt)
  return cls(data_dir=os.fspath(data_dir), manual_path=manual_dir,
             skip_bad_examples=skip_bad_examples)


def is_prepared(b: LidcBuilder) -> bool:
  """Whether `b`'s data set is prepared (quietly: no TFDS warning if not)."""
  if not (Path(b.data_dir) / 'dataset_info.json').exists():
    return False
  return b.is_prepared()


def prepare(fmt: str, manual_dir: str | os.PathLike[str],
            data_dir: str | os.PathLike[str],
            skip_bad_examples: bool = False) -> PrepareReport:
  """Prepares `fmt` from `manual_dir` into `data_dir` (no download).

  Does nothing if it is already prepared there (the report says so; delete
  `<data_dir>/<fmt>` to prepare again). Raises `LidcDataError` (naming the
  file and what was expected) on the first bad example, unless
  `skip_bad_examples`, which skips and lists them in the report.
  """
  b = builder(fmt, manual_dir, data_dir, skip_bad_examples)
  already = is_prepared(b)
  start = time.perf_counter()
  if not already:
    manual = Path(manual_dir)
    if not manual.exists():
      raise LidcDataError(f'{manual}: does not exist; expected {b.LAYOUT}')
    download_and_prepare(b, manual_dir)
  seconds = time.perf_counter() - start
  # Read back from disk: the report shows what was stored.
  stored = builder(fmt, None, data_dir)
  return PrepareReport.from_builder(stored, seconds=seconds,
                                    already_prepared=already)


def load_source(fmt: str, data_dir: str | os.PathLike[str],
                split: str) -> LidcSource:
  """Random access to a prepared split: len(src), src[i] -> dict(image=uint8
  [H, W], masks=uint8 [4, H, W] (0/1), id=str, patient=str).

  Raises `LidcNotPreparedError` naming `data_dir` and the prepare command if
  `fmt` was not prepared there.
  """
  b = builder(fmt, None, data_dir)
  if not is_prepared(b):
    raise LidcNotPreparedError(
        f'the {fmt} data set is not prepared in {os.fspath(data_dir)} (no '
        f'{b.data_dir}). Prepare it once with:\n  '
        + PREPARE_COMMAND.format(fmt=fmt, data_dir=os.fspath(data_dir)))
  if split not in b.info.splits:
    raise ValueError(f'{fmt} in {b.data_dir} has no split {split!r}; it has '
                     f'{", ".join(b.info.splits)}')
  return LidcSource(b.as_data_source(split), fmt, split, str(b.data_dir))


def download_and_prepare(b: LidcBuilder, manual_dir) -> None:
  """Runs TFDS's preparation of `b`, surfacing the LidcDataError (file name,
  reason, whether skipping would help) that TFDS may have wrapped."""
  try:
    b.download_and_prepare(
        file_format='array_record',
        download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(manual_dir)))
  except LidcDataError:
    raise
  except Exception as exc:
    original = find_data_error(exc)
    if original is None:
      raise
    raise original from exc
