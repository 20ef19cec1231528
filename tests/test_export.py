"""Export and load: one small .npz of a trained model, loaded like a workdir
(identical params and samples), deterministic, and refused with the file named
when it is another kind of file, of a newer format, or changed."""
import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

import hpu_jax
from hpu_jax import export_file, npz_file, train

from helpers import ROOT, tiny_config


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
  """Two steps of the tiny config, exported."""
  workdir = str(tmp_path_factory.mktemp('run'))
  train.train(tiny_config(num_steps=2), workdir)
  path = hpu_jax.export(workdir, os.path.join(workdir, 'model.npz'))
  return workdir, path


def members(path):
  with np.load(path, allow_pickle=False) as npz:
    return {name: npz[name] for name in npz.files}


def rewrite(path, out, change):
  """Copies the export at `path` to `out` with `change(arrays)` applied."""
  arrays = members(path)
  change(arrays)
  return npz_file.write_npz(out, arrays, compress=False)


def text_of(array):
  return bytes(array).decode()


def as_text(text):
  return np.frombuffer(text.encode(), np.uint8)


def images():
  return np.random.default_rng(0).random((2, 32, 32, 1)).astype(np.float32)


def test_a_file_loads_as_the_workdir_does(exported):
  workdir, path = exported
  a, b = hpu_jax.load(workdir), hpu_jax.load(path)
  assert a.step == b.step == 2
  assert jax.tree.structure(a.params) == jax.tree.structure(b.params)
  for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
    assert x.dtype == y.dtype and np.array_equal(x, y)
  assert a.config.to_dict() == b.config.to_dict()
  sa = a.sample(a.params, jax.random.key(0), images(), num_samples=3)
  sb = b.sample(b.params, jax.random.key(0), images(), num_samples=3)
  np.testing.assert_array_equal(np.asarray(sa.labels), np.asarray(sb.labels))
  np.testing.assert_array_equal(np.asarray(sa.probs), np.asarray(sb.probs))


def test_the_file_is_small_and_holds_only_the_model(exported):
  workdir, path = exported
  checkpoint = os.path.join(workdir, 'checkpoints', '2')
  checkpoint_bytes = sum(os.path.getsize(os.path.join(d, f))
                         for d, _, files in os.walk(checkpoint) for f in files)
  assert os.path.getsize(path) < 0.5 * checkpoint_bytes
  names = members(path)
  assert set(names) - {'meta.json', 'config.json'} == {
      n for n in names if n.startswith('params/')}
  assert not any('opt' in n or 'lagmul' in n or 'geco' in n for n in names)
  assert 'params/hpunet/~/f_comb/logits/w' in names


def test_the_metadata_says_what_the_file_is(exported, tmp_path):
  workdir, path = exported
  meta = json.loads(text_of(members(path)['meta.json']))
  assert (meta['format'], meta['version'], meta['step']) == ('hpu_jax.export', 1, 2)
  assert meta['data']['name'] == 'synthetic'
  assert meta['data']['split']['seed'] == 0 and meta['data']['split']['num_train'] == 16
  assert meta['evaluation'] is None   # No report.json in this workdir.
  assert {'hpu_jax', 'jax', 'dm-haiku', 'numpy'} <= set(meta['versions'])
  assert len(meta['sha256']) == 64
  # With a report, its metrics, split and N travel with the file.
  report = {'split': 'validation', 'num_examples': 4, 'num_samples': [2, 4],
            'checkpoint_step': 2, 'metrics': {'ged2': 0.5}}
  with open(os.path.join(workdir, 'report.json'), 'w') as f:
    json.dump(report, f)
  try:
    other = hpu_jax.export(workdir, str(tmp_path / 'with_report.npz'))
  finally:
    os.remove(os.path.join(workdir, 'report.json'))
  assert hpu_jax.load(other).meta['evaluation']['metrics'] == {'ged2': 0.5}
  # Reports given explicitly (e.g. the test split) join, if they scored this step.
  test_report = str(tmp_path / 'test_report.json')
  with open(test_report, 'w') as f:
    json.dump(dict(report, split='test', metrics={'ged2': 0.6}), f)
  other = hpu_jax.export(workdir, str(tmp_path / 'with_test.npz'), reports=[test_report])
  meta = hpu_jax.load(other).meta
  assert [e['split'] for e in meta['evaluations']] == ['test']
  assert meta['evaluation']['metrics'] == {'ged2': 0.6}
  with open(test_report, 'w') as f:
    json.dump(dict(report, checkpoint_step=1), f)
  with pytest.raises(ValueError, match='test_report.json: scores checkpoint step 1; '
                                       'expected the exported step 2'):
    hpu_jax.export(workdir, str(tmp_path / 'mismatch.npz'), reports=[test_report])
  # A workdir report of another checkpoint (the final one, for a best export) stays out.
  with open(os.path.join(workdir, 'report.json'), 'w') as f:
    json.dump(dict(report, checkpoint_step=7), f)
  try:
    other = hpu_jax.export(workdir, str(tmp_path / 'stale_report.npz'))
  finally:
    os.remove(os.path.join(workdir, 'report.json'))
  assert hpu_jax.load(other).meta['evaluations'] == []


