"""The synthetic lesion set: determinism, layout, exact mode distribution, oracle sampler, errors.

Statistical checks use fixed seeds, so they are deterministic; their bounds are
set where a correct generator would fail with probability below 1e-6.
"""

import numpy as np
import pytest
from scipy import stats

from hpu_jax.data import synthetic
from hpu_jax.data.synthetic import NUM_MODES, SPLITS, SyntheticDataset

P_FLOOR = 1e-6  # A correct generator fails a statistical check with probability < P_FLOOR.


def _iou(a, b):
  return np.logical_and(a, b).sum() / np.logical_or(a, b).sum()


def _chi2_pvalue(observed, expected):
  """Pearson chi-square p-value over the categories with positive expectation."""
  observed, expected = np.asarray(observed, float), np.asarray(expected, float)
  assert np.all(observed[expected == 0] == 0), (observed, expected)
  keep = expected > 0
  if keep.sum() == 1:  # A certain outcome: every draw must be it.
    return float(np.allclose(observed[keep], expected[keep]))
  stat = np.sum((observed[keep] - expected[keep]) ** 2 / expected[keep])
  return stats.chi2.sf(stat, df=keep.sum() - 1)


@pytest.fixture(scope='module')
def train32():
  return SyntheticDataset('train', 1500, image_size=32, seed=3)


@pytest.fixture(scope='module')
def examples32(train32):
  return [train32[i] for i in range(len(train32))]


def test_same_arguments_give_identical_examples():
  a = SyntheticDataset('validation', 10, image_size=40, seed=5)
  b = SyntheticDataset('validation', 10, image_size=40, seed=5)
  for i in range(10):
    ea, eb = a[i], b[i]
    for key in ('image', 'masks', 'mode_probs', 'annotation_modes'):
      np.testing.assert_array_equal(ea[key], eb[key])
    assert ea['id'] == eb['id'] == f'synthetic/validation/{i:05d}'
    np.testing.assert_array_equal(a.mode_masks(i), b.mode_masks(i))
    np.testing.assert_array_equal(a.sample_annotations(i, 8, 1), b.sample_annotations(i, 8, 1))


def test_example_does_not_depend_on_num_examples():
  small, large = SyntheticDataset('train', 3, image_size=32), SyntheticDataset('train', 300, image_size=32)
  for i in range(3):
    np.testing.assert_array_equal(small[i]['image'], large[i]['image'])
    np.testing.assert_array_equal(small[i]['masks'], large[i]['masks'])


@pytest.mark.parametrize('other', [dict(split='train', seed=1), dict(split='test', seed=0),
                                   dict(split='validation', seed=0)])
def test_other_seed_or_split_gives_other_examples(other):
  base = SyntheticDataset('train', 20, image_size=32, seed=0)
  changed = SyntheticDataset(num_examples=20, image_size=32, **other)
  assert all(not np.array_equal(base[i]['image'], changed[i]['image']) for i in range(20))
  probs = lambda ds: np.stack([ds.mode_probs(i) for i in range(20)])
  assert not np.array_equal(probs(base), probs(changed))


@pytest.mark.parametrize('size,num_annotations', [(32, 4), (45, 3), (64, 1)])
def test_shapes_dtypes_and_values(size, num_annotations):
  ds = SyntheticDataset('test', 12, image_size=size, num_annotations=num_annotations)
  assert len(ds) == 12
  for i in range(12):
    ex = ds[i]
    assert set(ex) == {'image', 'masks', 'mode_probs', 'annotation_modes', 'id'}
    assert ex['image'].shape == (size, size) and ex['image'].dtype == np.uint8
    assert ex['masks'].shape == (num_annotations, size, size) and ex['masks'].dtype == np.uint8
    assert set(np.unique(ex['masks'])) <= {0, 1}
    assert ex['mode_probs'].shape == (NUM_MODES,) and ex['mode_probs'].dtype == np.float32
    assert ex['annotation_modes'].shape == (num_annotations,)
    assert ex['annotation_modes'].dtype == np.int32
    assert abs(float(ex['mode_probs'].sum()) - 1.0) < 1e-6
    assert np.all(ex['mode_probs'] >= 0)
    modes = ds.mode_masks(i)
    assert modes.shape == (NUM_MODES, size, size) and modes.dtype == np.uint8
    assert set(np.unique(modes)) <= {0, 1} and not modes[0].any()
    assert ds.sample_annotations(i, 5, 0).shape == (5, size, size)
    assert ds.sample_annotations(i, 5, 0).dtype == np.uint8


