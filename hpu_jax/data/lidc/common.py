"""Shared parts of the LIDC data builders (all three formats).

What lives here:

* `LidcDataError`: the one error raised for bad input. Its message always
  names the file (or archive member, or pickle entry) and says what was
  expected.
* File trees: a folder and a tar archive (`.tar.gz`, `.tgz`, `.tar`, ...)
  behind one small interface, so each format's parser works on both.
* PNG decoding and the checks every format shares (size, binary masks).
* The deterministic patient-level split (`split_patients`).
* `LidcBuilder`: the `tfds` builder base class. It writes `array_record` files
  with `tfds.features.Tensor` / `Text` features, so the data is prepared and
  read back without TensorFlow.
* `PrepareReport`: what `prepare` returns (and `scripts/prepare_data.py`
  prints).

Nothing here imports the model or training parts of hpu_jax.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import io
import math
import os
import re
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

NUM_RATERS = 4
SPLITS = ('train', 'validation', 'test')

# The patient-level split used by the formats that do not come split
# (LIDC-IDRI slices, the PHiSeg pickle). See `split_patients`.
SPLIT_FRACTIONS = {'train': 0.70, 'validation': 0.15, 'test': 0.15}
SPLIT_SALT = 'hpu_jax.lidc.split.v1'
SPLIT_RULE = (
    'patient-level split, deterministic: the unique patient ids are ordered '
    f'by sha256("{SPLIT_SALT}:" + patient id); validation and test each take '
    'max(1, round-half-up(0.15 * n)) patients of that order (validation '
    'first, then test from what is left at the end), train takes the rest '
    '(70 %). A patient\'s place in the order does not depend on the other '
    'patients. Needs at least 3 patients.'
)

_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
_ARCHIVE_SUFFIXES = ('.tar.gz', '.tgz', '.tar', '.tar.bz2', '.tbz2', '.tar.xz', '.txz')

LIDC_CITATION = """\
@misc{armato2015lidc,
  title={Data From LIDC-IDRI},
  author={Armato III, Samuel G. and others},
  howpublished={The Cancer Imaging Archive},
  doi={10.7937/K9/TCIA.2015.LO9QL9SX},
  year={2015}
}
@article{armato2011lidc,
  title={The Lung Image Database Consortium (LIDC) and Image Database Resource
         Initiative (IDRI): a completed reference database of lung nodules on
         CT scans},
  author={Armato III, Samuel G. and others},
  journal={Medical Physics}, volume={38}, pages={915--931}, year={2011}
}
@article{clark2013tcia,
  title={The Cancer Imaging Archive (TCIA): Maintaining and Operating a Public
         Information Repository},
  author={Clark, Kenneth and others},
  journal={Journal of Digital Imaging}, volume={26}, number={6},
  pages={1045--1057}, year={2013}
}
"""


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


class LidcDataError(ValueError):
  """Bad LIDC input. The message names the file and what was expected."""


class LidcNotPreparedError(FileNotFoundError):
  """`load_source` was called before the data set was prepared."""


def data_error(where: str, problem: str, expected: str) -> LidcDataError:
  """`LidcDataError` worded `<where>: <problem>; expected <expected>`."""
  return LidcDataError(f'{where}: {problem}; expected {expected}')


def find_data_error(exc: BaseException) -> LidcDataError | None:
  """The `LidcDataError` in `exc`'s cause / context chain, if any.

  TFDS may wrap an exception raised while generating examples; `prepare` uses
  this to surface the original file name and reason.
  """
  seen = set()
  todo = [exc]
  while todo:
    e = todo.pop()
    if e is None or id(e) in seen:
      continue
    seen.add(id(e))
    if isinstance(e, LidcDataError):
      return e
    todo.extend([e.__cause__, e.__context__])
    todo.extend(getattr(e, 'exceptions', ()) or ())  # ExceptionGroup
  return None


# --------------------------------------------------------------------------
# File trees: a folder or an archive, read the same way.
# --------------------------------------------------------------------------


def is_archive(path: str | os.PathLike[str]) -> bool:
  return str(path).lower().endswith(_ARCHIVE_SUFFIXES)


def strip_archive_suffix(name: str) -> str:
  lower = name.lower()
  for suffix in _ARCHIVE_SUFFIXES:
    if lower.endswith(suffix):
      return name[: -len(suffix)]
  return name


class FileTree(abc.ABC):
  """Regular files under a root, by relative POSIX path (sorted)."""

  root: Path
  files: list[str]

  @abc.abstractmethod
  def read(self, rel: str) -> bytes:
    """The bytes of the file at `rel` (one of `files`)."""

  @abc.abstractmethod
  def where(self, rel: str) -> str:
    """How to name `rel` (which may not exist) in an error message."""

  def release(self) -> None:
    """Drops any cached file contents."""


class DirTree(FileTree):
  """An extracted folder."""

  def __init__(self, root: str | os.PathLike[str]):
    self.root = Path(root)
    files = []
    for dirpath, dirnames, filenames in os.walk(self.root):
      dirnames.sort()
      rel_dir = os.path.relpath(dirpath, self.root)
      for name in filenames:
        rel = name if rel_dir == '.' else f'{rel_dir}/{name}'
        files.append(rel.replace(os.sep, '/'))
    self.files = sorted(files)

  def read(self, rel: str) -> bytes:
    try:
      with open(self.root / rel, 'rb') as f:
        return f.read()
    except OSError as exc:
      raise data_error(self.where(rel), f'cannot read the file ({exc})',
                       'a readable file') from exc

  def where(self, rel: str) -> str:
    return str(self.root / rel)


class ArchiveTree(FileTree):
  """A tar archive (any compression `tarfile` reads), read sequentially.

  The names are listed when it is opened; the contents of the files `keep`
  accepts are read into memory on first `read` (or at once with
  `preload=True`), in one pass over the archive, until `release`.
  """

  def __init__(self, path: str | os.PathLike[str],
               keep: Callable[[str], bool] = lambda name: True,
               preload: bool = False):
    self.root = Path(path)
    self._keep = keep
    self._data: dict[str, bytes] | None = None
    names = self._scan(with_data=preload)
    self.files = sorted(names)

  def _scan(self, with_data: bool) -> list[str]:
    names = []
    data = {} if with_data else None
    try:
      with tarfile.open(self.root, mode='r|*') as tar:
        for member in tar:
          if not member.isfile():
            continue
          name = member.name
          while name.startswith('./'):
            name = name[2:]
          if not self._keep(name):
            continue
          names.append(name)
          if data is not None:
            f = tar.extractfile(member)
            data[name] = f.read() if f is not None else b''
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
      raise data_error(
          str(self.root), f'cannot read the archive ({type(exc).__name__}: '
          f'{exc}); it may be truncated or not a tar archive',
          'a complete .tar.gz / .tgz / .tar archive') from exc
    if data is not None:
      self._data = data
    return names

  def read(self, rel: str) -> bytes:
    if self._data is None:
      self._scan(with_data=True)
    assert self._data is not None
    try:
      return self._data[rel]
    except KeyError:
      raise data_error(self.where(rel), 'no such member in the archive',
                       'the file to be present') from None

  def where(self, rel: str) -> str:
    return f'{self.root}:{rel}'

  def release(self) -> None:
    self._data = None


def is_png_name(name: str) -> bool:
  """A visible .png file (not a hidden / AppleDouble '._x.png' file)."""
  base = name.rsplit('/', 1)[-1]
  return base.lower().endswith('.png') and not base.startswith('.')


# --------------------------------------------------------------------------
# Decoding and checks
# --------------------------------------------------------------------------


def decode_png(data: bytes, where: str) -> np.ndarray:
  """Decodes an 8-bit grayscale PNG to a uint8 [H, W] array.

  Also accepts 1-bit PNGs (as 0/1) and gray RGB(A) / LA PNGs whose colour
  channels are equal. Raises `LidcDataError` naming `where` otherwise.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top

  expected = 'a complete 8-bit grayscale PNG file'
  if not data.startswith(_PNG_SIGNATURE):
    what = 'an empty file' if not data else 'not a PNG file (no PNG signature)'
    raise data_error(where, what, expected)
  try:
    with Image.open(io.BytesIO(data), formats=['PNG']) as img:
      img.load()
      mode = img.mode
      arr = np.asarray(img)
  except Exception as exc:  # PIL raises many types for broken files.
    raise data_error(
        where, f'unreadable or truncated PNG ({type(exc).__name__}: {exc})',
        expected) from exc
  if mode == 'L':
    return np.ascontiguousarray(arr, dtype=np.uint8)
  if mode == '1':
    return arr.astype(np.uint8)
  if mode in ('LA', 'RGB', 'RGBA') and arr.ndim == 3:
    colour = arr[..., :1] if mode == 'LA' else arr[..., :3]
    if (colour == colour[..., :1]).all():
      return np.ascontiguousarray(colour[..., 0], dtype=np.uint8)
    raise data_error(where, f'a colour PNG (mode {mode})', expected)
  raise data_error(where, f'a PNG of mode {mode!r} (dtype {arr.dtype})',
                   expected)


