"""The train step: updates, GECO's multiplier and its bound, pmap."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from helpers import tiny_network_and_batch
from hpu_jax import losses
from hpu_jax.train_step import create_train_state, make_train_step

B = 2


@pytest.fixture(scope='module')
def setup():
  return tiny_network_and_batch(B)


def test_train_step_learns_and_updates_geco(setup):
  model, img, seg = setup
  opt = optax.adam(1e-3)
  cfg = losses.LossConfig(top_k_percentage=0.1)
  state = create_train_state(model, opt, jax.random.key(0), img.shape)
  step = jax.jit(make_train_step(model, opt, cfg))
  first = None
  for _ in range(30):
    state, metrics = step(state, img, seg)
    first = first if first is not None else metrics
  assert int(state.step) == 30 and bool(state.geco.initialized)
  assert np.isfinite(float(metrics['loss']))
  assert float(metrics['rec_loss_mean']) < float(first['rec_loss_mean'])


def test_train_step_keeps_lambda_under_its_bound(setup):
  # kappa 0 cannot be met, so lambda rises every step; with Adam at 0.1 on u
  # (the network held still), u would pass lambda = 1.5 at the fourth step.
  # The projection holds it there.
  model, img, seg = setup
  opt = optax.multi_transform({'model': optax.set_to_zero(), 'lagmul': optax.adam(0.1)},
                              {'model': 'model', 'lagmul': 'lagmul'})
  cfg = losses.LossConfig(top_k_percentage=0.1, kappa=0.0, lagmul_max=1.5)
  state = create_train_state(model, opt, jax.random.key(0), img.shape)
  step = jax.jit(make_train_step(model, opt, cfg))
  lagmuls = []
  for _ in range(8):
    state, metrics = step(state, img, seg)
    lagmuls.append(float(metrics['lagmul']))  # lambda the step used
  assert lagmuls[1] > lagmuls[0] > 0.99
  np.testing.assert_allclose(lagmuls[-1], 1.5, rtol=1e-5)
  assert max(lagmuls) <= 1.5 * (1 + 1e-5)
  np.testing.assert_allclose(float(jax.nn.softplus(state.params['lagmul']) ** 2), 1.5, rtol=1e-5)


def test_train_step_pmapped_on_two_devices(setup):
  model, img, seg = setup
  n = jax.local_device_count()
  assert n == 2, 'tests run with two fake CPU devices (tests/conftest.py)'
  opt = optax.adam(1e-3)
  state = create_train_state(model, opt, jax.random.key(0), img.shape)
  step = jax.pmap(make_train_step(model, opt, losses.LossConfig(), axis_name='batch'),
                  axis_name='batch')
  replicated = jax.tree.map(lambda x: jnp.stack([x] * n), state)
  images = jnp.stack([img, img[::-1]])
  labels = jnp.stack([seg, seg[::-1]])
  replicated, metrics = step(replicated, images, labels)
  params = replicated.params['model']
  leaf = jax.tree.leaves(params)[0]
  np.testing.assert_array_equal(leaf[0], leaf[1])  # pmean keeps replicas equal
  np.testing.assert_allclose(metrics['loss'][0], metrics['loss'][1])
