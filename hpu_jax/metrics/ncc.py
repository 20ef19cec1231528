"""S_NCC of PHiSeg (see CONVENTIONS['sncc'] and ['sncc_undefined']): the
correlation of the samples' expected cross-entropy map with each
annotation's, and the mean over images of a value that can be undefined."""
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


def _sample_means(p, log_args):
  """Means over the samples (axis 1) of p and of log(a + 1e-8), a in log_args(p_i).

  Args:
    p: [B, N, ...] probabilities.
    log_args: maps one sample p_i [B, ...] to a tuple of arrays of its shape.
  Returns:
    (mean_i p_i, tuple of mean_i log(a_i + 1e-8)), each [B, ...].

  The logs dominate the cost of S_NCC, so the loop over samples takes one log
  of a product of `_LOG_CHUNK` floored factors instead of one log per factor.
  """
  n = p.shape[1]

  def chunk(start, size, acc):
    total, logs = acc
    prods = None
    for k in range(size):
      p_i = jax.lax.dynamic_index_in_dim(p, start + k, 1, keepdims=False)
      total = total + p_i
      factors = [_floored(a) for a in log_args(p_i)]
      prods = factors if prods is None else [x * f for x, f in zip(prods, factors)]
    return total, tuple(l + jnp.log(x) for l, x in zip(logs, prods))

  zero = jnp.zeros(p.shape[:1] + p.shape[2:], jnp.float32)
  acc = (zero, tuple(zero for _ in log_args(zero)))
  acc = jax.lax.fori_loop(0, n // _LOG_CHUNK,
                          lambda i, acc: chunk(i * _LOG_CHUNK, _LOG_CHUNK, acc), acc)
  if n % _LOG_CHUNK:
    acc = chunk(n - n % _LOG_CHUNK, n % _LOG_CHUNK, acc)
  total, logs = acc
  return total / n, tuple(l / n for l in logs)


def _sncc_from_maps(e_ss, e_sy, tol):
  """e_ss [B, P], e_sy [B, M, P] -> SNCCResult."""
  r, defined_j = _pearson(e_ss[:, None, :], e_sy, tol)  # [B, M]
  defined = defined_j.all(-1)                            # strict: all M defined
  value = jnp.where(defined, r.mean(-1), jnp.nan)
  return SNCCResult(value=value, defined=defined, per_annotation=r)


@jax.jit
def _sncc_binary(fg_probs, annotations, tol):
  b, n = fg_probs.shape[:2]
  p = fg_probs.astype(jnp.float32).reshape(b, n, -1)     # [B, N, P]
  # CE(q, p_i) is linear in q, so the means over i go inside the sum over c.
  p_bar, (log_fg, log_bg) = _sample_means(p, lambda p_i: (p_i, 1.0 - p_i))
  e_ss = -(p_bar * log_fg + (1.0 - p_bar) * log_bg)      # [B, P]
  fg = (annotations != 0).reshape(b, annotations.shape[1], -1)
  e_sy = -jnp.where(fg, log_fg[:, None], log_bg[:, None])  # [B, M, P]
  return _sncc_from_maps(e_ss, e_sy, tol)


@jax.jit
def _sncc_classes(probs, annotations, tol):
  b, n = probs.shape[:2]
  c = probs.shape[-1]
  p = probs.astype(jnp.float32).reshape(b, n, -1, c)     # [B, N, P, C]
  p_bar, (mean_log_p,) = _sample_means(p, lambda p_i: (p_i,))  # [B, P, C]
  e_ss = -(p_bar * mean_log_p).sum(-1)                   # [B, P]
  labels = annotations.reshape(b, annotations.shape[1], -1)
  onehot = jax.nn.one_hot(labels, c, dtype=jnp.float32)  # [B, M, P, C]
  e_sy = -(onehot * mean_log_p[:, None]).sum(-1)         # [B, M, P]
  return _sncc_from_maps(e_ss, e_sy, tol)


def sncc(sample_probs, annotations, constant_tol: float = SNCC_CONSTANT_TOL) -> SNCCResult:
  """S_NCC of PHiSeg per image (see CONVENTIONS['sncc'], ['sncc_undefined']).

  Args:
    sample_probs: [B, N, H, W] foreground probabilities of a 2-class model, or
      [B, N, H, W, C] class probabilities.
    annotations: [B, M, H, W] integer labels. With foreground probabilities,
      non-zero is foreground; with C classes, labels must lie in [0, C)
      (others one-hot encode to all zeros).
    constant_tol: a map is constant when max - min <= constant_tol *
      max(1, max |value|).
  Returns:
    SNCCResult: value [B] (NaN where undefined), defined [B] bool (False as
    soon as one of the M correlations is undefined), per_annotation [B, M].
  """
  ndim = np.ndim(sample_probs)
  if ndim not in (4, 5):
    raise ValueError(f'sample_probs of shape {np.shape(sample_probs)}: expected '
                     '[B, N, H, W] or [B, N, H, W, C].')
  check_masks('annotations', annotations)
  sp, sa = np.shape(sample_probs), np.shape(annotations)
  if sp[0] != sa[0] or sp[2:4] != sa[2:]:
    raise ValueError(f'sample_probs {sp} and annotations {sa}: batch size and '
                     'H, W must agree.')
  tol = np.float32(constant_tol)
  if ndim == 4:
    return _sncc_binary(sample_probs, annotations, tol)
  return _sncc_classes(sample_probs, annotations, tol)


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
