"""`PrepareReport`: what `prepare` did, read back from the stored metadata.

Split sizes, patients per split, the count of examples by number of raters
who marked something, the bad examples skipped and the format's details;
`summary()` is what `scripts/prepare_data.py` prints.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hpu_jax.data.lidc.images import NUM_RATERS
from hpu_jax.data.lidc.plan import BadExample
from hpu_jax.data.lidc.split import SPLITS
from hpu_jax.data.lidc.tfds_builder import LidcBuilder


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
  def num_raters(self) -> int:
    """Masks per example: 4 for LIDC, K for a folder of K annotators."""
    return max((k for counts in self.raters_marking.values() for k in counts),
               default=NUM_RATERS)

  @property
  def raters_marking_total(self) -> dict[int, int]:
    total = {k: 0 for k in range(self.num_raters + 1)}
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
    columns = range(self.num_raters + 1)
    lines = [
        f'format: {self.format}',
        f'source: {self.source}',
        f'prepared data: {self.dataset_dir}'
        + (' (already prepared; nothing done)' if self.already_prepared else
           f' ({self.seconds:.1f} s)'),
        f'examples: {self.num_examples:,}   patients: {self.num_patients:,}',
        'split          examples  patients   by number of raters who marked '
        'something (' + ' / '.join(str(k) for k in columns) + ')',
    ]
    for s in self.split_sizes:
      r = self.raters_marking[s]
      lines.append(f'  {s:<12} {self.split_sizes[s]:>8,}  {self.patients[s]:>8,}'
                   '   ' + ' / '.join(f'{r.get(k, 0):,}' for k in columns))
    t = self.raters_marking_total
    lines.append(f'  {"total":<12} {self.num_examples:>8,}  '
                 f'{self.num_patients:>8,}   '
                 + ' / '.join(f'{t[k]:,}' for k in columns))
    lines.append('raters marking, all splits: ' + ', '.join(
        f'{k} -> {t[k]:,}' for k in columns))
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
