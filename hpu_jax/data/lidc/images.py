"""Decoding and checking the arrays of an example (every LIDC format).

An example is an image uint8 [H, W] and `NUM_RATERS` masks uint8 [4, H, W]
with values 0/1. Here: PNG decoding (`decode_png`), the size and binary-mask
checks every format shares, counting the raters who marked something, and
`center_crop`. Each check raises `LidcDataError` naming the file.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from hpu_jax.data.lidc.errors import data_error

NUM_RATERS = 4

_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def decode_png(data: bytes, where: str) -> np.ndarray:
  """Decodes an 8-bit grayscale PNG to a uint8 [H, W] array.

  Also accepts 1-bit PNGs (as 0/1) and gray RGB(A) / LA PNGs whose colour
  channels are equal. Raises `LidcDataError` naming `where` otherwise.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top

  expected = 'a complete 8-bit grayscale PNG file'
  if not data.startswith(_PNG_SIGNATURE):
    what = 'an empty file' if not data else 'not a PNG file (no PNG signature)'
    raise data_error(where, what, expected)
  try:
    with Image.open(io.BytesIO(data), formats=['PNG']) as img:
      img.load()
      mode = img.mode
      arr = np.asarray(img)
  except Exception as exc:  # PIL raises many types for broken files.
    raise data_error(
        where, f'unreadable or truncated PNG ({type(exc).__name__}: {exc})',
        expected) from exc
  if mode == 'L':
    return np.ascontiguousarray(arr, dtype=np.uint8)
  if mode == '1':
    return arr.astype(np.uint8)
  if mode in ('LA', 'RGB', 'RGBA') and arr.ndim == 3:
    colour = arr[..., :1] if mode == 'LA' else arr[..., :3]
    if (colour == colour[..., :1]).all():
      return np.ascontiguousarray(colour[..., 0], dtype=np.uint8)
    raise data_error(where, f'a colour PNG (mode {mode})', expected)
  raise data_error(where, f'a PNG of mode {mode!r} (dtype {arr.dtype})',
                   expected)


def size_text(shape: Sequence[int]) -> str:
  return ' x '.join(str(int(s)) for s in shape)


def check_size(arr: np.ndarray, size: tuple[int, int], where: str,
               what: str, expected: str) -> None:
  if tuple(arr.shape) != tuple(size):
    raise data_error(where, f'{what} is {size_text(arr.shape)}', expected)


_BINARY_VALUES = np.zeros(256, bool)
_BINARY_VALUES[[0, 1, 255]] = True


def binarize_mask(mask: np.ndarray, where: str) -> np.ndarray:
  """uint8 mask with values in {0, 1, 255} -> uint8 0/1 (255 -> 1)."""
  counts = np.bincount(mask.reshape(-1), minlength=256)
  bad = np.flatnonzero((counts > 0) & ~_BINARY_VALUES)
  if bad.size:
    shown = ', '.join(str(v) for v in bad[:8]) + (', ...' if bad.size > 8 else '')
    raise data_error(where, f'mask has values {shown}',
                     'a binary mask with values 0 and 255 (or 0 and 1) only')
  return (mask != 0).astype(np.uint8)


def count_raters_marking(masks: np.ndarray) -> int:
  """Number of the masks ([4, H, W]) with at least one pixel marked."""
  return int(np.count_nonzero(masks.reshape(masks.shape[0], -1).any(axis=1)))


def center_crop(array: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
  """Centre crop of the last two axes to `size` (int or (h, w))."""
  h, w = (size, size) if isinstance(size, int) else size
  H, W = array.shape[-2:]
  if h > H or w > W:
    raise ValueError(f'cannot centre-crop {H} x {W} to {h} x {w}')
  top, left = (H - h) // 2, (W - w) // 2
  return array[..., top:top + h, left:left + w]
