"""The workdir as users treat it: resuming with another architecture, a second
run on a live workdir, damaged checkpoints, a torn metrics line, SIGTERM and
Ctrl-C, non-finite parameters, and the one-line messages."""
import json
import os
import signal
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hpu_jax
from hpu_jax import train
from hpu_jax import workdir as run_dir
from hpu_jax.metric_writer import read_metrics

from helpers import ROOT, tiny_config

TESTS = os.path.join(ROOT, 'tests')


@pytest.fixture()
def two_steps(tmp_path):
  """A workdir of the tiny config trained for 2 steps (checkpoint at 2)."""
  workdir = str(tmp_path / 'run')
  train.train(tiny_config(num_steps=2), workdir)
  return workdir


def test_resuming_with_another_architecture_stops_and_keeps_config_json(two_steps, capsys):
  path = os.path.join(two_steps, run_dir.CONFIG_FILE)
  with open(path, 'rb') as f:
    before = f.read()
  config = tiny_config(num_steps=4)
  config.model.channels_per_block = (8, 16)
  with pytest.raises(ValueError, match=r'model\.channels_per_block: \(4, 8\) in the '
                                       r'workdir, \(8, 16\) now'):
    train.train(config, two_steps)
  with open(path, 'rb') as f:
    assert f.read() == before
  assert run_dir.latest_checkpoints(two_steps).steps() == [2]
  # Safe changes (steps, batch size, schedule) resume, and are reported.
  capsys.readouterr()
  config = tiny_config(num_steps=4)
  config.train.learning_rate = 5e-4
  result = train.train(config, two_steps)
  assert int(result.state.step) == 4
  out = capsys.readouterr().out
  assert 'train.num_steps 2 -> 4' in out and 'train.learning_rate 0.001 -> 0.0005' in out
  with open(path) as f:
    assert json.load(f)['train']['num_steps'] == 4


HOLDER = textwrap.dedent('''
    import os, signal, sys, time
    sys.path.insert(0, {root!r})
    from hpu_jax import workdir as run_dir
    run_dir.WorkdirLock({workdir!r}).acquire()
    print('locked', flush=True)
    if {die}:
      os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(120)
''')


