"""The training stream with the training split kept on the devices
(`data.on_device=True`): the host sends only example indices, and the jitted
train step gathers, crops, flips and rotates its batch itself.

Why: on a fast accelerator the host pipeline (hpu_jax/data/pipeline.py),
which reads, augments and copies every batch, can fall behind the train step.
Here the split is copied to every local device once, as stored (uint8), and
each step's host work is a few hundred integers.

The stream is the host pipeline's, example for example: the same shuffled
order per epoch (the same seed), the same split of every global batch
between hosts and devices, so an example sits at the same global position
`j` (step * batch_size + its place in the global batch) either way. What
differs is the random draw of the annotator, the crop and the flips and
rotation, which here comes from `jax.random.fold_in(key(seed + 1), j)`.
Like the host stream it is a pure function of (seed, step): a resumed run
reads exactly the batches an uninterrupted one would have, and one host with
all the devices trains exactly like several hosts.

    data = device_batches.stack_source(source, image_size=64)   # numpy, on the host
    batches = device_batches.train_batches(data, devices, batch_size=32, ...)
    step = jax.pmap(batches.wrap(train_step), axis_name='batch')
    for batch in batches.iterate(start_step):
      state, metrics = step(state, *batches.step_args(batch))

Memory: the split as stored, on every local device (the LIDC slices'
training split: 8,962 x 5 x 128 x 128 bytes, 0.73 GB per device).
"""
import dataclasses
from typing import Any, Iterator, NamedTuple, Sequence, Tuple

import grain
import jax
import jax.numpy as jnp
import numpy as np

from hpu_jax.data import pipeline


class StackedSplit(NamedTuple):
  """A whole split as stored, on the host."""
  images: np.ndarray     # [N, S, S] uint8.
  masks: np.ndarray      # [N, A, S, S] uint8, 0/1.


class IndexBatch(NamedTuple):
  """What the host sends per step, [D, P] each."""
  indices: np.ndarray    # int32: index of each example in the split.
  positions: np.ndarray  # uint32: its global position in the stream (seeds its augmentation).


def stack_source(source, image_size: int) -> StackedSplit:
  """Every example of `source`, stacked; the examples must share their stored
  size and number of annotations (a ValueError names the first that does not)."""
  n = len(source)
  if n == 0:
    raise ValueError('The training source is empty.')
  first = source[0]
  pipeline.check_example(first, 0, image_size)
  images = np.empty((n,) + first['image'].shape, np.uint8)
  masks = np.empty((n,) + first['masks'].shape, np.uint8)
  for i in range(n):
    example = first if i == 0 else source[i]
    pipeline.check_example(example, i, image_size)
    if example['image'].shape != images.shape[1:] or example['masks'].shape != masks.shape[1:]:
      name = example.get('id', f'example {i}')
      raise ValueError(
          f'{name}: image {example["image"].shape} and masks {example["masks"].shape}, '
          f'where example 0 has {images.shape[1:]} and {masks.shape[1:]}; data.on_device '
          'needs every training example stored at one size with one number of '
          'annotations (set data.on_device=False to read them as they are).')
    images[i] = example['image']
    masks[i] = example['masks']
  return StackedSplit(images=images, masks=masks)


def augment_example(image: jax.Array, masks: jax.Array, key: jax.Array, *,
                    image_size: int, augment: pipeline.Augment) -> Tuple[jax.Array, jax.Array]:
  """One example, as the host pipeline augments it (one annotator, crop,
  flips, rotation by k x 90 degrees), drawn from `key`: image [S, S] uint8,
  masks [A, S, S] -> image [H, W, 1] float32 in [0, 1], label [H, W] int32."""
  k_rater, k_top, k_left, k_lr, k_ud, k_rot = jax.random.split(key, 6)
  label = masks[jax.random.randint(k_rater, (), 0, masks.shape[0])]
  stored = image.shape[0]
  if augment.random_crop and stored > image_size:
    top = jax.random.randint(k_top, (), 0, stored - image_size + 1)
    left = jax.random.randint(k_left, (), 0, stored - image_size + 1)
  else:
    top = left = pipeline.centre_crop_offset(stored, image_size)
  both = jnp.stack([image, label])
  both = jax.lax.dynamic_slice(both, (0, top, left), (2, image_size, image_size))
  if augment.flip:
    both = jnp.where(jax.random.bernoulli(k_lr), both[:, :, ::-1], both)
    both = jnp.where(jax.random.bernoulli(k_ud), both[:, ::-1], both)
  if augment.rot90:
    k = jax.random.randint(k_rot, (), 0, 4)
    both = jax.lax.switch(k, [lambda x, r=r: jnp.rot90(x, r, axes=(1, 2)) for r in range(4)],
                          both)
  # The host pipeline's values to the bit (XLA would divide by multiplying).
  to_float = jnp.asarray(pipeline.image_to_float(np.arange(256, dtype=np.uint8))[:, 0])
  return to_float[both[0]][..., None], both[1].astype(jnp.int32)


