"""GED, HM-IoU, S_NCC and mode metrics against brute-force NumPy references."""
import itertools
import math

import jax
import numpy as np
import pytest
import scipy.optimize

from hpu_jax import metrics
from hpu_jax.metrics import iou, ncc


# ----------------------------------------------------------------------------
# Brute-force references: loops over pairs and pixels, float64.

def ref_distance(a, b):
  a, b = np.asarray(a) != 0, np.asarray(b) != 0
  union = np.logical_or(a, b).sum()
  if union == 0:
    return 0.0
  return 1.0 - np.logical_and(a, b).sum() / union


def ref_distance_matrix(xs, ys):
  return np.array([[ref_distance(x, y) for y in ys] for x in xs])


def ref_ged(samples, annotations):
  d_sy = ref_distance_matrix(samples, annotations).mean()
  d_ss = ref_distance_matrix(samples, samples).mean()
  d_yy = ref_distance_matrix(annotations, annotations).mean()
  return 2 * d_sy - d_ss - d_yy, d_sy, d_ss, d_yy


def repeat_to_lcm(samples, annotations):
  lcm = math.lcm(len(samples), len(annotations))
  return (np.repeat(samples, lcm // len(samples), axis=0),
          np.repeat(annotations, lcm // len(annotations), axis=0))


def ref_hm_iou(samples, annotations):
  """Explicit repetition of the masks, then scipy on the L x L cost."""
  s, y = repeat_to_lcm(samples, annotations)
  cost = ref_distance_matrix(s, y)
  rows, cols = scipy.optimize.linear_sum_assignment(cost)
  return np.mean(1.0 - cost[rows, cols])


def ref_hm_iou_permutations(samples, annotations):
  """Explicit repetition, then the best of all L! one-to-one assignments."""
  s, y = repeat_to_lcm(samples, annotations)
  cost = ref_distance_matrix(s, y)
  n = len(s)
  best = min(sum(cost[i, perm[i]] for i in range(n))
             for perm in itertools.permutations(range(n)))
  return 1.0 - best / n


def ref_is_constant(x, tol=metrics.SNCC_CONSTANT_TOL):
  return x.max() - x.min() <= tol * max(1.0, np.abs(x).max())


def ref_sncc(probs, labels):
  """probs [N, H, W, C], labels [M, H, W]; per-pixel loops, float64.

  Returns (value, defined, per_annotation)."""
  probs = np.asarray(probs, np.float64)
  n, h, w, c = probs.shape
  m = len(labels)
  eps = 1e-8

  def ce(target, pred):  # CE(target, pred) at one pixel
    return -sum(target[k] * math.log(pred[k] + eps) for k in range(c))

  e_ss = np.zeros((h, w))
  e_sy = np.zeros((m, h, w))
  for r in range(h):
    for col in range(w):
      p_bar = probs[:, r, col].mean(0)
      e_ss[r, col] = np.mean([ce(p_bar, probs[i, r, col]) for i in range(n)])
      for j in range(m):
        y = np.eye(c)[labels[j][r, col]]
        e_sy[j, r, col] = np.mean([ce(y, probs[i, r, col]) for i in range(n)])
  per = []
  for j in range(m):
    if ref_is_constant(e_ss) or ref_is_constant(e_sy[j]):
      per.append(np.nan)
    else:
      per.append(np.corrcoef(e_ss.ravel(), e_sy[j].ravel())[0, 1])
  per = np.array(per)
  defined = bool(np.all(np.isfinite(per)))
  return (per.mean() if defined else np.nan), defined, per


def random_masks(rng, shape, p_empty=0.3):
  """Random masks of random density; a fraction of them empty."""
  density = rng.uniform(0.05, 0.6, size=shape[:2] + (1, 1))
  masks = rng.uniform(size=shape) < density
  masks &= rng.uniform(size=shape[:2] + (1, 1)) >= p_empty
  return masks


# ----------------------------------------------------------------------------
# Distance.

def test_distance_hand_cases():
  empty = np.zeros((2, 2), bool)
  full = np.ones((2, 2), bool)
  diag = np.array([[1, 0], [0, 1]], bool)
  top = np.array([[1, 1], [0, 0]], bool)
  anti = np.array([[0, 1], [1, 0]], bool)
  a = np.stack([empty, empty, diag, diag, top, diag])[None]
  b = np.stack([empty, full, diag, anti, diag, full])[None]
  d = np.asarray(metrics.pairwise_iou_distance(a, b))[0]
  assert d.shape == (6, 6) and d.dtype == np.float32
  assert d[0, 0] == 0.0   # both empty
  assert d[0, 1] == 1.0   # one empty
  assert d[2, 0] == 1.0   # one empty, the other way round
  assert d[2, 2] == 0.0   # identical
  assert d[3, 3] == 1.0   # disjoint
  # top = {(0,0), (0,1)}, diag = {(0,0), (1,1)}: |I| = 1, |U| = 3.
  np.testing.assert_allclose(d[4, 4], 1 - 1 / 3, rtol=1e-6)
  # diag within full: IoU = 2 / 4.
  np.testing.assert_allclose(d[5, 5], 0.5, rtol=1e-6)


def test_distance_nonzero_is_foreground():
  a = np.array([[[[0, 255], [3, 0]]]], np.uint8)
  b = np.array([[[[0, 1], [1, 0]]]], np.int32)
  assert float(metrics.pairwise_iou_distance(a, b)[0, 0, 0]) == 0.0


def test_pairwise_distance_matches_bruteforce():
  rng = np.random.default_rng(0)
  a = random_masks(rng, (3, 5, 9, 7))
  b = random_masks(rng, (3, 4, 9, 7))
  assert (~a.any(axis=(2, 3))).any() and a.any(axis=(2, 3)).any()
  d = np.asarray(metrics.pairwise_iou_distance(a, b.astype(np.int32)))
  assert d.shape == (3, 5, 4)
  for i in range(3):
    np.testing.assert_allclose(d[i], ref_distance_matrix(a[i], b[i]), atol=1e-6)


def test_distance_full_size_masks_match_bruteforce():
  # 128 x 128: 512 packed words per mask, counts up to 16384.
  rng = np.random.default_rng(7)
  a = random_masks(rng, (1, 3, 128, 128), p_empty=0.0)
  a[0, 0] = True
  b = random_masks(rng, (1, 2, 128, 128), p_empty=0.0)
  d = np.asarray(metrics.pairwise_iou_distance(a, b))[0]
  np.testing.assert_allclose(d, ref_distance_matrix(a[0], b[0]), atol=1e-6)
  np.testing.assert_allclose(d[0], 1 - b[0].sum((1, 2)) / 128 ** 2, atol=1e-6)


def test_distance_matrices_blocks_match_pairwise():
  rng = np.random.default_rng(1)
  s = random_masks(rng, (2, 6, 8, 8))
  y = random_masks(rng, (2, 3, 8, 8))
  dm = metrics.distance_matrices(s, y)
  np.testing.assert_allclose(dm.sy, metrics.pairwise_iou_distance(s, y), atol=1e-7)
  np.testing.assert_allclose(dm.ss, metrics.pairwise_iou_distance(s, s), atol=1e-7)
  np.testing.assert_allclose(dm.yy, metrics.pairwise_iou_distance(y, y), atol=1e-7)
  np.testing.assert_array_equal(np.diagonal(np.asarray(dm.ss), axis1=1, axis2=2), 0)


def test_shape_mismatch_raises():
  with pytest.raises(ValueError):
    metrics.pairwise_iou_distance(np.zeros((2, 3, 4, 4)), np.zeros((2, 3, 4, 5)))
  with pytest.raises(ValueError):
    metrics.distance_matrices(np.zeros((2, 3, 4, 4)), np.zeros((1, 3, 4, 4)))
  with pytest.raises(ValueError):
    metrics.pairwise_iou_distance(np.zeros((3, 4, 4)), np.zeros((3, 4, 4)))


def test_same_shapes_do_not_recompile():
  rng = np.random.default_rng(2)
  fns = (iou._distance_matrices, ncc._sncc_binary)
  if not all(hasattr(f, '_cache_size') for f in fns):
    pytest.skip('this jax version does not expose the jit cache size')
  before = [f._cache_size() for f in fns]
  for _ in range(3):
    s = random_masks(rng, (2, 3, 5, 5))
    y = random_masks(rng, (2, 2, 5, 5))
    metrics.generalized_energy_distance(s, y)
    metrics.sncc(rng.uniform(size=(2, 3, 5, 5)).astype(np.float32), y)
  after = [f._cache_size() for f in fns]
  assert [a - b for a, b in zip(after, before)] == [1, 1]


# ----------------------------------------------------------------------------
# GED.

def test_ged_matches_bruteforce():
  rng = np.random.default_rng(3)
  s = random_masks(rng, (4, 6, 10, 10))
  y = random_masks(rng, (4, 3, 10, 10))
  res = metrics.generalized_energy_distance(s, y)
  for i in range(4):
    ged, d_sy, d_ss, d_yy = ref_ged(s[i], y[i])
    np.testing.assert_allclose(res.ged[i], ged, atol=1e-5)
    np.testing.assert_allclose(res.d_sy[i], d_sy, atol=1e-6)
    np.testing.assert_allclose(res.d_ss[i], d_ss, atol=1e-6)
    np.testing.assert_allclose(res.d_yy[i], d_yy, atol=1e-6)


def test_ged_hand_cases():
  a = np.zeros((4, 4), bool); a[:2] = True
  b = np.zeros((4, 4), bool); b[2:] = True
  # Identical sets -> 0, also with repeated and empty masks.
  same = np.stack([a, b, a, np.zeros_like(a)])[None]
  assert abs(float(metrics.generalized_energy_distance(same, same).ged[0])) < 1e-7
  # Samples all a, annotations {a, b} (disjoint): d_sy = 1/2, d_ss = 0,
  # d_yy = (0 + 1 + 1 + 0) / 4 = 1/2  ->  GED = 2 * 1/2 - 0 - 1/2 = 1/2.
  s = np.stack([a, a, a])[None]
  y = np.stack([a, b])[None]
  res = metrics.generalized_energy_distance(s, y)
  np.testing.assert_allclose([res.ged[0], res.d_sy[0], res.d_ss[0], res.d_yy[0]],
                             [0.5, 0.5, 0.0, 0.5], atol=1e-7)
  # Empty samples vs empty annotations -> 0; vs non-empty -> d_sy = 1.
  empty = np.zeros((1, 2, 4, 4), bool)
  assert float(metrics.generalized_energy_distance(empty, empty).ged[0]) == 0.0
  res = metrics.generalized_energy_distance(empty, np.stack([a, a])[None])
  assert float(res.d_sy[0]) == 1.0 and float(res.ged[0]) == 2.0


def test_ged_estimator_includes_diagonal():
  # Two disjoint samples, one annotation equal to the first sample: with the
  # diagonal, d_ss = 2/4; without it, it would be 1.
  a = np.zeros((4, 4), bool); a[:2] = True
  b = ~a
  res = metrics.generalized_energy_distance(np.stack([a, b])[None], a[None, None])
  np.testing.assert_allclose(res.d_ss[0], 0.5)
  np.testing.assert_allclose(res.ged[0], 2 * 0.5 - 0.5 - 0.0)


# ----------------------------------------------------------------------------
# HM-IoU.

def test_hm_iou_matches_bruteforce_permutations():
  rng = np.random.default_rng(4)
  s = random_masks(rng, (3, 3, 6, 6))   # N = 3, M = 2 -> L = 6, 720 assignments
  y = random_masks(rng, (3, 2, 6, 6))
  hm = metrics.hungarian_matched_iou(s, y)
  assert hm.shape == (3,) and hm.dtype == np.float64
  for i in range(3):
    np.testing.assert_allclose(hm[i], ref_hm_iou_permutations(s[i], y[i]), atol=1e-6)


def test_hm_iou_matches_explicit_repetition():
  rng = np.random.default_rng(5)
  for n, m in [(16, 4), (6, 4), (5, 3), (4, 4)]:
    s = random_masks(rng, (2, n, 8, 8))
    y = random_masks(rng, (2, m, 8, 8))
    hm = metrics.hungarian_matched_iou(s, y)
    for i in range(2):
      np.testing.assert_allclose(hm[i], ref_hm_iou(s[i], y[i]), atol=1e-6)


def test_hm_iou_repetition_is_not_best_of_n():
  # 4 distinct annotations, 16 samples: one sample equals each annotation and
  # the other 12 are disjoint from all. Best-of-N (16 x 4 without repetition)
  # would give 1.0; with repetition to 16 x 16, 12 of 16 pairs are wrong.
  y = np.zeros((4, 8, 8), bool)
  for j in range(4):
    y[j, 2 * j:2 * j + 2, :4] = True
  garbage = np.zeros((12, 8, 8), bool)
  garbage[:, :, 6:] = True
  s = np.concatenate([y, garbage])
  hm = metrics.hungarian_matched_iou(s[None], y[None])
  np.testing.assert_allclose(hm[0], 4 / 16, atol=1e-7)
  d = ref_distance_matrix(s, y)
  rows, cols = scipy.optimize.linear_sum_assignment(d)
  assert np.mean(1 - d[rows, cols]) == 1.0  # what best-of-N would report


def test_hm_iou_identical_sets_and_from_distances():
  rng = np.random.default_rng(6)
  y = random_masks(rng, (2, 4, 8, 8))
  s = np.concatenate([y, y[:, ::-1], y, y], axis=1)  # 16 samples, each rater 4x
  np.testing.assert_allclose(metrics.hungarian_matched_iou(s, y), 1.0)
  dm = metrics.distance_matrices(s, y)
  np.testing.assert_allclose(metrics.hungarian_matched_iou_from_distances(dm.sy),
                             metrics.hungarian_matched_iou(s, y))


# ----------------------------------------------------------------------------
# S_NCC.

@pytest.mark.parametrize('c', [2, 3])
def test_sncc_class_probs_match_bruteforce(c):
  rng = np.random.default_rng(10 + c)
  b, n, m, h, w = 2, 6, 3, 4, 5  # N = 6: one chunk of 4 and a remainder
  logits = rng.normal(size=(b, n, h, w, c)) * 2
  probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  labels = rng.integers(0, c, size=(b, m, h, w))
  res = metrics.sncc(probs.astype(np.float32), labels)
  for i in range(b):
    value, defined, per = ref_sncc(probs[i], labels[i])
    assert defined and bool(res.defined[i])
    np.testing.assert_allclose(res.per_annotation[i], per, atol=2e-5)
    np.testing.assert_allclose(res.value[i], value, atol=2e-5)


def test_sncc_foreground_probs_match_bruteforce_and_two_class_form():
  rng = np.random.default_rng(20)
  b, n, m, h, w = 3, 5, 4, 5, 4
  fg = rng.uniform(size=(b, n, h, w)).astype(np.float32)
  fg[0, :, 0, 0] = 0.0  # saturated pixels exercise the 1e-8 floor
  fg[1, :, 1, 1] = 1.0
  masks = rng.uniform(size=(b, m, h, w)) < 0.4
  res = metrics.sncc(fg, masks.astype(np.int32))
  two = np.stack([1 - fg, fg], -1)
  res2 = metrics.sncc(two, masks.astype(np.int32))
  np.testing.assert_allclose(res.value, res2.value, atol=1e-5)
  for i in range(b):
    value, defined, per = ref_sncc(two[i].astype(np.float64), masks[i].astype(int))
    assert defined and bool(res.defined[i])
    np.testing.assert_allclose(res.per_annotation[i], per, atol=2e-5)
    np.testing.assert_allclose(res.value[i], value, atol=2e-5)


def test_sncc_undefined_when_samples_identical_and_hard():
  # All samples the same hard mask: E_ss = 0 everywhere -> every j undefined.
  masks = np.zeros((1, 4, 6, 6), np.float32)
  masks[..., 2:4, 2:4] = 1.0
  ann = np.zeros((1, 2, 6, 6), np.int32)
  ann[0, 0, 1:3, 1:3] = 1
  res = metrics.sncc(masks, ann)
  assert not bool(res.defined[0])
  assert np.isnan(res.value[0])
  assert np.all(np.isnan(res.per_annotation[0]))
  assert not ref_sncc(np.stack([1 - masks[0], masks[0]], -1), ann[0])[1]


def test_sncc_one_constant_annotation_map_makes_image_undefined():
  # Two samples whose foreground probabilities multiply to 1/4 at every pixel:
  # against an all-foreground annotation, E_sy = -log(1/2) is constant (up to
  # the 1e-8 floor), while E_ss and E_sy of an all-background annotation vary.
  pairs = np.array([[0.5, 0.5], [1.0, 0.25], [0.25, 1.0], [0.8, 0.3125],
                    [0.625, 0.4], [0.5, 0.5]])
  fg = pairs.T.reshape(1, 2, 2, 3).astype(np.float32)
  ann = np.stack([np.ones((2, 3)), np.zeros((2, 3))]).astype(np.int32)[None]
  res = metrics.sncc(fg, ann)
  per = np.asarray(res.per_annotation[0])
  assert np.isnan(per[0]) and np.isfinite(per[1])
  assert not bool(res.defined[0]) and np.isnan(res.value[0])
  _, ref_defined, ref_per = ref_sncc(np.stack([1 - fg[0], fg[0]], -1), ann[0])
  assert not ref_defined
  np.testing.assert_allclose(per[1], ref_per[1], atol=1e-5)


def test_sncc_batch_mixes_defined_and_undefined():
  rng = np.random.default_rng(30)
  fg = rng.uniform(size=(3, 4, 5, 5)).astype(np.float32)
  fg[1] = 1.0  # image 1: all samples certain foreground -> E_ss constant
  ann = (rng.uniform(size=(3, 2, 5, 5)) < 0.5).astype(np.int32)
  res = metrics.sncc(fg, ann)
  np.testing.assert_array_equal(res.defined, [True, False, True])
  assert np.isnan(res.value[1]) and np.all(np.isfinite(np.asarray(res.value)[[0, 2]]))
  mean, n_undefined = metrics.mean_defined(res.value, res.defined)
  assert n_undefined == 1
  np.testing.assert_allclose(mean, np.mean(np.asarray(res.value)[[0, 2]]), rtol=1e-6)


def ref_binary_probs(d):
  """float64 [.., 2] (background, foreground) probabilities of foreground
  logits d, each from its own log-sigmoid (no 1 - p)."""
  d = np.asarray(d, np.float64)
  return np.stack([np.exp(-np.logaddexp(0.0, d)), np.exp(-np.logaddexp(0.0, -d))], -1)


def saturated_logits(seed, b=3, n=6, h=6, w=7):
  """Foreground logits with |d| in [16.2, 20] (p within 1e-7 of 0 or 1, as
  exp(-16.2) < 1e-7); at each pixel a random share of the samples say
  foreground, so that the maps vary and the correlations are defined."""
  rng = np.random.default_rng(seed)
  magnitude = rng.uniform(16.2, 20.0, size=(b, n, h, w))
  share = rng.uniform(size=(b, 1, h, w))
  sign = np.where(rng.uniform(size=(b, n, h, w)) < share, 1.0, -1.0)
  return (magnitude * sign).astype(np.float32), rng


def test_sncc_from_logits_saturated_matches_float64_reference():
  d, rng = saturated_logits(40)
  b, n, h, w = d.shape
  probs64 = ref_binary_probs(d)                          # [B, N, H, W, 2]
  assert np.all(np.minimum(probs64[..., 0], probs64[..., 1]) < 1e-7)
  ann = (rng.uniform(size=(b, 4, h, w)) < 0.4).astype(np.int32)
  refs = [ref_sncc(probs64[i], ann[i]) for i in range(b)]
  assert all(r[1] for r in refs)
  ref_value = np.array([r[0] for r in refs])
  ref_per = np.stack([r[2] for r in refs])
  # The same numbers from foreground logits, from [.., 2] logits (with a
  # background logit that is not 0) and, as hpu_jax.evaluate does, from the
  # foreground logit of the sampler's float32 softmax.
  background = rng.integers(-4, 5, size=d.shape).astype(np.float32)
  two = np.stack([background, background + d], -1)
  softmax = jax.nn.softmax(np.stack([np.zeros_like(d), d], -1), axis=-1)
  routes = {'fg logits': d, '2 logits': two,
            'softmax': np.asarray(ncc.foreground_logit(softmax))}
  for name, x in routes.items():
    res = ncc.sncc_from_logits(x, ann)
    assert np.all(np.asarray(res.defined)), name
    np.testing.assert_allclose(res.value, ref_value, atol=2e-6, err_msg=name)
    np.testing.assert_allclose(res.per_annotation, ref_per, atol=2e-6, err_msg=name)
  # What the report used to do, 1 - p(background) in float32, misses here.
  old = metrics.sncc(np.asarray(1.0 - softmax[..., 0]), ann)
  assert np.nanmax(np.abs(np.asarray(old.value) - ref_value)) > 1e-3


def test_sncc_from_logits_matches_bruteforce_and_sncc():
  rng = np.random.default_rng(41)
  b, n, m, h, w = 2, 5, 3, 4, 5
  for c in (2, 3):
    logits = (rng.normal(size=(b, n, h, w, c)) * 3).astype(np.float32)
    labels = rng.integers(0, c, size=(b, m, h, w))
    res = ncc.sncc_from_logits(logits, labels)
    probs64 = np.exp(logits - np.logaddexp.reduce(logits.astype(np.float64), -1, keepdims=True))
    for i in range(b):
      value, defined, per = ref_sncc(probs64[i], labels[i])
      assert defined and bool(res.defined[i])
      np.testing.assert_allclose(res.per_annotation[i], per, atol=2e-5)
      np.testing.assert_allclose(res.value[i], value, atol=2e-5)
    np.testing.assert_allclose(res.value, metrics.sncc(probs64.astype(np.float32), labels).value,
                               atol=2e-5)


def test_sncc_from_logits_takes_certain_pixels_and_names_bad_input():
  # A softmax probability of exactly 0 gives an infinite foreground logit,
  # which stands for a probability of exactly 1 / 0.
  d, rng = saturated_logits(42, b=2, n=4)
  softmax = np.array(jax.nn.softmax(np.stack([np.zeros_like(d), d], -1), axis=-1))
  d[0, :, 0, 0], softmax[0, :, 0, 0] = np.inf, (0.0, 1.0)
  d[1, :, 1, 1], softmax[1, :, 1, 1] = -np.inf, (1.0, 0.0)
  fg_logit = np.asarray(ncc.foreground_logit(softmax))
  assert fg_logit[0, 0, 0, 0] == np.inf and fg_logit[1, 0, 1, 1] == -np.inf
  ann = (rng.uniform(size=(2, 3) + d.shape[2:]) < 0.5).astype(np.int32)
  res = ncc.sncc_from_logits(fg_logit, ann)
  for i in range(2):
    value, defined, per = ref_sncc(ref_binary_probs(d[i]), ann[i])
    assert defined and bool(res.defined[i])
    np.testing.assert_allclose(res.per_annotation[i], per, atol=2e-6)
  with pytest.raises(ValueError, match=r'sample_logits of shape \(2, 4, 6\)'):
    ncc.sncc_from_logits(np.zeros((2, 4, 6)), ann)
  with pytest.raises(ValueError, match='sample_logits .* and annotations .* H, W must agree'):
    ncc.sncc_from_logits(np.zeros((2, 4, 5, 5)), ann)
  with pytest.raises(ValueError, match=r'class_probs of shape \(2, 3\): expected \[\.\.\., 2\]'):
    ncc.foreground_logit(np.full((2, 3), 1 / 3))


def test_mean_defined():
  mean, n = metrics.mean_defined([1.0, np.nan, 3.0], [True, False, True])
  assert (mean, n) == (2.0, 1)
  mean, n = metrics.mean_defined([np.nan, np.nan], [False, False])
  assert np.isnan(mean) and n == 2
  with pytest.raises(ValueError):
    metrics.mean_defined([np.nan, 1.0], [True, True])


# ----------------------------------------------------------------------------
# Modes.

def test_assign_modes_constructed():
  h = w = 8
  left = np.zeros((h, w), bool); left[:, :4] = True
  right = ~left
  empty = np.zeros((h, w), bool)
  modes = np.stack([left, right, empty, left])  # mode 3 duplicates mode 0
  right_minus = right.copy(); right_minus[0, 4:] = False  # IoU 28/32 with right
  blob = np.zeros((h, w), bool); blob[:2, :2] = True      # IoU 4/32 with left
  half_left = np.zeros((h, w), bool); half_left[:, :2] = True  # IoU exactly 0.5
  below = half_left.copy(); below[0, :2] = False               # IoU 14/32
  samples = np.stack([left, right_minus, empty, blob, half_left, below])
  got = np.asarray(metrics.assign_modes(samples[None], modes[None]))
  # left ties between modes 0 and 3 -> 0; the empty sample matches the empty
  # mode (IoU 1); unmatched is K = 4; IoU = 0.5 exactly still matches.
  np.testing.assert_array_equal(got, [[0, 1, 2, 4, 0, 4]])
  assert got.dtype == np.int32
  got = np.asarray(metrics.assign_modes(samples[None], modes[None], min_iou=0.1))
  np.testing.assert_array_equal(got, [[0, 1, 2, 0, 0, 0]])


def test_mode_frequencies_and_total_variation():
  assignments = np.array([[0, 0, 1, 3], [2, 2, 2, 2]])
  freq = np.asarray(metrics.mode_frequencies(assignments, 3))
  np.testing.assert_allclose(freq, [[0.5, 0.25, 0, 0.25], [0, 0, 1, 0]])
  true = np.array([0.5, 0.5, 0.0])  # K = 3, padded with unmatched = 0
  np.testing.assert_allclose(metrics.total_variation(freq, true),
                             [0.5 * (0 + 0.25 + 0 + 0.25), 0.5 * (0.5 + 0.5 + 1)])
  np.testing.assert_allclose(metrics.total_variation(true, freq[0]), 0.25)
  p = np.array([0.2, 0.3, 0.5])
  assert float(metrics.total_variation(p, p)) == 0.0
  assert float(metrics.total_variation([1.0, 0.0], [0.0, 1.0])) == 1.0
  with pytest.raises(ValueError):
    metrics.total_variation(p, [1.0])


def test_conventions_are_plain_sentences():
  for key in ('distance', 'ged', 'hm_iou', 'sncc', 'sncc_undefined', 'mode_assignment'):
    text = metrics.CONVENTIONS[key]
    assert isinstance(text, str) and text.endswith('.') and len(text) > 40