def size_text(shape: Sequence[int]) -> str:
  return ' x '.join(str(int(s)) for s in shape)


def check_size(arr: np.ndarray, size: tuple[int, int], where: str,
               what: str, expected: str) -> None:
  if tuple(arr.shape) != tuple(size):
    raise data_error(where, f'{what} is {size_text(arr.shape)}', expected)


_BINARY_VALUES = np.zeros(256, bool)
_BINARY_VALUES[[0, 1, 255]] = True


def binarize_mask(mask: np.ndarray, where: str) -> np.ndarray:
  """uint8 mask with values in {0, 1, 255} -> uint8 0/1 (255 -> 1)."""
  counts = np.bincount(mask.reshape(-1), minlength=256)
  bad = np.flatnonzero((counts > 0) & ~_BINARY_VALUES)
  if bad.size:
    shown = ', '.join(str(v) for v in bad[:8]) + (', ...' if bad.size > 8 else '')
    raise data_error(where, f'mask has values {shown}',
                     'a binary mask with values 0 and 255 (or 0 and 1) only')
  return (mask != 0).astype(np.uint8)


def count_raters_marking(masks: np.ndarray) -> int:
  """Number of the masks ([4, H, W]) with at least one pixel marked."""
  return int(np.count_nonzero(masks.reshape(masks.shape[0], -1).any(axis=1)))


