"""Random access to one prepared split, without TensorFlow at run time.

`LidcSource` wraps the TFDS array_record data source of a split:
`source[i]` -> dict(image=uint8 [H, W], masks=uint8 [4, H, W] (0/1), id=str,
patient=str); `__getitems__` for batches; picklable, for multi-process
input pipelines. `lidc.load_source` makes one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np


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
