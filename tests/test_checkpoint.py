"""Checkpoints: round trip of NamedTuple trees, keep-last-K, and a process
killed (SIGKILL) in the middle of a save leaves the last checkpoint restorable."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from typing import NamedTuple

import numpy as np
import pytest

from hpu_jax.workdir import Checkpointer


class Inner(NamedTuple):
  mu: np.ndarray
  count: np.ndarray


def make_tree(value):
  return {'params': {'w': np.full((3, 4), value, np.float32)},
          'opt': (Inner(np.full(5, value, np.float32), np.asarray(int(value), np.int32)),),
          'flag': np.asarray(value > 1)}


def test_round_trip_keeps_structure_values_and_meta(tmp_path):
  ckpt = Checkpointer(tmp_path / 'c', max_to_keep=3)
  ckpt.save(7, make_tree(2.0), {'best_validation_ged': 0.25})
  restored, meta = ckpt.restore(make_tree(0.0))
  assert isinstance(restored['opt'][0], Inner)
  np.testing.assert_array_equal(restored['params']['w'], make_tree(2.0)['params']['w'])
  assert int(restored['opt'][0].count) == 2 and bool(restored['flag'])
  assert meta == {'best_validation_ged': 0.25, 'step': 7}
  assert ckpt.read_meta(7)['step'] == 7


def test_background_saves_are_complete_for_every_reader(tmp_path):
  """async_save: save returns at once; steps, restore, read_meta, another
  Checkpointer after close, all see complete files, the newest 2 kept."""
  ckpt = Checkpointer(tmp_path / 'c', max_to_keep=2, async_save=True)
  for step in (1, 2, 3):
    ckpt.save(step, make_tree(float(step)), {'best_validation_ged': step / 10})
  assert ckpt.steps() == [2, 3] and ckpt.latest_step() == 3
  restored, meta = ckpt.restore(make_tree(0.0))
  np.testing.assert_array_equal(restored['params']['w'], make_tree(3.0)['params']['w'])
  assert meta == {'best_validation_ged': 0.3, 'step': 3}
  ckpt.save(4, make_tree(4.0))
  ckpt.close()   # waits for step 4's files.
  again = Checkpointer(tmp_path / 'c', max_to_keep=2)
  assert again.steps() == [3, 4] and again.read_meta(4)['step'] == 4
  assert not [n for n in os.listdir(tmp_path / 'c') if 'tmp' in n]


def test_keeps_the_last_k(tmp_path):
  ckpt = Checkpointer(tmp_path / 'c', max_to_keep=2)
  for step in (1, 2, 3, 4):
    ckpt.save(step, make_tree(float(step)))
  assert ckpt.steps() == [3, 4] and ckpt.latest_step() == 4
  restored, _ = ckpt.restore(make_tree(0.0), step=3)
  assert float(restored['params']['w'][0, 0]) == 3.0


def test_restore_without_checkpoint_names_the_directory(tmp_path):
  ckpt = Checkpointer(tmp_path / 'empty')
  with pytest.raises(FileNotFoundError, match='empty'):
    ckpt.restore(make_tree(0.0))


SAVER = textwrap.dedent('''
    import sys, numpy as np
    sys.path.insert(0, {root!r})
    from hpu_jax.workdir import Checkpointer
    ckpt = Checkpointer({directory!r}, max_to_keep=3)
    ckpt.save(1, {{'w': np.ones(10, np.float32)}})
    print('saved-1', flush=True)
    big = {{'w%d' % i: np.random.rand(2_000_000).astype(np.float32) for i in range(40)}}
    print('saving-2', flush=True)
    ckpt.save(2, big)
    print('saved-2', flush=True)
''')


def test_sigkill_during_a_save_leaves_the_previous_checkpoint_restorable(tmp_path):
  directory = str(tmp_path / 'c')
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  proc = subprocess.Popen([sys.executable, '-c', SAVER.format(root=root, directory=directory)],
                          stdout=subprocess.PIPE, text=True)
  try:
    assert proc.stdout.readline().strip() == 'saved-1'
    assert proc.stdout.readline().strip() == 'saving-2'
    # Wait until step 2's temporary directory exists, i.e. the write is under way.
    deadline = time.time() + 60
    while time.time() < deadline:
      if any(name != '1' for name in os.listdir(directory)):
        break
      time.sleep(0.01)
    time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
  finally:
    if proc.poll() is None:
      proc.kill()
  leftovers = [n for n in os.listdir(directory) if n != '1']
  assert leftovers and '2' not in leftovers, f'the kill came too late: {os.listdir(directory)}'
  ckpt = Checkpointer(directory)
  assert ckpt.latest_step() == 1
  restored, meta = ckpt.restore({'w': np.zeros(10, np.float32)})
  np.testing.assert_array_equal(restored['w'], np.ones(10, np.float32))
  ckpt.save(2, {'w': np.full(10, 2.0, np.float32)})   # Saving again works.
  assert ckpt.latest_step() == 2
