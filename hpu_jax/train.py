"""The training loop: pmapped train step, logging, validation, checkpoints.

    state = train(config, workdir)          # resumes from workdir if it can
    report = train_and_evaluate(config, workdir)

Everything the run depends on lives in the TrainState (params, GECO state,
optimiser state, step, rng) and in the config; the input stream is a pure
function of (seed, step). A run killed at any point and restarted with the
same command resumes from the newest checkpoint and produces the same
parameters as an uninterrupted run.

Multi-host: set `train.distributed=True` and start the same command on every
host (with the coordinator set through the usual JAX_COORDINATOR_ADDRESS,
JAX_NUM_PROCESSES, JAX_PROCESS_ID environment variables, or a cluster JAX
detects); `jax.distributed.initialize()` runs first, each host reads its own
shard of every global batch, and only process 0 writes logs and checkpoints.
"""
import json
import os
import time
from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from hpu_jax import checkpoint, configuration
from hpu_jax import evaluate as evaluation
from hpu_jax.data import pipeline
from hpu_jax.metric_writer import MetricWriter
from hpu_jax.train_step import TrainState, create_train_state, make_train_step

CONFIG_FILE = 'config.json'
AXIS = 'batch'


class NonFiniteLossError(FloatingPointError):
  """A loss term became NaN or inf; the newest checkpoint is still good."""


def state_to_tree(state: TrainState) -> dict:
  """A checkpointable pytree: the typed PRNG key stored as its raw data."""
  return dict(step=state.step, params=state.params, opt_state=state.opt_state,
              geco=state.geco, rng=jax.random.key_data(state.rng))


def tree_to_state(tree: dict) -> TrainState:
  return TrainState(step=jnp.asarray(tree['step']), params=tree['params'],
                    opt_state=tree['opt_state'], geco=tree['geco'],
                    rng=jax.random.wrap_key_data(jnp.asarray(tree['rng'])))


def abstract_state_tree(model, optimizer, image_size: int) -> dict:
  """The checkpoint tree's structure, shapes and dtypes, without computing it."""
  return jax.eval_shape(
      lambda key: state_to_tree(
          create_train_state(model, optimizer, key, (1, image_size, image_size, 1))),
      jax.random.key(0))


def save_config(config, workdir: str) -> None:
  with open(os.path.join(workdir, CONFIG_FILE), 'w') as f:
    f.write(config.to_json(indent=2))


def replicate(tree, devices):
  """One copy per device along a new leading axis, placed as pmap places its
  outputs (so the first step compiles for the same input layout as the rest)."""
  mesh = jax.sharding.Mesh(np.asarray(devices), (AXIS,))
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(AXIS))
  n = len(devices)
  return jax.device_put(
      jax.tree.map(lambda x: jnp.broadcast_to(x, (n,) + x.shape), tree), sharding)


def _unreplicate(tree):
  return jax.tree.map(lambda x: x[0], tree)


def check_finite(step: int, metrics: dict, last_good: Optional[int], ckpt_dir: str) -> None:
  for name, value in metrics.items():
    if not np.all(np.isfinite(value)):
      raise NonFiniteLossError(
          f'step {step}: {name} = {value} is not finite; training stopped. The '
          f'newest good checkpoint is step {last_good} in {ckpt_dir}.')


class _PendingMetrics:
  """Per-step device metrics kept on the device until the next read-back."""

  def __init__(self):
    self.items = []

  def add(self, step: int, metrics) -> None:
    self.items.append((step, metrics))

  def read(self, last_good, ckpt_dir):
    """Reads back, checks every step's terms for NaN / inf, returns the means."""
    if not self.items:
      return {}
    steps, device_metrics = zip(*self.items)
    host = jax.device_get(list(device_metrics))
    self.items = []
    per_step = [{k: float(np.asarray(v)[0]) for k, v in m.items()} for m in host]
    for step, metrics in zip(steps, per_step):
      check_finite(step, metrics, last_good, ckpt_dir)
    return {k: float(np.mean([m[k] for m in per_step])) for k in per_step[0]}


class TrainResult(NamedTuple):
  state: TrainState          # Final state (on the host, unreplicated).
  workdir: str
  best_step: Optional[int]   # Step of the best validation GED, if evaluated.


