"""Turns config sections into explicit arguments, and checks a config before
anything is built. Only the top-level entry points (train, evaluate, load,
the scripts) call this; the modules below never see a ConfigDict.

Each builder checks its own arguments and names the argument it rejects
(`channels_per_block=(4, 8): ...`); `_section` adds the config section to
the message (`model.channels_per_block=(4, 8): ...`), so a user reads the
field to change. `validate` runs those checks on a whole config, then the
few that span sections (batch vs devices, image size vs levels, ...).
"""
import contextlib
import os
import re
from typing import NamedTuple, Tuple

import jax.numpy as jnp
import optax

from hpu_jax import losses, precision
from hpu_jax.model import Model, build_hpunet, check_resolution
from hpu_jax.train_step import make_optimizer

SYNTHETIC = 'synthetic'
_ARGUMENT_RE = re.compile(r'^[a-z_][a-z0-9_]*=')


@contextlib.contextmanager
def _section(name: str):
  """Re-raises a builder's `argument=value: ...` ValueError as `name.argument=...`."""
  try:
    yield
  except ValueError as e:
    message = str(e)
    if _ARGUMENT_RE.match(message):
      raise ValueError(f'{name}.{message}') from None
    raise


def data_names() -> tuple:
  """'synthetic' and the prepared formats: the LIDC formats and 'folder'
  (hpu_jax.data.lidc.formats.PREPARED_FORMATS)."""
  from hpu_jax.data.lidc import formats
  return (SYNTHETIC,) + tuple(formats.PREPARED_FORMATS)


# ----------------------------------------------------------------------------
# model

def model_kwargs(model_cfg) -> dict:
  return dict(
      num_classes=int(model_cfg.num_classes),
      latent_dims=tuple(model_cfg.latent_dims),
      channels_per_block=tuple(model_cfg.channels_per_block),
      down_channels_per_block=(tuple(model_cfg.down_channels_per_block)
                               if model_cfg.down_channels_per_block else None),
      convs_per_block=int(model_cfg.convs_per_block),
      blocks_per_level=int(model_cfg.blocks_per_level),
      log_sigma_bound=(float(model_cfg.log_sigma_bound)
                       if model_cfg.log_sigma_bound else None),
      remat=bool(model_cfg.get('remat', False)),
      # Older config.json files lack the field: the original's one Gaussian.
      prior_components=model_cfg.get('prior_components', 1))


def build_model(model_cfg) -> Model:
  with _section('model'):
    return build_hpunet(**model_kwargs(model_cfg))


def compute_dtype(model_cfg) -> jnp.dtype:
  """The dtype of the forward pass, `model.compute_dtype` ('float32' when the
  field is missing, as in the config.json of older runs)."""
  with _section('model'):
    return precision.resolve_dtype(model_cfg.get('compute_dtype', 'float32'))


# ----------------------------------------------------------------------------
# loss and optimiser

def loss_config(loss_cfg) -> losses.LossConfig:
  top_k = float(loss_cfg.top_k_percentage)
  cfg = losses.LossConfig(
      loss_type=str(loss_cfg.loss_type), beta=float(loss_cfg.beta),
      kappa=float(loss_cfg.kappa), decay=float(loss_cfg.decay), rate=float(loss_cfg.rate),
      top_k_percentage=None if top_k >= 1.0 else top_k,
      deterministic_top_k=bool(loss_cfg.deterministic_top_k),
      kl_free_nats_coarsest=float(loss_cfg.get('kl_free_nats_coarsest', 0.0)),
      kl_free_nats_steps=int(loss_cfg.get('kl_free_nats_steps', 0)),
      lagmul_max=None if loss_cfg.get('lagmul_max') is None else float(loss_cfg.lagmul_max))
  with _section('loss'):
    losses.validate_loss_config(cfg)
  return cfg


def optimizer(train_cfg) -> optax.GradientTransformation:
  with _section('train'):
    return make_optimizer(learning_rate=float(train_cfg.learning_rate),
                          lr_boundaries=tuple(train_cfg.lr_boundaries),
                          lr_decay=float(train_cfg.lr_decay))


# ----------------------------------------------------------------------------
# data

def augment(data_cfg):
  from hpu_jax.data.pipeline import Augment
  aug = data_cfg.augment
  return Augment(flip=bool(aug.flip), rot90=bool(aug.rot90),
                 random_crop=bool(aug.random_crop))


def _check_data_name(name: str) -> None:
  names = data_names()
  if name not in names:
    raise ValueError(f'data.name={name!r}: expected one of {names}.')


def _synthetic_source(data_cfg, split: str):
  from hpu_jax.data import synthetic
  syn = data_cfg.synthetic
  sizes = {'train': syn.num_train, 'validation': syn.num_validation, 'test': syn.num_test}
  if split not in sizes:
    raise ValueError(f'split={split!r}: expected one of {tuple(sizes)}.')
  try:
    return synthetic.SyntheticDataset(
        split, int(sizes[split]), image_size=int(syn.image_size or data_cfg.image_size),
        num_annotations=int(syn.num_annotations), seed=int(syn.seed),
        cache=bool(syn.cache) and split == 'train')
  except ValueError as e:   # The source's argument -> the config's field.
    message = str(e).replace('num_examples=', f'num_{split}=', 1)
    raise ValueError(f'data.synthetic.{message}' if _ARGUMENT_RE.match(message)
                     else message) from None


