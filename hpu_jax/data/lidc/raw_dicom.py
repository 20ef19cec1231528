"""Reading one CT series of DICOM files, and resampling its slices to 0.5 mm.

`read_series(folder, files)` reads every DICOM file of a series with pydicom
and checks it; `CtSeries.hu(sop_uid)` gives a slice in Hounsfield units.
`crop_linear` / `crop_nearest` resample a window of a slice to the 0.5 mm
grid; `window_to_uint8` maps HU to 8 bits. The rules:

- The SliceLocation rule (the original's): a file whose |SliceLocation|
  differs from |ImagePositionPatient[2]| is filtered out and counted. Equal
  means within `SLICE_LOCATION_TOLERANCE_MM` (0.01 mm: only the rounding of
  the decimal strings; real mismatches are whole slices). A file without
  SliceLocation cannot pass the rule: filtered too, counted on its own.
- Checked, each a `LidcDataError` naming the file and what was expected: a
  file pydicom cannot read, a truncated one (fewer pixel bytes than Rows x
  Columns x BitsAllocated / 8), a missing SOPInstanceUID, PixelSpacing,
  ImagePositionPatient, RescaleSlope or RescaleIntercept, a file of another
  series in the folder, a SOP instance UID twice, and a series of mixed pixel
  spacing or mixed image sizes.
- HU = stored value x RescaleSlope + RescaleIntercept.
- Resampling. A slice of N pixels at spacing s mm becomes round(N s / 0.5)
  pixels at 0.5 mm (the same field of view); output pixel u samples the
  original at u x 0.5 / s (pixel centres, the first one fixed: DICOM's
  ImagePositionPatient is the first pixel's centre; positions past the last
  pixel take the edge value). Only the crop's window is computed, which
  equals resampling the whole slice and cutting the window out of it. Images
  are interpolated linearly in HU. Masks are filled at the original
  resolution and resampled nearest: a 0.5 mm pixel belongs to the mask when
  its centre lies in a marked original pixel, which renders exactly the
  region the reader drew (the union of its pixels) at 0.5 mm. Window pixels
  outside the resampled slice are padding: `PAD_HU` for images (below any
  window, so 0 after windowing: what scanners store outside their field of
  view maps to 0 as well), 0 for masks.
- HU to 8 bits: [min, max] HU (`DEFAULT_HU_WINDOW`, -1350..150: the
  radiologists' lung window, level -600 and width 1500, which shows lung
  parenchyma and nodules and saturates bone) maps linearly to 0..255,
  clipped, rounded to the nearest integer.
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np

from hpu_jax.data.lidc.errors import data_error

TARGET_SPACING_MM = 0.5
SLICE_LOCATION_TOLERANCE_MM = 0.01
SPACING_TOLERANCE_MM = 1e-4
DEFAULT_HU_WINDOW = (-1350.0, 150.0)
PAD_HU = -3024.0   # below any sensible window: 0 after windowing
DICOM_EXPECTED = 'a complete DICOM CT image file'


@dataclasses.dataclass(frozen=True)
class CtSlice:
  """The header facts of one DICOM file that passed the SliceLocation rule."""
  path: str
  sop_uid: str
  z: float
  slope: float
  intercept: float


@dataclasses.dataclass
class CtSeries:
  """A series' files: the slices kept and those the SliceLocation rule
  filtered out (by SOP instance UID), with the common spacing and size."""
  folder: str
  series_uid: str
  patient_id: str
  spacing: tuple[float, float]   # (rows, columns) mm: PixelSpacing
  shape: tuple[int, int]         # (Rows, Columns)
  slices: dict[str, CtSlice]
  filtered: dict[str, str]       # sop uid -> path, SliceLocation rule
  slice_location_mismatch: int = 0
  slice_location_missing: int = 0

  @property
  def num_files(self) -> int:
    return len(self.slices) + len(self.filtered)

  def hu(self, sop_uid: str) -> np.ndarray:
    """The slice in HU, float32 [Rows, Columns]."""
    s = self.slices[sop_uid]
    ds = _dcmread(s.path)
    try:
      pixels = ds.pixel_array
    except Exception as exc:   # pydicom raises many types for bad pixels.
      raise data_error(s.path, 'pixel data not decodable '
                       f'({type(exc).__name__}: {exc})',
                       DICOM_EXPECTED) from exc
    if pixels.shape != self.shape:
      raise data_error(s.path, f'pixel data of shape {pixels.shape}',
                       f'Rows x Columns = {self.shape}')
    return pixels.astype(np.float32) * s.slope + s.intercept


def _dcmread(path: str):
  import pydicom  # pylint: disable=g-import-not-at-top
  try:
    return pydicom.dcmread(path)
  except Exception as exc:   # InvalidDicomError, EOFError, struct errors...
    raise data_error(path, 'unreadable or truncated DICOM '
                     f'({type(exc).__name__}: {exc})', DICOM_EXPECTED) from exc


def _required(ds, path: str, keyword: str, count: int | None = None):
  value = ds.get(keyword)
  if value is None or value == '' or (
      count is not None and (not hasattr(value, '__len__')
                             or len(value) != count)):
    what = f'{keyword} missing' if value in (None, '') else (
        f'{keyword} {value!r}')
    shape = f' with {count} values' if count else ''
    raise data_error(path, f'{what} (a truncated or non-CT file?)',
                     f'{DICOM_EXPECTED} with {keyword}{shape}')
  return value


def _check_pixel_bytes(ds, path: str) -> None:
  """Raises if an uncompressed file holds fewer pixel bytes than its size."""
  if 'PixelData' not in ds:
    raise data_error(path, 'no pixel data (PixelData missing)', DICOM_EXPECTED)
  syntax = getattr(getattr(ds, 'file_meta', None), 'TransferSyntaxUID', None)
  if syntax is not None and syntax.is_compressed:
    return   # checked when decoded
  expected = (int(ds.Rows) * int(ds.Columns) * int(ds.get('SamplesPerPixel', 1))
              * int(ds.BitsAllocated) // 8)
  got = len(ds.PixelData)
  if got < expected:
    raise data_error(path, f'truncated: {got} bytes of pixel data for '
                     f'{int(ds.Rows)} x {int(ds.Columns)} pixels',
                     f'{expected} bytes ({DICOM_EXPECTED})')


def passes_slice_location_rule(slice_location: float, z: float) -> bool:
  """|SliceLocation| == |ImagePositionPatient[2]| (to the stated tolerance)."""
  return abs(abs(slice_location) - abs(z)) <= SLICE_LOCATION_TOLERANCE_MM


def read_series(folder: str, files: list[str]) -> CtSeries:
  """Reads and checks the DICOM files `files` (names in `folder`)."""
  if not files:
    raise data_error(folder, 'no DICOM files (*.dcm)',
                     'the DICOM files of one CT series beside its XML file')
  series = None
  first_path = ''
  for name in files:
    path = os.path.join(folder, name)
    ds = _dcmread(path)
    sop_uid = str(_required(ds, path, 'SOPInstanceUID'))
    series_uid = str(_required(ds, path, 'SeriesInstanceUID'))
    spacing = tuple(float(v) for v in _required(ds, path, 'PixelSpacing', 2))
    position = _required(ds, path, 'ImagePositionPatient', 3)
    shape = (int(_required(ds, path, 'Rows')),
             int(_required(ds, path, 'Columns')))
    slope = float(_required(ds, path, 'RescaleSlope'))
    intercept = float(_required(ds, path, 'RescaleIntercept'))
    _check_pixel_bytes(ds, path)
    if series is None:
      first_path = path
      series = CtSeries(folder, series_uid, str(ds.get('PatientID', '')),
                        spacing, shape, {}, {})
    _check_same_series(series, path, first_path, series_uid, spacing, shape)
    if sop_uid in series.slices or sop_uid in series.filtered:
      other = (series.slices[sop_uid].path if sop_uid in series.slices
               else series.filtered[sop_uid])
      raise data_error(path, f'SOP instance UID {sop_uid} also in {other}',
                       'each SOP instance UID once per series')
    z = float(position[2])
    location = ds.get('SliceLocation')
    if location is None or location == '':
      series.slice_location_missing += 1
      series.filtered[sop_uid] = path
    elif not passes_slice_location_rule(float(location), z):
      series.slice_location_mismatch += 1
      series.filtered[sop_uid] = path
    else:
      series.slices[sop_uid] = CtSlice(path, sop_uid, z, slope, intercept)
  assert series is not None
  return series


def _check_same_series(series: CtSeries, path: str, first_path: str,
                       series_uid: str, spacing: tuple[float, ...],
                       shape: tuple[int, int]) -> None:
  if series_uid != series.series_uid:
    raise data_error(path, f'a file of series {series_uid} among the files of '
                     f'series {series.series_uid} (e.g. {first_path})',
                     'one series per folder')
  if any(abs(a - b) > SPACING_TOLERANCE_MM
         for a, b in zip(spacing, series.spacing)):
    raise data_error(path, f'PixelSpacing {list(spacing)} mm in a series of '
                     f'PixelSpacing {list(series.spacing)} mm (e.g. '
                     f'{first_path})', 'one pixel spacing per series')
  if shape != series.shape:
    raise data_error(path, f'{shape[0]} x {shape[1]} pixels in a series of '
                     f'{series.shape[0]} x {series.shape[1]} (e.g. '
                     f'{first_path})', 'one image size per series')


# -- resampling to 0.5 mm ----------------------------------------------------


def resampled_length(n: int, spacing: float) -> int:
  """Pixels along an axis of n pixels at `spacing` mm, resampled to 0.5 mm."""
  return max(1, int(math.floor(n * spacing / TARGET_SPACING_MM + 0.5)))


def _source_positions(start: int, size: int, n: int, spacing: float
                      ) -> tuple[np.ndarray, np.ndarray]:
  """Original pixel positions of output pixels start..start+size-1 of the
  0.5 mm grid, and which of them lie inside the resampled slice."""
  u = np.arange(start, start + size)
  inside = (u >= 0) & (u < resampled_length(n, spacing))
  return u * (TARGET_SPACING_MM / spacing), inside


def _linear_axis(array: np.ndarray, x: np.ndarray, axis: int) -> np.ndarray:
  n = array.shape[axis]
  x = np.clip(x, 0, n - 1)
  i0 = np.floor(x).astype(np.int64)
  i1 = np.minimum(i0 + 1, n - 1)
  w = (x - i0).astype(np.float32)
  shape = [1, 1]
  shape[axis] = -1
  w = w.reshape(shape)
  return (np.take(array, i0, axis=axis) * (1 - w)
          + np.take(array, i1, axis=axis) * w)


def crop_linear(image: np.ndarray, spacing: tuple[float, float], top: int,
                left: int, size: tuple[int, int],
                pad: float = PAD_HU) -> np.ndarray:
  """Window [top:top+h, left:left+w] of the slice resampled linearly to
  0.5 mm; `pad` outside the resampled slice. float32 [h, w]."""
  h, w = size
  rows, rows_in = _source_positions(top, h, image.shape[0], spacing[0])
  cols, cols_in = _source_positions(left, w, image.shape[1], spacing[1])
  out = _linear_axis(_linear_axis(image.astype(np.float32), rows, 0), cols, 1)
  out[~rows_in, :] = pad
  out[:, ~cols_in] = pad
  return out.astype(np.float32)


def crop_nearest(mask: np.ndarray, spacing: tuple[float, float], top: int,
                 left: int, size: tuple[int, int]) -> np.ndarray:
  """The same window of a mask, nearest neighbour: the original pixel whose
  square holds the 0.5 mm pixel's centre; 0 outside. uint8 [h, w]."""
  h, w = size
  rows, rows_in = _source_positions(top, h, mask.shape[0], spacing[0])
  cols, cols_in = _source_positions(left, w, mask.shape[1], spacing[1])
  r = np.clip(np.floor(rows + 0.5).astype(np.int64), 0, mask.shape[0] - 1)
  c = np.clip(np.floor(cols + 0.5).astype(np.int64), 0, mask.shape[1] - 1)
  out = mask[np.ix_(r, c)].astype(np.uint8)
  out[~rows_in, :] = 0
  out[:, ~cols_in] = 0
  return out


def window_to_uint8(hu: np.ndarray, window: tuple[float, float]) -> np.ndarray:
  """[min, max] HU -> 0..255 linearly, clipped and rounded. uint8."""
  lo, hi = window
  scaled = (hu.astype(np.float64) - lo) * (255.0 / (hi - lo))
  return np.clip(np.floor(scaled + 0.5), 0, 255).astype(np.uint8)


def parse_hu_window(text: str) -> tuple[float, float]:
  """'-1350,150' -> (-1350.0, 150.0); ValueError unless min < max."""
  parts = [p.strip() for p in str(text).split(',')]
  try:
    lo, hi = (float(p) for p in parts)
  except ValueError:
    raise ValueError(f'hu_window {text!r}: expected two numbers "min,max" in '
                     'HU, e.g. -1350,150') from None
  if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
    raise ValueError(f'hu_window {text!r}: expected finite min < max')
  return lo, hi
