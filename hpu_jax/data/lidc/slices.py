"""LIDC-IDRI slices ("LIDC v1"): 128 x 128 PNG crops, four masks per slice.

Layout (the archive `.tar.gz` itself, a folder holding one such archive, or
the extracted folder, at any depth):

    LIDC-IDRI-slices/LIDC-IDRI-XXXX/nodule-N/images/slice-K.png
    LIDC-IDRI-slices/LIDC-IDRI-XXXX/nodule-N/mask-0/slice-K.png
    ...                                     mask-3/slice-K.png

Images: 128 x 128, 8-bit grayscale. Masks: 128 x 128, values 0 and 255 (0
and 1 also accepted); an all-zero mask means that radiologist marked nothing.
Example id: 'LIDC-IDRI-XXXX/nodule-N/slice-K'; patient: 'LIDC-IDRI-XXXX'.
Split: by patient, `split.SPLIT_RULE`.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np

from hpu_jax.data.lidc.errors import LidcDataError, data_error
from hpu_jax.data.lidc.files import (ArchiveTree, DirTree, FileTree,
                                     is_archive, is_png_name, natural_key)
from hpu_jax.data.lidc.images import (NUM_RATERS, binarize_mask, check_size,
                                      decode_png, size_text)
from hpu_jax.data.lidc.plan import Candidate, SplitPlan
from hpu_jax.data.lidc.split import SPLITS, SPLIT_RULE, split_patients
from hpu_jax.data.lidc.tfds_builder import LidcBuilder

SLICES_SIZE = (128, 128)
SLICES_LAYOUT = (
    'the LIDC-IDRI slices layout: [LIDC-IDRI-slices/]LIDC-IDRI-XXXX/nodule-N/'
    'images/slice-K.png with mask-0/slice-K.png .. mask-3/slice-K.png beside '
    'images/ (128 x 128 8-bit grayscale PNGs), as a .tar.gz archive or its '
    'extracted folder')
MASK_DIRS = tuple(f'mask-{k}' for k in range(NUM_RATERS))

_SLICE_RE = re.compile(
    r'(?:^|/)(?P<patient>[^/]+)/(?P<nodule>nodule-[^/]+)/'
    r'(?P<kind>images|mask-\d+)/(?P<slice>slice-[^/]+)\.png$')


@dataclasses.dataclass(frozen=True)
class SlicePath:
  """A PNG of the slices layout, parsed from its relative path."""
  prefix: str   # the part of the path before the patient folder
  patient: str
  nodule: str
  kind: str     # 'images' or 'mask-k'
  slice: str

  @property
  def example_id(self) -> str:
    return f'{self.patient}/{self.nodule}/{self.slice}'

  def sibling(self, kind: str) -> str:
    """Relative path of the same slice's file in folder `kind`."""
    return f'{self.prefix}{self.patient}/{self.nodule}/{kind}/{self.slice}.png'


def parse_slice_path(rel: str) -> SlicePath | None:
  """Parses `.../<patient>/nodule-N/(images|mask-k)/slice-K.png`, else None."""
  m = _SLICE_RE.search(rel) if is_png_name(rel) else None
  if m is None:
    return None
  prefix = rel[:m.start()] + ('/' if m.start() > 0 else '')
  return SlicePath(prefix=prefix, patient=m['patient'], nodule=m['nodule'],
                   kind=m['kind'], slice=m['slice'])


def open_slices_tree(path: Path) -> FileTree:
  """The archive or folder at `path`, checked to hold the slices layout."""
  if path.is_file():
    if not is_archive(path):
      raise data_error(str(path), 'not a tar archive', SLICES_LAYOUT)
    tree = ArchiveTree(path, keep=is_png_name, preload=True)
    if not any(parse_slice_path(f) for f in tree.files):
      raise _empty_error(tree)
    return tree
  tree = DirTree(path)
  if any(parse_slice_path(f) for f in tree.files):
    return tree
  archives = sorted(p for p in path.iterdir()
                    if p.is_file() and is_archive(p))
  if len(archives) == 1:
    return open_slices_tree(archives[0])
  if len(archives) > 1:
    raise data_error(
        str(path), 'several archives found ('
        + ', '.join(p.name for p in archives) + ')',
        'one LIDC-IDRI slices archive (pass its path) or the extracted folder')
  raise _empty_error(tree)


def _empty_error(tree: FileTree) -> LidcDataError:
  n = len(tree.files)
  shown = ', '.join(tree.files[:3]) + (', ...' if n > 3 else '')
  problem = (f'nothing of the LIDC-IDRI slices layout found among {n} '
             f'file(s) ({shown})' if n else 'empty (no files)')
  return data_error(str(tree.root), problem, SLICES_LAYOUT)


