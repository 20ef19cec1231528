"""The optional mixture-of-Gaussians prior at the coarsest latent level."""
import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import synthetic
from hpu_jax import configuration, losses, precision
from hpu_jax.latents import mixture_mode_mean
from hpu_jax.model import build_hpunet

LATENT_DIMS = (2, 1)
CHANNELS = (4, 6, 8)
K = 3
B, H = 3, 8
RES = H // 2 ** (len(CHANNELS) - 1)  # the coarsest latent level: 2 x 2


@pytest.fixture(scope='module')
def mixture_model():
  model = build_hpunet(latent_dims=LATENT_DIMS, channels_per_block=CHANNELS,
                       convs_per_block=1, blocks_per_level=1, prior_components=K)
  img = jax.random.uniform(jax.random.key(0), (B, H, H, 1))
  seg = (jax.random.uniform(jax.random.key(1), (B, H, H)) > 0.5).astype(jnp.int32)
  params = jax.jit(model.init)(jax.random.key(2), seg, img)
  return model, params, img, seg


def test_only_the_coarsest_prior_head_changes(mixture_model):
  _, params, _, _ = mixture_model
  plain = build_hpunet(latent_dims=LATENT_DIMS, channels_per_block=CHANNELS,
                       convs_per_block=1, blocks_per_level=1)
  img, seg = jnp.zeros((1, H, H, 1)), jnp.zeros((1, H, H), jnp.int32)
  plain_params = jax.eval_shape(plain.init, jax.random.key(2), seg, img)
  assert set(params) == set(plain_params)  # same module names as the original
  head = 'hpunet/~/prior/~decode/latent_head_0'
  for name, values in params.items():
    for key, value in values.items():
      if name == head:
        # K logits, then K (mu, log sigma) pairs of 2 channels.
        expected = K * (1 + 2 * LATENT_DIMS[0])
        assert value.shape[-1] == expected, (name, key, value.shape)
      else:
        assert value.shape == plain_params[name][key].shape, (name, key)


def test_forward_gives_a_mixture_prior_and_normal_posterior(mixture_model):
  model, params, img, seg = mixture_model
  out = model.forward(params, jax.random.key(3), seg, img)
  assert isinstance(out.prior[0], distrax.MixtureSameFamily)
  assert out.prior[0].batch_shape == (B, RES, RES)
  assert out.prior[0].event_shape == (LATENT_DIMS[0],)
  assert isinstance(out.prior[1], distrax.Normal)
  assert all(isinstance(q, distrax.Normal) for q in out.posterior)
  kls = losses.kl_per_level(out.posterior, out.prior, out.latents)
  assert len(kls) == 2 and all(np.isfinite(np.asarray(k)) for k in kls)
  with pytest.raises(ValueError, match='latent level 0 .*MixtureSameFamily.*latents='):
    losses.kl_per_level(out.posterior, out.prior)


def test_mean_sampling_takes_the_most_probable_component(mixture_model):
  model, params, img, _ = mixture_model
  means = model.sample(params, jax.random.key(4), img, True, None).latents[0]
  draws = model.sample(params, jax.random.key(4), img, False, None).latents[0]
  many = model.sample_many(params, jax.random.key(5), img, 4, True).latents[0]
  assert means.shape == draws.shape == (B, RES, RES, LATENT_DIMS[0])
  assert not np.allclose(means, draws)
  # The mean is the same whatever the key, and sample_many agrees with sample.
  np.testing.assert_allclose(many, jnp.broadcast_to(means, many.shape), rtol=1e-5, atol=1e-6)


def test_mixture_mode_mean_picks_the_largest_weight():
  logits = jnp.array([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0]])
  loc = jnp.arange(2 * 3 * 2, dtype=jnp.float32).reshape(2, 3, 2)
  dist = distrax.MixtureSameFamily(distrax.Categorical(logits=logits),
                                   distrax.MultivariateNormalDiag(loc, jnp.ones_like(loc)))
  np.testing.assert_array_equal(mixture_mode_mean(dist), [[2.0, 3.0], [6.0, 7.0]])


