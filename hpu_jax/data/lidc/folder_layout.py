"""The `folder` format's layout: which files make which example, how many
masks (K) and what size, and which split each id goes to.

    <folder>/images/<id>.png       one grayscale image per example
    <folder>/masks/<id>_<k>.png    its K masks, k = 0 .. K-1
    <folder>/splits.json           optional: {"train": [ids], "validation": [ids], "test": [ids]}

K and the image size are the most common among the images (K from the mask
files' names, the size from the PNG headers), so one image that differs is
reported as that image's problem rather than the whole folder's. Without
splits.json the ids, or their groups (`group_regex`: its first group, or the
whole match), are split by `split.split_patients`.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import re
from pathlib import Path

from hpu_jax.data.lidc.errors import data_error
from hpu_jax.data.lidc.files import is_png_name, natural_key
from hpu_jax.data.lidc.split import SPLIT_RULE, SPLITS, split_patients

FOLDER_LAYOUT = (
    'a folder with images/<id>.png (grayscale, 8 or 16 bits, one size) and '
    'masks/<id>_<k>.png for k = 0..K-1 (K >= 1, the same for every image; values '
    '0/255 or 0/1), and optionally splits.json')
SPLITS_JSON = 'splits.json'
SPLITS_JSON_FORMAT = ('a JSON object {"train": [ids], "validation": [ids], "test": '
                      '[ids]} (any of the three), each id the name of an image in '
                      'images/ without .png, in one split at most')
SPLIT_TEXT = ('splits.json of the folder if it has one; otherwise the ids (or their '
              'groups by data.folder.group_regex) split by the patient-level rule')


@dataclasses.dataclass
class FolderScan:
  """The files of a folder in the `folder` layout, by example id."""
  root: Path
  images: dict[str, str]                 # id -> 'images/<id>.png', natural order
  masks: dict[str, dict[int, str]]       # id -> {k: 'masks/<id>_<k>.png'}
  stray_masks: list[str]                 # masks without their image, or unnumbered
  ignored: list[str]                     # other files in images/ and masks/
  num_masks: int                         # K
  size: tuple[int, int]                  # (H, W)

  def where(self, rel: str) -> str:
    return str(self.root / rel)


def _list(folder: Path) -> list[str]:
  return sorted((e.name for e in os.scandir(folder)), key=natural_key)


def _png_size(path: Path) -> tuple[int, int] | None:
  """(H, W) from a PNG's header, or None if it has none."""
  try:
    with open(path, 'rb') as f:
      head = f.read(24)
  except OSError:
    return None
  if len(head) < 24 or not head.startswith(b'\x89PNG') or head[12:16] != b'IHDR':
    return None
  return int.from_bytes(head[20:24], 'big'), int.from_bytes(head[16:20], 'big')


def _most_common(counter: collections.Counter):
  """The most common value; ties go to the smallest."""
  return min(counter, key=lambda v: (-counter[v], v))


def scan_folder(root: Path) -> FolderScan:
  """Lists the folder and finds K and the image size. Raises LidcDataError
  when the folder as a whole is unusable (missing, empty, no image with masks)."""
  root = Path(root)
  if not root.is_dir():
    raise data_error(str(root), 'no such folder', FOLDER_LAYOUT)
  for sub in ('images', 'masks'):
    if not (root / sub).is_dir():
      raise data_error(str(root / sub), 'no such folder', FOLDER_LAYOUT)
  images, masks, stray, ignored = {}, {}, [], []
  for name in _list(root / 'images'):
    if is_png_name(name) and (root / 'images' / name).is_file():
      images[name[:-4]] = f'images/{name}'
    elif not name.startswith('.'):
      ignored.append(f'images/{name}')
  if not images:
    raise data_error(str(root / 'images'), 'no .png images', FOLDER_LAYOUT)
  for name in _list(root / 'masks'):
    if not (is_png_name(name) and (root / 'masks' / name).is_file()):
      if not name.startswith('.'):
        ignored.append(f'masks/{name}')
      continue
    eid, _, k = name[:-4].rpartition('_')
    if eid in images and k.isdigit():
      masks.setdefault(eid, {})[int(k)] = f'masks/{name}'
    else:
      stray.append(f'masks/{name}')
  complete = collections.Counter(
      len(ks) for ks in masks.values() if sorted(ks) == list(range(len(ks))))
  if not complete:
    raise data_error(str(root / 'masks'), 'no image has a complete set of masks '
                     f'<id>_0.png .. <id>_<K-1>.png (found {sum(map(len, masks.values()))} '
                     'mask files of images)', FOLDER_LAYOUT)
  sizes = collections.Counter(s for s in (_png_size(root / rel) for rel in images.values())
                              if s is not None)
  if not sizes:
    raise data_error(str(root / 'images'), 'no image with a readable PNG header',
                     FOLDER_LAYOUT)
  return FolderScan(root, images, masks, stray, ignored, _most_common(complete),
                    _most_common(sizes))