def data_source(data_cfg, split: str):
  """The random-access source of one split named by the data config. LIDC
  formats are prepared from `data.dir` into `data.prepared_dir` on first use.
  An empty training split is an error naming the field that made it empty."""
  source = _data_source(data_cfg, split)
  if split == 'train' and len(source) == 0:
    if str(data_cfg.name) == SYNTHETIC:
      field = f'data.synthetic.num_train={data_cfg.synthetic.num_train}'
    else:
      field = (f'data.dir={str(data_cfg.dir)!r} (prepared in '
               f'data.prepared_dir={str(data_cfg.prepared_dir)!r})')
    raise ValueError(f'{field}: the training split is empty; expected at least one '
                     'training example.')
  return source


def format_options(data_cfg) -> dict:
  """The options of a prepared format: its own config section, `data.<name>`
  (e.g. data.folder.group_regex), if it has one."""
  section = data_cfg.get(str(data_cfg.name))
  return dict(section) if section is not None else {}


def _data_source(data_cfg, split: str):
  name = str(data_cfg.name)
  _check_data_name(name)
  if name == SYNTHETIC:
    return _synthetic_source(data_cfg, split)
  from hpu_jax.data import lidc
  from hpu_jax.data.lidc.formats import prepared_location
  source_dir = os.path.expanduser(str(data_cfg.dir)) if data_cfg.dir else ''
  prepared = prepared_location(name, os.path.expanduser(str(data_cfg.prepared_dir)),
                               source_dir, format_options(data_cfg))
  try:
    return lidc.load_source(name, prepared, split)
  except lidc.LidcNotPreparedError as e:
    if not data_cfg.dir:
      raise lidc.LidcNotPreparedError(f'{lidc.missing_data_message(name)} Or {e}') from None
  lidc.prepare(name, os.path.expanduser(str(data_cfg.dir)), prepared,
               skip_bad_examples=bool(data_cfg.skip_bad_examples))
  return lidc.load_source(name, prepared, split)


def _check_data(data_cfg) -> None:
  _check_data_name(str(data_cfg.name))
  if str(data_cfg.name) == 'folder':
    from hpu_jax.data.lidc.folder import check_group_regex
    if not data_cfg.dir:
      raise ValueError("data.dir='': expected the folder holding images/ and masks/ "
                       '(data.name=folder), e.g. --config.data.dir=/path/to/folder.')
    check_group_regex(str(data_cfg.get('folder', {}).get('group_regex', '') or ''))
  if not data_cfg.get('num_threads', 1) >= 1:
    raise ValueError(f'data.num_threads={data_cfg.num_threads}: expected at least 1 '
                     'reader thread.')
  on_device = data_cfg.get('on_device', False)
  if not isinstance(on_device, bool):
    raise ValueError(f'data.on_device={on_device!r}: expected True (the training split '
                     'kept on the devices) or False (read by the host pipeline).')
  if str(data_cfg.name) == SYNTHETIC:
    for split in ('train', 'validation', 'test'):
      _synthetic_source(data_cfg, split)   # Cheap: nothing is generated yet.


# ----------------------------------------------------------------------------
# the loop and the evaluation

class LoopSettings(NamedTuple):
  """What the training loop does when (hpu_jax.train), from `train.*`."""
  num_steps: int
  batch_size: int            # Global: all hosts and devices.
  seed: int
  log_every: int
  checkpoint_every: int
  keep_checkpoints: int
  eval_every: int            # 0: no validation during training.
  eval_num_examples: int     # 0: the whole validation split.
  eval_num_samples: int
  time_limit_minutes: float  # 0: none.
  num_threads: int           # Reader threads of the train batches (`data.num_threads`).


def loop_settings(config) -> LoopSettings:
  tc = config.train
  settings = LoopSettings(
      num_steps=int(tc.num_steps), batch_size=int(tc.batch_size), seed=int(tc.seed),
      log_every=int(tc.log_every), checkpoint_every=int(tc.checkpoint_every),
      keep_checkpoints=int(tc.keep_checkpoints), eval_every=int(tc.eval_every),
      eval_num_examples=int(tc.eval_num_examples), eval_num_samples=int(tc.eval_num_samples),
      time_limit_minutes=float(tc.get('time_limit_minutes', 0.0)),
      num_threads=int(config.data.get('num_threads', 2)))
  for name in ('num_steps', 'log_every', 'checkpoint_every', 'keep_checkpoints'):
    if not getattr(settings, name) > 0:
      raise ValueError(f'train.{name}={getattr(settings, name)}: expected a positive value.')
  for name in ('eval_every', 'eval_num_examples', 'time_limit_minutes'):
    if getattr(settings, name) < 0:
      raise ValueError(f'train.{name}={getattr(settings, name)}: expected >= 0 '
                       '(0 turns it off / means all).')
  if settings.eval_num_samples < 2:
    raise ValueError(f'train.eval_num_samples={settings.eval_num_samples}: '
                     'expected at least 2 (GED needs pairs of samples).')
  return settings


