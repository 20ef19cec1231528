"""Metrics for ambiguous segmentation: GED, HM-IoU, S_NCC and mode frequencies.

Glossary of shapes (every function takes a batch of images; the caller loops
over batches, so memory stays bounded):

    B  images in the batch          N  model samples per image
    M  annotations per image        K  known modes (synthetic data)
    H, W  pixels                    C  classes of a probability map

Masks are binary foreground masks: any non-zero value is foreground, so bool,
0/1 integers and 0/255 images all work. `hpu_jax.sampling` returns samples as
[S, B, H, W]; transpose them to [B, S, H, W] first.

    dm = distance_matrices(samples, annotations)     # all pairs, one pass
    ged = ged_from_distances(dm)                     # GEDResult of [B] arrays
    hm = hungarian_matched_iou_from_distances(dm.sy) # [B] numpy
    nc = sncc(sample_probs, annotations)             # SNCCResult
    mean, n_undefined = mean_defined(nc.value, nc.defined)

The jitted kernels are module-level functions, so repeated calls with the same
shapes and dtypes reuse one compilation (a smaller last batch compiles once
more). The conventions are stated in `CONVENTIONS`, written into report.json.
"""
import math
from typing import NamedTuple, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

# Floor inside the log of the S_NCC cross-entropies (PHiSeg's value).
SNCC_LOG_FLOOR = 1e-8
# A map counts as constant when max - min <= tol * max(1, max |value|).
SNCC_CONSTANT_TOL = 1e-6

CONVENTIONS = {
    'distance': ('d(a, b) = 1 - IoU(a, b) of the foreground (non-zero) pixels '
                 'of two binary masks, with d = 0 when both masks are empty and '
                 'd = 1 when exactly one is empty.'),
    'ged': ('GED is the squared generalised energy distance per image, '
            '2 E d(S, Y) - E d(S, S\') - E d(Y, Y\'), each expectation the mean '
            'over all N*M, N*N and M*M pairs with the diagonal (d = 0) '
            'included, so it is biased upwards by about D_ss / N + D_yy / M and '
            'only comparable at the same number of samples N; the data-set GED '
            'is the mean over images.'),
    'hm_iou': ('HM-IoU repeats the N samples and the M annotations up to '
               'lcm(N, M) masks each, finds the optimal one-to-one assignment '
               'on the cost d (scipy.optimize.linear_sum_assignment) and '
               'averages 1 - d over the lcm(N, M) matched pairs, per image.'),
    'sncc': ('S_NCC (PHiSeg) is the mean over annotations j of the Pearson '
             'correlation over pixels between E_ss = mean_i CE(mean_i p_i, p_i) '
             'and E_sy^j = mean_i CE(y_j, p_i), with '
             'CE(q, p) = -sum_c q_c log(p_c + 1e-8), p_i the softmax '
             'probabilities of sample i (background 1 - p for a foreground '
             'probability p) and y_j the one-hot annotation j.'),
    'sncc_undefined': ('A correlation is undefined when either map is constant '
                       'over the pixels (max - min <= 1e-6 * max(1, max |value|)), '
                       'an image is undefined (NaN) when any of its M '
                       'correlations is undefined, and data-set S_NCC is the mean '
                       'over defined images reported together with the number of '
                       'undefined images.'),
    'mode_assignment': ('A sample is assigned to the known mode of largest IoU '
                        '(ties to the lowest mode index, two empty masks have '
                        'IoU 1), or to an extra "unmatched" class when that IoU '
                        'is below min_iou (0.5 unless stated), and mode frequencies are compared with '
                        'the true ones by the total variation distance '
                        '0.5 * sum |p - q| including the unmatched class.'),
}


class DistanceMatrices(NamedTuple):
  sy: jax.Array  # [B, N, M] d(S_i, Y_j)
  ss: jax.Array  # [B, N, N] d(S_i, S_k), zero diagonal
  yy: jax.Array  # [B, M, M] d(Y_j, Y_l), zero diagonal


class GEDResult(NamedTuple):
  ged: jax.Array   # [B] squared GED estimate: 2 d_sy - d_ss - d_yy.
  d_sy: jax.Array  # [B] mean of d over the N*M sample-annotation pairs.
  d_ss: jax.Array  # [B] mean of d over the N*N sample pairs, diagonal included.
  d_yy: jax.Array  # [B] mean of d over the M*M annotation pairs, diagonal included.


class SNCCResult(NamedTuple):
  value: jax.Array           # [B] S_NCC, NaN where undefined.
  defined: jax.Array         # [B] bool, True where all M correlations are defined.
  per_annotation: jax.Array  # [B, M] correlation of E_ss with E_sy^j, NaN where undefined.


# ----------------------------------------------------------------------------
# Checks (on shapes only, outside jit).

