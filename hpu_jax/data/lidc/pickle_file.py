"""The PHiSeg / PyTorch-ports LIDC pickle (`data_lidc.pickle`, "LIDC v1").

Structure (as read by PHiSeg's `data/lidc_data_loader.py` and
Probabilistic-Unet-Pytorch's `load_LIDC_data.py`): one pickled dict

    slice key (str) -> {'image': float array [128, 128] in [0, 1],
                        'masks': list of 4 arrays [128, 128], values 0 / 1,
                        'series_uid': str (the CT series)}

Accepted here: images float in [0, 1] (stored as round(255 x), i.e. within
1/510 of the original) or integer in [0, 255]; masks bool / integer / float
with values 0/1 (255 is read as 1). Manual dir: the pickle file itself, or a
folder of `*.pickle` / `*.pkl` files (merged, as the PyTorch port does).

Example id: the slice key; patient: the series uid. Split by series uid,
`split.SPLIT_RULE`.

Unpickling runs code from the file: prepare only pickles you trust.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hpu_jax.data.lidc.errors import LidcDataError, data_error
from hpu_jax.data.lidc.files import natural_key
from hpu_jax.data.lidc.images import NUM_RATERS, check_size, size_text
from hpu_jax.data.lidc.plan import Candidate, SplitPlan
from hpu_jax.data.lidc.split import SPLITS, SPLIT_RULE, split_patients
from hpu_jax.data.lidc.tfds_builder import LidcBuilder

PICKLE_SIZE = (128, 128)
PICKLE_KEYS = ('image', 'masks', 'series_uid')
PICKLE_LAYOUT = (
    "the PHiSeg LIDC pickle (data_lidc.pickle): a pickled dict slice key -> "
    "{'image': float array 128 x 128 in [0, 1], 'masks': list of 4 arrays "
    "128 x 128 with values 0/1, 'series_uid': str}")
_PICKLE_SUFFIXES = ('.pickle', '.pkl')


def find_pickle_files(path: Path) -> list[Path]:
  """The pickle file itself, or the `*.pickle` / `*.pkl` files in a folder."""
  if path.is_file():
    return [path]
  files = sorted(p for p in path.iterdir()
                 if p.is_file() and p.name.lower().endswith(_PICKLE_SUFFIXES))
  if not files:
    names = sorted(p.name for p in path.iterdir())
    shown = ', '.join(names[:5]) + (', ...' if len(names) > 5 else '')
    raise data_error(
        str(path), f'no .pickle file found (it holds: {shown or "nothing"})',
        PICKLE_LAYOUT)
  return files


def load_pickle_file(path: Path) -> dict[Any, Any]:
  """Unpickles `path` and checks it is a non-empty dict of slice entries."""
  try:
    with open(path, 'rb') as f:
      data = pickle.load(f)
  except Exception as exc:  # Unpickling fails in many ways.
    raise data_error(
        str(path), f'cannot unpickle ({type(exc).__name__}: {exc}); the file '
        'may be truncated or not a pickle', PICKLE_LAYOUT) from exc
  check_pickle_structure(data, str(path))
  return data


def check_pickle_structure(data: Any, where: str) -> None:
  """Raises unless `data` is a non-empty dict whose values are dicts with
  'image' and 'masks' (the per-entry details are checked per example)."""
  if not isinstance(data, Mapping):
    raise data_error(
        where, f'a pickle of another structure (a {type(data).__name__} at '
        'the top level, not a dict)', PICKLE_LAYOUT)
  if not data:
    raise data_error(where, 'an empty dict', PICKLE_LAYOUT)
  entries = [v for v in data.values() if isinstance(v, Mapping)
             and 'image' in v and 'masks' in v]
  if not entries:
    key, value = next(iter(data.items()))
    kind = (f'keys {sorted(map(str, value))[:6]}'
            if isinstance(value, Mapping) else f'a {type(value).__name__}')
    raise data_error(
        where, f'a pickle of another structure (no entry has image and '
        f'masks; entry {key!r} is {kind})', PICKLE_LAYOUT)


def entry_where(path: Path, key: Any, *fields: Any) -> str:
  return f'{path}[{key!r}]' + ''.join(f'[{f!r}]' for f in fields)


def entry_patient(path: Path, key: Any, value: Any) -> tuple[str | None, str | None]:
  """(series uid, None) or (None, reason the entry is not a slice entry)."""
  if not isinstance(value, Mapping):
    return None, f'a {type(value).__name__}, not a dict'
  missing = [k for k in PICKLE_KEYS if k not in value]
  if missing:
    return None, f'keys {missing} missing (has {sorted(map(str, value))})'
  uid = value['series_uid']
  if isinstance(uid, bytes):
    uid = uid.decode('utf-8', 'replace')
  if isinstance(uid, np.ndarray) and uid.ndim == 0:
    uid = uid.item()
  if not isinstance(uid, str) or not uid:
    return None, f'series_uid is {uid!r}, not a non-empty string'
  return uid, None


def convert_pickle_image(image: Any, where: str) -> np.ndarray:
  """float [0, 1] -> round(255 x) uint8; integer [0, 255] -> uint8."""
  expected = ('a 128 x 128 array, float in [0, 1] or integer in [0, 255]')
  arr = np.asarray(image)
  if arr.ndim == 3 and 1 in (arr.shape[0], arr.shape[-1]):
    arr = arr.reshape(arr.shape[1:] if arr.shape[0] == 1 else arr.shape[:-1])
  if arr.ndim != 2:
    raise data_error(where, f'image has shape {arr.shape}', expected)
  check_size(arr, PICKLE_SIZE, where, 'image', expected)
  if np.issubdtype(arr.dtype, np.floating):
    if not np.isfinite(arr).all():
      raise data_error(where, 'image has NaN or inf values', expected)
    lo, hi = float(arr.min()), float(arr.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
      raise data_error(
          where, f'float image values in [{lo:g}, {hi:g}]', expected)
    return np.round(np.clip(arr, 0, 1) * 255).astype(np.uint8)
  if np.issubdtype(arr.dtype, np.integer):
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi > 255:
      raise data_error(where, f'integer image values in [{lo}, {hi}]',
                       expected)
    return arr.astype(np.uint8)
  raise data_error(where, f'image of dtype {arr.dtype}', expected)


def convert_pickle_masks(masks: Any, where: str, size: tuple[int, int]
                         ) -> np.ndarray:
  """List of 4 masks [H, W] with values 0/1 (or 255) -> uint8 [4, H, W] 0/1."""
  expected = (f'a list of 4 masks of the image\'s size '
              f'({size_text(size)}) with values 0/1')
  if isinstance(masks, np.ndarray):
    items: Sequence[Any] = list(masks) if masks.ndim == 3 else [masks]
  elif isinstance(masks, (list, tuple)):
    items = masks
  else:
    raise data_error(where, f'masks is a {type(masks).__name__}',
                     expected)
  if len(items) != NUM_RATERS:
    raise data_error(where, f'{len(items)} masks', expected)
  out = np.empty((NUM_RATERS,) + tuple(size), np.uint8)
  for k, mask in enumerate(items):
    arr = np.asarray(mask)
    if arr.ndim == 3 and 1 in (arr.shape[0], arr.shape[-1]):
      arr = arr.reshape(arr.shape[1:] if arr.shape[0] == 1 else arr.shape[:-1])
    if tuple(arr.shape) != tuple(size):
      raise data_error(f'{where}[{k}]',
                       f'mask is {size_text(arr.shape)}',
                       expected)
    if arr.dtype == bool:
      out[k] = arr
      continue
    if not (np.issubdtype(arr.dtype, np.integer)
            or np.issubdtype(arr.dtype, np.floating)):
      raise data_error(f'{where}[{k}]', f'mask of dtype {arr.dtype}',
                       expected)
    ok = (arr == 0) | (arr == 1) | (arr == 255)
    if not ok.all():
      shown = ', '.join(f'{v:g}' for v in np.unique(arr[~ok])[:8])
      raise data_error(f'{where}[{k}]', f'mask has values {shown}',
                       'a binary mask with values 0 and 1 (or 0 and '
                       '255) only')
    out[k] = arr != 0
  return out


def load_pickle_example(path: Path, key: Any, value: Mapping[str, Any]
                        ) -> tuple[np.ndarray, np.ndarray]:
  image = convert_pickle_image(value['image'], entry_where(path, key, 'image'))
  masks = convert_pickle_masks(value['masks'], entry_where(path, key, 'masks'),
                               image.shape)
  return image, masks


def plan_pickle(path: Path) -> SplitPlan:
  files = find_pickle_files(path)
  entries: dict[str, tuple[Path, Any, Any]] = {}
  for file in files:
    data = load_pickle_file(file)
    for key, value in data.items():
      eid = key.decode('utf-8', 'replace') if isinstance(key, bytes) else str(key)
      if eid in entries:
        raise data_error(
            entry_where(file, key), f'slice key also in {entries[eid][0]}',
            'each slice key once across the pickle files')
      entries[eid] = (file, key, value)
  uids: dict[str, str | None] = {}
  errors: dict[str, LidcDataError] = {}
  for eid, (file, key, value) in entries.items():
    uid, reason = entry_patient(file, key, value)
    uids[eid] = uid
    if reason is not None:
      errors[eid] = data_error(entry_where(file, key), reason,
                               'a dict with ' + ', '.join(PICKLE_KEYS)
                               + ' (' + PICKLE_LAYOUT + ')')
  source = str(path)
  split_lists = split_patients(
      (u for u in uids.values() if u is not None), source)
  split_of = {p: s for s, ps in split_lists.items() for p in ps}
  candidates: dict[str, list[Candidate]] = {s: [] for s in SPLITS}
  bad_first: list[Candidate] = []
  for eid in sorted(entries, key=natural_key):
    file, key, value = entries[eid]
    uid = uids[eid]
    if uid is None:
      # No series uid, so no split: reported with the training split's
      # candidates (raised, or skipped and listed, like any bad example).
      bad_first.append(Candidate(eid, '', error=errors[eid]))
      continue
    candidates[split_of[uid]].append(Candidate(
        eid, uid, load=lambda f=file, k=key, v=value: load_pickle_example(
            f, k, v)))
  candidates['train'] = bad_first + candidates['train']
  return SplitPlan(
      candidates=candidates,
      patients=split_lists,
      source=source,
      details={'split_rule': SPLIT_RULE + ' Patient = series uid.',
               'pickle_files': [str(f) for f in files]},
  )


class LidcPickle(LidcBuilder, skip_registration=True):
  """The PHiSeg / PyTorch-ports LIDC pickle, split by series uid."""

  FORMAT = 'lidc_pickle'
  IMAGE_SIZE = PICKLE_SIZE
  LAYOUT = PICKLE_LAYOUT
  DESCRIPTION = (
      'LIDC-IDRI 128 x 128 slices from the data_lidc.pickle used by PHiSeg '
      'and the PyTorch ports of the Probabilistic U-Net, with the masks of 4 '
      'radiologists (0/1). Split by series uid: ' + SPLIT_RULE)
  HOMEPAGE = 'https://github.com/stefanknegt/Probabilistic-Unet-Pytorch'
  ORIGIN = ("PHiSeg's / the PyTorch ports' data_lidc.pickle (the file, or a "
            'folder holding it)')
  EXAMPLE_DIR = '/path/to/data_lidc.pickle'
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      'Pass data_lidc.pickle (or a folder holding it) as the manual dir. '
      'Structure: ' + PICKLE_LAYOUT)

  def plan(self, path: Path) -> SplitPlan:
    return plan_pickle(path)
