"""The training loop on 2 fake CPU devices: one step, exact resume after
SIGKILL, the NaN guard, config validation, load(), evaluation outputs."""
import importlib
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
from PIL import Image

import hpu_jax
from hpu_jax import configuration, evaluate, train
from hpu_jax import workdir as run_dir
from hpu_jax.metric_writer import read_metrics

from helpers import ROOT, tiny_config


def params_of(state):
  return jax.tree.leaves(state.params)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """Four steps of the tiny config, checkpoints at 2 and 4."""
  workdir = str(tmp_path_factory.mktemp('run'))
  config = tiny_config(num_steps=4)
  result = train.train(config, workdir)
  return config, workdir, result


def test_training_runs_on_two_devices_and_writes_its_outputs(trained):
  config, workdir, result = trained
  assert jax.local_device_count() == 2
  assert int(result.state.step) == 4
  records = read_metrics(workdir)
  assert [r['step'] for r in records] == [1, 2, 3, 4]
  assert {'train/loss', 'train/kl_sum', 'perf/examples_per_s'} <= set(records[0])
  assert all(np.isfinite(r['train/loss']) for r in records)
  assert os.listdir(os.path.join(workdir, 'tensorboard'))
  with open(os.path.join(workdir, 'config.json')) as f:
    assert json.load(f)['train']['num_steps'] == 4
  assert sorted(int(s) for s in os.listdir(os.path.join(workdir, 'checkpoints'))) == [2, 4]
  fresh = train.create_train_state(
      configuration.build_model(config.model), configuration.optimizer(config.train),
      jax.random.key(0), (1, 32, 32, 1))
  changed = [not np.array_equal(a, b) for a, b in zip(params_of(fresh), params_of(result.state))]
  assert any(changed)


def test_load_returns_params_ready_for_the_sampler(trained):
  config, workdir, result = trained
  run = hpu_jax.load(workdir)
  assert run.step == 4 and run.config.train.num_steps == 4
  for a, b in zip(jax.tree.leaves(run.params), jax.tree.leaves(result.state.params['model'])):
    np.testing.assert_array_equal(a, b)
  out = run.sample(run.params, jax.random.key(0), np.zeros((2, 32, 32, 1), np.float32),
                   num_samples=3, mean='local')
  assert out.labels.shape == (3, 2, 32, 32)
  with pytest.raises(FileNotFoundError, match='config.json'):
    hpu_jax.load(os.path.join(workdir, 'checkpoints'))


def test_evaluation_writes_a_report_and_readable_pictures(trained, tmp_path):
  config, workdir, result = trained
  report = evaluate.evaluate_config(config, result.state.params['model'], workdir=workdir,
                                    step=4, out_dir=str(tmp_path))
  with open(tmp_path / 'report.json') as f:
    saved = json.load(f)
  metrics = saved['metrics']
  for name in ('ged2', 'ged4', 'hm_iou2', 'hm_iou4', 'oracle_ged2', 'oracle_ged4',
               'mode_tv', 'oracle_mode_tv', 'ged4_fresh'):
    assert name in metrics and np.isfinite(metrics[name]), name
  assert 0 <= metrics['hm_iou4'] <= 1 and 0 <= metrics['mode_tv'] <= 1
  assert saved['num_samples'] == [2, 4] and saved['split'] == 'validation'
  assert saved['checkpoint_step'] == 4 and saved['num_examples'] == 4
  assert 'distance' in saved['conventions'] and 'mode_tv' in saved['conventions']
  assert set(saved['by_sampling_mode']) == {'local', 'global'}
  assert report['metrics'] == pytest.approx(metrics, nan_ok=True)
  with Image.open(tmp_path / 'samples_grid.png') as im:
    assert im.size[0] > 200
  with Image.open(tmp_path / 'samples_by_mode.gif') as im:
    assert im.n_frames == config.eval.gif_frames


KILLER = textwrap.dedent('''
    import os, signal, sys
    os.environ['XLA_FLAGS'] = '--xla_force_host_platform_device_count=2'
    sys.path.insert(0, {tests!r})
    from helpers import tiny_config
    from hpu_jax import train

    def die(step):
      if step == 2:
        os.kill(os.getpid(), signal.SIGKILL)

    train.train(tiny_config(num_steps=4), {workdir!r}, on_checkpoint=die)
''')


def test_resume_after_sigkill_gives_identical_parameters(trained, tmp_path):
  _, _, uninterrupted = trained
  workdir = str(tmp_path / 'killed')
  script = KILLER.format(tests=os.path.join(ROOT, 'tests'), workdir=workdir)
  proc = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                        timeout=600)
  assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
  assert os.listdir(os.path.join(workdir, 'checkpoints')) == ['2']
  resumed = train.train(tiny_config(num_steps=4), workdir)
  assert int(resumed.state.step) == 4
  for a, b in zip(jax.tree.leaves(uninterrupted.state), jax.tree.leaves(resumed.state)):
    np.testing.assert_array_equal(np.asarray(jax.random.key_data(a) if jnp.issubdtype(
        a.dtype, jax.dtypes.prng_key) else a), np.asarray(jax.random.key_data(b) if
        jnp.issubdtype(b.dtype, jax.dtypes.prng_key) else b))
  assert [r['step'] for r in read_metrics(workdir)] == [1, 2, 3, 4]


