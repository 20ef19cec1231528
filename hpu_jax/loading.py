"""Loading a trained workdir in one call, for notebooks.

    run = hpu_jax.load('runs/synthetic')           # newest checkpoint
    out = run.sample(run.params, jax.random.key(0), images, num_samples=16, mean='local')
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
  meta: dict                          # The checkpoint's metadata.


def load(workdir: str, which: str = 'latest', step: Optional[int] = None) -> LoadedRun:
  """The config and params of a training workdir: its newest checkpoint
  (`which='latest'`, or a given `step`) or its best by validation GED."""
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
