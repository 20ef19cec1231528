"""The Hierarchical Probabilistic U-Net (Kohl et al. 2019) in Haiku: the
network, its architecture checks and the pure functions `build_hpunet` makes.

Glossary of shapes:
  B: batch, H, W: image size, C: classes, S: samples.
  Images are [B, H, W, 1] in [0, 1]; segmentations are integer maps [B, H, W].

Layout (matching DeepMind's released model.py for the LIDC defaults):
  * `ResBlock` (hpu_jax.layers): pre-activated residual block.
  * `HierarchicalCore`: an encoder over all levels plus a truncated decoder that
    draws one latent per latent level (1x1, 2x2, 4x4, 8x8 for the defaults;
    the heads are in hpu_jax.latents).
    Used twice with separate weights: the prior (image) and the posterior
    (one-hot segmentation concatenated before the image).
  * `StitchingDecoder`: continues from the prior's core output through the
    remaining levels and predicts the logits.
"""
import functools
from typing import NamedTuple, Optional, Sequence, Tuple

import distrax
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from hpu_jax.latents import (MeanFlags, Temperatures, mixture_head, mixture_mode_mean,
                             normal_head, resolve_mean_flags, resolve_temperatures, tempered)
from hpu_jax.layers import Conv, Part, down_sample, level_blocks, tile_batch

# Defaults of the original LIDC model.
DEFAULT_CHANNELS = (24, 48, 96, 192, 192, 192, 192, 192)
DEFAULT_LATENT_DIMS = (1, 1, 1, 1)


class CoreOutput(NamedTuple):
  decoder_features: jax.Array          # [B, H/2^L', W/2^L', C] core output.
  encoder_features: Tuple[jax.Array, ...]  # per level, finest first.
  distributions: Tuple[distrax.Normal, ...]  # per latent level, coarsest first.
  latents: Tuple[jax.Array, ...]       # per latent level, [B, h_l, w_l, d_l].


class HierarchicalCore(hk.Module):
  """Encoder over all levels plus the latent-drawing truncated decoder."""

  def __init__(self, latent_dims: Sequence[int], channels_per_block: Sequence[int],
               down_channels_per_block: Sequence[int], convs_per_block: int,
               blocks_per_level: int, log_sigma_bound: Optional[float],
               remat: bool = False, coarsest_components: int = 1,
               name: Optional[str] = None):
    super().__init__(name=name)
    self._remat = remat
    self._latent_dims = tuple(latent_dims)
    self._channels = tuple(channels_per_block)
    self._down_channels = tuple(down_channels_per_block)
    self._convs_per_block = convs_per_block
    self._blocks_per_level = blocks_per_level
    self._log_sigma_bound = log_sigma_bound
    self._coarsest_components = int(coarsest_components)

  def _level(self, x, channels, down_channels, name):
    return level_blocks(x, channels, down_channels, self._convs_per_block,
                        self._blocks_per_level, name, self._remat)

  def encode(self, inputs: jax.Array) -> Tuple[jax.Array, ...]:
    """[B, H, W, Cin] -> encoder outputs per level, finest (H x W) first."""
    features = []
    x = inputs
    for level, (c, dc) in enumerate(zip(self._channels, self._down_channels)):
      x = self._level(x, c, dc, name=f'encoder_level_{level}')
      features.append(x)
      if level < len(self._channels) - 1:
        x = down_sample(x)
    return tuple(features)

  def decode(self, encoder_features: Sequence[jax.Array], mean: MeanFlags = False,
             z_q: Optional[Sequence[jax.Array]] = None,
             temperature: Temperatures = 1.0) -> CoreOutput:
    """Draws the latents level by level from the bottleneck upwards (drawn
    ones with their standard deviations times `temperature`; the returned
    distributions are the model's own)."""
    mean_flags = resolve_mean_flags(mean, len(self._latent_dims))
    temperatures = resolve_temperatures(temperature, len(self._latent_dims))
    reversed_features = encoder_features[::-1]
    reversed_channels = self._channels[::-1]
    reversed_down = self._down_channels[::-1]
    x = reversed_features[0]
    distributions, latents = [], []
    for l, latent_dim in enumerate(self._latent_dims):
      components = self._coarsest_components if l == 0 else 1
      if components == 1:
        dist = normal_head(x, latent_dim, l, self._log_sigma_bound)
        mean_z = dist.mean
      else:
        dist = mixture_head(x, latent_dim, components, l, self._log_sigma_bound)
        mean_z = functools.partial(mixture_mode_mean, dist)
      if z_q is not None:
        z = z_q[l]
      elif mean_flags[l]:
        z = mean_z()
      else:
        z = tempered(dist, temperatures[l]).sample(seed=hk.next_rng_key())
      # distrax's mixture samples in float32 whatever its parameters' dtype.
      z = z.astype(x.dtype)
      distributions.append(dist)
      latents.append(z)
      x = jnp.concatenate([z, x], axis=-1)  # z first, as in the original.
      # concat(up_sample(x), features), kept as parts (see `Part`).
      x = [Part(x, upsampled=True), Part(reversed_features[l + 1])]
      x = self._level(x, reversed_channels[l + 1], reversed_down[l + 1],
                      name=f'decoder_level_{l}')
    return CoreOutput(x, tuple(encoder_features), tuple(distributions), tuple(latents))

  def __call__(self, inputs, mean: MeanFlags = False, z_q=None,
               temperature: Temperatures = 1.0) -> CoreOutput:
    return self.decode(self.encode(inputs), mean=mean, z_q=z_q, temperature=temperature)


