"""The `folder` format (hpu_jax/data/lidc/folder*.py): one's own images with
K >= 1 masks each, prepared like the LIDC formats, trained and evaluated end
to end for K = 1 and K = 3; splits.json, the group regex, each bad input
named, and skipping bad examples."""
import json
import os

import numpy as np
import pytest
from PIL import Image

import hpu_jax
from hpu_jax import configuration, evaluate, train
from hpu_jax.data import lidc
from hpu_jax.data.lidc import formats
from hpu_jax.data.lidc.folder import Folder

from helpers import tiny_config

SIZE = 32


def ids(n):
  """P00_s0, P00_s1, P01_s0, ...: two slices per patient."""
  return [f'P{i // 2:02d}_s{i % 2}' for i in range(n)]


def write_png(path, array):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(array).save(path)


def make_folder(root, n=12, k=3, seed=0, sixteen_bit=()):
  """n images with k masks each (annotator j marks a box j rows taller);
  returns id -> (image as stored, masks 0/1)."""
  rng = np.random.default_rng(seed)
  made = {}
  for eid in ids(n):
    if eid in sixteen_bit:
      image = rng.integers(0, 65536, (SIZE, SIZE), dtype=np.uint16)
    else:
      image = rng.integers(0, 256, (SIZE, SIZE), dtype=np.uint8)
    write_png(f'{root}/images/{eid}.png', image)
    masks = np.zeros((k, SIZE, SIZE), np.uint8)
    for j in range(k):
      top = int(rng.integers(0, 10))
      masks[j, top:top + 8 + 2 * j, 6:20] = 1
      write_png(f'{root}/masks/{eid}_{j}.png', masks[j] * 255)
    made[eid] = (image, masks)
  return made


def folder_config(root, prepared, group_regex='', skip_bad_examples=False):
  config = tiny_config(num_steps=2)
  config.data.name = 'folder'
  config.data.dir = str(root)
  config.data.prepared_dir = str(prepared)
  config.data.image_size = SIZE
  config.data.skip_bad_examples = skip_bad_examples
  config.data.folder.group_regex = group_regex
  config.train.batch_size = 4
  return config


def prepare(root, prepared, group_regex='', skip=False):
  where = formats.prepared_location('folder', str(prepared), str(root),
                                    {'group_regex': group_regex})
  return lidc.prepare('folder', str(root), where, skip_bad_examples=skip), where


def split_ids(where):
  return {s: [lidc.load_source('folder', where, s)[i]['id']
              for i in range(len(lidc.load_source('folder', where, s)))]
          for s in ('train', 'validation', 'test')
          if s in lidc.builder('folder', None, where).info.splits}


@pytest.mark.parametrize('k', [1, 3])
def test_prepare_train_and_evaluate_end_to_end(tmp_path, k):
  made = make_folder(tmp_path / 'data', n=12, k=k, sixteen_bit=('P00_s0',))
  config = folder_config(tmp_path / 'data', tmp_path / 'prepared', group_regex=r'^(P\d+)_')
  configuration.validate(config, num_devices=2)
  source = configuration.data_source(config.data, 'train')
  example = source[0]
  assert example['masks'].shape == (k, SIZE, SIZE) and example['image'].dtype == np.uint8
  for i in range(len(source)):
    ex = source[i]
    image, masks = made[ex['id']]
    expected = (np.rint(image / 257.0).astype(np.uint8) if image.dtype == np.uint16
                else image)
    np.testing.assert_array_equal(ex['image'], expected)
    np.testing.assert_array_equal(ex['masks'], masks)
    assert ex['patient'] == ex['id'].split('_')[0]
  workdir = str(tmp_path / 'run')
  train.train(config, workdir)
  run = hpu_jax.load(workdir)
  report = evaluate.evaluate_config(config, run.params, workdir=workdir, step=run.step,
                                    split='validation')
  metrics = report['metrics']
  assert report['data'] == 'folder' and report['num_examples'] == 2
  for name in ('ged2', 'ged4', 'hm_iou2', 'hm_iou4'):
    assert np.isfinite(metrics[name]), name
  # S_NCC is defined with one annotation too (the correlation of the samples'
  # spread with their error against it); it is never a crash.
  assert 'sncc4' in metrics
  assert os.path.exists(report['pictures']['grid'])
  # Exported, the file says how the folder was split and what it scored.
  meta = hpu_jax.load(hpu_jax.export(workdir, str(tmp_path / 'model.npz'))).meta
  assert meta['data']['name'] == 'folder'
  assert meta['data']['split']['group_regex'] == r'^(P\d+)_'
  assert meta['evaluation']['metrics']['ged4'] == metrics['ged4']


