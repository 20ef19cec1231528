"""Jitted sampling and reconstruction for notebook users.

    sample = make_sampler(model)
    out = sample(params, jax.random.key(0), images, num_samples=16, mean='local')
    out.labels  # [16, B, H, W] int32;  out.probs  # [16, B, H, W, C]

`temperature` (default 1: the model as trained) multiplies the standard
deviations the latents are drawn with: one number for all latent levels or
one per level, coarsest first (e.g. (0.8, 1, 1) sharpens only the global
choice).

The prior's encoder runs once per image and its features are shared by all
samples; the samples are one vectorised batch, not a Python loop.

`make_sampler(model, compute_dtype='bfloat16')` runs the network on a
bfloat16 copy of the parameters and images; probabilities, labels and latents
come back in float32 / int32 whatever the compute dtype.
"""
import functools
from typing import NamedTuple, Sequence, Tuple, Union

import jax
import jax.numpy as jnp

from hpu_jax import precision
from hpu_jax.latents import Temperatures, resolve_mean_flags, resolve_temperatures
from hpu_jax.model import Model

MeanSpec = Union[str, bool, Sequence[bool]]
# The sampling modes of `mean_flags_for` and their names in reports and figures.
MODE_LABELS = {'full': 'full sampling', 'local': 'local only', 'global': 'global only'}
MEAN_MODES = tuple(MODE_LABELS)


def mean_flags_for(mode: MeanSpec, num_latent_levels: int) -> Tuple[bool, ...]:
  """Per-level mean flags. 'full' samples every level; 'local' ("local only")
  uses the mean at all but the finest level; 'global' ("global only") uses the
  mean at all but the coarsest. A bool or a tuple of flags is passed through."""
  n = num_latent_levels
  if isinstance(mode, str):
    if mode == 'full':
      return (False,) * n
    if mode == 'local':
      return (True,) * (n - 1) + (False,)
    if mode == 'global':
      return (False,) + (True,) * (n - 1)
    raise ValueError(f'mean={mode!r}: expected one of {MEAN_MODES}, a bool or '
                     f'{n} per-level flags.')
  return resolve_mean_flags(mode, n)


class Samples(NamedTuple):
  labels: jax.Array               # [S, B, H, W] int32 argmax label maps.
  probs: jax.Array                # [S, B, H, W, C] softmax probabilities.
  latents: Tuple[jax.Array, ...]  # per latent level, [S, B, h_l, w_l, d_l].


class Reconstruction(NamedTuple):
  labels: jax.Array               # [B, H, W]
  probs: jax.Array                # [B, H, W, C]
  latents: Tuple[jax.Array, ...]


def _to_images(images):
  images = jnp.asarray(images, jnp.float32)
  if images.ndim == 3:
    images = images[..., None]
  if images.ndim != 4:
    raise ValueError(f'images of shape {images.shape}: expected [B, H, W] or [B, H, W, 1].')
  return images


def _labels_and_probs(logits):
  """Argmax labels (int32) and softmax probabilities, both from float32 logits."""
  logits = logits.astype(jnp.float32)
  return jnp.argmax(logits, axis=-1).astype(jnp.int32), jax.nn.softmax(logits, axis=-1)


def make_sampler(model: Model, compute_dtype: precision.DTypeLike = jnp.float32):
  """Returns sample(params, rng, images, num_samples=1, mean='full',
  temperature=1.0) -> Samples. The network runs in `compute_dtype`
  ('float32' or 'bfloat16')."""
  compute_dtype = precision.resolve_dtype(compute_dtype)

  @functools.partial(jax.jit, static_argnames=('num_samples', 'mean_flags', 'temperatures'))
  def _sample(params, rng, images, num_samples, mean_flags, temperatures):
    out = model.sample_many(precision.cast_floats(params, compute_dtype), rng,
                            precision.cast_floats(images, compute_dtype), num_samples,
                            mean_flags, temperatures)
    out = precision.sample_output_to_float32(out)
    labels, probs = _labels_and_probs(out.logits)
    return Samples(labels, probs, out.latents)

  def sample(params, rng, images, num_samples: int = 1, mean: MeanSpec = 'full',
             temperature: Temperatures = 1.0) -> Samples:
    if num_samples < 1:
      raise ValueError(f'num_samples={num_samples}: expected at least 1.')
    flags = mean_flags_for(mean, len(model.latent_dims))
    temperatures = resolve_temperatures(temperature, len(model.latent_dims))
    return _sample(params, rng, _to_images(images), int(num_samples), flags, temperatures)

  return sample


def make_reconstructor(model: Model, compute_dtype: precision.DTypeLike = jnp.float32):
  """Returns reconstruct(params, rng, segs, images, mean=False) -> Reconstruction:
  the posterior's latents (sampled, or its means with mean=True) decoded. The
  network runs in `compute_dtype` ('float32' or 'bfloat16')."""
  compute_dtype = precision.resolve_dtype(compute_dtype)

  @functools.partial(jax.jit, static_argnames=('mean_flags',))
  def _reconstruct(params, rng, segs, images, mean_flags):
    out = model.reconstruct(precision.cast_floats(params, compute_dtype), rng, segs,
                            precision.cast_floats(images, compute_dtype), mean_flags)
    out = precision.sample_output_to_float32(out)
    labels, probs = _labels_and_probs(out.logits)
    return Reconstruction(labels, probs, out.latents)

  def reconstruct(params, rng, segs, images, mean: MeanSpec = False) -> Reconstruction:
    flags = mean_flags_for(mean, len(model.latent_dims))
    return _reconstruct(params, rng, jnp.asarray(segs, jnp.int32), _to_images(images), flags)

  return reconstruct
