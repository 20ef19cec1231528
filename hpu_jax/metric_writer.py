"""Writes scalar metrics to a JSON-lines file and TensorBoard event files.

TensorBoard files come from tensorboardX, which needs no TensorFlow. Only
process 0 writes; other hosts get a writer that does nothing.
"""
import json
import math
import os
import warnings
from typing import Dict, Optional

from hpu_jax.workdir import METRICS_FILE, TENSORBOARD_DIR


def _plain(value):
  value = float(value)
  return value if math.isfinite(value) else str(value)


class MetricWriter:
  """`write(step, {'train/loss': 0.3, ...})` appends one JSON line and one
  TensorBoard scalar per key."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.enabled = enabled
    self._tb = None
    self.path = os.path.join(workdir, METRICS_FILE)
    if enabled:
      os.makedirs(workdir, exist_ok=True)
      from tensorboardX import SummaryWriter  # Deferred: slow to import.
      self._tb = SummaryWriter(os.path.join(workdir, TENSORBOARD_DIR))

  def write(self, step: int, scalars: Dict[str, float]) -> None:
    if not self.enabled:
      return
    record = {'step': int(step)}
    record.update({k: _plain(v) for k, v in scalars.items()})
    with open(self.path, 'a') as f:
      f.write(json.dumps(record) + '\n')
    for key, value in scalars.items():
      self._tb.add_scalar(key, float(value), int(step))
    self._tb.flush()

  def truncate_after(self, step: int) -> None:
    """Drops records past `step` (a resumed run rewrites those steps)."""
    if not self.enabled or not os.path.exists(self.path):
      return
    kept = [r for r in read_metrics('', self.path) if r['step'] <= step]
    tmp = self.path + '.tmp'
    with open(tmp, 'w') as f:
      f.writelines(json.dumps(r) + '\n' for r in kept)
    os.replace(tmp, self.path)

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


def read_metrics(workdir: str, path: Optional[str] = None):
  """The JSON-lines records of a workdir, as a list of dicts. A line that is
  not a whole record (a write torn by a kill) is dropped with a warning."""
  path = path or os.path.join(workdir, METRICS_FILE)
  records = []
  with open(path) as f:
    for number, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        record = json.loads(line)
        if not isinstance(record, dict) or not isinstance(record.get('step'), int):
          raise ValueError('no integer "step"')
      except ValueError as e:
        warnings.warn(f'{path}, line {number}: not a metrics record ({e}); dropped.')
        continue
      records.append(record)
  return records
