"""LIDC builders: the three formats prepared end to end (tiny data written
with Pillow / pickle in tmp_path) and read back; the split; bad input."""

from __future__ import annotations

import os
import pickle
import tarfile

import numpy as np
import pytest
from PIL import Image

from hpu_jax.data import lidc
from hpu_jax.data.lidc import crops
from hpu_jax.data.lidc import errors
from hpu_jax.data.lidc import files

RNG_SEED = 1234


# ---------------------------------------------------------------------------
# Writers for the three formats
# ---------------------------------------------------------------------------


def write_png(path, array):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(np.asarray(array, np.uint8)).save(path)


def example_arrays(rng, size, n_marked):
  """An image and 4 masks (0/1) where the first `n_marked` raters marked."""
  image = rng.integers(0, 256, size, dtype=np.uint8)
  masks = np.zeros((4,) + size, np.uint8)
  for k in range(n_marked):
    top = int(rng.integers(0, size[0] - 20))
    masks[k, top:top + 10 + k, 5:25] = 1
  return image, masks


def make_slices(root, patients=('LIDC-IDRI-0001', 'LIDC-IDRI-0002',
                                'LIDC-IDRI-0003', 'LIDC-IDRI-0004'),
                nodules=2, slices=2, seed=RNG_SEED):
  """Writes <root>/LIDC-IDRI-slices/...; returns id -> (patient, image, masks)."""
  rng = np.random.default_rng(seed)
  expected = {}
  i = 0
  for patient in patients:
    for n in range(1, nodules + 1):
      for s in range(slices):
        image, masks = example_arrays(rng, (128, 128), i % 5)
        i += 1
        d = os.path.join(root, 'LIDC-IDRI-slices', patient, f'nodule-{n}')
        write_png(os.path.join(d, 'images', f'slice-{s}.png'), image)
        for k in range(4):
          write_png(os.path.join(d, f'mask-{k}', f'slice-{s}.png'),
                    masks[k] * 255)
        expected[f'{patient}/nodule-{n}/slice-{s}'] = (patient, image, masks)
  return expected


def slice_file(root, patient, kind, nodule=1, slice_=0):
  return os.path.join(root, 'LIDC-IDRI-slices', patient, f'nodule-{nodule}',
                      kind, f'slice-{slice_}.png')


def make_tar(src_dir, tar_path, arcname):
  with tarfile.open(tar_path, 'w:gz') as tar:
    tar.add(src_dir, arcname=arcname)
  return tar_path


CROP_SPLITS = {'train': ('p-tr1', 'p-tr2'), 'val': ('p-va1',),
               'test': ('p-te1',)}


def make_crops(root, base=0, archives=True, crops_per_patient=2,
               seed=RNG_SEED, flat=False):
  """DeepMind layout: train/val/test with images/ and gt/ (archived or not).

  Returns split name -> {id: (patient, image, masks)}.
  """
  rng = np.random.default_rng(seed)
  expected = {}
  os.makedirs(root, exist_ok=True)
  i = 0
  for split, patients in CROP_SPLITS.items():
    split_dir = os.path.join(root, f'{split}_src' if archives else split)
    exp = {}
    for patient in patients:
      for c in range(crops_per_patient):
        image, masks = example_arrays(rng, (180, 180), i % 5)
        i += 1
        stem = f'z-{100.5 + c}_c{c}'
        write_png(os.path.join(split_dir, 'images', patient, f'{stem}.png'),
                  image)
        for k in range(4):
          write_png(os.path.join(split_dir, 'gt', patient,
                                 f'{stem}_l{k + base}.png'), masks[k] * 255)
        exp[f'{patient}/{stem}'] = (patient, image, masks)
    expected[split] = exp
    if archives:
      # As in the release: a directory holding images/ and gt/.
      make_tar(split_dir, os.path.join(root, f'{split}.tar.gz'),
               '.' if flat else split)
      import shutil
      shutil.rmtree(split_dir)
  return expected


