"""hpu_jax/profile_summary.py: kernels per step and busy fraction of a
synthetic GPU-like trace with a known answer (and its fallbacks), and of a
real CPU trace from jax.profiler."""
import gzip
import json
import os
import subprocess
import sys
import textwrap

import pytest

from hpu_jax import profile_summary

from helpers import ROOT

HOST, GPU = 1, 2
PYTHON, STREAM_A, STREAM_B, COPIES, MODULES, OPS = 10, 13, 14, 20, 30, 31


def meta(pid, name, tid=None):
  event = {'ph': 'M', 'pid': pid, 'name': 'thread_name' if tid else 'process_name',
           'args': {'name': name}}
  if tid:
    event['tid'] = tid
  return event


def x(pid, tid, name, ts, end, **args):
  event = {'ph': 'X', 'pid': pid, 'tid': tid, 'name': name, 'ts': ts, 'dur': end - ts}
  if args:
    event['args'] = args
  return event


# Two train steps, [100, 200) and [300, 400) us, and a small program between them.
KERNELS = [  # (stream, name, start, end)
    (STREAM_A, 'warmup_kernel', 10, 20),       # Before the first step: left out.
    (STREAM_A, 'conv_fwd', 100, 130),
    (STREAM_A, 'fusion_1', 140, 160),
    (STREAM_B, 'conv_bwd', 150, 170),          # Overlaps fusion_1 by 10 us.
    (STREAM_A, 'rng', 210, 215),               # jit_other, between the steps.
    (STREAM_A, 'conv_fwd', 300, 350),
    (STREAM_B, 'conv_bwd', 360, 380),
]


def synthetic_trace(with_modules=True, with_marks=True):
  events = [meta(HOST, '/host:CPU'), meta(HOST, 'python', PYTHON),
            meta(GPU, '/device:GPU:0'), meta(GPU, 'Stream #13(Compute)', STREAM_A),
            meta(GPU, 'Stream #14(Compute)', STREAM_B),
            meta(GPU, 'Stream #20(MemcpyD2H)', COPIES), meta(GPU, 'XLA Modules', MODULES),
            meta(GPU, 'XLA Ops', OPS)]
  for stream, name, start, end in KERNELS:
    events.append(x(GPU, stream, name, start, end, kernel_details='grid:1,1,1'))
    events.append(x(GPU, OPS, name, start, end))   # Derived line: not counted again.
  events.append(x(GPU, COPIES, 'MemcpyD2H', 180, 190, memcpy_details='kind:DtoH'))
  if with_modules:
    events += [x(GPU, MODULES, 'jit_train_step(1)', 100, 200),
               x(GPU, MODULES, 'jit_other(2)', 210, 215),
               x(GPU, MODULES, 'jit_train_step(3)', 300, 400)]
  if with_marks:   # StepTraceAnnotation: host dispatch only, shorter than the steps.
    events += [x(HOST, PYTHON, 'train', 95, 105, step_num='0'),
               x(HOST, PYTHON, 'train', 295, 305, step_num='1')]
  return {'displayTimeUnit': 'ns', 'metadata': {}, 'traceEvents': events}


def write_profile(root, trace):
  """The layout jax.profiler.trace writes: plugins/profile/<run>/<host>.trace.json.gz."""
  run = root / 'plugins' / 'profile' / '2026_12_01_00_00_00'
  run.mkdir(parents=True)
  with gzip.open(run / 'host.trace.json.gz', 'wt') as f:
    json.dump(trace, f)
  return str(root)


def test_union_length_counts_overlaps_once_and_clips():
  assert profile_summary.union_length([(0, 10), (5, 15), (20, 30)]) == 25
  assert profile_summary.union_length([(0, 10), (5, 15), (20, 30)], 8, 25) == 12
  assert profile_summary.union_length([]) == 0


def test_synthetic_gpu_trace_steps_from_the_xla_modules_line(tmp_path):
  s = profile_summary.summarize(write_profile(tmp_path, synthetic_trace()), steps=2)
  assert (s['platform'], s['devices'], s['steps'], s['steps_from'], s['step_program']) == (
      'gpu', ['/device:GPU:0'], 2, 'xla_modules', 'jit_train_step')
  # Window [100, 400): 6 kernels (warm-up left out, XLA Ops not counted again).
  assert s['wall_ms'] == 0.3 and s['kernels'] == 6 and s['kernels_per_step'] == 3
  # Union: 30 + (140..170) 30 + 5 + 50 + 20 = 135 us of 300.
  assert s['busy_ms'] == 0.135 and s['busy_fraction'] == 0.45
  assert s['kernel_ms'] == 0.145 and s['streams'] == 2
  assert (s['copies'], s['copy_ms']) == (1, 0.01)
  assert s['top_kernels'][0] == {'name': 'conv_fwd', 'count': 2, 'ms': 0.08,
                                 'share': round(80 / 145, 4)}
  assert s['note'] == ''
  assert 'busy_fraction 0.45' in profile_summary.format_table(s)


