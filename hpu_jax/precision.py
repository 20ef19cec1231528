"""The compute-precision policy: bfloat16 compute with float32 parameters and
loss.

The train step keeps float32 master parameters and optimiser state; inside the
loss it casts the parameters and images to the compute dtype (Haiku's convs
take their dtype from what they are given), runs the model, and casts the
outputs back to float32 so cross-entropy, top-k, KL and GECO are computed in
float32. With float32 every cast is skipped, so the results are unchanged.
"""
from typing import Tuple, Union

import distrax
import jax
import jax.numpy as jnp

from hpu_jax.model import HPUNetOutput, SampleOutput

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}
DTypeLike = Union[str, jnp.dtype, type]


def resolve_dtype(name: DTypeLike) -> jnp.dtype:
  """'float32' or 'bfloat16' (or that dtype itself) -> the jnp dtype."""
  if not isinstance(name, str):
    try:
      name = jnp.dtype(name).name
    except TypeError:
      pass
  if name not in DTYPES:
    raise ValueError(f'model.compute_dtype={name!r}: expected one of {tuple(DTYPES)}.')
  return jnp.dtype(DTYPES[name])


def cast_floats(tree, dtype: DTypeLike):
  """Casts the floating-point array leaves of `tree` to `dtype`; all other
  leaves (integer, bool, already `dtype`, Python scalars) are returned as they
  are, so a cast to float32 of a float32 tree adds no operation."""
  dtype = resolve_dtype(dtype)

  def cast(x):
    x_dtype = getattr(x, 'dtype', None)
    if x_dtype is not None and jnp.issubdtype(x_dtype, jnp.floating) and x_dtype != dtype:
      return jnp.asarray(x).astype(dtype)
    return x

  return jax.tree.map(cast, tree)


def _distribution_to_float32(dist):
  """A Normal, or a mixture of diagonal Gaussians (the coarsest prior with
  prior_components > 1), with its parameters in float32."""
  if isinstance(dist, distrax.MixtureSameFamily):
    logits = dist.mixture_distribution.logits
    comp = dist.components_distribution
    if all(a.dtype == jnp.float32 for a in (logits, comp.loc, comp.scale_diag)):
      return dist
    return distrax.MixtureSameFamily(
        distrax.Categorical(logits=logits.astype(jnp.float32)),
        distrax.MultivariateNormalDiag(loc=comp.loc.astype(jnp.float32),
                                       scale_diag=comp.scale_diag.astype(jnp.float32)))
  if dist.loc.dtype == jnp.float32 and dist.scale.dtype == jnp.float32:
    return dist
  return distrax.Normal(dist.loc.astype(jnp.float32), dist.scale.astype(jnp.float32))


def _distributions_to_float32(dists) -> Tuple[distrax.Distribution, ...]:
  return tuple(_distribution_to_float32(d) for d in dists)


def output_to_float32(output: HPUNetOutput) -> HPUNetOutput:
  """The training output with logits, latents and the Normals' loc / scale in
  float32 (no-op for a float32 output)."""
  return HPUNetOutput(logits=cast_floats(output.logits, jnp.float32),
                      prior=_distributions_to_float32(output.prior),
                      posterior=_distributions_to_float32(output.posterior),
                      latents=cast_floats(output.latents, jnp.float32))


def sample_output_to_float32(output: SampleOutput) -> SampleOutput:
  """A sample / reconstruction output with logits and latents in float32."""
  return SampleOutput(logits=cast_floats(output.logits, jnp.float32),
                      latents=cast_floats(output.latents, jnp.float32))
