"""The latent distributions of the HPU-Net: the heads that turn a level's
features into p(z_l | ...) (the original's diagonal Gaussian, or a mixture of
Gaussians), the optional bound on log sigma, what "the mean" of a latent
level is (`resolve_mean_flags`, `mixture_mode_mean`), and sampling at a
temperature (`resolve_temperatures`, `tempered`).

The heads are functions, not methods, so that their parameters keep the
original's names: a method of an `hk.Module` would add its own name scope.
"""
import math
from typing import Optional, Sequence, Tuple, Union

import distrax
import jax
import jax.numpy as jnp

from hpu_jax.layers import Conv

# `mean` of the model's sampling methods: one bool for all latent levels, or
# one flag per latent level (coarsest first).
MeanFlags = Union[bool, Sequence[bool]]


def resolve_mean_flags(mean: MeanFlags, num_latent_levels: int) -> Tuple[bool, ...]:
  """A bool for all levels, or one flag per latent level -> tuple of flags."""
  if isinstance(mean, bool):
    return (mean,) * num_latent_levels
  flags = tuple(bool(m) for m in mean)
  if len(flags) != num_latent_levels:
    raise ValueError(f'mean has {len(flags)} flags, expected one per latent level '
                     f'({num_latent_levels}) or a single bool.')
  return flags


# `temperature` of the model's sampling methods: one factor for all latent
# levels, or one per latent level (coarsest first); it multiplies the standard
# deviations that the latents are drawn with (1: the model as trained).
Temperatures = Union[float, Sequence[float]]


def resolve_temperatures(temperature: Temperatures,
                         num_latent_levels: int) -> Tuple[float, ...]:
  """A number for all levels (or a sequence of one), or one per latent level
  -> tuple of floats > 0."""
  if isinstance(temperature, (int, float)) and not isinstance(temperature, bool):
    values = (float(temperature),) * num_latent_levels
  else:
    try:
      if isinstance(temperature, str):
        raise TypeError
      values = tuple(float(t) for t in temperature)
    except (TypeError, ValueError):
      raise ValueError(f'temperature={temperature!r}: expected a number > 0 or one per '
                       f'latent level ({num_latent_levels}).') from None
    if len(values) == 1:
      values = values * num_latent_levels
    if len(values) != num_latent_levels:
      raise ValueError(f'temperature={tuple(temperature)}: {len(values)} values, expected '
                       f'one per latent level ({num_latent_levels}) or a single number.')
  if not all(math.isfinite(t) and t > 0 for t in values):
    raise ValueError(f'temperature={temperature!r}: expected finite values > 0 '
                     '(1: sample as trained; below 1: closer to the mean).')
  return values


def tempered(dist, temperature: float):
  """`dist` with its standard deviations multiplied by `temperature` (a
  mixture keeps its weights and means; each component's scale is multiplied)."""
  if temperature == 1.0:
    return dist
  if isinstance(dist, distrax.Normal):
    return distrax.Normal(loc=dist.loc, scale=dist.scale * temperature)
  components = dist.components_distribution
  return distrax.MixtureSameFamily(
      dist.mixture_distribution,
      distrax.MultivariateNormalDiag(loc=components.loc,
                                     scale_diag=components.scale_diag * temperature))


def mixture_mode_mean(dist: distrax.MixtureSameFamily) -> jax.Array:
  """The mean of each pixel's most probable component, [..., d]: what
  `mean=True` draws from a mixture (its overall mean can lie between the
  components, where the prior puts little mass)."""
  best = jnp.argmax(dist.mixture_distribution.logits, axis=-1)
  locs = dist.components_distribution.loc                      # [..., K, d]
  return jnp.take_along_axis(locs, best[..., None, None], axis=-2)[..., 0, :]


def _bounded(log_sigma: jax.Array, bound: Optional[float]) -> jax.Array:
  if bound is None:
    return log_sigma
  # Numerical guard (not in the original): identity inside the bound.
  return jnp.clip(log_sigma, -bound, bound)


def normal_head(x, latent_dim: int, level: int,
                log_sigma_bound: Optional[float]) -> distrax.Normal:
  """The original's head: a 1x1 conv to (mu, log sigma) of a diagonal Gaussian."""
  mu_log_sigma = Conv(2 * latent_dim, 1, name=f'latent_head_{level}')(x)
  mu = mu_log_sigma[..., :latent_dim]
  log_sigma = _bounded(mu_log_sigma[..., latent_dim:], log_sigma_bound)
  return distrax.Normal(loc=mu, scale=jnp.exp(log_sigma))


def mixture_head(x, latent_dim: int, components: int, level: int,
                 log_sigma_bound: Optional[float]) -> distrax.MixtureSameFamily:
  """A mixture of `components` diagonal Gaussians per pixel (not in the
  original): a 1x1 conv to the K mixture logits, then K means and K log
  sigmas of `latent_dim` channels each. Batch shape [B, h, w], event [d]."""
  out = Conv(components * (1 + 2 * latent_dim), 1, name=f'latent_head_{level}')(x)
  logits = out[..., :components]
  params = out[..., components:].reshape(out.shape[:-1] + (components, 2 * latent_dim))
  mu = params[..., :latent_dim]
  log_sigma = _bounded(params[..., latent_dim:], log_sigma_bound)
  return distrax.MixtureSameFamily(
      distrax.Categorical(logits=logits),
      distrax.MultivariateNormalDiag(loc=mu, scale_diag=jnp.exp(log_sigma)))
