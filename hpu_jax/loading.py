"""Loading a trained model in one call, for notebooks: from a training workdir
or from a file that `hpu_jax.export` wrote.

    run = hpu_jax.load('runs/synthetic')           # a workdir: its newest checkpoint
    run = hpu_jax.load('synthetic.npz')            # an exported file
    out = run.sample(run.params, jax.random.key(0), images, num_samples=16, mean='local')

A folder is read as a workdir, a file as an export (hpu_jax/export_file.py, which
verifies it); both give the same `LoadedRun`.
"""
import os
from typing import Any, Callable, NamedTuple, Optional

import ml_collections

from hpu_jax import configuration
from hpu_jax import workdir as run_dir
from hpu_jax.model import Model
from hpu_jax.sampling import make_sampler


class LoadedRun(NamedTuple):
  config: ml_collections.ConfigDict   # The resolved config the run trained with.
  params: Any                         # The model's Haiku params.
  model: Model                        # init / forward / sample_many ... transforms.
  sample: Callable                    # The jitted sampler, in the run's compute dtype.
  step: int                           # The checkpoint's step.
  meta: dict                          # The checkpoint's metadata (a file: its meta.json).


def load(path: str, which: str = 'latest', step: Optional[int] = None) -> LoadedRun:
  """The config and params of a training workdir (its newest checkpoint,
  `which='latest'`, or a given `step`, or its best by validation GED), or of
  an exported `.npz` file (which holds one checkpoint: `which` and `step`
  do not apply)."""
  path = os.path.abspath(os.path.expanduser(os.fspath(path)))
  if os.path.isdir(path):
    return load_workdir(path, which, step)
  if os.path.isfile(path):
    return load_file(path, which, step)
  raise FileNotFoundError(f'{path}: no such workdir or file; expected a training workdir '
                          '(config.json and checkpoints/) or an .npz written by '
                          'scripts/export.py.')


def load_workdir(workdir: str, which: str = 'latest', step: Optional[int] = None) -> LoadedRun:
  """A workdir's checkpoint (see `load`)."""
  workdir = os.path.abspath(os.path.expanduser(workdir))
  config = run_dir.load_config(workdir)
  if which == 'best' and not config.train.get('eval_every', 0):
    raise FileNotFoundError(
        f'{workdir} has no best checkpoint: validation was off in its run '
        '(train.eval_every=0), and the best checkpoint is the one with the best '
        "validation GED. Load which='latest' (--which latest) instead.")
  checkpoints = run_dir.open_checkpoints(workdir, which)
  model = configuration.build_model(config.model)
  state, meta = run_dir.restore_state(checkpoints, model, configuration.optimizer(config.train),
                                      int(config.data.image_size), step)
  sample = make_sampler(model, compute_dtype=configuration.compute_dtype(config.model))
  return LoadedRun(config=config, params=state.params['model'], model=model,
                   sample=sample, step=int(state.step), meta=meta)


def load_file(path: str, which: str = 'latest', step: Optional[int] = None) -> LoadedRun:
  """An exported file (hpu_jax/export_file.py), verified."""
  from hpu_jax import export_file
  config, params, meta = export_file.read(path)
  if which != 'latest' or (step is not None and int(step) != meta['step']):
    asked = f'step={step}' if step is not None else f'which={which!r}'
    raise ValueError(f'{path}: {asked}, but an exported file holds one checkpoint '
                     f'(step {meta["step"]}); expected the defaults, or a workdir to choose '
                     'among its checkpoints.')
  model = configuration.build_model(config.model)
  sample = make_sampler(model, compute_dtype=configuration.compute_dtype(config.model))
  return LoadedRun(config=config, params=params, model=model, sample=sample,
                   step=int(meta['step']), meta=meta)
