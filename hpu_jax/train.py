"""The training loop: pmapped train step, logging, validation, checkpoints.

    result = train(config, workdir)         # resumes from workdir if it can
    report = train_and_evaluate(config, workdir)

Everything the run depends on lives in the TrainState (params, GECO state,
optimiser state, step, rng) and in the config; the input stream is a pure
function of (seed, step). A run killed at any point and restarted with the
same command resumes from the newest checkpoint and produces the same
parameters as an uninterrupted run. What a run writes, and where, is
hpu_jax/workdir.py.

Several processes (one per machine): `train.distributed=True` with
`train.coordinator_address`, `num_processes`, `process_id` (or the JAX_*
environment, or a cluster JAX detects); `jax.distributed.initialize` runs
first, each process reads its block of every global batch, every process
joins the checkpoint saves, and only process 0 writes logs, the config and
the report (docs/training.md).
"""
import time
from typing import Callable, NamedTuple, Optional, Tuple, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax

from hpu_jax import compile_cache, configuration
from hpu_jax import evaluate as evaluation
from hpu_jax import workdir as run_dir
from hpu_jax.configuration import LoopSettings
from hpu_jax.data import device_batches, pipeline
from hpu_jax.losses import LossConfig
from hpu_jax.metric_writer import MetricWriter
from hpu_jax.model import Model
from hpu_jax.sampling import make_sampler
from hpu_jax.stopping import Deadline, StopOnSignal
from hpu_jax.train_step import TrainState, create_train_state, make_train_step

AXIS = 'batch'


class NonFiniteLossError(FloatingPointError):
  """A loss term became NaN or inf; the newest checkpoint is still good."""


class TrainResult(NamedTuple):
  state: TrainState          # Final state (on the host, unreplicated).
  workdir: str
  best_step: Optional[int]   # Step of the best validation GED, if evaluated.


def train(config, workdir: str,
          on_checkpoint: Optional[Callable[[int], None]] = None) -> TrainResult:
  """Trains to config.train.num_steps (or until config.train.time_limit_minutes
  has passed), resuming from the newest checkpoint in `workdir` if there is
  one. `on_checkpoint(step)` runs after each save. With
  `train.compilation_cache_dir` set, compiled programs (and on GPU, XLA's
  autotuning results) are loaded from and saved to that directory
  (hpu_jax/compile_cache.py); it is turned on first, before any compile,
  and so are `train.cpu_convolutions` (hpu_jax/xla_cpu.py) and
  `train.host_malloc` (hpu_jax/host_memory.py)."""
  configuration.configure_cpu_host(config.train)  # before JAX starts its backend.
  cache_dir = config.train.get('compilation_cache_dir', '')
  if cache_dir:
    compile_cache.enable(cache_dir)
  if config.train.distributed:
    jax.distributed.initialize(**configuration.distributed_kwargs(config.train))
  devices = jax.local_devices()
  configuration.validate(config, len(devices), jax.process_count())
  is_chief = jax.process_index() == 0
  run = build(config, devices)      # Fails here, before anything is written.
  loop = run.loop
  workdir = run_dir.create(workdir)
  lock = run_dir.WorkdirLock(workdir).acquire() if is_chief else None
  writer = checkpoints = None
  try:
    changes = run_dir.check_resume_config(workdir, config)
    # Saved in the background: the next steps run while orbax writes.
    checkpoints = run_dir.latest_checkpoints(workdir, loop.keep_checkpoints, async_save=True)
    validator = run.validation and Validator(
        make_sampler(run.model, compute_dtype=run.dtype), run.validation, run.image_size,
        loop, run.eval_batch_size, run_dir.best_checkpoint(workdir))
    writer = MetricWriter(workdir, enabled=is_chief)
    state, start = init_or_restore(checkpoints, run, validator, writer, changes)
    if is_chief:   # Only once the checkpoint restored: a failed start keeps the old one.
      run_dir.save_config(config, workdir)
    with StopOnSignal() as stop:
      state = _loop(run, state, start, devices, checkpoints, validator, writer, stop,
                    on_checkpoint)
  finally:
    if checkpoints is not None:
      checkpoints.close()   # The last save's files complete before anything else.
    if writer is not None:
      writer.close()
    if lock is not None:
      lock.release()
  if cache_dir:
    _say(compile_cache.summary())
  stop.reraise()   # Ctrl-C and SIGTERM end the process as usual, after the save.
  return TrainResult(state=state, workdir=workdir,
                     best_step=validator.best_step if validator else None)


