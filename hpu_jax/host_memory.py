"""How the C library's allocator serves XLA:CPU's buffers.

On the CPU, XLA allocates the outputs and temporaries of every call of a
jitted function with malloc. glibc serves a block above its mmap threshold
(32 MiB at most) with fresh pages from the kernel and gives them back when
the block is freed, and XLA's worker threads allocate from arenas of their
own, whose heaps cannot hold such blocks. So each call of the train step or
the sampler faults its large buffers in again, 4 KiB at a time, each page
zeroed by the kernel: a 1x1 conv of 8 x 16 samples at 128 x 128 (240 MiB
out) took 92 ms with 61,000 page faults per call, 18 ms with its buffers
reused (2-core AMD EPYC, 2026-12-04; the whole LIDC model: docs/speed.md).

`configure('reuse')` asks glibc (mallopt) for one arena, large blocks from
its heap rather than from mmap, and freed memory kept rather than handed
back: buffers are then reused from call to call. The cost: the process keeps
the memory it peaked at, as JAX's GPU allocator does. It pays for large
networks and slows small ones (presumably their many small allocations from
the input pipeline's and XLA's threads queue for the one arena): the original's
LIDC network trains 1.15x faster with it, the synthetic main job's small
network 1.5x slower (docs/speed.md). So it is a config choice,
`train.host_malloc` ('system', the default, or 'reuse'), set to 'reuse' by
the configs of the original's network and applied by scripts/train.py and
the benchmarks before JAX starts its thread pools. It changes nothing when:
  * the C library is not glibc (macOS, Windows, musl);
  * an accelerator plugin of JAX is installed (GPU, TPU), or JAX_PLATFORMS
    names no 'cpu': there XLA's buffers are not malloc's;
  * HPU_JAX_KEEP_MALLOC=1 is set in the environment (opt out);
  * you tuned glibc's allocator yourself (MALLOC_ARENA_MAX, MALLOC_MMAP_MAX_,
    MALLOC_TRIM_THRESHOLD_, MALLOC_MMAP_THRESHOLD_ or glibc.malloc.* in
    GLIBC_TUNABLES): yours wins.
"""
import ctypes
import ctypes.util
import importlib.metadata
import importlib.util
import os
import platform

OPT_OUT = 'HPU_JAX_KEEP_MALLOC'
MODES = ('system', 'reuse')   # train.host_malloc
FIELD = 'train.host_malloc'
USER_SETTINGS = ('MALLOC_ARENA_MAX', 'MALLOC_MMAP_MAX_', 'MALLOC_TRIM_THRESHOLD_',
                 'MALLOC_MMAP_THRESHOLD_')
# mallopt parameters (glibc's malloc.h) and the values set.
M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8
# M_TRIM_THRESHOLD -1: glibc reads the int as a size_t, the largest there is
# (never trim); 2**31 - 1 would still hand back the 2+ GiB of a train step.
SETTINGS = ((M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, -1))

_state = 'not configured'


def state() -> str:
  """What configure did: 'reuse' (set), or why not."""
  return _state


def check(mode: str) -> str:
  """The value of train.host_malloc, or ValueError naming the field."""
  if mode not in MODES:
    raise ValueError(f"{FIELD}={mode!r}: expected one of {MODES} ('system': glibc's "
                     "allocator as it comes; 'reuse': XLA's large buffers reused from "
                     "call to call, faster for large networks on a CPU).")
  return mode


def _accelerator_expected(environ) -> bool:
  platforms = environ.get('JAX_PLATFORMS', '')
  if platforms and 'cpu' not in platforms.lower().split(','):
    return True
  try:
    if importlib.metadata.entry_points(group='jax_plugins'):   # GPU plugins.
      return True
    return importlib.util.find_spec('libtpu') is not None     # TPU.
  except Exception:  # pragma: no cover - broken metadata: assume a plain CPU install.
    return False


def _reason_to_skip(environ) -> str:
  if environ.get(OPT_OUT, '') not in ('', '0'):
    return f'system (opted out: {OPT_OUT})'
  if platform.system() != 'Linux' or platform.libc_ver()[0] != 'glibc':
    return 'system (not glibc)'
  if (any(name in environ for name in USER_SETTINGS)
      or 'glibc.malloc.' in environ.get('GLIBC_TUNABLES', '')):
    return "system (the environment's malloc settings)"
  if _accelerator_expected(environ):
    return 'system (an accelerator plugin or JAX_PLATFORMS without cpu)'
  return ''


def configure(mode: str = 'reuse', environ=os.environ, libc=None) -> bool:
  """With 'reuse', sets glibc's allocator to reuse large blocks (see the
  module's docstring) unless a reason not to applies; True if it did.
  'system' changes nothing. `libc` (tests): an object with
  mallopt(param, value) -> int, else glibc's."""
  global _state
  reason = 'system (the config)' if check(mode) == 'system' else _reason_to_skip(environ)
  if reason:
    _state = reason
    return False
  if libc is None:
    libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
  failed = [param for param, value in SETTINGS if libc.mallopt(param, value) != 1]
  _state = 'reuse' if not failed else f'partly (mallopt refused {failed})'
  return not failed
