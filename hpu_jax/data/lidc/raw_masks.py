"""A reader's mask of a nodule on one slice, from the XML's outlines.

The fill convention: LIDC's edgeMap points are the boundary pixels of the
region, and they belong to it. `fill_polygon` marks every pixel whose centre
lies inside the closed polygon through the points (even-odd rule, so a
self-crossing outline is read as drawn) or on it: the interior plus every
pixel on the polygon's edges. For a simple polygon this is I + B pixels
(Pick's theorem: interior and boundary lattice points), which
`boundary_included_area` computes from the shoelace area A and the B
boundary points as A + B / 2 + 1.

`reader_mask` combines one nodule's rois on one slice: the union of its
inclusion regions (inclusion=TRUE) minus the union of its exclusions
(inclusion=FALSE), each filled by the same convention, so an exclusion's
outline pixels belong to the hole it cuts. Points outside the image raise
`LidcDataError` naming the XML.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from hpu_jax.data.lidc.errors import data_error
from hpu_jax.data.lidc.raw_xml import Roi


def boundary_points(points: np.ndarray) -> np.ndarray:
  """The lattice points on the closed polygon's edges, int [M, 2] (x, y)."""
  pts = np.asarray(points, np.int64).reshape(-1, 2)
  out = [pts]
  for (x0, y0), (x1, y1) in zip(pts, np.roll(pts, -1, axis=0)):
    g = math.gcd(int(abs(x1 - x0)), int(abs(y1 - y0)))
    if g > 1:
      k = np.arange(1, g)[:, None]
      step = np.array([(x1 - x0) // g, (y1 - y0) // g])
      out.append(np.array([x0, y0]) + k * step)
  return np.concatenate(out, axis=0)


def shoelace_area(points: np.ndarray) -> float:
  """|area| of the closed polygon through `points` (pixel units)."""
  pts = np.asarray(points, np.float64).reshape(-1, 2)
  x, y = pts[:, 0], pts[:, 1]
  return abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))) / 2


def boundary_included_area(points: np.ndarray) -> float:
  """Pixels of a simple polygon's fill with its boundary included: A + B/2 + 1
  (Pick's theorem), where B counts the lattice points on its edges."""
  pts = np.asarray(points, np.int64).reshape(-1, 2)
  b = sum(math.gcd(int(abs(x1 - x0)), int(abs(y1 - y0)))
          for (x0, y0), (x1, y1) in zip(pts, np.roll(pts, -1, axis=0)))
  return shoelace_area(pts) + b / 2 + 1


def fill_polygon(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
  """bool [H, W]: pixels inside the polygon (even-odd) or on its edges.

  `points` int [K, 2] as (x, y) = (column, row), all inside `shape`.
  """
  pts = np.asarray(points, np.int64).reshape(-1, 2)
  mask = np.zeros(shape, bool)
  xs, ys = pts[:, 0], pts[:, 1]
  x0, y0 = xs.astype(np.float64), ys.astype(np.float64)
  x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
  rows = np.arange(ys.min(), ys.max() + 1)
  cols = np.arange(xs.min(), xs.max() + 1)
  # Crossings of each edge with each row's line (half-open in y, so a vertex
  # is counted once); a pixel centre is inside when an odd number of
  # crossings lie to its right.
  r = rows[:, None].astype(np.float64)
  active = (r >= np.minimum(y0, y1)) & (r < np.maximum(y0, y1))   # [R, E]
  dy = np.where(y1 != y0, y1 - y0, 1.0)
  xc = x0 + (r - y0) / dy * (x1 - x0)                              # [R, E]
  right = active[:, :, None] & (xc[:, :, None] > cols[None, None, :])
  inside = (right.sum(axis=1) % 2) == 1                            # [R, C]
  mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] = inside
  edge = boundary_points(pts)
  mask[edge[:, 1], edge[:, 0]] = True
  return mask


def _check_inside(roi: Roi, shape: tuple[int, int], where: str) -> None:
  x, y = roi.points[:, 0], roi.points[:, 1]
  bad = (x < 0) | (x >= shape[1]) | (y < 0) | (y >= shape[0])
  if bad.any():
    i = int(np.flatnonzero(bad)[0])
    raise data_error(
        where, f'edgeMap point (x={int(x[i])}, y={int(y[i])}) on slice '
        f'{roi.sop_uid} outside its {shape[0]} x {shape[1]} pixels',
        'points inside the image (pixel indices)')


def reader_mask(rois: Sequence[Roi], shape: tuple[int, int], where: str
                ) -> np.ndarray:
  """One nodule's mask on one slice: inclusions minus exclusions. bool."""
  mask = np.zeros(shape, bool)
  for roi in rois:
    if roi.inclusion:
      _check_inside(roi, shape, where)
      mask |= fill_polygon(roi.points, shape)
  for roi in rois:
    if not roi.inclusion:
      _check_inside(roi, shape, where)
      mask &= ~fill_polygon(roi.points, shape)
  return mask
