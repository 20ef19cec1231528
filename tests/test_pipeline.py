"""The input pipeline: shapes for pmap, determinism and exact resume, host
shards, one annotation per step, augmentation consistency, eval batches."""
import numpy as np
import pytest

from hpu_jax.data import pipeline
from hpu_jax.data.synthetic import SyntheticDataset


class ListSource:
  """A tiny in-memory source: image i has value i in its top-left pixel, so
  batches can be traced back to examples; mask k of example i is a square
  whose size depends on k."""

  def __init__(self, n, size=8, num_masks=4, seed=0):
    rng = np.random.default_rng(seed)
    self.examples = []
    for i in range(n):
      image = rng.integers(0, 256, (size, size), dtype=np.uint8)
      image[0, 0] = i
      masks = np.zeros((num_masks, size, size), np.uint8)
      for k in range(num_masks):
        masks[k, :k + 1, :k + 2] = 1
      self.examples.append(dict(image=image, masks=masks, id=f'ex{i}'))

  def __len__(self):
    return len(self.examples)

  def __getitem__(self, i):
    return self.examples[i]


def example_ids(batch):
  """Top-left pixel values (the example index) of a [D, P, H, W, 1] batch."""
  return np.rint(batch.images[..., 0, 0, 0] * 255).astype(int).ravel()


def test_batches_are_shaped_for_pmap():
  stream = pipeline.train_batches(ListSource(10), batch_size=6, num_devices=2,
                                  image_size=8, seed=0)
  batch = stream.batch(0)
  assert batch.images.shape == (2, 3, 8, 8, 1) and batch.images.dtype == np.float32
  assert batch.labels.shape == (2, 3, 8, 8) and batch.labels.dtype == np.int32
  assert 0.0 <= batch.images.min() and batch.images.max() <= 1.0


def test_each_epoch_visits_every_example_once_and_reshuffles():
  stream = pipeline.train_batches(ListSource(12), batch_size=4, num_devices=1,
                                  image_size=8, seed=3)
  epoch0 = np.concatenate([example_ids(stream.batch(k)) for k in range(3)])
  epoch1 = np.concatenate([example_ids(stream.batch(k)) for k in range(3, 6)])
  assert sorted(epoch0) == list(range(12)) and sorted(epoch1) == list(range(12))
  assert list(epoch0) != list(epoch1)
  other_seed = pipeline.train_batches(ListSource(12), batch_size=4, num_devices=1,
                                      image_size=8, seed=4)
  assert list(example_ids(other_seed.batch(0))) != list(epoch0[:4])


def test_restart_at_step_k_yields_the_same_batches():
  source = ListSource(9)
  make = lambda: pipeline.train_batches(source, batch_size=4, num_devices=2,
                                        image_size=8, seed=1,
                                        augment=pipeline.Augment(flip=True, rot90=True))
  uninterrupted = make().iterate(0)
  full = [next(uninterrupted) for _ in range(7)]
  resumed = make().iterate(4)
  for k in range(4, 7):
    batch = next(resumed)
    np.testing.assert_array_equal(batch.images, full[k].images)
    np.testing.assert_array_equal(batch.labels, full[k].labels)


def test_hosts_read_disjoint_shards_that_make_up_the_global_batch():
  source = ListSource(16)
  single = pipeline.train_batches(source, batch_size=8, num_devices=2, image_size=8, seed=0)
  hosts = [pipeline.train_batches(source, batch_size=8, num_devices=2, image_size=8,
                                  seed=0, host_index=h, host_count=2) for h in range(2)]
  for step in range(3):
    shards = [example_ids(h.batch(step)) for h in hosts]
    assert hosts[0].batch(step).images.shape == (2, 2, 8, 8, 1)
    assert not set(shards[0]) & set(shards[1])
    assert sorted(np.concatenate(shards)) == sorted(example_ids(single.batch(step)))
    # In device order: host h holds what devices 2h, 2h + 1 of one host would,
    # with the same augmentations.
    wide = pipeline.train_batches(source, batch_size=8, num_devices=4, image_size=8, seed=0)
    np.testing.assert_array_equal(
        np.concatenate([h.batch(step).images for h in hosts]), wide.batch(step).images)


