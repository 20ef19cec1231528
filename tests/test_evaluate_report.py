"""The report's S_NCC bookkeeping (undefined images counted and named), its
empty-sample calibration table and its metrics by agreement: known answers on hand-made arrays, a stub
sampler whose samples are chosen, and a tiny initialised model."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hpu_jax import configuration, evaluate
from hpu_jax.data import pipeline
from hpu_jax.sampling import Samples, make_sampler

from helpers import tiny_config


def masks_marked_by(k, a=4, size=6):
  """[A, H, W]: the first k annotators mark a pixel, the others draw nothing."""
  m = np.zeros((a, size, size), np.uint8)
  m[:k, 1, 1] = 1
  return m


def samples_with_empty(empty, size=6):
  """[N, H, W] samples, sample i empty where empty[i] else one pixel marked."""
  s = np.zeros((len(empty), size, size), np.uint8)
  for i, e in enumerate(empty):
    if not e:
      s[i, 3, 3] = 1
  return s


# ----------------------------------------------------------------------------
# The table's arithmetic.

def test_empty_calibration_known_answer():
  cal = evaluate.EmptyCalibration((2, 4))
  # Batch 1: three images. N = 4 samples each; the first 2 are the N = 2 prefix.
  cal.add(np.stack([samples_with_empty([1, 1, 1, 0]),      # k = 0
                    samples_with_empty([0, 1, 1, 1]),      # k = 2
                    samples_with_empty([1, 0, 0, 0])]),    # k = 0
          np.stack([masks_marked_by(0), masks_marked_by(2), masks_marked_by(0)]))
  # Batch 2: two images, more samples than the largest N (ignored).
  cal.add(np.stack([samples_with_empty([0, 0, 0, 0, 1]),   # k = 4
                    samples_with_empty([1, 1, 0, 1, 1])]),  # k = 2
          np.stack([masks_marked_by(4), masks_marked_by(2)]))
  table = cal.table()
  assert table['num_annotators'] == 4 and table['num_samples'] == [2, 4]
  rows = table['rows']
  assert [r['marked_by'] for r in rows] == [0, 1, 2, 3, 4]
  assert [r['num_images'] for r in rows] == [2, 0, 2, 0, 1]
  assert [r['true_empty_fraction'] for r in rows] == [1.0, 0.75, 0.5, 0.25, 0.0]
  # k = 0: N = 2 -> (2 + 1) / 4; N = 4 -> (3 + 1) / 8.
  # k = 2: N = 2 -> (1 + 2) / 4; N = 4 -> (3 + 3) / 8.   k = 4: 0.
  assert [r['empty_fraction2'] for r in rows] == [0.75, None, 0.75, None, 0.0]
  assert [r['empty_fraction4'] for r in rows] == [0.5, None, 0.75, None, 0.0]
  json.dumps(table, allow_nan=False)   # Plain JSON: null for an empty row.


def masks_with_areas(areas, a=4, size=6):
  """[A, H, W]: annotator i marks areas[i] pixels (0: draws nothing)."""
  m = np.zeros((a, size * size), np.uint8)
  for i, n in enumerate(areas):
    m[i, :n] = 1
  return m.reshape(a, size, size)


def test_empty_calibration_by_marked_area_known_answer():
  cal = evaluate.EmptyCalibration((2, 4), area_groups=2)
  cal.add(np.stack([samples_with_empty([1, 1, 0, 0]),     # k = 1, area 1
                    samples_with_empty([1, 1, 1, 1]),     # k = 0: not in the groups
                    samples_with_empty([0, 0, 0, 1])]),   # k = 4, area 3
          np.stack([masks_with_areas([1, 0, 0, 0]), masks_with_areas([0, 0, 0, 0]),
                    masks_with_areas([3, 3, 3, 3])]))
  cal.add(np.stack([samples_with_empty([1, 0, 0, 0]),     # k = 2, area 2
                    samples_with_empty([1, 1, 1, 0])]),   # k = 3, areas 1, 2, 3: mean 2
          np.stack([masks_with_areas([2, 2, 0, 0]), masks_with_areas([0, 1, 2, 3])]))
  by_area = cal.table()['by_marked_area']
  assert by_area['num_groups'] == 2
  small, large = by_area['rows']     # Sorted by area, ties in order: (1, 2) and (2, 3).
  assert (small['area_min'], small['area_max'], small['num_images']) == (1.0, 2.0, 2)
  assert (large['area_min'], large['area_max'], large['num_images']) == (2.0, 3.0, 2)
  assert small['num_images_by_marked'] == [1, 1, 0, 0]
  assert large['num_images_by_marked'] == [0, 0, 1, 1]
  assert small['true_empty_fraction'] == pytest.approx((0.75 + 0.5) / 2)
  assert large['true_empty_fraction'] == pytest.approx((0.25 + 0.0) / 2)
  assert (small['empty_fraction2'], small['empty_fraction4']) == (3 / 4, 3 / 8)
  assert (large['empty_fraction2'], large['empty_fraction4']) == (2 / 4, 4 / 8)
  assert small['empty_fraction4_by_marked'] == [2 / 4, 1 / 4, None, None]
  assert large['empty_fraction4_by_marked'] == [None, None, 3 / 4, 1 / 4]
  assert large['empty_fraction2_by_marked'] == [None, None, 1.0, 0.0]
  json.dumps(by_area, allow_nan=False)
  # More groups than marked images: one image a group. No marked image: no groups.
  many = evaluate.EmptyCalibration((2,), area_groups=9)
  many.add(samples_with_empty([1, 0])[None], masks_with_areas([1, 1, 0, 0])[None])
  assert many.table()['by_marked_area']['num_groups'] == 1
  none = evaluate.EmptyCalibration((2,))
  none.add(samples_with_empty([1, 0])[None], masks_with_areas([0, 0, 0, 0])[None])
  assert 'by_marked_area' not in none.table()
  with pytest.raises(ValueError, match='area_groups=0: expected a positive'):
    evaluate.EmptyCalibration((2,), area_groups=0)


def test_empty_calibration_counts_any_nonzero_pixel_and_checks_its_input():
  cal = evaluate.EmptyCalibration([3])
  masks = masks_marked_by(1).astype(np.int32) * 255      # 0 / 255 masks
  samples = samples_with_empty([1, 0, 1]).astype(bool)
  cal.add(samples[None], masks[None])
  assert cal.table()['rows'][1] == {'marked_by': 1, 'num_images': 1,
                                    'true_empty_fraction': 0.75,
                                    'empty_fraction3': pytest.approx(2 / 3)}
  with pytest.raises(ValueError, match='3 annotators per image; expected 4'):
    cal.add(samples[None], masks[None, :3])
  with pytest.raises(ValueError, match='2 samples per image; expected at least N = 3'):
    cal.add(samples[None, :2], masks[None])
  with pytest.raises(ValueError, match=r'num_samples=\(0,\): expected positive'):
    evaluate.EmptyCalibration((0,))
  # One annotator per image: no table (every image is 0 % or 100 % empty).
  single = evaluate.EmptyCalibration([3])
  single.add(samples[None], masks[None, :1])
  assert single.table() is None
  assert evaluate.EmptyCalibration([3]).table() is None


def test_metrics_by_marked_known_answer():
  """Rows hold each image's own values, pooled by k; S_NCC's undefined images
  are counted per row and left out of its mean."""
  scores = {'ged2': (np.array([0.1, 0.2, 0.4, 0.8]), None),
            'sncc2': (np.array([0.5, np.nan, 0.3, 0.1]), np.array([True, False, True, True]))}
  annotations = np.stack([masks_marked_by(k, a=2) for k in (2, 0, 2, 1)])
  by_marked = evaluate.MetricsByMarked()
  by_marked.add(scores, annotations)
  by_marked.add({'ged2': (np.array([1.0]), None),
                 'sncc2': (np.array([np.nan]), np.array([False]))}, annotations[1:2])
  table = by_marked.table()
  assert table['num_annotators'] == 2
  rows = table['rows']
  assert [r['marked_by'] for r in rows] == [0, 1, 2]
  assert [r['num_images'] for r in rows] == [2, 1, 2]
  assert rows[0]['metrics']['ged2'] == pytest.approx(0.6)
  assert rows[0]['metrics']['sncc2'] is None and rows[0]['undefined'] == {'sncc2': 2}
  assert rows[1]['metrics'] == pytest.approx({'ged2': 0.8, 'sncc2': 0.1})
  assert rows[2]['metrics'] == pytest.approx({'ged2': 0.25, 'sncc2': 0.4})
  assert rows[2]['undefined'] == {'sncc2': 0}
  lines = evaluate.format_by_marked(table)
  assert lines[1].split() == ['marked', 'by', 'images', 'ged2', 'sncc2']
  assert lines[2].split() == ['0/2', '2', '0.6000', '-']
  with pytest.raises(ValueError, match='3 annotators per image; expected 2'):
    by_marked.add(scores, np.zeros((4, 3, 6, 6), np.uint8))
  empty_row = evaluate.MetricsByMarked()
  empty_row.add({'ged2': (np.array([0.5]), None)}, masks_marked_by(1, a=2)[None])
  assert empty_row.table()['rows'][0] == {'marked_by': 0, 'num_images': 0, 'metrics': {},
                                          'undefined': {}}
  single = evaluate.MetricsByMarked()
  single.add({'ged2': (np.array([0.5]), None)}, masks_marked_by(1, a=1)[None])
  assert single.table() is None and evaluate.MetricsByMarked().table() is None


def test_printed_summary_says_how_many_are_undefined_and_shows_the_table():
  table = evaluate.EmptyCalibration((2,))
  table.add(np.stack([samples_with_empty([1, 0]), samples_with_empty([0, 0])]),
            np.stack([masks_marked_by(0, a=2), masks_marked_by(2, a=2)]))
  report = {'metrics': {'sncc2': 0.5, 'sncc16': 0.4}, 'num_examples': 9,
            'undefined': {'sncc2': 0, 'sncc16': 7},
            'undefined_images': {'sncc2': [], 'sncc16': [f'p/{i}' for i in range(7)]},
            'empty_calibration': table.table()}
  text = evaluate.format_table(report)
  assert 'sncc2: defined for all 9 images' in text
  assert ('sncc16: undefined (a constant map) for 7 of 9 images, left out of its mean: '
          'p/0, p/1, p/2, p/3, p/4, ... (7 in report.json undefined_images)') in text
  lines = text.splitlines()
  start = lines.index(next(l for l in lines if l.startswith('Empty samples')))
  assert lines[start + 1].split() == ['marked', 'by', 'images', 'true', 'N=2']
  assert lines[start + 2].split() == ['0/2', '1', '1.000', '0.500']
  assert lines[start + 3].split() == ['1/2', '0', '0.500', '-']
  assert lines[start + 4].split() == ['2/2', '1', '0.000', '0.000']
  # The marked image, by area: one group (one image), by 1/2 and 2/2 marked.
  assert lines[start + 5].startswith('Empty samples by the mean area of the marked masks')
  assert lines[start + 7].split() == ['1-1', '1', '0.000', '0.000', '-', '0.00']


# ----------------------------------------------------------------------------
# evaluate() with a stub sampler: which images are undefined, and the table.

SIZE = 8


class StubSource:
  """Images whose first pixels say how the stub sampler treats them."""

  def __init__(self, kinds, marked_by):
    self.kinds, self.marked_by = kinds, marked_by

  def __len__(self):
    return len(self.kinds)

  def __getitem__(self, i):
    image = np.zeros((SIZE, SIZE), np.uint8)
    image[0, 0] = 255 * (self.kinds[i] == 'varied')
    image[0, 1] = 255 * (self.kinds[i] == 'hard patch')
    return {'image': image, 'masks': masks_marked_by(self.marked_by[i], size=SIZE),
            'id': f'img{i}'}


def stub_sample(params, rng, images, num_samples=1, mean='full'):
  """'varied' images: even samples empty, odd ones a confident 2 x 2 patch of
  random strength (the samples disagree: S_NCC is defined). Other images: every
  sample the same saturated map (E_ss constant: S_NCC undefined), a patch for
  'hard patch', else empty."""
  del params, mean
  images = np.asarray(images)[..., 0]
  b = images.shape[0]
  noise = 1.0 + np.abs(np.asarray(jax.random.normal(rng, (num_samples, b, 2, 2))))
  d = np.full((num_samples, b, SIZE, SIZE), -30.0, np.float32)
  for j in range(b):
    if images[j, 0, 0] > 0.5:
      d[1::2, j, 2:4, 2:4] = noise[1::2, j]
    elif images[j, 0, 1] > 0.5:
      d[:, j, 2:4, 2:4] = 30.0
  probs = jax.nn.softmax(np.stack([np.zeros_like(d), d], -1), axis=-1)
  return Samples(labels=(d > 0).astype(np.int32), probs=probs, latents=())


def test_report_names_the_undefined_images_and_gives_the_table():
  kinds = ['varied', 'hard empty', 'hard patch', 'varied', 'hard empty']
  source = StubSource(kinds, marked_by=[0, 0, 4, 2, 1])
  report = evaluate.evaluate(stub_sample, None, source, image_size=SIZE, num_samples=(4, 2),
                             batch_size=2, modes=('full',), progress=False)
  assert report['undefined'] == {'sncc2': 3, 'sncc4': 3}
  assert report['undefined_images'] == {'sncc2': ['img1', 'img2', 'img4'],
                                        'sncc4': ['img1', 'img2', 'img4']}
  assert np.isfinite(report['metrics']['sncc2']) and np.isfinite(report['metrics']['sncc4'])
  rows = report['empty_calibration']['rows']
  assert [r['num_images'] for r in rows] == [2, 1, 1, 0, 1]
  # k = 0: a varied image (half of its samples empty) and a hard empty one.
  assert [r['empty_fraction2'] for r in rows] == [0.75, 1.0, 0.5, None, 0.0]
  assert [r['empty_fraction4'] for r in rows] == [0.75, 1.0, 0.5, None, 0.0]
  for key in ('sncc_probabilities', 'sncc_undefined_images', 'empty_calibration'):
    assert key in report['conventions']
  json.dumps(report, allow_nan=False)
  text = evaluate.format_table(report)
  assert 'sncc4: undefined (a constant map) for 3 of 5 images' in text and 'img4' in text


# ----------------------------------------------------------------------------
# A tiny model on the tiny synthetic set (4 annotators).

class WithoutOracle:
  """The source's examples only: evaluate() then skips the oracle metrics,
  whose compilations would double this test's time."""

  def __init__(self, source):
    self.source = source

  def __len__(self):
    return len(self.source)

  def __getitem__(self, i):
    return self.source[i]


