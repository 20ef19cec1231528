"""Figures for looking at segmentation samples: a PNG grid and a sampling GIF.

    from hpu_jax import plots
    plots.save_example_grid('grid.png', images, annotations, samples,
                            titles=ids, sample_probs=probs)
    plots.save_sampling_gif('sampling.gif', image,
                            {'full': s_full, 'local': s_local, 'global': s_global},
                            annotations=annotations)

Shapes (numpy or jax arrays): images [E, H, W] (any range, shown grayscale;
[E, H, W, 1] is accepted too), annotations [E, A, H, W] and samples
[E, S, H, W] binary 0/1 masks, sample_probs [E, S, H, W] foreground
probabilities. The sampler's `labels` are [S, B, H, W]: pass
`np.swapaxes(labels, 0, 1)` as samples (and `np.swapaxes(probs[..., 1], 0, 1)`
as sample_probs).

Masks are drawn on the image: a translucent fill plus a solid outline, blue
for annotations (radiologists) and orange for model samples; an empty mask is
marked "empty". Standard-deviation maps share one fixed colour scale [0, 0.5]
(0.5 is the largest possible std of a 0/1 variable) so rows and columns can be
compared.

How it is drawn: panels are composed pixel-exactly with numpy (an image is
enlarged by a whole factor to about 100-160 px, or subsampled by a whole
stride if larger, so no pixel is blurred or duplicated unevenly); the text and
colorbars are drawn by matplotlib's object-oriented Agg canvas on a
transparent layer laid over them (pyplot and the global backend are never
touched); Pillow writes the files. Nothing else from hpu_jax is imported.
"""
import os
import textwrap
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.transforms import IdentityTransform
from PIL import Image

ANNOTATION_COLOR = (0.12, 0.56, 1.0)  # blue: radiologists' masks.
SAMPLE_COLOR = (1.0, 0.50, 0.05)      # orange: model samples.
STD_CMAP = 'magma'
STD_RANGE = (0.0, 0.5)
PROB_CMAP = 'viridis'
MODE_LABELS = {'full': 'full sampling', 'local': 'local only', 'global': 'global only'}

DPI = 100             # text sizes are in points; 9 pt is 12.5 px at this dpi
# Layout, in pixels.
_PANEL_MIN, _PANEL_MAX = 100, 160  # shown side of one panel (see _scale_factor)
_GAP = 6              # between panels of one group
_GROUP_GAP = 20       # between groups (image | annotations | samples | maps)
_ROW_GAP = 10
_TOP = 42             # room for two-line column titles
_MARGIN = 8
_LABEL_W = 40         # room for a rotated two-line row label
_CBAR_GAP, _CBAR_W, _CBAR_SPACE = 10, 14, 62  # the last: ticks and label
_FRAME = (0.25, 0.25, 0.25)
_TITLE_FS = 9
_LABEL_FS = 10


# ----------------------------------------------------------------- helpers --


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


