"""IoU distances between binary masks, d = 1 - IoU (see
CONVENTIONS['distance']): bit-packed exact counts, every pair of two sets of
masks, and the three distance matrices of samples and annotations at once."""
from typing import NamedTuple

import jax
import jax.numpy as jnp

from hpu_jax.metrics.checks import check_pair


class DistanceMatrices(NamedTuple):
  sy: jax.Array  # [B, N, M] d(S_i, Y_j)
  ss: jax.Array  # [B, N, N] d(S_i, S_k), zero diagonal
  yy: jax.Array  # [B, M, M] d(Y_j, Y_l), zero diagonal


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


def pairwise_iou(a, b):
  """IoU [B, N, M] of masks [B, N, H, W] and [B, M, H, W], unchecked (for
  use inside jit); empty vs empty is 1."""
  wa, wb = _pack_bits(a), _pack_bits(b)
  return _iou_from_counts(_intersections(wa, wb), _count(wa), _count(wb))


@jax.jit
def _pairwise_iou_distance(a, b):
  return 1.0 - pairwise_iou(a, b)


@jax.jit
def _distance_matrices(samples, annotations):
  n = samples.shape[1]
  w = jnp.concatenate([_pack_bits(samples), _pack_bits(annotations)], axis=1)
  area = _count(w)                                        # [B, N+M]
  d = 1.0 - _iou_from_counts(_intersections(w, w), area, area)  # [B, N+M, N+M]
  return DistanceMatrices(sy=d[:, :n, n:], ss=d[:, :n, :n], yy=d[:, n:, n:])


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
  check_pair('a', a, 'b', b)
  return _pairwise_iou_distance(a, b)


def distance_matrices(samples, annotations) -> DistanceMatrices:
  """All three distance matrices from one pass over the N + M masks per image.

  Args:
    samples: [B, N, H, W] masks.
    annotations: [B, M, H, W] masks.
  Returns:
    DistanceMatrices with sy [B, N, M], ss [B, N, N], yy [B, M, M].
  """
  check_pair('samples', samples, 'annotations', annotations)
  return _distance_matrices(samples, annotations)
