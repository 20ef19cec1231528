"""Abnormalities on one slice, their 180 x 180 crops and the files written.

`group_marks` applies the original's rule: two readers' masks belong to the
same abnormality when their tightest bounding boxes overlap on that slice.
Boxes are taken at the original resolution, inclusive (sharing one pixel
row and one pixel column is an overlap; merely touching is not), and the
grouping is transitive over all masks of the slice: connected components of
the overlap graph. Where one reader has several masks in an abnormality
(two of their nodules, linked by another reader's box), that reader's mask
is their union. Abnormalities are numbered on the slice in the order of
their union box (top row, then left column).

`make_crop` centres the crop on the abnormality: the centre of its union box
(in mm, from the original pixel centres) is placed at the middle of the 180
x 180 crop of the 0.5 mm grid, to the nearest pixel (within 0.5 pixel =
0.25 mm of the crop's centre, 89.5 in pixel coordinates). Images: linear in
HU then windowed; masks: nearest (see raw_dicom.py).

`write_crop` writes the crops layout that `lidc_crops` reads:

    images/<patient>/z-<imageZposition>_c<n>.png
    gt/<patient>/z-<imageZposition>_c<n>_l<k>.png    k = 0..3, one per reader

z is the roi's imageZposition as written in the XML; n counts the crops of a
patient at that z, over the patient's series in the order of their
SeriesInstanceUID and, within a series, in the order above. So crops of two
series at the same z never collide (the second series' continue the
numbering) and each name stays DeepMind's. Masks are stored 0/255, an
all-zero PNG where a reader did not mark the abnormality.
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np

from hpu_jax.data.lidc.images import NUM_RATERS
from hpu_jax.data.lidc.raw_dicom import (PAD_HU, TARGET_SPACING_MM,
                                         crop_linear, crop_nearest,
                                         window_to_uint8)

CROP_SIZE = (180, 180)


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
  """(row0, row1, col0, col1), inclusive, of the marked pixels; None if
  the mask is empty."""
  rows = np.flatnonzero(mask.any(axis=1))
  if rows.size == 0:
    return None
  cols = np.flatnonzero(mask.any(axis=0))
  return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def boxes_overlap(a, b) -> bool:
  return a[0] <= b[1] and b[0] <= a[1] and a[2] <= b[3] and b[2] <= a[3]


@dataclasses.dataclass
class Mark:
  """One reader's mask of one of their nodules on one slice."""
  reader: int
  key: tuple          # identifies the reader's nodule (for 3D counting)
  mask: np.ndarray    # bool [H, W], original resolution
  box: tuple[int, int, int, int]


@dataclasses.dataclass
class Abnormality:
  """The marks of one abnormality on one slice, merged per reader."""
  masks: np.ndarray   # bool [4, H, W]: reader k's mask (empty if none)
  box: tuple[int, int, int, int]
  keys: list[tuple]   # the nodules of the marks


def group_marks(marks: list[Mark], shape: tuple[int, int]
                ) -> list[Abnormality]:
  """Connected components of overlapping boxes, ordered by their box."""
  parent = list(range(len(marks)))

  def find(i):
    while parent[i] != i:
      parent[i] = parent[parent[i]]
      i = parent[i]
    return i

  for i in range(len(marks)):
    for j in range(i + 1, len(marks)):
      if boxes_overlap(marks[i].box, marks[j].box):
        parent[find(i)] = find(j)
  groups: dict[int, list[Mark]] = {}
  for i, mark in enumerate(marks):
    groups.setdefault(find(i), []).append(mark)
  out = []
  for members in groups.values():
    masks = np.zeros((NUM_RATERS,) + tuple(shape), bool)
    for m in members:
      masks[m.reader] |= m.mask
    box = (min(m.box[0] for m in members), max(m.box[1] for m in members),
           min(m.box[2] for m in members), max(m.box[3] for m in members))
    out.append(Abnormality(masks, box, [m.key for m in members]))
  out.sort(key=lambda a: (a.box[0], a.box[2], a.box[1], a.box[3]))
  return out


def crop_origin(box: tuple[int, int, int, int],
                spacing: tuple[float, float],
                size: tuple[int, int] = CROP_SIZE) -> tuple[int, int]:
  """(top, left) on the 0.5 mm grid of the crop centred on `box`."""
  def start(lo, hi, s, n):
    centre = (lo + hi) / 2 * s / TARGET_SPACING_MM   # in 0.5 mm pixels
    return int(math.floor(centre - (n - 1) / 2 + 0.5))
  return (start(box[0], box[1], spacing[0], size[0]),
          start(box[2], box[3], spacing[1], size[1]))


def make_crop(hu: np.ndarray, abnormality: Abnormality,
              spacing: tuple[float, float], hu_window: tuple[float, float],
              size: tuple[int, int] = CROP_SIZE
              ) -> tuple[np.ndarray, np.ndarray]:
  """(image uint8 [180, 180], masks uint8 [4, 180, 180] of 0/1)."""
  top, left = crop_origin(abnormality.box, spacing, size)
  image = window_to_uint8(
      crop_linear(hu, spacing, top, left, size, pad=PAD_HU), hu_window)
  masks = np.stack([crop_nearest(m, spacing, top, left, size)
                    for m in abnormality.masks])
  return image, masks


def crop_stem(z_text: str, n: int) -> str:
  return f'z-{z_text}_c{n}'


def crop_paths(split_dir: str, patient: str, stem: str) -> list[str]:
  """The image's path, then the 4 masks' (readers 0..3)."""
  return ([os.path.join(split_dir, 'images', patient, f'{stem}.png')]
          + [os.path.join(split_dir, 'gt', patient, f'{stem}_l{k}.png')
             for k in range(NUM_RATERS)])


def _write_png(path: str, array: np.ndarray) -> None:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = f'{path}.tmp{os.getpid()}'
  Image.fromarray(np.ascontiguousarray(array, np.uint8)).save(tmp,
                                                              format='PNG')
  os.replace(tmp, path)


def write_crop(split_dir: str, patient: str, stem: str, image: np.ndarray,
               masks: np.ndarray) -> None:
  """Writes the image and its 4 masks (0/255) in the crops layout."""
  paths = crop_paths(split_dir, patient, stem)
  _write_png(paths[0], image)
  for path, mask in zip(paths[1:], masks):
    _write_png(path, mask.astype(np.uint8) * 255)
