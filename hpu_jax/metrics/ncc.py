"""S_NCC of PHiSeg (see CONVENTIONS['sncc'] and ['sncc_undefined']): the
correlation of the samples' expected cross-entropy map with each
annotation's, and the mean over images of a value that can be undefined.

Precision. The cross-entropies take log(p_c + 1e-8) of every class
probability, so a probability near 0 must be known to its own relative
precision, not to the absolute precision of 1 - (a probability near 1): in
float32, 1 - p(background) is a multiple of 2**-24 ~ 6e-8 near 0, and every
foreground probability below 3e-8 becomes 0. `sncc_from_logits` (what
`hpu_jax.evaluate` uses) takes the logits, or the foreground logit
d = log p(fg) - log p(bg), and computes p(fg) = sigmoid(d) and p(bg) =
sigmoid(-d) each directly; `sncc` with [B, N, H, W, C] class probabilities
(each class's own softmax output) is as good. Only `sncc` with [B, N, H, W]
foreground probabilities has to take 1 - p for the background.
"""
from typing import NamedTuple, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from hpu_jax.metrics.checks import check_masks

# Floor inside the log of the S_NCC cross-entropies (PHiSeg's value).
SNCC_LOG_FLOOR = 1e-8
# A map counts as constant when max - min <= tol * max(1, max |value|).
SNCC_CONSTANT_TOL = 1e-6


class SNCCResult(NamedTuple):
  value: jax.Array           # [B] S_NCC, NaN where undefined.
  defined: jax.Array         # [B] bool, True where all M correlations are defined.
  per_annotation: jax.Array  # [B, M] correlation of E_ss with E_sy^j, NaN where undefined.


def _is_constant(x, tol):
  """[..., P] -> [...] bool: max - min <= tol * max(1, max |x|)."""
  spread = x.max(-1) - x.min(-1)
  scale = jnp.maximum(1.0, jnp.abs(x).max(-1))
  return spread <= tol * scale


def _pearson(x, y, tol):
  """Pearson correlation over the last axis, NaN where x or y is constant."""
  xc = x - x.mean(-1, keepdims=True)
  yc = y - y.mean(-1, keepdims=True)
  cov = (xc * yc).mean(-1)
  sx = jnp.sqrt((xc * xc).mean(-1))
  sy = jnp.sqrt((yc * yc).mean(-1))
  defined = ~_is_constant(x, tol) & ~_is_constant(y, tol)
  r = jnp.clip(cov / jnp.where(defined, sx * sy, 1.0), -1.0, 1.0)
  return jnp.where(defined, r, jnp.nan), defined


# Factors of the products in `_sample_means`: 4 floored probabilities multiply
# to at least 1e-32, still a normal float32.
_LOG_CHUNK = 4


def _floored(p):
  """p + 1e-8 for p >= 0. The max keeps the floor when XLA rewrites
  (1 - p) + 1e-8 as (1 + 1e-8) - p, which is 0 in float32 at p = 1."""
  return jnp.maximum(p + SNCC_LOG_FLOOR, SNCC_LOG_FLOOR)


def _sample_means(x, probs_of):
  """Means over the samples (axis 1) of probabilities and of their floored logs.

  Args:
    x: [B, N, ...] one array per sample (probabilities or logits).
    probs_of: maps one sample x_i [B, ...] to a tuple of probability arrays
      (of a shape that does not depend on i).
  Returns:
    (tuple of mean_i p_i, tuple of mean_i log(p_i + 1e-8)), one entry per
    array of probs_of, each [B, ...].

  The logs dominate the cost of S_NCC, so the loop over samples takes one log
  of a product of `_LOG_CHUNK` floored factors instead of one log per factor.
  """
  n = x.shape[1]

  def chunk(start, size, acc):
    totals, logs = acc
    prods = None
    for k in range(size):
      x_i = jax.lax.dynamic_index_in_dim(x, start + k, 1, keepdims=False)
      probs = probs_of(x_i)
      totals = tuple(t + p for t, p in zip(totals, probs))
      factors = [_floored(p) for p in probs]
      prods = factors if prods is None else [q * f for q, f in zip(prods, factors)]
    return totals, tuple(l + jnp.log(q) for l, q in zip(logs, prods))

  shapes = jax.eval_shape(probs_of, jax.ShapeDtypeStruct(x.shape[:1] + x.shape[2:], x.dtype))
  zeros = tuple(jnp.zeros(s.shape, jnp.float32) for s in shapes)
  acc = (zeros, zeros)
  acc = jax.lax.fori_loop(0, n // _LOG_CHUNK,
                          lambda i, acc: chunk(i * _LOG_CHUNK, _LOG_CHUNK, acc), acc)
  if n % _LOG_CHUNK:
    acc = chunk(n - n % _LOG_CHUNK, n % _LOG_CHUNK, acc)
  totals, logs = acc
  return tuple(t / n for t in totals), tuple(l / n for l in logs)


