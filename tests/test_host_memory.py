"""hpu_jax/host_memory.py: with train.host_malloc='reuse' glibc is asked to
reuse large blocks (one arena, no mmap, no trimming), unless opted out, tuned
by the user, or an accelerator is expected; 'system' and the default configs
leave it alone; and in a new process large blocks, from the main thread and
from others, then come from the heap instead of fresh mmaps."""
import ctypes
import os
import platform
import subprocess
import sys
import textwrap

import pytest

from hpu_jax import host_memory

from helpers import ROOT


class FakeLibc:
  def __init__(self, refuse=()):
    self.calls, self._refuse = [], set(refuse)

  def mallopt(self, param, value):
    self.calls.append((param, value))
    return 0 if param in self._refuse else 1


glibc_only = pytest.mark.skipif(
    platform.system() != 'Linux' or platform.libc_ver()[0] != 'glibc',
    reason='glibc allocator settings')


@glibc_only
def test_configure_sets_one_arena_no_mmap_no_trimming():
  libc = FakeLibc()
  assert host_memory.configure('reuse', {}, libc) is True
  assert libc.calls == [(-8, 1), (-4, 0), (-1, -1)]
  assert host_memory.state() == 'reuse'


@pytest.mark.parametrize('environ, why', [
    ({'HPU_JAX_KEEP_MALLOC': '1'}, 'opted out'),
    ({'MALLOC_ARENA_MAX': '4'}, "environment's malloc settings"),
    ({'MALLOC_TRIM_THRESHOLD_': '0'}, "environment's malloc settings"),
    ({'GLIBC_TUNABLES': 'glibc.malloc.hugetlb=1'}, "environment's malloc settings"),
    ({'JAX_PLATFORMS': 'cuda'}, 'accelerator'),
])
@glibc_only
def test_nothing_is_changed_when_a_reason_applies(environ, why):
  libc = FakeLibc()
  assert host_memory.configure('reuse', environ, libc) is False
  assert libc.calls == []
  assert why in host_memory.state() and host_memory.state().startswith('system')


@glibc_only
def test_cpu_platforms_and_other_tunables_do_not_stop_it():
  for environ in ({'JAX_PLATFORMS': 'cpu'}, {'JAX_PLATFORMS': 'cuda,cpu'},
                  {'GLIBC_TUNABLES': 'glibc.pthread.rseq=0'}, {'HPU_JAX_KEEP_MALLOC': '0'}):
    assert host_memory.configure('reuse', environ, FakeLibc()) is True, environ


@glibc_only
def test_a_refused_setting_is_said():
  assert host_memory.configure('reuse', {}, FakeLibc(refuse={-4})) is False
  assert host_memory.state() == 'partly (mallopt refused [-4])'


def test_system_changes_nothing_and_a_bad_value_is_named():
  libc = FakeLibc()
  assert host_memory.configure('system', {}, libc) is False
  assert libc.calls == [] and host_memory.state() == 'system (the config)'
  with pytest.raises(ValueError, match=r"train.host_malloc='fast': expected one of"):
    host_memory.configure('fast', {}, libc)


def test_the_configs_choose_it_for_the_originals_network_only():
  from configs import base, lidc_crops, lidc_slices, lidc_slices_cpu, synthetic
  assert base.get_config().train.host_malloc == 'system'
  assert synthetic.get_config().train.host_malloc == 'system'
  assert lidc_slices_cpu.get_config().train.host_malloc == 'system'
  assert lidc_crops.get_config().train.host_malloc == 'reuse'
  assert lidc_slices.get_config().train.host_malloc == 'reuse'


PROBE = textwrap.dedent("""
    import ctypes, json, threading
    import numpy as np
    import hpu_jax
    from hpu_jax import host_memory
    host_memory.configure('reuse')

    class MallInfo2(ctypes.Structure):
      _fields_ = [(name, ctypes.c_size_t) for name in (
          'arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks', 'fsmblks',
          'uordblks', 'fordblks', 'keepcost')]
    libc = ctypes.CDLL('libc.so.6')
    libc.mallinfo2.restype = MallInfo2
    before = libc.mallinfo2().hblks  # Blocks mapped while Python and JAX started.
    blocks = [np.ones(64 << 18, np.float32)]            # 64 MiB, main thread.
    worker = threading.Thread(target=lambda: blocks.append(np.ones(64 << 18, np.float32)))
    worker.start(); worker.join()
    print(json.dumps({'state': host_memory.state(),
                      'mmapped_blocks': libc.mallinfo2().hblks - before}))
""")


def probe(**env_changes):
  env = dict(os.environ, JAX_PLATFORMS='cpu', **env_changes)
  for name in host_memory.USER_SETTINGS + ('GLIBC_TUNABLES',):
    env.pop(name, None)
  proc = subprocess.run([sys.executable, '-c', PROBE], capture_output=True, text=True,
                        env=env, cwd=ROOT, timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  import json
  return json.loads(proc.stdout.strip().splitlines()[-1])


@glibc_only
def test_large_blocks_come_from_the_heap_once_configured():
  default, opted_out = probe(), probe(HPU_JAX_KEEP_MALLOC='1')
  assert default == {'state': 'reuse', 'mmapped_blocks': 0}
  # Without it glibc maps both 64 MiB blocks afresh (and unmaps them when freed).
  assert opted_out['state'].startswith('system (opted out')
  assert opted_out['mmapped_blocks'] == 2
