"""Turns config sections into explicit arguments. Only the top-level scripts
(and `hpu_jax.load`-style helpers) call this; modules never see a ConfigDict."""
import os

import jax.numpy as jnp
import optax

from hpu_jax import losses, precision
from hpu_jax.model import Model, build_hpunet


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
      prior_components=model_cfg.get('prior_components', 1))


def build_model(model_cfg) -> Model:
  return build_hpunet(**model_kwargs(model_cfg))


def compute_dtype(model_cfg) -> jnp.dtype:
  """The dtype of the forward pass, `model.compute_dtype` ('float32' when the
  field is missing, as in the config.json of older runs)."""
  return precision.resolve_dtype(model_cfg.get('compute_dtype', 'float32'))


def loss_config(loss_cfg) -> losses.LossConfig:
  top_k = float(loss_cfg.top_k_percentage)
  cfg = losses.LossConfig(
      loss_type=str(loss_cfg.loss_type), beta=float(loss_cfg.beta),
      kappa=float(loss_cfg.kappa), decay=float(loss_cfg.decay), rate=float(loss_cfg.rate),
      top_k_percentage=None if top_k >= 1.0 else top_k,
      deterministic_top_k=bool(loss_cfg.deterministic_top_k),
      kl_free_nats_coarsest=float(loss_cfg.get('kl_free_nats_coarsest', 0.0)),
      kl_free_nats_steps=int(loss_cfg.get('kl_free_nats_steps', 0)))
  losses.validate_loss_config(cfg)
  return cfg


def optimizer(train_cfg) -> optax.GradientTransformation:
  schedule = optax.piecewise_constant_schedule(
      float(train_cfg.learning_rate),
      {int(b): float(train_cfg.lr_decay) for b in train_cfg.lr_boundaries})
  return optax.adam(schedule)


DATA_NAMES = ('synthetic', 'lidc_slices', 'lidc_crops', 'lidc_pickle')


def augment(data_cfg):
  from hpu_jax.data.pipeline import Augment
  aug = data_cfg.augment
  return Augment(flip=bool(aug.flip), rot90=bool(aug.rot90),
                 random_crop=bool(aug.random_crop))


def data_source(data_cfg, split: str):
  """The random-access source of one split named by the data config. LIDC
  formats are prepared from `data.dir` into `data.prepared_dir` on first use."""
  name = str(data_cfg.name)
  if name not in DATA_NAMES:
    raise ValueError(f'data.name={name!r}: expected one of {DATA_NAMES}.')
  if name == 'synthetic':
    from hpu_jax.data import synthetic
    syn = data_cfg.synthetic
    sizes = {'train': syn.num_train, 'validation': syn.num_validation, 'test': syn.num_test}
    if split not in sizes:
      raise ValueError(f'split={split!r}: expected one of {tuple(sizes)}.')
    return synthetic.SyntheticDataset(
        split, int(sizes[split]), image_size=int(syn.image_size or data_cfg.image_size),
        num_annotations=int(syn.num_annotations), seed=int(syn.seed),
        cache=bool(syn.cache) and split == 'train')
  from hpu_jax.data import lidc
  prepared = os.path.expanduser(str(data_cfg.prepared_dir))
  try:
    return lidc.load_source(name, prepared, split)
  except lidc.LidcNotPreparedError:
    if not data_cfg.dir:
      raise
  lidc.prepare(name, os.path.expanduser(str(data_cfg.dir)), prepared,
               skip_bad_examples=bool(data_cfg.skip_bad_examples))
  return lidc.load_source(name, prepared, split)


def validate(config, num_devices: int, host_count: int = 1) -> None:
  """Checks a full config before anything is built or compiled; raises
  ValueError naming the field and the expected value."""
  from hpu_jax.data.pipeline import validate_batch_size
  validate_batch_size(int(config.train.batch_size), num_devices, host_count)
  if str(config.data.name) not in DATA_NAMES:
    raise ValueError(f'data.name={config.data.name!r}: expected one of {DATA_NAMES}.')
  if str(config.data.name) != 'synthetic' and not (config.data.dir or config.data.prepared_dir):
    raise ValueError(f'data.dir is empty: {config.data.name} needs the directory '
                     'holding the downloaded files (--config.data.dir=...).')
  positive = {'train.num_steps': config.train.num_steps,
              'train.log_every': config.train.log_every,
              'train.checkpoint_every': config.train.checkpoint_every,
              'train.keep_checkpoints': config.train.keep_checkpoints,
              'train.learning_rate': config.train.learning_rate,
              'data.image_size': config.data.image_size,
              'eval.batch_size': config.eval.batch_size}
  for name, value in positive.items():
    if not value > 0:
      raise ValueError(f'{name}={value}: expected a positive value.')
  for name in ('train.eval_every', 'train.eval_num_examples', 'eval.num_examples',
               'train.time_limit_minutes'):
    section, key = name.split('.')
    if config[section].get(key, 0) < 0:
      raise ValueError(f'{name}={config[section][key]}: expected >= 0 (0 turns it off / means all).')
  if config.train.get('time_limit_minutes', 0) > 0 and host_count > 1:
    raise ValueError(f'train.time_limit_minutes={config.train.time_limit_minutes} with '
                     f'{host_count} hosts: expected 0, since hosts would stop at different '
                     'steps; set train.num_steps instead.')
  if not config.data.get('num_threads', 1) >= 1:
    raise ValueError(f'data.num_threads={config.data.num_threads}: expected at least 1 '
                     'reader thread.')
  if list(config.train.lr_boundaries) != sorted(config.train.lr_boundaries):
    raise ValueError(f'train.lr_boundaries={tuple(config.train.lr_boundaries)}: '
                     'expected increasing steps.')
  samples = tuple(config.eval.num_samples)
  if not samples or min(samples) < 1:
    raise ValueError(f'eval.num_samples={samples}: expected positive sample counts, e.g. (16, 100).')
  if config.train.eval_num_samples < 2:
    raise ValueError(f'train.eval_num_samples={config.train.eval_num_samples}: '
                     'expected at least 2 (GED needs pairs of samples).')
  if str(config.data.name) == 'synthetic':
    syn = config.data.synthetic
    stored = int(syn.image_size or config.data.image_size)
    if stored < int(config.data.image_size):
      raise ValueError(f'data.synthetic.image_size={stored} is smaller than '
                       f'data.image_size={config.data.image_size}.')
  from hpu_jax.model import check_resolution, checked_down_channels, checked_prior_components
  architecture = model_kwargs(config.model)
  architecture.pop('remat')
  try:
    checked_prior_components(architecture.pop('prior_components'))
  except ValueError as e:
    raise ValueError(f'model.{e}') from None
  checked_down_channels(**architecture)
  compute_dtype(config.model)
  size = int(config.data.image_size)
  check_resolution(size, size, len(config.model.channels_per_block))
  loss_config(config.loss)
