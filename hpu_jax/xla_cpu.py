"""Which library runs the HPU-Net's convolutions on CPU: XLA's Eigen
convolutions or YNNPACK's.

jaxlib 0.10 sends CPU convolutions to YNNPACK fusions by default. For the
original's LIDC network (3x3 convs with 12..192 channels at up to 128 px)
XLA's Eigen convolutions are about 2x faster, forward and backward (measured
on a 2-core AMD EPYC, batch 8: a 72 -> 12 conv at 128 px 245 -> 84 ms, 96 ->
48 at 32 px 22 -> 11 ms; the whole LIDC train step 0.97 -> 1.57 images/s).
So when imported, hpu_jax keeps YNNPACK for matrix multiplies only, by adding
`--xla_cpu_experimental_ynn_fusion_type=individual_dot` to XLA_FLAGS
('eigen'). For small networks the balance turns: the 0.7 M-parameter
`lidc_slices_cpu` (channels 16..64 at 64 px) trains about 1.2x faster with
YNNPACK's ('ynnpack', XLA's own default; docs/speed.md). The config field
`train.cpu_convolutions` chooses, and scripts/train.py applies it before
JAX starts.

XLA reads XLA_FLAGS once, when its backend starts, so a choice made after
that cannot apply (a warning says so). `configure` changes nothing when:
  * XLA_FLAGS already sets xla_cpu_experimental_ynn_fusion_type and hpu_jax
    did not put it there (yours wins);
  * HPU_JAX_KEEP_XLA_FLAGS=1 is set in the environment (opt out);
  * a JAX backend is already running (too late; a warning says so).
The flag only concerns the CPU backend; GPU and TPU runs are unaffected.
"""
import os
import warnings

FLAG = '--xla_cpu_experimental_ynn_fusion_type=individual_dot'
FLAG_NAME = 'xla_cpu_experimental_ynn_fusion_type'
OPT_OUT = 'HPU_JAX_KEEP_XLA_FLAGS'
CONVOLUTIONS = ('eigen', 'ynnpack')   # train.cpu_convolutions
FIELD = 'train.cpu_convolutions'

_added = False      # FLAG in XLA_FLAGS was put there by configure.


def _backend_started() -> bool:
  try:
    from jax._src import xla_bridge
    return bool(getattr(xla_bridge, '_backends', {}))
  except Exception:  # pragma: no cover - private API moved: assume not started.
    return False


def check(convolutions: str) -> str:
  """The value of train.cpu_convolutions, or ValueError naming the field."""
  if convolutions not in CONVOLUTIONS:
    raise ValueError(f'{FIELD}={convolutions!r}: expected one of {CONVOLUTIONS} '
                     "('eigen': XLA's Eigen convolutions, faster for the original's "
                     "network; 'ynnpack': XLA's default, faster for small networks).")
  return convolutions


def configure(environ=os.environ, convolutions: str = 'eigen') -> bool:
  """Sets XLA_FLAGS for `convolutions` ('eigen' adds FLAG, 'ynnpack' removes
  the FLAG hpu_jax added) unless opted out or set by the user; True if
  XLA_FLAGS changed."""
  global _added
  check(convolutions)
  flags = environ.get('XLA_FLAGS', '')
  if environ.get(OPT_OUT, '') not in ('', '0'):
    return False
  ours = _added and FLAG in flags.split()
  if FLAG_NAME in flags and not ours:
    return False                                   # The user's own setting.
  if (convolutions == 'eigen') == bool(ours):
    return False                                   # Already so.
  if _backend_started():
    warnings.warn(
        f'hpu_jax could not set {FIELD}={convolutions!r}: JAX had already started '
        f'its backend, which read XLA_FLAGS ({"with" if ours else "without"} {FLAG}). '
        'Import hpu_jax, or call hpu_jax.xla_cpu.configure, before using JAX, or set '
        'the flag in XLA_FLAGS yourself.')
    return False
  if convolutions == 'eigen':
    environ['XLA_FLAGS'] = (flags + ' ' + FLAG).strip()
    _added = True
  else:
    environ['XLA_FLAGS'] = ' '.join(f for f in flags.split() if f != FLAG)
    _added = False
  return True
