"""The Hierarchical Probabilistic U-Net (Kohl et al. 2019) in Haiku.

Glossary of shapes:
  B: batch, H, W: image size, C: classes, S: samples.
  Images are [B, H, W, 1] in [0, 1]; segmentations are integer maps [B, H, W].

Layout (matching DeepMind's released model.py for the LIDC defaults):
  * `ResBlock`: pre-activated residual block.
  * `HierarchicalCore`: an encoder over all levels plus a truncated decoder that
    draws one latent per latent level (1x1, 2x2, 4x4, 8x8 for the defaults).
    Used twice with separate weights: the prior (image) and the posterior
    (one-hot segmentation concatenated before the image).
  * `StitchingDecoder`: continues from the prior's core output through the
    remaining levels and predicts the logits.
"""
import functools
from typing import NamedTuple, Optional, Sequence, Tuple, Union

import distrax
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

MeanFlags = Union[bool, Sequence[bool]]

# Defaults of the original LIDC model.
DEFAULT_CHANNELS = (24, 48, 96, 192, 192, 192, 192, 192)
DEFAULT_LATENT_DIMS = (1, 1, 1, 1)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _standard_normal(key: jax.Array, shape: Tuple[int, ...], dtype) -> jax.Array:
  return jax.random.normal(key, shape, dtype)


class _Orthogonal(hk.initializers.Initializer):
  """`hk.initializers.Orthogonal(scale=1.0, axis=-1)`, the original's
  initialiser, computed faster when not traced.

  Haiku's version runs its normal draw and QR op by op, and every new shape
  compiles a handful of small XLA programs. Here the draw is one jitted
  program per shape and the QR runs in LAPACK through scipy, which jax itself
  calls on CPU: the eager `init` of the main-job model took 24 s instead of
  36 s (2-core CPU) and gave bit-identical parameters
  (tests/test_fast_paths.py compares with haiku's values). Under a trace
  (jit, eval_shape) it is haiku's code."""

  def __call__(self, shape, dtype) -> jax.Array:
    if len(shape) < 2:
      raise ValueError(f'Orthogonal initializer requires at least a 2D shape, got {shape}.')
    key = hk.next_rng_key()
    n_rows = int(shape[-1])
    n_cols = int(np.prod(shape)) // n_rows
    matrix_shape = (n_rows, n_cols) if n_rows > n_cols else (n_cols, n_rows)
    normal = _standard_normal(key, matrix_shape, jnp.dtype(dtype))
    try:
      normal = np.asarray(normal)
    except jax.errors.TracerArrayConversionError:  # traced: haiku's code
      q_mat, r_mat = jnp.linalg.qr(normal)
      xp = jnp
    else:
      q_mat, r_mat = scipy.linalg.qr(normal, mode='economic')
      xp = np
    q_mat = q_mat * xp.sign(xp.diag(r_mat))
    if n_rows < n_cols:
      q_mat = q_mat.T
    q_mat = xp.moveaxis(q_mat.reshape((n_rows,) + tuple(shape[:-1])), 0, -1)
    return jnp.asarray(q_mat, dtype)


def _weight_init():
  return _Orthogonal()


def _bias_init():
  return hk.initializers.TruncatedNormal(stddev=0.001)


