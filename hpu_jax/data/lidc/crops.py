"""DeepMind's LIDC crops ("LIDC v2", the HPU-Net paper's data): 180 x 180 PNGs.

The hierarchical_probabilistic_unet release ships `train.tar.gz`,
`val.tar.gz` and `test.tar.gz`. Each holds two folders, at any depth:

    images/<patient>/z-<pos>_c<n>.png
    gt/<patient>/z-<pos>_c<n>_l<k>.png      one per labeller k

The labeller ids are 1..4 in DeepMind's README and 0..3 in their notebook
(`_l{0..3}`); both are accepted, detected once for the whole data set (an
error if they are mixed or incomplete). masks[i] is the i-th labeller in id
order.

Manual dir: a folder with the three archives and/or their extracted folders
(named train / val / test; `validation` and names ending in `_train`,
`-val`, ... also work), or one archive. The splits are the archives'
(train / validation / test); only the splits present are prepared.

Stored at full 180 x 180. The HPU-Net setup trains on random 128 x 128 crops
and evaluates on the centre crop [26:-26, 26:-26]: `crops_eval_crop`.
Example id: '<patient>/z-<pos>_c<n>'; patient: the patient folder's name.
"""

from __future__ import annotations

import collections
import dataclasses
import re
from pathlib import Path

import numpy as np

from hpu_jax.data.lidc.errors import LidcDataError, data_error
from hpu_jax.data.lidc.files import (ArchiveTree, DirTree, FileTree,
                                     is_archive, is_png_name, natural_key,
                                     strip_archive_suffix)
from hpu_jax.data.lidc.images import (NUM_RATERS, binarize_mask, check_size,
                                      decode_png, size_text)
from hpu_jax.data.lidc.plan import Candidate, SplitPlan
from hpu_jax.data.lidc.split import SPLITS
from hpu_jax.data.lidc.tfds_builder import LidcBuilder

CROPS_SIZE = (180, 180)
CROPS_TRAIN_CROP = (128, 128)   # random crop size for training
CROPS_EVAL_MARGIN = 26          # eval: [26:-26, 26:-26] -> 128 x 128
CROPS_EVAL_SIZE = (CROPS_SIZE[0] - 2 * CROPS_EVAL_MARGIN,
                   CROPS_SIZE[1] - 2 * CROPS_EVAL_MARGIN)

CROPS_LAYOUT = (
    "DeepMind's LIDC crops layout: train.tar.gz / val.tar.gz / test.tar.gz "
    '(or extracted folders train/ val/ test/), each with images/<patient>/'
    'z-<pos>_c<n>.png and gt/<patient>/z-<pos>_c<n>_l<k>.png, labeller ids '
    'k = 0..3 or 1..4, 180 x 180 8-bit grayscale PNGs')

SPLIT_ALIASES = {'train': 'train', 'training': 'train', 'val': 'validation',
                 'valid': 'validation', 'validation': 'validation',
                 'test': 'test'}
LABELLER_ID_SETS = {0: (0, 1, 2, 3), 1: (1, 2, 3, 4)}

_CROPS_RE = re.compile(
    r'(?:^|/)(?P<kind>images|gt)/(?P<patient>[^/]+)/(?P<stem>[^/]+)\.png$')
_GT_STEM_RE = re.compile(r'^(?P<stem>.+)_l(?P<labeller>\d+)$')


def crops_eval_crop(array: np.ndarray) -> np.ndarray:
  """The evaluation centre crop: [..., 180, 180] -> [..., 26:-26, 26:-26]."""
  if tuple(array.shape[-2:]) != CROPS_SIZE:
    raise ValueError(f'expected [..., 180, 180] LIDC crops, got shape '
                     f'{tuple(array.shape)}')
  m = CROPS_EVAL_MARGIN
  return array[..., m:-m, m:-m]


@dataclasses.dataclass(frozen=True)
class CropPath:
  """A PNG of the crops layout, parsed from its relative path."""
  prefix: str
  kind: str            # 'images' or 'gt'
  patient: str
  stem: str            # z-<pos>_c<n> (for gt: without _l<k>)
  labeller: int | None  # gt only; None when the name has no _l<k>

  @property
  def example_id(self) -> str:
    return f'{self.patient}/{self.stem}'

  def image_rel(self) -> str:
    return f'{self.prefix}images/{self.patient}/{self.stem}.png'

  def gt_rel(self, labeller: int) -> str:
    return f'{self.prefix}gt/{self.patient}/{self.stem}_l{labeller}.png'


def parse_crops_path(rel: str) -> CropPath | None:
  """Parses `.../(images|gt)/<patient>/<name>.png`, else None."""
  m = _CROPS_RE.search(rel) if is_png_name(rel) else None
  if m is None:
    return None
  prefix = rel[:m.start()] + ('/' if m.start() > 0 else '')
  stem, labeller = m['stem'], None
  if m['kind'] == 'gt':
    g = _GT_STEM_RE.match(stem)
    if g is not None:
      stem, labeller = g['stem'], int(g['labeller'])
  return CropPath(prefix, m['kind'], m['patient'], stem, labeller)