def augment_batch(images: jax.Array, masks: jax.Array, indices: jax.Array,
                  positions: jax.Array, *, seed: int, image_size: int,
                  augment: pipeline.Augment) -> Tuple[jax.Array, jax.Array]:
  """One device's batch from the split on that device: images [N, S, S] and
  masks [N, A, S, S] uint8, indices and positions [P] -> images [P, H, W, 1]
  float32, labels [P, H, W] int32."""
  base = jax.random.key(seed + 1)
  keys = jax.vmap(lambda j: jax.random.fold_in(base, j))(positions)
  one = lambda i, key: augment_example(images[i], masks[i], key, image_size=image_size,
                                       augment=augment)
  return jax.vmap(one)(indices, keys)


@dataclasses.dataclass(frozen=True)
class DeviceBatches:
  """This host's training stream, with the split on its local devices."""
  dataset: Any                 # grain.MapDataset of IndexBatch, by step.
  images: jax.Array            # [D, N, S, S] uint8, one copy per local device.
  masks: jax.Array             # [D, N, A, S, S] uint8.
  num_devices: int
  per_device_batch: int
  seed: int
  image_size: int
  augment: pipeline.Augment

  def batch(self, step: int) -> IndexBatch:
    return self.dataset[step]

  def iterate(self, start_step: int = 0, num_threads: int = 1,
              prefetch: int = 4) -> Iterator[IndexBatch]:
    options = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch)
    return iter(self.dataset[start_step:].to_iter_dataset(options))

  def wrap(self, train_step):
    """train_step(state, images, labels) -> the same step taking
    (state, split images, split masks, indices, positions), one device's share."""
    seed, image_size, augment = self.seed, self.image_size, self.augment

    def step(state, split_images, split_masks, indices, positions):
      images, labels = augment_batch(split_images, split_masks, indices, positions,
                                     seed=seed, image_size=image_size, augment=augment)
      return train_step(state, images, labels)

    return step

  def step_args(self, batch: IndexBatch) -> tuple:
    return (self.images, self.masks, batch.indices, batch.positions)


def _on_each_device(array: np.ndarray, devices: Sequence[jax.Device], axis_name: str) -> jax.Array:
  """[D, ...]: one copy of `array` on each device, laid out as pmap takes it
  (copied to each device once, never stacked D times on one)."""
  mesh = jax.sharding.Mesh(np.asarray(devices), (axis_name,))
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(axis_name))
  shards = [jax.device_put(array[None], d) for d in devices]
  return jax.make_array_from_single_device_arrays((len(devices),) + array.shape, sharding,
                                                  shards)


def train_batches(split: StackedSplit, devices: Sequence[jax.Device], *, batch_size: int,
                  image_size: int, seed: int, augment: pipeline.Augment = pipeline.Augment(),
                  host_index: int = 0, host_count: int = 1,
                  axis_name: str = 'batch') -> DeviceBatches:
  """The stream of `pipeline.train_batches`, as indices, with `split` copied to
  every one of `devices` (this host's local devices)."""
  num_devices = len(devices)
  per_device = pipeline.validate_batch_size(batch_size, num_devices, host_count)
  order = pipeline.shuffled_positions(len(split.images), batch_size=batch_size, seed=seed,
                                      host_index=host_index, host_count=host_count)

  def to_batch(elements) -> IndexBatch:
    shape = (num_devices, per_device)
    return IndexBatch(indices=np.asarray(elements[0], np.int32).reshape(shape),
                      positions=np.asarray(elements[1], np.int64).astype(np.uint32).reshape(shape))

  ds = order.batch(num_devices * per_device).map(to_batch)
  return DeviceBatches(dataset=ds, images=_on_each_device(split.images, devices, axis_name),
                       masks=_on_each_device(split.masks, devices, axis_name),
                       num_devices=num_devices, per_device_batch=per_device, seed=seed,
                       image_size=image_size, augment=augment)
