"""File access for the LIDC formats: a folder or a tar archive, read alike.

`FileTree` is the small interface each format's parser works on: the regular
files under a root by relative POSIX path, `read(rel)` and `where(rel)` (how
to name a file in an error message). `DirTree` is an extracted folder,
`ArchiveTree` a tar archive (`.tar.gz`, `.tgz`, `.tar`, ...; any compression
`tarfile` reads). Also: recognising archives and PNG names, and
`natural_key`, the sort order of file names and ids ('slice-2' before
'slice-10').
"""

from __future__ import annotations

import abc
import os
import re
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path

from hpu_jax.data.lidc.errors import data_error

ARCHIVE_SUFFIXES = ('.tar.gz', '.tgz', '.tar', '.tar.bz2', '.tbz2', '.tar.xz',
                    '.txz')


def is_archive(path: str | os.PathLike[str]) -> bool:
  return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def strip_archive_suffix(name: str) -> str:
  lower = name.lower()
  for suffix in ARCHIVE_SUFFIXES:
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


_NATURAL_RE = re.compile(r'(\d+)')


def natural_key(text: str) -> tuple:
  """Sort key that orders 'slice-2' before 'slice-10'."""
  return tuple(int(p) if p.isdigit() else p
               for p in _NATURAL_RE.split(text))
