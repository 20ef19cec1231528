"""scripts/benchmark_convs.py: the layers it times are the network's (counted
once per distinct shape, as often as the network has them), its FLOPs are
hpu_jax.flops', and --impl torch without PyTorch is refused by name."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from hpu_jax import configuration, flops

from helpers import ROOT, TINY_CONFIG_FILE, tiny_config

SCRIPT = os.path.join(ROOT, 'scripts', 'benchmark_convs.py')
SIZE = 32   # tiny_config's image size.


def load_script():
  spec = importlib.util.spec_from_file_location('benchmark_convs_script', SCRIPT)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def tiny_arch():
  return flops.architecture_args(configuration.model_kwargs(tiny_config().model))


def run_script(tmp_path, *args, prelude=None):
  config = tmp_path / 'tiny_config.py'
  config.write_text(TINY_CONFIG_FILE)
  command = [SCRIPT, '--config', str(config), *args]
  if prelude:  # Python run before the script, in its process.
    command = ['-c', f'{prelude}; import runpy, sys; sys.argv = {command!r}; '
                     f'runpy.run_path({SCRIPT!r}, run_name="__main__")']
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  env.pop('XLA_FLAGS', None)
  return subprocess.run([sys.executable, *command], capture_output=True, text=True,
                        env=env, cwd=ROOT, timeout=300)


def test_distinct_layers_count_every_layer_once():
  script = load_script()
  for kind, samples in (('train', 1), ('sample', 3)):
    layers = flops.conv_layers(kind, SIZE, 2, samples, **tiny_arch())
    distinct = script.distinct_layers(layers)
    assert sum(count for _, count in distinct) == len(layers)
    keys = [script.layer_key(layer) for layer, _ in distinct]
    assert len(set(keys)) == len(keys) < len(layers)
    # Each distinct layer is the first of its shape, in the network's order.
    firsts = [layers.index(layer) for layer, _ in distinct]
    assert firsts == sorted(firsts)


@pytest.mark.parametrize('kind', ['train', 'sample'])
def test_the_json_line_sums_the_networks_convolutions(tmp_path, kind):
  proc = run_script(tmp_path, '--kind', kind, '--batch', '2', '--samples', '3',
                    '--repeats', '1')
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = [line for line in proc.stdout.splitlines() if line.strip()]
  assert len(lines) == 1, proc.stdout
  record = json.loads(lines[0])
  samples = 3 if kind == 'sample' else 1
  layers = flops.conv_layers(kind, SIZE, 2, samples, **tiny_arch())
  assert (record['impl'], record['kind'], record['size'], record['batch'],
          record['samples']) == ('jax', kind, SIZE, 2, samples)
  assert record['layers'] == len(layers)
  assert record['distinct'] == len(load_script().distinct_layers(layers))
  assert record['conv_s'] > 0
  assert record['conv_s'] == pytest.approx(record['conv3x3_s'] + record['conv1x1_s'],
                                           abs=2e-4)
  # The FLOPs are those hpu_jax computes (its savings, taps inside the input).
  savings = flops.implementation_savings()
  if kind == 'train':
    expected = flops.train_step_flops(SIZE, 2, padding_taps=False, savings=savings,
                                      **tiny_arch())
  else:
    expected = flops.sample_flops(SIZE, 2, 3, padding_taps=False, savings=savings,
                                  **tiny_arch())
  assert record['gflops'] == pytest.approx(expected / 1e9, rel=1e-3)
  assert record['gflops_per_s'] == pytest.approx(record['gflops'] / record['conv_s'],
                                                 rel=0.02)
  assert len(record['slowest']) == min(5, record['distinct'])
  shares = [row['share'] for row in record['slowest']]
  assert shares == sorted(shares, reverse=True) and sum(shares) <= 1.001
  names = {layer.name for layer in layers}
  assert all(row['name'] in names for row in record['slowest'])
  # One row per distinct layer on stderr.
  rows = [line for line in proc.stderr.splitlines() if 'GFLOP/s' in line]
  assert len(rows) == record['distinct']


def test_torch_without_pytorch_is_refused_by_name(tmp_path):
  proc = run_script(tmp_path, '--impl', 'torch', '--repeats', '1',
                    prelude="import sys; sys.modules['torch'] = None")
  assert proc.returncode != 0
  assert '--impl torch needs PyTorch' in proc.stderr, proc.stderr[-2000:]
