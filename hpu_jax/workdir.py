"""The run directory (workdir): every file a run writes, and how to read it back.

| path | written by | what |
|---|---|---|
| `config.json` | train | the resolved config of the run (`load_config` reads it) |
| `metrics.jsonl` | train | one JSON line per log step: `train/*`, `perf/*`, `validation/*` |
| `tensorboard/` | train | the same scalars as TensorBoard event files |
| `checkpoints/<step>/` | train | the last K checkpoints (orbax); a restart resumes from the newest |
| `best/<step>/` | train | the checkpoint with the best validation GED |
| `report.json` | evaluate | every metric, N, the split, the checkpoint step, the conventions |
| `samples_grid.png` | evaluate | image, annotations, samples and standard-deviation maps |
| `samples_by_mode.gif` | evaluate | samples under full / local-only / global-only sampling |
| `lock` | train | held while a run is live: its pid and host |
| `damaged/` | train | checkpoints that failed to restore, moved aside (never deleted) |

A checkpoint holds the whole `TrainState` as a pytree (`state_to_tree`: the
typed PRNG key stored as its raw data) and a small JSON dict (`meta`: the
step, the best validation GED so far, ...). Orbax writes each checkpoint into
a temporary directory and renames it into place once every file is written,
so a process killed during a save leaves the previous checkpoints untouched
and restorable (the half-written directory is ignored and cleaned up later).
"""
import fcntl
import json
import os
import socket
import time
from typing import Any, Dict, Optional, Tuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp

from hpu_jax.model import Model
from hpu_jax.train_step import TrainState, create_train_state

CONFIG_FILE = 'config.json'
METRICS_FILE = 'metrics.jsonl'
TENSORBOARD_DIR = 'tensorboard'
LATEST_DIR = 'checkpoints'
BEST_DIR = 'best'
REPORT_FILE = 'report.json'
GRID_FILE = 'samples_grid.png'
GIF_FILE = 'samples_by_mode.gif'
LOCK_FILE = 'lock'             # Held by the live run (pid and host inside).
DAMAGED_DIR = 'damaged'        # Checkpoints that failed to restore, moved aside.
WHICH = ('latest', 'best')     # The two checkpoint directories, by name.


def create(workdir: str) -> str:
  """The absolute path of `workdir`, created if needed."""
  workdir = os.path.abspath(os.path.expanduser(workdir))
  os.makedirs(workdir, exist_ok=True)
  return workdir


# ----------------------------------------------------------------------------
# The config.

def save_config(config: ml_collections.ConfigDict, workdir: str) -> str:
  path = os.path.join(workdir, CONFIG_FILE)
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    f.write(config.to_json(indent=2))
  os.replace(tmp, path)
  return path


def load_config(workdir: str) -> ml_collections.ConfigDict:
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} not found: {workdir!r} is not a workdir written by '
                            'scripts/train.py (expected config.json and checkpoints/).')
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


# ----------------------------------------------------------------------------
# The train state as a checkpoint tree.

def state_to_tree(state: TrainState) -> dict:
  """A checkpointable pytree: the typed PRNG key stored as its raw data."""
  return dict(step=state.step, params=state.params, opt_state=state.opt_state,
              geco=state.geco, rng=jax.random.key_data(state.rng))


def tree_to_state(tree: dict) -> TrainState:
  return TrainState(step=jnp.asarray(tree['step']), params=tree['params'],
                    opt_state=tree['opt_state'], geco=tree['geco'],
                    rng=jax.random.wrap_key_data(jnp.asarray(tree['rng'])))


def abstract_state_tree(model: Model, optimizer: optax.GradientTransformation,
                        image_size: int) -> dict:
  """The checkpoint tree's structure, shapes and dtypes, without computing it."""
  return jax.eval_shape(
      lambda key: state_to_tree(
          create_train_state(model, optimizer, key, (1, image_size, image_size, 1))),
      jax.random.key(0))


# ----------------------------------------------------------------------------
# Checkpoints.

def _abstract(tree):
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(np.shape(x), jax.numpy.result_type(x)), tree)


