"""scripts/benchmark.py: one run on the tiny config (its JSON line, the
2-device child on fake CPU devices and a profile of 5 train steps), and its
helpers without compiling."""
import argparse
import gzip
import importlib.util
import json
import os
import subprocess
import sys

import jax
import pytest

from hpu_jax import xla_cpu

from helpers import ROOT, TINY_CONFIG_FILE

SCRIPT = os.path.join(ROOT, 'scripts', 'benchmark.py')
CONFIG = TINY_CONFIG_FILE
POSITIVE = ('train_images_per_s', 'train_compile_s', 'train_images_per_s_2dev',
            'train_compile_s_2dev', 'sample_images_per_s', 'sample_compile_s',
            'metric_images_per_s', 'metric_compile_s', 'train_gflops_per_step',
            'train_achieved_gflops_per_s', 'sample_gflops_per_call',
            'sample_achieved_gflops_per_s', 'matmul_peak_gflops_per_s',
            'train_fraction_of_matmul_peak', 'sample_fraction_of_matmul_peak',
            'peak_host_rss_mb', 'peak_host_rss_mb_2dev', 'params',
            'train_lower_s', 'train_xla_compile_s', 'train_first_step_s', 'train_step_s',
            'sample_lower_s', 'sample_xla_compile_s', 'sample_first_call_s', 'sample_call_s',
            'protocol_hours', 'train_gflops_per_step_architecture',
            'train_gflops_per_step_implementation', 'train_model_gflops_per_s',
            'train_model_fraction_of_matmul_peak', 'sample_gflops_per_call_architecture',
            'sample_gflops_per_call_implementation', 'sample_model_gflops_per_s',
            'sample_model_fraction_of_matmul_peak', 'matmul_peak_float32_gflops_per_s',
            'matmul_peak_bfloat16_gflops_per_s', 'train_gbytes_per_step',
            'train_achieved_gbytes_per_s', 'train_fraction_of_memory_bandwidth',
            'sample_gbytes_per_call', 'sample_achieved_gbytes_per_s',
            'sample_fraction_of_memory_bandwidth', 'memory_bandwidth_gbytes_per_s')
PROFILED_STEPS = 5


def load_benchmark():
  spec = importlib.util.spec_from_file_location('benchmark_script', SCRIPT)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.fixture(scope='module')
def profile_dir(tmp_path_factory):
  return tmp_path_factory.mktemp('benchmark') / 'profile'