def down_sample(x: jax.Array) -> jax.Array:
  """2x2 average pool, stride 2, VALID: [B, H, W, C] -> [B, H/2, W/2, C]."""
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def up_sample(x: jax.Array) -> jax.Array:
  """Nearest-neighbour x2: [B, H, W, C] -> [B, 2H, 2W, C]."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def resolve_mean_flags(mean: MeanFlags, num_latent_levels: int) -> Tuple[bool, ...]:
  """A bool for all levels, or one flag per latent level -> tuple of flags."""
  if isinstance(mean, bool):
    return (mean,) * num_latent_levels
  flags = tuple(bool(m) for m in mean)
  if len(flags) != num_latent_levels:
    raise ValueError(f'mean has {len(flags)} flags, expected one per latent level '
                     f'({num_latent_levels}) or a single bool.')
  return flags


def mixture_mode_mean(dist: distrax.MixtureSameFamily) -> jax.Array:
  """The mean of each pixel's most probable component, [..., d]: what
  `mean=True` draws from a mixture (its overall mean can lie between the
  components, where the prior puts little mass)."""
  best = jnp.argmax(dist.mixture_distribution.logits, axis=-1)
  locs = dist.components_distribution.loc                      # [..., K, d]
  return jnp.take_along_axis(locs, best[..., None, None], axis=-2)[..., 0, :]


class Part(NamedTuple):
  """One channel group of a convolution's input, kept apart so that work can
  be saved: `upsampled` means the group is `up_sample(value)` (a 1x1 conv is
  then applied before upsampling, 4x fewer FLOPs), and a `value` with a
  smaller batch than the output is shared by every sample of its image (its
  share of the conv is computed once per image, see `HPUNet.sample_many`)."""
  value: jax.Array       # [B', h, w, c] with B' dividing the output batch.
  upsampled: bool = False


def _as_parts(x) -> list:
  """A list of `Part`s as given, or one array (jax or numpy) as one part."""
  if isinstance(x, (list, tuple)) and x and isinstance(x[0], Part):
    return list(x)
  return [Part(jnp.asarray(x))]


def _tile(x: jax.Array, batch: int) -> jax.Array:
  """[B', ...] -> [batch, ...], sample-major (as `sample_many` orders samples)."""
  if x.shape[0] == batch:
    return x
  return jnp.broadcast_to(x[None], (batch // x.shape[0],) + x.shape).reshape(
      (batch,) + x.shape[1:])


def _materialize(parts: Sequence[Part]) -> jax.Array:
  """The full input the parts stand for: upsampled, tiled, concatenated."""
  values = [up_sample(p.value) if p.upsampled else p.value for p in parts]
  batch = max(v.shape[0] for v in values)
  values = [_tile(v, batch) for v in values]
  return values[0] if len(values) == 1 else jnp.concatenate(values, axis=-1)


class Conv(hk.Module):
  """A SAME convolution with bias, with the parameters of `hk.Conv2D` (names
  'w' [k, k, Cin, Cout] and 'b' [Cout], same initialisers and init order).

  Given `Part`s instead of one array it computes the conv of their
  concatenation: 1x1 convs as matrix products (their weight gradient is then
  a plain matmul, much faster on CPU than a conv-shaped one), upsampled parts
  convolved at low resolution when that is exact (1x1), and shared parts
  once per image."""

  def __init__(self, channels: int, kernel: int, name: Optional[str] = None):
    super().__init__(name=name)
    self._channels = channels
    self._kernel = kernel

  def __call__(self, x: Union[jax.Array, Sequence[Part]]) -> jax.Array:
    parts = _as_parts(x)
    dtype = parts[0].value.dtype
    cin = sum(p.value.shape[-1] for p in parts)
    k = self._kernel
    w = hk.get_parameter('w', (k, k, cin, self._channels), dtype, init=_weight_init())
    b = hk.get_parameter('b', (self._channels,), dtype, init=_bias_init())
    if k != 1:
      same_batch = len({p.value.shape[0] for p in parts}) == 1
      groups = [parts] if same_batch else [[p] for p in parts]
    else:
      groups = [[p] for p in parts]
    outputs, start = [], 0
    for group in groups:
      c = sum(p.value.shape[-1] for p in group)
      w_group = w[:, :, start:start + c]
      start += c
      if k == 1:
        (part,) = group
        y = jnp.einsum('bhwc,cd->bhwd', part.value, w_group[0, 0])
        outputs.append(up_sample(y) if part.upsampled else y)
      else:
        outputs.append(jax.lax.conv_general_dilated(
            _materialize(group), w_group, (1, 1), 'SAME',
            dimension_numbers=('NHWC', 'HWIO', 'NHWC')))
    batch = max(o.shape[0] for o in outputs)
    out = _tile(outputs[0], batch)
    for o in outputs[1:]:
      out = out + _tile(o, batch)
    return out + b


def _conv(channels: int, kernel: int, name: str) -> Conv:
  return Conv(channels, kernel, name=name)


class ResBlock(hk.Module):
  """Pre-activated residual block: skip + convs(relu(x)), no final activation."""

  def __init__(self, n_channels: int, n_down_channels: int, convs_per_block: int,
               name: Optional[str] = None):
    super().__init__(name=name)
    self._n_channels = n_channels
    self._n_down_channels = n_down_channels
    self._convs_per_block = convs_per_block

  def __call__(self, x: Union[jax.Array, Sequence[Part]]) -> jax.Array:
    """x: an array [B, H, W, C], or the `Part`s of a concatenated input."""
    parts = _as_parts(x)
    # relu commutes with upsampling and tiling, so it is applied per part.
    activated = [p._replace(value=jax.nn.relu(p.value)) for p in parts]
    residual = activated
    for i in range(self._convs_per_block):
      residual = _conv(self._n_down_channels, 3, name=f'conv_{i}')(residual)
      if i < self._convs_per_block - 1:
        residual = jax.nn.relu(residual)
    if sum(p.value.shape[-1] for p in parts) != self._n_channels:
      skip = _conv(self._n_channels, 1, name='skip_projection')(parts)
    else:
      skip = _materialize(parts)
    if self._n_down_channels != self._n_channels:
      residual = _conv(self._n_channels, 1, name='residual_projection')(residual)
    return skip + residual


def _level_blocks(x, n_channels: int, n_down_channels: int, convs_per_block: int,
                  blocks_per_level: int, name: str, remat: bool) -> jax.Array:
  """The residual blocks of one level. With `remat`, the level's activations
  are recomputed in the backward pass instead of stored (`hk.remat`): less
  memory for about one more forward pass of compute."""
  def run(x):
    for b in range(blocks_per_level):
      x = ResBlock(n_channels, n_down_channels, convs_per_block, name=f'{name}_block_{b}')(x)
    return x

  if not remat:
    return run(x)
  parts = _as_parts(x)
  flags = tuple(p.upsampled for p in parts)  # static: closed over, not traced.
  return hk.remat(lambda *values: run([Part(v, f) for v, f in zip(values, flags)]))(
      *[p.value for p in parts])


class CoreOutput(NamedTuple):
  decoder_features: jax.Array          # [B, H/2^L', W/2^L', C] core output.
  encoder_features: Tuple[jax.Array, ...]  # per level, finest first.
  distributions: Tuple[distrax.Normal, ...]  # per latent level, coarsest first.
  latents: Tuple[jax.Array, ...]       # per latent level, [B, h_l, w_l, d_l].


def _bounded(log_sigma: jax.Array, bound: Optional[float]) -> jax.Array:
  if bound is None:
    return log_sigma
  # Numerical guard (not in the original): identity inside the bound.
  return jnp.clip(log_sigma, -bound, bound)


# The latent heads are functions, not methods, so that their parameters keep
# the original's names (a method would add its own name scope).
def _normal_head(x, latent_dim: int, level: int,
                 log_sigma_bound: Optional[float]) -> distrax.Normal:
  """The original's head: a 1x1 conv to (mu, log sigma) of a diagonal Gaussian."""
  mu_log_sigma = Conv(2 * latent_dim, 1, name=f'latent_head_{level}')(x)
  mu = mu_log_sigma[..., :latent_dim]
  log_sigma = _bounded(mu_log_sigma[..., latent_dim:], log_sigma_bound)
  return distrax.Normal(loc=mu, scale=jnp.exp(log_sigma))


def _mixture_head(x, latent_dim: int, components: int, level: int,
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
    return _level_blocks(x, channels, down_channels, self._convs_per_block,
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
             z_q: Optional[Sequence[jax.Array]] = None) -> CoreOutput:
    """Draws the latents level by level from the bottleneck upwards."""
    mean_flags = resolve_mean_flags(mean, len(self._latent_dims))
    reversed_features = encoder_features[::-1]
    reversed_channels = self._channels[::-1]
    reversed_down = self._down_channels[::-1]
    x = reversed_features[0]
    distributions, latents = [], []
    for l, latent_dim in enumerate(self._latent_dims):
      components = self._coarsest_components if l == 0 else 1
      if components == 1:
        dist = _normal_head(x, latent_dim, l, self._log_sigma_bound)
        mean_z = dist.mean
      else:
        dist = _mixture_head(x, latent_dim, components, l, self._log_sigma_bound)
        mean_z = functools.partial(mixture_mode_mean, dist)
      if z_q is not None:
        z = z_q[l]
      elif mean_flags[l]:
        z = mean_z()
      else:
        z = dist.sample(seed=hk.next_rng_key())
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

  def __call__(self, inputs, mean: MeanFlags = False, z_q=None) -> CoreOutput:
    return self.decode(self.encode(inputs), mean=mean, z_q=z_q)


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
      x = _level_blocks(x, reversed_channels[level], reversed_down[level],
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
    channels_per_block = tuple(channels_per_block)
    down_channels_per_block = checked_down_channels(
        num_classes, latent_dims, channels_per_block, down_channels_per_block,
        convs_per_block, blocks_per_level, log_sigma_bound)
    self.num_classes = num_classes
    self.latent_dims = tuple(latent_dims)
    self.channels_per_block = channels_per_block
    core_args = dict(latent_dims=latent_dims, channels_per_block=channels_per_block,
                     down_channels_per_block=down_channels_per_block,
                     convs_per_block=convs_per_block, blocks_per_level=blocks_per_level,
                     log_sigma_bound=log_sigma_bound, remat=remat)
    prior_components = checked_prior_components(prior_components)
    self.prior = HierarchicalCore(name='prior', coarsest_components=prior_components,
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
             z_q: Optional[Sequence[jax.Array]] = None) -> SampleOutput:
    """One sample per image from the prior: logits [B, H, W, C]."""
    self._check_input(img)
    prior = self.prior(img, mean=mean, z_q=z_q)
    logits = self.f_comb(prior.encoder_features, prior.decoder_features)
    return SampleOutput(logits, prior.latents)

  def sample_many(self, img: jax.Array, num_samples: int,
                  mean: MeanFlags = False) -> SampleOutput:
    """`num_samples` samples per image; the prior's encoder runs once and its
    features are shared by all samples. Logits [S, B, H, W, C]."""
    self._check_input(img)
    batch = img.shape[0]
    features = self.prior.encode(img)
    # Only the bottleneck is tiled to [S * B]; the finer features stay [B] and
    # each conv over them runs once per image (see `Conv`).
    shared = features[:-1] + (_tile(features[-1], num_samples * batch),)
    prior = self.prior.decode(shared, mean=mean)
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
  factor = 2 ** (num_levels - 1)
  if height % factor or width % factor:
    raise ValueError(
        f'image size {height} x {width} is not divisible by 2^(levels-1) = {factor} '
        f'for {num_levels} levels; use a multiple of {factor} or fewer levels.')


def checked_down_channels(num_classes, latent_dims, channels_per_block,
                          down_channels_per_block, convs_per_block, blocks_per_level,
                          log_sigma_bound) -> Tuple[int, ...]:
  """Validates the architecture and returns the down-sampled channels.

  The original halves its *default* list even for custom channels; we halve
  the channels actually given (identical for the defaults)."""
  if down_channels_per_block is None:
    down_channels_per_block = tuple(c // 2 for c in channels_per_block)
  down_channels_per_block = tuple(down_channels_per_block)
  validate_architecture(num_classes, latent_dims, channels_per_block,
                        down_channels_per_block, convs_per_block, blocks_per_level,
                        log_sigma_bound)
  return down_channels_per_block


def checked_prior_components(prior_components) -> int:
  """The number of mixture components of the coarsest prior, validated."""
  if isinstance(prior_components, (bool, np.bool_)) or not isinstance(
      prior_components, (int, np.integer)) or prior_components < 1:
    raise ValueError(f'prior_components={prior_components!r}: expected an int >= 1 '
                     '(1: the original diagonal Gaussian prior).')
  return int(prior_components)


def validate_architecture(num_classes, latent_dims, channels_per_block,
                          down_channels_per_block, convs_per_block, blocks_per_level,
                          log_sigma_bound) -> None:
  """Raises ValueError naming the field when the architecture is inconsistent."""
  if num_classes < 2:
    raise ValueError(f'num_classes={num_classes}: expected at least 2.')
  if len(latent_dims) < 1 or any(d < 1 for d in latent_dims):
    raise ValueError(f'latent_dims={tuple(latent_dims)}: expected one or more positive ints.')
  if len(latent_dims) >= len(channels_per_block):
    raise ValueError(
        f'latent_dims has {len(latent_dims)} levels but channels_per_block has '
        f'{len(channels_per_block)}: latent levels must be fewer than levels.')
  if len(down_channels_per_block) != len(channels_per_block):
    raise ValueError('down_channels_per_block must have one entry per level '
                     f'({len(channels_per_block)}), got {len(down_channels_per_block)}.')
  if any(c < 1 for c in channels_per_block) or any(c < 1 for c in down_channels_per_block):
    raise ValueError(f'channels_per_block={tuple(channels_per_block)} and '
                     f'down_channels_per_block={tuple(down_channels_per_block)} must be positive.')
  if convs_per_block < 1 or blocks_per_level < 1:
    raise ValueError('convs_per_block and blocks_per_level must be at least 1.')
  if log_sigma_bound is not None and not log_sigma_bound > 0:
    raise ValueError(f'log_sigma_bound={log_sigma_bound}: expected None or a positive float.')


class Model(NamedTuple):
  """Pure functions of the HPU-Net (from `hk.multi_transform`).

  init(rng, seg, img) -> params
  apply.forward(params, rng, seg, img) -> HPUNetOutput
  apply.sample(params, rng, img, mean, z_q) -> SampleOutput
  apply.sample_many(params, rng, img, num_samples, mean) -> SampleOutput
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
  kwargs = dict(num_classes=num_classes, latent_dims=tuple(latent_dims),
                channels_per_block=tuple(channels_per_block),
                down_channels_per_block=down_channels_per_block,
                convs_per_block=convs_per_block, blocks_per_level=blocks_per_level,
                log_sigma_bound=log_sigma_bound)
  # Validate eagerly, before anything is traced.
  kwargs['down_channels_per_block'] = checked_down_channels(**kwargs)

  prior_components = checked_prior_components(prior_components)

  def fns():
    net = HPUNet(remat=bool(remat), prior_components=prior_components, **kwargs)

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