class Checkpointer:
  """A directory of step-numbered checkpoints; keeps the newest `max_to_keep`.

  Restoring needs the tree's structure, given as an abstract tree
  (`jax.eval_shape` output or arrays), so that NamedTuples such as the
  optimiser state come back as they were saved.

  With `async_save`, `save` returns once the state is on the host and orbax
  writes the files in a background thread (a step's files appear under a
  temporary name and are renamed when complete, so an interrupted write
  never looks like a checkpoint). Everything that reads the directory, the
  next save and `close` first wait for the write in flight."""

  def __init__(self, directory: str, max_to_keep: Optional[int] = 3,
               async_save: bool = False):
    self.directory = os.path.abspath(os.fspath(directory))
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, create=True, enable_async_checkpointing=bool(async_save))
    self._async = bool(async_save)
    self._manager = ocp.CheckpointManager(self.directory, options=options,
                                          item_names=('state', 'meta'))

  def wait(self) -> None:
    """Returns when the last save's files are complete on disk."""
    self._manager.wait_until_finished()

  def steps(self):
    self.wait()
    return list(self._manager.all_steps())

  def latest_step(self) -> Optional[int]:
    self.wait()
    return self._manager.latest_step()

  def save(self, step: int, state: Any, meta: Optional[dict] = None) -> None:
    """Writes `state` (host or device arrays) and `meta` under `step`; with
    `async_save` the files are written in the background (see the class)."""
    state = jax.device_get(state)
    meta = dict(meta or {}, step=int(step))
    self._manager.save(int(step), args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True)
    if not self._async:
      self.wait()

  def restore(self, target: Any, step: Optional[int] = None) -> Tuple[Any, dict]:
    """Restores `step` (default: the newest) into the structure of `target`."""
    self.wait()
    step = self.latest_step() if step is None else int(step)
    if step is None:
      raise FileNotFoundError(f'No checkpoint in {self.directory}.')
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(_abstract(target)),
        meta=ocp.args.JsonRestore()))
    return restored['state'], dict(restored['meta'])

  def read_meta(self, step: Optional[int] = None) -> dict:
    self.wait()
    step = self.latest_step() if step is None else int(step)
    if step is None:
      raise FileNotFoundError(f'No checkpoint in {self.directory}.')
    restored = self._manager.restore(step, args=ocp.args.Composite(
        meta=ocp.args.JsonRestore()))
    return dict(restored['meta'])

  def reload(self) -> None:
    """Re-reads the directory (after a step was moved away)."""
    self.wait()
    self._manager.reload()

  def close(self) -> None:
    """Waits for the write in flight, then releases orbax's resources."""
    self.wait()
    self._manager.close()


def latest_checkpoints(workdir: str, max_to_keep: Optional[int] = 3,
                       async_save: bool = False) -> Checkpointer:
  """`checkpoints/`: the last `max_to_keep` (None: all)."""
  return Checkpointer(os.path.join(workdir, LATEST_DIR), max_to_keep, async_save)


def best_checkpoint(workdir: str) -> Checkpointer:
  """`best/`: the one checkpoint with the best validation GED."""
  return Checkpointer(os.path.join(workdir, BEST_DIR), max_to_keep=1)


def open_checkpoints(workdir: str, which: str) -> Checkpointer:
  """The `which` ('latest' or 'best') checkpoints of an existing workdir, for reading."""
  if which not in WHICH:
    raise ValueError(f'which={which!r}: expected one of {WHICH}.')
  directory = os.path.join(workdir, LATEST_DIR if which == 'latest' else BEST_DIR)
  if not os.path.isdir(directory):
    raise FileNotFoundError(f'{directory} not found: no {which} checkpoint has been '
                            'written in this workdir yet.')
  return Checkpointer(directory, max_to_keep=None)


def restore_state(checkpoints: Checkpointer, model: Model,
                  optimizer: optax.GradientTransformation, image_size: int,
                  step: Optional[int] = None) -> Tuple[TrainState, dict]:
  """The TrainState and meta of checkpoint `step` (default: the newest)."""
  tree, meta = checkpoints.restore(abstract_state_tree(model, optimizer, image_size), step)
  return tree_to_state(tree), meta


