"""The PNG of one image's samples (scripts/sample.py): the image, the per-pixel
standard deviation across the samples and their mean foreground probability
(each with its colour bar) in the top row, and a grid of the samples below."""
from typing import Optional

import numpy as np
from PIL import Image

from hpu_jax.plots.checks import check_images, check_masks
from hpu_jax.plots.panels import (PROB_CMAP, SAMPLE_COLOR, STD_CMAP, STD_RANGE, colorize,
                                  mask_overlay, normalize_image, pixel_std, rescale,
                                  scale_factor)
from hpu_jax.plots.sheet import (CBAR_GAP, CBAR_SPACE, CBAR_W, GAP, GROUP_GAP, MARGIN, ROW_GAP,
                                 TITLE_FS, TOP, Sheet, output_path, to_uint8)

GRID_COLUMNS = 8   # Samples per row of the grid.


def render_sample_sheet(image, samples, sample_probs, title: Optional[str] = None,
                        max_samples: int = 16) -> np.ndarray:
  """The figure as uint8 RGB [height, width, 3].

  Args:
    image: [H, W] (or [H, W, 1]) float, any range; min-max normalised, grey.
    samples: [S, H, W] binary 0/1 masks (drawn in orange on the image).
    sample_probs: [S, H, W] foreground probabilities in [0, 1].
    title: lines above the figure (e.g. the file name and the settings).
    max_samples: how many samples the grid shows (>= 1); std and mean use all S.
  """
  image = check_images('image', image, 2, '[H, W]')
  h, w = image.shape
  samples = check_masks('samples', samples, '[S, H, W]', (), (h, w), '(H, W) of image')
  probs = np.asarray(sample_probs, np.float32)
  if probs.shape != samples.shape:
    raise ValueError(f'sample_probs of shape {probs.shape}: expected [S, H, W] = '
                     f'{samples.shape}, the shape of samples.')
  if not np.all(np.isfinite(probs)) or probs.min() < 0 or probs.max() > 1:
    raise ValueError('sample_probs: expected probabilities in [0, 1].')
  if isinstance(max_samples, bool) or not isinstance(max_samples, (int, np.integer)) \
      or max_samples < 1:
    raise ValueError(f'max_samples={max_samples!r}: expected an int >= 1.')

  n = samples.shape[0]
  k = min(n, int(max_samples))
  zoom = scale_factor(h, w)
  img = rescale(normalize_image(image), zoom)
  ph, pw = img.shape
  top = TOP + (18 * len(title.split('\n')) if title else 0)

  # Top row: image | std + colour bar | mean p(fg) + colour bar.
  x_image = MARGIN
  x_std = x_image + pw + GROUP_GAP
  x_cb_std = x_std + pw + CBAR_GAP
  x_prob = x_cb_std + CBAR_W + CBAR_SPACE
  x_cb_prob = x_prob + pw + CBAR_GAP
  top_width = x_cb_prob + CBAR_W + CBAR_SPACE
  # The grid of samples below.
  cols = min(k, GRID_COLUMNS)
  rows = -(-k // cols)
  y_grid = top + ph + ROW_GAP + TOP
  grid_width = MARGIN + cols * pw + (cols - 1) * GAP + MARGIN
  sheet = Sheet(max(top_width, grid_width), y_grid + rows * ph + (rows - 1) * GAP + MARGIN)

  def caption(x, y, s):
    sheet.text(x + pw / 2, y - 5, s, ha='center', va='bottom', fontsize=TITLE_FS,
               linespacing=1.1)

  if title:
    sheet.text(MARGIN, 6, title, ha='left', va='top', fontsize=TITLE_FS + 1)
  sheet.paste(x_image, top, np.repeat(img[..., None], 3, axis=-1))
  caption(x_image, top, 'image\n(as the model saw it)')
  sheet.paste(x_std, top, rescale(colorize(pixel_std(samples), STD_CMAP, *STD_RANGE), zoom))
  caption(x_std, top, f'std samples\n(S={n})')
  sheet.colorbar(x_cb_std, top, CBAR_W, ph, STD_CMAP, *STD_RANGE,
                 'per-pixel std (0 to 0.5)', 'std')
  sheet.paste(x_prob, top, rescale(colorize(probs.mean(0), PROB_CMAP, 0, 1), zoom))
  caption(x_prob, top, f'mean p(fg)\n(S={n})')
  sheet.colorbar(x_cb_prob, top, CBAR_W, ph, PROB_CMAP, 0, 1,
                 'mean foreground probability', 'p(fg)')
  for i in range(k):
    r, c = divmod(i, cols)
    x, y = MARGIN + c * (pw + GAP), y_grid + r * (ph + GAP)
    sheet.paste(x, y, mask_overlay(img, rescale(samples[i], zoom), SAMPLE_COLOR,
                                   normalize=False))
    if not samples[i].any():
      sheet.badge(x, y)
    if r == 0:
      caption(x, y, f'sample {i + 1}' + (f'\n(of {n})' if i == 0 and k < n else ''))
  return to_uint8(sheet.compose(sheet.render_text()))


def save_sample_sheet(path, image, samples, sample_probs, title: Optional[str] = None,
                      max_samples: int = 16) -> str:
  """Writes `render_sample_sheet(...)` as a PNG and returns its path (a str)."""
  out = render_sample_sheet(image, samples, sample_probs, title, max_samples)
  path = output_path(path)
  Image.fromarray(out).save(path, format='PNG')
  return path
