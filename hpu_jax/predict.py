"""Sampling segmentations of one's own images (the library part of scripts/sample.py).

    run = hpu_jax.load(resolve_weights('model.npz'))
    paths = list_inputs(['a.png', 'b.npy'])
    summary = predict(run, paths, 'out', num_samples=16, mean='full', seed=0)

Each image is read (hpu_jax/image_files.py: grayscale PNG of 8 or 16 bits,
or a 2-D .npy, scaled to [0, 1] by its own dtype's white), centre-cropped or
zero-padded to the model's size (`config.data.image_size`), and sampled
`num_samples` times. Per image, `<out>/<name>.npz` holds `labels` uint8
[N, H, W] (class ids: 0 / 1 for the two-class model), `probs` float16
[N, H, W] (the foreground probability, 1 - p(background), as evaluation
uses), `image` float32 [H, W] (what the model saw) and `info` (JSON text:
the source file, the crop or pad, the settings, the model's step); and
`<out>/<name>.png` the figure of hpu_jax/plots/sample_sheet.py. Both files
are rendered in memory and written atomically, so a failure leaves no
partial output for that image.

Each image's samples are drawn with the key `fold_in(key(seed), crc32(name))`,
and the .npz files are written with fixed zip dates: the same command gives
byte-identical .npz files.
"""
import functools
import json
import os
import sys
import zlib
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from hpu_jax import image_files, npz_file
from hpu_jax.image_files import ImageFileError

PROGRESS_MIN_IMAGES = 5   # Fewer images: no progress bar.


def _file_or_shipped(value: str, flag: str, shipped: dict, shipped_path, expected: str,
                     folder_hint: str = '') -> str:
  """The file `--flag=value` names: an existing file, or a name in `shipped`
  (its file by `shipped_path`); a folder or anything else is a clear error."""
  path = os.path.abspath(os.path.expanduser(value))
  if os.path.isfile(path):
    return path
  if value in shipped:
    return shipped_path(value)
  if os.path.isdir(path):
    raise FileNotFoundError(f'--{flag}={value}: a folder; expected {expected}{folder_hint}.')
  known = ', '.join(sorted(shipped))
  raise FileNotFoundError(f'--{flag}={value}: neither an existing file nor a known name '
                          f'(known names: {known}); expected {expected}.')


def resolve_weights(value: str) -> str:
  """The exported .npz that `--weights value` names: an existing file, or the
  name of weights shipped with the package (hpu_jax.pretrained.WEIGHTS)."""
  from hpu_jax import pretrained
  return _file_or_shipped(value, 'weights', pretrained.WEIGHTS, pretrained.path,
                          'an .npz written by scripts/export.py',
                          folder_hint=' (pass a training workdir with --workdir)')


# ----------------------------------------------------------------------------
# Inputs.

def output_name(path: str) -> str:
  """`a/b/scan_01.png` -> `scan_01`: the stem of its outputs."""
  return os.path.splitext(os.path.basename(path))[0]


def list_inputs(images: Sequence[str] = (), images_dir: Optional[str] = None) -> List[str]:
  """The input files: `images` in the order given, then the .png / .npy files
  of `images_dir` (not its subfolders) in name order. Two inputs with the
  same output name are an error (their outputs would collide)."""
  paths = [os.fspath(p) for p in images]
  if images_dir is not None:
    if not os.path.isdir(images_dir):
      raise FileNotFoundError(f'--images_dir={images_dir}: no such folder; expected a folder '
                              'of .png / .npy images.')
    names = sorted(n for n in os.listdir(images_dir) if not n.startswith('.')
                   and os.path.splitext(n)[1].lower() in image_files.SUFFIXES
                   and os.path.isfile(os.path.join(images_dir, n)))
    if not names:
      raise FileNotFoundError(f'--images_dir={images_dir}: no .png or .npy files; expected '
                              'a folder of images.')
    paths += [os.path.join(images_dir, n) for n in names]
  if not paths:
    raise ValueError('no images given; expected --images a.png b.npy ... or --images_dir.')
  seen: Dict[str, str] = {}
  for path in paths:
    name = output_name(path)
    if name in seen:
      raise ValueError(f'{path}: its outputs would be named {name}.npz / .png like those of '
                       f'{seen[name]}; expected inputs with distinct file names.')
    seen[name] = path
  return paths


class FittedImage(NamedTuple):
  name: str               # The outputs' stem.
  path: str               # The input file.
  image: np.ndarray       # float32 [S, S] in [0, 1]: what the model sees.
  fit: str                # What was done to reach S x S (empty: nothing).


