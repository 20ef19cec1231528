"""The training state and the pure train step (forward, loss, backward, update).

`train_step` is a pure function of (state, batch); `make_train_step` returns it
ready to be jitted, or pmapped with `axis_name` (gradients and metrics are then
averaged across devices with `pmean`).

Precision: the parameters and optimiser state are float32; with
`compute_dtype=jnp.bfloat16` the forward pass runs on a bfloat16 copy of the
parameters and images and the loss is computed in float32 (hpu_jax.precision).
"""
import math
from typing import NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import optax

from hpu_jax import losses, precision
from hpu_jax.model import Model


class TrainState(NamedTuple):
  step: jax.Array                 # [] int32, number of updates applied.
  params: dict                    # {'model': haiku params, 'lagmul': u of GECO}.
  opt_state: optax.OptState       # optimiser state of `params`.
  geco: losses.GecoState          # GECO moving average (checkpointed).
  rng: jax.Array                  # PRNG key, split every step.


def make_optimizer(learning_rate: float, lr_boundaries: Sequence[int] = (),
                   lr_decay: float = 1.0) -> optax.GradientTransformation:
  """Adam with a piecewise-constant rate: `learning_rate`, multiplied by
  `lr_decay` at each step of `lr_boundaries` (the original's schedule)."""
  if not (math.isfinite(learning_rate) and learning_rate > 0):
    raise ValueError(f'learning_rate={learning_rate}: expected a positive, finite value.')
  if not (math.isfinite(lr_decay) and lr_decay > 0):
    raise ValueError(f'lr_decay={lr_decay}: expected a positive, finite factor.')
  boundaries = [int(b) for b in lr_boundaries]
  if boundaries != sorted(set(boundaries)) or (boundaries and boundaries[0] < 0):
    raise ValueError(f'lr_boundaries={tuple(lr_boundaries)}: expected increasing steps >= 0.')
  schedule = optax.piecewise_constant_schedule(
      learning_rate, {b: lr_decay for b in boundaries})
  return optax.adam(schedule)


def create_train_state(model: Model, optimizer: optax.GradientTransformation,
                       rng: jax.Array, image_shape) -> TrainState:
  """Initialises parameters for images of shape [B, H, W, 1]."""
  init_rng, state_rng = jax.random.split(rng)
  img = jnp.zeros(image_shape, jnp.float32)
  seg = jnp.zeros(image_shape[:3], jnp.int32)
  params = {'model': model.init(init_rng, seg, img),
            'lagmul': losses.init_lagmul_param()}
  return TrainState(jnp.zeros((), jnp.int32), params, optimizer.init(params),
                    losses.init_geco_state(), state_rng)


def make_train_step(model: Model, optimizer: optax.GradientTransformation,
                    loss_config: losses.LossConfig, axis_name: Optional[str] = None,
                    compute_dtype: precision.DTypeLike = jnp.float32):
  """Returns train_step(state, images [B,H,W,1], labels [B,H,W]) -> (state, metrics).

  `compute_dtype` ('float32' or 'bfloat16') is the dtype of the forward pass;
  parameters, gradients, optimiser state and the loss stay float32."""
  losses.validate_loss_config(loss_config)
  compute_dtype = precision.resolve_dtype(compute_dtype)

  def train_step(state: TrainState, images: jax.Array, labels: jax.Array):
    rng, step_rng = jax.random.split(state.rng)
    if axis_name is not None:  # a different rng per device.
      step_rng = jax.random.fold_in(step_rng, jax.lax.axis_index(axis_name))
    model_rng, topk_rng = jax.random.split(step_rng)

    def loss_fn(params):
      output = model.forward(precision.cast_floats(params['model'], compute_dtype),
                             model_rng, labels, precision.cast_floats(images, compute_dtype))
      output = precision.output_to_float32(output)
      loss, geco, summaries = losses.hpunet_loss(output, labels, params['lagmul'],
                                                 state.geco, loss_config, topk_rng,
                                                 state.step)
      return loss, (geco, summaries)

    (loss, (geco, metrics)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    if axis_name is not None:
      grads = jax.lax.pmean(grads, axis_name)
      metrics = jax.lax.pmean(metrics, axis_name)
      geco = geco._replace(moving_average=jax.lax.pmean(geco.moving_average, axis_name))
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    params = dict(params, lagmul=losses.bound_lagmul_param(params['lagmul'], loss_config))
    metrics = dict(metrics, loss=loss if axis_name is None else jax.lax.pmean(loss, axis_name))
    return TrainState(state.step + 1, params, opt_state, geco, rng), metrics

  return train_step
