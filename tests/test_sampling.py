"""The jitted sampler, reconstruction, mean flags and temperatures."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import tiny_network_and_batch
from hpu_jax.sampling import make_reconstructor, make_sampler, mean_flags_for

B, S = 2, 3


@pytest.fixture(scope='module')
def setup():
  model, img, seg = tiny_network_and_batch(B)
  params = model.init(jax.random.key(1), seg, img)
  return model, params, img, seg


def test_mean_modes():
  assert mean_flags_for('full', 4) == (False,) * 4
  assert mean_flags_for('local', 4) == (True, True, True, False)
  assert mean_flags_for('global', 4) == (False, True, True, True)
  assert mean_flags_for(True, 2) == (True, True)
  with pytest.raises(ValueError, match="mean='fine'"):
    mean_flags_for('fine', 4)


def test_sampler_shapes_and_determinism(setup):
  model, params, img, _ = setup
  sample = make_sampler(model)
  a = sample(params, jax.random.key(5), img, num_samples=S)
  b = sample(params, jax.random.key(5), img, num_samples=S)
  c = sample(params, jax.random.key(6), img, num_samples=S)
  assert a.labels.shape == (S, B, 16, 16) and a.labels.dtype == jnp.int32
  assert a.probs.shape == (S, B, 16, 16, 2)
  np.testing.assert_allclose(a.probs.sum(-1), 1.0, rtol=1e-5)
  np.testing.assert_array_equal(a.probs, b.probs)
  assert not np.allclose(a.probs, c.probs)
  # Samples within one call differ from each other (independent latents).
  assert not np.allclose(a.latents[0][0], a.latents[0][1])


def test_sampler_matches_single_sample_path(setup):
  """The shared-encoder vectorised path equals the plain per-sample path."""
  model, params, img, _ = setup
  sample = make_sampler(model)
  many = sample(params, jax.random.key(0), img, num_samples=S, mean='full')
  for s in range(S):
    single = model.sample(params, None, img, False, tuple(z[s] for z in many.latents))
    np.testing.assert_allclose(jax.nn.softmax(single.logits), many.probs[s], atol=1e-5)


def test_all_mean_gives_identical_samples(setup):
  model, params, img, _ = setup
  sample = make_sampler(model)
  a = sample(params, jax.random.key(1), img, num_samples=S, mean=True)
  b = sample(params, jax.random.key(2), img, num_samples=S, mean=True)
  np.testing.assert_array_equal(a.probs, b.probs)


def test_local_only_uses_conditional_means_above_finest(setup):
  model, params, img, _ = setup
  sample = make_sampler(model)
  a = sample(params, jax.random.key(1), img, num_samples=S, mean='local')
  b = sample(params, jax.random.key(2), img, num_samples=S, mean='local')
  means = sample(params, jax.random.key(3), img, num_samples=1, mean=True)
  for level in range(3):
    np.testing.assert_allclose(a.latents[level], b.latents[level], atol=1e-6)
    np.testing.assert_allclose(a.latents[level][0], means.latents[level][0], atol=1e-5)
  assert not np.allclose(a.latents[3], b.latents[3])


def test_reconstruct(setup):
  model, params, img, seg = setup
  reconstruct = make_reconstructor(model)
  a = reconstruct(params, jax.random.key(0), seg, img, mean=True)
  b = reconstruct(params, jax.random.key(1), seg, img, mean=True)
  c = reconstruct(params, jax.random.key(1), seg, img)
  assert a.labels.shape == (B, 16, 16) and a.probs.shape == (B, 16, 16, 2)
  np.testing.assert_array_equal(a.probs, b.probs)
  assert not np.allclose(a.probs, c.probs)


def test_temperature_one_is_the_model_as_trained(setup):
  model, params, img, _ = setup
  sample = make_sampler(model)
  plain = sample(params, jax.random.key(7), img, num_samples=S)
  ones = sample(params, jax.random.key(7), img, num_samples=S, temperature=(1, 1, 1, 1))
  np.testing.assert_array_equal(plain.probs, ones.probs)


def test_temperature_scales_the_drawn_deviation_from_the_mean(setup):
  """With the same key, a tempered level's latent lies T times as far from its
  (conditional) mean as the untempered one; the coarser levels are untouched."""
  model, params, img, _ = setup
  sample = make_sampler(model)
  key, t = jax.random.key(8), 0.3
  plain = sample(params, key, img, num_samples=S)
  hot = sample(params, key, img, num_samples=S, temperature=(1, 1, 1, t))
  mean3 = sample(params, key, img, num_samples=S, mean=(False, False, False, True))
  for level in range(3):
    np.testing.assert_array_equal(hot.latents[level], plain.latents[level])
  np.testing.assert_allclose(hot.latents[3] - mean3.latents[3],
                             t * (plain.latents[3] - mean3.latents[3]), rtol=1e-4, atol=1e-6)
  # Temperature at the coarsest level only: it is scaled about its own mean.
  cold = sample(params, key, img, num_samples=S, temperature=(t, 1, 1, 1))
  mean0 = sample(params, key, img, num_samples=1, mean=True).latents[0][0]
  np.testing.assert_allclose(cold.latents[0] - mean0, t * (plain.latents[0] - mean0),
                             rtol=1e-4, atol=1e-6)
  assert not np.allclose(cold.probs, plain.probs)


@pytest.mark.parametrize('value, message', [
    (0.0, 'expected finite values > 0'), (-1.0, 'expected finite values > 0'),
    (float('nan'), 'expected finite values > 0'), ((1.0, 0.5), '2 values, expected one per '
                                                   'latent level \\(4\\)'),
    ('hot', 'expected a number > 0 or one per latent level')])
def test_bad_temperatures_are_refused(setup, value, message):
  model, params, img, _ = setup
  with pytest.raises(ValueError, match='temperature=.*' + message):
    make_sampler(model)(params, jax.random.key(0), img, num_samples=1, temperature=value)
