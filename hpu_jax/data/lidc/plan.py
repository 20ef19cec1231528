"""What a format's parser hands the builder: the examples found, per split.

A format's `plan(path)` returns a `SplitPlan`: per split, the `Candidate`s
(an id, a patient and a `load()` that decodes and checks the example, or the
error that makes it unusable) in the order they are stored. A `BadExample`
is one that was skipped with `skip_bad_examples=True`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from hpu_jax.data.lidc.errors import LidcDataError


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