def tiny_model_params(model, background_bias):
  """Random weights (no compilation of init: only its shapes are traced), with
  the logits' background bias set so that some samples come out empty."""
  shapes = jax.eval_shape(model.init, jax.random.key(0),
                          jax.ShapeDtypeStruct((1, 32, 32), jnp.int32),
                          jax.ShapeDtypeStruct((1, 32, 32, 1), jnp.float32))
  rng = np.random.default_rng(0)
  params = jax.tree.map(lambda s: rng.normal(0.0, 0.3, s.shape).astype(np.float32), shapes)
  params['hpunet/~/f_comb/logits']['b'] = np.array([background_bias, 0.0], np.float32)
  return params


def test_tiny_model_report_has_the_table_and_the_sncc_counts():
  config = tiny_config()
  config.data.synthetic.num_validation = 12       # every k = 0..4 occurs
  model = configuration.build_model(config.model)
  params = tiny_model_params(model, background_bias=0.9)
  sample = make_sampler(model)
  source = WithoutOracle(configuration.data_source(config.data, 'validation'))
  report = evaluate.evaluate(sample, params, source, image_size=32, num_samples=(2, 4),
                             batch_size=4, seed=5, modes=('full',), progress=False)
  assert report['num_examples'] == 12
  # Independently: the same draws (key fold_in(key(seed), batch index)), then
  # per image k and the empty samples counted by hand.
  expected = {n: np.zeros(5) for n in (2, 4)}
  images_per_k = np.zeros(5, int)
  key = jax.random.key(5)
  for index, batch in enumerate(pipeline.eval_batches(source, batch_size=4, image_size=32)):
    labels = np.asarray(sample(params, jax.random.fold_in(key, index), batch.images,
                               num_samples=4).labels)
    for j in range(batch.num_valid):
      k = sum(int(batch.masks[j, a].any()) for a in range(4))
      images_per_k[k] += 1
      for n in (2, 4):
        expected[n][k] += sum(not labels[i, j].any() for i in range(n)) / n
  table = report['empty_calibration']
  assert table['num_annotators'] == 4 and table['num_samples'] == [2, 4]
  assert [r['num_images'] for r in table['rows']] == list(images_per_k)
  for n in (2, 4):
    got = [r[f'empty_fraction{n}'] for r in table['rows']]
    want = [e / c if c else None for e, c in zip(expected[n], images_per_k)]
    assert got == pytest.approx(want), n
  # The groups by area hold the marked images, with the same empty samples.
  by_area = table['by_marked_area']
  assert sum(r['num_images'] for r in by_area['rows']) == images_per_k[1:].sum() > 0
  for n in (2, 4):
    pooled = sum(r[f'empty_fraction{n}'] * r['num_images'] for r in by_area['rows'])
    assert pooled == pytest.approx(expected[n][1:].sum()), n
  # The bias makes about half of the samples empty: the table is not trivial.
  assert 0 < expected[4].sum() < images_per_k.sum()
  # S_NCC at every N, with its undefined count stated even when 0.
  for n in (2, 4):
    name = f'sncc{n}'
    assert name in report['metrics'] and name in report['undefined']
    assert len(report['undefined_images'][name]) == report['undefined'][name]
    assert all(i.startswith('synthetic/validation/') for i in report['undefined_images'][name])
  # The rows by agreement pool back to the report's metrics.
  rows = report['metrics_by_marked']['rows']
  assert [r['num_images'] for r in rows] == list(images_per_k)
  for name, value in report['metrics'].items():
    defined = [(r['metrics'][name], r['num_images'] - r['undefined'].get(name, 0))
               for r in rows if r['num_images'] and r['metrics'][name] is not None]
    pooled = sum(m * c for m, c in defined if c) / sum(c for _, c in defined)
    assert pooled == pytest.approx(value, rel=1e-6), name
  assert 'metrics_by_marked' in report['conventions']
  json.dumps(report, allow_nan=False)
  text = evaluate.format_table(report)
  assert 'Empty samples by the number of the 4 annotators' in text and 'sncc4: ' in text
  assert 'Metrics by the number of the 4 annotators' in text


