"""Modes of a synthetic data set with a known distribution (see
CONVENTIONS['mode_assignment']): which known mode each sample is, how often
each mode is drawn, and the total variation to the true frequencies."""
import jax
import jax.numpy as jnp
import numpy as np

from hpu_jax.metrics.checks import check_pair
from hpu_jax.metrics.iou import pairwise_iou


@jax.jit
def _assign_modes(samples, mode_masks, min_iou):
  iou = pairwise_iou(samples, mode_masks)          # [B, N, K]
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
  check_pair('samples', samples, 'mode_masks', mode_masks)
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
