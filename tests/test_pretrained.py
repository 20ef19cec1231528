"""The weights and example slices shipped with the package: they load by name,
carry their validation and test metrics, and sample."""
import jax
import numpy as np
import pytest

import hpu_jax
from hpu_jax import export_file, pretrained
from hpu_jax.data import pipeline


@pytest.mark.parametrize('name, data, size', [('lidc_slices_cpu', 'lidc_slices', 64),
                                              ('synthetic', 'synthetic', 32)])
def test_shipped_weights_load_by_name_with_their_metrics(name, data, size):
  run = hpu_jax.load_pretrained(name)
  assert run.config.data.name == data and int(run.config.data.image_size) == size
  # synthetic ships its best checkpoint by quick validation, lidc_slices_cpu
  # its last (the one its run's evaluation scored); either way the metrics
  # below must be of the shipped step.
  assert run.step > 0 and run.meta['which'] in ('best', 'latest')
  for (section, field), default in export_file.MACHINE_FIELDS.items():
    assert run.config[section].get(field, default) == default, field   # No local paths.
  evaluations = {e['split']: e for e in run.meta['evaluations']}
  assert set(evaluations) == {'validation', 'test'}
  for evaluation in evaluations.values():
    assert evaluation['checkpoint_step'] == run.step
    assert 0 < evaluation['metrics']['ged16'] < 1 and 0 < evaluation['metrics']['hm_iou16'] < 1
  images = np.zeros((2, size, size, 1), np.float32)
  out = run.sample(run.params, jax.random.key(0), images, num_samples=3)
  assert out.labels.shape == (3, 2, size, size)


def test_the_lidc_model_segments_the_shipped_example_slices():
  """The examples are training-split slices with 4 radiologists' masks; the
  model's mean sample overlaps the radiologists' union on the clear nodules."""
  examples = pretrained.lidc_examples()
  assert str(examples['split']) == 'train' and len(examples['images']) <= 16
  assert examples['masks'].shape[1] == 4 and set(np.unique(examples['masks'])) <= {0, 1}
  run = hpu_jax.load_pretrained('lidc_slices_cpu')
  size = int(run.config.data.image_size)
  clear = [i for i, k in enumerate(examples['raters_marking']) if k == 4]
  fitted = [pipeline.eval_example({'image': examples['images'][i], 'masks': examples['masks'][i]},
                                  size) for i in clear]
  images = np.stack([f[0] for f in fitted])
  union = np.stack([f[1].max(0) for f in fitted]).astype(bool)
  out = run.sample(run.params, jax.random.key(0), images, num_samples=16)
  drawn = np.asarray(out.labels).astype(bool).mean(0) >= 0.5      # [E, H, W]
  iou = (drawn & union).sum((1, 2)) / np.maximum((drawn | union).sum((1, 2)), 1)
  assert np.all(iou > 0.3), iou


def test_an_unknown_name_lists_the_known_ones():
  with pytest.raises(ValueError, match=r"'lidc_v9': no such shipped weights; expected one of "
                                       r"\('lidc_slices_cpu', 'synthetic'\)"):
    hpu_jax.load_pretrained('lidc_v9')


def test_the_shipped_presence_classifier_tells_clear_nodules_from_doubtful_ones():
  """Three members trained on the training split for lidc_slices_cpu: its
  size, its validation scores, and on the example slices a higher p(marked)
  where all four radiologists marked than where one did."""
  clf = pretrained.load_presence('lidc_slices_cpu')
  run = hpu_jax.load_pretrained('lidc_slices_cpu')
  assert clf.image_size == int(run.config.data.image_size)
  assert len(clf.members) == 3
  assert [m['train_images'] for m in clf.meta['members']] == [8962] * 3
  val = clf.meta['validation']
  assert val['cross_entropy'] < val['constant_cross_entropy'] and val['correlation'] > 0.5
  examples = pretrained.lidc_examples()
  images = np.stack([pipeline.eval_example({'image': image, 'masks': masks}, clf.image_size)[0]
                     for image, masks in zip(examples['images'], examples['masks'])])
  p = clf.marked_probability(images)
  k = np.asarray(examples['raters_marking'])
  assert p[k == 4].min() > p[k == 1].max(), (p, k)
  with pytest.raises(ValueError, match="'synthetic': no presence classifier ships for it"):
    pretrained.load_presence('synthetic')
