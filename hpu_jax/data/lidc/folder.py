"""`folder`: one's own data set, with any number of annotators per image.

    python scripts/train.py --config configs/synthetic.py --workdir runs/mine \
        --config.data.name=folder --config.data.dir=/path/to/folder \
        [--config.data.folder.group_regex='^(P\\d+)_']

The layout, K, the image size and the split are folder_layout.py's; this
module loads an example (image uint8 [H, W]: 8-bit as stored, 16-bit as
round(value / 257); masks uint8 [K, H, W] 0/1), plans the splits, and is the
`Folder` builder, prepared like the LIDC formats (TFDS, array_record, read
without TensorFlow) with the same named errors and `skip_bad_examples`.

Why it lives in hpu_jax/data/lidc/: everything it is made of (the builder
base, the registry `formats.BUILDERS` behind `prepare` / `load_source`, the
errors and their skipping, the PNG and mask checks, the split rule, the
sources) is in this package, and the registry imports every builder when the
package is imported. A module outside the package, importing the package
while the package's registry imports it, would be an import cycle (importing
it first would fail). So it is one more format here; the package's name is
historical, and this module holds nothing about LIDC.

Each folder is prepared into its own directory, `<data.prepared_dir>/folder/
<name>-<hash>/`, the hash taken over the folder's absolute path, the group
regex and the names, sizes and times of its files: another folder, another
regex or a changed folder is prepared afresh, never mixed up with an older
copy. That directory's `settings.json` records what it was prepared from.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from hpu_jax.data.lidc.errors import LidcDataError, LidcNotPreparedError, data_error
from hpu_jax.data.lidc.files import natural_key
from hpu_jax.data.lidc.folder_layout import (FOLDER_LAYOUT, SPLIT_TEXT, FolderScan,
                                             assign_splits, mask_problem, scan_folder)
from hpu_jax.data.lidc.images import binarize_mask, check_size, decode_png, size_text
from hpu_jax.data.lidc.plan import Candidate, SplitPlan
from hpu_jax.data.lidc.tfds_builder import LidcBuilder
from hpu_jax.image_files import ImageFileError, decode_gray_png

__all__ = ['Folder', 'FOLDER_LAYOUT', 'SPLIT_TEXT', 'prepared_location', 'load_example',
           'plan_folder']

SETTINGS_FILE = 'settings.json'


# ----------------------------------------------------------------------------
# Where a folder is prepared.

def fingerprint(root: Path) -> str:
  """sha256 over the names, sizes and modification times of the files of
  images/, masks/ and splits.json."""
  h = hashlib.sha256()
  entries = []
  for sub in ('images', 'masks'):
    folder = root / sub
    if folder.is_dir():
      entries += [(f'{sub}/{e.name}', e.stat()) for e in os.scandir(folder)]
  if (root / 'splits.json').exists():
    entries.append(('splits.json', (root / 'splits.json').stat()))
  for name, st in sorted(entries):
    h.update(f'{name}\0{st.st_size}\0{st.st_mtime_ns}\n'.encode())
  return h.hexdigest()


def prepared_location(prepared_dir: str, source_dir: str, options: dict[str, Any]) -> str:
  """The directory `source_dir` is (to be) prepared in, under `prepared_dir`,
  with its settings.json written."""
  if not source_dir:
    from hpu_jax.data.lidc.formats import missing_data_message
    raise LidcNotPreparedError(missing_data_message(Folder.FORMAT))
  group_regex = str(options.get('group_regex', '') or '')
  check_group_regex(group_regex)
  root = Path(source_dir).expanduser().resolve()
  if not root.is_dir():
    raise data_error(str(root), 'no such folder', FOLDER_LAYOUT)
  settings = {'source': str(root), 'group_regex': group_regex, 'files': fingerprint(root)}
  key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
  name = re.sub(r'[^A-Za-z0-9_.-]+', '_', root.name).strip('.') or 'folder'
  where = Path(prepared_dir).expanduser() / Folder.FORMAT / f'{name}-{key}'
  path = where / SETTINGS_FILE
  if not path.exists():
    where.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix('.tmp')
    tmp.write_text(json.dumps(settings, indent=2, sort_keys=True) + '\n')
    os.replace(tmp, path)
  return str(where)


def check_group_regex(group_regex: str) -> None:
  try:
    re.compile(group_regex)
  except re.error as exc:
    raise ValueError(f'data.folder.group_regex={group_regex!r}: not a regular expression '
                     f"({exc}); expected e.g. '^(P\\d+)_' to group ids like P01_s3 by "
                     'patient') from None


def read_settings(data_dir: str | os.PathLike[str] | None) -> dict[str, Any]:
  if data_dir is None:
    return {}
  path = Path(data_dir) / SETTINGS_FILE
  return json.loads(path.read_text()) if path.exists() else {}


# ----------------------------------------------------------------------------
# One example.

def _read(scan: FolderScan, rel: str) -> bytes:
  try:
    return (scan.root / rel).read_bytes()
  except OSError as exc:
    raise data_error(scan.where(rel), f'cannot read the file ({exc.strerror or exc})',
                     'a readable file') from None


def _image_as_uint8(data: bytes, where: str) -> np.ndarray:
  try:
    pixels, white = decode_gray_png(data, where)
  except ImageFileError as exc:
    raise LidcDataError(str(exc)) from None
  if white == 65535:
    return np.rint(pixels / 257.0).astype(np.uint8)
  return (pixels * (255 // white)).astype(np.uint8)


def load_example(scan: FolderScan, eid: str) -> tuple[np.ndarray, np.ndarray]:
  """Reads, decodes and checks one example: (image [H, W], masks [K, H, W])."""
  image_where = scan.where(scan.images[eid])
  image = _image_as_uint8(_read(scan, scan.images[eid]), image_where)
  check_size(image, scan.size, image_where, 'image',
             f'{size_text(scan.size)}, the size of the other images of the folder')
  masks = np.empty((scan.num_masks,) + scan.size, np.uint8)
  for k in range(scan.num_masks):
    rel = scan.masks[eid][k]
    where = scan.where(rel)
    mask = decode_png(_read(scan, rel), where)
    check_size(mask, image.shape, where, 'mask',
               f'the size of its image {image_where} ({size_text(image.shape)})')
    masks[k] = binarize_mask(mask, where)
  return image, masks


# ----------------------------------------------------------------------------
# The plan and the builder.

def plan_folder(scan: FolderScan, group_regex: str = '', skip_bad_examples: bool = False
                ) -> SplitPlan:
  """Assigns the examples to splits; stray mask files stop it unless skipped."""
  if scan.stray_masks and not skip_bad_examples:
    rel = scan.stray_masks[0]
    eid, _, k = Path(rel).stem.rpartition('_')
    problem = (f'a mask without its image (no images/{eid}.png)' if k.isdigit() else
               'a mask file name without the annotator number _<k>')
    raise data_error(scan.where(rel), problem,
                     'masks/<id>_<k>.png, k = 0..K-1, beside an images/<id>.png')
  splits, groups, details = assign_splits(scan, group_regex)
  details['stray_mask_files'] = scan.stray_masks
  details['ignored_files'] = scan.ignored
  candidates = {}
  for split, ids in splits.items():
    cands = []
    for eid in ids:
      error = mask_problem(scan, eid)
      load = None if error else (lambda eid=eid: load_example(scan, eid))
      cands.append(Candidate(eid, groups[eid], load=load, error=error))
    candidates[split] = cands
  patients = {s: sorted({groups[e] for e in ids}, key=natural_key)
              for s, ids in splits.items()}
  return SplitPlan(candidates=candidates, patients=patients, source=str(scan.root),
                   details=details)


class Folder(LidcBuilder, skip_registration=True):
  """One's own folder: images/<id>.png, masks/<id>_<k>.png, K annotators."""

  name = 'folder'
  FORMAT = 'folder'
  IMAGE_SIZE = (0, 0)     # Found from the files when preparing.
  LAYOUT = FOLDER_LAYOUT
  DESCRIPTION = ('A folder of grayscale images, each with the masks of K annotators '
                 '(0/1), split by its splits.json or deterministically by id or group.')
  HOMEPAGE = ''
  CITATION = ''
  ORIGIN = ('your own folder: images/<id>.png with masks/<id>_<k>.png, k = 0..K-1, and '
            'optionally splits.json (docs/data.md)')
  EXAMPLE_DIR = '/path/to/folder'
  MANUAL_DOWNLOAD_INSTRUCTIONS = 'Pass the folder as the manual dir. Layout: ' + FOLDER_LAYOUT

  def __init__(self, *, manual_path: str | os.PathLike[str] | None = None,
               skip_bad_examples: bool = False, **kwargs):
    self._settings = read_settings(kwargs.get('data_dir'))
    self._scan = None
    if manual_path is not None:
      self._scan = scan_folder(Path(manual_path))
      self.IMAGE_SIZE = self._scan.size
      self.NUM_MASKS = self._scan.num_masks
    super().__init__(manual_path=manual_path, skip_bad_examples=skip_bad_examples,
                     **kwargs)

  def stored_features(self):
    """Reading a prepared folder: the features are those of its files."""
    return None if self._scan is None else super().stored_features()

  @staticmethod
  def prepared_location(prepared_dir: str, source_dir: str, options: dict[str, Any]) -> str:
    return prepared_location(prepared_dir, source_dir, options)

  def plan(self, path: Path) -> SplitPlan:
    scan = self._scan if self._scan is not None else scan_folder(path)
    return plan_folder(scan, str(self._settings.get('group_regex', '')),
                       self._skip_bad_examples)
