"""train.compilation_cache_dir (hpu_jax/compile_cache.py): a second training
run, in a new process, loads every program the first one compiled; a path
that cannot be a directory is refused, naming the field."""
import os
import re
import subprocess
import sys

import pytest

from hpu_jax import compile_cache, configuration, train

from helpers import ROOT, tiny_config, TINY_CONFIG_FILE

SCRIPT = os.path.join(ROOT, 'scripts', 'train.py')
CONFIG = TINY_CONFIG_FILE
SUMMARY = re.compile(r'compilation cache (.+): (\d+) of (\d+) programs loaded from it, '
                     r'(\d+) compiled and saved; (\d+) programs and (\d+) autotuning')


def run_training(config_file, workdir, cache_dir):
  """scripts/train.py on the tiny config (2 steps, no evaluation) in a new
  process; returns (hits, requests, misses, entries) from its summary line."""
  proc = subprocess.run(
      [sys.executable, SCRIPT, '--config', str(config_file), '--workdir', str(workdir),
       f'--config.train.compilation_cache_dir={cache_dir}', '--config.eval.at_end=False'],
      capture_output=True, text=True, cwd=ROOT, timeout=600,
      env=dict(os.environ, JAX_PLATFORMS='cpu'))
  assert proc.returncode == 0, proc.stderr[-3000:]
  found = SUMMARY.search(proc.stdout)
  assert found, proc.stdout[-2000:]
  assert found.group(1) == str(cache_dir)
  return tuple(int(found.group(i)) for i in (2, 3, 4, 5))


def test_a_second_run_loads_every_program_from_the_cache(tmp_path):
  config_file = tmp_path / 'tiny_config.py'
  config_file.write_text(CONFIG)
  cache = tmp_path / 'cache'
  hits, requests, misses, stored = run_training(config_file, tmp_path / 'run1', cache)
  # (A program compiled twice in one run is loaded the second time.)
  assert misses > 0 and hits + misses == requests
  names = compile_cache.entries(str(cache))
  assert stored == len(names) == misses, names
  assert any(n.startswith('jit_') or n.startswith('pmap_') for n in names), names
  assert os.path.isdir(cache / compile_cache.AUTOTUNE_DIR)  # Filled on GPU only.
  # A fresh workdir: the same programs from scratch, in a new process.
  hits, requests, misses, stored = run_training(config_file, tmp_path / 'run2', cache)
  assert (hits, misses) == (requests, 0) and requests > 0
  assert compile_cache.entries(str(cache)) == names


@pytest.mark.parametrize('make', ['file', 'under_a_file'])
def test_a_path_that_cannot_be_a_directory_names_the_field(tmp_path, make):
  a_file = tmp_path / 'a_file'
  a_file.write_text('not a directory')
  path = str(a_file if make == 'file' else a_file / 'cache')
  with pytest.raises(ValueError, match=r'^train\.compilation_cache_dir=.*a_file.*is a file'):
    compile_cache.check(path)
  config = tiny_config()
  config.train.compilation_cache_dir = path
  with pytest.raises(ValueError, match=r'^train\.compilation_cache_dir='):
    configuration.validate(config, num_devices=2)
  # train() refuses it before anything starts or is written.
  with pytest.raises(ValueError, match=r'^train\.compilation_cache_dir='):
    train.train(config, str(tmp_path / 'run'))
  assert not (tmp_path / 'run').exists()


def test_unset_means_off():
  assert compile_cache.check('') == ''
  assert tiny_config().train.compilation_cache_dir == ''