def _scale_factor(h: int, w: int) -> int:
  """A whole zoom (> 0) or subsampling stride (< 0) that brings the longer
  side to [_PANEL_MIN, _PANEL_MAX] px where a whole factor allows."""
  side = max(h, w)
  if side < _PANEL_MIN:
    return max(1, _PANEL_MAX // side)
  if side > _PANEL_MAX:
    return -int(np.ceil(side / _PANEL_MAX))
  return 1


def _rescale(x: np.ndarray, factor: int) -> np.ndarray:
  """Nearest-neighbour: repeats rows/columns `factor` times (> 0) or keeps
  every |factor|-th (< 0), over the first two axes."""
  if factor > 1:
    return np.repeat(np.repeat(x, factor, axis=0), factor, axis=1)
  if factor < -1:
    return x[::-factor, ::-factor]
  return x


def _to_path(path) -> str:
  path = os.fspath(path)
  parent = os.path.dirname(path)
  if parent:
    os.makedirs(parent, exist_ok=True)
  return path


def _check_binary(name: str, x: np.ndarray):
  if x.dtype == bool:
    return
  if not np.issubdtype(x.dtype, np.number):
    raise ValueError(f'{name}: expected binary 0/1 masks, got dtype {x.dtype}.')
  if not np.all((x == 0) | (x == 1)):
    bad = np.unique(x[(x != 0) & (x != 1)])[:5]
    raise ValueError(f'{name}: expected binary 0/1 masks, found values such as {bad.tolist()}.')


def _check_images(name: str, images, ndim: int, shape_doc: str) -> np.ndarray:
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


def _check_masks(name: str, masks, shape_doc: str, lead: Tuple[int, ...],
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
  _check_binary(name, masks)
  return masks.astype(bool)


def _wrap(text, width: int) -> str:
  """Wraps a label to lines of at most `width` characters (a long word is
  broken) so that a rotated row label fits next to one panel."""
  return '\n'.join(textwrap.wrap(str(text), width)) or str(text)


class _Sheet:
  """A white RGB canvas of panels (numpy) with a transparent text layer
  (matplotlib Agg) composited on top. Coordinates: pixels from the top left."""

  def __init__(self, width: int, height: int):
    self.w, self.h = int(width), int(height)
    self.rgb = np.ones((self.h, self.w, 3), np.float32)
    self.fig = Figure(figsize=(self.w / DPI, self.h / DPI), dpi=DPI)
    self.fig.patch.set_alpha(0)
    self.canvas = FigureCanvasAgg(self.fig)

  def paste(self, x: int, y: int, panel: np.ndarray, frame: bool = True):
    ph, pw = panel.shape[:2]
    if frame:
      self.rgb[y - 1:y + ph + 1, x - 1:x + pw + 1] = _FRAME
    self.rgb[y:y + ph, x:x + pw] = panel

  def text(self, x: float, y: float, s: str, **kw):
    return self.fig.text(x, self.h - y, s, transform=IdentityTransform(), **kw)

  def badge(self, x: float, y: float, s: str = 'empty', **kw):
    return self.text(x + 4, y + 4, s, ha='left', va='top', fontsize=7, color='white',
                     bbox=dict(boxstyle='round,pad=0.2', fc='black', ec='none', alpha=0.6),
                     **kw)

  def colorbar(self, x: int, y: int, w: int, h: int, cmap: str, vmin: float, vmax: float,
               label: str, short_label: str):
    """A vertical colorbar; short rows get `short_label` and fewer ticks."""
    cax = self.fig.add_axes((x / self.w, 1 - (y + h) / self.h, w / self.w, h / self.h))
    cb = self.fig.colorbar(ScalarMappable(Normalize(vmin, vmax), cmap), cax=cax,
                           ticks=np.linspace(vmin, vmax, 6 if h >= 120 else 3))
    # About 6.5 px a character at 9 pt.
    cb.set_label(label if 6.5 * len(label) <= h else short_label, fontsize=_TITLE_FS)
    cb.ax.tick_params(labelsize=8)

  def render_text(self) -> np.ndarray:
    """The text layer as float32 RGBA [h, w, 4] in [0, 1]."""
    self.canvas.draw()
    return np.asarray(self.canvas.buffer_rgba(), np.float32) / 255.0

  def compose(self, layer: np.ndarray, rgb: Optional[np.ndarray] = None) -> np.ndarray:
    """Lays a text layer over the panels (or over `rgb`). Returns float32 RGB."""
    return _over(layer, self.rgb if rgb is None else rgb)


def _over(layer: np.ndarray, rgb: np.ndarray) -> np.ndarray:
  """A straight-alpha RGBA layer over an RGB image, both floats in [0, 1]."""
  a = layer[..., 3:]
  return a * layer[..., :3] + (1 - a) * rgb


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
  return np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)


# -------------------------------------------------------------- PNG grid --


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
  images = _check_images('images', images, 3, '[E, H, W]')
  e, h, w = images.shape
  if e < 1:
    raise ValueError(f'images of shape {images.shape}: expected at least one example.')
  annotations = _check_masks('annotations', annotations, '[E, A, H, W]', (e,), (h, w),
                             '(E, H, W) of images')
  samples = _check_masks('samples', samples, '[E, S, H, W]', (e,), (h, w),
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
  zoom = _scale_factor(h, w)
  ph, pw = _rescale(images[0], zoom).shape

  # Column x positions, group by group.
  x = _MARGIN + (_LABEL_W if titles is not None else 0)
  cols: Dict[str, List[int]] = {}

  def place(key, n):
    nonlocal x
    cols[key] = [x + i * (pw + _GAP) for i in range(n)]
    if n:
      x = cols[key][-1] + pw + _GROUP_GAP

  place('image', 1)
  place('ann', n_ann)
  place('samp', k)
  place('std', 2)
  x_cb_std = x - _GROUP_GAP + _CBAR_GAP
  x = x_cb_std + _CBAR_W + _CBAR_SPACE
  if sample_probs is not None:
    cols['prob'] = [x]
    x_cb_prob = x + pw + _CBAR_GAP
    x = x_cb_prob + _CBAR_W + _CBAR_SPACE
  rows_h = e * ph + (e - 1) * _ROW_GAP
  sheet = _Sheet(x, _TOP + rows_h + _MARGIN)

  def title(col_x, s):
    sheet.text(col_x + pw / 2, _TOP - 5, s, ha='center', va='bottom', fontsize=_TITLE_FS,
               linespacing=1.1)

  for r in range(e):
    y = _TOP + r * (ph + _ROW_GAP)
    first = r == 0
    img = _rescale(normalize_image(images[r]), zoom)

    cx = cols['image'][0]
    sheet.paste(cx, y, np.repeat(img[..., None], 3, axis=-1))
    if first:
      title(cx, 'image')
    if titles is not None:
      label = _wrap(titles[r], 18)
      longest = max(len(line) for line in label.split('\n'))
      sheet.text(cx - 6, y + ph / 2, label, rotation=90, ha='right', va='center',
                 fontsize=_TITLE_FS if longest <= 16 else 8, linespacing=1.1)

    for group, masks, color, name in (('ann', annotations[r], ANNOTATION_COLOR, 'annotation'),
                                      ('samp', samples[r, :k], SAMPLE_COLOR, 'sample')):
      for i, cx in enumerate(cols[group]):
        sheet.paste(cx, y, mask_overlay(img, _rescale(masks[i], zoom), color, normalize=False))
        if not masks[i].any():
          sheet.badge(cx, y)
        if first:
          title(cx, f'{name} {i + 1}')

    for cx, masks, label in zip(cols['std'], (annotations[r], samples[r]),
                                (f'std annotations\n(A={n_ann})', f'std samples\n(S={n_samp})')):
      sheet.paste(cx, y, _rescale(colorize(pixel_std(masks), STD_CMAP, *STD_RANGE), zoom))
      if first:
        title(cx, label)

    if sample_probs is not None:
      cx = cols['prob'][0]
      sheet.paste(cx, y, _rescale(colorize(sample_probs[r].mean(0), PROB_CMAP, 0, 1), zoom))
      if first:
        title(cx, f'mean p(fg)\n(S={n_samp})')

  sheet.colorbar(x_cb_std, _TOP, _CBAR_W, rows_h, STD_CMAP, *STD_RANGE,
                 'per-pixel std (0 to 0.5)', 'std')
  if sample_probs is not None:
    sheet.colorbar(x_cb_prob, _TOP, _CBAR_W, rows_h, PROB_CMAP, 0, 1,
                   'mean foreground probability', 'p(fg)')

  out = _to_uint8(sheet.compose(sheet.render_text()))
  path = _to_path(path)
  Image.fromarray(out).save(path, format='PNG')
  return path


# ------------------------------------------------------------ sampling GIF --


def save_sampling_gif(path, image, samples_by_mode: Mapping[str, np.ndarray],
                      annotations=None, fps: float = 2) -> str:
  """Writes an animated GIF (looping forever) of samples and returns its path.

  Layout of each frame: a top row with the image and, if given, the
  annotations (blue); then one row per mode, labelled on the left ('full' ->
  'full sampling', 'local' -> 'local only', 'global' -> 'global only', other
  names as given), with that frame's S samples side by side (orange). Frame f
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
  image = _check_images('image', image, 2, '[H, W]')
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
    _check_binary(label, s)
    modes[name] = s.astype(bool)
  if annotations is not None:
    annotations = _check_masks('annotations', annotations, '[A, H, W]', (), (h, w),
                               '(H, W) of image')
  if isinstance(fps, bool) or not isinstance(fps, (int, float, np.number)) \
      or not np.isfinite(fps) or fps <= 0:
    raise ValueError(f'fps={fps!r}: expected a number > 0.')

  zoom = _scale_factor(h, w)
  img = _rescale(normalize_image(image), zoom)
  ph, pw = img.shape
  n_ann = 0 if annotations is None else annotations.shape[0]
  n_cols = max(1 + n_ann, max(s.shape[1] for s in modes.values()))
  left = _MARGIN + _LABEL_W
  col_x = [left + c * (pw + _GAP) for c in range(n_cols)]
  # Sample titles sit above the first mode row only; the 'draw f / F'
  # counter gets its own strip above the top titles.
  top = _TOP + 12
  row_y = [top] + [top + ph + 30 + (r - 1) * (ph + _ROW_GAP) for r in range(1, 1 + len(modes))]
  sheet = _Sheet(col_x[-1] + pw + _MARGIN, row_y[-1] + ph + _MARGIN)

  def title(cx, y, s):
    sheet.text(cx + pw / 2, y - 5, s, ha='center', va='bottom', fontsize=_TITLE_FS)

  sheet.paste(col_x[0], row_y[0], np.repeat(img[..., None], 3, axis=-1))
  title(col_x[0], row_y[0], 'image')
  for i in range(n_ann):
    sheet.paste(col_x[1 + i], row_y[0],
                mask_overlay(img, _rescale(annotations[i], zoom), ANNOTATION_COLOR,
                             normalize=False))
    if not annotations[i].any():
      sheet.badge(col_x[1 + i], row_y[0])
    title(col_x[1 + i], row_y[0], f'annotation {i + 1}')
  for r, name in enumerate(modes, start=1):
    sheet.text(col_x[0] - 6, row_y[r] + ph / 2, _wrap(MODE_LABELS.get(name, name), 18),
               rotation=90, ha='right', va='center', fontsize=_LABEL_FS, fontweight='bold',
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
  counter_box = (slice(0, top - _TOP + 4), slice(0, sheet.w))

  frames = []
  for f in range(n_frames):
    rgb = sheet.rgb.copy()
    empty = []
    for r, s in enumerate(modes.values(), start=1):
      for j in range(s.shape[1]):
        rgb[row_y[r]:row_y[r] + ph, col_x[j]:col_x[j] + pw] = mask_overlay(
            img, _rescale(s[f, j], zoom), SAMPLE_COLOR, normalize=False)
        empty.append(not s[f, j].any())
    rgb = _over(static, rgb)
    for box, is_empty in zip(badge_boxes, empty):
      if is_empty:
        rgb[box] = _over(badges[box], rgb[box])
    sheet.fig.clear()
    sheet.text(sheet.w - _MARGIN, 4, f'draw {f + 1} / {n_frames}', ha='right', va='top',
               fontsize=_TITLE_FS)
    rgb[counter_box] = _over(sheet.render_text()[counter_box], rgb[counter_box])
    frames.append(_to_uint8(rgb))

  # One palette for all frames: colours stay put from frame to frame.
  stride = max(1, len(frames) // 4)
  palette = Image.fromarray(np.concatenate(frames[::stride], axis=0)).quantize(
      256, method=Image.Quantize.MEDIANCUT)
  pil = [Image.fromarray(fr).quantize(palette=palette, dither=Image.Dither.NONE) for fr in frames]
  path = _to_path(path)
  pil[0].save(path, format='GIF', save_all=True, append_images=pil[1:],
              duration=max(20, int(round(1000 / fps))), loop=0, disposal=1)
  return path
