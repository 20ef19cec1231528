"""Shapes (ported from the original's test), parameter counts, errors."""
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hpu_jax import configuration
from hpu_jax.layers import down_sample, up_sample
from hpu_jax.model import DEFAULT_CHANNELS, build_hpunet, model_summary, parameter_split

# The original's test configuration.
CHANNELS = (5, 7, 9, 11, 13)
LATENT_DIMS = (3, 2, 1)
B, H, W = 2, 32, 32


@pytest.fixture(scope='module')
def small():
  model = build_hpunet(num_classes=2, latent_dims=LATENT_DIMS, channels_per_block=CHANNELS)
  img = jax.random.uniform(jax.random.key(0), (B, H, W, 1))
  seg = (jax.random.uniform(jax.random.key(1), (B, H, W)) > 0.5).astype(jnp.int32)
  params = model.init(jax.random.key(2), seg, img)
  return model, params, img, seg


def test_sample_shape(small):
  model, params, img, _ = small
  out = model.sample(params, jax.random.key(3), img, False, None)
  assert out.logits.shape == (B, H, W, 2)


def test_reconstruction_shape(small):
  model, params, img, seg = small
  out = model.reconstruct(params, jax.random.key(3), seg, img, False)
  assert out.logits.shape == (B, H, W, 2)


def test_prior_latent_shapes(small):
  model, params, img, seg = small
  out = model.forward(params, jax.random.key(3), seg, img)
  # Bottleneck of 5 levels at 32 px is 2 x 2; latents at 2, 4, 8 px.
  for level, (z, dist, dim) in enumerate(zip(out.latents, out.prior, LATENT_DIMS)):
    res = 2 * 2 ** level
    assert z.shape == (B, res, res, dim)
    assert dist.loc.shape == (B, res, res, dim)
  assert out.logits.shape == (B, H, W, 2)


def test_kl_shape(small):
  model, params, img, seg = small
  out = model.forward(params, jax.random.key(3), seg, img)
  for q, p, dim, level in zip(out.posterior, out.prior, LATENT_DIMS, range(3)):
    res = 2 * 2 ** level
    assert q.kl_divergence(p).shape == (B, res, res, dim)


def _conv_params(cin, cout, k):
  return k * k * cin * cout + cout


def _block_params(cin, c, dc, convs=3):
  n = _conv_params(cin, dc, 3) + (convs - 1) * _conv_params(dc, dc, 3)
  if cin != c:
    n += _conv_params(cin, c, 1)
  if dc != c:
    n += _conv_params(dc, c, 1)
  return n