def _loop(run: 'Built', state: TrainState, start: int, devices, checkpoints, validator,
          writer: MetricWriter, stop: StopOnSignal, on_checkpoint) -> TrainState:
  """Steps `start` .. train.num_steps; returns the final state on the host."""
  loop, is_chief = run.loop, jax.process_index() == 0
  p_step = jax.pmap(run.batches.wrap(make_train_step(run.model, run.optimizer, run.loss,
                                                     axis_name=AXIS, compute_dtype=run.dtype)),
                    axis_name=AXIS, donate_argnums=(0,))
  rstate = replicate(state, devices)
  del state
  pending, meter = PendingMetrics(), Throughput(loop.batch_size)
  clock = Deadline(loop.time_limit_minutes)
  progress = _progress_bar(loop.num_steps, start, enabled=is_chief)
  stream = run.batches.iterate(start, num_threads=loop.num_threads)
  try:
    for step in range(start, loop.num_steps):
      batch = next(stream)
      rstate, metrics = p_step(rstate, *run.batches.step_args(batch))
      done = step + 1
      pending.add(done, metrics)
      meter.count()
      progress.update(1)
      due = what_is_due(done, loop, out_of_time=clock.passed(), stop=stop.now(done, loop.log_every, loop.num_steps))
      if not due.anything:
        continue
      scalars = train_scalars(pending.read(checkpoints), meter, progress)
      if due.validate:
        scalars.update(validator.run(done, rstate))
      writer.write(done, scalars)
      if due.save:   # Every process joins the save; orbax writes once.
        checkpoints.save(done, checked_tree(rstate, done, checkpoints), _meta(validator))
        if on_checkpoint is not None:
          checkpoints.wait()   # The callback sees the files complete.
          on_checkpoint(done)
      if due.stop_early:
        if is_chief:
          reason = (stop.describe() if stop.requested else
                    f'train.time_limit_minutes={loop.time_limit_minutes} reached')
          print(f'{reason} at step {done} of {loop.num_steps}; checkpoint saved, '
                'stopping here.', flush=True)
        break
      meter.restart()   # The next interval leaves out validation and saving.
  finally:
    progress.close()
  return jax.device_get(unreplicate(rstate))


def train_and_evaluate(config, workdir: str) -> Optional[dict]:
  """Trains, then (if config.eval.at_end) evaluates the final parameters on
  config.eval.split, writing report.json and the pictures into the workdir."""
  result = train(config, workdir)
  if not config.eval.at_end or jax.process_index() != 0:
    return None
  return evaluation.evaluate_config(config, result.state.params['model'],
                                    workdir=result.workdir,
                                    step=int(result.state.step))


# ----------------------------------------------------------------------------
# Start: what the config builds, then a fresh state or the newest checkpoint.

class Built(NamedTuple):
  """What `train` builds from the config, each part checked by its builder."""
  loop: LoopSettings
  image_size: int
  model: Model
  optimizer: optax.GradientTransformation
  loss: LossConfig
  dtype: jnp.dtype
  batches: Union[pipeline.TrainBatches, device_batches.DeviceBatches]  # This host's stream.
  validation: Optional[object]             # The validation source (None: off).
  eval_batch_size: int


def build(config, devices) -> Built:
  loop = configuration.loop_settings(config)
  image_size = int(config.data.image_size)
  source = configuration.data_source(config.data, 'train')
  stream = dict(batch_size=loop.batch_size, image_size=image_size, seed=loop.seed,
                augment=configuration.augment(config.data),
                host_index=jax.process_index(), host_count=jax.process_count())
  if config.data.get('on_device', False):
    split = device_batches.stack_source(source, image_size)
    batches = device_batches.train_batches(split, devices, axis_name=AXIS, **stream)
    _say(f'data.on_device: the training split ({len(split.images):,} examples, '
         f'{(split.images.nbytes + split.masks.nbytes) / 2**20:,.0f} MiB) on each of '
         f'{len(devices)} local device(s).')
  else:
    batches = pipeline.train_batches(source, num_devices=len(devices), **stream)
  validation = (configuration.data_source(config.data, 'validation')
                if loop.eval_every else None)
  return Built(loop=loop, image_size=image_size,
               model=configuration.build_model(config.model),
               optimizer=configuration.optimizer(config.train),
               loss=configuration.loss_config(config.loss),
               dtype=configuration.compute_dtype(config.model), batches=batches,
               validation=validation, eval_batch_size=int(config.eval.batch_size))


