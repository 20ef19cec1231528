"""One directory for JAX's persistent compilation cache and, on GPU, XLA's
autotuning results: the config field `train.compilation_cache_dir`.

    from hpu_jax import compile_cache
    compile_cache.enable('runs/compile_cache')   # before the first compile
    ...
    print(compile_cache.summary())   # 'compilation cache runs/...: 7 of 7 ...'

What the directory holds after a run:
  * `<program>-<key>-cache` files (and `-atime`): JAX's persistent compilation
    cache, one compiled program each. Every program is cached, however small
    or quick to compile (minimum compile time 0, no minimum entry size).
  * `xla_gpu_per_fusion_autotune_cache_dir/`: on GPU, XLA's autotuning
    results (cuDNN convolution algorithms, cuBLAS and Triton GEMM configs),
    one file per tuned fusion or custom call. Empty on CPU.

A second run with the same directory, in a new process or on a fresh machine
with the same jax / jaxlib and GPU, loads its programs from the cache instead
of compiling them. A program whose cache entry misses (another jax version,
other XLA flags, e.g. command buffers on or off) is compiled again, but the
autotuner reads the results of every fusion already tuned instead of timing
the candidates again, which is most of a GPU compile of this network.

How the autotuning directory reaches XLA: while JAX's persistent cache is on,
JAX sets `xla_gpu_per_fusion_autotune_cache_dir` (and the autotune cache mode:
read and write on process 0, read only elsewhere) in the compile options of
every compile (jax's `jax_persistent_cache_enable_xla_caches`, whose default
is that flag; set here explicitly). No XLA_FLAGS are involved, so `enable`
works whether or not JAX's backend has started, as long as it runs before the
compiles it should cover. Adding the flag to XLA_FLAGS as well would change
nothing but the cache keys.

**Keep the path string the same.** JAX's cache key covers the program, the
jax / jaxlib versions, the device, XLA_FLAGS and the compile options, and the
compile options hold the autotuning directory's path as given here. The same
directory reached under another path string (`/data/cache` against
`cache`, or another home directory) therefore misses every JAX entry, though
the autotuning results in it are still used. A relative path from the same
working directory, e.g. `runs/compile_cache` from the repository root, gives
identical keys on every machine (measured on CPU: a copy under another name
missed every entry; the same relative path hit every one).

The cache is trusted code: whoever can write to the directory can make the
process run what they wrote (JAX's warning). Keep it private.
"""
import os
from typing import Optional

FIELD = 'train.compilation_cache_dir'
# The sub-directory name JAX gives XLA's per-fusion autotune cache.
AUTOTUNE_DIR = 'xla_gpu_per_fusion_autotune_cache_dir'
ENTRY_SUFFIX = '-cache'   # jax._src.lru_cache's file suffix for an entry.

_EVENTS = {'/jax/compilation_cache/compile_requests_use_cache': 'requests',
           '/jax/compilation_cache/cache_hits': 'hits',
           '/jax/compilation_cache/cache_misses': 'misses'}
_counts = {name: 0 for name in _EVENTS.values()}
_listening = False
_directory: Optional[str] = None


def check(directory: str, field: str = FIELD) -> str:
  """The directory to use ('' when unset, i.e. off), with `~` expanded.
  Creates nothing. Raises ValueError naming `field` when it cannot be a cache
  directory: it is a file, lies under a file, or cannot be written."""
  directory = str(directory or '')
  if not directory:
    return ''
  path = os.path.expanduser(directory)
  prefix = f'{field}={directory!r}'
  if os.path.exists(path) and not os.path.isdir(path):
    raise ValueError(f'{prefix}: this is a file; expected a directory for the '
                     "compilation cache (it is created if it does not exist).")
  existing = os.path.abspath(path)
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    raise ValueError(f'{prefix}: {existing} is a file, so the directory cannot be '
                     'created; expected a directory for the compilation cache.')
  if not os.access(existing, os.W_OK | os.X_OK):
    raise ValueError(f'{prefix}: {existing} is not writable; expected a directory '
                     'the compilation cache can be written to.')
  return path


def enable(directory: str, field: str = FIELD) -> dict:
  """Turns on JAX's persistent compilation cache in `directory` (created if
  missing), every program cached, with XLA's GPU autotuning results kept in
  its `xla_gpu_per_fusion_autotune_cache_dir/`. Call it before the compiles
  it should cover; a JAX backend that has already started is fine.

  Returns {'directory', 'autotune_directory', 'entries' (cache entries
  already there), 'backend_started'}. Raises ValueError naming `field` for a
  directory that cannot be used (see `check`)."""
  global _directory
  path = check(directory, field)
  if not path:
    raise ValueError(f'{field}=\'\': expected a directory (empty means no cache).')
  autotune = os.path.join(path, AUTOTUNE_DIR)
  try:   # XLA expects the autotune directory to exist.
    os.makedirs(autotune, exist_ok=True)
  except OSError as e:
    raise ValueError(f'{field}={directory!r}: cannot create {autotune}: '
                     f'{e.strerror or e}.') from None
  import jax
  from jax.experimental.compilation_cache import compilation_cache
  previous = jax.config.jax_compilation_cache_dir
  if previous and previous != path:
    compilation_cache.reset_cache()   # Otherwise the first directory stays in use.
  jax.config.update('jax_enable_compilation_cache', True)
  jax.config.update('jax_compilation_cache_dir', path)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
  jax.config.update('jax_persistent_cache_min_entry_size_bytes', -1)  # -1: no minimum.
  jax.config.update('jax_persistent_cache_enable_xla_caches', AUTOTUNE_DIR)
  _listen()
  _directory = path
  return {'directory': path, 'autotune_directory': autotune,
          'entries': len(entries(path)), 'backend_started': _backend_started()}


def entries(directory: str) -> list:
  """File names of the compiled programs JAX's cache holds in `directory`."""
  path = os.path.expanduser(directory)
  if not os.path.isdir(path):
    return []
  return sorted(n for n in os.listdir(path) if n.endswith(ENTRY_SUFFIX))


def autotune_entries(directory: str) -> list:
  """File names of XLA's autotuning results in `directory` (GPU only)."""
  path = os.path.join(os.path.expanduser(directory), AUTOTUNE_DIR)
  return sorted(os.listdir(path)) if os.path.isdir(path) else []


def stats() -> dict:
  """Counts since `enable` in this process: 'requests' (compiles that went
  through the cache), 'hits' (loaded from it), 'misses' (compiled and saved)."""
  return dict(_counts)


def summary() -> str:
  """One line for the log: where the cache is and what it saved."""
  if _directory is None:
    return 'compilation cache: off'
  c = stats()
  return (f"compilation cache {_directory}: {c['hits']} of {c['requests']} programs "
          f"loaded from it, {c['misses']} compiled and saved; "
          f'{len(entries(_directory))} programs and '
          f'{len(autotune_entries(_directory))} autotuning results in it now.')


def _listen() -> None:
  global _listening
  if _listening:
    return
  from jax import monitoring

  def on_event(event: str, **kwargs) -> None:
    del kwargs
    name = _EVENTS.get(event)
    if name is not None:
      _counts[name] += 1
  monitoring.register_event_listener(on_event)
  _listening = True


def _backend_started() -> bool:
  from hpu_jax.xla_cpu import _backend_started as started  # pylint: disable=protected-access
  return started()