def make_pickle_entries(n_series=4, slices=3, seed=RNG_SEED, float_images=True):
  rng = np.random.default_rng(seed)
  data, expected = {}, {}
  i = 0
  for s in range(n_series):
    uid = f'1.3.6.1.4.1.14519.5.2.1.6279.6001.{1000 + s}'
    for k in range(slices):
      image, masks = example_arrays(rng, (128, 128), i % 5)
      i += 1
      key = f'LIDC-IDRI-{s + 1:04d}_slice{k}'
      if float_images:
        stored = (image.astype(np.float32) / 255.0).astype(np.float32)
      else:
        stored = image
      data[key] = {'image': stored, 'masks': [m.copy() for m in masks],
                   'series_uid': uid}
      expected[key] = (uid, image, masks)
  return data, expected


def write_pickle(path, obj):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'wb') as f:
    pickle.dump(obj, f)
  return path


def read_all(fmt, data_dir):
  out = {}
  for split in lidc.SPLITS:
    try:
      src = lidc.load_source(fmt, data_dir, split)
    except ValueError:
      continue
    out[split] = [src[i] for i in range(len(src))]
  return out


def check_examples(read, expected, size):
  """Every read example equals the one written; returns the ids read."""
  seen = set()
  for examples in read.values():
    for ex in examples:
      assert isinstance(ex['id'], str) and isinstance(ex['patient'], str)
      assert ex['image'].dtype == np.uint8 and ex['image'].shape == size
      assert ex['masks'].dtype == np.uint8
      assert ex['masks'].shape == (4,) + size
      assert set(np.unique(ex['masks'])) <= {0, 1}
      patient, image, masks = expected[ex['id']]
      assert ex['patient'] == patient
      np.testing.assert_array_equal(ex['image'], image)
      np.testing.assert_array_equal(ex['masks'], masks)
      assert ex['id'] not in seen
      seen.add(ex['id'])
  assert seen == set(expected)
  return seen


def patients_by_split(read):
  return {s: {ex['patient'] for ex in exs} for s, exs in read.items()}


def assert_disjoint(by_split):
  splits = list(by_split)
  for i, a in enumerate(splits):
    for b in splits[i + 1:]:
      assert not by_split[a] & by_split[b], (a, b)


def prepare_error(fmt, manual_dir, data_dir, **kw):
  with pytest.raises(lidc.LidcDataError) as info:
    lidc.prepare(fmt, manual_dir, data_dir, **kw)
  return str(info.value)


# ---------------------------------------------------------------------------
# The split rule
# ---------------------------------------------------------------------------


def test_split_patients_rule():
  ids = [f'LIDC-IDRI-{i:04d}' for i in range(1, 701)]
  split = lidc.split_patients(ids)
  assert {k: len(v) for k, v in split.items()} == {
      'train': 490, 'validation': 105, 'test': 105}
  assert sorted(sum(split.values(), [])) == sorted(ids)
  assert_disjoint({k: set(v) for k, v in split.items()})
  # Deterministic, independent of input order and duplicates.
  assert lidc.split_patients(list(reversed(ids)) + ids[:5]) == split
  # Small sets still get one patient in validation and test.
  small = lidc.split_patients(['a', 'b', 'c'])
  assert sorted(len(v) for v in small.values()) == [1, 1, 1]
  with pytest.raises(lidc.LidcDataError, match='at least 3 patients'):
    lidc.split_patients(['a', 'b'])
  # A patient's rank depends on it alone: removing others keeps the relative
  # order, so the test split of a superset starts from the same tail.
  sub = lidc.split_patients(ids[:100])
  assert len(sub['train']) == 70 and len(sub['test']) == 15


# ---------------------------------------------------------------------------
# LIDC-IDRI slices
# ---------------------------------------------------------------------------


def test_slices_folder_end_to_end(tmp_path):
  raw = tmp_path / 'raw'
  expected = make_slices(str(raw))
  report = lidc.prepare('lidc_slices', raw, tmp_path / 'data')
  assert not report.already_prepared
  assert report.num_examples == len(expected) == 16
  assert report.num_patients == 4
  assert report.split_sizes == {'train': 8, 'validation': 4, 'test': 4}
  assert report.patients == {'train': 2, 'validation': 1, 'test': 1}
  assert report.num_bad == 0
  read = read_all('lidc_slices', tmp_path / 'data')
  check_examples(read, expected, (128, 128))
  by_split = patients_by_split(read)
  assert_disjoint(by_split)
  assert {k: sorted(v) for k, v in by_split.items()} == report.split_patients
  # The split is the documented rule applied to the patient ids.
  assert report.split_patients == lidc.split_patients(
      [p for p, _, _ in expected.values()])
  # Raters-marking counts agree with the masks written.
  want = {k: 0 for k in range(5)}
  for _, _, masks in expected.values():
    want[int(masks.reshape(4, -1).any(1).sum())] += 1
  assert report.raters_marking_total == want
  # Examples are stored in natural order within a split.
  ids = [ex['id'] for ex in read['train']]
  assert ids == sorted(ids, key=files.natural_key)
  # A second prepare is a no-op that reports the same.
  again = lidc.prepare('lidc_slices', raw, tmp_path / 'data')
  assert again.already_prepared and again.split_sizes == report.split_sizes