@pytest.fixture(scope='module')
def report(tmp_path_factory, profile_dir):
  config = tmp_path_factory.mktemp('benchmark') / 'tiny_config.py'
  config.write_text(CONFIG)
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  env.pop('XLA_FLAGS', None)  # conftest's 2 fake devices: not for the parent.
  # Small probes (a 256 x 256 matmul, an 8 MiB array) keep the run short.
  proc = subprocess.run(
      [sys.executable, SCRIPT, '--config', str(config), '--batch', '4', '--samples', '4',
       '--repeats', '2', '--matmul_size', '256', '--memory_mb', '8',
       '--profile_dir', str(profile_dir), '--profile_steps', str(PROFILED_STEPS)],
      capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = [line for line in proc.stdout.splitlines() if line.strip()]
  assert len(lines) == 1, proc.stdout
  return json.loads(lines[0])


def test_the_json_line_has_every_field(report):
  for name in POSITIVE:
    value = report[name]
    assert isinstance(value, (int, float)) and not isinstance(value, bool), (name, value)
    assert value > 0, (name, value)
  assert report['train_fraction_of_matmul_peak'] < 10
  assert report['peak_device_memory_mb'] is None  # CPU: no memory stats.
  assert report['platform'] == 'cpu' and report['num_devices'] == 1
  # hpu_jax adds its CPU convolution flag on import (hpu_jax/xla_cpu.py).
  assert report['xla_flags'] == xla_cpu.FLAG
  # The tiny config keeps glibc's allocator as it comes (hpu_jax/host_memory.py).
  assert report['host_malloc'] == 'system (the config)'
  assert report['xla_flags_2dev'].split() == [
      xla_cpu.FLAG, '--xla_force_host_platform_device_count=2']
  assert 'fake CPU devices' in report['train_2dev_note']
  assert report['jax'] == jax.__version__
  assert report['cpu_count'] == os.cpu_count()
  assert isinstance(report['device'], str) and report['device_2dev'] == report['device']
  assert report['matmul_size'] == 256 and report['memory_probe_mb'] == 8
  assert (report['size'], report['batch'], report['samples_per_image'],
          report['annotations_per_image'], report['repeats']) == (32, 4, 4, 4, 2)
  assert report['dtype'] == 'float32' and report['remat'] is False
  assert report['matmul_peak_gflops_per_s'] == report['matmul_peak_float32_gflops_per_s']


def test_compile_time_is_split_from_run_time(report):
  for kind, what in (('train', 'step'), ('sample', 'call')):
    parts = [report[f'{kind}_{p}'] for p in ('lower_s', 'xla_compile_s', f'first_{what}_s')]
    # Each rounded to 3 significant digits.
    assert report[f'{kind}_compile_s'] == pytest.approx(sum(parts), rel=0.01)
  assert report['train_images_per_s'] == pytest.approx(4 / report['train_step_s'], rel=1e-3)
  assert report['sample_images_per_s'] == pytest.approx(16 / report['sample_call_s'], rel=1e-3)


def test_protocol_hours_is_the_papers_protocol_at_the_measured_rate(report):
  assert report['protocol_hours'] == pytest.approx(
      240_000 * 32 / report['train_images_per_s'] / 3600, rel=2e-3)


def test_flop_counts_of_program_and_architecture(report):
  bench = load_benchmark()
  from helpers import tiny_config
  counts, savings = bench.architecture_flops(tiny_config(), 32, 4, 4)
  assert report['flops_savings'] == list(savings)
  for kind, per in (('train', 'per_step'), ('sample', 'per_call')):
    assert report[f'{kind}_gflops_{per}_architecture'] == pytest.approx(
        counts[kind]['architecture'] / 1e9, rel=1e-3)
    assert report[f'{kind}_gflops_{per}_implementation'] == pytest.approx(
        counts[kind]['implementation'] / 1e9, rel=1e-3)
    # On CPU XLA counts the convolutions: the count is complete, and (with 4
    # and 8 channels, elementwise work is a large share here) above the
    # convolutions' own.
    assert report[f'{kind}_flops_program_complete'] is True
    assert report[f'{kind}_gflops_{per}'] >= report[f'{kind}_gflops_{per}_implementation']
  assert report['train_model_gflops_per_s'] == pytest.approx(
      report['train_gflops_per_step_architecture'] / report['train_step_s'], rel=2e-3)


def test_the_profile_holds_the_traced_train_steps(report, profile_dir):
  assert report['profiled_steps'] == PROFILED_STEPS
  assert report['profile_dir'] == str(profile_dir)
  trace = report['profile_trace']
  assert os.path.dirname(os.path.dirname(os.path.dirname(trace))) == os.path.join(
      str(profile_dir), 'plugins')
  with gzip.open(trace, 'rt') as f:
    events = json.load(f)['traceEvents']
  steps = [e for e in events if e.get('name') == 'train_step']
  assert len(steps) == PROFILED_STEPS
  # The Chrome trace beside it, which hpu_jax/profile_summary.py reads first.
  assert [n for n in os.listdir(os.path.dirname(trace)) if n.endswith('.trace.json.gz')]


def test_program_counts_below_the_implementations_are_flagged():
  bench = load_benchmark()
  # On GPU the cuDNN convolutions are custom calls outside the cost analysis:
  # 54 GFLOP counted where the convolutions alone are about 660.
  assert bench.program_complete(54.5e9, 661.7e9) is False
  assert bench.program_complete(1.03e9, 1.0e9) is True
  assert bench.program_complete(None, 1.0e9) is None
  assert bench.protocol_hours(734.0) == pytest.approx(2.907, rel=1e-3)


def test_flops_of_reads_a_dict_or_a_list_of_dicts():
  bench = load_benchmark()

  class Compiled:
    def __init__(self, cost):
      self.cost = cost

    def cost_analysis(self):
      if isinstance(self.cost, Exception):
        raise self.cost
      return self.cost

  assert bench.flops_of(Compiled({'flops': 6.0, 'bytes accessed': 1.0})) == 6.0
  assert bench.flops_of(Compiled([{'flops': 2.0}, {'flops': 3.0}])) == 5.0
  assert bench.flops_of(Compiled([{}])) is None
  assert bench.flops_of(Compiled(None)) is None
  assert bench.flops_of(Compiled(NotImplementedError())) is None
  assert bench.bytes_of(Compiled([{'flops': 1.0, 'bytes accessed': 8.0},
                                  {'bytes accessed': 2.0}])) == 10.0
  assert bench.bytes_of(Compiled({'flops': 1.0})) is None


def test_options_set_only_the_fields_asked_for():
  bench = load_benchmark()
  from helpers import tiny_config
  plain = bench.apply_options(tiny_config(), argparse.Namespace(dtype='float32', remat=False))
  # Untouched: absent today, or the config's own default once the fields exist.
  assert plain.model.get('compute_dtype', 'float32') == 'float32'
  assert not plain.model.get('remat', False)
  asked = bench.apply_options(tiny_config(), argparse.Namespace(dtype='bfloat16', remat=True))
  assert asked.model.compute_dtype == 'bfloat16' and asked.model.remat is True


def test_compute_dtype_is_passed_only_for_bfloat16():
  bench = load_benchmark()

  def takes(model, compute_dtype=None):
    del model, compute_dtype

  def old(model):
    del model

  assert bench.dtype_kwargs(old, 'float32') == {}
  assert bench.dtype_kwargs(takes, 'bfloat16') == {'compute_dtype': bench.DTYPES['bfloat16']}
  with pytest.raises(SystemExit, match='compute_dtype'):
    bench.dtype_kwargs(old, 'bfloat16')


def test_the_2dev_child_is_skipped_when_asked_or_when_the_batch_does_not_split():
  bench = load_benchmark()
  args = argparse.Namespace(no_2dev=True, batch=4)
  assert bench.train_2dev(args, 32) == ({}, 'skipped (--no_2dev)')
  args = argparse.Namespace(no_2dev=False, batch=3)
  fields, note = bench.train_2dev(args, 32)
  assert fields == {} and 'does not split' in note
