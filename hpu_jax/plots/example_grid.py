"""The PNG example grid: one row per example with the image, its annotations,
some model samples, the per-pixel std maps and the mean foreground
probability."""
from typing import Dict, List, Optional, Sequence

import numpy as np
from PIL import Image

from hpu_jax.plots.checks import check_images, check_masks
from hpu_jax.plots.panels import (ANNOTATION_COLOR, PROB_CMAP, SAMPLE_COLOR, STD_CMAP, STD_RANGE,
                                  colorize, mask_overlay, normalize_image, pixel_std, rescale,
                                  scale_factor)
from hpu_jax.plots.sheet import (CBAR_GAP, CBAR_SPACE, CBAR_W, GAP, GROUP_GAP, LABEL_W, MARGIN,
                                 ROW_GAP, TITLE_FS, TOP, Sheet, output_path, to_uint8, wrap)


def save_example_grid(path, images, annotations, samples, titles: Optional[Sequence[str]] = None,
                      sample_probs=None, max_samples: int = 6) -> str:
  """Writes a PNG with one row per example and returns its path (a str).

  Columns: the image; each annotation ("annotation 1..A", blue); the first
  min(S, max_samples) samples ("sample 1..k", orange); the per-pixel std
  across the annotations and across ALL S samples, both on the fixed scale
  [0, 0.5] with a shared colorbar; with sample_probs, the mean foreground
  probability over the S samples on [0, 1] with its own colorbar.

  Args:
    path: the PNG to write (parent folders are created).
    images: [E, H, W] (or [E, H, W, 1]) float, any range; each is min-max
      normalised and shown in grayscale.
    annotations: [E, A, H, W] binary 0/1 masks (bool or numbers).
    samples: [E, S, H, W] binary 0/1 masks.
    titles: E row labels (e.g. example ids), shown left of each row.
    sample_probs: [E, S, H, W] foreground probabilities in [0, 1].
    max_samples: how many samples to show (>= 0); the std uses all S.
  """
  images = check_images('images', images, 3, '[E, H, W]')
  e, h, w = images.shape
  if e < 1:
    raise ValueError(f'images of shape {images.shape}: expected at least one example.')
  annotations = check_masks('annotations', annotations, '[E, A, H, W]', (e,), (h, w),
                            '(E, H, W) of images')
  samples = check_masks('samples', samples, '[E, S, H, W]', (e,), (h, w),
                        '(E, H, W) of images')
  if titles is not None:
    if isinstance(titles, (str, bytes)):
      raise ValueError('titles: expected a sequence of E strings, got a single string.')
    titles = list(titles)
    if len(titles) != e:
      raise ValueError(f'titles has {len(titles)} entries: expected E = {e}, one per example.')
  if sample_probs is not None:
    sample_probs = np.asarray(sample_probs, np.float32)
    if sample_probs.shape != samples.shape:
      raise ValueError(f'sample_probs of shape {sample_probs.shape}: expected [E, S, H, W] = '
                       f'{samples.shape}, the shape of samples.')
    if not np.all(np.isfinite(sample_probs)) or sample_probs.min() < 0 or sample_probs.max() > 1:
      raise ValueError('sample_probs: expected probabilities in [0, 1].')
  if isinstance(max_samples, bool) or not isinstance(max_samples, (int, np.integer)) \
      or max_samples < 0:
    raise ValueError(f'max_samples={max_samples!r}: expected an int >= 0.')

  n_ann, n_samp = annotations.shape[1], samples.shape[1]
  k = min(n_samp, int(max_samples))
  zoom = scale_factor(h, w)
  ph, pw = rescale(images[0], zoom).shape

  # Column x positions, group by group.
  x = MARGIN + (LABEL_W if titles is not None else 0)
  cols: Dict[str, List[int]] = {}

  def place(key, n):
    nonlocal x
    cols[key] = [x + i * (pw + GAP) for i in range(n)]
    if n:
      x = cols[key][-1] + pw + GROUP_GAP

  place('image', 1)
  place('ann', n_ann)
  place('samp', k)
  place('std', 2)
  x_cb_std = x - GROUP_GAP + CBAR_GAP
  x = x_cb_std + CBAR_W + CBAR_SPACE
  if sample_probs is not None:
    cols['prob'] = [x]
    x_cb_prob = x + pw + CBAR_GAP
    x = x_cb_prob + CBAR_W + CBAR_SPACE
  rows_h = e * ph + (e - 1) * ROW_GAP
  sheet = Sheet(x, TOP + rows_h + MARGIN)

  def title(col_x, s):
    sheet.text(col_x + pw / 2, TOP - 5, s, ha='center', va='bottom', fontsize=TITLE_FS,
               linespacing=1.1)

  for r in range(e):
    y = TOP + r * (ph + ROW_GAP)
    first = r == 0
    img = rescale(normalize_image(images[r]), zoom)

    cx = cols['image'][0]
    sheet.paste(cx, y, np.repeat(img[..., None], 3, axis=-1))
    if first:
      title(cx, 'image')
    if titles is not None:
      label = wrap(titles[r], 18)
      longest = max(len(line) for line in label.split('\n'))
      sheet.text(cx - 6, y + ph / 2, label, rotation=90, ha='right', va='center',
                 fontsize=TITLE_FS if longest <= 16 else 8, linespacing=1.1)

    for group, masks, color, name in (('ann', annotations[r], ANNOTATION_COLOR, 'annotation'),
                                      ('samp', samples[r, :k], SAMPLE_COLOR, 'sample')):
      for i, cx in enumerate(cols[group]):
        sheet.paste(cx, y, mask_overlay(img, rescale(masks[i], zoom), color, normalize=False))
        if not masks[i].any():
          sheet.badge(cx, y)
        if first:
          title(cx, f'{name} {i + 1}')

    for cx, masks, label in zip(cols['std'], (annotations[r], samples[r]),
                                (f'std annotations\n(A={n_ann})', f'std samples\n(S={n_samp})')):
      sheet.paste(cx, y, rescale(colorize(pixel_std(masks), STD_CMAP, *STD_RANGE), zoom))
      if first:
        title(cx, label)

    if sample_probs is not None:
      cx = cols['prob'][0]
      sheet.paste(cx, y, rescale(colorize(sample_probs[r].mean(0), PROB_CMAP, 0, 1), zoom))
      if first:
        title(cx, f'mean p(fg)\n(S={n_samp})')

  sheet.colorbar(x_cb_std, TOP, CBAR_W, rows_h, STD_CMAP, *STD_RANGE,
                 'per-pixel std (0 to 0.5)', 'std')
  if sample_probs is not None:
    sheet.colorbar(x_cb_prob, TOP, CBAR_W, rows_h, PROB_CMAP, 0, 1,
                   'mean foreground probability', 'p(fg)')

  out = to_uint8(sheet.compose(sheet.render_text()))
  path = output_path(path)
  Image.fromarray(out).save(path, format='PNG')
  return path
