"""Loss terms of the HPU-Net: top-k cross-entropy, per-level KL, ELBO and GECO.

All functions are pure; the GECO moving average lives in `GecoState`, which the
train state carries and checkpoints (the original kept it in an unsaved local
variable).
"""
from typing import Dict, NamedTuple, Optional, Sequence, Tuple

import distrax
import jax
import jax.numpy as jnp
import numpy as np

# softplus(u)^2 == 1  <=>  u = log(e - 1), as XLA computes it in float32 (a
# literal: computing it at import would start JAX's backend, which must wait
# for jax.distributed.initialize in multi-process runs).
LAGMUL_INIT = 0.54132479429245


class GecoState(NamedTuple):
  moving_average: jax.Array  # [] moving average of rec_loss_sum.
  initialized: jax.Array     # [] bool, False until the first call sets the average.


def init_geco_state() -> GecoState:
  return GecoState(jnp.zeros((), jnp.float32), jnp.zeros((), bool))


def init_lagmul_param() -> jax.Array:
  """The trainable u of lambda = softplus(u)^2, initialised so that lambda = 1."""
  return jnp.asarray(LAGMUL_INIT, jnp.float32)


def num_topk_pixels(num_pixels: int, top_k_percentage: Optional[float]) -> int:
  if top_k_percentage is None:
    return num_pixels
  if not 0.0 < top_k_percentage <= 1.0:
    raise ValueError(f'top_k_percentage={top_k_percentage}: expected a fraction in (0, 1].')
  return int(num_pixels * top_k_percentage)


def topk_mask(xe: jax.Array, k: int, rng: Optional[jax.Array],
              deterministic: bool = False,
              mask: Optional[jax.Array] = None) -> jax.Array:
  """A {0, 1} mask over the flat losses `xe` [N] with exactly k ones.

  Stochastic (default): Gumbel top-k, i.e. k pixels drawn without replacement
  with probability proportional to their (stop-gradient) loss. Deterministic:
  the k largest losses. `mask` optionally excludes pixels (log of it added).
  """
  xe = jax.lax.stop_gradient(xe)
  scores = jnp.log(xe / jnp.sum(xe))
  if not deterministic:
    scores = scores + jax.random.gumbel(rng, xe.shape, xe.dtype)
  if mask is not None:
    scores = scores + jnp.log(mask)
  _, indices = jax.lax.top_k(scores, k)
  return jnp.zeros_like(xe).at[indices].set(1.0)


class Reconstruction(NamedTuple):
  rec_loss_sum: jax.Array    # batch mean of per-image sum(mask * xe).
  rec_loss_mean: jax.Array   # sum(mask * xe) / sum(mask).
  num_valid_pixels: jax.Array  # batch mean of per-image sum(mask).


def reconstruction_loss(logits: jax.Array, labels: jax.Array,
                        top_k_percentage: Optional[float], rng: Optional[jax.Array],
                        deterministic: bool = False) -> Reconstruction:
  """Softmax cross-entropy over the batch flattened to [B*H*W, C], top-k masked."""
  batch = logits.shape[0]
  num_classes = logits.shape[-1]
  flat_logits = logits.reshape(-1, num_classes).astype(jnp.float32)
  flat_labels = labels.reshape(-1)
  xe = -jnp.take_along_axis(jax.nn.log_softmax(flat_logits),
                            flat_labels[:, None], axis=-1)[:, 0]
  k = num_topk_pixels(xe.shape[0], top_k_percentage)
  if k == xe.shape[0]:
    mask = jnp.ones_like(xe)
  else:
    mask = topk_mask(xe, k, rng, deterministic)
  masked = (mask * xe).reshape(batch, -1)
  return Reconstruction(rec_loss_sum=jnp.mean(jnp.sum(masked, axis=1)),
                        rec_loss_mean=jnp.sum(masked) / jnp.sum(mask),
                        num_valid_pixels=jnp.mean(jnp.sum(mask.reshape(batch, -1), axis=1)))


