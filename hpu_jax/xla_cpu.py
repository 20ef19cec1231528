"""XLA settings that make the HPU-Net's convolutions fast on CPU.

jaxlib 0.10 sends CPU convolutions to YNNPACK fusions by default. For this
network's shapes (3x3 convs with 12..192 channels) XLA's Eigen convolutions
are about 2x faster, forward and backward (measured on a 2-core AMD EPYC,
batch 8: a 72 -> 12 conv at 128 px 245 -> 84 ms, 96 -> 48 at 32 px 22 -> 11
ms; the whole LIDC train step 0.97 -> 1.57 images/s). So hpu_jax keeps
YNNPACK for matrix multiplies only, by adding
`--xla_cpu_experimental_ynn_fusion_type=individual_dot` to XLA_FLAGS.

XLA reads XLA_FLAGS once, when its backend starts, so this runs when hpu_jax
is imported. It changes nothing when:
  * XLA_FLAGS already sets xla_cpu_experimental_ynn_fusion_type (yours wins);
  * HPU_JAX_KEEP_XLA_FLAGS=1 is set in the environment (opt out);
  * a JAX backend is already running (too late; a warning says so).
The flag only concerns the CPU backend; GPU and TPU runs are unaffected.
"""
import os
import warnings

FLAG = '--xla_cpu_experimental_ynn_fusion_type=individual_dot'
FLAG_NAME = 'xla_cpu_experimental_ynn_fusion_type'
OPT_OUT = 'HPU_JAX_KEEP_XLA_FLAGS'


def _backend_started() -> bool:
  try:
    from jax._src import xla_bridge
    return bool(getattr(xla_bridge, '_backends', {}))
  except Exception:  # pragma: no cover - private API moved: assume not started.
    return False


def configure(environ=os.environ) -> bool:
  """Adds FLAG to XLA_FLAGS unless opted out or already set; True if added."""
  flags = environ.get('XLA_FLAGS', '')
  if environ.get(OPT_OUT, '') not in ('', '0') or FLAG_NAME in flags:
    return False
  if _backend_started():
    warnings.warn(
        f'hpu_jax was imported after JAX started its backend, so {FLAG} could '
        'not be set: CPU convolutions run about 2x slower. Import hpu_jax '
        'before using JAX, or set the flag in XLA_FLAGS yourself.')
    return False
  environ['XLA_FLAGS'] = (flags + ' ' + FLAG).strip()
  return True