def test_a_live_run_locks_the_workdir_and_a_killed_one_does_not(tmp_path):
  workdir = str(tmp_path / 'locked')
  os.makedirs(workdir)
  holder = subprocess.Popen([sys.executable, '-c', HOLDER.format(root=ROOT, workdir=workdir,
                                                                   die=False)],
                            stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == 'locked'
    with pytest.raises(RuntimeError, match=rf"in use by a live run .*\"pid\": {holder.pid}"
                                           r'.*"host"'):
      train.train(tiny_config(num_steps=2), workdir)
    assert not os.path.exists(os.path.join(workdir, 'checkpoints'))
  finally:
    holder.kill()
    holder.wait()
  # The holder is dead: its lock is stale and taken over.
  stale = subprocess.run([sys.executable, '-c', HOLDER.format(root=ROOT, workdir=workdir,
                                                                die=True)],
                         capture_output=True, text=True, timeout=120)
  assert stale.returncode == -signal.SIGKILL and 'locked' in stale.stdout
  result = train.train(tiny_config(num_steps=2), workdir)
  assert int(result.state.step) == 2
  with open(os.path.join(workdir, run_dir.LOCK_FILE)) as f:
    assert json.load(f)['pid'] == os.getpid()


def _largest_file(directory):
  files = [os.path.join(d, f) for d, _, names in os.walk(directory) for f in names]
  return max(files, key=os.path.getsize)


def test_a_damaged_newest_checkpoint_is_skipped_with_a_warning(tmp_path, capsys):
  workdir = str(tmp_path / 'damaged')
  uninterrupted = train.train(tiny_config(num_steps=4), str(tmp_path / 'whole'))
  train.train(tiny_config(num_steps=4), workdir)        # Checkpoints 2 and 4.
  newest = os.path.join(workdir, 'checkpoints', '4')
  path = _largest_file(newest)
  with open(path, 'r+b') as f:                          # A truncated file.
    f.truncate(os.path.getsize(path) // 2)
  os.makedirs(os.path.join(workdir, 'checkpoints', '6'))   # An empty step folder.
  capsys.readouterr()
  resumed = train.train(tiny_config(num_steps=4), workdir)
  out = capsys.readouterr().out
  assert 'checkpoints/6 is damaged' in out and 'checkpoints/4 is damaged' in out
  assert 'Resumed from step 2' in out
  moved = sorted(os.listdir(os.path.join(workdir, run_dir.DAMAGED_DIR)))
  assert [name.split('-')[:2] for name in moved] == [['checkpoints', '4'], ['checkpoints', '6']]
  assert run_dir.latest_checkpoints(workdir).steps() == [2, 4]
  for a, b in zip(jax.tree.leaves(uninterrupted.state.params),
                  jax.tree.leaves(resumed.state.params)):
    np.testing.assert_array_equal(a, b)


def test_checkpoints_that_all_fail_stop_instead_of_starting_from_scratch(two_steps):
  path = _largest_file(os.path.join(two_steps, 'checkpoints', '2'))
  with open(path, 'r+b') as f:
    f.truncate(0)
  with pytest.raises(RuntimeError, match='could be restored.*instead of starting from scratch'):
    train.train(tiny_config(num_steps=4), two_steps)


def test_a_torn_metrics_line_is_dropped_with_a_warning(two_steps):
  path = os.path.join(two_steps, run_dir.METRICS_FILE)
  with open(path, 'a') as f:
    f.write('{"step": 3, "train/lo')
  with pytest.warns(UserWarning, match='line 3: not a metrics record'):
    records = read_metrics(two_steps)
  assert [r['step'] for r in records] == [1, 2]
  with pytest.warns(UserWarning):
    train.train(tiny_config(num_steps=3), two_steps)
  assert [r['step'] for r in read_metrics(two_steps)] == [1, 2, 3]


SIGNALLER = textwrap.dedent('''
    import os, signal, sys
    os.environ['XLA_FLAGS'] = '--xla_force_host_platform_device_count=2'
    sys.path.insert(0, {tests!r})
    from helpers import tiny_config
    from hpu_jax import train

    def signal_self(step):
      if step == 2:
        os.kill(os.getpid(), signal.{name})

    train.train(tiny_config(num_steps=50), {workdir!r}, on_checkpoint=signal_self)
''')


@pytest.mark.parametrize('name, code', [('SIGTERM', 143), ('SIGINT', -signal.SIGINT)])
def test_a_signal_saves_the_step_reached_then_exits_as_usual(tmp_path, name, code):
  workdir = str(tmp_path / name)
  proc = subprocess.run([sys.executable, '-c', SIGNALLER.format(tests=TESTS, name=name,
                                                                  workdir=workdir)],
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode in (code, 130), proc.stderr[-3000:]
  # The signal arrived during the save of step 2; step 3 finished and was saved.
  assert run_dir.latest_checkpoints(workdir).steps() == [2, 3]
  assert read_metrics(workdir)[-1]['step'] == 3
  assert f'{name} received at step 3 of 50; checkpoint saved' in proc.stdout


def test_non_finite_parameters_are_never_saved(tmp_path, monkeypatch):
  original = train.make_train_step

  def poisoned(*args, **kwargs):
    step_fn = original(*args, **kwargs)

    def step(state, images, labels):
      new_state, metrics = step_fn(state, images, labels)
      # GECO's multiplier, unused by the ELBO: every logged loss term stays finite.
      lagmul = jnp.where(new_state.step >= 3, jnp.nan, new_state.params['lagmul'])
      return new_state._replace(params=dict(new_state.params, lagmul=lagmul)), metrics
    return step

  monkeypatch.setattr(train, 'make_train_step', poisoned)
  workdir = str(tmp_path / 'nan_params')
  with pytest.raises(train.NonFiniteLossError, match=r"step 4: \['params'\]\['lagmul'\] has non-finite.*not saved.*step 2"):
    train.train(tiny_config(num_steps=4), workdir)
  assert run_dir.latest_checkpoints(workdir).steps() == [2]


def test_the_smaller_messages(two_steps, tmp_path, capsys):
  # Resuming a finished run says so.
  capsys.readouterr()
  train.train(tiny_config(num_steps=2), two_steps)
  assert 'The run is finished: step 2 of train.num_steps=2' in capsys.readouterr().out
  # --which best with validation off says why there is none.
  with pytest.raises(FileNotFoundError, match=r'validation was off.*train\.eval_every=0'):
    hpu_jax.load(two_steps, which='best')
  # An empty training source names the field.
  config = tiny_config()
  config.data.synthetic.num_train = 0
  with pytest.raises(ValueError, match=r'data\.synthetic\.num_train=0: the training split '
                                       'is empty'):
    train.train(config, str(tmp_path / 'empty'))
  # A misspelt config field: one line with the suggestion, exit status 2.
  proc = subprocess.run(
      [sys.executable, os.path.join(ROOT, 'scripts', 'train.py'), '--config',
       os.path.join(ROOT, 'configs', 'synthetic.py'), '--workdir', str(tmp_path / 'typo'),
       '--config.train.batchsize=3'], capture_output=True, text=True, timeout=300)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines() == [
      "error: --config.train.batchsize=3: no such config field (did you mean 'batch_size'?)."]