class StitchingDecoder(hk.Module):
  """f_comb: the rest of the U-Net decoder over the prior's features."""

  def __init__(self, latent_dims: Sequence[int], channels_per_block: Sequence[int],
               down_channels_per_block: Sequence[int], num_classes: int,
               convs_per_block: int, blocks_per_level: int, remat: bool = False,
               name: Optional[str] = None):
    super().__init__(name=name)
    self._remat = remat
    self._num_latent_levels = len(latent_dims)
    self._channels = tuple(channels_per_block)
    self._down_channels = tuple(down_channels_per_block)
    self._num_classes = num_classes
    self._convs_per_block = convs_per_block
    self._blocks_per_level = blocks_per_level

  def __call__(self, encoder_features: Sequence[jax.Array],
               decoder_features: jax.Array) -> jax.Array:
    reversed_features = encoder_features[::-1]
    reversed_channels = self._channels[::-1]
    reversed_down = self._down_channels[::-1]
    x = decoder_features
    for level in range(self._num_latent_levels + 1, len(self._channels)):
      x = [Part(x, upsampled=True), Part(reversed_features[level])]
      x = level_blocks(x, reversed_channels[level], reversed_down[level],
                       self._convs_per_block, self._blocks_per_level,
                       f'level_{level}', self._remat)
    return Conv(self._num_classes, 1, name='logits')(x)


class HPUNetOutput(NamedTuple):
  """What one training forward pass returns; the loss is assembled outside."""
  logits: jax.Array                          # [B, H, W, C]
  # p(z_l | z_<l, x), per latent level; the coarsest is a
  # distrax.MixtureSameFamily when the model has prior_components > 1.
  prior: Tuple[distrax.Distribution, ...]
  posterior: Tuple[distrax.Normal, ...]      # q(z_l | z_<l, x, y), per latent level.
  latents: Tuple[jax.Array, ...]             # the posterior sample fed to the prior.


class SampleOutput(NamedTuple):
  logits: jax.Array                  # [..., B, H, W, C]
  latents: Tuple[jax.Array, ...]     # per latent level.


