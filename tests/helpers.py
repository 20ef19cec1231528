"""Shared test helpers: a tiny config that trains in seconds on CPU, and a
tiny network with a batch for the step and sampler tests."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

from configs import synthetic  # noqa: E402


def tiny_network_and_batch(batch: int):
  """(model, images [batch, 16, 16, 1], segmentations [batch, 16, 16]): 5
  levels of 4 to 8 channels, latents at 1x1 (2 dims) and three more levels."""
  import jax
  import jax.numpy as jnp
  from hpu_jax.model import build_hpunet
  model = build_hpunet(latent_dims=(2, 1, 1, 1), channels_per_block=(4, 6, 8, 8, 8),
                       blocks_per_level=1, convs_per_block=2)
  img = jax.random.uniform(jax.random.key(0), (batch, 16, 16, 1))
  seg = (img[..., 0] > 0.5).astype(jnp.int32)
  return model, img, seg


def tiny_config(num_steps: int = 2):
  """The synthetic main job shrunk: 2 levels at 32 x 32, 4 and 8 channels,
  one latent level, batch 4 (2 per fake device), a handful of images."""
  config = synthetic.get_config()
  config.model.latent_dims = (1,)
  config.model.channels_per_block = (4, 8)
  config.model.convs_per_block = 1
  config.model.blocks_per_level = 1
  config.data.image_size = 32
  config.data.synthetic.num_train = 16
  config.data.synthetic.num_validation = 4
  config.data.synthetic.num_test = 4
  config.train.batch_size = 4
  config.train.num_steps = num_steps
  config.train.lr_boundaries = ()
  config.train.log_every = 1
  config.train.checkpoint_every = 2
  config.train.eval_every = 0
  config.train.eval_num_examples = 4
  config.train.eval_num_samples = 2
  config.eval.num_samples = (2, 4)
  config.eval.batch_size = 2
  config.eval.num_examples = 4
  config.eval.picture_examples = 2
  config.eval.gif_frames = 2
  return config


def constant_classifier(p_marked: float, image_size: int = 8):
  """A classifier that says p_marked for every image: zero weights, the
  output bias at logit(p_marked)."""
  import jax
  import numpy as np
  from hpu_jax import presence
  settings = presence.Settings(widths=(2,), hidden=2)
  net = presence._classifier(settings.widths, settings.hidden)
  params = net.init(jax.random.key(0), np.zeros((1, image_size, image_size, 1), np.float32))
  params = jax.tree.map(np.zeros_like, jax.device_get(params))
  last = sorted(params)[-1]
  params[last]['b'] = np.array([np.log(p_marked) - np.log1p(-p_marked)], np.float32)
  meta = {'format': presence.FORMAT, 'image_size': image_size,
          'settings': {'widths': [2], 'hidden': 2, 'steps': 1, 'batch_size': 1,
                       'learning_rate': 1e-3, 'seed': 0}}
  return presence.Presence(members=(params,), meta=meta)


# A config file for the scripts' --config flag that returns tiny_config().
TINY_CONFIG_FILE = f"""
import sys
sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
from helpers import tiny_config


def get_config():
  return tiny_config()
"""