def test_synthetic_gpu_trace_falls_back_to_step_annotations_then_to_steps(tmp_path):
  s = profile_summary.summarize(
      write_profile(tmp_path / 'a', synthetic_trace(with_modules=False)))
  # Kernels carry no run_id: the host's StepTraceAnnotations, window from the
  # first mark (95) to the last kernel's end (380).
  assert (s['steps'], s['steps_from'], s['kernels']) == (2, 'step_annotations', 6)
  assert s['wall_ms'] == 0.285 and s['busy_fraction'] == round(135 / 285, 4)
  s = profile_summary.summarize(
      write_profile(tmp_path / 'b', synthetic_trace(with_modules=False, with_marks=False)),
      steps=2)
  # Nothing in the trace tells steps apart: every kernel, 10 .. 380 us.
  assert (s['steps'], s['steps_from'], s['kernels'], s['kernels_per_step']) == (
      2, 'argument', 7, 3.5)
  assert s['wall_ms'] == 0.37 and s['busy_fraction'] == round(145 / 370, 4)


def test_the_command_line_writes_json_and_says_what_is_missing(tmp_path):
  path = write_profile(tmp_path / 'p', synthetic_trace())
  out = tmp_path / 'summary.json'
  assert profile_summary.main([path, '--steps', '5', '--out', str(out)]) == 0
  saved = json.loads(out.read_text())
  assert saved['busy_fraction'] == 0.45
  assert saved['note'] == '2 steps found in the trace, 5 expected.'
  (tmp_path / 'empty').mkdir()
  assert profile_summary.main([str(tmp_path / 'empty')]) == 1


@pytest.fixture(scope='module')
def cpu_profile(tmp_path_factory):
  """jax.profiler on the CPU: 5 calls of a jitted 6-op step, as
  scripts/benchmark.py --profile_dir profiles 5 train steps."""
  root = tmp_path_factory.mktemp('cpu_profile')
  script = textwrap.dedent(f"""
      import jax, jax.numpy as jnp

      @jax.jit
      def step(x):
        for _ in range(3):
          x = jnp.tanh(x @ x.T) + 1
        return x

      x = jax.block_until_ready(step(jnp.ones((128, 128))))
      with jax.profiler.trace({str(root)!r}, create_perfetto_trace=True):
        for i in range(5):
          x = jax.block_until_ready(step(x))
      """)
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  env.pop('XLA_FLAGS', None)
  proc = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                        env=env, cwd=ROOT, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return str(root)


def test_a_real_cpu_trace_from_jax_profiler(cpu_profile):
  s = profile_summary.summarize(cpu_profile, steps=5)
  assert s['trace'].endswith('.trace.json.gz')   # Not the perfetto copy.
  assert (s['platform'], s['devices'], s['steps'], s['steps_from'], s['step_program']) == (
      'host', [], 5, 'run_id', 'jit_step')
  assert 'XLA:CPU' in s['kernel_kind']
  # 3 x (dot, tanh + add) as XLA:CPU fuses them, the same every step.
  assert s['kernels'] % 5 == 0 and s['kernels_per_step'] >= 3
  assert 0 < s['busy_fraction'] <= 1 and s['busy_ms'] <= s['wall_ms']
  assert s['copies'] == 0 and s['note'] == ''
  # The file runs as a script, without JAX or the package.
  proc = subprocess.run([sys.executable, os.path.join(ROOT, 'hpu_jax', 'profile_summary.py'),
                         cpu_profile, '--steps', '5'], capture_output=True, text=True,
                        timeout=60, cwd=os.path.dirname(cpu_profile))
  assert proc.returncode == 0, proc.stderr
  assert 'steps: 5 (from run_id; program jit_step)' in proc.stdout


def test_steps_given_pick_the_annotations_when_executions_were_merged(tmp_path):
  trace = synthetic_trace()
  # The profiler drew both steps as one module event (back-to-back executions).
  trace['traceEvents'] = [e for e in trace['traceEvents'] if e.get('tid') != MODULES or
                          e.get('ph') == 'M'] + [x(GPU, MODULES, 'jit_train_step(1)', 100, 400)]
  s = profile_summary.summarize(write_profile(tmp_path / 'a', trace))
  assert (s['steps'], s['steps_from'], s['step_program']) == (1, 'xla_modules', 'jit_train_step')
  s = profile_summary.summarize(write_profile(tmp_path / 'b', trace), steps=2)
  assert (s['steps'], s['steps_from'], s['step_program'], s['note']) == (
      2, 'step_annotations', None, '')
  assert s['kernels_per_step'] == 3 and s['wall_ms'] == 0.285