def _check_masks(name, x, ndim=4):
  if np.ndim(x) != ndim:
    raise ValueError(f'{name} of shape {np.shape(x)}: expected {ndim} dims '
                     '[B, N, H, W].')
  if 0 in np.shape(x)[:2]:
    raise ValueError(f'{name} of shape {np.shape(x)}: empty batch or set.')


def _check_pair(name_a, a, name_b, b):
  _check_masks(name_a, a)
  _check_masks(name_b, b)
  sa, sb = np.shape(a), np.shape(b)
  if sa[0] != sb[0] or sa[2:] != sb[2:]:
    raise ValueError(f'{name_a} {sa} and {name_b} {sb}: batch size and '
                     'H, W must agree.')


# ----------------------------------------------------------------------------
# IoU kernels.

def _pack_bits(masks):
  """[B, N, H, W] any dtype -> [B, N, ceil(H*W / 32)] uint32 of foreground bits.

  Intersections are then popcounts of AND-ed words: exact integer counts, and
  on CPU several times faster than a float matmul of 0/1 masks (32 pixels per
  operation instead of one multiply-add per pixel).
  """
  b, n = masks.shape[:2]
  fg = (masks != 0).reshape(b, n, -1)
  pad = -fg.shape[-1] % 32
  if pad:
    fg = jnp.pad(fg, ((0, 0), (0, 0), (0, pad)))
  bits = fg.reshape(b, n, -1, 32).astype(jnp.uint32)
  # Distinct powers of two: the sum is the bitwise OR and cannot overflow.
  return (bits << jnp.arange(32, dtype=jnp.uint32)).sum(-1, dtype=jnp.uint32)


def _count(words):
  """Number of set bits over the last axis, as float32 (exact below 2^24)."""
  return jax.lax.population_count(words).sum(-1, dtype=jnp.int32).astype(jnp.float32)


def _intersections(wa, wb):
  """[B, N, W], [B, M, W] packed masks -> [B, N, M] float32 intersection counts."""
  def row(_, wa_i):  # [B, W]: one mask of a against all of b
    return None, _count(wa_i[:, None, :] & wb)
  # A scan over the N rows keeps the AND-ed words in cache ([B, M, W] at a time).
  _, inter = jax.lax.scan(row, None, jnp.moveaxis(wa, 1, 0))  # [N, B, M]
  return jnp.moveaxis(inter, 0, 1)


def _iou_from_counts(inter, area_a, area_b):
  """IoU from intersections [B, N, M] and areas [B, N], [B, M]; empty/empty -> 1."""
  union = area_a[:, :, None] + area_b[:, None, :] - inter
  return jnp.where(union > 0, inter / jnp.maximum(union, 1.0), 1.0)


def _pairwise_iou(a, b):
  wa, wb = _pack_bits(a), _pack_bits(b)
  return _iou_from_counts(_intersections(wa, wb), _count(wa), _count(wb))


@jax.jit
def _pairwise_iou_distance(a, b):
  return 1.0 - _pairwise_iou(a, b)


@jax.jit
def _distance_matrices(samples, annotations):
  n = samples.shape[1]
  w = jnp.concatenate([_pack_bits(samples), _pack_bits(annotations)], axis=1)
  area = _count(w)                                        # [B, N+M]
  d = 1.0 - _iou_from_counts(_intersections(w, w), area, area)  # [B, N+M, N+M]
  return DistanceMatrices(sy=d[:, :n, n:], ss=d[:, :n, :n], yy=d[:, n:, n:])


@jax.jit
def _ged_from_distances(dm):
  d_sy = dm.sy.mean(axis=(1, 2))
  d_ss = dm.ss.mean(axis=(1, 2))
  d_yy = dm.yy.mean(axis=(1, 2))
  return GEDResult(ged=2.0 * d_sy - d_ss - d_yy, d_sy=d_sy, d_ss=d_ss, d_yy=d_yy)


def pairwise_iou_distance(a, b) -> jax.Array:
  """d = 1 - IoU of the foreground between every pair of masks of one image.

  Args:
    a: [B, N, H, W] masks (bool or integer; non-zero is foreground).
    b: [B, M, H, W] masks.
  Returns:
    [B, N, M] float32; 0 when both masks are empty, 1 when exactly one is.
    Counts are exact integers; the ratio is exact to float32 rounding for
    masks of fewer than 2^24 pixels.
  """
  _check_pair('a', a, 'b', b)
  return _pairwise_iou_distance(a, b)


def distance_matrices(samples, annotations) -> DistanceMatrices:
  """All three distance matrices from one pass over the N + M masks per image.

  Args:
    samples: [B, N, H, W] masks.
    annotations: [B, M, H, W] masks.
  Returns:
    DistanceMatrices with sy [B, N, M], ss [B, N, N], yy [B, M, M].
  """
  _check_pair('samples', samples, 'annotations', annotations)
  return _distance_matrices(samples, annotations)


