"""Loading a trained workdir in one call, for notebooks.

    run = hpu_jax.load('runs/synthetic')           # newest checkpoint
    out = run.sample(run.params, jax.random.key(0), images, num_samples=16, mean='local')
"""
import json
import os
from typing import Any, Callable, NamedTuple, Optional

import ml_collections

from hpu_jax import checkpoint, configuration
from hpu_jax.model import Model
from hpu_jax.sampling import make_sampler

WHICH = ('latest', 'best')


class LoadedRun(NamedTuple):
  config: ml_collections.ConfigDict   # The resolved config the run trained with.
  params: Any                         # The model's Haiku params.
  model: Model                        # init / forward / sample_many ... transforms.
  sample: Callable                    # The jitted sampler, in the run's compute dtype.
  step: int                           # The checkpoint's step.
  meta: dict                          # The checkpoint's metadata.


def load_config(workdir: str) -> ml_collections.ConfigDict:
  from hpu_jax.train import CONFIG_FILE
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} not found: {workdir!r} is not a workdir written by '
                            'scripts/train.py (expected config.json and checkpoints/).')
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def load(workdir: str, which: str = 'latest', step: Optional[int] = None) -> LoadedRun:
  """The config and params of a training workdir: its newest checkpoint
  (`which='latest'`, or a given `step`) or its best by validation GED."""
  from hpu_jax.train import abstract_state_tree, tree_to_state
  if which not in WHICH:
    raise ValueError(f'which={which!r}: expected one of {WHICH}.')
  workdir = os.path.abspath(os.path.expanduser(workdir))
  config = load_config(workdir)
  sub = checkpoint.LATEST_DIR if which == 'latest' else checkpoint.BEST_DIR
  if not os.path.isdir(os.path.join(workdir, sub)):
    raise FileNotFoundError(f'{os.path.join(workdir, sub)} not found: no {which} '
                            'checkpoint has been written in this workdir yet.')
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, sub), max_to_keep=None)
  model = configuration.build_model(config.model)
  target = abstract_state_tree(model, configuration.optimizer(config.train),
                               int(config.data.image_size))
  tree, meta = ckpt.restore(target, step)
  state = tree_to_state(tree)
  sample = make_sampler(model, compute_dtype=configuration.compute_dtype(config.model))
  return LoadedRun(config=config, params=state.params['model'], model=model,
                   sample=sample, step=int(state.step), meta=meta)