def mask_problem(scan: FolderScan, eid: str):
  """The LidcDataError of an id whose masks are not 0 .. K-1, or None."""
  ks = sorted(scan.masks.get(eid, {}))
  k = scan.num_masks
  expected = (f'its K = {k} masks masks/{eid}_0.png .. masks/{eid}_{k - 1}.png, like '
              'the other images')
  if not ks:
    return data_error(scan.where(scan.images[eid]),
                      f'an image without masks (no masks/{eid}_<k>.png)', expected)
  gaps = [i for i in range(ks[-1]) if i not in ks]
  if gaps:
    return data_error(scan.where(f'masks/{eid}_{gaps[0]}.png'),
                      f'mask {gaps[0]} of {eid} missing (it has masks '
                      f'{", ".join(map(str, ks))})', expected)
  if len(ks) != k:
    return data_error(scan.where(scan.images[eid]),
                      f'{len(ks)} mask(s) (masks/{eid}_0.png .. masks/{eid}_{ks[-1]}.png)',
                      expected)
  return None


# ----------------------------------------------------------------------------
# Splits.

def read_splits_json(scan: FolderScan) -> dict[str, list[str]] | None:
  """The splits the folder's splits.json assigns, checked; None without one."""
  path = scan.root / SPLITS_JSON
  if not path.exists():
    return None
  where = str(path)
  try:
    data = json.loads(path.read_text(encoding='utf-8'))
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
    raise data_error(where, f'unreadable or not JSON ({exc})', SPLITS_JSON_FORMAT) from None
  if not isinstance(data, dict):
    raise data_error(where, f'a JSON {type(data).__name__}, not an object', SPLITS_JSON_FORMAT)
  unknown = sorted(set(data) - set(SPLITS))
  if unknown:
    raise data_error(where, f'unknown split {unknown[0]!r}', SPLITS_JSON_FORMAT)
  seen: dict[str, str] = {}
  splits = {}
  for split in SPLITS:
    ids = data.get(split, [])
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
      raise data_error(where, f'{split!r} is not a list of id strings', SPLITS_JSON_FORMAT)
    for eid in ids:
      if eid in seen:
        both = (f'listed twice in {split!r}' if seen[eid] == split else
                f'in both {seen[eid]!r} and {split!r}')
        raise data_error(where, f'id {eid!r} {both}', SPLITS_JSON_FORMAT)
      if eid not in scan.images:
        raise data_error(where, f'id {eid!r} (in {split!r}) has no image '
                         f'{scan.where(f"images/{eid}.png")}', SPLITS_JSON_FORMAT)
      seen[eid] = split
    splits[split] = sorted(ids, key=natural_key)
  return splits


def group_of_ids(scan: FolderScan, group_regex: str) -> dict[str, str]:
  """id -> its group: the regex's first group (or whole match); the id itself
  without a regex."""
  if not group_regex:
    return {eid: eid for eid in scan.images}
  pattern = re.compile(group_regex)
  groups = {}
  for eid in scan.images:
    m = pattern.search(eid)
    group = (m.group(1) if pattern.groups else m.group(0)) if m else None
    if not group:
      raise data_error(f'data.folder.group_regex={group_regex!r}',
                       f'no group in the id {eid!r} ({scan.where(scan.images[eid])})',
                       'a pattern whose first group (or match) is found in every id, '
                       "e.g. '^(P\\d+)_' for ids like P01_s3")
    groups[eid] = group
  return groups


def assign_splits(scan: FolderScan, group_regex: str):
  """(split -> ids, id -> group, details for the metadata)."""
  groups = group_of_ids(scan, group_regex)
  details = {'num_masks': scan.num_masks, 'image_size': f'{scan.size[0]} x {scan.size[1]}',
             'group_regex': group_regex or '(none: each id is its own group)'}
  listed = read_splits_json(scan)
  if listed is not None:
    details['split_rule'] = f'{SPLITS_JSON} of the folder'
    left_out = [eid for eid in scan.images if not any(eid in ids for ids in listed.values())]
    details['ids_not_in_splits_json'] = left_out
    split_of_group = collections.defaultdict(set)
    for split, ids in listed.items():
      for eid in ids:
        split_of_group[groups[eid]].add(split)
    details['groups_in_several_splits'] = sorted(
        (g for g, s in split_of_group.items() if len(s) > 1), key=natural_key)
    return {s: ids for s, ids in listed.items() if ids}, groups, details
  unique = sorted(set(groups.values()), key=natural_key)
  if len(unique) < 3:
    raise data_error(str(scan.root), f'only {len(unique)} group(s) of ids ({", ".join(unique)})',
                     'at least 3 ids (or groups, with data.folder.group_regex) to split '
                     'into train, validation and test, or a splits.json')
  details['split_rule'] = SPLIT_RULE.replace('patient', 'group')
  by_group = split_patients(unique, str(scan.root))
  split_of = {g: s for s, gs in by_group.items() for g in gs}
  splits = {s: [eid for eid in scan.images if split_of[groups[eid]] == s] for s in SPLITS}
  return splits, groups, details