def kl_per_level(posterior: Sequence[distrax.Normal],
                 prior: Sequence[distrax.Distribution],
                 latents: Optional[Sequence[jax.Array]] = None) -> Tuple[jax.Array, ...]:
  """KL(q_l || p_l) per level, summed over channels, H and W, batch mean.

  Analytic where the prior is a `distrax.Normal` (the original). Where it is
  a mixture (`prior_components` > 1) there is no closed form, and the KL is
  the one-sample estimate log q(z) - log p(z) at the posterior sample z of
  that level (`latents[l]`, drawn by reparameterisation, so gradients reach
  the posterior through z): unbiased, and its mean over the batch is what
  enters the loss."""
  kls = []
  for l, (q, p) in enumerate(zip(posterior, prior)):
    if isinstance(p, distrax.Normal):
      kl = q.kl_divergence(p)  # [B, h, w, d]
    else:
      if latents is None:
        raise ValueError(f'latent level {l} has a {type(p).__name__} prior: its KL '
                         'is estimated at the posterior sample, pass latents=.')
      z = latents[l]
      kl = jnp.sum(q.log_prob(z), axis=-1) - p.log_prob(z)  # [B, h, w]
    kls.append(jnp.mean(jnp.sum(kl, axis=tuple(range(1, kl.ndim)))))
  return tuple(kls)


def update_moving_average(state: GecoState, value: jax.Array, decay: float
                          ) -> Tuple[jax.Array, GecoState]:
  """First call sets the average; later ones mix decay / (1 - decay), no
  de-biasing. The returned value has the moving average's forward value and
  passes gradients straight through to `value`."""
  value_sg = jax.lax.stop_gradient(value)
  new_ma = jnp.where(state.initialized, decay * state.moving_average + (1 - decay) * value_sg,
                     value_sg)
  straight_through = value + jax.lax.stop_gradient(new_ma - value)
  return straight_through, GecoState(new_ma, jnp.ones((), bool))


def lagrange_multiplier(u: jax.Array, rate: float) -> jax.Array:
  """lambda = softplus(u)^2 with forward value lambda and its gradient scaled
  by -rate, so minimising the loss performs gradient ascent on lambda."""
  lagmul = jax.nn.softplus(u) ** 2
  return jax.lax.stop_gradient(lagmul) - rate * (lagmul - jax.lax.stop_gradient(lagmul))


def bound_lagmul_param(u: jax.Array, cfg: 'LossConfig') -> jax.Array:
  """u after an update, projected so that lambda = softplus(u)^2 <= cfg.lagmul_max
  (GECO only; unchanged without a bound).

  While the network cannot yet reach kappa, the constraint is violated
  whatever the KL does, and lambda keeps integrating that violation. Under
  Adam u then rises by about one learning rate per step, and comes down as
  slowly once the constraint is met, so a run can spend thousands of steps at
  a lambda far above the one it settles at. Clipping u, not lambda, is the
  projection of the dual ascent onto lambda <= lagmul_max ("anti-windup"):
  once the constraint is met, lambda falls from the bound within a few steps
  (Adam's momentum) instead of first unwinding all it accumulated."""
  if cfg.loss_type != 'geco' or cfg.lagmul_max is None:
    return u
  u_max = float(np.log(np.expm1(np.sqrt(cfg.lagmul_max))))  # softplus(u_max)^2 == lagmul_max
  return jnp.minimum(u, jnp.asarray(u_max, u.dtype))


class LossConfig(NamedTuple):
  """Explicit loss arguments (built from the config by the scripts)."""
  loss_type: str = 'geco'            # 'geco' or 'elbo'.
  beta: float = 1.0                  # ELBO weight of the KL.
  kappa: float = 0.05                # GECO reconstruction target per valid pixel.
  decay: float = 0.99                # GECO moving-average decay.
  rate: float = 0.01                 # GECO Lagrange-multiplier learning-rate scale.
  top_k_percentage: Optional[float] = 0.02
  deterministic_top_k: bool = False
  # "Free bits" on the coarsest latent level while step < kl_free_nats_steps:
  # its KL enters the loss as max(KL, kl_free_nats_coarsest), so below the
  # floor it is not penalised and the global latent gets used early (see
  # `kl_loss_term`). 0 / 0: off, as in the original.
  kl_free_nats_coarsest: float = 0.0
  kl_free_nats_steps: int = 0
  # GECO: an upper bound on lambda, kept by projecting u after each update
  # (`bound_lagmul_param`). None: unbounded, as in the original.
  lagmul_max: Optional[float] = None


