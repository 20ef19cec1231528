"""Checkpoints: save, keep the last K, restore the newest, through orbax.

Orbax writes each checkpoint into a temporary directory and renames it into
place only once every file is written, so a process killed during a save
leaves the previous checkpoints untouched and restorable (the half-written
temporary directory is ignored and later cleaned up).

A checkpoint holds a pytree (`state`, any structure of arrays) and a small
JSON dict (`meta`: the step, metrics, anything a reader needs). Restoring
needs the tree's structure, given as an abstract tree (`jax.eval_shape`
output or arrays), so that NamedTuples such as the optimiser state come back
as they were saved.
"""
import os
from typing import Any, Optional, Tuple

import jax
import numpy as np
import orbax.checkpoint as ocp

LATEST_DIR = 'checkpoints'   # The last K checkpoints, inside the workdir.
BEST_DIR = 'best'            # The best checkpoint by a validation metric.


def _abstract(tree):
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(np.shape(x), jax.numpy.result_type(x)), tree)


class Checkpointer:
  """A directory of step-numbered checkpoints; keeps the newest `max_to_keep`."""

  def __init__(self, directory: str, max_to_keep: Optional[int] = 3):
    self.directory = os.path.abspath(os.fspath(directory))
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False)
    self._manager = ocp.CheckpointManager(self.directory, options=options,
                                          item_names=('state', 'meta'))

  def steps(self):
    return list(self._manager.all_steps())

  def latest_step(self) -> Optional[int]:
    return self._manager.latest_step()

  def save(self, step: int, state: Any, meta: Optional[dict] = None) -> None:
    """Writes `state` (host or device arrays) and `meta` under `step`."""
    state = jax.device_get(state)
    meta = dict(meta or {}, step=int(step))
    self._manager.save(int(step), args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True)
    self._manager.wait_until_finished()

  def restore(self, target: Any, step: Optional[int] = None) -> Tuple[Any, dict]:
    """Restores `step` (default: the newest) into the structure of `target`."""
    step = self.latest_step() if step is None else int(step)
    if step is None:
      raise FileNotFoundError(f'No checkpoint in {self.directory}.')
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(_abstract(target)),
        meta=ocp.args.JsonRestore()))
    return restored['state'], dict(restored['meta'])

  def read_meta(self, step: Optional[int] = None) -> dict:
    step = self.latest_step() if step is None else int(step)
    if step is None:
      raise FileNotFoundError(f'No checkpoint in {self.directory}.')
    restored = self._manager.restore(step, args=ocp.args.Composite(
        meta=ocp.args.JsonRestore()))
    return dict(restored['meta'])

  def close(self) -> None:
    self._manager.close()


def latest(workdir: str, max_to_keep: Optional[int] = 3) -> Checkpointer:
  return Checkpointer(os.path.join(workdir, LATEST_DIR), max_to_keep)


def best(workdir: str) -> Checkpointer:
  return Checkpointer(os.path.join(workdir, BEST_DIR), max_to_keep=1)