def test_slices_archive_matches_folder_and_is_deterministic(tmp_path):
  raw = tmp_path / 'raw'
  expected = make_slices(str(raw), patients=[f'LIDC-IDRI-{i:04d}'
                                             for i in (3, 7, 12, 21, 40)],
                         nodules=1, slices=2)
  holder = tmp_path / 'holder'   # like a folder holding the downloaded archive
  holder.mkdir()
  make_tar(raw / 'LIDC-IDRI-slices', holder / 'lidc-slices.tar.gz',
           'LIDC-IDRI-slices')
  (holder / 'README.md').write_text('not data')
  r_dir = lidc.prepare('lidc_slices', raw, tmp_path / 'd1')
  r_tar = lidc.prepare('lidc_slices', holder, tmp_path / 'd2')
  r_tar_file = lidc.prepare('lidc_slices', holder / 'lidc-slices.tar.gz',
                            tmp_path / 'd3')
  assert r_dir.split_patients == r_tar.split_patients == \
      r_tar_file.split_patients
  assert r_dir.split_sizes == r_tar.split_sizes == r_tar_file.split_sizes
  read_dir = read_all('lidc_slices', tmp_path / 'd1')
  read_tar = read_all('lidc_slices', tmp_path / 'd2')
  check_examples(read_tar, expected, (128, 128))
  for split in read_dir:
    assert [e['id'] for e in read_dir[split]] == \
        [e['id'] for e in read_tar[split]]
  assert 'lidc-slices.tar.gz' in r_tar.source


def test_load_source_interface(tmp_path):
  raw = tmp_path / 'raw'
  make_slices(str(raw), nodules=1, slices=1)
  with pytest.raises(lidc.LidcNotPreparedError) as info:
    lidc.load_source('lidc_slices', tmp_path / 'data', 'train')
  msg = str(info.value)
  assert str(tmp_path / 'data') in msg and 'prepare_data.py' in msg
  assert '--format lidc_slices' in msg
  lidc.prepare('lidc_slices', raw, tmp_path / 'data')
  src = lidc.load_source('lidc_slices', tmp_path / 'data', 'train')
  assert len(src) == 2
  batch = src.__getitems__([1, 0])
  assert [b['id'] for b in batch] == [src[1]['id'], src[0]['id']]
  assert src[-1]['id'] == src[1]['id']
  with pytest.raises(IndexError):
    src[2]
  assert [e['id'] for e in src] == [src[0]['id'], src[1]['id']]
  clone = pickle.loads(pickle.dumps(src))   # for multi-process pipelines
  np.testing.assert_array_equal(clone[0]['masks'], src[0]['masks'])
  with pytest.raises(ValueError, match='no split'):
    lidc.load_source('lidc_slices', tmp_path / 'data', 'training')
  with pytest.raises(ValueError, match='unknown LIDC format'):
    lidc.load_source('lidc_v3', tmp_path / 'data', 'train')


@pytest.mark.parametrize('fmt,source', [
    ('lidc_slices', '"LIDC-IDRI slices"'),
    ('lidc_crops', 'gs://hpunet-data/lidc_crops/'),
    ('lidc_pickle', 'data_lidc.pickle'),
])
def test_missing_data_message(fmt, source):
  """Says --config.data.dir is empty, where the format's files come from and
  how to pass them (a placeholder path, no path of this machine)."""
  msg = lidc.missing_data_message(fmt)
  assert '--config.data.dir is empty' in msg
  assert source in msg and fmt in msg
  assert '--config.data.dir=/path/to/' in msg
  assert all(other not in msg for other in lidc.FORMATS if other != fmt)
  if fmt == 'lidc_slices':
    assert 'LIDC-IDRI-XXXX/nodule-N/images/slice-K.png' in msg
    assert 'mask-0 .. mask-3' in msg
  if fmt == 'lidc_crops':
    assert 'train.tar.gz' in msg and 'test.tar.gz' in msg
  with pytest.raises(ValueError, match='unknown LIDC format'):
    lidc.missing_data_message('lidc_v3')


