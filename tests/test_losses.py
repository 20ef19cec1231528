"""Top-k, KL, GECO and ELBO semantics."""
import distrax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from hpu_jax import losses


def test_topk_selects_exactly_floor_k():
  b, h, w, p = 3, 17, 13, 0.02
  logits = jax.random.normal(jax.random.key(0), (b, h, w, 2))
  labels = jnp.zeros((b, h, w), jnp.int32)
  rec = losses.reconstruction_loss(logits, labels, p, jax.random.key(1))
  k = int(b * h * w * p)
  assert k == 13
  np.testing.assert_allclose(rec.num_valid_pixels * b, k, rtol=1e-6)


def test_deterministic_topk_picks_largest():
  xe = jax.random.uniform(jax.random.key(0), (500,)) + 1e-3
  mask = losses.topk_mask(xe, 25, None, deterministic=True)
  chosen = np.flatnonzero(np.asarray(mask))
  np.testing.assert_array_equal(np.sort(chosen), np.sort(np.argsort(-np.asarray(xe))[:25]))


def test_stochastic_topk_prefers_high_loss_proportionally():
  # 500 pixels of loss 10 and 500 of loss 1; draws proportional to the loss,
  # without replacement, pick a high-loss pixel about 10/11 of the time.
  # Uniform selection would give 0.5, selection by raw loss + noise about 1.0.
  xe = jnp.concatenate([jnp.full((500,), 10.0), jnp.ones((500,))])
  fractions = []
  for seed in range(30):
    mask = losses.topk_mask(xe, 100, jax.random.key(seed))
    assert float(mask.sum()) == 100
    fractions.append(float(mask[:500].sum()) / 100)
  assert 0.86 < np.mean(fractions) < 0.95
  assert np.std(fractions) > 0  # it is random


def test_reconstruction_sums_and_means():
  logits = jnp.zeros((2, 4, 4, 2))
  labels = jnp.zeros((2, 4, 4), jnp.int32)
  rec = losses.reconstruction_loss(logits, labels, None, None)
  np.testing.assert_allclose(rec.rec_loss_mean, np.log(2), rtol=1e-6)
  np.testing.assert_allclose(rec.rec_loss_sum, 16 * np.log(2), rtol=1e-6)
  np.testing.assert_allclose(rec.num_valid_pixels, 16)


def test_kl_matches_closed_form():
  k = jax.random.split(jax.random.key(0), 4)
  shape = (2, 3, 3, 2)
  mq, mp = jax.random.normal(k[0], shape), jax.random.normal(k[1], shape)
  sq, sp = jnp.exp(0.5 * jax.random.normal(k[2], shape)), jnp.exp(0.5 * jax.random.normal(k[3], shape))
  (kl,) = losses.kl_per_level([distrax.Normal(mq, sq)], [distrax.Normal(mp, sp)])
  closed = np.log(sp / sq) + (sq ** 2 + (mq - mp) ** 2) / (2 * sp ** 2) - 0.5
  np.testing.assert_allclose(kl, np.asarray(closed).sum(axis=(1, 2, 3)).mean(), rtol=1e-5)


def test_geco_moving_average_first_call_then_mix():
  state = losses.init_geco_state()
  value, state = losses.update_moving_average(state, jnp.asarray(4.0), 0.99)
  np.testing.assert_allclose(value, 4.0)
  np.testing.assert_allclose(state.moving_average, 4.0)
  value, state = losses.update_moving_average(state, jnp.asarray(2.0), 0.99)
  np.testing.assert_allclose(value, 0.99 * 4.0 + 0.01 * 2.0, rtol=1e-6)


def test_geco_moving_average_gradient_is_straight_through():
  state = losses.update_moving_average(losses.init_geco_state(), jnp.asarray(4.0), 0.99)[1]
  grad = jax.grad(lambda x: 3.0 * losses.update_moving_average(state, x, 0.99)[0])(2.0)
  np.testing.assert_allclose(grad, 3.0)