def test_stored_annotations_are_the_mode_masks_of_their_modes(examples32, train32):
  for i, ex in enumerate(examples32[:200]):
    modes = ex['annotation_modes']
    np.testing.assert_array_equal(ex['masks'], train32.mode_masks(i)[modes])
    assert np.all(ex['mode_probs'][modes] > 0)
    np.testing.assert_array_equal(ex['mode_probs'], train32.mode_probs(i))


def test_mode_probs_follow_the_stated_formula(train32):
  core_p = {p for _, p in synthetic.CORE_LEVELS}
  lobe_q = {q for _, q in synthetic.LOBE_LEVELS}
  for i in range(300):
    spec, probs = train32.lesion_spec(i), train32.mode_probs(i)
    if not spec.has_lesion:
      np.testing.assert_array_equal(probs, [1, 0, 0, 0, 0])
      continue
    p, (q0, q1) = spec.p_mark, spec.q
    assert p in core_p and q0 in lobe_q and q1 in lobe_q
    expected = [1 - p, p * (1 - q0) * (1 - q1), p * q0 * (1 - q1), p * (1 - q0) * q1, p * q0 * q1]
    np.testing.assert_allclose(probs, expected, atol=1e-7)


def test_lesion_modes_are_nested_distinct_and_inside_the_image():
  ds = SyntheticDataset('train', 300, image_size=48)
  seen_lesion = 0
  for i in range(300):
    m = ds.mode_masks(i).astype(bool)
    if not ds.lesion_spec(i).has_lesion:
      assert not m.any()
      continue
    seen_lesion += 1
    assert m[1].any()
    assert np.all(m[1] <= m[2]) and np.all(m[1] <= m[3])
    assert np.all(m[2] <= m[4]) and np.all(m[3] <= m[4])
    assert np.array_equal(m[4], m[2] | m[3])
    flat = m.reshape(NUM_MODES, -1)
    assert len({row.tobytes() for row in flat}) == NUM_MODES
    assert not (m[4, 0].any() or m[4, -1].any() or m[4, :, 0].any() or m[4, :, -1].any())
    area = m[1].sum() / m[1].size
    assert np.pi * 0.09 ** 2 < area < np.pi * 0.17 ** 2  # Core radius 0.10..0.16 of the size.
  assert seen_lesion > 200


@pytest.mark.parametrize('size', [32, 64])
def test_modes_differing_by_one_lobe_are_well_separated(size):
  ds = SyntheticDataset('train', 300, image_size=size, seed=11)
  ious = []
  for i in range(300):
    m = ds.mode_masks(i).astype(bool)
    if m[1].any():
      ious += [_iou(m[a], m[b]) for a, b in ((1, 2), (1, 3), (2, 4), (3, 4))]
  assert len(ious) > 800
  assert max(ious) <= 0.8
  assert 0.6 < np.mean(ious) < 0.78  # Continuum values are 0.67 and 0.75.


def test_split_has_lesion_free_images_and_partial_marking(examples32):
  n = len(examples32)
  lesion_free = sum(ex['mode_probs'][0] == 1.0 for ex in examples32)
  # Binomial(1500, 0.2): sd 15.5, so +-6 sd has probability far below P_FLOOR to be exceeded.
  assert abs(lesion_free - synthetic.LESION_FREE_PROB * n) < 6 * np.sqrt(n * 0.2 * 0.8)
  for ex in examples32:
    if ex['mode_probs'][0] == 1.0:
      assert not ex['masks'].any()
  partial = sum(0 < np.sum(ex['annotation_modes'] == 0) < len(ex['annotation_modes'])
                for ex in examples32)
  assert partial > 100  # Images some raters leave unmarked while others mark them.
  disagree_on_lobes = sum(len(set(ex['annotation_modes'][ex['annotation_modes'] > 0])) > 1
                          for ex in examples32)
  assert disagree_on_lobes > 300


def test_stored_annotation_frequencies_match_mode_probs(examples32):
  observed = np.bincount(np.concatenate([ex['annotation_modes'] for ex in examples32]),
                         minlength=NUM_MODES)
  expected = 4 * np.sum([ex['mode_probs'] for ex in examples32], axis=0, dtype=np.float64)
  # Sums of independent multinomials have a covariance below the pooled multinomial's,
  # so the Pearson statistic is conservative here.
  assert _chi2_pvalue(observed, expected) > P_FLOOR
  # The pooled frequencies also match the closed form: P(empty) = 0.2 + 0.8 * 0.25.
  assert abs(observed[0] / observed.sum() - 0.4) < 6 * np.sqrt(0.4 * 0.6 / observed.sum())