def _level_params(cin, c, blocks=3):
  return _block_params(cin, c, c // 2) + (blocks - 1) * _block_params(c, c, c // 2)


def _independent_count(channels, latent_dims, input_channels, classes=2):
  """Counts from the architecture description, not from the model's code."""
  core = 0
  cin = input_channels
  for c in channels:  # encoder
    core += _level_params(cin, c)
    cin = c
  rev = channels[::-1]
  for l, d in enumerate(latent_dims):  # truncated decoder
    core += _conv_params(rev[l], 2 * d, 1)
    core += _level_params(d + rev[l] + rev[l + 1], rev[l + 1])
  return core


def test_parameter_count_of_lidc_default():
  model = configuration.build_model(
      __import__('configs.lidc_crops', fromlist=['get_config']).get_config().model)
  img = jnp.zeros((1, 128, 128, 1))
  seg = jnp.zeros((1, 128, 128), jnp.int32)
  params = jax.eval_shape(lambda: model.init(jax.random.key(0), seg, img))
  counts = parameter_split(params)
  channels, latents = DEFAULT_CHANNELS, (1, 1, 1, 1)
  prior = _independent_count(channels, latents, 1)
  posterior = _independent_count(channels, latents, 3)
  rev = channels[::-1]
  f_comb = sum(_level_params(rev[l - 1] + rev[l], rev[l]) for l in range(5, 8))
  f_comb += _conv_params(channels[0], 2, 1)
  assert counts['prior'] == prior
  assert counts['posterior'] == posterior
  assert counts['f_comb'] == f_comb
  assert counts['total'] == prior + posterior + f_comb
  assert abs(counts['total'] - 21.9e6) < 0.05e6
  summary = model_summary(params)
  assert f"prior      {prior:>12,}" in summary and f"total      {counts['total']:>12,}" in summary


def test_prior_and_posterior_have_separate_weights(small):
  _, params, _, _ = small
  prior = {k for k in params if '/prior/' in k}
  posterior = {k for k in params if '/posterior/' in k}
  assert prior and posterior
  assert {k.replace('/prior/', '/x/') for k in prior} == {
      k.replace('/posterior/', '/x/') for k in posterior}


def test_posterior_input_is_one_hot_then_image(small):
  _, params, _, _ = small
  first = [k for k in params if '/posterior/' in k and 'encoder_level_0_block_0/conv_0' in k][0]
  assert params[first]['w'].shape[2] == 3  # 2 classes + 1 image channel.


def test_initialisers():
  model = build_hpunet(latent_dims=LATENT_DIMS, channels_per_block=(16, 16, 16, 16, 16))
  params = model.init(jax.random.key(0), jnp.zeros((1, 32, 32), jnp.int32),
                      jnp.zeros((1, 32, 32, 1)))
  key = [k for k in params if k.endswith('decoder_level_0_block_1/conv_1')][0]
  w = np.asarray(params[key]['w']).reshape(-1, 8)  # [3*3*8, 8]
  np.testing.assert_allclose(w.T @ w, np.eye(8), atol=1e-4)  # orthogonal columns
  b = np.concatenate([np.ravel(v['b']) for v in params.values()])
  assert np.abs(b).max() <= 0.002 + 1e-7 and np.abs(b).max() > 0


def test_resampling():
  x = jnp.arange(16.0).reshape(1, 4, 4, 1)
  np.testing.assert_allclose(down_sample(x)[0, :, :, 0], [[2.5, 4.5], [10.5, 12.5]])
  up = up_sample(jnp.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 2, 1))
  np.testing.assert_allclose(up[0, :, :, 0], [[1, 1, 2, 2], [1, 1, 2, 2],
                                                [3, 3, 4, 4], [3, 3, 4, 4]])


def test_resolution_error(small):
  model, params, _, _ = small
  with pytest.raises(ValueError, match='not divisible by 2\\^\\(levels-1\\) = 16'):
    model.sample(params, jax.random.key(0), jnp.zeros((1, 40, 32, 1)), False, None)


def test_too_many_latent_levels():
  with pytest.raises(ValueError, match='latent levels must be fewer than levels'):
    build_hpunet(latent_dims=(1, 1, 1), channels_per_block=(4, 4, 4))


def test_other_sizes_and_classes():
  model = build_hpunet(num_classes=4, latent_dims=(2, 2), channels_per_block=(4, 8, 8),
                       convs_per_block=2, blocks_per_level=1)
  img = jnp.zeros((3, 16, 24, 1))
  params = model.init(jax.random.key(0), jnp.zeros((3, 16, 24), jnp.int32), img)
  out = model.sample(params, jax.random.key(1), img, False, None)
  assert out.logits.shape == (3, 16, 24, 4)


def test_log_sigma_bound_clips_scale():
  model = build_hpunet(latent_dims=(1,), channels_per_block=(4, 4), blocks_per_level=1,
                       log_sigma_bound=0.5)
  img = jax.random.uniform(jax.random.key(0), (2, 8, 8, 1)) * 1000.0
  params = model.init(jax.random.key(0), jnp.zeros((2, 8, 8), jnp.int32), img)
  params = jax.tree.map(lambda p: p * 50.0, params)
  out = model.forward(params, jax.random.key(1), jnp.zeros((2, 8, 8), jnp.int32), img)
  for dist in out.prior + out.posterior:
    scale = np.asarray(dist.scale)
    assert np.all(scale <= np.exp(0.5) + 1e-5) and np.all(scale >= np.exp(-0.5) - 1e-5)
  with pytest.raises(ValueError, match='log_sigma_bound'):
    build_hpunet(log_sigma_bound=-1.0)