def _fit_axis(array: np.ndarray, size: int, axis: int) -> Tuple[np.ndarray, str]:
  n = array.shape[axis]
  if n > size:
    start = (n - size) // 2   # As the pipeline's centre crop.
    return np.take(array, range(start, start + size), axis=axis), 'crop'
  if n < size:
    before = (size - n) // 2
    pad = [(0, 0), (0, 0)]
    pad[axis] = (before, size - n - before)
    return np.pad(array, pad), 'pad'
  return array, ''


def fit_to_size(image: np.ndarray, size: int) -> Tuple[np.ndarray, str]:
  """Centre-crops or zero-pads `image` [H, W] to [size, size]; returns it and
  what was done ('' when the size already fits)."""
  h, w = image.shape
  image, rows = _fit_axis(image, size, 0)
  image, cols = _fit_axis(image, size, 1)
  done = {'crop': 'centre-cropped', 'pad': 'zero-padded'}
  if not rows and not cols:
    return image, ''
  if rows == cols or not (rows and cols):
    what = done[rows or cols]
  else:
    what = f'{done[rows]} in height and {done[cols]} in width'
  return image, f'{h} x {w} {what} to {size} x {size}'


def read_input(path: str, size: int) -> FittedImage:
  """Reads one input and fits it to the model's size; ImageFileError if bad."""
  image, fit = fit_to_size(image_files.read_unit_image(path), size)
  return FittedImage(output_name(path), path, np.ascontiguousarray(image, np.float32), fit)


# ----------------------------------------------------------------------------
# Sampling.

def image_key(seed: int, name: str):
  import jax
  return jax.random.fold_in(jax.random.key(int(seed)), zlib.crc32(name.encode()))


@functools.lru_cache(maxsize=8)
def _vectorised(run_sample: Callable, num_samples: int, mean: str,
                temperature: Tuple[float, ...]) -> Callable:
  """The jitted, vectorised sampler of one run's `sample` (kept, so that calls
  with the same run and settings compile once)."""
  import jax

  def one(params, key, image):
    out = run_sample(params, key, image[None, ..., None], num_samples=num_samples, mean=mean,
                     temperature=temperature)
    return out.labels[:, 0], 1.0 - out.probs[:, 0, ..., 0]

  return jax.jit(jax.vmap(one, in_axes=(None, 0, 0)))


def resolve_presence(value: str) -> str:
  """The presence classifier that `--presence value` names: an existing file,
  or the name of shipped weights with one (hpu_jax.pretrained.PRESENCE)."""
  from hpu_jax import pretrained
  return _file_or_shipped(value, 'presence', pretrained.PRESENCE, pretrained.presence_path,
                          'an .npz written by scripts/train_presence.py')


def make_batch_sampler(run, num_samples: int, mean: str,
                       temperature: Tuple[float, ...] = (1.0,), presence=None) -> Callable:
  """sample(keys [B], images [B, S, S]) -> (labels uint8 [B, N, S, S],
  probs float16 [B, N, S, S]): each image sampled with its own key, as one
  vectorised, jitted batch, at `temperature` (`make_sampler`). With a
  `presence` classifier (hpu_jax.presence), each image in turn through its
  sampler, with the same key per image."""
  if presence is not None:
    from hpu_jax import presence as presence_lib
    sampler = presence_lib.make_sampler(run.sample, presence)

    def sample_each(keys, images):
      labels, probs = [], []
      for key, image in zip(keys, np.asarray(images)):
        out = sampler(run.params, key, image[None, ..., None], num_samples=int(num_samples),
                      mean=mean, temperature=tuple(temperature))
        labels.append(np.asarray(out.labels)[:, 0])
        probs.append(1.0 - np.asarray(out.probs)[:, 0, ..., 0])
      return (np.stack(labels).astype(np.uint8), np.stack(probs).astype(np.float16))

    return sample_each
  batched = _vectorised(run.sample, int(num_samples), str(mean),
                        tuple(float(t) for t in temperature))

  def sample(keys, images):
    labels, probs = batched(run.params, keys, images)
    return np.asarray(labels).astype(np.uint8), np.asarray(probs).astype(np.float16)

  return sample


# ----------------------------------------------------------------------------
# Outputs.

