"""The registry of the four LIDC formats: their names and builders.

`FORMATS` is the one list of format names (each builder's `FORMAT`, e.g.
'lidc_slices', which is also its TFDS name); `BUILDERS` maps each to its
builder class and `IMAGE_SIZES` to the size of its stored images.
`builder_class` looks one up, with an error naming the choices;
`missing_data_message` tells a user who gave no data directory where the
format's files come from.
"""

from __future__ import annotations

from hpu_jax.data.lidc.crops import LidcCrops
from hpu_jax.data.lidc.pickle_file import LidcPickle
from hpu_jax.data.lidc.raw import LidcRaw
from hpu_jax.data.lidc.slices import LidcSlices
from hpu_jax.data.lidc.tfds_builder import LidcBuilder

BUILDERS: dict[str, type[LidcBuilder]] = {
    cls.FORMAT: cls for cls in (LidcSlices, LidcCrops, LidcPickle, LidcRaw)}
FORMATS: tuple[str, ...] = tuple(BUILDERS)
IMAGE_SIZES: dict[str, tuple[int, int]] = {
    fmt: cls.IMAGE_SIZE for fmt, cls in BUILDERS.items()}


def builder_class(fmt: str) -> type[LidcBuilder]:
  """The builder class of `fmt`; ValueError naming the formats if none."""
  try:
    return BUILDERS[fmt]
  except KeyError:
    raise ValueError(f'unknown LIDC format {fmt!r}; expected one of '
                     f'{", ".join(FORMATS)}') from None


def missing_data_message(fmt: str) -> str:
  """Says `--config.data.dir` is empty and where `fmt`'s files come from.

  For a caller asked for a format that is not prepared yet and given no
  directory of downloaded files to prepare it from.
  """
  cls = builder_class(fmt)
  return (f'--config.data.dir is empty: {fmt} is prepared once from its '
          'downloaded files and needs their location, e.g. '
          f'--config.data.dir={cls.EXAMPLE_DIR}. {fmt} reads {cls.ORIGIN}.')
