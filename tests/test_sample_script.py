"""scripts/sample.py and hpu_jax/predict.py: sampling one's own images (8- and
16-bit PNG, .npy; the model's size, cropped, padded) from a workdir or an
exported file; byte-identical .npz for one seed; bad inputs named, with no
partial output, stopping or skipped."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import hpu_jax
from hpu_jax import predict, train
from hpu_jax.image_files import ImageFileError

from helpers import ROOT, tiny_config

SCRIPT = os.path.join(ROOT, 'scripts', 'sample.py')
SIZE = 32


@pytest.fixture(scope='module')
def model(tmp_path_factory):
  """Two steps of the tiny config (32 x 32), and its export."""
  workdir = str(tmp_path_factory.mktemp('run'))
  train.train(tiny_config(num_steps=2), workdir)
  weights = hpu_jax.export(workdir, os.path.join(workdir, 'model.npz'))
  return workdir, weights, hpu_jax.load(weights)


def write_inputs(folder):
  """Good inputs of every kind; returns name -> the image the model should see."""
  rng = np.random.default_rng(0)
  os.makedirs(folder, exist_ok=True)
  seen = {}
  a8 = rng.integers(0, 256, (SIZE, SIZE), dtype=np.uint8)
  Image.fromarray(a8).save(os.path.join(folder, 'a8.png'))
  seen['a8'] = a8 / 255.0
  b16 = rng.integers(0, 65536, (40, 40), dtype=np.uint16)   # Cropped [4:36].
  Image.fromarray(b16).save(os.path.join(folder, 'b16.png'))
  seen['b16'] = b16[4:36, 4:36] / 65535.0
  c = rng.random((20, 20)).astype(np.float32)                # Padded 6 + 6.
  np.save(os.path.join(folder, 'c_float.npy'), c)
  seen['c_float'] = np.pad(c, 6)
  d = rng.integers(0, 65536, (SIZE, 35), dtype=np.uint16)    # Width cropped [1:33].
  np.save(os.path.join(folder, 'd_uint16.npy'), d)
  seen['d_uint16'] = d[:, 1:33] / 65535.0
  e = rng.random((SIZE, SIZE)) < 0.5
  np.save(os.path.join(folder, 'e_bool.npy'), e)
  seen['e_bool'] = e.astype(np.float32)
  return seen


def read_npz(path):
  with np.load(path, allow_pickle=False) as f:
    return {k: f[k] for k in f.files}


def run_script(*args):
  return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                        cwd=ROOT, timeout=300)


def test_the_script_samples_every_kind_of_input(model, tmp_path):
  workdir, weights, run = model
  seen = write_inputs(str(tmp_path / 'in'))
  rgb = str(tmp_path / 'in' / 'rgb.png')
  Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(rgb)
  done = run_script('--weights', weights, '--images_dir', str(tmp_path / 'in'),
                    '--num_samples', '3', '--seed', '0', '--out', str(tmp_path / 'out'),
                    '--skip_bad_images')
  assert done.returncode == 0, done.stderr
  assert f'skipped: {rgb}: an RGB PNG' in done.stdout
  assert f'Wrote {len(seen)} image(s)' in done.stdout and 'skipped 1 bad file' in done.stdout
  assert sorted(os.listdir(tmp_path / 'out')) == sorted(
      f'{n}.{x}' for n in seen for x in ('npz', 'png'))
  assert 'b16.png: 40 x 40 centre-cropped to 32 x 32' in done.stdout
  assert 'c_float.npy: 20 x 20 zero-padded to 32 x 32' in done.stdout
  assert 'a8.png' not in done.stdout   # Nothing done to it, nothing said.
  for name, image in seen.items():
    out = read_npz(str(tmp_path / 'out' / f'{name}.npz'))
    assert out['labels'].shape == (3, SIZE, SIZE) and out['labels'].dtype == np.uint8
    assert set(np.unique(out['labels'])) <= {0, 1}
    assert out['probs'].shape == (3, SIZE, SIZE) and out['probs'].dtype == np.float16
    assert 0 <= out['probs'].min() and out['probs'].max() <= 1
    np.testing.assert_allclose(out['image'], image, atol=1e-6)
    info = json.loads(bytes(out['info']).decode())
    assert (info['seed'], info['mean'], info['num_samples'], info['step']) == (0, 'full', 3, 2)
    assert info['temperature'] == [1.0] * len(run.model.latent_dims)   # the config's default
    with Image.open(str(tmp_path / 'out' / f'{name}.png')) as png:
      assert png.mode == 'RGB' and png.size[0] > 300
  # The same seed in this process, from the workdir this time: the same bytes.
  again = predict.predict(hpu_jax.load(workdir), predict.list_inputs(
      images_dir=str(tmp_path / 'in')), str(tmp_path / 'again'), num_samples=3, seed=0,
      batch_size=2, skip_bad_images=True, echo=lambda s: None)
  assert len(again.written) == len(seen)
  for name in seen:
    with open(tmp_path / 'out' / f'{name}.npz', 'rb') as a, \
        open(tmp_path / 'again' / f'{name}.npz', 'rb') as b:
      assert a.read() == b.read()
  # Another seed: other samples.
  other = predict.predict(run, [str(tmp_path / 'in' / 'a8.png')], str(tmp_path / 'other'),
                          num_samples=3, seed=1, echo=lambda s: None)
  assert not np.array_equal(read_npz(other.written[0])['probs'],
                            read_npz(str(tmp_path / 'out' / 'a8.npz'))['probs'])
  # A temperature from the command line: recorded, and other samples.
  levels = len(run.model.latent_dims)
  cold = run_script('--weights', weights, '--images', str(tmp_path / 'in' / 'a8.png'),
                    '--num_samples', '3', '--temperature', ','.join(['0.01'] * levels),
                    '--out', str(tmp_path / 'cold'))
  assert cold.returncode == 0, cold.stderr
  out = read_npz(str(tmp_path / 'cold' / 'a8.npz'))
  assert json.loads(bytes(out['info']).decode())['temperature'] == [0.01] * levels
  assert not np.array_equal(out['probs'], read_npz(str(tmp_path / 'out' / 'a8.npz'))['probs'])
  for value, words in (('0', 'temperature=(0.0,): expected finite values > 0'),
                       ('warm', '--temperature=warm: expected numbers > 0')):
    bad = run_script('--weights', weights, '--images', str(tmp_path / 'in' / 'a8.png'),
                     '--temperature', value, '--out', str(tmp_path / 'bad'))
    assert bad.returncode == 1 and words in bad.stderr, bad.stderr


def write_bad(folder):
  """Bad inputs; returns file -> the words its error must hold."""
  os.makedirs(folder, exist_ok=True)
  bad = {}

  def add(name, words):
    path = os.path.join(folder, name)
    bad[path] = words
    return path

  with open(add('text.png', 'not a PNG file'), 'w') as f:
    f.write('hello')
  rgb = add('rgb.png', 'an RGB PNG (3 channels)')
  Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(rgb)
  noise = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE), dtype=np.uint8)
  Image.fromarray(noise).save(os.path.join(folder, 'full.png'))
  with open(os.path.join(folder, 'full.png'), 'rb') as f:
    data = f.read()
  with open(add('truncated.png', 'unreadable or truncated PNG'), 'wb') as f:
    f.write(data[:len(data) // 2])
  os.remove(os.path.join(folder, 'full.png'))
  np.save(add('cube.npy', 'an array of 3 dimensions'), np.zeros((2, SIZE, SIZE), np.float32))
  np.save(add('range.npy', 'float values in [0, 2]'), np.linspace(0, 2, SIZE * SIZE).reshape(
      SIZE, SIZE))
  with open(add('notes.txt', "a file of type '.txt'"), 'w') as f:
    f.write('x')
  add('missing.png', 'cannot read the file')
  return bad


def test_each_bad_input_is_named_and_leaves_no_output(model, tmp_path):
  _, _, run = model
  good = str(tmp_path / 'good.png')
  Image.fromarray(np.zeros((SIZE, SIZE), np.uint8)).save(good)
  for path, words in write_bad(str(tmp_path / 'in')).items():
    out = tmp_path / ('out_' + os.path.basename(path))
    with pytest.raises(ImageFileError, match=re.escape(words)) as info:
      predict.predict(run, [good, path], str(out), num_samples=2, echo=lambda s: None)
    assert str(info.value).startswith(path + ':')
    assert sorted(os.listdir(out)) == ['good.npz', 'good.png']   # Only the image before it.


def test_skip_bad_images_reports_and_goes_on(model, tmp_path):
  _, _, run = model
  bad = write_bad(str(tmp_path / 'in'))
  good = str(tmp_path / 'good.png')
  Image.fromarray(np.zeros((SIZE, SIZE), np.uint8)).save(good)
  said = []
  summary = predict.predict(run, [*bad, good], str(tmp_path / 'out'), num_samples=2,
                            skip_bad_images=True, echo=said.append)
  assert [p for p, _ in summary.bad] == list(bad)
  assert sorted(os.listdir(tmp_path / 'out')) == ['good.npz', 'good.png']
  assert all(any(p in line for line in said) for p in bad)


def test_the_script_stops_at_the_first_bad_file(model, tmp_path):
  workdir, _, _ = model
  good = str(tmp_path / 'good.png')
  Image.fromarray(np.zeros((40, 24), np.uint8)).save(good)
  rgb = str(tmp_path / 'rgb.png')
  Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(rgb)
  done = run_script('--workdir', workdir, '--which', 'latest', '--images', good, rgb,
                    '--num_samples', '2', '--out', str(tmp_path / 'out'))
  assert done.returncode == 1
  assert f'error: {rgb}: an RGB PNG (3 channels)' in done.stderr
  assert 'good.png: 40 x 24 centre-cropped in height and zero-padded in width' in done.stdout
  assert sorted(os.listdir(tmp_path / 'out')) == ['good.npz', 'good.png']


def test_weights_names_and_colliding_inputs(tmp_path):
  from hpu_jax import pretrained
  assert predict.resolve_weights('synthetic') == pretrained.path('synthetic')
  assert predict.resolve_weights('lidc_slices_cpu') == pretrained.path('lidc_slices_cpu')
  with pytest.raises(FileNotFoundError, match='neither an existing file nor a known name'):
    predict.resolve_weights('lidc_v9')
  with pytest.raises(FileNotFoundError, match='a folder; expected an .npz'):
    predict.resolve_weights(str(tmp_path))
  with pytest.raises(ValueError, match='distinct file names'):
    predict.list_inputs(['a/x.png', 'b/x.npy'])
  done = run_script('--weights', 'lidc_v9', '--images', 'x.png', '--out',
                    str(tmp_path / 'out'))
  assert done.returncode == 1
  assert 'error: --weights=lidc_v9: neither an existing file nor a known name' \
      in done.stderr
  assert not os.path.exists(tmp_path / 'out')


def test_fitting_to_the_model_size():
  image = np.arange(15, dtype=np.float32).reshape(3, 5)
  fitted, fit = predict.fit_to_size(image, 4)
  assert fitted.shape == (4, 4) and fit == ('3 x 5 zero-padded in height and centre-cropped '
                                            'in width to 4 x 4')
  np.testing.assert_array_equal(fitted[:3], image[:, :4])   # The crop starts at (5 - 4) // 2.
  np.testing.assert_array_equal(fitted[3], 0)               # The odd row of padding at the end.
  same, fit = predict.fit_to_size(image[:3, :3], 3)
  assert fit == '' and np.array_equal(same, image[:3, :3])


def test_a_presence_classifier_sets_the_empty_samples(model, tmp_path):
  """predict with a classifier: reproducible per seed, said in the info;
  the script takes it by file; a classifier of another size is refused."""
  from hpu_jax import presence
  from helpers import constant_classifier
  workdir, weights, run = model
  write_inputs(str(tmp_path / 'in'))
  paths = [str(tmp_path / 'in' / n) for n in ('a8.png', 'c_float.npy')]
  sure = constant_classifier(1e-6, image_size=SIZE)     # "nothing" in every sample
  for out in ('x', 'y'):
    predict.predict(run, paths, str(tmp_path / out), num_samples=4, seed=3, presence=sure,
                    echo=lambda _: None)
  x, y = (read_npz(str(tmp_path / out / 'a8.npz')) for out in ('x', 'y'))
  np.testing.assert_array_equal(x['labels'], y['labels'])
  assert json.loads(bytes(x['info']).decode())['presence'] is True
  with pytest.raises(ValueError, match='a presence classifier of 8 px images'):
    predict.predict(run, paths, str(tmp_path / 'z'), presence=constant_classifier(0.5))
  clf = presence.save(str(tmp_path / 'presence.npz'), constant_classifier(0.5, image_size=SIZE))
  done = run_script('--weights', weights, '--presence', clf, '--images', *paths,
                    '--num_samples', '2', '--out', str(tmp_path / 'script'))
  assert done.returncode == 0, done.stderr
  assert json.loads(bytes(read_npz(str(tmp_path / 'script' / 'a8.npz'))['info']).decode())[
      'presence'] is True
  done = run_script('--weights', weights, '--presence', 'lidc_v9', '--images', *paths,
                    '--out', str(tmp_path / 'bad'))
  assert done.returncode == 1 and '--presence=lidc_v9: neither an existing file' in done.stderr