def group_slice_files(tree: FileTree
                      ) -> dict[str, dict[str, SlicePath]]:
  """example id -> {'images' / 'mask-k': parsed path}, in natural order."""
  groups: dict[str, dict[str, SlicePath]] = {}
  for rel in tree.files:
    sp = parse_slice_path(rel)
    if sp is None:
      continue
    files = groups.setdefault(sp.example_id, {})
    if sp.kind in files:
      raise data_error(
          tree.where(rel), f'slice {sp.example_id} found twice (also '
          f'{tree.where(files[sp.kind].sibling(sp.kind))})',
          'each patient folder once in the data set')
    files[sp.kind] = sp
  return {k: groups[k] for k in sorted(groups, key=natural_key)}


def check_slice_files(example_id: str, files: dict[str, SlicePath],
                      tree: FileTree) -> LidcDataError | None:
  """The problem with a slice's set of files (missing / extra), or None."""
  any_file = next(iter(files.values()))
  extra = sorted(k for k in files if k != 'images' and k not in MASK_DIRS)
  if extra:
    return data_error(
        tree.where(files[extra[0]].sibling(extra[0])),
        f'unexpected annotation folder {extra[0]}',
        'masks in mask-0 .. mask-3 only (4 radiologists)')
  if 'images' not in files:
    return data_error(
        tree.where(any_file.sibling('images')),
        f'image missing for slice {example_id} (its masks exist)',
        'an image in images/ for every annotated slice')
  for kind in MASK_DIRS:
    if kind not in files:
      return data_error(
          tree.where(any_file.sibling(kind)),
          f'annotation file missing for slice {example_id}',
          'the masks of all 4 radiologists (mask-0 .. mask-3/slice-K.png; an '
          'all-zero PNG where one marked nothing)')
  return None


def load_slice_example(tree: FileTree, files: dict[str, SlicePath]
                       ) -> tuple[np.ndarray, np.ndarray]:
  """Reads, decodes and checks one slice: (image [128, 128], masks [4, ...])."""
  image_rel = files['images'].sibling('images')
  image_where = tree.where(image_rel)
  image = decode_png(tree.read(image_rel), image_where)
  check_size(image, SLICES_SIZE, image_where, 'image',
             f'{size_text(SLICES_SIZE)} (LIDC-IDRI slices)')
  masks = np.empty((NUM_RATERS,) + SLICES_SIZE, np.uint8)
  for k, kind in enumerate(MASK_DIRS):
    rel = files[kind].sibling(kind)
    where = tree.where(rel)
    mask = decode_png(tree.read(rel), where)
    check_size(mask, image.shape, where, 'mask',
               f'the size of its image {image_where} '
               f'({size_text(image.shape)})')
    masks[k] = binarize_mask(mask, where)
  return image, masks


def plan_slices(path: Path) -> SplitPlan:
  """Finds every slice under `path` and splits them by patient."""
  tree = open_slices_tree(path)
  groups = group_slice_files(tree)
  patient_of = {eid: next(iter(f.values())).patient
                for eid, f in groups.items()}
  split_of_patient = {}
  split_lists = split_patients(patient_of.values(), str(tree.root))
  for split, patients in split_lists.items():
    for p in patients:
      split_of_patient[p] = split
  candidates: dict[str, list[Candidate]] = {s: [] for s in SPLITS}
  for eid, files in groups.items():
    patient = patient_of[eid]
    error = check_slice_files(eid, files, tree)
    load = None if error else (
        lambda files=files: load_slice_example(tree, files))
    candidates[split_of_patient[patient]].append(
        Candidate(eid, patient, load=load, error=error))
  return SplitPlan(
      candidates=candidates,
      patients=split_lists,
      source=str(tree.root),
      details={'split_rule': SPLIT_RULE,
               'nodules': len({e.rsplit('/', 1)[0] for e in groups})},
  )


class LidcSlices(LidcBuilder, skip_registration=True):
  """LIDC-IDRI slices: 128 x 128 crops, 4 radiologists' masks, split by patient."""

  FORMAT = 'lidc_slices'
  IMAGE_SIZE = SLICES_SIZE
  LAYOUT = SLICES_LAYOUT
  DESCRIPTION = (
      'LIDC-IDRI slices (128 x 128 crops around lung nodules) with the masks '
      'of 4 radiologists (0/1; all-zero where one marked nothing). Split by '
      'patient: ' + SPLIT_RULE)
  HOMEPAGE = 'https://wiki.cancerimagingarchive.net/display/Public/LIDC-IDRI'
  ORIGIN = (
      'the public "LIDC-IDRI slices" collection: its .tar.gz, a folder holding '
      'it, or the extracted folder, laid out as LIDC-IDRI-XXXX/nodule-N/'
      'images/slice-K.png with mask-0 .. mask-3/slice-K.png beside images/')
  EXAMPLE_DIR = '/path/to/LIDC-IDRI-slices'
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      'Pass the LIDC-IDRI slices archive (.tar.gz), a folder holding it, or '
      'the extracted folder as the manual dir. Layout: ' + SLICES_LAYOUT)

  def plan(self, path: Path) -> SplitPlan:
    return plan_slices(path)
