"""The exact speed-ups: `Conv` over input parts, rematerialisation, XLA flags."""
import os
import warnings

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hpu_jax import xla_cpu
from hpu_jax.layers import Conv, Part, conv3x3_of_upsampled, up_sample
from hpu_jax.model import build_hpunet


def _apply_both(kernel, parts, reference_input, channels=5):
  """Our Conv over `parts` and hk.Conv2D over the materialised input, with
  the parameters each creates from the same rng (they must be the same)."""

  def ours():
    return Conv(channels, kernel, name='c')(parts)

  def reference():
    return hk.Conv2D(channels, kernel, padding='SAME', name='c',
                     w_init=hk.initializers.Orthogonal(1.0),
                     b_init=hk.initializers.TruncatedNormal(0.001))(reference_input)

  ours_t, ref_t = hk.transform(ours), hk.transform(reference)
  p_ours, p_ref = ours_t.init(jax.random.key(0)), ref_t.init(jax.random.key(0))
  return p_ours, p_ref, ours_t.apply(p_ours, None), ref_t.apply(p_ref, None)


@pytest.mark.parametrize('kernel', [1, 3])
def test_conv_of_parts_equals_conv_of_concatenation(kernel):
  low = jax.random.normal(jax.random.key(1), (2, 4, 4, 3))
  skip = jax.random.normal(jax.random.key(2), (2, 8, 8, 2))
  parts = [Part(low, upsampled=True), Part(skip)]
  full = jnp.concatenate([up_sample(low), skip], axis=-1)
  p_ours, p_ref, y_ours, y_ref = _apply_both(kernel, parts, full)
  # Same parameter names, shapes and initial values as hk.Conv2D.
  assert jax.tree.structure(p_ours) == jax.tree.structure(p_ref)
  for a, b in zip(jax.tree.leaves(p_ours), jax.tree.leaves(p_ref)):
    np.testing.assert_array_equal(a, b)
  assert y_ours.shape == (2, 8, 8, 5)
  np.testing.assert_allclose(y_ours, y_ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('kernel', [1, 3])
def test_shared_part_is_broadcast_to_every_sample(kernel):
  samples, batch = 3, 2
  per_sample = jax.random.normal(jax.random.key(1), (samples * batch, 4, 4, 3))
  shared = jax.random.normal(jax.random.key(2), (batch, 8, 8, 2))
  parts = [Part(per_sample, upsampled=True), Part(shared)]
  tiled = jnp.broadcast_to(shared[None], (samples,) + shared.shape).reshape(
      (samples * batch,) + shared.shape[1:])
  full = jnp.concatenate([up_sample(per_sample), tiled], axis=-1)
  _, _, y_ours, y_ref = _apply_both(kernel, parts, full)
  assert y_ours.shape == (samples * batch, 8, 8, 5)
  np.testing.assert_allclose(y_ours, y_ref, rtol=1e-5, atol=1e-5)


def _plain_conv(x, w):
  return jax.lax.conv_general_dilated(x, w, (1, 1), 'SAME',
                                      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


@pytest.mark.parametrize('shape', [(2, 1, 1, 3), (1, 2, 3, 4), (3, 4, 4, 5), (1, 5, 2, 2)])
def test_subpixel_conv_equals_conv_of_upsampled_input(shape):
  """The 3x3 conv of a nearest-upsampled map, computed at low resolution,
  and its gradients, against the plain conv of the upsampled map."""
  x = jax.random.normal(jax.random.key(1), shape)
  w = jax.random.normal(jax.random.key(2), (3, 3, shape[-1], 6))
  np.testing.assert_allclose(conv3x3_of_upsampled(x, w), _plain_conv(up_sample(x), w),
                             rtol=1e-5, atol=1e-5)
  probe = jax.random.normal(jax.random.key(3), (shape[0], 2 * shape[1], 2 * shape[2], 6))
  grads = lambda f: jax.grad(lambda x, w: jnp.sum(probe * f(x, w)), argnums=(0, 1))(x, w)
  for ours, plain in zip(grads(conv3x3_of_upsampled),
                         grads(lambda x, w: _plain_conv(up_sample(x), w))):
    np.testing.assert_allclose(ours, plain, rtol=1e-4, atol=1e-4)


def test_conv_on_a_one_pixel_map_is_its_centre_tap():
  x = jax.random.normal(jax.random.key(1), (3, 1, 1, 4))
  p_ours, _, y_ours, y_ref = _apply_both(3, x, x)
  np.testing.assert_allclose(y_ours, y_ref, rtol=1e-5, atol=1e-5)
  grad = jax.grad(lambda p: jnp.sum(hk.transform(lambda: Conv(5, 3, name='c')(x)).apply(
      p, None) ** 2))(p_ours)
  # Only the centre tap is used: the others get no gradient, as in the conv.
  w_grad = np.asarray(grad['c']['w'])
  assert np.all(w_grad[[0, 0, 0, 1, 1, 2, 2, 2], [0, 1, 2, 0, 2, 0, 1, 2]] == 0)
  assert np.any(w_grad[1, 1] != 0)


def test_remat_changes_neither_parameters_nor_results():
  kwargs = dict(latent_dims=(1, 1), channels_per_block=(4, 8, 8), convs_per_block=2,
                blocks_per_level=2)
  img = jax.random.uniform(jax.random.key(1), (2, 16, 16, 1))
  seg = (img[..., 0] > 0.5).astype(jnp.int32)
  plain, remat = build_hpunet(**kwargs), build_hpunet(remat=True, **kwargs)
  params = plain.init(jax.random.key(0), seg, img)
  params_remat = remat.init(jax.random.key(0), seg, img)
  assert jax.tree.structure(params) == jax.tree.structure(params_remat)
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(params_remat)):
    np.testing.assert_array_equal(a, b)

  def loss_and_grads(model):
    loss = lambda p: jnp.mean(model.forward(p, jax.random.key(3), seg, img).logits ** 2)
    return jax.jit(jax.value_and_grad(loss))(params)

  (loss, grads), (loss_r, grads_r) = loss_and_grads(plain), loss_and_grads(remat)
  np.testing.assert_allclose(loss, loss_r, rtol=1e-6)
  for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_r)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6 * float(jnp.max(jnp.abs(a))) + 1e-8)


