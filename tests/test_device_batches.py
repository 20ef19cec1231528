"""The training stream with the split on the devices (`data.on_device`): the
host pipeline's examples in the host pipeline's order, augmented inside the
jitted step, exact on resume and across hosts, and a training that uses it."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hpu_jax import train
from hpu_jax.data import device_batches, pipeline
from helpers import tiny_config
from test_pipeline import ListSource


def device_batch(stream, step):
  """Step `step` of a DeviceBatches stream as the train step sees it:
  (images [D, P, H, W, 1], labels [D, P, H, W]) on the host."""
  batch = stream.batch(step)
  run = jax.pmap(stream.wrap(lambda state, images, labels: (images, labels)))
  images, labels = run(jnp.zeros((stream.num_devices,)), *stream.step_args(batch))
  return np.asarray(images), np.asarray(labels)


def make(source, devices=None, **kwargs):
  devices = devices or jax.local_devices()
  image_size = kwargs.pop('image_size', 8)
  split = device_batches.stack_source(source, image_size)
  return device_batches.train_batches(split, devices, image_size=image_size, **kwargs)


def test_without_augmentation_the_batches_equal_the_host_pipelines():
  source = ListSource(10, num_masks=1)     # One annotation: no draw to differ.
  host = pipeline.train_batches(source, batch_size=4, num_devices=2, image_size=8, seed=5)
  dev = make(source, batch_size=4, seed=5)
  assert dev.images.shape == (2, 10, 8, 8) and dev.masks.shape == (2, 10, 1, 8, 8)
  for step in range(6):                  # Past an epoch (10 examples, 4 per step).
    images, labels = device_batch(dev, step)
    expected = host.batch(step)
    np.testing.assert_array_equal(images, expected.images)
    np.testing.assert_array_equal(labels, expected.labels)
    assert images.dtype == np.float32 and labels.dtype == np.int32


def test_augmented_examples_are_dihedral_images_of_the_same_example_and_annotation():
  source = ListSource(6, size=12, num_masks=4)
  dev = make(source, batch_size=6, seed=0, augment=pipeline.Augment(flip=True, rot90=True))
  seen = set()
  for step in range(6):
    images, labels = device_batch(dev, step)
    for d in range(2):
      for p in range(3):
        index = dev.batch(step).indices[d, p]
        image = np.rint(images[d, p, ..., 0] * 255).astype(np.uint8)
        stored, masks = source[index]['image'], source[index]['masks']
        found = [(t, l, k, m) for t in range(5) for l in range(5) for k in range(8)
                 for m in range(4) for view in [dihedral(stored[t:t + 8, l:l + 8], k)]
                 if np.array_equal(view, image) and np.array_equal(
                     dihedral(masks[m, t:t + 8, l:l + 8], k), labels[d, p])]
        assert found, (step, d, p)
        seen.add(found[0][2])
  assert len(seen) >= 4                  # Flips and rotations both drawn.


def dihedral(x, k):
  """The 8 symmetries of the square: k % 4 quarter turns, then a flip if k >= 4."""
  x = np.rot90(x, k % 4)
  return x[:, ::-1] if k >= 4 else x


def test_a_restart_at_step_k_and_two_hosts_read_the_same_batches():
  source = ListSource(9, size=10)
  kwargs = dict(batch_size=4, seed=1, augment=pipeline.Augment(flip=True, rot90=True))
  full = make(source, **kwargs)
  batches = [device_batch(full, k) for k in range(6)]
  resumed = make(source, **kwargs).iterate(3)
  for k in range(3, 6):
    assert np.array_equal(next(resumed).positions, full.batch(k).positions)
  devices = jax.local_devices()
  hosts = [make(source, devices=devices[h:h + 1], host_index=h, host_count=2, **kwargs)
           for h in range(2)]
  for k in range(4):
    parts = [device_batch(h, k) for h in hosts]
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), batches[k][0])
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), batches[k][1])


def test_examples_of_different_sizes_are_refused_naming_the_example():
  source = ListSource(3, size=8)
  source.examples[2] = dict(source.examples[2], image=np.zeros((9, 9), np.uint8),
                            masks=np.zeros((4, 9, 9), np.uint8))
  with pytest.raises(ValueError, match=r'ex2: .*data.on_device'):
    device_batches.stack_source(source, 8)
  with pytest.raises(ValueError, match='ex0: stored size'):
    device_batches.stack_source(ListSource(2, size=8), 16)


def test_training_with_the_split_on_the_devices_resumes_exactly(tmp_path):
  config = tiny_config(num_steps=4)
  config.data.on_device = True
  full = train.train(config, str(tmp_path / 'full'))
  config.train.num_steps = 2
  train.train(config, str(tmp_path / 'parts'))
  config.train.num_steps = 4
  resumed = train.train(config, str(tmp_path / 'parts'))
  assert int(resumed.state.step) == 4
  for a, b in zip(jax.tree.leaves(full.state.params), jax.tree.leaves(resumed.state.params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  host = train.train(tiny_config(num_steps=4), str(tmp_path / 'host'))
  # Another draw of the augmentation, the same examples: a different but sane run.
  assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(host.state.params))


def test_on_device_must_be_a_bool():
  from hpu_jax import configuration
  import ml_collections
  config = tiny_config()
  # A config file not built on configs/base.py (whose field is typed bool).
  config.data = ml_collections.ConfigDict(dict(config.data.to_dict(), on_device='yes'))
  with pytest.raises(ValueError, match=r"data.on_device='yes'"):
    configuration.validate(config, 2)
