"""The input pipeline: random-access sources -> batches shaped for pmap.

Built on grain's `MapDataset`, whose elements are addressable by index. The
training stream is a pure function of (source, seed, step): global batch k is
element k of the dataset, so a run restarted at step k reads exactly the
batches an uninterrupted run would have read (no iterator state to save), and
each host reads only its own strided share of every global batch.

A source is anything with `__len__` and `__getitem__(i) -> dict` holding at
least `image` uint8 [H, W] and `masks` uint8 [A, H, W] with values 0/1 (the
synthetic set and the LIDC builders' `load_source` both are).

Glossary of shapes: D local devices, P per-device batch, A annotations,
H x W the model's image size, S x S the stored size (>= H).

    train = train_batches(source, batch_size=32, num_devices=2, image_size=128,
                          seed=0, augment=Augment(flip=True, rot90=True))
    for step, batch in enumerate(train.iterate(start_step), start_step):
      batch.images  # [D, P, H, W, 1] float32 in [0, 1]
      batch.labels  # [D, P, H, W] int32, one annotation drawn per image
"""
import dataclasses
from typing import Any, Iterator, NamedTuple, Optional

import grain
import numpy as np


@dataclasses.dataclass(frozen=True)
class Augment:
  """Training augmentation. Crops apply when the stored size exceeds the
  model's image size: random positions for training (if `random_crop`),
  the centre crop otherwise and always for evaluation."""
  flip: bool = False          # Random horizontal and vertical flips.
  rot90: bool = False         # Random multiples of 90 degrees.
  random_crop: bool = True    # Random crop positions (else the centre crop).


class TrainBatch(NamedTuple):
  images: np.ndarray     # [D, P, H, W, 1] float32 in [0, 1].
  labels: np.ndarray     # [D, P, H, W] int32.


class EvalBatch(NamedTuple):
  images: np.ndarray     # [B, H, W, 1] float32 in [0, 1].
  masks: np.ndarray      # [B, A, H, W] uint8, every annotation.
  indices: np.ndarray    # [B] int64 index of each example in the source.
  num_valid: int         # The last batch is padded (repeating its final
                         # example) to B; only the first num_valid count.


def image_to_float(image: np.ndarray) -> np.ndarray:
  """uint8 [..., H, W] -> float32 [..., H, W, 1] in [0, 1]."""
  return (np.asarray(image, np.float32) / 255.0)[..., None]


def centre_crop_offset(stored: int, size: int) -> int:
  return (stored - size) // 2


def check_example(example: dict, index: int, image_size: int) -> None:
  """A ValueError naming the example unless it holds image [H, W] and masks
  [A, H, W] stored at least at the model's image size."""
  image, masks = example['image'], example['masks']
  name = example.get('id', f'example {index}')
  if image.ndim != 2 or masks.ndim != 3 or masks.shape[1:] != image.shape:
    raise ValueError(f'{name}: expected image [H, W] and masks [A, H, W] of the '
                     f'same H, W; got {image.shape} and {masks.shape}.')
  if min(image.shape) < image_size:
    raise ValueError(f'{name}: stored size {image.shape} is smaller than the '
                     f'configured image_size {image_size}.')


def crop(array: np.ndarray, top: int, left: int, size: int) -> np.ndarray:
  """Crops the last two axes."""
  return array[..., top:top + size, left:left + size]


def _augment_train_example(example: dict, rng: np.random.Generator,
                           image_size: int, augment: Augment,
                           index: int) -> dict:
  check_example(example, index, image_size)
  image, masks = example['image'], example['masks']
  label = masks[rng.integers(masks.shape[0])]          # One rater per step.
  h, w = image.shape
  if augment.random_crop:
    top = int(rng.integers(h - image_size + 1))
    left = int(rng.integers(w - image_size + 1))
  else:
    top, left = centre_crop_offset(h, image_size), centre_crop_offset(w, image_size)
  image, label = crop(image, top, left, image_size), crop(label, top, left, image_size)
  if augment.flip:
    if rng.random() < 0.5:
      image, label = image[:, ::-1], label[:, ::-1]
    if rng.random() < 0.5:
      image, label = image[::-1], label[::-1]
  if augment.rot90:
    k = int(rng.integers(4))
    image, label = np.rot90(image, k), np.rot90(label, k)
  return dict(image=image_to_float(image), label=np.asarray(label, np.int32))


@dataclasses.dataclass(frozen=True)
class TrainBatches:
  """The infinite training stream of one host; `batch(step)` is random access."""
  dataset: Any                   # grain.MapDataset of TrainBatch.
  num_devices: int
  per_device_batch: int

  def batch(self, step: int) -> TrainBatch:
    return self.dataset[step]

  def wrap(self, train_step):
    """The train step as the loop calls it: train_step(state, images, labels)."""
    return train_step

  def step_args(self, batch: TrainBatch) -> tuple:
    """The train step's arguments after the state, for one batch."""
    return (batch.images, batch.labels)

  def iterate(self, start_step: int = 0, num_threads: int = 2,
              prefetch: int = 4) -> Iterator[TrainBatch]:
    """Batches start_step, start_step + 1, ... read ahead by worker threads."""
    options = grain.ReadOptions(num_threads=num_threads,
                                prefetch_buffer_size=prefetch)
    return iter(self.dataset[start_step:].to_iter_dataset(options))


