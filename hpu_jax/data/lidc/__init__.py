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
--manual_dir /path/to/LIDC-IDRI-slices --data_dir /path/to/tensorflow_datasets`.

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
  tfds_builder.py  `LidcBuilder`, the TFDS builder base of the three formats:
                   features, metadata, bad-example handling.
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
                                      find_data_error)
from hpu_jax.data.lidc.formats import (BUILDERS, FORMATS, IMAGE_SIZES,
                                       missing_data_message)
from hpu_jax.data.lidc.images import center_crop
from hpu_jax.data.lidc.pickle_file import PICKLE_SIZE, LidcPickle
from hpu_jax.data.lidc.plan import BadExample
from hpu_jax.data.lidc.prepared import (PREPARE_COMMAND, builder, is_prepared,
                                        load_source, prepare)
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
    'LidcNotPreparedError', 'find_data_error', 'split_patients',
    'center_crop', 'crops_eval_crop', 'CROPS_SIZE', 'CROPS_EVAL_MARGIN',
    'CROPS_EVAL_SIZE', 'CROPS_TRAIN_CROP', 'SLICES_SIZE', 'PICKLE_SIZE',
    'LidcBuilder', 'LidcSlices', 'LidcCrops', 'LidcPickle',
]
