"""The canvas a figure is drawn on: panels pasted pixel-exactly into a numpy
RGB array, with text and colorbars drawn by matplotlib's object-oriented Agg
canvas on a transparent layer laid over them (pyplot and the global backend
are never touched); also the layout sizes shared by the figures, and where a
file goes."""
import os
import textwrap
from typing import Optional

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.transforms import IdentityTransform

DPI = 100            # text sizes are in points; 9 pt is 12.5 px at this dpi
# Layout, in pixels.
GAP = 6              # between panels of one group
GROUP_GAP = 20       # between groups (image | annotations | samples | maps)
ROW_GAP = 10
TOP = 42             # room for two-line column titles
MARGIN = 8
LABEL_W = 40         # room for a rotated two-line row label
CBAR_GAP, CBAR_W, CBAR_SPACE = 10, 14, 62  # the last: ticks and label
TITLE_FS = 9
LABEL_FS = 10
_FRAME = (0.25, 0.25, 0.25)  # the colour of a panel's 1 px frame


def output_path(path) -> str:
  """`path` as a str, its parent folders created."""
  path = os.fspath(path)
  parent = os.path.dirname(path)
  if parent:
    os.makedirs(parent, exist_ok=True)
  return path


def wrap(text, width: int) -> str:
  """Wraps a label to lines of at most `width` characters (a long word is
  broken) so that a rotated row label fits next to one panel."""
  return '\n'.join(textwrap.wrap(str(text), width)) or str(text)


class Sheet:
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
    cb.set_label(label if 6.5 * len(label) <= h else short_label, fontsize=TITLE_FS)
    cb.ax.tick_params(labelsize=8)

  def render_text(self) -> np.ndarray:
    """The text layer as float32 RGBA [h, w, 4] in [0, 1]."""
    self.canvas.draw()
    return np.asarray(self.canvas.buffer_rgba(), np.float32) / 255.0

  def compose(self, layer: np.ndarray, rgb: Optional[np.ndarray] = None) -> np.ndarray:
    """Lays a text layer over the panels (or over `rgb`). Returns float32 RGB."""
    return over(layer, self.rgb if rgb is None else rgb)


def over(layer: np.ndarray, rgb: np.ndarray) -> np.ndarray:
  """A straight-alpha RGBA layer over an RGB image, both floats in [0, 1]."""
  a = layer[..., 3:]
  return a * layer[..., :3] + (1 - a) * rgb


def to_uint8(rgb: np.ndarray) -> np.ndarray:
  return np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)
