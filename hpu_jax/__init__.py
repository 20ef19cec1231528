"""hpu_jax: the Hierarchical Probabilistic U-Net in JAX + Haiku."""
from hpu_jax import xla_cpu

xla_cpu.configure()  # before JAX starts its backend; see hpu_jax/xla_cpu.py.

# pylint: disable=wrong-import-position
from hpu_jax.losses import GecoState, LossConfig, hpunet_loss
from hpu_jax.model import HPUNetOutput, Model, build_hpunet, parameter_split
from hpu_jax.sampling import make_reconstructor, make_sampler
from hpu_jax.train_step import TrainState, create_train_state, make_train_step


def load(workdir: str, which: str = 'latest', step=None):
  """Config, params, model and jitted sampler of a training workdir; see
  hpu_jax.loading.load."""
  from hpu_jax.loading import load as _load
  return _load(workdir, which, step)


__version__ = '0.1.0'