def test_one_annotation_is_drawn_at_random_per_image_and_step():
  source = ListSource(1, num_masks=4)
  stream = pipeline.train_batches(source, batch_size=1, num_devices=1, image_size=8, seed=0)
  chosen = set()
  for step in range(60):
    label = stream.batch(step).labels[0, 0]
    matches = [k for k in range(4) if np.array_equal(label, source[0]['masks'][k])]
    assert len(matches) == 1
    chosen.add(matches[0])
  assert chosen == {0, 1, 2, 3}


def test_augmentation_moves_image_and_label_together():
  class Thresholded(ListSource):
    def __getitem__(self, i):
      ex = dict(self.examples[i])
      ex['masks'] = np.repeat((ex['image'] > 127)[None], 4, 0).astype(np.uint8)
      return ex

  stream = pipeline.train_batches(Thresholded(5, size=12), batch_size=5, num_devices=1,
                                  image_size=8, seed=0,
                                  augment=pipeline.Augment(flip=True, rot90=True))
  seen_transforms = set()
  for step in range(8):
    batch = stream.batch(step)
    image = np.rint(batch.images[..., 0] * 255)
    np.testing.assert_array_equal(batch.labels, (image > 127).astype(np.int32))
    seen_transforms.add(batch.images.tobytes())
  assert len(seen_transforms) == 8


def test_random_crops_vary_and_stay_inside_the_stored_image():
  source = ListSource(1, size=12)
  stream = pipeline.train_batches(source, batch_size=1, num_devices=1, image_size=8, seed=0)
  full = source[0]['image'].astype(np.float32) / 255
  offsets = set()
  for step in range(30):
    crop = stream.batch(step).images[0, 0, ..., 0]
    found = [(t, l) for t in range(5) for l in range(5)
             if np.array_equal(full[t:t + 8, l:l + 8], crop)]
    assert found
    offsets.add(found[0])
  assert len(offsets) > 5
  centre = pipeline.train_batches(source, batch_size=1, num_devices=1, image_size=8,
                                  seed=0, augment=pipeline.Augment(random_crop=False))
  np.testing.assert_array_equal(centre.batch(0).images[0, 0, ..., 0], full[2:10, 2:10])


def test_eval_batches_cover_the_split_in_order_with_padding():
  source = ListSource(7, size=12)
  batches = list(pipeline.eval_batches(source, batch_size=3, image_size=8))
  assert [b.num_valid for b in batches] == [3, 3, 1]
  assert all(b.images.shape == (3, 8, 8, 1) and b.masks.shape == (3, 4, 8, 8) for b in batches)
  indices = np.concatenate([b.indices[:b.num_valid] for b in batches])
  np.testing.assert_array_equal(indices, np.arange(7))
  np.testing.assert_array_equal(batches[0].masks[1], source[1]['masks'][:, 2:10, 2:10])
  assert len(list(pipeline.eval_batches(source, batch_size=3, image_size=8, limit=4))) == 2


def test_synthetic_source_feeds_the_pipeline():
  source = SyntheticDataset('train', 6, image_size=32, seed=0)
  batch = pipeline.train_batches(source, batch_size=4, num_devices=2, image_size=32,
                                 seed=0).batch(0)
  assert batch.images.shape == (2, 2, 32, 32, 1)
  assert set(np.unique(batch.labels)) <= {0, 1}


@pytest.mark.parametrize('batch_size, devices, hosts, match', [
    (6, 4, 1, 'batch_size=6 is not divisible by the 4 devices'),
    (8, 2, 3, r'3 host\(s\) x 2 local device'),
    (0, 1, 1, 'batch_size=0: expected a positive integer'),
])
def test_bad_batch_sizes_are_rejected(batch_size, devices, hosts, match):
  with pytest.raises(ValueError, match=match):
    pipeline.validate_batch_size(batch_size, devices, hosts)


def test_bad_examples_name_the_example():
  class Mismatched(ListSource):
    def __getitem__(self, i):
      return dict(self.examples[i], masks=np.zeros((4, 6, 6), np.uint8))

  with pytest.raises(ValueError, match='ex0: expected image'):
    pipeline.train_batches(Mismatched(1), batch_size=1, num_devices=1, image_size=8,
                           seed=0).batch(0)
  with pytest.raises(ValueError, match='smaller than the configured image_size 16'):
    list(pipeline.eval_batches(ListSource(1), batch_size=1, image_size=16))
  with pytest.raises(ValueError, match='empty'):
    pipeline.train_batches(ListSource(0), batch_size=1, num_devices=1, image_size=8, seed=0)
