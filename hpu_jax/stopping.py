"""When a run stops before train.num_steps: a wall-clock limit
(`train.time_limit_minutes`) and the signals of a user or a scheduler
(Ctrl-C, SIGTERM). The loop in hpu_jax/train.py asks both after each step and
then saves the step reached before it stops.
"""
import signal
import threading
import time
from typing import Optional

import jax
import numpy as np


class Deadline:
  """`passed()` once `minutes` of wall-clock time have gone (never if 0)."""

  def __init__(self, minutes: float):
    self.at = time.monotonic() + 60.0 * minutes if minutes > 0 else None

  def passed(self) -> bool:
    return self.at is not None and time.monotonic() >= self.at


class StopOnSignal:
  """Ctrl-C (SIGINT) and SIGTERM (a scheduler's preemption) ask the loop to
  finish the step in flight, save a checkpoint there and stop; `reraise()`
  then ends the process as the signal would have (KeyboardInterrupt; exit
  status 143 for SIGTERM). With several processes the request is shared at
  the next log step (every process must join the same save)."""

  SIGNALS = (signal.SIGINT, signal.SIGTERM)

  def __init__(self):
    self.requested: Optional[int] = None
    self._previous = {}

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for sig in self.SIGNALS:
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    if self.requested is not None and signum == signal.SIGINT:
      raise KeyboardInterrupt   # A second Ctrl-C: stop now.
    self.requested = signum

  def now(self, done: int, log_every: int, num_steps: int) -> bool:
    """Whether to stop after step `done` (the same answer on every process)."""
    if jax.process_count() == 1:
      return self.requested is not None
    if done % log_every and done != num_steps:
      return False
    from jax.experimental import multihost_utils
    flags = multihost_utils.process_allgather(np.int32(self.requested or 0))
    self.requested = self.requested or (int(np.max(flags)) or None)
    return self.requested is not None

  def describe(self) -> str:
    return f'{signal.Signals(self.requested).name} received'

  def reraise(self) -> None:
    if self.requested == signal.SIGINT:
      raise KeyboardInterrupt
    if self.requested == signal.SIGTERM:
      raise SystemExit(128 + signal.SIGTERM)