def test_the_one_sample_kl_is_unbiased():
  """Averaged over many posterior draws, log q(z) - log p(z) gives the KL:
  for a mixture whose components all equal one Gaussian, the closed form."""
  kq, kp, kz = jax.random.split(jax.random.key(6), 3)
  n, d = 20_000, 2
  mq = jnp.broadcast_to(jax.random.normal(kq, (1, 1, 1, d)), (n, 1, 1, d))
  sq = jnp.full((n, 1, 1, d), 0.7)
  mp = jax.random.normal(kp, (d,))
  q = distrax.Normal(mq, sq)
  z = q.sample(seed=kz)
  comp_loc = jnp.broadcast_to(mp, (n, 1, 1, 2, d))
  p_mix = distrax.MixtureSameFamily(
      distrax.Categorical(logits=jnp.array([0.3, -1.0]) * jnp.ones((n, 1, 1, 2))),
      distrax.MultivariateNormalDiag(comp_loc, jnp.full(comp_loc.shape, 1.3)))
  (estimate,) = losses.kl_per_level([q], [p_mix], [z])
  (closed,) = losses.kl_per_level([q], [distrax.Normal(jnp.broadcast_to(mp, mq.shape),
                                                       jnp.full(mq.shape, 1.3))])
  # Standard error of the mean of log q - log p here is about 0.01.
  np.testing.assert_allclose(estimate, closed, atol=0.04)
  assert float(closed) > 0.2


def test_the_kl_gradient_reaches_the_mixture_weights():
  """A posterior sitting on component 1 pulls the mixture weight towards it."""
  q = distrax.Normal(jnp.full((4, 1, 1, 1), 3.0), jnp.full((4, 1, 1, 1), 0.1))
  z = q.sample(seed=jax.random.key(7))
  loc = jnp.broadcast_to(jnp.array([[-3.0], [3.0]]), (4, 1, 1, 2, 1))

  def kl(logits):
    p = distrax.MixtureSameFamily(distrax.Categorical(logits=jnp.broadcast_to(logits, (4, 1, 1, 2))),
                                  distrax.MultivariateNormalDiag(loc, jnp.ones_like(loc)))
    return losses.kl_per_level([q], [p], [z])[0]

  grad = jax.grad(kl)(jnp.zeros(2))
  assert grad[1] < 0 < grad[0]


def test_float32_cast_of_a_bfloat16_mixture(mixture_model):
  model, params, img, seg = mixture_model
  out = model.forward(precision.cast_floats(params, jnp.bfloat16), jax.random.key(3),
                      seg, img.astype(jnp.bfloat16))
  assert out.prior[0].components_distribution.loc.dtype == jnp.bfloat16
  cast = precision.output_to_float32(out)
  mix = cast.prior[0]
  assert mix.mixture_distribution.logits.dtype == jnp.float32
  assert mix.components_distribution.loc.dtype == jnp.float32
  assert mix.components_distribution.scale_diag.dtype == jnp.float32
  # Drawn latents keep the compute dtype (distrax's mixture samples float32).
  sample = model.sample(precision.cast_floats(params, jnp.bfloat16), jax.random.key(4),
                        img.astype(jnp.bfloat16), False, None)
  assert all(z.dtype == jnp.bfloat16 for z in sample.latents)
  assert sample.logits.dtype == jnp.bfloat16


@pytest.mark.parametrize('value', [0, -2, True, 2.0])
def test_bad_component_counts_are_refused(value):
  with pytest.raises(ValueError, match='prior_components'):
    build_hpunet(latent_dims=LATENT_DIMS, channels_per_block=CHANNELS,
                 prior_components=value)


@pytest.mark.parametrize('value', [0, -2])
def test_a_bad_component_count_in_a_config_is_refused_naming_the_field(value):
  config = synthetic.get_config()
  config.model.prior_components = value
  with pytest.raises(ValueError, match=rf'model\.prior_components={value}: expected an int >= 1'):
    configuration.validate(config, 1, 1)


def test_configs_without_the_field_build_the_original_prior():
  config = synthetic.get_config()
  del config.model['prior_components']
  assert configuration.model_kwargs(config.model)['prior_components'] == 1


def test_a_cold_mixture_draws_near_the_component_means(mixture_model):
  """At a tiny temperature each draw sits on one of the K component means
  (the weights are kept); at temperature 1 the draws are spread."""
  model, params, img, _ = mixture_model
  n = 64
  cold = model.sample_many(params, jax.random.key(6), img, n, False, (1e-6, 1.0)).latents[0]
  warm = model.sample_many(params, jax.random.key(6), img, n, False, 1.0).latents[0]
  cold = np.asarray(cold).reshape(n, -1, LATENT_DIMS[0])   # [n, B * RES * RES, d]
  warm = np.asarray(warm).reshape(n, -1, LATENT_DIMS[0])

  def clusters(points, tol=1e-3):
    centres = []
    for p in points:
      if not any(np.max(np.abs(p - c)) < tol for c in centres):
        centres.append(p)
    return len(centres)

  for pixel in range(cold.shape[1]):
    assert clusters(cold[:, pixel]) <= K
    assert clusters(warm[:, pixel]) > K