def crops_split_of_name(name: str) -> str | None:
  """'val.tar.gz' -> 'validation', 'lidc_crops_train' -> 'train', else None."""
  base = strip_archive_suffix(name).lower()
  for alias, split in SPLIT_ALIASES.items():
    if base == alias or base.endswith(('_' + alias, '-' + alias)):
      return split
  return None


def find_crops_sources(path: Path) -> dict[str, Path]:
  """split -> archive or folder, from the manual dir (or one archive)."""
  if path.is_file():
    split = crops_split_of_name(path.name)
    if not is_archive(path) or split is None:
      raise data_error(str(path), 'not a train / val / test archive',
                       CROPS_LAYOUT)
    return {split: path}
  found: dict[str, Path] = {}
  for child in sorted(path.iterdir()):
    split = crops_split_of_name(child.name)
    if split is None or not (child.is_dir() or is_archive(child)):
      continue
    if split in found:
      raise data_error(
          str(child), f'a second source for the {split} split (also '
          f'{found[split]})', 'one archive or extracted folder per split')
    found[split] = child
  if not found:
    names = sorted(p.name for p in path.iterdir())
    shown = ', '.join(names[:5]) + (', ...' if len(names) > 5 else '')
    raise data_error(
        str(path), 'no train / val / test archive or folder found (it holds: '
        f'{shown or "nothing"})', CROPS_LAYOUT)
  return {s: found[s] for s in SPLITS if s in found}


def open_crops_tree(path: Path) -> FileTree:
  if path.is_dir():
    return DirTree(path)
  return ArchiveTree(path, keep=is_png_name, preload=False)


@dataclasses.dataclass
class CropGroup:
  """The files of one example (one image and its labellers' masks)."""
  image: CropPath | None = None
  gts: dict[int, CropPath] = dataclasses.field(default_factory=dict)
  bad_names: list[CropPath] = dataclasses.field(default_factory=list)

  @property
  def any_path(self) -> CropPath:
    if self.image is not None:
      return self.image
    return next(iter(self.gts.values()), None) or self.bad_names[0]


def group_crops_files(tree: FileTree) -> dict[str, CropGroup]:
  """example id -> its files, in natural order. Raises if none is found."""
  groups: dict[str, CropGroup] = {}
  for rel in tree.files:
    cp = parse_crops_path(rel)
    if cp is None:
      continue
    group = groups.setdefault(cp.example_id, CropGroup())
    if cp.kind == 'images':
      if group.image is not None:
        raise _twice_error(tree, rel, group.image.image_rel())
      group.image = cp
    elif cp.labeller is None:
      group.bad_names.append(cp)
    else:
      if cp.labeller in group.gts:
        raise _twice_error(tree, rel, group.gts[cp.labeller].gt_rel(
            cp.labeller))
      group.gts[cp.labeller] = cp
  if not groups:
    n = len(tree.files)
    shown = ', '.join(tree.files[:3]) + (', ...' if n > 3 else '')
    problem = (f'nothing of the LIDC crops layout found among {n} file(s) '
               f'({shown})' if n else 'empty (no files)')
    raise data_error(str(tree.root), problem, CROPS_LAYOUT)
  return {k: groups[k] for k in sorted(groups, key=natural_key)}


def _twice_error(tree, rel, other_rel):
  return data_error(tree.where(rel), f'found twice (also '
                    f'{tree.where(other_rel)})',
                    'each image and annotation once per split')


def detect_labeller_base(trees: dict[str, FileTree],
                         groups: dict[str, dict[str, CropGroup]],
                         where: str) -> int:
  """0 for labeller ids 0..3, 1 for 1..4; raises if mixed or incomplete."""
  counts: collections.Counter[int] = collections.Counter()
  first: dict[int, str] = {}
  for split, split_groups in groups.items():
    for group in split_groups.values():
      for k, cp in group.gts.items():
        counts[k] += 1
        first.setdefault(k, trees[split].where(cp.gt_rel(k)))
  ids = tuple(sorted(counts))
  for base, expected in LABELLER_ID_SETS.items():
    if ids == expected:
      return base
  found = ', '.join(f'l{k}: {counts[k]} files (e.g. {first[k]})' for k in ids)
  problem = ('mixed or incomplete labeller ids in the gt file names: '
             + (found or 'no gt files at all'))
  raise data_error(
      where, problem, 'labeller ids 0..3 (_l0 .. _l3, as in DeepMind\'s '
      'notebook) or 1..4 (_l1 .. _l4, as in their README), the same for the '
      'whole data set')


