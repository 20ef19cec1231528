"""Multi-process training for real: two CPU processes on localhost (one device
each, jax.distributed with gloo) train the tiny config into one workdir.
Their parameters equal those of one process with two devices, and killing
both and starting both again resumes.

The test kills the pair itself, with two SIGKILLs sent back to back once both
have finished the checkpoint: a worker that killed only itself left its
partner alive for a moment, long enough for the partner's distributed runtime
to see the coordinator gone and abort (SIGABRT) instead."""
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np

from hpu_jax import train
from hpu_jax import workdir as run_dir

from helpers import ROOT, tiny_config

WORKER = textwrap.dedent('''
    import os, sys, time
    import numpy as np
    sys.path.insert(0, {tests!r})
    import jax
    from helpers import tiny_config
    from hpu_jax import train

    config = tiny_config(num_steps=4)
    config.train.distributed = True
    config.train.coordinator_address = '127.0.0.1:{port}'
    config.train.num_processes = 2
    config.train.process_id = {process_id}

    def wait_to_be_killed(step):
      if {die_at} and step == {die_at}:
        open({marker!r}, 'w').close()   # Checkpoint complete here; the test kills the pair.
        time.sleep(600)

    result = train.train(config, {workdir!r}, on_checkpoint=wait_to_be_killed)
    leaves = [np.asarray(x) for x in jax.tree.leaves(result.state.params)]
    np.savez({out!r}, *leaves)
    print('step', int(result.state.step), 'devices', jax.device_count(), flush=True)
''')


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def run_two_processes(tmp_path, workdir, die_at=0, timeout=600):
  """Starts processes 0 and 1; returns (returncode, stdout, stderr) for each.
  With `die_at`, kills both once both have saved the checkpoint of that step."""
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  env.pop('XLA_FLAGS', None)   # One CPU device per process.
  port = free_port()
  procs, logs, markers = [], [], []
  for process_id in (0, 1):
    marker = tmp_path / f'checkpointed_{process_id}'
    marker.unlink(missing_ok=True)
    markers.append(marker)
    script = WORKER.format(tests=os.path.join(ROOT, 'tests'), port=port,
                           process_id=process_id, die_at=die_at, workdir=workdir,
                           marker=str(marker), out=str(tmp_path / f'params_{process_id}.npz'))
    own = dict(env)
    if env.get('JAX_COMPILATION_CACHE_DIR'):   # The tests' cache: one writer per directory.
      own['JAX_COMPILATION_CACHE_DIR'] = os.path.join(env['JAX_COMPILATION_CACHE_DIR'],
                                                      f'process_{process_id}')
    out, err = (open(tmp_path / f'process_{process_id}.{name}', 'w+') for name in ('out', 'err'))
    logs.append((out, err))
    procs.append(subprocess.Popen([sys.executable, '-c', script], env=own, cwd=ROOT,
                                  stdout=out, stderr=err, text=True))
  deadline = time.time() + timeout
  try:
    while die_at and time.time() < deadline:
      if all(m.exists() for m in markers) or any(p.poll() is not None for p in procs):
        break
      time.sleep(0.2)
    if die_at and all(m.exists() for m in markers):
      for proc in procs:   # Microseconds apart: too soon for either to notice the other.
        proc.send_signal(signal.SIGKILL)
    for proc in procs:
      proc.wait(timeout=max(1, deadline - time.time()))
  finally:
    for proc in procs:
      if proc.poll() is None:
        proc.kill()
  results = []
  for proc, (out, err) in zip(procs, logs):
    out.seek(0)
    err.seek(0)
    results.append((proc.returncode, out.read(), err.read()))
    out.close()
    err.close()
  return results


def load_params(path):
  with np.load(path) as f:
    return [f[f'arr_{i}'] for i in range(len(f.files))]


def test_two_processes_killed_and_resumed_train_like_one_process_with_two_devices(tmp_path):
  assert jax.local_device_count() == 2      # The reference: 2 fake devices here.
  reference = train.train(tiny_config(num_steps=4), str(tmp_path / 'one'))
  expected = [np.asarray(x) for x in jax.tree.leaves(reference.state.params)]

  # Both killed (SIGKILL) right after the checkpoint of step 2, then both
  # started again: the resumed pair ends where one process with two devices does.
  killed = str(tmp_path / 'killed')
  start = time.perf_counter()
  results = run_two_processes(tmp_path, killed, die_at=2)
  assert [code for code, _, _ in results] == [-signal.SIGKILL] * 2, [
      err[-3000:] for _, _, err in results]
  assert run_dir.latest_checkpoints(killed).steps() == [2]
  results = run_two_processes(tmp_path, killed)
  two_process_s = time.perf_counter() - start
  for code, out, err in results:
    assert code == 0, err[-3000:]
    assert 'step 4 devices 2' in out, out
  assert run_dir.latest_checkpoints(killed).steps() == [2, 4]
  for process_id in (0, 1):
    got = load_params(tmp_path / f'params_{process_id}.npz')
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  print(f'two processes, killed and resumed: {two_process_s:.1f} s')