def ged_from_distances(dm: DistanceMatrices) -> GEDResult:
  """Squared GED per image from precomputed distance matrices."""
  return _ged_from_distances(dm)


def generalized_energy_distance(samples, annotations) -> GEDResult:
  """Squared generalised energy distance per image (see CONVENTIONS['ged']).

  Args:
    samples: [B, N, H, W] model samples (masks).
    annotations: [B, M, H, W] annotations (masks).
  Returns:
    GEDResult of [B] float32 arrays: ged, d_sy, d_ss, d_yy. The estimator
    includes the diagonal pairs, so report N with it ("GED16").
  """
  return ged_from_distances(distance_matrices(samples, annotations))


# ----------------------------------------------------------------------------
# Hungarian-matched IoU.

def hungarian_matched_iou_from_distances(d_sy) -> np.ndarray:
  """HM-IoU per image from the [B, N, M] sample-annotation distances.

  Repeating the samples L / N times and the annotations L / M times
  (L = lcm(N, M)) turns the N x M cost into an L x L block-repeated cost,
  which is what np.tile builds.
  """
  d_sy = np.asarray(d_sy, np.float64)
  if d_sy.ndim != 3:
    raise ValueError(f'd_sy of shape {d_sy.shape}: expected [B, N, M].')
  _, n, m = d_sy.shape
  lcm = math.lcm(n, m)
  out = np.empty(d_sy.shape[0], np.float64)
  for i, d in enumerate(d_sy):
    cost = np.tile(d, (lcm // n, lcm // m))  # [L, L]
    rows, cols = scipy.optimize.linear_sum_assignment(cost)
    out[i] = np.mean(1.0 - cost[rows, cols])
  return out


def hungarian_matched_iou(samples, annotations) -> np.ndarray:
  """Hungarian-matched IoU per image (see CONVENTIONS['hm_iou']).

  Args:
    samples: [B, N, H, W] masks.
    annotations: [B, M, H, W] masks.
  Returns:
    [B] float64 numpy array.
  """
  return hungarian_matched_iou_from_distances(pairwise_iou_distance(samples, annotations))


# ----------------------------------------------------------------------------
# S_NCC.

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
  _check_masks('annotations', annotations)
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


# ----------------------------------------------------------------------------
# Modes of a synthetic data set with a known distribution.

@jax.jit
def _assign_modes(samples, mode_masks, min_iou):
  iou = _pairwise_iou(samples, mode_masks)          # [B, N, K]
  best = jnp.argmax(iou, axis=-1).astype(jnp.int32)  # first maximum on ties
  matched = iou.max(-1) >= min_iou
  return jnp.where(matched, best, mode_masks.shape[1])


def assign_modes(samples, mode_masks, min_iou: float = 0.5) -> jax.Array:
  """The known mode each sample belongs to.

  Args:
    samples: [B, N, H, W] masks.
    mode_masks: [B, K, H, W] the masks of the K known modes of each image.
    min_iou: a sample whose best IoU is below this is "unmatched".
  Returns:
    [B, N] int32 in [0, K]: the mode of largest IoU (ties to the lowest index;
    empty vs empty is IoU 1), or K when unmatched.
  """
  _check_pair('samples', samples, 'mode_masks', mode_masks)
  return _assign_modes(samples, mode_masks, np.float32(min_iou))


def mode_frequencies(assignments, num_modes: int) -> jax.Array:
  """[B, N] assignments in [0, K] -> [B, K + 1] frequencies, the last unmatched.

  Values outside [0, K] count nowhere, so the row no longer sums to 1.
  """
  assignments = jnp.asarray(assignments)
  onehot = assignments[..., None] == jnp.arange(num_modes + 1)
  return onehot.astype(jnp.float32).mean(-2)


def total_variation(p, q) -> jax.Array:
  """0.5 * sum |p - q| over the last axis.

  If one of p, q has one entry fewer (the true mode weights, K, against
  frequencies with an unmatched column, K + 1), it gets a zero last column.
  """
  p, q = jnp.asarray(p, jnp.float32), jnp.asarray(q, jnp.float32)
  kp, kq = p.shape[-1], q.shape[-1]
  if kp == kq + 1:
    q = jnp.concatenate([q, jnp.zeros(q.shape[:-1] + (1,), q.dtype)], -1)
  elif kq == kp + 1:
    p = jnp.concatenate([p, jnp.zeros(p.shape[:-1] + (1,), p.dtype)], -1)
  elif kp != kq:
    raise ValueError(f'p [..., {kp}] and q [..., {kq}]: last axes must agree '
                     'or differ by the one unmatched column.')
  return 0.5 * jnp.abs(p - q).sum(-1)
