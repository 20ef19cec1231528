"""The generalised energy distance (GED) between the samples and the
annotations of each image (see CONVENTIONS['ged']), from the distance matrices."""
from typing import NamedTuple

import jax

from hpu_jax.metrics.iou import DistanceMatrices, distance_matrices


class GEDResult(NamedTuple):
  ged: jax.Array   # [B] squared GED estimate: 2 d_sy - d_ss - d_yy.
  d_sy: jax.Array  # [B] mean of d over the N*M sample-annotation pairs.
  d_ss: jax.Array  # [B] mean of d over the N*N sample pairs, diagonal included.
  d_yy: jax.Array  # [B] mean of d over the M*M annotation pairs, diagonal included.


@jax.jit
def _ged_from_distances(dm):
  d_sy = dm.sy.mean(axis=(1, 2))
  d_ss = dm.ss.mean(axis=(1, 2))
  d_yy = dm.yy.mean(axis=(1, 2))
  return GEDResult(ged=2.0 * d_sy - d_ss - d_yy, d_sy=d_sy, d_ss=d_ss, d_yy=d_yy)


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
