"""LIDC data sets: prepare once with `tensorflow_datasets`, read without TF.

Four source formats, one prepared form:

=============  ==========================================  ===========  =====
format         source                                      splits       size
=============  ==========================================  ===========  =====
lidc_slices    LIDC-IDRI slices PNGs (.tar.gz or folder)   by patient   128
lidc_crops     DeepMind's crops: train/val/test.tar.gz     archives'    180
lidc_pickle    PHiSeg / PyTorch ports' data_lidc.pickle    by series    128
lidc_raw       TCIA's LIDC-IDRI: DICOM + XML, made into    by patient   180
               crops by the HPU-Net's rules, then read
               as lidc_crops
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
--manual_dir /path/to/LIDC-IDRI-slices --data_dir /path/to/tensorflow_datasets`.
From TCIA's raw LIDC-IDRI (DICOM + XML): `--format lidc_raw --manual_dir
/path/to/LIDC-IDRI`; its crops go to `<data_dir>/lidc_raw_crops` (or
`--crops_dir`), then are prepared as `lidc_crops` would prepare them.

Bad input raises `LidcDataError` naming the file and what was expected; with
`skip_bad_examples=True` bad examples are skipped and listed in the report.
The split rule for the formats that come unsplit: `SPLIT_RULE`.

The files of this package, each responsible for one thing:

  prepared.py      `builder`, `prepare`, `is_prepared`, `load_source`: making
                   the prepared data and opening it.
  formats.py       the registry: `FORMATS`, `BUILDERS`, `IMAGE_SIZES`;
                   `missing_data_message` (where a format's files come from).
  slices.py        the LIDC-IDRI slices format (PNG folders or archive).
  crops.py         DeepMind's LIDC crops format (train / val / test archives)
                   and its evaluation centre crop.
  pickle_file.py   the PHiSeg / PyTorch ports' pickle format.
  raw.py           raw LIDC-IDRI (DICOM + XML): the crops step over all
                   patients (tree, split, workers, done-markers) and the
                   `LidcRaw` builder (`lidc_crops` read from those crops).
  raw_prepare.py   `prepare_raw`: both steps with their own settings.
  raw_patient.py   one patient's series folders -> crops and counts.
  raw_xml.py       one XML file of readings (readers, outlines, exclusions).
  raw_dicom.py     one DICOM series (checks, SliceLocation rule, HU), the
                   0.5 mm resampling and the HU window.
  raw_masks.py     polygon filling (boundary included), exclusions as holes.
  raw_crops.py     abnormalities (overlapping boxes), centred crops and the
                   crops layout's file names.
  raw_report.py    `RawCounts`: what the crops step found and filtered.
  tfds_builder.py  `LidcBuilder`, the TFDS builder base of the formats
                   (`LidcRaw` through `LidcCrops`): features, metadata,
                   bad-example handling.
  plan.py          what a format hands the builder: `SplitPlan`, `Candidate`,
                   `BadExample`.
  split.py         the deterministic patient split (`split_patients`,
                   `SPLIT_RULE`).
  files.py         reading a folder or a tar archive alike (`FileTree`).
  images.py        PNG decoding and the size / binary-mask checks.
  errors.py        `LidcDataError`, `LidcNotPreparedError` and their wording.
  source.py        `LidcSource`: random access to a prepared split.
  report.py        `PrepareReport`: what `prepare` did.
"""

from __future__ import annotations

from hpu_jax.data.lidc.crops import (CROPS_EVAL_MARGIN, CROPS_EVAL_SIZE,
                                     CROPS_SIZE, CROPS_TRAIN_CROP, LidcCrops,
                                     crops_eval_crop)
from hpu_jax.data.lidc.errors import (LidcDataError, LidcNotPreparedError,
                                      find_data_error, is_skippable)
from hpu_jax.data.lidc.formats import (BUILDERS, FORMATS, IMAGE_SIZES,
                                       missing_data_message)
from hpu_jax.data.lidc.images import center_crop
from hpu_jax.data.lidc.pickle_file import PICKLE_SIZE, LidcPickle
from hpu_jax.data.lidc.plan import BadExample
from hpu_jax.data.lidc.prepared import (PREPARE_COMMAND, builder, is_prepared,
                                        load_source, prepare)
from hpu_jax.data.lidc.raw import LidcRaw, write_raw_crops
from hpu_jax.data.lidc.raw_dicom import DEFAULT_HU_WINDOW, parse_hu_window
from hpu_jax.data.lidc.raw_prepare import prepare_raw
from hpu_jax.data.lidc.raw_report import RawCounts
from hpu_jax.data.lidc.report import PrepareReport
from hpu_jax.data.lidc.slices import SLICES_SIZE, LidcSlices
from hpu_jax.data.lidc.source import LidcSource
from hpu_jax.data.lidc.split import SPLIT_RULE, SPLITS, split_patients
from hpu_jax.data.lidc.tfds_builder import LidcBuilder

__all__ = [
    'FORMATS', 'BUILDERS', 'IMAGE_SIZES', 'SPLITS', 'SPLIT_RULE',
    'PREPARE_COMMAND', 'builder', 'prepare', 'is_prepared', 'load_source',
    'missing_data_message',
    'PrepareReport', 'BadExample', 'LidcSource', 'LidcDataError',
    'LidcNotPreparedError', 'find_data_error', 'is_skippable', 'split_patients',
    'center_crop', 'crops_eval_crop', 'CROPS_SIZE', 'CROPS_EVAL_MARGIN',
    'CROPS_EVAL_SIZE', 'CROPS_TRAIN_CROP', 'SLICES_SIZE', 'PICKLE_SIZE',
    'LidcBuilder', 'LidcSlices', 'LidcCrops', 'LidcPickle', 'LidcRaw',
    'prepare_raw', 'write_raw_crops', 'RawCounts', 'DEFAULT_HU_WINDOW',
    'parse_hu_window',
]
