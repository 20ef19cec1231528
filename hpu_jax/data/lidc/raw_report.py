"""`RawCounts`: what the raw LIDC-IDRI -> crops step found, kept and filtered.

One counter per thing found and per rule that filters something, per
patient (stored in the patient's done-marker, so a re-run reports the same
totals without reading the data again) and summed over patients. The bad
series skipped with `skip_bad_examples` are listed with their reason.
`summary()` is what `scripts/prepare_data.py` prints after the crops step.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class BadSeries:
  """A series skipped with `skip_bad_examples` (the error says why)."""
  patient: str
  where: str       # the series folder
  reason: str      # the LidcDataError's message

  def __str__(self) -> str:
    return f'{self.where}: {self.reason}'


# Counters summed over patients: (field, what it counts). Found and kept:
_KEPT = (
    ('series', 'CT series read'),
    ('dicom_files', 'DICOM files read'),
    ('readings', 'reading sessions (readers) kept, at most 4 per series'),
    ('outlined_nodules', 'outlined nodules (>= 3 mm), per reader'),
    ('rois', 'outline rois of those (inclusions and exclusions)'),
    ('exclusion_rois', 'of which exclusions (inclusion=FALSE: holes)'),
    ('abnormalities', 'abnormalities (readers\' nodules linked by '
     'overlapping boxes on a slice)'),
    ('crops', 'crops (one per abnormality and slice)'),
)
# Filtered, one counter per rule:
_FILTERED = (
    ('slice_location_mismatch', 'DICOM files: |SliceLocation| differs from '
     '|ImagePositionPatient[2]|'),
    ('slice_location_missing', 'DICOM files without SliceLocation (the rule '
     'cannot pass)'),
    ('rois_on_filtered_slices', 'rois on the slices those rules filtered'),
    ('small_nodules', 'small nodules (< 3 mm, centre only)'),
    ('non_nodules', 'nonNodule marks'),
    ('sessions_dropped', 'reading sessions after the fourth'),
    ('dropped_nodules', 'outlined nodules of those sessions'),
    ('xray_series', 'chest X-ray series (IdriReadMessage XML)'),
    ('series_without_readings', 'series whose XML has no readingSession'),
    ('empty_marks', 'nodule marks on a slice emptied by their exclusions'),
)
COUNTER_NAMES = tuple(name for name, _ in _KEPT + _FILTERED)


@dataclasses.dataclass
class RawCounts:
  """Counts of the crops step; `+=` sums patients."""
  patients: int = 0
  patients_done_before: int = 0   # found done (marker) and not read again
  counters: dict[str, int] = dataclasses.field(
      default_factory=lambda: dict.fromkeys(COUNTER_NAMES, 0))
  bad_series: list[BadSeries] = dataclasses.field(default_factory=list)
  source: str = ''
  crops_dir: str = ''
  seconds: float = 0.0
  split_patients: dict[str, list[str]] = dataclasses.field(
      default_factory=dict)   # all patients found, by split

  def __getitem__(self, name: str) -> int:
    return self.counters[name]

  def add(self, name: str, value: int = 1) -> None:
    self.counters[name] += int(value)

  def __iadd__(self, other: 'RawCounts') -> 'RawCounts':
    self.patients += other.patients
    self.patients_done_before += other.patients_done_before
    for name, value in other.counters.items():
      self.counters[name] = self.counters.get(name, 0) + value
    self.bad_series.extend(other.bad_series)
    return self

  @property
  def patients_processed(self) -> int:
    return self.patients - self.patients_done_before

  @property
  def patients_per_second(self) -> float:
    if self.seconds <= 0 or not self.patients_processed:
      return 0.0
    return self.patients_processed / self.seconds

  def to_json(self) -> dict[str, Any]:
    """The per-patient part (what a done-marker stores)."""
    return {'counters': dict(self.counters),
            'bad_series': [dataclasses.asdict(b) for b in self.bad_series]}

  @classmethod
  def from_json(cls, data: dict[str, Any]) -> 'RawCounts':
    counts = cls()
    for name, value in data.get('counters', {}).items():
      counts.counters[name] = int(value)
    counts.bad_series = [BadSeries(**b) for b in data.get('bad_series', [])]
    return counts

  def metadata(self) -> dict[str, Any]:
    """For the prepared data's metadata.json."""
    return {'patients': self.patients, **self.counters,
            'bad_series': [str(b) for b in self.bad_series]}

  def summary(self, max_bad: int = 20) -> str:
    done = (f' ({self.patients_processed} read now, '
            f'{self.patients_done_before} done before)')
    speed = (f', {self.patients_per_second:.2f} patients/s'
             if self.patients_per_second else '')
    lines = [f'raw LIDC-IDRI: {self.source}',
             f'crops: {self.crops_dir} ({self.seconds:.1f} s{speed})',
             f'patients: {self.patients}{done}']
    lines += [f'  {self.counters[name]:>9,}  {text}' for name, text in _KEPT]
    lines.append('filtered out, by rule:')
    lines += [f'  {self.counters[name]:>9,}  {text}'
              for name, text in _FILTERED]
    lines.append(f'bad series skipped: {len(self.bad_series)}')
    lines += [f'  {b}' for b in self.bad_series[:max_bad]]
    if len(self.bad_series) > max_bad:
      lines.append(f'  ... and {len(self.bad_series) - max_bad} more (all in '
                   'the prepared data\'s metadata.json)')
    return '\n'.join(lines)

  def __str__(self) -> str:
    return self.summary()
