"""hpu_jax: the Hierarchical Probabilistic U-Net in JAX + Haiku."""
from hpu_jax import xla_cpu

xla_cpu.configure()  # before JAX starts its backend; see hpu_jax/xla_cpu.py.

# pylint: disable=wrong-import-position
from hpu_jax.losses import GecoState, LossConfig, hpunet_loss
from hpu_jax.model import HPUNetOutput, Model, build_hpunet, parameter_split
from hpu_jax.sampling import make_reconstructor, make_sampler
from hpu_jax.train_step import TrainState, create_train_state, make_train_step


def load(path_or_workdir: str, which: str = 'latest', step=None):
  """Config, params, model and jitted sampler of a training workdir or of a
  file `export` wrote; see hpu_jax.loading.load."""
  from hpu_jax.loading import load as _load
  return _load(path_or_workdir, which, step)


def export(workdir: str, path: str, which: str = 'latest', step=None, reports=()) -> str:
  """Writes a workdir checkpoint's model (parameters, config, metadata) to one
  portable .npz file; see hpu_jax.export_file.export."""
  from hpu_jax.export_file import export as _export
  return _export(workdir, path, which, step, reports)


def load_pretrained(name: str):
  """A trained HPU-Net shipped with the package ('lidc_slices_cpu',
  'synthetic'), as `load` returns it; see hpu_jax.pretrained."""
  from hpu_jax.pretrained import load_pretrained as _load_pretrained
  return _load_pretrained(name)


__version__ = '0.1.0'