def test_the_group_regex_keeps_a_patients_ids_in_one_split(tmp_path):
  make_folder(tmp_path / 'data', n=20, k=2)
  report, where = prepare(tmp_path / 'data', tmp_path / 'prepared', group_regex=r'^(P\d+)_')
  splits = split_ids(where)
  split_of_patient = {}
  for split, members in splits.items():
    for eid in members:
      assert split_of_patient.setdefault(eid.split('_')[0], split) == split
  assert sum(map(len, splits.values())) == 20 and len(split_of_patient) == 10
  assert report.details['group_regex'] == r'^(P\d+)_'
  # Without a regex each id is its own group: another prepared copy.
  _, alone = prepare(tmp_path / 'data', tmp_path / 'prepared')
  assert alone != where and sum(map(len, split_ids(alone).values())) == 20


def test_splits_json_decides_the_splits(tmp_path):
  make_folder(tmp_path / 'data', n=8, k=2)
  listed = {'train': ['P00_s0', 'P01_s0', 'P02_s0', 'P02_s1'], 'validation': ['P00_s1'],
            'test': ['P03_s0']}
  (tmp_path / 'data' / 'splits.json').write_text(json.dumps(listed))
  report, where = prepare(tmp_path / 'data', tmp_path / 'prepared', group_regex=r'^(P\d+)_')
  assert split_ids(where) == listed
  assert report.details['split_rule'] == 'splits.json of the folder'
  assert report.details['ids_not_in_splits_json'] == ['P01_s1', 'P03_s1']
  assert report.details['groups_in_several_splits'] == ['P00']


def test_a_changed_folder_is_prepared_again(tmp_path):
  make_folder(tmp_path / 'data', n=6, k=1)
  _, first = prepare(tmp_path / 'data', tmp_path / 'prepared')
  assert len(split_ids(first)['train']) == 4
  make_folder(tmp_path / 'more', n=8, k=1)
  for name in ('P03_s0', 'P03_s1'):
    for sub, suffix in (('images', ''), ('masks', '_0')):
      os.replace(tmp_path / 'more' / sub / f'{name}{suffix}.png',
                 tmp_path / 'data' / sub / f'{name}{suffix}.png')
  _, second = prepare(tmp_path / 'data', tmp_path / 'prepared')
  assert second != first and sum(map(len, split_ids(second).values())) == 8
  settings = json.loads(open(os.path.join(second, 'settings.json')).read())
  assert settings['source'] == str((tmp_path / 'data').resolve())