def _binary_probs(d):
  """(sigmoid(d), sigmoid(-d)): the foreground and background probabilities of
  the foreground logit d = log p(fg) - log p(bg), each to float32 relative
  precision (neither is 1 minus the other); d = +-inf gives exactly 1 and 0."""
  e = jnp.exp(-jnp.abs(d))   # in [0, 1]: no overflow
  large = 1.0 / (1.0 + e)    # the probability of the likelier class
  small = e * large          # the other one, as accurate as e
  positive = d >= 0
  return jnp.where(positive, large, small), jnp.where(positive, small, large)


def _sncc_from_maps(e_ss, e_sy, tol):
  """e_ss [B, P], e_sy [B, M, P] -> SNCCResult."""
  r, defined_j = _pearson(e_ss[:, None, :], e_sy, tol)  # [B, M]
  defined = defined_j.all(-1)                            # strict: all M defined
  value = jnp.where(defined, r.mean(-1), jnp.nan)
  return SNCCResult(value=value, defined=defined, per_annotation=r)


def _binary_maps(x, annotations, probs_of, tol):
  """S_NCC of 2 classes from one array per sample, x [B, N, ...]."""
  b, n = x.shape[:2]
  x = x.astype(jnp.float32).reshape(b, n, -1)            # [B, N, P]
  # CE(q, p_i) is linear in q, so the means over i go inside the sum over c.
  (fg_bar, bg_bar), (log_fg, log_bg) = _sample_means(x, probs_of)
  e_ss = -(fg_bar * log_fg + bg_bar * log_bg)            # [B, P]
  fg = (annotations != 0).reshape(b, annotations.shape[1], -1)
  e_sy = -jnp.where(fg, log_fg[:, None], log_bg[:, None])  # [B, M, P]
  return _sncc_from_maps(e_ss, e_sy, tol)


@jax.jit
def _sncc_binary(fg_probs, annotations, tol):
  return _binary_maps(fg_probs, annotations, lambda p_i: (p_i, 1.0 - p_i), tol)


@jax.jit
def _sncc_fg_logits(fg_logits, annotations, tol):
  return _binary_maps(fg_logits, annotations, _binary_probs, tol)


@jax.jit
def _sncc_classes(probs, annotations, tol):
  b, n = probs.shape[:2]
  c = probs.shape[-1]
  p = probs.astype(jnp.float32).reshape(b, n, -1, c)     # [B, N, P, C]
  (p_bar,), (mean_log_p,) = _sample_means(p, lambda p_i: (p_i,))  # [B, P, C]
  e_ss = -(p_bar * mean_log_p).sum(-1)                   # [B, P]
  labels = annotations.reshape(b, annotations.shape[1], -1)
  onehot = jax.nn.one_hot(labels, c, dtype=jnp.float32)  # [B, M, P, C]
  e_sy = -(onehot * mean_log_p[:, None]).sum(-1)         # [B, M, P]
  return _sncc_from_maps(e_ss, e_sy, tol)