class HPUNet(hk.Module):
  """Prior, posterior and stitching decoder. Methods are exposed through
  `hk.multi_transform` by `build_hpunet`."""

  def __init__(self, num_classes: int = 2,
               latent_dims: Sequence[int] = DEFAULT_LATENT_DIMS,
               channels_per_block: Sequence[int] = DEFAULT_CHANNELS,
               down_channels_per_block: Optional[Sequence[int]] = None,
               convs_per_block: int = 3, blocks_per_level: int = 3,
               log_sigma_bound: Optional[float] = None, remat: bool = False,
               prior_components: int = 1, name: Optional[str] = 'hpunet'):
    super().__init__(name=name)
    validate_architecture(num_classes, latent_dims, channels_per_block,
                          down_channels_per_block, convs_per_block, blocks_per_level,
                          log_sigma_bound, prior_components)
    channels_per_block = tuple(channels_per_block)
    down_channels_per_block = default_down_channels(channels_per_block,
                                                    down_channels_per_block)
    self.num_classes = num_classes
    self.latent_dims = tuple(latent_dims)
    self.channels_per_block = channels_per_block
    core_args = dict(latent_dims=latent_dims, channels_per_block=channels_per_block,
                     down_channels_per_block=down_channels_per_block,
                     convs_per_block=convs_per_block, blocks_per_level=blocks_per_level,
                     log_sigma_bound=log_sigma_bound, remat=remat)
    self.prior = HierarchicalCore(name='prior', coarsest_components=int(prior_components),
                                  **core_args)
    self.posterior = HierarchicalCore(name='posterior', **core_args)
    self.f_comb = StitchingDecoder(
        latent_dims=latent_dims, channels_per_block=channels_per_block,
        down_channels_per_block=down_channels_per_block, num_classes=num_classes,
        convs_per_block=convs_per_block, blocks_per_level=blocks_per_level,
        remat=remat, name='f_comb')

  def _check_input(self, img):
    check_resolution(img.shape[1], img.shape[2], len(self.channels_per_block))

  def _posterior_input(self, seg, img):
    one_hot = jax.nn.one_hot(seg, self.num_classes, dtype=img.dtype)
    return jnp.concatenate([one_hot, img], axis=-1)  # segmentation first.

  def __call__(self, seg: jax.Array, img: jax.Array) -> HPUNetOutput:
    """Training pass: one posterior sample, teacher-forced prior, logits."""
    self._check_input(img)
    posterior = self.posterior(self._posterior_input(seg, img), mean=False)
    prior = self.prior(img, z_q=posterior.latents)
    logits = self.f_comb(prior.encoder_features, prior.decoder_features)
    return HPUNetOutput(logits, prior.distributions, posterior.distributions,
                        posterior.latents)

  def sample(self, img: jax.Array, mean: MeanFlags = False,
             z_q: Optional[Sequence[jax.Array]] = None,
             temperature: Temperatures = 1.0) -> SampleOutput:
    """One sample per image from the prior: logits [B, H, W, C]."""
    self._check_input(img)
    prior = self.prior(img, mean=mean, z_q=z_q, temperature=temperature)
    logits = self.f_comb(prior.encoder_features, prior.decoder_features)
    return SampleOutput(logits, prior.latents)

  def sample_many(self, img: jax.Array, num_samples: int,
                  mean: MeanFlags = False, temperature: Temperatures = 1.0) -> SampleOutput:
    """`num_samples` samples per image; the prior's encoder runs once and its
    features are shared by all samples. Logits [S, B, H, W, C]."""
    self._check_input(img)
    batch = img.shape[0]
    features = self.prior.encode(img)
    # Only the bottleneck is tiled to [S * B]; the finer features stay [B] and
    # each conv over them runs once per image (see `Conv`).
    shared = features[:-1] + (tile_batch(features[-1], num_samples * batch),)
    prior = self.prior.decode(shared, mean=mean, temperature=temperature)
    logits = self.f_comb(shared, prior.decoder_features)
    unflatten = lambda t: t.reshape((num_samples, batch) + t.shape[1:])
    return SampleOutput(unflatten(logits), tuple(unflatten(z) for z in prior.latents))

  def reconstruct(self, seg: jax.Array, img: jax.Array,
                  mean: MeanFlags = False) -> SampleOutput:
    """Posterior latents (sampled or means) fed to the prior, then f_comb."""
    self._check_input(img)
    posterior = self.posterior(self._posterior_input(seg, img), mean=mean)
    return self.sample(img, z_q=posterior.latents)


def check_resolution(height: int, width: int, num_levels: int) -> None:
  """Raises ValueError unless an image of height x width pixels goes through
  `num_levels` levels (every level but the last halves it)."""
  factor = 2 ** (num_levels - 1)
  if height % factor or width % factor:
    raise ValueError(
        f'image size {height} x {width} is not divisible by 2^(levels-1) = {factor} '
        f'for {num_levels} levels; use a multiple of {factor} or fewer levels.')