def distributed_kwargs(train_cfg, environ=os.environ) -> dict:
  """jax.distributed.initialize's arguments: each of `train.coordinator_address`,
  `train.num_processes`, `train.process_id` if set, else the environment's
  JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID, else None (JAX
  then detects a cluster it knows: SLURM, Open MPI, Kubernetes, TPU pods)."""
  def pick(field, env, unset, cast):
    value = train_cfg.get(field, unset)
    if value != unset:
      return cast(value)
    return cast(environ[env]) if environ.get(env, '') != '' else None
  kwargs = dict(coordinator_address=pick('coordinator_address', 'JAX_COORDINATOR_ADDRESS', '', str),
                num_processes=pick('num_processes', 'JAX_NUM_PROCESSES', 0, int),
                process_id=pick('process_id', 'JAX_PROCESS_ID', -1, int))
  address, count, index = (kwargs[k] for k in ('coordinator_address', 'num_processes',
                                               'process_id'))
  if address is not None and not re.fullmatch(r'\[?[\w.:-]+\]?:\d+', address):
    raise ValueError(f'train.coordinator_address={address!r}: expected HOST:PORT.')
  if count is not None and count < 1:
    raise ValueError(f'train.num_processes={count}: expected at least 1.')
  if index is not None and not 0 <= index < (count or index + 1):
    raise ValueError(f'train.process_id={index}: expected 0 <= process_id < '
                     f'train.num_processes={count}.')
  return kwargs


def sampling_temperature(config) -> Tuple[float, ...]:
  """`eval.temperature` (absent: 1) as one factor per latent level."""
  from hpu_jax.latents import resolve_temperatures
  with _section('eval'):
    return resolve_temperatures(config.eval.get('temperature', (1.0,)),
                                len(config.model.latent_dims))


def _check_eval(eval_cfg) -> None:
  from hpu_jax import evaluate as evaluation
  with _section('eval'):
    evaluation.check_settings(num_samples=tuple(eval_cfg.num_samples),
                              batch_size=int(eval_cfg.batch_size),
                              num_examples=int(eval_cfg.num_examples),
                              modes=tuple(eval_cfg.modes))


# ----------------------------------------------------------------------------

def configure_cpu_host(train_cfg) -> None:
  """Applies the config's CPU settings, which must come before JAX starts its
  backend (it reads XLA_FLAGS once and starts its threads):
  train.cpu_convolutions (hpu_jax/xla_cpu.py) and train.host_malloc
  (hpu_jax/host_memory.py). Neither changes anything on a GPU or TPU."""
  from hpu_jax import host_memory, xla_cpu  # pylint: disable=import-outside-toplevel
  xla_cpu.configure(convolutions=train_cfg.get('cpu_convolutions', 'eigen'))
  host_memory.configure(train_cfg.get('host_malloc', 'system'))


def validate(config, num_devices: int, host_count: int = 1) -> None:
  """Checks a full config before anything is built or compiled: every
  section's own arguments (through the builders above), then the checks that
  span sections. Raises ValueError naming the field and what was expected."""
  build_model(config.model)
  compute_dtype(config.model)
  loss_config(config.loss)
  optimizer(config.train)
  _check_data(config.data)
  loop = loop_settings(config)
  _check_eval(config.eval)
  sampling_temperature(config)
  if config.train.get('distributed', False):
    distributed_kwargs(config.train)
  from hpu_jax import compile_cache, host_memory, xla_cpu
  compile_cache.check(config.train.get('compilation_cache_dir', ''))
  xla_cpu.check(config.train.get('cpu_convolutions', 'eigen'))
  host_memory.check(config.train.get('host_malloc', 'system'))
  # Spanning sections:
  from hpu_jax.data.pipeline import validate_batch_size
  with _section('train'):
    validate_batch_size(loop.batch_size, num_devices, host_count)
  size = int(config.data.image_size)
  if not size > 0:
    raise ValueError(f'data.image_size={size}: expected a positive value.')
  check_resolution(size, size, len(config.model.channels_per_block))
  if str(config.data.name) == SYNTHETIC:
    stored = int(config.data.synthetic.image_size or size)
    if stored < size:
      raise ValueError(f'data.synthetic.image_size={stored} is smaller than '
                       f'data.image_size={size}.')
  if loop.time_limit_minutes > 0 and host_count > 1:
    raise ValueError(f'train.time_limit_minutes={loop.time_limit_minutes} with '
                     f'{host_count} hosts: expected 0, since hosts would stop at different '
                     'steps; set train.num_steps instead.')
