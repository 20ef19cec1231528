"""Turns config sections into explicit arguments. Only the top-level scripts
(and `hpu_jax.load`-style helpers) call this; modules never see a ConfigDict."""
import optax

from hpu_jax import losses
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
                       if model_cfg.log_sigma_bound else None))


def build_model(model_cfg) -> Model:
  return build_hpunet(**model_kwargs(model_cfg))


def loss_config(loss_cfg) -> losses.LossConfig:
  top_k = float(loss_cfg.top_k_percentage)
  cfg = losses.LossConfig(
      loss_type=str(loss_cfg.loss_type), beta=float(loss_cfg.beta),
      kappa=float(loss_cfg.kappa), decay=float(loss_cfg.decay), rate=float(loss_cfg.rate),
      top_k_percentage=None if top_k >= 1.0 else top_k,
      deterministic_top_k=bool(loss_cfg.deterministic_top_k))
  losses.validate_loss_config(cfg)
  return cfg


def optimizer(train_cfg) -> optax.GradientTransformation:
  schedule = optax.piecewise_constant_schedule(
      float(train_cfg.learning_rate),
      {int(b): float(train_cfg.lr_decay) for b in train_cfg.lr_boundaries})
  return optax.adam(schedule)
