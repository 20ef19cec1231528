"""The TFDS builder base class of the formats (the LIDC formats and `folder`).

`LidcBuilder` turns a format's `SplitPlan` into array_record files with
`tfds.features.Tensor` / `Text` features (`example_features`), so the data
is prepared and read back without TensorFlow. It records in the metadata the
split rule, each split's patients, the count of examples by number of raters
marking and any bad examples skipped. Also the data set's citation.

A format sets how many masks each example holds (`NUM_MASKS`: 4 raters for
LIDC, K annotators for `folder`) and its citation; the LIDC formats keep the
defaults, so what they prepare does not depend on the generalisation.

Nothing here imports the model or training parts of hpu_jax.
"""

from __future__ import annotations

import abc
import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from hpu_jax.data.lidc.errors import LidcDataError, data_error, skippable
from hpu_jax.data.lidc.images import NUM_RATERS, count_raters_marking
from hpu_jax.data.lidc.plan import BadExample, Candidate, SplitPlan

LIDC_CITATION = """\
@misc{armato2015lidc,
  title={Data From LIDC-IDRI},
  author={Armato III, Samuel G. and others},
  howpublished={The Cancer Imaging Archive},
  doi={10.7937/K9/TCIA.2015.LO9QL9SX},
  year={2015}
}
@article{armato2011lidc,
  title={The Lung Image Database Consortium (LIDC) and Image Database Resource
         Initiative (IDRI): a completed reference database of lung nodules on
         CT scans},
  author={Armato III, Samuel G. and others},
  journal={Medical Physics}, volume={38}, pages={915--931}, year={2011}
}
@article{clark2013tcia,
  title={The Cancer Imaging Archive (TCIA): Maintaining and Operating a Public
         Information Repository},
  author={Clark, Kenneth and others},
  journal={Journal of Digital Imaging}, volume={26}, number={6},
  pages={1045--1057}, year={2013}
}
"""


def example_features(size: tuple[int, int], num_masks: int = NUM_RATERS
                     ) -> tfds.features.FeaturesDict:
  """The stored features: the arrays as raw bytes (`Encoding.BYTES`); masks
  [num_masks, H, W].

  Not the default encoding (an int64 list per pixel in the proto: 3x slower
  to write, 2x the memory) and no zlib: array_record already compresses each
  record (on the LIDC slices, zlib on top saved 5 % of disk for several times
  the write and read time).
  """
  h, w = size
  raw = tfds.features.Encoding.BYTES
  return tfds.features.FeaturesDict({
      'image': tfds.features.Tensor(shape=(h, w), dtype=np.uint8,
                                    encoding=raw),
      'masks': tfds.features.Tensor(shape=(num_masks, h, w), dtype=np.uint8,
                                    encoding=raw),
      'id': tfds.features.Text(),
      'patient': tfds.features.Text(),
  })


class LidcBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Base of the builders (array_record, no TensorFlow needed).

  Subclasses set `FORMAT`, `IMAGE_SIZE`, `LAYOUT`, `ORIGIN`, `EXAMPLE_DIR`,
  the TFDS class attributes, and implement `plan(source_path) -> SplitPlan`;
  `NUM_MASKS` and `CITATION` default to LIDC's 4 raters and citation, and
  `stored_features()` may return None to read the features back from the
  prepared files.

  Examples: image uint8 [H, W]; masks uint8 [NUM_MASKS, H, W], 0/1; id;
  patient.
  They are stored in the order planned (shuffling disabled: the input
  pipeline shuffles). The metadata (`builder.info.metadata`) records the
  split rule, each split's patients, the count of examples by number of
  raters who marked something, and the bad examples skipped.
  """

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'First version.'}
  FORMAT: str = ''
  IMAGE_SIZE: tuple[int, int] = (128, 128)
  NUM_MASKS: int = NUM_RATERS
  CITATION: str = LIDC_CITATION
  LAYOUT: str = ''
  DESCRIPTION: str = ''
  HOMEPAGE: str = ''
  # For a user with no files yet: where they come from, and a placeholder
  # path to them (`formats.missing_data_message`).
  ORIGIN: str = ''
  EXAMPLE_DIR: str = ''
  # No code folder with checksums / metadata files: these builders download
  # nothing. (TFDS's default `code_path` lookup also needs the
  # `importlib_resources` back-port for builders defined in a package, which
  # is not a dependency here.)
  code_path = None

  def __init__(self, *, manual_path: str | os.PathLike[str] | None = None,
               skip_bad_examples: bool = False, **kwargs):
    self._manual_path = None if manual_path is None else Path(manual_path)
    self._skip_bad_examples = bool(skip_bad_examples)
    kwargs.setdefault('file_format', 'array_record')
    super().__init__(**kwargs)

  def stored_features(self) -> tfds.features.FeaturesDict | None:
    """The features of the examples (None: those of the prepared files)."""
    return example_features(self.IMAGE_SIZE, self.NUM_MASKS)

  # -- TFDS hooks -----------------------------------------------------------

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=self.DESCRIPTION,
        features=self.stored_features(),
        homepage=self.HOMEPAGE,
        citation=self.CITATION,
        metadata=tfds.core.MetadataDict(),
        disable_shuffling=True,
    )

  def _split_generators(self, dl_manager):
    path = self._manual_path
    if path is None:
      path = Path(os.fspath(dl_manager.manual_dir))
    if not path.exists():
      raise data_error(str(path), 'does not exist', self.LAYOUT)
    plan = self.plan(path)
    self._plan = plan
    self._bad: list[BadExample] = []
    self._stats: dict[str, dict[str, Any]] = {}
    self._update_metadata()
    return {split: self._generate_examples(split, cands)
            for split, cands in plan.candidates.items()}

  def _generate_examples(self, split: str, candidates: list[Candidate]
                         ) -> Iterator[tuple[str, dict[str, Any]]]:
    plan = self._plan
    if plan.before_split is not None:
      plan.before_split(split)
    raters = [0] * (self.NUM_MASKS + 1)
    patients = set()
    count = 0
    for cand in candidates:
      try:
        if cand.error is not None:
          raise cand.error
        assert cand.load is not None
        image, masks = cand.load()
      except LidcDataError as exc:
        if not self._skip_bad_examples:
          raise skippable(exc)
        self._bad.append(BadExample(cand.id, split, str(exc)))
        continue
      raters[count_raters_marking(masks)] += 1
      patients.add(cand.patient)
      count += 1
      yield cand.id, {'image': image, 'masks': masks, 'id': cand.id,
                      'patient': cand.patient}
    if plan.after_split is not None:
      plan.after_split(split)
    if count == 0:
      bad = [b for b in self._bad if b.split == split]
      shown = '; '.join(str(b) for b in bad[:3])
      raise data_error(
          f'{plan.source} (split {split})',
          f'no valid examples: all {len(candidates)} were bad ({shown})',
          'at least one valid example per split')
    self._stats[split] = {
        'num_examples': count,
        'num_patients': len(patients),
        'raters_marking': {str(k): v for k, v in enumerate(raters)},
    }
    self._update_metadata()

  # -- helpers ----------------------------------------------------------------

  def _update_metadata(self) -> None:
    plan = self._plan
    md = self.info.metadata
    md.clear()
    md.update({
        'format': self.FORMAT,
        'source': plan.source,
        'layout': self.LAYOUT,
        'skip_bad_examples': self._skip_bad_examples,
        'split_patients': plan.patients,
        'split_stats': self._stats,
        'num_bad_examples': len(self._bad),
        'bad_examples': [dataclasses.asdict(b) for b in self._bad],
        'details': plan.details,
    })

  @abc.abstractmethod
  def plan(self, path: Path) -> SplitPlan:
    """Finds the examples under `path` and assigns them to splits."""
