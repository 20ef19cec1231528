"""LIDC data sets: prepare once with `tensorflow_datasets`, read without TF.

Three source formats, one prepared form:

=============  ==========================================  ===========  =====
format         source                                      splits       size
=============  ==========================================  ===========  =====
lidc_slices    LIDC-IDRI slices PNGs (.tar.gz or folder)   by patient   128
lidc_crops     DeepMind's crops: train/val/test.tar.gz     archives'    180
lidc_pickle    PHiSeg / PyTorch ports' data_lidc.pickle    by series    128
=============  ==========================================  ===========  =====

Each prepared example: image uint8 [H, W]; masks uint8 [4, H, W] with values
0/1 (one per radiologist; all-zero where one marked nothing); id (str);
patient (str). Files: `array_record` with `tfds.features.Tensor` / `Text`
features under `<data_dir>/<format>/1.0.0/`; the split rule, each split's
patients, the counts by number of raters marking and any bad examples
skipped are in the builder's metadata (`metadata.json` there).

    report = prepare('lidc_slices', manual_dir, data_dir)   # once
    print(report)
    train = load_source('lidc_slices', data_dir, 'train')    # random access
    ex = train[0]   # {'image', 'masks', 'id', 'patient'}

Command line: `python scripts/prepare_data.py --format lidc_slices
--manual_dir ../shared/data/lidc-idri-slices --data_dir ~/tfds_lidc`.

Bad input raises `LidcDataError` naming the file and what was expected; with
`skip_bad_examples=True` bad examples are skipped and listed in the report.
The split rule for the formats that come unsplit: `SPLIT_RULE`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import tensorflow_datasets as tfds

from hpu_jax.data.lidc.errors import (LidcDataError, LidcNotPreparedError,
                                      find_data_error)
from hpu_jax.data.lidc.images import center_crop
from hpu_jax.data.lidc.plan import BadExample
from hpu_jax.data.lidc.report import PrepareReport
from hpu_jax.data.lidc.source import LidcSource
from hpu_jax.data.lidc.split import SPLIT_RULE, SPLITS, split_patients
from hpu_jax.data.lidc.tfds_builder import LidcBuilder
from hpu_jax.data.lidc.crops import (CROPS_EVAL_MARGIN, CROPS_EVAL_SIZE,
                                     CROPS_SIZE, CROPS_TRAIN_CROP, LidcCrops,
                                     crops_eval_crop)
from hpu_jax.data.lidc.pickle_file import PICKLE_SIZE, LidcPickle
from hpu_jax.data.lidc.slices import SLICES_SIZE, LidcSlices

FORMATS = ('lidc_slices', 'lidc_crops', 'lidc_pickle')
BUILDERS: dict[str, type[LidcBuilder]] = {
    'lidc_slices': LidcSlices,
    'lidc_crops': LidcCrops,
    'lidc_pickle': LidcPickle,
}
IMAGE_SIZES = {'lidc_slices': SLICES_SIZE, 'lidc_crops': CROPS_SIZE,
               'lidc_pickle': PICKLE_SIZE}
PREPARE_COMMAND = ('python scripts/prepare_data.py --format {fmt} '
                   '--manual_dir <the raw data> --data_dir {data_dir}')

__all__ = [
    'FORMATS', 'BUILDERS', 'IMAGE_SIZES', 'SPLITS', 'SPLIT_RULE',
    'builder', 'prepare', 'load_source',
    'PrepareReport', 'BadExample', 'LidcSource', 'LidcDataError',
    'LidcNotPreparedError', 'split_patients', 'center_crop',
    'crops_eval_crop', 'CROPS_SIZE', 'CROPS_EVAL_MARGIN', 'CROPS_EVAL_SIZE',
    'CROPS_TRAIN_CROP', 'SLICES_SIZE', 'PICKLE_SIZE',
]


def _builder_class(fmt: str) -> type[LidcBuilder]:
  try:
    return BUILDERS[fmt]
  except KeyError:
    raise ValueError(f'unknown LIDC format {fmt!r}; expected one of '
                     f'{", ".join(FORMATS)}') from None


def builder(fmt: str, manual_dir: str | os.PathLike[str] | None,
            data_dir: str | os.PathLike[str],
            skip_bad_examples: bool = False) -> LidcBuilder:
  """The TFDS builder of `fmt` reading `manual_dir`, writing under `data_dir`.

  `manual_dir`: the raw data (an archive, a folder of archives, an extracted
  folder or a pickle file, per format); None when only reading. Files go to
  `<data_dir>/<fmt>/<version>/` in the array_record format.
  """
  cls = _builder_class(fmt)
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
    try:
      b.download_and_prepare(
          file_format='array_record',
          download_config=tfds.download.DownloadConfig(
              manual_dir=os.fspath(manual_dir)))
    except LidcDataError:
      raise
    except Exception as exc:
      original = find_data_error(exc)
      if original is None:
        raise
      raise LidcDataError(str(original)) from exc
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