@pytest.fixture
def fresh_xla_cpu(monkeypatch):
  """xla_cpu as in a new process: the backend not started, no flag added yet."""
  monkeypatch.setattr(xla_cpu, '_backend_started', lambda: False)
  monkeypatch.setattr(xla_cpu, '_added', False)
  return xla_cpu


def test_xla_flag_added_when_backend_not_started(fresh_xla_cpu):
  env = {'XLA_FLAGS': '--xla_force_host_platform_device_count=2'}
  assert xla_cpu.configure(env)
  assert env['XLA_FLAGS'] == '--xla_force_host_platform_device_count=2 ' + xla_cpu.FLAG
  assert not xla_cpu.configure(env)  # already there: unchanged.
  assert env['XLA_FLAGS'].count(xla_cpu.FLAG_NAME) == 1


def test_ynnpack_takes_back_only_the_flag_hpu_jax_added(fresh_xla_cpu):
  env = {'XLA_FLAGS': '--xla_force_host_platform_device_count=2'}
  assert xla_cpu.configure(env)                                  # On import: 'eigen'.
  assert xla_cpu.configure(env, convolutions='ynnpack')          # The config's choice.
  assert env['XLA_FLAGS'] == '--xla_force_host_platform_device_count=2'
  assert not xla_cpu.configure(env, convolutions='ynnpack')      # Already so.
  assert xla_cpu.configure(env, convolutions='eigen')            # And back.
  assert env['XLA_FLAGS'].endswith(xla_cpu.FLAG)
  # The same flag set by the user is theirs, whichever the choice.
  xla_cpu._added = False  # pylint: disable=protected-access
  env = {'XLA_FLAGS': xla_cpu.FLAG}
  assert not xla_cpu.configure(env, convolutions='ynnpack')
  assert env['XLA_FLAGS'] == xla_cpu.FLAG


