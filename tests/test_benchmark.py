"""scripts/benchmark.py: one run on the tiny config (its JSON line and the
2-device child on fake CPU devices), and its helpers without compiling."""
import argparse
import importlib.util
import json
import os
import subprocess
import sys

import jax
import pytest

from hpu_jax import xla_cpu

from helpers import ROOT

SCRIPT = os.path.join(ROOT, 'scripts', 'benchmark.py')
TESTS = os.path.join(ROOT, 'tests')
CONFIG = f"""
import sys
sys.path.insert(0, {TESTS!r})
from helpers import tiny_config


def get_config():
  return tiny_config()
"""
POSITIVE = ('train_images_per_s', 'train_compile_s', 'train_images_per_s_2dev',
            'train_compile_s_2dev', 'sample_images_per_s', 'sample_compile_s',
            'metric_images_per_s', 'metric_compile_s', 'train_gflops_per_step',
            'train_achieved_gflops_per_s', 'sample_gflops_per_call',
            'sample_achieved_gflops_per_s', 'matmul_peak_gflops_per_s',
            'train_fraction_of_matmul_peak', 'sample_fraction_of_matmul_peak',
            'peak_host_rss_mb', 'peak_host_rss_mb_2dev', 'params')


def load_benchmark():
  spec = importlib.util.spec_from_file_location('benchmark_script', SCRIPT)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.fixture(scope='module')
def report(tmp_path_factory):
  config = tmp_path_factory.mktemp('benchmark') / 'tiny_config.py'
  config.write_text(CONFIG)
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  env.pop('XLA_FLAGS', None)  # conftest's 2 fake devices: not for the parent.
  proc = subprocess.run(
      [sys.executable, SCRIPT, '--config', str(config), '--batch', '4', '--samples', '4',
       '--repeats', '2'], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
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
  assert report['xla_flags_2dev'].split() == [
      xla_cpu.FLAG, '--xla_force_host_platform_device_count=2']
  assert 'fake CPU devices' in report['train_2dev_note']
  assert report['jax'] == jax.__version__
  assert report['cpu_count'] == os.cpu_count()
  assert isinstance(report['device'], str) and report['device_2dev'] == report['device']
  assert report['matmul_size'] == 2048
  assert (report['size'], report['batch'], report['samples_per_image'],
          report['annotations_per_image'], report['repeats']) == (32, 4, 4, 4, 2)
  assert report['dtype'] == 'float32' and report['remat'] is False


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