def init_or_restore(checkpoints: run_dir.Checkpointer, run: Built,
                    validator: Optional['Validator'], writer: MetricWriter,
                    changes: dict) -> Tuple[TrainState, int]:
  """(state, first step): the newest checkpoint of the workdir that restores
  (damaged ones are moved aside with a warning), else a fresh state from the
  seed. On resume the metrics past the checkpoint are dropped (the run writes
  those steps again), the best validation GED so far comes back with the
  checkpoint, and the config fields changed since the workdir's config.json
  are listed."""
  state, meta = run_dir.restore_newest_good(checkpoints, run.model, run.optimizer,
                                            run.image_size, warn=_say)
  if state is None:
    return create_train_state(run.model, run.optimizer, jax.random.key(run.loop.seed),
                              (1, run.image_size, run.image_size, 1)), 0
  start = int(state.step)
  if validator is not None:
    validator.best_ged = float(meta.get('best_validation_ged') or np.inf)
  writer.truncate_after(start)
  _say(f'Resumed from step {start} in {checkpoints.directory}.')
  for name, (old, new) in changes.items():
    _say(f'  changed since the workdir\'s config.json: {name} {old!r} -> {new!r}')
  if start >= run.loop.num_steps:
    _say(f'The run is finished: step {start} of train.num_steps={run.loop.num_steps}; '
         'nothing to train (raise --config.train.num_steps to train on).')
  return state, start


def _say(message: str) -> None:
  if jax.process_index() == 0:
    print(message, flush=True)


# ----------------------------------------------------------------------------
# What is due at a step.

class Due(NamedTuple):
  log: bool
  save: bool
  validate: bool
  stop_early: bool      # Out of time, or a signal, before train.num_steps.

  @property
  def anything(self) -> bool:
    return self.log or self.save or self.validate


def what_is_due(done: int, loop: LoopSettings, out_of_time: bool, stop: bool = False) -> Due:
  """After `done` steps: log every log_every, save every checkpoint_every,
  validate every eval_every (if on), and all three at the last step, which is
  train.num_steps or the first step past the time limit. On a stop signal:
  log and save at once, without validating."""
  at_end = done == loop.num_steps or out_of_time
  return Due(log=done % loop.log_every == 0 or at_end or stop,
             save=done % loop.checkpoint_every == 0 or at_end or stop,
             validate=bool(loop.eval_every) and (done % loop.eval_every == 0 or at_end),
             stop_early=(out_of_time or stop) and done < loop.num_steps)


# ----------------------------------------------------------------------------
# Metrics: read back from the devices only when logging, checked for NaN.

def check_finite(step: int, metrics: dict, checkpoints: run_dir.Checkpointer) -> None:
  for name, value in metrics.items():
    if not np.all(np.isfinite(value)):
      raise NonFiniteLossError(
          f'step {step}: {name} = {value} is not finite; training stopped. The '
          f'newest good checkpoint is step {checkpoints.latest_step()} in '
          f'{checkpoints.directory}.')


class PendingMetrics:
  """Per-step device metrics kept on the device until the next read-back."""

  def __init__(self):
    self.items = []

  def add(self, step: int, metrics) -> None:
    self.items.append((step, metrics))

  def read(self, checkpoints: run_dir.Checkpointer) -> dict:
    """Reads back, checks every step's terms for NaN / inf (naming the newest
    good checkpoint), returns the means."""
    if not self.items:
      return {}
    steps, device_metrics = zip(*self.items)
    host = jax.device_get(list(device_metrics))
    self.items = []
    per_step = [{k: float(np.asarray(v)[0]) for k, v in m.items()} for m in host]
    for step, metrics in zip(steps, per_step):
      check_finite(step, metrics, checkpoints)
    return {k: float(np.mean([m[k] for m in per_step])) for k in per_step[0]}


