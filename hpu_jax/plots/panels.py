"""The pixels of one panel, with numpy only: an image normalised to gray, a
mask painted on it (fill and outline), a per-pixel std map, a scalar map
through a colormap, and the whole-factor zoom that brings a panel to about
100-160 px without blurring."""
from typing import Tuple

import numpy as np
from matplotlib import colormaps

ANNOTATION_COLOR = (0.12, 0.56, 1.0)  # blue: radiologists' masks.
SAMPLE_COLOR = (1.0, 0.50, 0.05)      # orange: model samples.
STD_CMAP = 'magma'
STD_RANGE = (0.0, 0.5)
PROB_CMAP = 'viridis'

# Shown side of one panel, in pixels (see scale_factor).
_PANEL_MIN, _PANEL_MAX = 100, 160


def normalize_image(image) -> np.ndarray:
  """Maps an image of any range to [0, 1] by its min and max (a constant image
  becomes 0.5). Returns float32 of the same shape."""
  image = np.asarray(image, np.float32)
  lo, hi = float(image.min()), float(image.max())
  if hi - lo < 1e-12:
    return np.full(image.shape, 0.5, np.float32)
  return (image - lo) / (hi - lo)


def mask_outline(mask, thickness: int = 1) -> np.ndarray:
  """Inner boundary of a binary mask [H, W]: the mask pixels with a
  4-neighbour outside the mask (the image border does not count as outside),
  grown inwards to `thickness` pixels. Returns bool [H, W]."""
  mask = np.asarray(mask).astype(bool)
  inner = mask
  for _ in range(max(1, int(thickness))):
    p = np.pad(inner, 1, mode='edge')
    inner = (p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1]
             & p[1:-1, :-2] & p[1:-1, 2:])
  return mask & ~inner


def mask_overlay(image, mask, color: Tuple[float, float, float] = SAMPLE_COLOR,
                 alpha: float = 0.35, outline: bool = True,
                 normalize: bool = True) -> np.ndarray:
  """The grayscale image [H, W] with a binary mask [H, W] painted on it: the
  mask's pixels blended with `color` (RGB in [0, 1]) at `alpha`, and its
  outline in solid `color` (1 px per 160 px of image side, at least 1). The
  image is min-max normalised first unless normalize=False (then it must be in
  [0, 1]). Returns float32 RGB [H, W, 3] in [0, 1]."""
  image = np.asarray(image)
  mask = np.asarray(mask)
  if image.ndim != 2:
    raise ValueError(f'image of shape {image.shape}: expected [H, W].')
  if mask.shape != image.shape:
    raise ValueError(f'mask of shape {mask.shape}: expected [H, W] = {image.shape}, '
                     'the shape of image.')
  gray = normalize_image(image) if normalize else np.clip(image.astype(np.float32), 0, 1)
  rgb = np.repeat(gray[..., None], 3, axis=-1)
  m = mask.astype(bool)
  col = np.asarray(color, np.float32)
  rgb[m] = (1 - alpha) * rgb[m] + alpha * col
  if outline:
    rgb[mask_outline(m, max(1, min(m.shape) // 160))] = col
  return rgb


def pixel_std(masks, axis: int = 0) -> np.ndarray:
  """Per-pixel standard deviation (ddof=0) of binary masks along `axis`; for
  0/1 masks it lies in [0, 0.5]. Returns float32."""
  return np.asarray(masks, np.float32).std(axis=axis)


def colorize(values, cmap: str, vmin: float, vmax: float) -> np.ndarray:
  """A scalar map [H, W] through a matplotlib colormap on the fixed range
  [vmin, vmax] (values outside are clipped). Returns float32 RGB [H, W, 3]."""
  x = (np.asarray(values, np.float32) - vmin) / (vmax - vmin)
  return colormaps[cmap](np.clip(x, 0, 1))[..., :3].astype(np.float32)


def scale_factor(h: int, w: int) -> int:
  """A whole zoom (> 0) or subsampling stride (< 0) that brings the longer
  side to [_PANEL_MIN, _PANEL_MAX] px where a whole factor allows."""
  side = max(h, w)
  if side < _PANEL_MIN:
    return max(1, _PANEL_MAX // side)
  if side > _PANEL_MAX:
    return -int(np.ceil(side / _PANEL_MAX))
  return 1


def rescale(x: np.ndarray, factor: int) -> np.ndarray:
  """Nearest-neighbour: repeats rows/columns `factor` times (> 0) or keeps
  every |factor|-th (< 0), over the first two axes."""
  if factor > 1:
    return np.repeat(np.repeat(x, factor, axis=0), factor, axis=1)
  if factor < -1:
    return x[::-factor, ::-factor]
  return x
