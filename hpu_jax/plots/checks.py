"""Checks of the figures' inputs: images of finite numbers and binary 0/1
masks of the expected shapes, with messages that name the argument."""
from typing import Tuple

import numpy as np


def check_binary(name: str, x: np.ndarray):
  if x.dtype == bool:
    return
  if not np.issubdtype(x.dtype, np.number):
    raise ValueError(f'{name}: expected binary 0/1 masks, got dtype {x.dtype}.')
  if not np.all((x == 0) | (x == 1)):
    bad = np.unique(x[(x != 0) & (x != 1)])[:5]
    raise ValueError(f'{name}: expected binary 0/1 masks, found values such as {bad.tolist()}.')


def check_images(name: str, images, ndim: int, shape_doc: str) -> np.ndarray:
  """Squeezes a trailing channel of 1; checks the number of dims and that the
  values are finite numbers."""
  images = np.asarray(images)
  if images.ndim == ndim + 1 and images.shape[-1] == 1:
    images = images[..., 0]
  if images.ndim != ndim:
    raise ValueError(f'{name} of shape {images.shape}: expected {shape_doc}.')
  if not (np.issubdtype(images.dtype, np.number) or images.dtype == bool):
    raise ValueError(f'{name}: expected a numeric array, got dtype {images.dtype}.')
  images = images.astype(np.float32)
  if not np.all(np.isfinite(images)):
    raise ValueError(f'{name}: contains NaN or infinite values.')
  return images


def check_masks(name: str, masks, shape_doc: str, lead: Tuple[int, ...],
                hw: Tuple[int, int], lead_doc: str) -> np.ndarray:
  """masks must be [*lead, N, H, W] with N >= 1, binary."""
  masks = np.asarray(masks)
  if masks.ndim != len(lead) + 3:
    raise ValueError(f'{name} of shape {masks.shape}: expected {shape_doc}.')
  if masks.shape[:len(lead)] != lead or masks.shape[-2:] != hw:
    raise ValueError(f'{name} of shape {masks.shape}: expected {shape_doc} with '
                     f'{lead_doc} = {lead + hw}.')
  if masks.shape[len(lead)] < 1:
    raise ValueError(f'{name} of shape {masks.shape}: expected at least one mask per example.')
  check_binary(name, masks)
  return masks.astype(bool)
