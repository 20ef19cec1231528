"""The building blocks of the HPU-Net: the original's initialisers, 2x
resampling, the `Part`s that let a convolution skip work on upsampled or
per-image inputs, `Conv`, the pre-activated `ResBlock` and the blocks of one
level (`level_blocks`).

Parameter names are those of the original (`hk.Conv2D`'s 'w' and 'b' under
the module names given by the callers), so checkpoints carry over.
"""
import functools
from typing import NamedTuple, Optional, Sequence, Tuple, Union

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg


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


def tile_batch(x: jax.Array, batch: int) -> jax.Array:
  """[B', ...] -> [batch, ...], sample-major (as `sample_many` orders samples)."""
  if x.shape[0] == batch:
    return x
  return jnp.broadcast_to(x[None], (batch // x.shape[0],) + x.shape).reshape(
      (batch,) + x.shape[1:])


def _materialize(parts: Sequence[Part]) -> jax.Array:
  """The full input the parts stand for: upsampled, tiled, concatenated."""
  values = [up_sample(p.value) if p.upsampled else p.value for p in parts]
  batch = max(v.shape[0] for v in values)
  values = [tile_batch(v, batch) for v in values]
  return values[0] if len(values) == 1 else jnp.concatenate(values, axis=-1)


# The sub-pixel form of a 3x3 convolution over a nearest-upsampled input:
# output pixel (2i + a, 2j + b) sees, in each direction, two input pixels of
# the low-resolution map, with taps summed as _PHASE_TAPS[a] says
# (row a of the phase; 2 taps x 3 kernel positions).
_PHASE_TAPS = np.array([[[1, 0, 0], [0, 1, 1]],    # a = 0: rows i-1 | i, i
                        [[1, 1, 0], [0, 0, 1]]],   # a = 1: rows i, i | i+1
                       np.float32)


def _conv(x: jax.Array, w: jax.Array, padding='SAME') -> jax.Array:
  return jax.lax.conv_general_dilated(x, w, (1, 1), padding,
                                      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def conv3x3_of_upsampled(x: jax.Array, w: jax.Array) -> jax.Array:
  """SAME 3x3 conv of up_sample(x), exactly, at x's resolution: the four
  output phases are 2x2 convolutions of x (16 instead of 36 multiply-adds per
  low-resolution pixel and weight pair, 2.25x fewer), run as one VALID 2x2
  conv with 4x the output channels over x padded by one pixel, then
  interleaved. x [B, h, w, C], w [3, 3, C, O] -> [B, 2h, 2w, O]."""
  b, h, wd, c = x.shape
  o = w.shape[-1]
  taps = jnp.asarray(_PHASE_TAPS, w.dtype)
  w_phases = jnp.einsum('aty,bsx,yxco->tscabo', taps, taps, w).reshape(2, 2, c, 4 * o)
  y = _conv(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))), w_phases, 'VALID')
  y = y.reshape(b, h + 1, wd + 1, 2, 2, o)
  # Phase (a, b) is the window starting at (a, b) of its channels.
  rows = [jnp.stack([y[:, a:a + h, p:p + wd, a, p] for p in (0, 1)], axis=3)
          for a in (0, 1)]
  return jnp.stack(rows, axis=2).reshape(b, 2 * h, 2 * wd, o)


def _conv_of_parts(parts: Sequence[Part], w: jax.Array) -> jax.Array:
  """The SAME conv of the parts' concatenation with w [k, k, Cin, O], for one
  upsampled part or parts that share their batch."""
  k = w.shape[0]
  if k == 1:
    (part,) = parts
    y = jnp.einsum('bhwc,cd->bhwd', part.value, w[0, 0])
    return up_sample(y) if part.upsampled else y
  if len(parts) == 1 and parts[0].upsampled and k == 3:
    return conv3x3_of_upsampled(parts[0].value, w)
  x = _materialize(parts)
  if x.shape[1] == 1 and x.shape[2] == 1:
    # On a 1x1 map a SAME conv sees only its centre tap: a matrix product.
    return jnp.einsum('bhwc,cd->bhwd', x, w[k // 2, k // 2])
  return _conv(x, w)


class Conv(hk.Module):
  """A SAME convolution with bias, with the parameters of `hk.Conv2D` (names
  'w' [k, k, Cin, Cout] and 'b' [Cout], same initialisers and init order).

  Given `Part`s instead of one array it computes the conv of their
  concatenation with less work, exactly (same result up to float rounding):
  1x1 convs as matrix products (their weight gradient is then a plain
  matmul, much faster on CPU than a conv-shaped one); an upsampled part at
  low resolution (a 1x1 conv before the upsampling, a 3x3 conv in its
  sub-pixel form, `conv3x3_of_upsampled`); shared parts once per image; and
  on a 1x1 map only the centre tap of the kernel."""

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
    # Each part's slice of the input channels of w.
    offsets = np.cumsum([0] + [p.value.shape[-1] for p in parts])
    slices = [w[:, :, offsets[i]:offsets[i + 1]] for i in range(len(parts))]
    if k == 1:
      groups = [[i] for i in range(len(parts))]
    else:
      # An upsampled part on its own (the sub-pixel form); the others as one
      # convolution of their concatenation where their batches agree.
      groups = [[i] for i, p in enumerate(parts) if p.upsampled]
      rest = [i for i, p in enumerate(parts) if not p.upsampled]
      if len({parts[i].value.shape[0] for i in rest}) <= 1:
        groups += [rest] if rest else []
      else:
        groups += [[i] for i in rest]
    outputs = []
    for group in groups:
      w_group = (slices[group[0]] if len(group) == 1 else
                 jnp.concatenate([slices[i] for i in group], axis=2))
      outputs.append(_conv_of_parts([parts[i] for i in group], w_group))
    batch = max(o.shape[0] for o in outputs)
    out = tile_batch(outputs[0], batch)
    for o in outputs[1:]:
      out = out + tile_batch(o, batch)
    return out + b


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
      residual = Conv(self._n_down_channels, 3, name=f'conv_{i}')(residual)
      if i < self._convs_per_block - 1:
        residual = jax.nn.relu(residual)
    if sum(p.value.shape[-1] for p in parts) != self._n_channels:
      skip = Conv(self._n_channels, 1, name='skip_projection')(parts)
    else:
      skip = _materialize(parts)
    if self._n_down_channels != self._n_channels:
      residual = Conv(self._n_channels, 1, name='residual_projection')(residual)
    return skip + residual


def level_blocks(x, n_channels: int, n_down_channels: int, convs_per_block: int,
                 blocks_per_level: int, name: str, remat: bool) -> jax.Array:
  """The residual blocks of one level, named '{name}_block_{b}'. With `remat`,
  the level's activations are recomputed in the backward pass instead of
  stored (`hk.remat`): less memory for about one more forward pass of compute."""
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