_NATURAL_RE = re.compile(r'(\d+)')


def natural_key(text: str) -> tuple:
  """Sort key that orders 'slice-2' before 'slice-10'."""
  return tuple(int(p) if p.isdigit() else p
               for p in _NATURAL_RE.split(text))


def center_crop(array: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
  """Centre crop of the last two axes to `size` (int or (h, w))."""
  h, w = (size, size) if isinstance(size, int) else size
  H, W = array.shape[-2:]
  if h > H or w > W:
    raise ValueError(f'cannot centre-crop {H} x {W} to {h} x {w}')
  top, left = (H - h) // 2, (W - w) // 2
  return array[..., top:top + h, left:left + w]


# --------------------------------------------------------------------------
# Patient split
# --------------------------------------------------------------------------


def _round_half_up(x: float) -> int:
  return int(math.floor(x + 0.5))


def split_patients(patients: Iterable[str], where: str = 'the data set'
                   ) -> dict[str, list[str]]:
  """Deterministic patient-level train / validation / test split.

  See `SPLIT_RULE`. Returns each split's sorted patient ids.
  """
  unique = sorted(set(patients))
  n = len(unique)
  if n < 3:
    raise data_error(where, f'only {n} patient(s) found',
                     'at least 3 patients to split by patient into train, '
                     'validation and test')
  order = sorted(unique, key=lambda p: hashlib.sha256(
      f'{SPLIT_SALT}:{p}'.encode('utf-8')).hexdigest())
  n_val = max(1, _round_half_up(SPLIT_FRACTIONS['validation'] * n))
  n_test = max(1, _round_half_up(SPLIT_FRACTIONS['test'] * n))
  n_train = n - n_val - n_test
  return {
      'train': sorted(order[:n_train], key=natural_key),
      'validation': sorted(order[n_train:n_train + n_val], key=natural_key),
      'test': sorted(order[n_train + n_val:], key=natural_key),
  }


# --------------------------------------------------------------------------
# Examples, plans, bad examples
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BadExample:
  """An example that was skipped (`skip_bad_examples=True`)."""
  id: str
  split: str
  reason: str

  def __str__(self) -> str:
    return f'[{self.split}] {self.id}: {self.reason}'


@dataclasses.dataclass
class Candidate:
  """An example found in the source, before it is decoded and checked.

  `load()` returns (image uint8 [H, W], masks uint8 [4, H, W] with values
  0/1) or raises `LidcDataError`; `error` is set instead when the example
  cannot be built at all (a missing annotation file, a bad file name...).
  """
  id: str
  patient: str
  load: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None
  error: LidcDataError | None = None


@dataclasses.dataclass
class SplitPlan:
  """What `LidcBuilder` generates: per split, the candidates in order.

  `before_split` / `after_split` are called around each split's generation
  (e.g. to read or release an archive). `details` goes into the metadata.
  """
  candidates: dict[str, list[Candidate]]
  patients: dict[str, list[str]]
  source: str
  details: dict[str, Any] = dataclasses.field(default_factory=dict)
  before_split: Callable[[str], None] | None = None
  after_split: Callable[[str], None] | None = None


# --------------------------------------------------------------------------
# The builder base class
# --------------------------------------------------------------------------


def example_features(size: tuple[int, int]) -> tfds.features.FeaturesDict:
  """The stored features: the arrays as raw bytes (`Encoding.BYTES`).

  Not the default encoding (an int64 list per pixel in the proto: 3x slower
  to write, 2x the memory) and no zlib: array_record already compresses each
  record (on the LIDC slices, zlib on top saved 5 % of disk for several times
  the write and read time).
  """
  h, w = size
  raw = tfds.features.Encoding.BYTES
  return tfds.features.FeaturesDict({
      'image': tfds.features.Tensor(shape=(h, w), dtype=np.uint8,
                                    encoding=raw),
      'masks': tfds.features.Tensor(shape=(NUM_RATERS, h, w), dtype=np.uint8,
                                    encoding=raw),
      'id': tfds.features.Text(),
      'patient': tfds.features.Text(),
  })


class LidcBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Base of the three LIDC builders (array_record, no TensorFlow needed).

  Subclasses set `FORMAT`, `IMAGE_SIZE`, `LAYOUT`, the TFDS class attributes,
  and implement `plan(source_path) -> SplitPlan`.

  Examples: image uint8 [H, W]; masks uint8 [4, H, W], 0/1; id; patient.
  They are stored in the order planned (shuffling disabled: the input
  pipeline shuffles). The metadata (`builder.info.metadata`) records the
  split rule, each split's patients, the count of examples by number of
  raters who marked something, and the bad examples skipped.
  """

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'First version.'}
  FORMAT: str = ''
  IMAGE_SIZE: tuple[int, int] = (128, 128)
  LAYOUT: str = ''
  DESCRIPTION: str = ''
  HOMEPAGE: str = ''
  # No code folder with checksums / metadata files: these builders download
  # nothing. (TFDS's default `code_path` lookup also needs the
  # `importlib_resources` back-port for builders defined in a package, which
  # is not a dependency here.)
  code_path = None

  def __init__(self, *, manual_path: str | os.PathLike[str] | None = None,
               skip_bad_examples: bool = False, **kwargs):
    self._manual_path = None if manual_path is None else Path(manual_path)
    self._skip_bad_examples = bool(skip_bad_examples)
    kwargs.setdefault('file_format', 'array_record')
    super().__init__(**kwargs)

  # -- TFDS hooks -----------------------------------------------------------

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=self.DESCRIPTION,
        features=example_features(self.IMAGE_SIZE),
        homepage=self.HOMEPAGE,
        citation=LIDC_CITATION,
        metadata=tfds.core.MetadataDict(),
        disable_shuffling=True,
    )

  def _split_generators(self, dl_manager):
    path = self._manual_path
    if path is None:
      path = Path(os.fspath(dl_manager.manual_dir))
    if not path.exists():
      raise data_error(str(path), 'does not exist', self.LAYOUT)
    plan = self.plan(path)
    self._plan = plan
    self._bad: list[BadExample] = []
    self._stats: dict[str, dict[str, Any]] = {}
    self._update_metadata()
    return {split: self._generate_examples(split, cands)
            for split, cands in plan.candidates.items()}

  def _generate_examples(self, split: str, candidates: list[Candidate]
                         ) -> Iterator[tuple[str, dict[str, Any]]]:
    plan = self._plan
    if plan.before_split is not None:
      plan.before_split(split)
    raters = [0] * (NUM_RATERS + 1)
    patients = set()
    count = 0
    for cand in candidates:
      try:
        if cand.error is not None:
          raise cand.error
        assert cand.load is not None
        image, masks = cand.load()
      except LidcDataError as exc:
        if not self._skip_bad_examples:
          raise
        self._bad.append(BadExample(cand.id, split, str(exc)))
        continue
      raters[count_raters_marking(masks)] += 1
      patients.add(cand.patient)
      count += 1
      yield cand.id, {'image': image, 'masks': masks, 'id': cand.id,
                      'patient': cand.patient}
    if plan.after_split is not None:
      plan.after_split(split)
    if count == 0:
      bad = [b for b in self._bad if b.split == split]
      shown = '; '.join(str(b) for b in bad[:3])
      raise data_error(
          f'{plan.source} (split {split})',
          f'no valid examples: all {len(candidates)} were bad ({shown})',
          'at least one valid example per split')
    self._stats[split] = {
        'num_examples': count,
        'num_patients': len(patients),
        'raters_marking': {str(k): v for k, v in enumerate(raters)},
    }
    self._update_metadata()

  # -- helpers ----------------------------------------------------------------

  def _update_metadata(self) -> None:
    plan = self._plan
    md = self.info.metadata
    md.clear()
    md.update({
        'format': self.FORMAT,
        'source': plan.source,
        'layout': self.LAYOUT,
        'skip_bad_examples': self._skip_bad_examples,
        'split_patients': plan.patients,
        'split_stats': self._stats,
        'num_bad_examples': len(self._bad),
        'bad_examples': [dataclasses.asdict(b) for b in self._bad],
        'details': plan.details,
    })

  @abc.abstractmethod
  def plan(self, path: Path) -> SplitPlan:
    """Finds the examples under `path` and assigns them to splits."""


# --------------------------------------------------------------------------
# Reading back
# --------------------------------------------------------------------------


def _as_str(value: Any) -> str:
  if isinstance(value, bytes):
    return value.decode('utf-8')
  if isinstance(value, np.ndarray):
    return _as_str(value.item())
  return str(value)


class LidcSource:
  """Random-access view of one prepared split.

  `source[i]` -> dict(image=uint8 [H, W], masks=uint8 [4, H, W] (0/1),
  id=str, patient=str). Picklable (for multi-process input pipelines).
  """

  def __init__(self, data_source: Any, fmt: str, split: str, data_dir: str):
    self._source = data_source
    self.format = fmt
    self.split = split
    self.data_dir = data_dir

  def __len__(self) -> int:
    return len(self._source)

  @staticmethod
  def _convert(ex: Mapping[str, Any]) -> dict[str, Any]:
    return {'image': ex['image'], 'masks': ex['masks'],
            'id': _as_str(ex['id']), 'patient': _as_str(ex['patient'])}

  def _check_index(self, index: int) -> int:
    n = len(self)
    index = int(index)
    if index < 0:
      index += n
    if not 0 <= index < n:
      raise IndexError(f'index {index} out of range for {n} examples '
                       f'({self.format}, split {self.split})')
    return index

  def __getitem__(self, index: int) -> dict[str, Any]:
    return self._convert(self._source[self._check_index(index)])

  def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
    idx = [self._check_index(i) for i in indices]
    return [self._convert(ex) for ex in self._source.__getitems__(idx)]

  def __iter__(self) -> Iterator[dict[str, Any]]:
    for i in range(len(self)):
      yield self[i]

  def __repr__(self) -> str:
    return (f'LidcSource(format={self.format!r}, split={self.split!r}, '
            f'num_examples={len(self)}, data_dir={self.data_dir!r})')


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


@dataclasses.dataclass
class PrepareReport:
  """What `prepare` did (or found already prepared)."""
  format: str
  dataset_dir: str
  source: str
  split_sizes: dict[str, int]
  patients: dict[str, int]
  raters_marking: dict[str, dict[int, int]]
  bad_examples: list[BadExample]
  split_patients: dict[str, list[str]]
  details: dict[str, Any]
  seconds: float
  already_prepared: bool
  skip_bad_examples: bool

  @property
  def num_bad(self) -> int:
    return len(self.bad_examples)

  @property
  def bad_example_ids(self) -> list[str]:
    return [b.id for b in self.bad_examples]

  @property
  def num_examples(self) -> int:
    return sum(self.split_sizes.values())

  @property
  def num_patients(self) -> int:
    return sum(self.patients.values())

  @property
  def raters_marking_total(self) -> dict[int, int]:
    total = {k: 0 for k in range(NUM_RATERS + 1)}
    for counts in self.raters_marking.values():
      for k, v in counts.items():
        total[k] += v
    return total

  @classmethod
  def from_builder(cls, builder: LidcBuilder, seconds: float,
                   already_prepared: bool) -> 'PrepareReport':
    md = dict(builder.info.metadata)
    splits = [s for s in SPLITS if s in builder.info.splits]
    stats = md.get('split_stats', {})
    return cls(
        format=md.get('format', builder.FORMAT),
        dataset_dir=str(builder.data_dir),
        source=md.get('source', ''),
        split_sizes={s: int(builder.info.splits[s].num_examples)
                     for s in splits},
        patients={s: int(stats[s]['num_patients']) for s in splits},
        raters_marking={s: {int(k): int(v) for k, v in
                            stats[s]['raters_marking'].items()}
                        for s in splits},
        bad_examples=[BadExample(**b) for b in md.get('bad_examples', [])],
        split_patients=md.get('split_patients', {}),
        details=md.get('details', {}),
        seconds=seconds,
        already_prepared=already_prepared,
        skip_bad_examples=bool(md.get('skip_bad_examples', False)),
    )

  def summary(self, max_bad: int = 20) -> str:
    lines = [
        f'format: {self.format}',
        f'source: {self.source}',
        f'prepared data: {self.dataset_dir}'
        + (' (already prepared; nothing done)' if self.already_prepared else
           f' ({self.seconds:.1f} s)'),
        f'examples: {self.num_examples:,}   patients: {self.num_patients:,}',
        'split          examples  patients   by number of raters who marked '
        'something (0 / 1 / 2 / 3 / 4)',
    ]
    for s in self.split_sizes:
      r = self.raters_marking[s]
      lines.append(f'  {s:<12} {self.split_sizes[s]:>8,}  {self.patients[s]:>8,}'
                   '   ' + ' / '.join(f'{r.get(k, 0):,}'
                                      for k in range(NUM_RATERS + 1)))
    t = self.raters_marking_total
    lines.append(f'  {"total":<12} {self.num_examples:>8,}  '
                 f'{self.num_patients:>8,}   '
                 + ' / '.join(f'{t[k]:,}' for k in range(NUM_RATERS + 1)))
    lines.append('raters marking, all splits: ' + ', '.join(
        f'{k} -> {t[k]:,}' for k in range(NUM_RATERS + 1)))
    for key, value in self.details.items():
      lines.append(f'{key}: {value}')
    lines.append(f'bad examples skipped: {self.num_bad}'
                 + ('' if self.skip_bad_examples or self.num_bad else
                    ' (skip_bad_examples off: any bad example stops prepare)'))
    for b in self.bad_examples[:max_bad]:
      lines.append(f'  {b}')
    if self.num_bad > max_bad:
      lines.append(f'  ... and {self.num_bad - max_bad} more (all in the '
                   'metadata.json of the prepared data)')
    return '\n'.join(lines)

  def __str__(self) -> str:
    return self.summary()