def test_lagrange_multiplier_starts_at_one_with_scaled_gradient():
  u = losses.init_lagmul_param()
  np.testing.assert_allclose(losses.lagrange_multiplier(u, 0.01), 1.0, rtol=1e-6)
  g = jax.grad(lambda u: losses.lagrange_multiplier(u, 0.01))(u)
  true = jax.grad(lambda u: jax.nn.softplus(u) ** 2)(u)
  np.testing.assert_allclose(g, -0.01 * true, rtol=1e-5)


@pytest.mark.parametrize('constraint,grows', [(2.0, True), (-2.0, False)])
def test_multiplier_moves_with_sign_of_constraint(constraint, grows):
  opt = optax.adam(1e-2)
  u = losses.init_lagmul_param()
  opt_state = opt.init(u)
  grad = jax.grad(lambda u: losses.lagrange_multiplier(u, 0.01) * constraint)(u)
  updates, _ = opt.update(grad, opt_state, u)
  new_lambda = float(jax.nn.softplus(optax.apply_updates(u, updates)) ** 2)
  assert (new_lambda > 1.0) == grows and new_lambda != 1.0


class _Output:
  def __init__(self, logits, q, p):
    self.logits, self.posterior, self.prior = logits, q, p
    self.latents = [d.mean() for d in q]  # unused by the analytic KL


def _output():
  logits = jax.random.normal(jax.random.key(0), (2, 8, 8, 2))
  q = [distrax.Normal(jnp.ones((2, 1, 1, 1)), jnp.ones((2, 1, 1, 1)))]
  p = [distrax.Normal(jnp.zeros((2, 1, 1, 1)), jnp.ones((2, 1, 1, 1)))]
  return _Output(logits, q, p), jnp.zeros((2, 8, 8), jnp.int32)


def test_geco_loss_value_and_summaries():
  out, labels = _output()
  cfg = losses.LossConfig(top_k_percentage=None)
  loss, state, s = losses.hpunet_loss(out, labels, losses.init_lagmul_param(),
                                      losses.init_geco_state(), cfg, None)
  assert bool(state.initialized)
  np.testing.assert_allclose(s['kl_sum'], 0.5, rtol=1e-6)
  np.testing.assert_allclose(s['num_valid_pixels'], 64)
  expected = (s['rec_loss_sum'] - 0.05 * 64) * 1.0 + 0.5
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  for name in ('rec_loss_mean', 'rec_loss_sum', 'kl_sum', 'kl_0', 'geco_loss',
               'ma_rec_loss_mean', 'num_valid_pixels', 'lagmul'):
    assert name in s


def test_lagmul_bound_projects_u_onto_lambda_at_most_the_bound():
  cfg = losses.LossConfig(lagmul_max=4.0)
  lam = lambda u: float(jax.nn.softplus(u) ** 2)
  high = losses.bound_lagmul_param(jnp.float32(7.0), cfg)
  np.testing.assert_allclose(lam(high), 4.0, rtol=1e-6)
  low = jnp.float32(0.3)                       # lambda 0.74: inside the bound, unchanged.
  assert float(losses.bound_lagmul_param(low, cfg)) == float(low)
  for unbounded in (losses.LossConfig(), cfg._replace(loss_type='elbo')):
    assert float(losses.bound_lagmul_param(jnp.float32(7.0), unbounded)) == 7.0
  for bad in (0.0, -1.0):
    with pytest.raises(ValueError, match=f'lagmul_max={bad}'):
      losses.validate_loss_config(cfg._replace(lagmul_max=bad))


def test_elbo_loss():
  out, labels = _output()
  cfg = losses.LossConfig(loss_type='elbo', beta=2.0, top_k_percentage=None)
  loss, _, s = losses.hpunet_loss(out, labels, losses.init_lagmul_param(),
                                  losses.init_geco_state(), cfg, None)
  np.testing.assert_allclose(loss, s['rec_loss_sum'] + 2.0 * 0.5, rtol=1e-6)
  assert 'elbo_loss' in s