# -- bad input: slices ------------------------------------------------------


def small_slices(tmp_path):
  raw = tmp_path / 'raw'
  make_slices(str(raw), patients=('LIDC-IDRI-0001', 'LIDC-IDRI-0002',
                                  'LIDC-IDRI-0003'), nodules=1, slices=2)
  return raw


def test_bad_truncated_png(tmp_path):
  raw = small_slices(tmp_path)
  path = slice_file(raw, 'LIDC-IDRI-0002', 'images', slice_=1)
  data = open(path, 'rb').read()
  open(path, 'wb').write(data[:len(data) // 2])
  msg = prepare_error('lidc_slices', raw, tmp_path / 'data')
  assert path in msg
  assert 'truncated' in msg and 'expected a complete 8-bit grayscale PNG' in msg
  assert not lidc.is_prepared(lidc.builder('lidc_slices', None,
                                           tmp_path / 'data'))


def test_bad_not_a_png(tmp_path):
  raw = small_slices(tmp_path)
  path = slice_file(raw, 'LIDC-IDRI-0003', 'mask-1')
  open(path, 'wb').write(b'this is not an image')
  msg = prepare_error('lidc_slices', raw, tmp_path / 'data')
  assert path in msg and 'not a PNG' in msg and 'expected' in msg


def test_bad_missing_mask(tmp_path):
  raw = small_slices(tmp_path)
  path = slice_file(raw, 'LIDC-IDRI-0001', 'mask-2', slice_=1)
  os.remove(path)
  msg = prepare_error('lidc_slices', raw, tmp_path / 'data')
  assert path in msg
  assert 'annotation file missing' in msg and 'mask-0 .. mask-3' in msg


def test_bad_image_size(tmp_path):
  raw = small_slices(tmp_path)
  path = slice_file(raw, 'LIDC-IDRI-0001', 'images')
  write_png(path, np.zeros((100, 128), np.uint8))
  msg = prepare_error('lidc_slices', raw, tmp_path / 'data')
  assert path in msg and 'image is 100 x 128' in msg
  assert 'expected 128 x 128' in msg


def test_bad_mask_size_vs_image(tmp_path):
  raw = small_slices(tmp_path)
  path = slice_file(raw, 'LIDC-IDRI-0002', 'mask-3')
  write_png(path, np.zeros((128, 120), np.uint8))
  msg = prepare_error('lidc_slices', raw, tmp_path / 'data')
  assert path in msg and 'mask is 128 x 120' in msg
  assert 'the size of its image' in msg


def test_bad_mask_values(tmp_path):
  raw = small_slices(tmp_path)
  path = slice_file(raw, 'LIDC-IDRI-0003', 'mask-0', slice_=1)
  mask = np.zeros((128, 128), np.uint8)
  mask[3:9, 3:9] = 128
  write_png(path, mask)
  msg = prepare_error('lidc_slices', raw, tmp_path / 'data')
  assert path in msg and 'values 128' in msg
  assert 'expected a binary mask with values 0 and 255 (or 0 and 1)' in msg


def test_bad_empty_and_wrong_directory(tmp_path):
  empty = tmp_path / 'empty'
  empty.mkdir()
  msg = prepare_error('lidc_slices', empty, tmp_path / 'data')
  assert str(empty) in msg and 'empty (no files)' in msg
  assert 'expected the LIDC-IDRI slices layout' in msg
  assert 'nodule-N/images/slice-K.png' in msg   # says what was expected
  wrong = tmp_path / 'wrong'
  write_png(str(wrong / 'pics' / 'a.png'), np.zeros((128, 128)))
  msg = prepare_error('lidc_slices', wrong, tmp_path / 'data')
  assert str(wrong) in msg and 'pics/a.png' in msg
  assert 'nothing of the LIDC-IDRI slices layout found' in msg
  assert 'expected the LIDC-IDRI slices layout' in msg
  missing = tmp_path / 'nowhere'
  msg = prepare_error('lidc_slices', missing, tmp_path / 'data')
  assert str(missing) in msg and 'does not exist' in msg


def test_bad_truncated_archive(tmp_path):
  raw = small_slices(tmp_path)
  tar = make_tar(raw / 'LIDC-IDRI-slices', tmp_path / 'slices.tar.gz',
                 'LIDC-IDRI-slices')
  data = open(tar, 'rb').read()
  open(tar, 'wb').write(data[:len(data) // 2])
  msg = prepare_error('lidc_slices', tar, tmp_path / 'data')
  assert str(tar) in msg and 'cannot read the archive' in msg
  assert 'expected a complete .tar.gz' in msg


def test_bad_png_inside_archive_named(tmp_path):
  raw = small_slices(tmp_path)
  path = slice_file(raw, 'LIDC-IDRI-0001', 'mask-1')
  write_png(path, np.full((128, 128), 7, np.uint8))
  tar = make_tar(raw / 'LIDC-IDRI-slices', tmp_path / 'slices.tar.gz',
                 'LIDC-IDRI-slices')
  msg = prepare_error('lidc_slices', tar, tmp_path / 'data')
  assert (f'{tar}:LIDC-IDRI-slices/LIDC-IDRI-0001/nodule-1/mask-1/'
          'slice-0.png') in msg
  assert 'values 7' in msg


def test_skip_bad_examples_reports_count_and_names(tmp_path):
  raw = tmp_path / 'raw'
  expected = make_slices(str(raw), nodules=1, slices=2)
  os.remove(slice_file(raw, 'LIDC-IDRI-0001', 'mask-2', slice_=1))
  trunc = slice_file(raw, 'LIDC-IDRI-0004', 'images')
  open(trunc, 'wb').write(open(trunc, 'rb').read()[:60])
  write_png(slice_file(raw, 'LIDC-IDRI-0003', 'mask-0'),
            np.full((128, 128), 3, np.uint8))
  bad_ids = {'LIDC-IDRI-0001/nodule-1/slice-1',
             'LIDC-IDRI-0004/nodule-1/slice-0',
             'LIDC-IDRI-0003/nodule-1/slice-0'}
  # Off by default: the first bad example stops prepare.
  prepare_error('lidc_slices', raw, tmp_path / 'strict')
  report = lidc.prepare('lidc_slices', raw, tmp_path / 'data',
                        skip_bad_examples=True)
  assert report.num_bad == 3
  assert set(report.bad_example_ids) == bad_ids
  assert any(trunc in b.reason for b in report.bad_examples)
  assert report.num_examples == len(expected) - 3
  read = read_all('lidc_slices', tmp_path / 'data')
  good = {k: v for k, v in expected.items() if k not in bad_ids}
  check_examples(read, good, (128, 128))
  text = report.summary()
  assert 'bad examples skipped: 3' in text
  for bad in bad_ids:
    assert bad in text
  # Stored with the data: a later prepare (no-op) reports the same.
  again = lidc.prepare('lidc_slices', raw, tmp_path / 'data')
  assert again.already_prepared and set(again.bad_example_ids) == bad_ids


def test_error_surfaces_through_wrapping(tmp_path, monkeypatch):
  inner = lidc.LidcDataError('/x/y.png: bad; expected good')
  try:
    try:
      raise inner
    except lidc.LidcDataError as exc:
      raise RuntimeError('Failed to generate split train') from exc
  except RuntimeError as outer:
    assert errors.find_data_error(outer) is inner
  # A TFDS that wraps generation errors: prepare still raises LidcDataError
  # with the file and the reason.
  import tensorflow_datasets as tfds
  original = tfds.core.GeneratorBasedBuilder._download_and_prepare

  def wrapping(self, *args, **kwargs):
    try:
      return original(self, *args, **kwargs)
    except Exception as exc:
      raise RuntimeError('Failed to prepare the data set') from exc

  monkeypatch.setattr(tfds.core.GeneratorBasedBuilder,
                      '_download_and_prepare', wrapping)
  raw = small_slices(tmp_path)
  path = slice_file(raw, 'LIDC-IDRI-0003', 'mask-2')
  os.remove(path)
  msg = prepare_error('lidc_slices', raw, tmp_path / 'data')
  assert path in msg and 'annotation file missing' in msg


def test_script_prints_report(tmp_path, capsys):
  import importlib.util
  raw = small_slices(tmp_path)
  spec = importlib.util.spec_from_file_location(
      'prepare_data', os.path.join(os.path.dirname(__file__), '..', 'scripts',
                                   'prepare_data.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  rc = module.main(['--format', 'lidc_slices', '--manual_dir', str(raw),
                    '--data_dir', str(tmp_path / 'data')])
  out = capsys.readouterr().out
  assert rc == 0
  assert 'examples: 6   patients: 3' in out
  assert 'raters marking, all splits: 0 -> ' in out
  assert 'train' in out and 'validation' in out and 'test' in out
  os.remove(slice_file(raw, 'LIDC-IDRI-0001', 'mask-0'))
  rc = module.main(['--format', 'lidc_slices', '--manual_dir', str(raw),
                    '--data_dir', str(tmp_path / 'data2')])
  err = capsys.readouterr().err
  assert rc == 1 and 'mask-0' in err and 'skip_bad_examples' in err
  # Where skipping would not help (nothing to read at all), no such hint.
  empty = tmp_path / 'empty'
  empty.mkdir()
  rc = module.main(['--format', 'lidc_slices', '--manual_dir', str(empty),
                    '--data_dir', str(tmp_path / 'data3')])
  err = capsys.readouterr().err
  assert rc == 1 and str(empty) in err and 'skip_bad_examples' not in err


# ---------------------------------------------------------------------------
# DeepMind LIDC crops
# ---------------------------------------------------------------------------


@pytest.mark.parametrize('base,archives,flat', [(0, True, False),
                                               (1, False, False),
                                               (1, True, True)])
def test_crops_end_to_end(tmp_path, base, archives, flat):
  raw = tmp_path / 'raw'
  expected = make_crops(str(raw), base=base, archives=archives, flat=flat)
  report = lidc.prepare('lidc_crops', raw, tmp_path / 'data')
  assert report.split_sizes == {'train': 4, 'validation': 2, 'test': 2}
  assert report.patients == {'train': 2, 'validation': 1, 'test': 1}
  assert report.details['labeller_ids'] == ('0..3' if base == 0 else '1..4')
  assert report.details['patients_in_several_splits'] == []
  read = read_all('lidc_crops', tmp_path / 'data')
  names = {'train': 'train', 'validation': 'val', 'test': 'test'}
  for split, examples in read.items():
    check_examples({split: examples}, expected[names[split]], (180, 180))
  # The evaluation centre crop.
  ex = read['test'][0]
  crop = lidc.crops_eval_crop(ex['masks'])
  assert crop.shape == (4, 128, 128)
  np.testing.assert_array_equal(crop, ex['masks'][:, 26:-26, 26:-26])
  np.testing.assert_array_equal(lidc.crops_eval_crop(ex['image']),
                                lidc.center_crop(ex['image'], 128))
  with pytest.raises(ValueError, match='180'):
    lidc.crops_eval_crop(np.zeros((128, 128)))


def test_crops_only_some_splits(tmp_path):
  raw = tmp_path / 'raw'
  make_crops(str(raw), archives=True)
  os.remove(raw / 'train.tar.gz')
  report = lidc.prepare('lidc_crops', raw, tmp_path / 'data')
  assert report.split_sizes == {'validation': 2, 'test': 2}


def test_crops_mixed_labeller_ids(tmp_path):
  raw = tmp_path / 'raw'
  make_crops(str(raw), base=0, archives=False)
  extra = raw / 'test' / 'gt' / 'p-te1' / 'z-100.5_c0_l4.png'
  write_png(str(extra), np.zeros((180, 180)))
  msg = prepare_error('lidc_crops', raw, tmp_path / 'data')
  assert 'mixed or incomplete labeller ids' in msg
  assert str(extra) in msg and 'l0:' in msg
  assert 'expected labeller ids 0..3' in msg and '1..4' in msg


def test_crops_missing_label(tmp_path):
  raw = tmp_path / 'raw'
  make_crops(str(raw), base=1, archives=False)
  path = raw / 'val' / 'gt' / 'p-va1' / 'z-101.5_c1_l3.png'
  os.remove(path)
  msg = prepare_error('lidc_crops', raw, tmp_path / 'data')
  assert str(path) in msg and 'annotation file missing' in msg
  assert '_l1 .. _l4' in msg
  report = lidc.prepare('lidc_crops', raw, tmp_path / 'data',
                        skip_bad_examples=True)
  assert report.bad_example_ids == ['p-va1/z-101.5_c1']
  assert report.split_sizes['validation'] == 1


def test_crops_bad_size_and_values_in_archive(tmp_path):
  raw = tmp_path / 'raw'
  make_crops(str(raw), base=0, archives=False)
  write_png(str(raw / 'train' / 'images' / 'p-tr2' / 'z-100.5_c0.png'),
            np.zeros((128, 128)))
  msg = prepare_error('lidc_crops', raw, tmp_path / 'data')
  assert str(raw / 'train' / 'images' / 'p-tr2' / 'z-100.5_c0.png') in msg
  assert 'image is 128 x 128' in msg and 'expected 180 x 180' in msg


def test_crops_empty_or_wrong_directory(tmp_path):
  (tmp_path / 'empty').mkdir()
  msg = prepare_error('lidc_crops', tmp_path / 'empty', tmp_path / 'data')
  assert str(tmp_path / 'empty') in msg
  assert 'no train / val / test archive or folder' in msg
  assert 'images/<patient>/z-<pos>_c<n>.png' in msg
  # A train folder without the layout inside.
  write_png(str(tmp_path / 'wrong' / 'train' / 'x.png'), np.zeros((180, 180)))
  msg = prepare_error('lidc_crops', tmp_path / 'wrong', tmp_path / 'data')
  assert str(tmp_path / 'wrong' / 'train') in msg
  assert 'nothing of the LIDC crops layout' in msg and 'x.png' in msg


def test_crops_name_parsing():
  cp = crops.parse_crops_path('test/gt/LIDC-IDRI-0078/z-103.0_c0_l2.png')
  assert (cp.prefix, cp.kind, cp.patient, cp.stem, cp.labeller) == (
      'test/', 'gt', 'LIDC-IDRI-0078', 'z-103.0_c0', 2)
  assert cp.example_id == 'LIDC-IDRI-0078/z-103.0_c0'
  assert cp.image_rel() == 'test/images/LIDC-IDRI-0078/z-103.0_c0.png'
  assert crops.crops_split_of_name('val.tar.gz') == 'validation'
  assert crops.crops_split_of_name('lidc_crops_train') == 'train'
  assert crops.crops_split_of_name('README.md') is None
  # Hidden / AppleDouble files are not part of the layout.
  assert crops.parse_crops_path('test/images/p/._z-1_c0.png') is None


# ---------------------------------------------------------------------------
# PHiSeg pickle
# ---------------------------------------------------------------------------


@pytest.mark.parametrize('float_images', [True, False])
def test_pickle_end_to_end(tmp_path, float_images):
  data, expected = make_pickle_entries(float_images=float_images)
  path = write_pickle(str(tmp_path / 'raw' / 'data_lidc.pickle'), data)
  report = lidc.prepare('lidc_pickle', tmp_path / 'raw', tmp_path / 'data')
  assert report.num_examples == 12 and report.num_patients == 4
  assert report.split_sizes == {'train': 6, 'validation': 3, 'test': 3}
  read = read_all('lidc_pickle', tmp_path / 'data')
  check_examples(read, expected, (128, 128))   # float -> round(255 x)
  assert_disjoint(patients_by_split(read))
  assert report.split_patients == lidc.split_patients(
      v['series_uid'] for v in data.values())
  assert report.details['pickle_files'] == [path]


def test_pickle_folder_of_several_files(tmp_path):
  data, expected = make_pickle_entries()
  keys = sorted(data)
  write_pickle(str(tmp_path / 'raw' / 'part1.pickle'),
               {k: data[k] for k in keys[:5]})
  write_pickle(str(tmp_path / 'raw' / 'part2.pkl'),
               {k: data[k] for k in keys[5:]})
  (tmp_path / 'raw' / 'notes.txt').write_text('ignored')
  lidc.prepare('lidc_pickle', tmp_path / 'raw', tmp_path / 'data')
  check_examples(read_all('lidc_pickle', tmp_path / 'data'), expected,
                 (128, 128))
  write_pickle(str(tmp_path / 'raw' / 'part3.pickle'),
               {keys[0]: data[keys[0]]})
  msg = prepare_error('lidc_pickle', tmp_path / 'raw', tmp_path / 'data2')
  assert 'part3.pickle' in msg and 'part1.pickle' in msg
  assert 'each slice key once' in msg


def test_pickle_other_structure(tmp_path):
  path = write_pickle(str(tmp_path / 'a' / 'data_lidc.pickle'),
                      [np.zeros((128, 128))])
  msg = prepare_error('lidc_pickle', path, tmp_path / 'data')
  assert path in msg and 'a pickle of another structure' in msg
  assert "expected the PHiSeg LIDC pickle" in msg and "'series_uid'" in msg
  path = write_pickle(str(tmp_path / 'b' / 'data_lidc.pickle'),
                      {'k': np.zeros((128, 128))})
  msg = prepare_error('lidc_pickle', tmp_path / 'b', tmp_path / 'data')
  assert path in msg and 'another structure' in msg
  path = str(tmp_path / 'c' / 'data_lidc.pickle')
  data, _ = make_pickle_entries()
  write_pickle(path, data)
  raw = open(path, 'rb').read()
  open(path, 'wb').write(raw[:len(raw) // 3])
  msg = prepare_error('lidc_pickle', path, tmp_path / 'data')
  assert path in msg and 'cannot unpickle' in msg and 'expected' in msg


def test_pickle_bad_entries(tmp_path):
  data, _ = make_pickle_entries()
  data['LIDC-IDRI-0002_slice1']['masks'][2][0, 0] = 2
  path = write_pickle(str(tmp_path / 'raw' / 'data_lidc.pickle'), data)
  msg = prepare_error('lidc_pickle', path, tmp_path / 'data')
  assert path in msg and "['LIDC-IDRI-0002_slice1']['masks'][2]" in msg
  assert 'values 2' in msg and 'expected a binary mask' in msg
  data, _ = make_pickle_entries()
  data['LIDC-IDRI-0001_slice0']['masks'] = data['LIDC-IDRI-0001_slice0'][
      'masks'][:3]
  data['LIDC-IDRI-0003_slice2']['image'] = np.zeros((64, 64), np.float32)
  data['LIDC-IDRI-0004_slice0']['image'] = np.full((128, 128), 3.0)
  del data['LIDC-IDRI-0004_slice1']['series_uid']
  path = write_pickle(str(tmp_path / 'raw2' / 'data_lidc.pickle'), data)
  msg = prepare_error('lidc_pickle', path, tmp_path / 'data')
  assert path in msg
  report = lidc.prepare('lidc_pickle', path, tmp_path / 'data',
                        skip_bad_examples=True)
  reasons = {b.id: b.reason for b in report.bad_examples}
  assert set(reasons) == {'LIDC-IDRI-0001_slice0', 'LIDC-IDRI-0003_slice2',
                          'LIDC-IDRI-0004_slice0', 'LIDC-IDRI-0004_slice1'}
  assert '3 masks' in reasons['LIDC-IDRI-0001_slice0']
  assert 'image is 64 x 64' in reasons['LIDC-IDRI-0003_slice2']
  assert 'values in [3, 3]' in reasons['LIDC-IDRI-0004_slice0']
  assert 'series_uid' in reasons['LIDC-IDRI-0004_slice1']
  assert report.num_examples == 12 - 4


def test_config_data_source_prepares_once_then_reads(tmp_path, monkeypatch):
  """`--config.data.dir` names the downloaded files: the first use prepares
  them, later uses read the prepared set without preparing again."""
  from hpu_jax import configuration
  import ml_collections
  manual = tmp_path / 'manual'
  make_slices(manual)
  data_cfg = ml_collections.ConfigDict(dict(
      name='lidc_slices', dir=str(manual), prepared_dir=str(tmp_path / 'prepared'),
      skip_bad_examples=False))
  calls = []
  original = lidc.prepare
  monkeypatch.setattr(lidc, 'prepare', lambda *a, **k: calls.append(a) or original(*a, **k))
  train = configuration.data_source(data_cfg, 'train')
  validation = configuration.data_source(data_cfg, 'validation')
  assert len(calls) == 1
  assert len(train) > 0 and len(validation) > 0
  assert train[0]['masks'].shape == (4, 128, 128)
  data_cfg.dir = ''
  data_cfg.prepared_dir = str(tmp_path / 'elsewhere')
  with pytest.raises(lidc.LidcNotPreparedError, match='elsewhere'):
    configuration.data_source(data_cfg, 'train')