def test_a_non_finite_loss_stops_with_the_step_and_term(tmp_path, monkeypatch):
  original = train.make_train_step

  def poisoned(*args, **kwargs):
    step_fn = original(*args, **kwargs)

    def step(state, images, labels):
      new_state, metrics = step_fn(state, images, labels)
      metrics = dict(metrics, kl_sum=jnp.where(new_state.step >= 3, jnp.nan, metrics['kl_sum']))
      return new_state, metrics
    return step

  monkeypatch.setattr(train, 'make_train_step', poisoned)
  workdir = str(tmp_path / 'nan')
  with pytest.raises(train.NonFiniteLossError, match=r'step 3: kl_sum = nan.*step 2'):
    train.train(tiny_config(num_steps=4), workdir)
  ckpt = run_dir.latest_checkpoints(workdir)
  assert ckpt.steps() == [2]
  run = hpu_jax.load(workdir)
  assert run.step == 2
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(run.params))


SHIPPED_CONFIGS = sorted(
    name[:-3] for name in os.listdir(os.path.join(ROOT, 'configs'))
    if name.endswith('.py') and name not in ('__init__.py', 'base.py'))


@pytest.mark.parametrize('name', SHIPPED_CONFIGS)
def test_every_shipped_config_validates_and_gives_its_command(name):
  """Each configs/<name>.py passes the checks train() runs before building
  anything, and its docstring holds the command that runs it."""
  module = importlib.import_module(f'configs.{name}')
  configuration.validate(module.get_config(), num_devices=1)
  assert f'python scripts/train.py --config configs/{name}.py' in module.__doc__


@pytest.mark.parametrize('field, value, match', [
    ('train.batch_size', 3, 'batch_size=3 is not divisible by the 2 devices'),
    ('data.name', 'cityscapes', "data.name='cityscapes'"),
    ('train.num_steps', 0, 'train.num_steps=0'),
    ('data.image_size', 36, 'not divisible by 2'),
    ('eval.num_samples', (), 'eval.num_samples'),
    ('loss.loss_type', 'mse', 'mse'),
    ('train.time_limit_minutes', -1.0, 'time_limit_minutes=-1.0'),
    ('data.num_threads', 0, 'data.num_threads=0'),
    ('train.learning_rate', float('inf'), 'train.learning_rate=inf: expected a positive, finite'),
    ('train.learning_rate', float('nan'), 'train.learning_rate=nan'),
])
def test_invalid_configs_fail_before_anything_is_built(tmp_path, field, value, match):
  config = tiny_config()
  config.model.channels_per_block = (4, 8, 8, 8)   # 4 levels: image size % 8.
  config.model.latent_dims = (1, 1)
  section, key = field.split('.')
  config[section][key] = value
  with pytest.raises(ValueError, match=match):
    train.train(config, str(tmp_path / 'bad'))
  assert not os.path.exists(tmp_path / 'bad' / 'checkpoints')


def test_a_time_limit_stops_at_a_saved_step(tmp_path):
  """Stops at the first step past the time limit with a checkpoint there (a rerun
  resumes from it like any other; resuming is tested above)."""
  workdir = str(tmp_path / 'limited')
  config = tiny_config(num_steps=4)
  config.train.time_limit_minutes = 1e-9     # Past after the first step.
  first = train.train(config, workdir)
  assert int(first.state.step) == 1
  assert run_dir.latest_checkpoints(workdir).steps() == [1]
  assert [r['step'] for r in read_metrics(workdir)] == [1]
  run = hpu_jax.load(workdir)
  assert run.step == 1


def test_a_time_limit_is_refused_for_several_hosts():
  config = tiny_config()
  config.train.time_limit_minutes = 5.0
  with pytest.raises(ValueError, match='time_limit_minutes=5.0 with 2 hosts'):
    configuration.validate(config, num_devices=2, host_count=2)


def test_a_lidc_config_without_its_data_stops_naming_the_field(tmp_path):
  """No default path outside the repository: a LIDC config with data.dir
  empty and nothing prepared stops before anything is written or compiled,
  naming --config.data.dir and where the format's files come from."""
  from configs import lidc_slices_cpu
  config = lidc_slices_cpu.get_config()
  assert config.data.dir == ''
  config.data.prepared_dir = str(tmp_path / 'prepared')
  from hpu_jax.data import lidc
  with pytest.raises(lidc.LidcNotPreparedError,
                     match=r'(?s)--config\.data\.dir is empty.*lidc_slices.*not prepared'):
    train.train(config, str(tmp_path / 'run'))
  assert not os.path.exists(tmp_path / 'run')
