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
# pylint: disable=unused-import
from hpu_jax.metrics.conventions import CONVENTIONS
from hpu_jax.metrics.ged import GEDResult, ged_from_distances, generalized_energy_distance
from hpu_jax.metrics.hm_iou import hungarian_matched_iou, hungarian_matched_iou_from_distances
from hpu_jax.metrics.iou import DistanceMatrices, distance_matrices, pairwise_iou_distance
from hpu_jax.metrics.modes import assign_modes, mode_frequencies, total_variation
from hpu_jax.metrics.ncc import (SNCC_CONSTANT_TOL, SNCC_LOG_FLOOR, SNCCResult, mean_defined,
                                 sncc)