class Throughput:
  """Steps and examples per second since the last `restart()`."""

  def __init__(self, examples_per_step: int):
    self.examples_per_step = examples_per_step
    self.start, self.steps = time.perf_counter(), 0

  def count(self) -> None:
    self.steps += 1

  def steps_per_s(self) -> float:
    return self.steps / max(time.perf_counter() - self.start, 1e-9)

  def restart(self) -> None:
    self.start, self.steps = time.perf_counter(), 0


def train_scalars(means: dict, meter: Throughput, progress) -> dict:
  """The logged `train/*` and `perf/*` scalars; shown on the progress bar too."""
  steps_per_s = meter.steps_per_s()
  examples_per_s = steps_per_s * meter.examples_per_step
  progress.set_postfix(loss=f"{means.get('loss', float('nan')):.4g}",
                       ex_per_s=f'{examples_per_s:.1f}')
  scalars = {f'train/{k}': v for k, v in means.items()}
  scalars.update({'perf/steps_per_s': steps_per_s, 'perf/examples_per_s': examples_per_s})
  return scalars


def _progress_bar(total: int, initial: int, enabled: bool):
  from tqdm import tqdm
  return tqdm(total=total, initial=initial, unit='step', disable=not enabled,
              dynamic_ncols=True, mininterval=2.0, desc='train')


# ----------------------------------------------------------------------------
# Validation during training, keeping the best checkpoint.

class Validator:
  """Quick validation (GED and HM-IoU at a small N on part of the validation
  split) that keeps the checkpoint with the best GED in `best/`."""

  def __init__(self, sampler, source, image_size: int, loop: LoopSettings,
               batch_size: int, checkpoint: run_dir.Checkpointer):
    self.sampler, self.source, self.image_size = sampler, source, image_size
    self.loop, self.batch_size = loop, batch_size
    self.checkpoint = checkpoint
    self.best_ged = np.inf     # Restored with a resumed checkpoint's meta.
    self.best_step: Optional[int] = checkpoint.latest_step()

  def run(self, step: int, rstate: TrainState) -> dict:
    """The `validation/*` scalars at `step`; saves `best/` on a new best GED."""
    params = jax.device_get(unreplicate(rstate.params))['model']
    values = evaluation.quick_validation(
        self.sampler, params, self.source, image_size=self.image_size,
        num_samples=self.loop.eval_num_samples,
        num_examples=self.loop.eval_num_examples or None,
        batch_size=self.batch_size, seed=self.loop.seed)
    ged = values[f'ged{self.loop.eval_num_samples}']
    if ged < self.best_ged:   # Every process computes the same GED and joins the save.
      self.best_ged = ged
      self.checkpoint.save(step, checked_tree(rstate, step, self.checkpoint),
                           dict(_meta(self), validation=values))
      self.best_step = step
    return {f'validation/{k}': v for k, v in values.items()}


def _meta(validator: Optional[Validator]) -> dict:
  """The JSON meta saved with every checkpoint."""
  best = None if validator is None or not np.isfinite(validator.best_ged) else validator.best_ged
  return {'best_validation_ged': best}


# ----------------------------------------------------------------------------
# Device placement.

def replicate(tree, devices):
  """One copy per device along a new leading axis, placed as pmap places its
  outputs (so the first step compiles for the same input layout as the rest)."""
  mesh = jax.sharding.Mesh(np.asarray(devices), (AXIS,))
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(AXIS))
  n = len(devices)
  return jax.device_put(
      jax.tree.map(lambda x: jnp.broadcast_to(x, (n,) + x.shape), tree), sharding)


def unreplicate(tree):
  return jax.tree.map(lambda x: x[0], tree)


def checked_tree(rstate: TrainState, step: int, checkpoints: run_dir.Checkpointer) -> dict:
  """The checkpoint tree of the replicated state, on the host, after checking
  that every parameter and optimiser value is finite: a non-finite state is
  never saved as good, whatever the logged loss terms said."""
  tree = jax.device_get(run_dir.state_to_tree(unreplicate(rstate)))
  for path, value in jax.tree_util.tree_leaves_with_path(tree):
    value = np.asarray(value)
    if np.issubdtype(value.dtype, np.floating) and not np.all(np.isfinite(value)):
      raise NonFiniteLossError(
          f'step {step}: {jax.tree_util.keystr(path)} has non-finite values; not saved, '
          f'training stopped. The newest good checkpoint is step '
          f'{checkpoints.latest_step()} in {checkpoints.directory}.')
  return tree