def train(config, workdir: str,
          on_checkpoint: Optional[Callable[[int], None]] = None) -> TrainResult:
  """Trains to config.train.num_steps (or until config.train.time_limit_minutes
  has passed), resuming from the newest checkpoint in `workdir` if there is
  one. `on_checkpoint(step)` runs after each save."""
  if config.train.distributed:
    jax.distributed.initialize()
  devices = jax.local_devices()
  host_index, host_count = jax.process_index(), jax.process_count()
  configuration.validate(config, len(devices), host_count)
  is_chief = host_index == 0
  workdir = os.path.abspath(os.path.expanduser(workdir))
  os.makedirs(workdir, exist_ok=True)

  tc = config.train
  image_size = int(config.data.image_size)
  model = configuration.build_model(config.model)
  optimizer = configuration.optimizer(tc)
  loss_cfg = configuration.loss_config(config.loss)
  dtype = configuration.compute_dtype(config.model)
  batches = pipeline.train_batches(
      configuration.data_source(config.data, 'train'),
      batch_size=int(tc.batch_size), num_devices=len(devices), image_size=image_size,
      seed=int(tc.seed), augment=configuration.augment(config.data),
      host_index=host_index, host_count=host_count)
  validation = None
  if tc.eval_every:
    validation = configuration.data_source(config.data, 'validation')

  latest = checkpoint.latest(workdir, int(tc.keep_checkpoints))
  best = checkpoint.best(workdir)
  writer = MetricWriter(workdir, enabled=is_chief)
  if is_chief:
    save_config(config, workdir)

  start = latest.latest_step()
  best_ged = np.inf
  if start is None:
    state = create_train_state(model, optimizer, jax.random.key(int(tc.seed)),
                               (1, image_size, image_size, 1))
    start = 0
  else:
    target = abstract_state_tree(model, optimizer, image_size)
    tree, meta = latest.restore(target, start)
    state = tree_to_state(tree)
    best_ged = float(meta.get('best_validation_ged') or np.inf)
    writer.truncate_after(start)
    print(f'Resumed from step {start} in {latest.directory}.')

  p_step = jax.pmap(make_train_step(model, optimizer, loss_cfg, axis_name=AXIS,
                                    compute_dtype=dtype),
                    axis_name=AXIS, donate_argnums=(0,))
  rstate = replicate(state, devices)
  del state
  sampler = None
  pending = _PendingMetrics()
  num_steps = int(tc.num_steps)
  examples_per_step = int(tc.batch_size)
  best_step = best.latest_step()

  def checkpoint_meta():
    return {'best_validation_ged': None if not np.isfinite(best_ged) else best_ged}

  from tqdm import tqdm
  progress = tqdm(total=num_steps, initial=start, unit='step', disable=not is_chief,
                  dynamic_ncols=True, mininterval=2.0, desc='train')
  interval_start, interval_steps = time.perf_counter(), 0
  time_limit_s = 60.0 * float(tc.get('time_limit_minutes', 0.0))
  deadline = time.monotonic() + time_limit_s if time_limit_s > 0 else None
  stream = batches.iterate(start, num_threads=int(config.data.get('num_threads', 2)))
  try:
    for step in range(start, num_steps):
      batch = next(stream)
      rstate, metrics = p_step(rstate, batch.images, batch.labels)
      done = step + 1
      pending.add(done, metrics)
      interval_steps += 1
      progress.update(1)
      out_of_time = deadline is not None and time.monotonic() >= deadline
      at_end = done == num_steps or out_of_time
      log_now = done % int(tc.log_every) == 0 or at_end
      save_now = done % int(tc.checkpoint_every) == 0 or at_end
      eval_now = bool(tc.eval_every) and (done % int(tc.eval_every) == 0 or at_end)
      if not (log_now or save_now or eval_now):
        continue
      means = pending.read(latest.latest_step(), latest.directory)
      elapsed = time.perf_counter() - interval_start
      steps_per_s = interval_steps / max(elapsed, 1e-9)
      scalars = {f'train/{k}': v for k, v in means.items()}
      scalars.update({'perf/steps_per_s': steps_per_s,
                      'perf/examples_per_s': steps_per_s * examples_per_step})
      progress.set_postfix(loss=f"{means.get('loss', float('nan')):.4g}",
                           ex_per_s=f'{steps_per_s * examples_per_step:.1f}')
      if eval_now:
        if sampler is None:
          from hpu_jax.sampling import make_sampler
          sampler = make_sampler(model, compute_dtype=dtype)
        params = jax.device_get(_unreplicate(rstate.params))['model']
        val = evaluation.quick_validation(
            sampler, params, validation, image_size=image_size,
            num_samples=int(tc.eval_num_samples),
            num_examples=int(tc.eval_num_examples) or None,
            batch_size=int(config.eval.batch_size), seed=int(tc.seed))
        scalars.update({f'validation/{k}': v for k, v in val.items()})
        ged_key = f'ged{int(tc.eval_num_samples)}'
        if is_chief and val[ged_key] < best_ged:
          best_ged = val[ged_key]
          best.save(done, state_to_tree(_unreplicate(rstate)),
                    dict(checkpoint_meta(), validation=val))
          best_step = done
      writer.write(done, scalars)
      if save_now and is_chief:
        latest.save(done, state_to_tree(_unreplicate(rstate)), checkpoint_meta())
        if on_checkpoint is not None:
          on_checkpoint(done)
      interval_start, interval_steps = time.perf_counter(), 0
      if out_of_time and done < num_steps:
        if is_chief:
          print(f'train.time_limit_minutes={tc.time_limit_minutes} reached at step {done} '
                f'of {num_steps}; checkpoint saved, stopping here.', flush=True)
        break
  finally:
    progress.close()
    writer.close()
  final = jax.device_get(_unreplicate(rstate))
  return TrainResult(state=final, workdir=workdir, best_step=best_step)


def train_and_evaluate(config, workdir: str) -> Optional[dict]:
  """Trains, then (if config.eval.at_end) evaluates the final parameters on
  config.eval.split, writing report.json and the pictures into the workdir."""
  result = train(config, workdir)
  if not config.eval.at_end or jax.process_index() != 0:
    return None
  return evaluation.evaluate_config(config, result.state.params['model'],
                                    workdir=result.workdir,
                                    step=int(result.state.step))