def test_marking_rate_depends_on_core_contrast(examples32, train32):
  by_level = {}
  for i, ex in enumerate(examples32):
    spec = train32.lesion_spec(i)
    if spec.has_lesion:
      by_level.setdefault(spec.core_level, []).append(np.mean(ex['annotation_modes'] > 0))
  for level, (_, p_mark) in enumerate(synthetic.CORE_LEVELS):
    rates = np.asarray(by_level[level])
    assert abs(rates.mean() - p_mark) < 6 * np.sqrt(0.25 / (4 * len(rates))) + 1e-9


@pytest.mark.parametrize('rank', range(6))
def test_oracle_sampler_matches_mode_probs(train32, rank):
  # Index 0 is lesion-free (all draws empty); the others are the first lesions.
  lesions = [i for i in range(100) if train32.lesion_spec(i).has_lesion]
  index = 0 if rank == 0 else lesions[rank - 1]
  num = 4000
  draws = train32.sample_annotations(index, num, seed=9)
  modes = train32.sample_modes(index, num, seed=9)
  np.testing.assert_array_equal(draws, train32.mode_masks(index)[modes])
  counts = np.bincount(modes, minlength=NUM_MODES)
  assert _chi2_pvalue(counts, num * train32.mode_probs(index).astype(np.float64)) > P_FLOOR


def test_oracle_sampler_is_deterministic_and_seeded(train32):
  spread = [i for i in range(50) if train32.mode_probs(i).max() < 0.6][0]
  np.testing.assert_array_equal(train32.sample_annotations(spread, 64, 1),
                                train32.sample_annotations(spread, 64, 1))
  assert not np.array_equal(train32.sample_modes(spread, 64, 1), train32.sample_modes(spread, 64, 2))
  assert train32.sample_annotations(spread, 0, 1).shape == (0, 32, 32)


def test_oracle_agrees_with_stored_distribution_and_is_independent_of_it(examples32, train32):
  stored = np.concatenate([ex['annotation_modes'] for ex in examples32])
  oracle = np.concatenate([train32.sample_modes(i, 4, seed=123) for i in range(len(train32))])
  table = np.stack([np.bincount(stored, minlength=NUM_MODES), np.bincount(oracle, minlength=NUM_MODES)])
  assert stats.chi2_contingency(table).pvalue > P_FLOOR
  # Independence: the two draws coincide at the rate sum_k p_k^2, not always.
  probs = np.stack([ex['mode_probs'] for ex in examples32]).astype(np.float64)
  agree = np.repeat(np.sum(probs ** 2, axis=1), 4)
  same = (stored == oracle).astype(float)
  assert abs(same.sum() - agree.sum()) < 6 * np.sqrt(np.sum(agree * (1 - agree)))


def test_image_shows_the_contrast_levels():
  ds = SyntheticDataset('train', 200, image_size=64, seed=2)
  lobe_contrast = {level: [] for level in range(len(synthetic.LOBE_LEVELS))}
  core_contrast = {level: [] for level in range(len(synthetic.CORE_LEVELS))}
  for i in range(200):
    spec = ds.lesion_spec(i)
    if not spec.has_lesion:
      continue
    image, m = ds[i]['image'].astype(float), ds.mode_masks(i).astype(bool)
    rows, cols = np.mgrid[:64, :64] + 0.5
    dist = lambda c: np.hypot(rows - c[0], cols - c[1])
    ring = (dist(spec.center) > 2.3 * spec.core_radius) & (dist(spec.center) < 3.3 * spec.core_radius)
    background = np.median(image[ring & ~m[4]])
    core_inner = dist(spec.center) < 0.7 * spec.core_radius
    core_contrast[spec.core_level].append(image[core_inner].mean() - background)
    for lobe, level in enumerate(spec.lobe_levels):
      visible = (dist(spec.lobe_centers[lobe]) < 0.6 * spec.lobe_radius) & (
          dist(spec.center) > spec.core_radius + 2)
      lobe_contrast[level].append(image[visible].mean() - background)
  for contrast in (lobe_contrast, core_contrast):
    # Levels are ordered brightest first; each level's range lies strictly above the next one's.
    for brighter, fainter in zip(range(2), range(1, 3)):
      assert min(contrast[brighter]) > max(contrast[fainter]) + 5, contrast