def restore_newest_good(checkpoints: Checkpointer, model: Model,
                        optimizer: optax.GradientTransformation, image_size: int,
                        warn=print) -> Tuple[Optional[TrainState], dict]:
  """The newest checkpoint that restores, as (state, meta); (None, {}) when
  there is none. A damaged one (a truncated file, a missing item, an empty
  step folder) is moved aside into `damaged/` with a warning naming it, so
  that the run resumes from the newest good one and later saves of that step
  do not collide with it; nothing is deleted. If checkpoints exist but none
  restores, it raises rather than start from scratch."""
  steps = sorted(checkpoints.steps(), reverse=True)
  failures = []
  for step in steps:
    try:
      return restore_state(checkpoints, model, optimizer, image_size, step)
    except Exception as e:  # noqa: BLE001  Orbax raises many kinds on bad files.
      where = os.path.join(checkpoints.directory, str(step))
      failures.append(f'{where}: {type(e).__name__}: {str(e).splitlines()[0][:200]}')
      if jax.process_index() == 0:
        moved = _move_aside(checkpoints.directory, step)
        warn(f'Warning: checkpoint {where} is damaged ({type(e).__name__}); moved to '
             f'{moved}; trying the one before it.')
      checkpoints.reload()
  if failures:
    raise RuntimeError('No checkpoint in this workdir could be restored, so the run '
                       'stops instead of starting from scratch:\n  ' + '\n  '.join(failures))
  return None, {}


def _move_aside(directory: str, step: int) -> str:
  damaged = os.path.join(os.path.dirname(directory), DAMAGED_DIR)
  os.makedirs(damaged, exist_ok=True)
  target = os.path.join(damaged, f'{os.path.basename(directory)}-{step}-{int(time.time())}')
  os.replace(os.path.join(directory, str(step)), target)
  return target


# ----------------------------------------------------------------------------
# Resuming with another config.

# Fields whose change makes a checkpoint unusable (shapes or meaning of the
# parameters); any other change is allowed on resume and reported.
ARCHITECTURE_FIELDS = ('model.num_classes', 'model.latent_dims', 'model.channels_per_block',
                       'model.down_channels_per_block', 'model.convs_per_block',
                       'model.blocks_per_level', 'model.prior_components')


def _flatten(tree: dict, prefix: str = '') -> dict:
  flat = {}
  for key, value in tree.items():
    name = f'{prefix}{key}'
    if isinstance(value, dict):
      flat.update(_flatten(value, name + '.'))
    else:
      flat[name] = tuple(value) if isinstance(value, list) else value
  return flat


def config_changes(saved: ml_collections.ConfigDict,
                   current: ml_collections.ConfigDict) -> Dict[str, Tuple[Any, Any]]:
  """{field: (value in the workdir, value now)} for every field that differs."""
  old, new = _flatten(saved.to_dict()), _flatten(current.to_dict())
  # Older config.json files lack these.
  defaults = {'model.prior_components': 1, 'eval.temperature': (1.0,)}
  changes = {}
  for name in sorted(set(old) | set(new)):
    a, b = old.get(name, defaults.get(name)), new.get(name, defaults.get(name))
    if a != b:
      changes[name] = (a, b)
  return changes


def check_resume_config(workdir: str, config: ml_collections.ConfigDict) -> Dict[str, Tuple[Any, Any]]:
  """Compares `config` with the workdir's config.json (if any): raises
  ValueError naming every architecture field that differs, before anything
  is written; returns the other changes (allowed on resume)."""
  if not os.path.exists(os.path.join(workdir, CONFIG_FILE)):
    return {}
  changes = config_changes(load_config(workdir), config)
  bad = {k: v for k, v in changes.items() if k in ARCHITECTURE_FIELDS}
  if bad:
    lines = '\n  '.join(f'{k}: {a!r} in the workdir, {b!r} now' for k, (a, b) in bad.items())
    raise ValueError(f'{workdir} holds a run of another architecture; its checkpoints '
                     f'cannot be resumed with this config:\n  {lines}\nUse a new '
                     '--workdir, or the workdir\'s own values.')
  return changes


# ----------------------------------------------------------------------------
# One live run per workdir.

class WorkdirLock:
  """An exclusive lock on a workdir (`lock`, holding the holder's pid and
  host), taken with flock so that the kernel releases it when the holder
  dies: the lock of a killed run is stale and simply taken over."""

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, LOCK_FILE)
    self._fd = None

  def acquire(self) -> 'WorkdirLock':
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      holder = os.read(fd, 4096).decode(errors='replace').strip() or 'unknown'
      os.close(fd)
      raise RuntimeError(f'{os.path.dirname(self.path)} is in use by a live run ({holder}); '
                         'wait for it to end or use another --workdir.') from None
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps({'pid': os.getpid(), 'host': socket.gethostname()}).encode())
    os.fsync(fd)
    self._fd = fd
    return self

  def release(self) -> None:
    if self._fd is not None:
      fcntl.flock(self._fd, fcntl.LOCK_UN)
      os.close(self._fd)
      self._fd = None

  def __enter__(self):
    return self.acquire()

  def __exit__(self, *exc):
    self.release()
