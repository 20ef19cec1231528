"""scripts/gpu_benchmark.sh on the CPU: its options and dry run (the variants,
their XLA flags, the time guard), and one real variant on the tiny config
(JSON line, cache kept and reused, summary)."""
import json
import os
import subprocess

import pytest

from helpers import ROOT, TINY_CONFIG_FILE

SCRIPT = os.path.join(ROOT, 'scripts', 'gpu_benchmark.sh')
TESTS = os.path.join(ROOT, 'tests')
CONFIG = TINY_CONFIG_FILE
CONV = '--xla_gpu_enable_command_buffer=+CONVOLUTION --xla_gpu_graph_min_graph_size=1'


def has_profile_dir():
  with open(os.path.join(ROOT, 'scripts', 'benchmark.py')) as f:
    text = f.read()
  return "'profile_dir'" in text and "'profile_steps'" in text


def run(*args, timeout=60, **env):
  environ = {k: v for k, v in os.environ.items() if k not in ('XLA_FLAGS', 'OUT')}
  environ.update(env)
  return subprocess.run(['bash', SCRIPT, *args], capture_output=True, text=True,
                        timeout=timeout, env=environ, cwd=TESTS)


def test_the_dry_run_plans_four_variants_with_their_flags():
  proc = run('--dry-run')
  assert proc.returncode == 0, proc.stderr
  plan = [l for l in proc.stdout.splitlines() if l.startswith('would run')]
  names = [l.split()[2] for l in plan]
  assert names == ['float32_cb_default', 'float32_cb_conv', 'bfloat16_cb_default',
                   'bfloat16_cb_conv']
  for line, name in zip(plan, names):
    dtype, mode = name.split('_', 1)
    assert '(limit 300 s)' in line
    assert (CONV in line) == (mode == 'cb_conv')
    assert f'--config configs/lidc_slices.py --batch 32 --samples 16 --repeats 20 ' \
           f'--dtype {dtype} --no_2dev' in line
    assert '--config.train.compilation_cache_dir=runs/gpu_compile_cache' in line
    assert (f'--profile_dir gpu_out/profiles/{name} --profile_steps 5' in line) == \
        has_profile_dir()
    assert ('--xla_enable_command_buffers_during_profiling=true' in line) == has_profile_dir()


def test_the_time_guard_skips_what_does_not_fit():
  proc = run('-n', '--budget_s=150', '--timeout_s', '120', '--modes', 'cb_off cb_conv',
             '--dtypes', 'bfloat16')
  lines = proc.stdout.splitlines()
  # 150 s - 20 s reserve: the first fits (limited to 120 s), the second too in
  # a dry run, which takes no time; a budget of 70 s leaves 50 s, under 60.
  assert proc.returncode == 0, proc.stderr
  profiling = '--xla_enable_command_buffers_during_profiling=true ' if has_profile_dir() else ''
  assert lines[-2].startswith("would run bfloat16_cb_off (limit 120 s): "
                              f"XLA_FLAGS='{profiling}--xla_gpu_enable_command_buffer='")
  proc = run('-n', '--budget_s', '70', DTYPES='float32')
  assert proc.returncode == 1
  assert [l for l in proc.stdout.splitlines() if l.startswith('skipped')] == [
      'skipped float32_cb_default: 50 s left of the 70 s budget (needs 60)',
      'skipped float32_cb_conv: 50 s left of the 70 s budget (needs 60)']


@pytest.mark.parametrize('args, message', [
    (['--bogus', '1'], 'unknown option --bogus'),
    (['--dtypes', 'float16'], "'float16' is not float32 or bfloat16"),
    (['--modes', 'graphs'], "'graphs' is not cb_default, cb_conv or cb_off"),
    (['--batch=x'], 'BATCH=x: expected a whole number'),
    (['--config', 'nowhere.py'], '--config nowhere.py: no such file'),
    (['--reuse', 'nowhere'], '--reuse nowhere: no such directory'),
    (['--out'], '--out needs a value'),
    (['extra'], "unexpected argument 'extra'"),
])
def test_bad_options_stop_it_with_a_message(args, message):
  proc = run('-n', *args)
  assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_help_describes_the_options():
  proc = run('--help')
  assert proc.returncode == 0
  for word in ('--reuse', '--budget_s', 'pip wheel --wheel-dir scripts/wheels', 'cb_conv'):
    assert word in proc.stdout


def test_one_variant_on_the_cpu_keeps_and_reuses_the_cache(tmp_path):
  (tmp_path / 'tiny_config.py').write_text(CONFIG)
  reuse = tmp_path / 'earlier'
  reuse.mkdir()
  (reuse / 'earlier_program-cache').write_text('')   # Stands for an earlier entry.
  out, cache = tmp_path / 'out', tmp_path / 'cache'
  proc = run('--out', str(out), '--config', str(tmp_path / 'tiny_config.py'), '--batch', '4',
             '--repeats', '1', '--dtypes', 'float32', '--modes', 'cb_conv',
             '--cache_dir', str(cache), '--reuse', str(reuse), timeout=600,
             JAX_PLATFORMS='cpu')
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
  lines = (out / 'benchmark.jsonl').read_text().splitlines()
  assert len(lines) == 1
  line = json.loads(lines[0])
  assert line['variant'] == 'float32_cb_conv' and line['batch'] == 4
  assert CONV in line['xla_flags']
  assert line['cache_programs_before'] == 1   # The reused entry, copied in.
  assert line['cache_programs_after'] > 1 and line['autotune_results_after'] == 0
  copied = sorted(os.listdir(out / 'compile_cache'))
  assert 'earlier_program-cache' in copied and 'xla_gpu_per_fusion_autotune_cache_dir' in copied
  assert sorted(os.listdir(cache)) == copied
  summary = (out / 'summary.txt').read_text()
  assert 'float32_cb_conv' in summary and f'total ' in summary
  assert 'jax' in (out / 'gpu.txt').read_text()
  if has_profile_dir():   # Once scripts/benchmark.py writes its profile.
    profile = json.loads((out / 'profile_float32_cb_conv.json').read_text())
    assert profile['platform'] == 'host' and profile['kernels'] > 0
    assert profile['steps'] == 5 and profile['note'] == ''
    assert 0 < profile['busy_fraction'] <= 1
    assert 'kernels/step' in summary and str(profile['kernels_per_step']) in summary


def test_a_variant_whose_flags_xla_refuses_is_skipped(tmp_path):
  proc = run('--out', str(tmp_path / 'out'), '--cache_dir', str(tmp_path / 'cache'),
             '--dtypes', 'float32', '--modes', 'cb_default', timeout=300,
             XLA_FLAGS='--xla_gpu_enable_command_buffer=+CONVOLUTIONS', JAX_PLATFORMS='cpu')
  assert proc.returncode == 1, proc.stderr[-2000:]
  refused = [l for l in proc.stdout.splitlines() if l.startswith('the installed XLA refuses')]
  assert len(refused) == 1, proc.stdout
  assert "--xla_gpu_enable_command_buffer=+CONVOLUTIONS" in refused[0]
  assert "Illegal value for --xla_gpu_enable_command_buffer 'CONVOLUTIONS'" in refused[0]
  summary = (tmp_path / 'out' / 'summary.txt').read_text()
  assert 'float32_cb_default skipped: XLA refuses its flags' in summary
  assert not (tmp_path / 'out' / 'benchmark.jsonl').exists()
