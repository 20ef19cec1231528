"""The Hungarian-matched IoU (HM-IoU) between the samples and the annotations
of each image (see CONVENTIONS['hm_iou']): the optimal one-to-one matching."""
import math

import numpy as np
import scipy.optimize

from hpu_jax.metrics.iou import pairwise_iou_distance


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