def test_size_scales_the_same_example():
  small, big = SyntheticDataset('test', 20, image_size=32), SyntheticDataset('test', 20, image_size=128)
  for i in range(20):
    np.testing.assert_array_equal(small.mode_probs(i), big.mode_probs(i))
    np.testing.assert_array_equal(small[i]['annotation_modes'], big[i]['annotation_modes'])
    a_small, a_big = small.mode_masks(i)[4].sum(), big.mode_masks(i)[4].sum()
    if a_small:
      assert abs(a_big / (16 * a_small) - 1) < 0.15


def test_iterates_to_the_end_and_rejects_out_of_range_indices():
  ds = SyntheticDataset('train', 3, image_size=32)
  assert [ex['id'] for ex in ds] == [f'synthetic/train/{i:05d}' for i in range(3)]
  assert ds[np.int64(2)]['id'] == 'synthetic/train/00002'
  for bad in (3, -1, 10 ** 6):
    with pytest.raises(IndexError, match='index'):
      ds[bad]
  with pytest.raises(IndexError, match='index'):
    ds.mode_masks(3)
  with pytest.raises(IndexError, match='index'):
    ds.sample_annotations(-1, 2, 0)
  with pytest.raises(TypeError, match='index'):
    ds[1.0]
  assert len(SyntheticDataset('test', 0, image_size=32)) == 0


@pytest.mark.parametrize('kwargs,error,match', [
    (dict(split='val'), ValueError, r"split='val'.*'train', 'validation', 'test'"),
    (dict(num_examples=-1), ValueError, 'num_examples=-1.*>= 0'),
    (dict(num_examples=2.5), TypeError, 'num_examples'),
    (dict(image_size=31), ValueError, 'image_size=31.*>= 32'),
    (dict(image_size=True), TypeError, 'image_size'),
    (dict(num_annotations=0), ValueError, 'num_annotations=0.*>= 1'),
    (dict(seed=-3), ValueError, 'seed=-3.*>= 0'),
])
def test_bad_constructor_arguments_raise_clear_errors(kwargs, error, match):
  args = dict(split='train', num_examples=4, image_size=32)
  args.update(kwargs)
  with pytest.raises(error, match=match):
    SyntheticDataset(**args)


def test_bad_sampler_arguments_raise_clear_errors():
  ds = SyntheticDataset('train', 4, image_size=32)
  with pytest.raises(ValueError, match='num=-1'):
    ds.sample_annotations(0, -1, 0)
  with pytest.raises(ValueError, match='seed=-2'):
    ds.sample_annotations(0, 2, -2)
  with pytest.raises(TypeError, match='seed'):
    ds.sample_annotations(0, 2, 0.5)


def test_constants_match_the_documented_design():
  assert SPLITS == ('train', 'validation', 'test') and NUM_MODES == 5
  assert synthetic.LESION_FREE_PROB == 0.2
  assert [p for _, p in synthetic.CORE_LEVELS] == [1.0, 0.75, 0.5]
  assert [q for _, q in synthetic.LOBE_LEVELS] == [0.9, 0.5, 0.25]
  # Brighter level -> higher probability, for the core and the lobes alike.
  for levels in (synthetic.CORE_LEVELS, synthetic.LOBE_LEVELS):
    contrasts = [c for c, _ in levels]
    assert contrasts == sorted(contrasts, reverse=True)
  np.testing.assert_allclose(synthetic.mode_probabilities(0.75, 0.9, 0.25),
                             [0.25, 0.05625, 0.50625, 0.01875, 0.16875])


def test_cache_returns_the_generated_examples_read_only():
  plain = SyntheticDataset('train', 6, image_size=32, seed=3)
  cached = SyntheticDataset('train', 6, image_size=32, seed=3, cache=True)
  for _ in range(2):                               # Generated, then from memory.
    for i in (4, 0, 4):
      a, b = plain[i], cached[i]
      assert a.keys() == b.keys()
      for key in a:
        np.testing.assert_array_equal(a[key], b[key])
  first = cached[4]
  assert not first['image'].flags.writeable and not first['masks'].flags.writeable
  with pytest.raises(ValueError, match='read-only'):
    first['masks'][0, 0, 0] = 1
  first['image'] = None                            # The caller's dict is its own.
  assert cached[4]['image'] is not None
  stored = sum(v.nbytes for i in range(6) for v in cached[i].values() if isinstance(v, np.ndarray))
  assert cached.cache_nbytes() == stored
