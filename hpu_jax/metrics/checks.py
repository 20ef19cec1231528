"""Shape checks of the metrics' mask inputs, run on shapes only, outside jit."""
import numpy as np


def check_masks(name, x, ndim=4):
  if np.ndim(x) != ndim:
    raise ValueError(f'{name} of shape {np.shape(x)}: expected {ndim} dims '
                     '[B, N, H, W].')
  if 0 in np.shape(x)[:2]:
    raise ValueError(f'{name} of shape {np.shape(x)}: empty batch or set.')


def check_pair(name_a, a, name_b, b):
  check_masks(name_a, a)
  check_masks(name_b, b)
  sa, sb = np.shape(a), np.shape(b)
  if sa[0] != sb[0] or sa[2:] != sb[2:]:
    raise ValueError(f'{name_a} {sa} and {name_b} {sb}: batch size and '
                     'H, W must agree.')
