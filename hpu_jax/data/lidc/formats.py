"""The registry of the prepared formats: the four LIDC formats and `folder`.

`BUILDERS` maps each format's name (its builder's `FORMAT`, e.g.
'lidc_slices', which is also its TFDS name) to its builder class;
`PREPARED_FORMATS` lists them all (the names `prepare` and `load_source`
take, and `data.name` accepts). `FORMATS` is the one list of the LIDC
formats (scripts/prepare_data.py's `--format`), and `IMAGE_SIZES` maps each
to the size of its stored images; `folder` is a user's own data, prepared
per folder on first use, its size found from its files.
`builder_class` looks one up, with an error naming the choices;
`prepared_location` says where a format is prepared; `missing_data_message`
tells a user who gave no data directory where the format's files come from.
"""

from __future__ import annotations

from typing import Any

from hpu_jax.data.lidc.crops import LidcCrops
from hpu_jax.data.lidc.folder import Folder
from hpu_jax.data.lidc.pickle_file import LidcPickle
from hpu_jax.data.lidc.raw import LidcRaw
from hpu_jax.data.lidc.slices import LidcSlices
from hpu_jax.data.lidc.tfds_builder import LidcBuilder

BUILDERS: dict[str, type[LidcBuilder]] = {
    cls.FORMAT: cls for cls in (LidcSlices, LidcCrops, LidcPickle, LidcRaw, Folder)}
PREPARED_FORMATS: tuple[str, ...] = tuple(BUILDERS)
FORMATS: tuple[str, ...] = tuple(f for f in BUILDERS if f != Folder.FORMAT)
IMAGE_SIZES: dict[str, tuple[int, int]] = {
    fmt: BUILDERS[fmt].IMAGE_SIZE for fmt in FORMATS}


def builder_class(fmt: str) -> type[LidcBuilder]:
  """The builder class of `fmt`; ValueError naming the formats if none."""
  try:
    return BUILDERS[fmt]
  except KeyError:
    raise ValueError(f'unknown LIDC format {fmt!r}; expected one of '
                     f'{", ".join(PREPARED_FORMATS)}') from None


def missing_data_message(fmt: str) -> str:
  """Says `--config.data.dir` is empty and where `fmt`'s files come from.

  For a caller asked for a format that is not prepared yet and given no
  directory of downloaded files to prepare it from.
  """
  cls = builder_class(fmt)
  return (f'--config.data.dir is empty: {fmt} is prepared once from its '
          'downloaded files and needs their location, e.g. '
          f'--config.data.dir={cls.EXAMPLE_DIR}. {fmt} reads {cls.ORIGIN}.')


def prepared_location(fmt: str, prepared_dir: str, source_dir: str = '',
                      options: dict[str, Any] | None = None) -> str:
  """Where `fmt` is prepared and read: `prepared_dir` itself for the LIDC
  formats (one data set each); for `folder`, a directory of its own under it
  for each source folder and options (see folder.prepared_location)."""
  locate = getattr(builder_class(fmt), 'prepared_location', None)
  if locate is None:
    return prepared_dir
  return locate(prepared_dir, source_dir, dict(options or {}))
