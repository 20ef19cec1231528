"""Trained HPU-Nets shipped with the package, loaded by name, and a few LIDC
example slices to try them on (README.md beside this file: what each was
trained on, its metrics, the data's licence and citation).

    run = hpu_jax.load_pretrained('lidc_slices_cpu')
    examples = hpu_jax.pretrained.lidc_examples()     # images [8, 128, 128] uint8, masks ...
    clf = hpu_jax.pretrained.load_presence('lidc_slices_cpu')   # see hpu_jax.presence

Each `.npz` is a file `hpu_jax.export` wrote: loading verifies its digest and
unpickles nothing. Its metadata (`run.meta`) holds the checkpoint step, the
split rule and the validation and test metrics measured for it.
"""
import os
from typing import Dict

import numpy as np

DIRECTORY = os.path.dirname(os.path.abspath(__file__))
WEIGHTS = {
    'lidc_slices_cpu': 'lidc_slices_cpu.npz',   # configs/lidc_slices_cpu.py, LIDC-IDRI slices.
    'synthetic': 'synthetic.npz',               # configs/synthetic.py, the main job.
}
# Presence classifiers (hpu_jax.presence) trained for shipped weights.
PRESENCE = {
    'lidc_slices_cpu': 'lidc_slices_cpu_presence.npz',   # Same training split; seeds 0, 1, 2.
}
LIDC_EXAMPLES = 'lidc_examples.npz'


def _shipped_file(name: str, files: dict, unknown: str, what: str) -> str:
  """The file `files[name]` in this folder, or a clear error: `unknown` for a
  name not in `files`, and `what` names a file missing from the installation."""
  if name not in files:
    raise ValueError(f'{name!r}: {unknown}; expected one of {tuple(files)}.')
  file = os.path.join(DIRECTORY, files[name])
  if not os.path.isfile(file):
    raise FileNotFoundError(f'{file}: {what} {name!r} is missing from this installation; '
                            'expected it installed with the package (reinstall hpu_jax).')
  return file


def path(name: str) -> str:
  """The file of the shipped weights `name`."""
  return _shipped_file(name, WEIGHTS, 'no such shipped weights', 'the shipped weights file')


def presence_path(name: str) -> str:
  """The file of the presence classifier shipped for the weights `name`."""
  return _shipped_file(name, PRESENCE, 'no presence classifier ships for it',
                       'the shipped presence classifier of')


def load_presence(name: str):
  """The presence classifier shipped for the weights `name`
  (hpu_jax.presence: an explicit weight on "nothing"):

      run = hpu_jax.load_pretrained('lidc_slices_cpu')
      sample = presence.make_sampler(run.sample, pretrained.load_presence('lidc_slices_cpu'))
  """
  from hpu_jax import presence
  return presence.load(presence_path(name))


def load_pretrained(name: str):
  """The shipped weights `name` as hpu_jax.load returns them: config, params,
  model, jitted sampler, step and metadata."""
  from hpu_jax.loading import load_file
  return load_file(path(name))


def lidc_examples() -> Dict[str, np.ndarray]:
  """A few slices of the LIDC-IDRI training split (not seen in validation or
  testing): `images` uint8 [E, 128, 128], `masks` uint8 [E, 4, 128, 128] in
  {0, 1} (one per radiologist), `ids` (patient/nodule/slice)."""
  with np.load(os.path.join(DIRECTORY, LIDC_EXAMPLES), allow_pickle=False) as f:
    return {k: f[k] for k in f.files}