def validate_batch_size(batch_size: int, num_devices: int, host_count: int = 1) -> int:
  """Returns the per-device batch or raises naming the values."""
  if batch_size <= 0:
    raise ValueError(f'batch_size={batch_size}: expected a positive integer.')
  shards = num_devices * host_count
  if batch_size % shards:
    raise ValueError(
        f'batch_size={batch_size} is not divisible by the {shards} devices '
        f'({host_count} host(s) x {num_devices} local device(s)); choose a '
        f'multiple of {shards}.')
  return batch_size // shards


def train_batches(source, *, batch_size: int, num_devices: int, image_size: int,
                  seed: int, augment: Augment = Augment(),
                  host_index: int = 0, host_count: int = 1) -> TrainBatches:
  """The training stream: reshuffled each epoch (seeded), one annotation drawn
  per image per step, augmented, batched as [D, P, ...] for pmap.

  `batch_size` is global (all hosts and devices). Global batch k holds
  elements k*G .. (k+1)*G - 1 of the shuffled, augmented stream; host h reads
  the h-th contiguous block of G / host_count of them.
  """
  if len(source) == 0:
    raise ValueError('The training source is empty.')
  if not 0 <= host_index < host_count:
    raise ValueError(f'host_index={host_index}: expected 0 <= host_index < '
                     f'host_count={host_count}.')
  per_device = validate_batch_size(batch_size, num_devices, host_count)

  def transform(index_and_example, rng):
    index, example = index_and_example
    return _augment_train_example(example, rng, image_size, augment, index)

  def to_batch(elements) -> TrainBatch:
    images = elements['image'].reshape(num_devices, per_device, image_size, image_size, 1)
    labels = elements['label'].reshape(num_devices, per_device, image_size, image_size)
    return TrainBatch(images=images, labels=labels)

  ds = (_shuffled(len(source), seed)
        .map(lambda i: (i, source[i]))
        .random_map(transform, seed=seed + 1))   # Seeded by the global position.
  if host_count > 1:
    ds = _host_shard(ds, host_index, host_count, batch_size)
  ds = ds.batch(num_devices * per_device).map(to_batch)
  return TrainBatches(dataset=ds, num_devices=num_devices, per_device_batch=per_device)


def _shuffled(n: int, seed: int):
  """Indices 0 .. n - 1, reshuffled each epoch, repeated without end."""
  return grain.MapDataset.range(n).shuffle(seed=seed).repeat()


def shuffled_positions(n: int, *, batch_size: int, seed: int, host_index: int = 0,
                       host_count: int = 1):
  """This host's share of the training stream of `train_batches` as (index in
  the source, global position) pairs, in order: the examples and the global
  positions (which seed their augmentation) that `train_batches` reads,
  without reading them (hpu_jax/data/device_batches.py). `batch_size` is
  global and divisible by host_count (`validate_batch_size`)."""
  order = _shuffled(n, seed)
  ds = grain.MapDataset.range(len(order)).map(lambda j: (order[j], j))
  if host_count > 1:
    ds = _host_shard(ds, host_index, host_count, batch_size)
  return ds


def _host_shard(ds, host_index: int, host_count: int, batch_size: int):
  """Host h's part of every global batch: its h-th contiguous block, so that
  host h's devices get the examples that devices h * D .. (h + 1) * D - 1 of
  one host would get (the same examples and augmentations per global device,
  hence the same training as on one host with all the devices)."""
  per_host = batch_size // host_count

  def global_position(j: int) -> int:
    step, offset = divmod(j, per_host)
    return step * batch_size + host_index * per_host + offset

  return grain.MapDataset.range(len(ds) // host_count).map(lambda j: ds[global_position(j)])


def eval_example(example: dict, image_size: int):
  """Centre crop to image_size; returns (image [H, W, 1] float32, masks [A, H, W])."""
  image, masks = example['image'], example['masks']
  h, w = image.shape
  top, left = centre_crop_offset(h, image_size), centre_crop_offset(w, image_size)
  return (image_to_float(crop(image, top, left, image_size)),
          np.asarray(crop(masks, top, left, image_size), np.uint8))


def eval_batches(source, *, batch_size: int, image_size: int,
                 limit: Optional[int] = None, num_threads: int = 2) -> Iterator[EvalBatch]:
  """Every example of the source once, in order, with all its annotations.

  Memory stays bounded by one batch whatever the split size. `limit` keeps
  the first `limit` examples."""
  if batch_size <= 0:
    raise ValueError(f'batch_size={batch_size}: expected a positive integer.')
  n = len(source) if limit is None else min(int(limit), len(source))
  if n == 0:
    return

  def load(index):
    example = source[index]
    check_example(example, index, image_size)
    image, masks = eval_example(example, image_size)
    return index, image, masks

  ds = grain.MapDataset.range(n).map(load)
  options = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=2 * batch_size)
  chunk = []
  for element in ds.to_iter_dataset(options):
    chunk.append(element)
    if len(chunk) == batch_size:
      yield _eval_batch(chunk, batch_size)
      chunk = []
  if chunk:
    yield _eval_batch(chunk, batch_size)


def _eval_batch(chunk, batch_size: int) -> EvalBatch:
  num_valid = len(chunk)
  chunk = chunk + [chunk[-1]] * (batch_size - num_valid)
  indices, images, masks = zip(*chunk)
  return EvalBatch(images=np.stack(images), masks=np.stack(masks),
                   indices=np.asarray(indices, np.int64), num_valid=num_valid)