def _truncate(path):
  data = open(path, 'rb').read()
  open(path, 'wb').write(data[:len(data) // 2])


def _bad_cases():
  """(name, change(root) -> the file the error names, words of the error)."""
  def image(root, eid='P01_s0'):
    return f'{root}/images/{eid}.png'

  def mask(root, eid='P01_s0', k=0):
    return f'{root}/masks/{eid}_{k}.png'

  def truncated(root):
    _truncate(image(root))
    return image(root)

  def small_mask(root):
    write_png(mask(root), np.zeros((16, 16), np.uint8))
    return mask(root)

  def grey_mask(root):
    write_png(mask(root), np.full((SIZE, SIZE), 7, np.uint8))
    return mask(root)

  def no_masks(root):
    for k in range(2):
      os.remove(mask(root, k=k))
    return image(root)

  def other_k(root):
    write_png(mask(root, k=2), np.zeros((SIZE, SIZE), np.uint8))
    return image(root)

  def rgb(root):
    write_png(image(root), np.zeros((SIZE, SIZE, 3), np.uint8))
    return image(root)

  def stray_mask(root):
    write_png(mask(root, eid='P99_s0'), np.zeros((SIZE, SIZE), np.uint8))
    return mask(root, eid='P99_s0')

  def unknown_id(root):
    with open(f'{root}/splits.json', 'w') as f:
      json.dump({'train': ['P00_s0', 'P77_s0'], 'test': ['P01_s0']}, f)
    return f'{root}/splits.json'

  def two_splits(root):
    with open(f'{root}/splits.json', 'w') as f:
      json.dump({'train': ['P00_s0', 'P01_s0'], 'test': ['P01_s0']}, f)
    return f'{root}/splits.json'

  return [
      ('unreadable-png', truncated, 'unreadable or truncated PNG'),
      ('mask-size', small_mask, 'mask is 16 x 16; expected the size of its image'),
      ('mask-values', grey_mask, 'mask has values 7'),
      ('image-without-masks', no_masks, 'an image without masks'),
      ('another-k', other_k, '3 mask(s) (masks/P01_s0_0.png .. masks/P01_s0_2.png); '
       'expected its K = 2 masks'),
      ('rgb-image', rgb, 'an RGB PNG (3 channels)'),
      ('mask-without-image', stray_mask, 'a mask without its image (no images/P99_s0.png)'),
      ('unknown-id-in-splits', unknown_id, "id 'P77_s0' (in 'train') has no image"),
      ('id-in-two-splits', two_splits, "id 'P01_s0' in both 'train' and 'test'"),
  ]


@pytest.mark.parametrize('change, words', [c[1:] for c in _bad_cases()],
                         ids=[c[0] for c in _bad_cases()])
def test_each_bad_input_is_named(tmp_path, change, words):
  root = tmp_path / 'data'
  make_folder(root, n=10, k=2)
  named = change(str(root))
  with pytest.raises(lidc.LidcDataError) as info:
    prepare(root, tmp_path / 'prepared')
  assert str(info.value).startswith(f'{named}: ') and words in str(info.value)


def test_skip_bad_examples_skips_and_lists_them(tmp_path):
  root = tmp_path / 'data'
  make_folder(root, n=12, k=2)
  # Each per-example fault on its own image, through the config's flag.
  faults = {'P01_s0': lambda: _truncate(f'{root}/images/P01_s0.png'),
            'P02_s0': lambda: write_png(f'{root}/masks/P02_s0_1.png',
                                        np.zeros((16, 16), np.uint8)),
            'P03_s0': lambda: write_png(f'{root}/masks/P03_s0_0.png',
                                        np.full((SIZE, SIZE), 7, np.uint8)),
            'P04_s0': lambda: [os.remove(f'{root}/masks/P04_s0_{k}.png') for k in range(2)],
            'P05_s0': lambda: write_png(f'{root}/masks/P05_s0_2.png',
                                        np.zeros((SIZE, SIZE), np.uint8))}
  for fault in faults.values():
    fault()
  config = folder_config(root, tmp_path / 'prepared', skip_bad_examples=True)
  total = sum(len(configuration.data_source(config.data, s))
              for s in ('train', 'validation', 'test'))
  assert total == 12 - len(faults)
  report, _ = prepare(root, tmp_path / 'prepared', skip=True)
  assert report.already_prepared and sorted(report.bad_example_ids) == sorted(faults)


def test_config_errors_name_the_field(tmp_path):
  make_folder(tmp_path / 'data', n=6, k=1)
  config = folder_config(tmp_path / 'data', tmp_path / 'prepared', group_regex='(P')
  with pytest.raises(ValueError, match=r"data.folder.group_regex='\(P': not a regular"):
    configuration.validate(config, num_devices=2)
  config = folder_config('', tmp_path / 'prepared')
  with pytest.raises(ValueError, match="data.dir='': expected the folder holding images/"):
    configuration.validate(config, num_devices=2)
  config = folder_config(tmp_path / 'data', tmp_path / 'prepared', group_regex='^(X)')
  with pytest.raises(lidc.LidcDataError, match=r"data.folder.group_regex='\^\(X\)': no group "
                     "in the id 'P00_s0'"):
    configuration.data_source(config.data, 'train')
  assert 'folder' in configuration.data_names() and 'folder' not in lidc.FORMATS
  assert Folder.FORMAT in formats.PREPARED_FORMATS