def sncc(sample_probs, annotations, constant_tol: float = SNCC_CONSTANT_TOL) -> SNCCResult:
  """S_NCC of PHiSeg per image (see CONVENTIONS['sncc'], ['sncc_undefined']).

  Args:
    sample_probs: [B, N, H, W] foreground probabilities of a 2-class model, or
      [B, N, H, W, C] class probabilities. Foreground probabilities alone
      lose the background's precision near p = 1 (it is 1 - p in float32);
      give class probabilities or use `sncc_from_logits` when the model's
      outputs saturate.
    annotations: [B, M, H, W] integer labels. With foreground probabilities,
      non-zero is foreground; with C classes, labels must lie in [0, C)
      (others one-hot encode to all zeros).
    constant_tol: a map is constant when max - min <= constant_tol *
      max(1, max |value|).
  Returns:
    SNCCResult: value [B] (NaN where undefined), defined [B] bool (False as
    soon as one of the M correlations is undefined), per_annotation [B, M].
  """
  _check_inputs('sample_probs', sample_probs, annotations)
  tol = np.float32(constant_tol)
  if np.ndim(sample_probs) == 4:
    return _sncc_binary(sample_probs, annotations, tol)
  return _sncc_classes(sample_probs, annotations, tol)


def _check_inputs(name, x, annotations):
  ndim = np.ndim(x)
  if ndim not in (4, 5):
    raise ValueError(f'{name} of shape {np.shape(x)}: expected [B, N, H, W] or '
                     '[B, N, H, W, C].')
  check_masks('annotations', annotations)
  sx, sa = np.shape(x), np.shape(annotations)
  if sx[0] != sa[0] or sx[2:4] != sa[2:]:
    raise ValueError(f'{name} {sx} and annotations {sa}: batch size and '
                     'H, W must agree.')


def sncc_from_logits(sample_logits, annotations,
                     constant_tol: float = SNCC_CONSTANT_TOL) -> SNCCResult:
  """S_NCC of PHiSeg per image from logits, the same convention as `sncc`
  (CE with log(p + 1e-8) of the softmax probabilities), with every
  probability computed to its own relative precision.

  Args:
    sample_logits: [B, N, H, W, C] logits, or [B, N, H, W] foreground logits
      d = logit(fg) - logit(bg) = log p(fg) - log p(bg) of a 2-class model
      (+-inf allowed: a probability of exactly 1 / 0). With C = 2 the two
      classes' probabilities are sigmoid(+-d) of d = logits[..., 1] -
      logits[..., 0]; with C > 2 they are the float32 softmax.
    annotations: [B, M, H, W] integer labels, as for `sncc`.
    constant_tol: as for `sncc`.
  Returns:
    SNCCResult, as `sncc`.
  """
  _check_inputs('sample_logits', sample_logits, annotations)
  tol = np.float32(constant_tol)
  x = jnp.asarray(sample_logits, jnp.float32)
  if x.ndim == 5:
    if x.shape[-1] == 2:
      x = x[..., 1] - x[..., 0]
    else:
      return _sncc_classes(jax.nn.softmax(x, axis=-1), annotations, tol)
  return _sncc_fg_logits(x, annotations, tol)


def foreground_logit(class_probs) -> jax.Array:
  """[..., 2] softmax probabilities -> [...] foreground logit
  log p(fg) - log p(bg) (float32), from each class's own probability, so that
  `sncc_from_logits` recovers both to their relative precision (a
  probability of 0 gives +-inf)."""
  p = jnp.asarray(class_probs, jnp.float32)
  if p.shape[-1:] != (2,):
    raise ValueError(f'class_probs of shape {p.shape}: expected [..., 2] '
                     '(background, foreground).')
  return jnp.log(p[..., 1]) - jnp.log(p[..., 0])


def mean_defined(values, defined) -> Tuple[float, int]:
  """(mean over the defined entries, number of undefined entries).

  The mean is NaN when nothing is defined. A non-finite value marked defined
  is an error, so a NaN is never averaged away or hidden.
  """
  values = np.asarray(values, np.float64)
  defined = np.asarray(defined, bool)
  if values.shape != defined.shape:
    raise ValueError(f'values {values.shape} and defined {defined.shape} differ.')
  kept = values[defined]
  if not np.all(np.isfinite(kept)):
    raise ValueError('a value marked defined is not finite.')
  mean = float(kept.mean()) if kept.size else float('nan')
  return mean, int(defined.size - kept.size)