def validate_loss_config(cfg: LossConfig) -> None:
  if cfg.loss_type not in ('geco', 'elbo'):
    raise ValueError(f"loss_type={cfg.loss_type!r}: expected 'geco' or 'elbo'.")
  if not cfg.kl_free_nats_coarsest >= 0.0:
    raise ValueError(f'kl_free_nats_coarsest={cfg.kl_free_nats_coarsest}: expected >= 0 nats.')
  if not cfg.kl_free_nats_steps >= 0:
    raise ValueError(f'kl_free_nats_steps={cfg.kl_free_nats_steps}: expected >= 0 steps.')
  if cfg.top_k_percentage is not None:
    num_topk_pixels(1, cfg.top_k_percentage)
  if not 0.0 <= cfg.decay < 1.0:
    raise ValueError(f'decay={cfg.decay}: expected a value in [0, 1).')
  if cfg.lagmul_max is not None and not cfg.lagmul_max > 0.0:
    raise ValueError(f'lagmul_max={cfg.lagmul_max}: expected a bound > 0 on lambda, '
                     'or None for no bound.')


def kl_loss_term(kls: Sequence[jax.Array], cfg: LossConfig,
                 step: Optional[jax.Array]) -> jax.Array:
  """The KL as it enters the loss: the sum over levels, except that while
  step < cfg.kl_free_nats_steps the coarsest level (kls[0], a batch mean)
  counts as max(KL, cfg.kl_free_nats_coarsest) ("free bits", Kingma et al.
  2016): below the floor its KL has no gradient, so the model can put the
  image-wide choice (marked or not) into the one global latent instead of
  the independently sampled cells of finer levels."""
  kl_sum = sum(kls)
  if cfg.kl_free_nats_steps <= 0 or cfg.kl_free_nats_coarsest <= 0:
    return kl_sum
  if step is None:
    raise ValueError('kl_free_nats_steps > 0 needs the train step number (step=...).')
  floored = jnp.maximum(kls[0], cfg.kl_free_nats_coarsest)
  first = jnp.where(step < cfg.kl_free_nats_steps, floored, kls[0])
  return first + sum(kls[1:])


def hpunet_loss(output, labels: jax.Array, lagmul_u: jax.Array, geco_state: GecoState,
                cfg: LossConfig, rng: Optional[jax.Array], step: Optional[jax.Array] = None
                ) -> Tuple[jax.Array, GecoState, Dict[str, jax.Array]]:
  """Assembles the loss from a `HPUNetOutput`; returns (loss, new GECO state,
  summaries with the original's names). `step` (the number of updates
  applied) is needed only for the free-nats floor."""
  rec = reconstruction_loss(output.logits, labels, cfg.top_k_percentage, rng,
                            cfg.deterministic_top_k)
  kls = kl_per_level(output.posterior, output.prior, output.latents)
  kl_sum = sum(kls)
  kl_term = kl_loss_term(kls, cfg, step)
  summaries = {'rec_loss_mean': rec.rec_loss_mean, 'rec_loss_sum': rec.rec_loss_sum,
               'kl_sum': kl_sum}
  summaries.update({f'kl_{l}': kl for l, kl in enumerate(kls)})
  if cfg.loss_type == 'elbo':
    loss = rec.rec_loss_sum + cfg.beta * kl_term
    summaries['elbo_loss'] = loss
    return loss, geco_state, summaries
  ma, new_state = update_moving_average(geco_state, rec.rec_loss_sum, cfg.decay)
  constraint = ma - cfg.kappa * rec.num_valid_pixels
  lagmul = lagrange_multiplier(lagmul_u, cfg.rate)
  loss = lagmul * constraint + kl_term
  summaries.update({'geco_loss': loss, 'ma_rec_loss_mean': ma / rec.num_valid_pixels,
                    'num_valid_pixels': rec.num_valid_pixels, 'lagmul': lagmul,
                    'constraint': constraint})
  return loss, new_state, summaries