def test_bad_loss_config():
  with pytest.raises(ValueError, match="loss_type='vae'"):
    losses.validate_loss_config(losses.LossConfig(loss_type='vae'))
  with pytest.raises(ValueError, match='top_k_percentage=1.5'):
    losses.validate_loss_config(losses.LossConfig(top_k_percentage=1.5))


def _two_level_output(m0):
  """Level 0: q = N(m0, 1), p = N(0, 1), KL = m0^2 / 2; level 1: KL = 0.5."""
  logits = jax.random.normal(jax.random.key(0), (2, 8, 8, 2))
  ones = jnp.ones((2, 1, 1, 1))
  q = [distrax.Normal(m0 * ones, ones), distrax.Normal(jnp.ones((2, 2, 2, 1)) / 2, jnp.ones((2, 2, 2, 1)))]
  p = [distrax.Normal(0 * ones, ones), distrax.Normal(jnp.zeros((2, 2, 2, 1)), jnp.ones((2, 2, 2, 1)))]
  return _Output(logits, q, p), jnp.zeros((2, 8, 8), jnp.int32)


@pytest.mark.parametrize('loss_type', ['elbo', 'geco'])
def test_free_nats_floor_the_coarsest_kl_only_before_the_given_step(loss_type):
  cfg = losses.LossConfig(loss_type=loss_type, top_k_percentage=None,
                          kl_free_nats_coarsest=1.0, kl_free_nats_steps=10)
  plain = cfg._replace(kl_free_nats_coarsest=0.0, kl_free_nats_steps=0)

  def loss_of(m0, cfg, step):
    out, labels = _two_level_output(m0)
    loss, _, s = losses.hpunet_loss(out, labels, losses.init_lagmul_param(),
                                    losses.init_geco_state(), cfg, None, step)
    return loss, s

  # KL_0 = 0.5 nats (m0 = 1): below the floor, counted as 1.0 and without gradient.
  (floored, s), grad = jax.value_and_grad(loss_of, has_aux=True)(1.0, cfg, jnp.int32(3))
  (unfloored, _), plain_grad = jax.value_and_grad(loss_of, has_aux=True)(1.0, plain, jnp.int32(3))
  np.testing.assert_allclose(s['kl_0'], 0.5, rtol=1e-6)
  np.testing.assert_allclose(s['kl_sum'], 0.5 + 0.5, rtol=1e-6)   # summaries: the true KL.
  np.testing.assert_allclose(floored - unfloored, 0.5, rtol=1e-5)
  assert float(grad) == 0.0 and float(plain_grad) > 0.5
  # From step 10 on, or above the floor (m0 = 2: KL_0 = 2 nats), nothing changes.
  for m0, step in ((1.0, 10), (1.0, 11), (2.0, 3)):
    (a, _), ga = jax.value_and_grad(loss_of, has_aux=True)(m0, cfg, jnp.int32(step))
    (b, _), gb = jax.value_and_grad(loss_of, has_aux=True)(m0, plain, jnp.int32(step))
    np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_allclose(ga, gb, rtol=1e-6)


def test_free_nats_need_the_step_and_sane_values():
  out, labels = _two_level_output(1.0)
  cfg = losses.LossConfig(loss_type='elbo', top_k_percentage=None,
                          kl_free_nats_coarsest=1.0, kl_free_nats_steps=10)
  with pytest.raises(ValueError, match='needs the train step'):
    losses.hpunet_loss(out, labels, losses.init_lagmul_param(), losses.init_geco_state(), cfg, None)
  with pytest.raises(ValueError, match='kl_free_nats_coarsest=-1.0'):
    losses.validate_loss_config(cfg._replace(kl_free_nats_coarsest=-1.0))
  with pytest.raises(ValueError, match='kl_free_nats_steps=-5'):
    losses.validate_loss_config(cfg._replace(kl_free_nats_steps=-5))
