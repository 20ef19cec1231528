"""The sampling GIF: the image and its annotations above one row of samples
per sampling mode ('full', 'local', 'global' or any), a new draw per frame."""
from typing import Mapping

import numpy as np
from PIL import Image

from hpu_jax.plots.checks import check_binary, check_images, check_masks
from hpu_jax.plots.panels import (ANNOTATION_COLOR, SAMPLE_COLOR, mask_overlay, normalize_image,
                                  rescale, scale_factor)
from hpu_jax.plots.sheet import (GAP, LABEL_FS, LABEL_W, MARGIN, ROW_GAP, TITLE_FS, TOP, Sheet,
                                 output_path, over, to_uint8, wrap)
from hpu_jax.sampling import MODE_LABELS


def save_sampling_gif(path, image, samples_by_mode: Mapping[str, np.ndarray],
                      annotations=None, fps: float = 2) -> str:
  """Writes an animated GIF (looping forever) of samples and returns its path.

  Layout of each frame: a top row with the image and, if given, the
  annotations (blue); then one row per mode, labelled on the left by
  `hpu_jax.sampling.MODE_LABELS` ('full' -> 'full sampling', ...; other names
  as given), with that frame's S samples side by side (orange). Frame f
  shows samples_by_mode[m][f] for every mode; a "draw f / F" counter sits at
  the top right (it also keeps identical frames from being merged).

  Args:
    path: the GIF to write (parent folders are created).
    image: [H, W] (or [H, W, 1]) float, any range; min-max normalised.
    samples_by_mode: non-empty dict mode name -> [F, S, H, W] binary 0/1
      masks; every mode has the same F (S may differ).
    annotations: optional [A, H, W] binary 0/1 masks.
    fps: frames per second (> 0).
  """
  image = check_images('image', image, 2, '[H, W]')
  h, w = image.shape
  if not isinstance(samples_by_mode, Mapping):
    raise TypeError(f'samples_by_mode: expected a dict mode name -> [F, S, H, W] masks, got '
                    f'{type(samples_by_mode).__name__}.')
  if not samples_by_mode:
    raise ValueError('samples_by_mode is empty: expected at least one mode, '
                     "e.g. {'full': [F, S, H, W] masks}.")
  modes = {}
  n_frames = None
  for name, s in samples_by_mode.items():
    s = np.asarray(s)
    label = f'samples_by_mode[{name!r}]'
    if s.ndim != 4 or s.shape[-2:] != (h, w):
      raise ValueError(f'{label} of shape {s.shape}: expected [F, S, H, W] with '
                       f'(H, W) = {(h, w)}, the shape of image.')
    if s.shape[0] < 1 or s.shape[1] < 1:
      raise ValueError(f'{label} of shape {s.shape}: expected at least one frame and one sample.')
    if n_frames is None:
      n_frames = s.shape[0]
    elif s.shape[0] != n_frames:
      raise ValueError(f'{label} has {s.shape[0]} frames: expected F = {n_frames} like the '
                       'first mode; every mode needs the same number of frames.')
    check_binary(label, s)
    modes[name] = s.astype(bool)
  if annotations is not None:
    annotations = check_masks('annotations', annotations, '[A, H, W]', (), (h, w),
                              '(H, W) of image')
  if isinstance(fps, bool) or not isinstance(fps, (int, float, np.number)) \
      or not np.isfinite(fps) or fps <= 0:
    raise ValueError(f'fps={fps!r}: expected a number > 0.')

  zoom = scale_factor(h, w)
  img = rescale(normalize_image(image), zoom)
  ph, pw = img.shape
  n_ann = 0 if annotations is None else annotations.shape[0]
  n_cols = max(1 + n_ann, max(s.shape[1] for s in modes.values()))
  left = MARGIN + LABEL_W
  col_x = [left + c * (pw + GAP) for c in range(n_cols)]
  # Sample titles sit above the first mode row only; the 'draw f / F'
  # counter gets its own strip above the top titles.
  top = TOP + 12
  row_y = [top] + [top + ph + 30 + (r - 1) * (ph + ROW_GAP) for r in range(1, 1 + len(modes))]
  sheet = Sheet(col_x[-1] + pw + MARGIN, row_y[-1] + ph + MARGIN)

  def title(cx, y, s):
    sheet.text(cx + pw / 2, y - 5, s, ha='center', va='bottom', fontsize=TITLE_FS)

  sheet.paste(col_x[0], row_y[0], np.repeat(img[..., None], 3, axis=-1))
  title(col_x[0], row_y[0], 'image')
  for i in range(n_ann):
    sheet.paste(col_x[1 + i], row_y[0],
                mask_overlay(img, rescale(annotations[i], zoom), ANNOTATION_COLOR,
                             normalize=False))
    if not annotations[i].any():
      sheet.badge(col_x[1 + i], row_y[0])
    title(col_x[1 + i], row_y[0], f'annotation {i + 1}')
  for r, name in enumerate(modes, start=1):
    sheet.text(col_x[0] - 6, row_y[r] + ph / 2, wrap(MODE_LABELS.get(name, name), 18),
               rotation=90, ha='right', va='center', fontsize=LABEL_FS, fontweight='bold',
               linespacing=1.1)
    if r == 1:
      for j in range(modes[name].shape[1]):
        title(col_x[j], row_y[1], f'sample {j + 1}')
  static = sheet.render_text()

  # Pieces drawn only on some frames: an 'empty' badge per sample panel and
  # the frame counter. Each is rendered once and cut out of its layer.
  sheet.fig.clear()
  badge_boxes = []
  for r, s in enumerate(modes.values(), start=1):
    for j in range(s.shape[1]):
      sheet.badge(col_x[j], row_y[r])
      badge_boxes.append((slice(row_y[r], row_y[r] + ph // 3), slice(col_x[j], col_x[j] + pw)))
  badges = sheet.render_text()
  counter_box = (slice(0, top - TOP + 4), slice(0, sheet.w))

  frames = []
  for f in range(n_frames):
    rgb = sheet.rgb.copy()
    empty = []
    for r, s in enumerate(modes.values(), start=1):
      for j in range(s.shape[1]):
        rgb[row_y[r]:row_y[r] + ph, col_x[j]:col_x[j] + pw] = mask_overlay(
            img, rescale(s[f, j], zoom), SAMPLE_COLOR, normalize=False)
        empty.append(not s[f, j].any())
    rgb = over(static, rgb)
    for box, is_empty in zip(badge_boxes, empty):
      if is_empty:
        rgb[box] = over(badges[box], rgb[box])
    sheet.fig.clear()
    sheet.text(sheet.w - MARGIN, 4, f'draw {f + 1} / {n_frames}', ha='right', va='top',
               fontsize=TITLE_FS)
    rgb[counter_box] = over(sheet.render_text()[counter_box], rgb[counter_box])
    frames.append(to_uint8(rgb))

  # One palette for all frames: colours stay put from frame to frame.
  stride = max(1, len(frames) // 4)
  palette = Image.fromarray(np.concatenate(frames[::stride], axis=0)).quantize(
      256, method=Image.Quantize.MEDIANCUT)
  pil = [Image.fromarray(fr).quantize(palette=palette, dither=Image.Dither.NONE) for fr in frames]
  path = output_path(path)
  pil[0].save(path, format='GIF', save_all=True, append_images=pil[1:],
              duration=max(20, int(round(1000 / fps))), loop=0, disposal=1)
  return path