def render_outputs(fitted: FittedImage, labels: np.ndarray, probs: np.ndarray,
                   settings: dict) -> Tuple[bytes, bytes]:
  """The .npz and .png of one image, as bytes."""
  import io

  from PIL import Image

  from hpu_jax.plots import render_sample_sheet
  info = dict(settings, source=os.path.basename(fitted.path), fit=fitted.fit or 'none')
  npz = npz_file.npz_bytes({
      'labels': labels, 'probs': probs, 'image': fitted.image,
      'info': np.frombuffer(json.dumps(info, sort_keys=True).encode(), np.uint8)})
  title = (f'{os.path.basename(fitted.path)}: {labels.shape[0]} samples, '
           f'mean={settings["mean"]}, seed {settings["seed"]}'
           + (f'\n{fitted.fit}' if fitted.fit else ''))
  figure = render_sample_sheet(fitted.image, (labels > 0).astype(np.uint8),
                               probs.astype(np.float32), title=title)
  png = io.BytesIO()
  Image.fromarray(figure).save(png, format='PNG')
  return npz, png.getvalue()


class Summary(NamedTuple):
  written: List[str]             # The .npz files written, in input order.
  bad: List[Tuple[str, str]]     # (input, reason) of the files skipped.


def predict(run, paths: Sequence[str], out_dir: str, *, num_samples: int = 16,
            mean: str = 'full', seed: int = 0, batch_size: int = 8,
            temperature=None, presence=None, skip_bad_images: bool = False,
            progress: Optional[bool] = None,
            echo: Callable[[str], None] = print) -> Summary:
  """Samples every image of `paths` and writes its .npz and .png to `out_dir`.

  `temperature` (`make_sampler`; default: the one the run's evaluation used,
  its config's `eval.temperature`, 1 if unset). `presence`: a classifier
  (hpu_jax.presence) whose rate of "nothing" the samples follow.

  A bad input raises ImageFileError (after the outputs of the images before
  it are written), or with `skip_bad_images` is reported through `echo` and
  listed in the summary. `progress`: a tqdm bar (default: with at least
  PROGRESS_MIN_IMAGES images and a terminal)."""
  import jax
  from tqdm import tqdm
  if num_samples < 1:
    raise ValueError(f'num_samples={num_samples}: expected at least 1.')
  if batch_size < 1:
    raise ValueError(f'batch_size={batch_size}: expected at least 1.')
  size = int(run.config.data.image_size)
  from hpu_jax import configuration
  from hpu_jax.latents import resolve_temperatures
  if temperature is None:
    temperature = configuration.sampling_temperature(run.config)
  temperature = resolve_temperatures(temperature, len(run.model.latent_dims))
  if presence is not None:
    from hpu_jax import presence as presence_lib
    presence_lib.check_image_size(presence, size)
  sample = make_batch_sampler(run, int(num_samples), mean, temperature, presence)
  settings = {'num_samples': int(num_samples), 'mean': mean, 'seed': int(seed),
              'step': int(run.step), 'image_size': size, 'temperature': list(temperature),
              'presence': presence is not None}
  if progress is None:
    progress = len(paths) >= PROGRESS_MIN_IMAGES and sys.stderr.isatty()
  bar = tqdm(total=len(paths), unit='img', desc='sample', disable=not progress,
             dynamic_ncols=True)
  say = bar.write if progress else echo
  written, bad, batch = [], [], []

  def flush():
    images = np.zeros((batch_size, size, size), np.float32)   # One shape: one compile.
    images[:len(batch)] = [f.image for f in batch]
    keys = [image_key(seed, f.name) for f in batch]
    keys += [keys[-1]] * (batch_size - len(batch))
    labels, probs = sample(jax.numpy.stack(keys), images)
    for i, fitted in enumerate(batch):
      npz, png = render_outputs(fitted, labels[i], probs[i], settings)
      written.append(npz_file.write_atomic(os.path.join(out_dir, fitted.name + '.npz'), npz))
      npz_file.write_atomic(os.path.join(out_dir, fitted.name + '.png'), png)
      bar.update(1)
    batch.clear()

  try:
    for path in paths:
      try:
        fitted = read_input(path, size)
      except ImageFileError as e:
        if not skip_bad_images:
          if batch:
            flush()   # The images before the bad one get their outputs.
          raise
        bad.append((path, str(e)))
        say(f'skipped: {e}')
        bar.update(1)
        continue
      if fitted.fit:
        say(f'{path}: {fitted.fit}')
      batch.append(fitted)
      if len(batch) == batch_size:
        flush()
    if batch:
      flush()
  finally:
    bar.close()
  return Summary(written, bad)
