"""Reading one grayscale image file into an array, with errors that name the file.

Read: PNG, grayscale (colour type 0) of 1, 2, 4, 8 or 16 bits per pixel, and
`.npy` arrays of 2 dimensions (read without pickle). The intensity range is
the file's own: an 8-bit PNG is scaled by 255, a 16-bit PNG by 65535, an
integer `.npy` by the largest value of its dtype (uint8: 255, uint16: 65535,
int16: 32767, ...), a bool `.npy` is 0 / 1 and a float `.npy` must already
lie in [0, 1]. So a 16-bit image is NOT stretched to its own minimum and
maximum: a CT slice stored with 12 bits in a 16-bit PNG comes out dark.

    image = read_unit_image('scan.png')     # float32 [H, W] in [0, 1]

Anything else (RGB or grey + alpha, a palette, an unreadable or truncated
file, another number of dimensions, negative or non-finite values) raises
`ImageFileError` worded `<file>: <problem>; expected <what>`.
"""
import io
import os
import struct

import numpy as np

SUFFIXES = ('.png', '.npy')
_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
_COLOUR_TYPES = {2: 'an RGB PNG (3 channels)', 3: 'a palette (indexed colour) PNG',
                 4: 'a grayscale + alpha PNG (2 channels)', 6: 'an RGBA PNG (4 channels)'}
EXPECTED_PNG = 'a grayscale PNG (1 channel, 8 or 16 bits)'
EXPECTED_NPY = ('a 2-D .npy array [H, W]: float in [0, 1], or integers >= 0 '
                '(scaled by their dtype\'s maximum), or bool')


class ImageFileError(ValueError):
  """A file that is not a readable grayscale image; the message names it."""


def _error(where: str, problem: str, expected: str) -> ImageFileError:
  return ImageFileError(f'{where}: {problem}; expected {expected}')


def png_header(data: bytes, where: str):
  """(width, height, bit depth, colour type) from a PNG's IHDR chunk."""
  if not data.startswith(_PNG_SIGNATURE):
    what = 'an empty file' if not data else 'not a PNG file (no PNG signature)'
    raise _error(where, what, EXPECTED_PNG)
  if len(data) < 33 or data[12:16] != b'IHDR':
    raise _error(where, 'a truncated PNG (no complete IHDR header)', EXPECTED_PNG)
  width, height, depth, colour = struct.unpack('>IIBB', data[16:26])
  return width, height, depth, colour


def decode_gray_png(data: bytes, where: str):
  """(pixels, white) of a grayscale PNG: uint8 [H, W] with white 255 (2, 4 and
  8 bits; Pillow scales 2 and 4 bits to 0..255), uint8 0 / 1 with white 1
  (1 bit), or uint16 [H, W] with white 65535 (16 bits)."""
  from PIL import Image
  _, _, depth, colour = png_header(data, where)
  if colour != 0:
    raise _error(where, _COLOUR_TYPES.get(colour, f'a PNG of colour type {colour}'),
                 EXPECTED_PNG)
  try:
    with Image.open(io.BytesIO(data), formats=['PNG']) as img:
      img.load()
      array = np.asarray(img)
  except Exception as e:  # noqa: BLE001  PIL raises many types for broken files.
    raise _error(where, f'unreadable or truncated PNG ({type(e).__name__}: {e})',
                 EXPECTED_PNG) from None
  if depth == 16:
    return np.ascontiguousarray(array, dtype=np.uint16), 65535
  if array.dtype == bool:
    return array.astype(np.uint8), 1
  return np.ascontiguousarray(array, dtype=np.uint8), 255


def read_png(path: str) -> np.ndarray:
  """float32 [H, W] in [0, 1]: the PNG's values over its bit depth's white."""
  pixels, white = decode_gray_png(_read_bytes(path), path)
  return pixels.astype(np.float32) / np.float32(white)


def read_npy(path: str) -> np.ndarray:
  """float32 [H, W] in [0, 1] from a 2-D .npy (see the module docstring)."""
  try:
    array = np.load(path, allow_pickle=False)
  except ValueError as e:
    raise _error(path, f'an .npy that needs pickle or is damaged ({e})', EXPECTED_NPY) from None
  except OSError as e:
    raise _error(path, f'unreadable ({e})', EXPECTED_NPY) from None
  if not isinstance(array, np.ndarray):
    raise _error(path, 'not a single .npy array', EXPECTED_NPY)
  if array.ndim != 2:
    raise _error(path, f'an array of {array.ndim} dimensions, shape {array.shape}', EXPECTED_NPY)
  if array.dtype == bool:
    return array.astype(np.float32)
  if np.issubdtype(array.dtype, np.integer):
    if array.size and array.min() < 0:
      raise _error(path, f'negative values ({array.dtype}, min {array.min()})', EXPECTED_NPY)
    return (array.astype(np.float64) / np.iinfo(array.dtype).max).astype(np.float32)
  if np.issubdtype(array.dtype, np.floating):
    if not np.all(np.isfinite(array)):
      raise _error(path, 'NaN or infinite values', EXPECTED_NPY)
    if array.size and (array.min() < 0 or array.max() > 1):
      raise _error(path, f'float values in [{array.min():.4g}, {array.max():.4g}]', EXPECTED_NPY)
    return array.astype(np.float32)
  raise _error(path, f'an array of dtype {array.dtype}', EXPECTED_NPY)


def read_unit_image(path: str) -> np.ndarray:
  """float32 [H, W] in [0, 1] from a .png or .npy file."""
  path = os.fspath(path)
  suffix = os.path.splitext(path)[1].lower()
  if suffix == '.png':
    return read_png(path)
  if suffix == '.npy':
    return read_npy(path)
  raise _error(path, f'a file of type {suffix or "(no suffix)"!r}', 'a .png or .npy image')


def _read_bytes(path: str) -> bytes:
  try:
    with open(path, 'rb') as f:
      return f.read()
  except OSError as e:
    raise _error(path, f'cannot read the file ({e.strerror or e})', 'a readable file') from None
