import os
import shutil
import tempfile

# Two fake CPU devices for the multi-device paths; must be set before jax loads.
os.environ.setdefault('XLA_FLAGS', '--xla_force_host_platform_device_count=2')

# XLA's optimisation passes off (jax_disable_most_optimizations), here and in
# the scripts the tests start: the suite runs small shapes a few times each, so
# its time is mostly XLA compiling, and unoptimised programs compile about 2x
# faster. The tests check what the code computes, which the passes do not
# change beyond float rounding; speed is measured by scripts/benchmark.py,
# never here. Set JAX_DISABLE_MOST_OPTIMIZATIONS=0 to test optimised programs.
os.environ.setdefault('JAX_DISABLE_MOST_OPTIMIZATIONS', '1')

# A persistent compilation cache for the test run, one directory per test
# process (pytest-xdist worker), shared with the scripts its tests start (they
# inherit the environment): the same small programs are compiled by many
# tests, and each is compiled once per worker. Per worker, because JAX writes
# an entry without a lock: two processes must not write one directory at the
# same time. A test about the cache itself (train.compilation_cache_dir)
# points JAX at its own directory; a JAX_COMPILATION_CACHE_DIR of your own is
# left alone.
_BASE = 'HPU_JAX_TESTS_CACHE'
_OWN_CACHE = None
if _BASE not in os.environ and 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
  _OWN_CACHE = tempfile.mkdtemp(prefix='hpu_jax_tests_cache_')
  os.environ[_BASE] = _OWN_CACHE
if _BASE in os.environ:
  os.environ['JAX_COMPILATION_CACHE_DIR'] = os.path.join(
      os.environ[_BASE], os.environ.get('PYTEST_XDIST_WORKER', 'main'))
  os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0'
  os.environ['JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES'] = '-1'


def pytest_sessionfinish(session, exitstatus):
  del session, exitstatus
  if _OWN_CACHE:   # The process that made it (the controller under xdist).
    shutil.rmtree(_OWN_CACHE, ignore_errors=True)