def test_the_config_temperature_reaches_the_samples_and_the_report():
  """eval.temperature: checked by name, drawn with, recorded; 1 is the model
  as trained (the same report as a sampler without the argument)."""
  config = tiny_config()
  config.data.synthetic.num_validation = 4
  model = configuration.build_model(config.model)
  params = tiny_model_params(model, background_bias=0.9)
  sample = make_sampler(model)
  source = WithoutOracle(configuration.data_source(config.data, 'validation'))
  levels = len(config.model.latent_dims)
  config.eval.temperature = (0.5,)
  assert configuration.sampling_temperature(config) == (0.5,) * levels
  config.eval.temperature = (0.0,)
  with pytest.raises(ValueError, match=r'^eval\.temperature=\(0\.0,\): expected finite'):
    configuration.validate(config, num_devices=1)
  config.eval.temperature = (1.0, 2.0) + (1.0,) * levels
  with pytest.raises(ValueError, match=r'^eval\.temperature=.*expected one per latent level'):
    configuration.sampling_temperature(config)

  def report(temperature, sampler=sample):
    return evaluate.evaluate(sampler, params, source, image_size=32, num_samples=(4,),
                             batch_size=4, seed=1, modes=('full',), progress=False,
                             temperature=temperature)

  def untempered(params, rng, images, num_samples=1, mean='full'):
    return sample(params, rng, images, num_samples=num_samples, mean=mean)

  as_trained, cold = report((1.0,) * levels, untempered), report((1e-3,) * levels)
  assert as_trained['metrics'] == report(1.0)['metrics']
  assert cold['temperature'] == [1e-3] * levels and as_trained['temperature'] == [1.0] * levels
  assert cold['metrics'] != as_trained['metrics']