def test_xla_flag_respects_user_and_opt_out(fresh_xla_cpu):
  env = {'XLA_FLAGS': '--xla_cpu_experimental_ynn_fusion_type=individual_convolution'}
  assert not xla_cpu.configure(env)
  assert not xla_cpu.configure(env, convolutions='ynnpack')
  assert env['XLA_FLAGS'] == '--xla_cpu_experimental_ynn_fusion_type=individual_convolution'
  env = {xla_cpu.OPT_OUT: '1'}
  assert not xla_cpu.configure(env)
  assert 'XLA_FLAGS' not in env


def test_cpu_convolutions_is_checked_by_name():
  with pytest.raises(ValueError, match=r"^train\.cpu_convolutions='onednn': expected one of "
                                       r"\('eigen', 'ynnpack'\)"):
    xla_cpu.configure({}, convolutions='onednn')
  from hpu_jax import configuration
  from helpers import tiny_config
  config = tiny_config()
  assert config.train.cpu_convolutions == 'eigen'
  config.train.cpu_convolutions = 'YNNPACK'
  with pytest.raises(ValueError, match=r"^train\.cpu_convolutions='YNNPACK'"):
    configuration.validate(config, num_devices=2)


def test_xla_flag_warns_when_backend_already_running(monkeypatch):
  jax.devices()  # the backend is running in this test process.
  monkeypatch.setattr(xla_cpu, '_added', False)
  env = {}
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    assert not xla_cpu.configure(env)
  assert 'XLA_FLAGS' not in env
  assert any(xla_cpu.FLAG in str(w.message) for w in caught)
  # A choice that changes nothing is not too late.
  monkeypatch.setattr(xla_cpu, '_added', True)
  env = {'XLA_FLAGS': xla_cpu.FLAG}
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    assert not xla_cpu.configure(env, convolutions='eigen')
    assert not xla_cpu.configure(env, convolutions='ynnpack')
  assert [str(w.message).split(':')[0] for w in caught] == [
      "hpu_jax could not set train.cpu_convolutions='ynnpack'"]
  assert env['XLA_FLAGS'] == xla_cpu.FLAG


def test_train_script_applies_cpu_convolutions_before_jax_starts(tmp_path):
  """scripts/train.py in a new process: the config's choice reaches XLA_FLAGS
  in time (the warning above would say it came too late)."""
  import subprocess
  import sys
  from helpers import ROOT, TINY_CONFIG_FILE
  config_file = tmp_path / 'tiny_config.py'
  config_file.write_text(TINY_CONFIG_FILE)
  proc = subprocess.run(
      [sys.executable, os.path.join(ROOT, 'scripts', 'train.py'), '--config', str(config_file),
       '--workdir', str(tmp_path / 'run'), '--config.train.cpu_convolutions=ynnpack',
       '--config.eval.at_end=False'],
      capture_output=True, text=True, cwd=ROOT, timeout=600,
      env={k: v for k, v in os.environ.items() if k not in ('XLA_FLAGS', xla_cpu.OPT_OUT)})
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'could not set' not in proc.stderr, proc.stderr[-3000:]
  assert (tmp_path / 'run' / 'checkpoints').is_dir()


@pytest.mark.parametrize('shape', [(3, 3, 8, 8), (3, 3, 16, 6), (1, 1, 4, 16), (3, 3, 1, 20)])
def test_fast_orthogonal_init_gives_haikus_values(shape):
  """Outside a trace the weights come from scipy's QR (faster to start);
  they must be haiku's Orthogonal values, and under jit haiku's own code."""
  from hpu_jax.layers import _weight_init

  def make(init):
    return hk.transform(lambda: hk.get_parameter('w', shape, jnp.float32, init=init))

  ours = make(_weight_init()).init(jax.random.key(4))['~']['w']
  ref = make(hk.initializers.Orthogonal(scale=1.0)).init(jax.random.key(4))['~']['w']
  np.testing.assert_array_equal(ours, ref)
  traced = jax.jit(make(_weight_init()).init)(jax.random.key(4))['~']['w']
  np.testing.assert_allclose(traced, ref, atol=1e-6)
  flat = np.asarray(ours).reshape(-1, shape[-1])
  gram = flat.T @ flat if flat.shape[0] >= flat.shape[1] else flat @ flat.T
  np.testing.assert_allclose(gram, np.eye(min(flat.shape)), atol=1e-5)