def default_down_channels(channels_per_block: Sequence[int],
                          down_channels_per_block: Optional[Sequence[int]] = None
                          ) -> Tuple[int, ...]:
  """The channels inside the residual blocks: as given, or half of each level's.

  The original halves its *default* list even for custom channels; we halve
  the channels actually given (identical for the defaults)."""
  if down_channels_per_block is None:
    return tuple(c // 2 for c in channels_per_block)
  return tuple(down_channels_per_block)


def _checked_int(name: str, value, minimum: int, note: str = '') -> int:
  if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
      or value < minimum:
    raise ValueError(f'{name}={value!r}: expected an int >= {minimum}{note}.')
  return int(value)


def _checked_ints(name: str, values, minimum: int) -> Tuple[int, ...]:
  try:
    values = tuple(values)
  except TypeError:
    pass
  if not isinstance(values, tuple) or not values or not all(
      isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= minimum
      for v in values):
    raise ValueError(f'{name}={values!r}: expected one or more ints >= {minimum}.')
  return tuple(int(v) for v in values)


def validate_architecture(num_classes=2, latent_dims=DEFAULT_LATENT_DIMS,
                          channels_per_block=DEFAULT_CHANNELS, down_channels_per_block=None,
                          convs_per_block=3, blocks_per_level=3, log_sigma_bound=None,
                          prior_components=1) -> None:
  """Checks the architecture arguments of `build_hpunet` (same keywords and
  defaults; `remat` needs no check). Raises ValueError
  '<argument>=<value>: expected ...' naming the keyword, so that a caller can
  prefix its config section ('model.')."""
  _checked_int('num_classes', num_classes, 2)
  latent_dims = _checked_ints('latent_dims', latent_dims, 1)
  channels = _checked_ints('channels_per_block', channels_per_block, 1)
  if len(latent_dims) >= len(channels):
    raise ValueError(
        f'latent_dims={latent_dims}: expected fewer entries than the {len(channels)} '
        f'levels of channels_per_block={channels} (latent levels must be fewer than '
        'levels).')
  if down_channels_per_block is None:
    if min(channels) < 2:
      raise ValueError(
          f'channels_per_block={channels}: expected ints >= 2 when '
          'down_channels_per_block is not given (the blocks use half of each).')
  else:
    down = _checked_ints('down_channels_per_block', down_channels_per_block, 1)
    if len(down) != len(channels):
      raise ValueError(
          f'down_channels_per_block={down}: expected one entry per level of '
          f'channels_per_block ({len(channels)}), got {len(down)}.')
  _checked_int('convs_per_block', convs_per_block, 1)
  _checked_int('blocks_per_level', blocks_per_level, 1)
  if log_sigma_bound is not None and not (
      isinstance(log_sigma_bound, (int, float, np.number))
      and not isinstance(log_sigma_bound, bool) and log_sigma_bound > 0):
    raise ValueError(f'log_sigma_bound={log_sigma_bound!r}: expected None or a positive float.')
  _checked_int('prior_components', prior_components, 1,
               ' (1: the original diagonal Gaussian prior)')


class Model(NamedTuple):
  """Pure functions of the HPU-Net (from `hk.multi_transform`).

  init(rng, seg, img) -> params
  apply.forward(params, rng, seg, img) -> HPUNetOutput
  apply.sample(params, rng, img, mean, z_q, temperature) -> SampleOutput
  apply.sample_many(params, rng, img, num_samples, mean, temperature) -> SampleOutput
  apply.reconstruct(params, rng, seg, img, mean) -> SampleOutput
  """
  init: callable
  forward: callable
  sample: callable
  sample_many: callable
  reconstruct: callable
  latent_dims: Tuple[int, ...]
  num_classes: int


def build_hpunet(num_classes: int = 2, latent_dims=DEFAULT_LATENT_DIMS,
                 channels_per_block=DEFAULT_CHANNELS, down_channels_per_block=None,
                 convs_per_block: int = 3, blocks_per_level: int = 3,
                 log_sigma_bound: Optional[float] = None, remat: bool = False,
                 prior_components: int = 1) -> Model:
  """Builds the pure functions from explicit architecture arguments. `remat`
  recomputes each level's activations in the backward pass (less memory,
  more compute); it changes neither the parameters nor the results.
  `prior_components` > 1 makes the prior of the coarsest latent level a
  mixture of that many diagonal Gaussians (not in the original, which has 1;
  the posterior stays one Gaussian and that level's KL is then estimated from
  the posterior sample, see `losses.kl_per_level`)."""
  # Validate eagerly, before anything is traced.
  validate_architecture(num_classes, latent_dims, channels_per_block,
                        down_channels_per_block, convs_per_block, blocks_per_level,
                        log_sigma_bound, prior_components)
  kwargs = dict(num_classes=num_classes, latent_dims=tuple(latent_dims),
                channels_per_block=tuple(channels_per_block),
                down_channels_per_block=default_down_channels(channels_per_block,
                                                              down_channels_per_block),
                convs_per_block=convs_per_block, blocks_per_level=blocks_per_level,
                log_sigma_bound=log_sigma_bound, prior_components=int(prior_components))

  def fns():
    net = HPUNet(remat=bool(remat), **kwargs)

    def init(seg, img):
      return net(seg, img)

    return init, (net.__call__, net.sample, net.sample_many, net.reconstruct)

  transformed = hk.multi_transform(fns)
  forward, sample, sample_many, reconstruct = transformed.apply
  return Model(transformed.init, forward, sample, sample_many, reconstruct,
               kwargs['latent_dims'], num_classes)


def parameter_split(params) -> dict:
  """Parameter counts of prior, posterior, f_comb and total."""
  counts = {'prior': 0, 'posterior': 0, 'f_comb': 0}
  for module, values in params.items():
    parts = module.split('/')
    part = next((p for p in parts if p in counts), parts[0])
    counts[part] = counts.get(part, 0) + sum(int(v.size) for v in values.values())
  counts['total'] = sum(counts.values())
  return counts


def model_summary(params) -> str:
  """A short table of parameter counts: prior, posterior, f_comb, total."""
  counts = parameter_split(params)
  lines = [f'{"part":<10} {"parameters":>12}']
  lines += [f'{name:<10} {n:>12,}' for name, n in counts.items()]
  return '\n'.join(lines)