def test_the_training_machines_paths_stay_out_of_the_file(exported, tmp_path):
  workdir = str(tmp_path / 'run')
  shutil.copytree(exported[0], workdir)
  with open(os.path.join(workdir, 'config.json')) as f:
    config = json.load(f)
  mine = {('data', 'dir'): '/home/someone/LIDC-IDRI-slices',
          ('data', 'prepared_dir'): '/scratch/tfds',
          ('train', 'compilation_cache_dir'): '/scratch/jax_cache',
          ('train', 'coordinator_address'): '10.0.0.1:1234'}
  assert set(mine) == set(export_file.MACHINE_FIELDS)
  for (section, field), value in mine.items():
    config[section][field] = value
  with open(os.path.join(workdir, 'config.json'), 'w') as f:
    json.dump(config, f)
  path = hpu_jax.export(workdir, str(tmp_path / 'model.npz'))
  written = json.loads(text_of(members(path)['config.json']))
  for (section, field), default in export_file.MACHINE_FIELDS.items():
    assert written[section][field] == default
    written[section][field] = config[section][field]
  assert written == config                      # Nothing else changed.
  assert '/scratch' not in text_of(members(path)['meta.json'])


def test_exporting_twice_gives_the_same_bytes(exported, tmp_path):
  workdir, path = exported
  again = hpu_jax.export(workdir, str(tmp_path / 'again.npz'))
  with open(path, 'rb') as a, open(again, 'rb') as b:
    assert a.read() == b.read()
  assert not [n for n in os.listdir(tmp_path) if n.endswith('.tmp')]


def test_which_and_step_do_not_apply_to_a_file(exported):
  _, path = exported
  with pytest.raises(ValueError, match='holds one checkpoint'):
    hpu_jax.load(path, which='best')
  with pytest.raises(FileNotFoundError, match='no such workdir or file'):
    hpu_jax.load(path + '.missing')


def _recompute_digest(arrays):
  meta = json.loads(text_of(arrays['meta.json']))
  params = {k: v for k, v in arrays.items() if k.startswith('params/')}
  meta['sha256'] = export_file.digest(params, text_of(arrays['config.json']))
  arrays['meta.json'] = as_text(json.dumps(meta))


def _set_meta(**fields):
  def change(arrays):
    meta = json.loads(text_of(arrays['meta.json']))
    meta.update(fields)
    arrays['meta.json'] = as_text(json.dumps(meta))
  return change


def _flip_a_byte(arrays):
  w = arrays['params/hpunet/~/f_comb/logits/w'].copy()
  w.view(np.uint8).reshape(-1)[0] ^= 1
  arrays['params/hpunet/~/f_comb/logits/w'] = w


def _remove_an_array(arrays):
  del arrays['params/hpunet/~/f_comb/logits/b']


def _add_an_array(arrays):
  arrays['params/hpunet/~/f_comb/extra/w'] = np.zeros(3, np.float32)


def _change_config(arrays, redigest=False):
  config = json.loads(text_of(arrays['config.json']))
  config['model']['channels_per_block'] = [8, 16]
  arrays['config.json'] = as_text(json.dumps(config))
  if redigest:
    _recompute_digest(arrays)


@pytest.mark.parametrize('change, match', [
    (_set_meta(format='something.else'), "names format 'something.else'"),
    (_set_meta(version=2), 'format version 2, newer than this hpu_jax reads'),
    (_flip_a_byte, 'sha256 .* differs'),
    (_remove_an_array, 'array params/hpunet/~/f_comb/logits/b is missing'),
    (_add_an_array, 'params/hpunet/~/f_comb/extra/w is not in the list'),
    (_change_config, 'sha256 .* differs'),
    (lambda a: _change_config(a, redigest=True), 'is float32\\[.*\\] but its config builds'),
], ids=['other-format', 'future-version', 'tampered-bytes', 'removed-array', 'extra-array',
        'changed-config', 'changed-config-and-digest'])
def test_a_changed_file_is_refused_naming_it(exported, tmp_path, change, match):
  _, path = exported
  bad = rewrite(path, str(tmp_path / 'bad.npz'), change)
  with pytest.raises(export_file.ExportError, match=match) as info:
    hpu_jax.load(bad)
  assert str(info.value).startswith(bad + ':')


def test_other_kinds_of_file_are_refused_naming_them(tmp_path):
  text = tmp_path / 'notes.txt'
  text.write_text('not a model\n')
  plain = str(tmp_path / 'plain.npz')
  np.savez(plain, weights=np.zeros(3))
  pickled = str(tmp_path / 'pickled.npz')
  np.savez(pickled, **{'meta.json': np.array([{'format': 'hpu_jax.export'}], dtype=object)})
  cases = [(str(text), 'not an .npz file'), (plain, 'without the meta.json marker'),
           (pickled, 'meta.json cannot be read without pickle')]
  for path, match in cases:
    with pytest.raises(export_file.ExportError, match=match) as info:
      hpu_jax.load(path)
    assert str(info.value).startswith(path + ':')


def test_the_export_script_end_to_end(exported, tmp_path):
  workdir, path = exported
  out = str(tmp_path / 'cli.npz')
  script = os.path.join(ROOT, 'scripts', 'export.py')
  done = subprocess.run([sys.executable, script, '--workdir', workdir, '--out', out],
                        capture_output=True, text=True, cwd=ROOT, timeout=300)
  assert done.returncode == 0, done.stderr
  assert f'Wrote {out}' in done.stdout and 'step 2' in done.stdout
  with open(path, 'rb') as a, open(out, 'rb') as b:
    assert a.read() == b.read()
  missing = str(tmp_path / 'no_run')
  done = subprocess.run([sys.executable, script, '--workdir', missing, '--out', out],
                        capture_output=True, text=True, cwd=ROOT, timeout=300)
  assert done.returncode == 1 and f'error: {missing}' in done.stderr