def check_crop_group(example_id: str, group: CropGroup, tree: FileTree,
                     labellers: tuple[int, ...]) -> LidcDataError | None:
  """The problem with an example's set of files, or None."""
  if group.bad_names:
    cp = group.bad_names[0]
    return data_error(
        tree.where(f'{cp.prefix}gt/{cp.patient}/{cp.stem}.png'),
        'annotation file name without a labeller id',
        'gt/<patient>/z-<pos>_c<n>_l<k>.png')
  any_path = group.any_path
  if group.image is None:
    return data_error(
        tree.where(any_path.image_rel()),
        f'image missing for {example_id} (its annotations exist)',
        'an image in images/<patient>/ for every annotated crop')
  extra = sorted(set(group.gts) - set(labellers))
  if extra:
    return data_error(
        tree.where(group.gts[extra[0]].gt_rel(extra[0])),
        f'unexpected labeller id {extra[0]}',
        f'labeller ids {labellers[0]}..{labellers[-1]} (as in the rest of the '
        'data set)')
  for k in labellers:
    if k not in group.gts:
      return data_error(
          tree.where(any_path.gt_rel(k)),
          f'annotation file missing for {example_id} (labeller {k})',
          f'the masks of all 4 labellers (_l{labellers[0]} .. '
          f'_l{labellers[-1]}; an all-zero PNG where one marked nothing)')
  return None


def load_crop_example(tree: FileTree, group: CropGroup,
                      labellers: tuple[int, ...]
                      ) -> tuple[np.ndarray, np.ndarray]:
  """Reads, decodes and checks one crop: (image [180, 180], masks [4, ...])."""
  assert group.image is not None
  image_rel = group.image.image_rel()
  image_where = tree.where(image_rel)
  image = decode_png(tree.read(image_rel), image_where)
  check_size(image, CROPS_SIZE, image_where, 'image',
             f'{size_text(CROPS_SIZE)} (DeepMind LIDC crops)')
  masks = np.empty((NUM_RATERS,) + CROPS_SIZE, np.uint8)
  for i, k in enumerate(labellers):
    rel = group.gts[k].gt_rel(k)
    where = tree.where(rel)
    mask = decode_png(tree.read(rel), where)
    check_size(mask, image.shape, where, 'mask',
               f'the size of its image {image_where} '
               f'({size_text(image.shape)})')
    masks[i] = binarize_mask(mask, where)
  return image, masks


def plan_crops(path: Path) -> SplitPlan:
  sources = find_crops_sources(path)
  trees = {s: open_crops_tree(p) for s, p in sources.items()}
  groups = {s: group_crops_files(t) for s, t in trees.items()}
  base = detect_labeller_base(trees, groups, str(path))
  labellers = LABELLER_ID_SETS[base]
  candidates: dict[str, list[Candidate]] = {}
  patients: dict[str, list[str]] = {}
  for split, split_groups in groups.items():
    tree = trees[split]
    cands = []
    for eid, group in split_groups.items():
      error = check_crop_group(eid, group, tree, labellers)
      load = None if error else (
          lambda tree=tree, group=group: load_crop_example(
              tree, group, labellers))
      cands.append(Candidate(eid, group.any_path.patient, load=load,
                             error=error))
    candidates[split] = cands
    patients[split] = sorted({c.patient for c in cands},
                             key=natural_key)
  seen: collections.Counter[str] = collections.Counter(
      p for ps in patients.values() for p in ps)
  return SplitPlan(
      candidates=candidates,
      patients=patients,
      source=str(path),
      details={
          'labeller_ids': f'{labellers[0]}..{labellers[-1]}',
          'split_sources': {s: str(p) for s, p in sources.items()},
          'patients_in_several_splits': sorted(
              (p for p, n in seen.items() if n > 1), key=natural_key),
          'eval_crop': f'[{CROPS_EVAL_MARGIN}:-{CROPS_EVAL_MARGIN}, '
                       f'{CROPS_EVAL_MARGIN}:-{CROPS_EVAL_MARGIN}]',
      },
      after_split=lambda split: trees[split].release(),
  )


class LidcCrops(LidcBuilder, skip_registration=True):
  """DeepMind's LIDC crops: 180 x 180, 4 labellers, their train/val/test."""

  FORMAT = 'lidc_crops'
  IMAGE_SIZE = CROPS_SIZE
  LAYOUT = CROPS_LAYOUT
  DESCRIPTION = (
      "DeepMind's LIDC-IDRI 2D crops (180 x 180, 0.5 mm in-plane) from the "
      'Hierarchical Probabilistic U-Net release, with the masks of 4 '
      'labellers (0/1). Splits: their train / val / test archives. Train on '
      'random 128 x 128 crops, evaluate on the centre crop [26:-26, 26:-26].')
  HOMEPAGE = ('https://github.com/google-deepmind/deepmind-research/tree/'
              'master/hierarchical_probabilistic_unet')
  ORIGIN = (
      "DeepMind's LIDC crops: train.tar.gz, val.tar.gz and test.tar.gz (or "
      'their extracted folders) from gs://hpunet-data/lidc_crops/, in one '
      'folder')
  EXAMPLE_DIR = '/path/to/lidc_crops'
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      'Put train.tar.gz, val.tar.gz and test.tar.gz (gs://hpunet-data/'
      'lidc_crops/) or their extracted folders in the manual dir. Layout: '
      + CROPS_LAYOUT)

  def plan(self, path: Path) -> SplitPlan:
    return plan_crops(path)
