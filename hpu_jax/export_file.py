"""One small portable file of a trained model: write it, read it, verify it.
(Named export_file so that it does not shadow the function `hpu_jax.export`.)

    hpu_jax.export('runs/synthetic', 'synthetic.npz', which='best')
    run = hpu_jax.load('synthetic.npz')        # the same LoadedRun as a workdir gives

The file is an ordinary `.npz` (a zip of `.npy` members), read with
`np.load(path, allow_pickle=False)`, so nothing in it is ever unpickled:

- `params/<module>/<name>`: each parameter of the model under its Haiku path,
  e.g. `params/hpunet/~/prior/~_level/encoder_level_0_block_0/conv_0/w`;
- `config.json`: the resolved config of the run, JSON text as UTF-8 bytes
  (uint8), without the training machine's own paths and addresses
  (`MACHINE_FIELDS`: where its data and compilation cache were, its
  coordinator), which are reset to their defaults: they mean nothing on
  another machine and need not be shared;
- `meta.json`: JSON text: `format` (`hpu_jax.export`), `version`, the
  checkpoint `step`, the data set and its split rule, the evaluation in the
  workdir's report.json (or null), package versions, the list of arrays and
  `sha256`.

Only the model's parameters are kept: no optimiser state, no GECO state.
`sha256` is taken over every parameter array (its name, dtype, shape and
bytes, in name order) and then the config text; reading recomputes it. A file
that is not such an export, is of a newer format version, or was changed
(different bytes, an array missing or added, a config that does not build
the same parameter shapes) raises `ExportError` naming the file and what was
expected. The same checkpoint always gives the same bytes (fixed zip dates).
"""
import hashlib
import importlib.metadata
import json
import os
import platform
import zipfile
from typing import Any, Dict, Optional, Sequence, Tuple

import ml_collections
import numpy as np

from hpu_jax import npz_file

FORMAT_NAME = 'hpu_jax.export'
FORMAT_VERSION = 1
META = 'meta.json'
CONFIG = 'config.json'
PARAMS = 'params/'
PACKAGES = ('hpu_jax', 'jax', 'jaxlib', 'dm-haiku', 'numpy', 'ml-collections', 'optax',
            'distrax')
DIGEST_RULE = ('sha256 over each parameter array in name order (UTF-8 name, NUL, numpy '
               'dtype string, NUL, shape as text, NUL, then the C-order bytes), then '
               '"config.json", NUL and the UTF-8 config text')
# Fields of a run's config that are facts of the machine it trained on, and
# their defaults in an exported file (TFDS's own default data directory; empty
# for the others, i.e. unset). Nothing that loads a file reads them.
MACHINE_FIELDS = {('data', 'dir'): '', ('data', 'prepared_dir'): '~/tensorflow_datasets',
                  ('train', 'compilation_cache_dir'): '', ('train', 'coordinator_address'): ''}


class ExportError(ValueError):
  """A file that is not a valid hpu_jax export; the message names the file."""


def _error(path: str, problem: str, expected: str) -> ExportError:
  return ExportError(f'{path}: {problem}; expected {expected}')


# ----------------------------------------------------------------------------
# Parameters <-> named arrays, and the digest.

def flatten_params(params) -> Dict[str, np.ndarray]:
  """Haiku params {module: {name: array}} -> {'params/<module>/<name>': array}, sorted."""
  flat = {}
  for module, values in params.items():
    for name, value in values.items():
      flat[f'{PARAMS}{module}/{name}'] = np.asarray(value)
  return dict(sorted(flat.items()))


def unflatten_params(arrays: Dict[str, np.ndarray]) -> dict:
  """The inverse of `flatten_params` (numpy arrays, as a restored checkpoint's)."""
  params: Dict[str, Dict[str, Any]] = {}
  for key in sorted(arrays):
    module, name = key[len(PARAMS):].rsplit('/', 1)
    params.setdefault(module, {})[name] = np.asarray(arrays[key])
  return params


def digest(arrays: Dict[str, np.ndarray], config_text: str) -> str:
  """The sha256 of `DIGEST_RULE`."""
  h = hashlib.sha256()
  for name in sorted(arrays):
    a = np.ascontiguousarray(arrays[name])
    h.update(f'{name}\0{a.dtype.str}\0{tuple(a.shape)}\0'.encode())
    h.update(a.tobytes())
  h.update(b'config.json\0' + config_text.encode())
  return h.hexdigest()


def _text_array(text: str) -> np.ndarray:
  return np.frombuffer(text.encode('utf-8'), np.uint8)


# ----------------------------------------------------------------------------
# What the metadata says.

def package_versions() -> Dict[str, str]:
  versions = {'python': platform.python_version()}
  for name in PACKAGES:
    try:
      versions[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      versions[name] = 'not installed'
  return versions


def split_description(data_cfg) -> Dict[str, Any]:
  """How the data set's examples were assigned to train / validation / test."""
  name = str(data_cfg.name)
  if name == 'synthetic':
    s = data_cfg.synthetic
    return {'rule': 'generated: example i of a split is a pure function of (seed, split, i)',
            'seed': int(s.seed), 'num_train': int(s.num_train),
            'num_validation': int(s.num_validation), 'num_test': int(s.num_test),
            'num_annotations': int(s.num_annotations),
            'image_size': int(s.image_size or data_cfg.image_size)}
  from hpu_jax.data.lidc.split import SPLIT_RULE
  if name in ('lidc_crops',):
    return {'rule': "the train / val / test archives of DeepMind's LIDC crops"}
  if name == 'folder':
    from hpu_jax.data.lidc.folder_layout import SPLIT_TEXT
    return {'rule': SPLIT_TEXT, 'fallback_rule': SPLIT_RULE,
            'group_regex': str(data_cfg.get('folder', {}).get('group_regex', '') or '')}
  unit = {'lidc_pickle': 'series uid'}.get(name, 'patient')
  return {'rule': SPLIT_RULE, 'unit': unit}


def _evaluation(report_path: str) -> Optional[Dict[str, Any]]:
  if not os.path.exists(report_path):
    return None
  with open(report_path) as f:
    report = json.load(f)
  keep = ('split', 'num_examples', 'num_samples', 'checkpoint_step', 'metrics', 'undefined')
  return {k: report.get(k) for k in keep}


def evaluations(workdir: str, step: int, reports: Sequence[str] = ()) -> list:
  """The evaluations of checkpoint `step`: the workdir's report.json if it
  scored that step, then each of `reports` (report.json files that
  scripts/evaluate.py wrote, e.g. for --split test), which must have."""
  from hpu_jax.workdir import REPORT_FILE
  found = []
  own = _evaluation(os.path.join(workdir, REPORT_FILE))
  if own is not None and own.get('checkpoint_step') == step:
    found.append(own)
  for path in reports:
    evaluation = _evaluation(path)
    if evaluation is None:
      raise FileNotFoundError(f'{path}: no such report; expected a report.json written by '
                              'scripts/evaluate.py.')
    if evaluation.get('checkpoint_step') != step:
      raise ValueError(f'{path}: scores checkpoint step {evaluation.get("checkpoint_step")}; '
                       f'expected the exported step {step}.')
    found.append(evaluation)
  return found


# ----------------------------------------------------------------------------
# Writing.

def portable_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A copy of `config` with each of `MACHINE_FIELDS` that it has reset."""
  config = ml_collections.ConfigDict(config.to_dict())
  for (section, field), default in MACHINE_FIELDS.items():
    if section in config and field in config[section]:
      config[section][field] = default
  return config


def export(workdir: str, path: str, which: str = 'latest', step: Optional[int] = None,
           reports: Sequence[str] = ()) -> str:
  """Writes the model of a workdir's checkpoint (`which` 'latest' or 'best', or
  a `step`) to `path` (.npz), atomically; returns the absolute path. Its
  metadata carries every evaluation of that checkpoint (`evaluations`)."""
  from hpu_jax.loading import load_workdir
  workdir = os.path.abspath(os.path.expanduser(workdir))
  run = load_workdir(workdir, which, step)
  arrays = flatten_params(run.params)
  config_text = portable_config(run.config).to_json(indent=2, sort_keys=True)
  meta = {
      'format': FORMAT_NAME,
      'version': FORMAT_VERSION,
      'run': os.path.basename(workdir),
      'which': which,
      'step': int(run.step),
      'data': {'name': str(run.config.data.name),
               'image_size': int(run.config.data.image_size),
               'split': split_description(run.config.data)},
      'evaluation': None,       # The first of `evaluations`, or None.
      'evaluations': evaluations(workdir, int(run.step), reports),
      'versions': package_versions(),
      'num_parameters': int(sum(a.size for a in arrays.values())),
      'arrays': {k: [a.dtype.str, list(a.shape)] for k, a in arrays.items()},
      'sha256': digest(arrays, config_text),
      'sha256_rule': DIGEST_RULE,
  }
  meta['evaluation'] = (meta['evaluations'] or [None])[0]
  members = dict(arrays)
  members[CONFIG] = _text_array(config_text)
  members[META] = _text_array(json.dumps(meta, indent=2, sort_keys=True))
  return npz_file.write_npz(path, members, compress=False)


# ----------------------------------------------------------------------------
# Reading.

def _read_text(npz, member: str, path: str) -> str:
  try:
    array = npz[member]
  except ValueError as e:   # An object array: reading it would need pickle.
    raise _error(path, f'member {member} cannot be read without pickle ({e})',
                 'numeric arrays only; nothing is unpickled') from None
  try:
    return bytes(array.astype(np.uint8)).decode('utf-8')
  except (ValueError, TypeError, UnicodeDecodeError) as e:
    raise _error(path, f'member {member} is not UTF-8 text ({e})',
                 'a file written by hpu_jax.export') from None


def _open(path: str):
  if not os.path.isfile(path):
    raise _error(path, 'no such file', 'an .npz written by hpu_jax.export or scripts/export.py')
  if not zipfile.is_zipfile(path):
    raise _error(path, 'not an .npz file (not a zip archive)',
                 'an .npz written by hpu_jax.export or scripts/export.py')
  try:
    return np.load(path, allow_pickle=False)
  except Exception as e:  # noqa: BLE001  numpy raises several kinds on bad zips.
    raise _error(path, f'unreadable .npz ({type(e).__name__}: {e})',
                 'an .npz written by hpu_jax.export') from None


def _check_meta(meta_text: str, path: str) -> dict:
  try:
    meta = json.loads(meta_text)
  except json.JSONDecodeError as e:
    raise _error(path, f'{META} is not JSON ({e})', 'a file written by hpu_jax.export') from None
  if not isinstance(meta, dict) or meta.get('format') != FORMAT_NAME:
    found = meta.get('format') if isinstance(meta, dict) else type(meta).__name__
    raise _error(path, f'{META} names format {found!r}',
                 f'format {FORMAT_NAME!r} (a file written by hpu_jax.export)')
  version = meta.get('version')
  if not isinstance(version, int) or version < 1:
    raise _error(path, f'format version {version!r}', f'an integer from 1 to {FORMAT_VERSION}')
  if version > FORMAT_VERSION:
    raise _error(path, f'format version {version}, newer than this hpu_jax reads',
                 f'version <= {FORMAT_VERSION}; upgrade hpu_jax to read it')
  for field in ('step', 'arrays', 'sha256'):
    if field not in meta:
      raise _error(path, f'{META} lacks the field {field!r}', 'a file written by hpu_jax.export')
  return meta


def _read_arrays(npz, names, path: str) -> Dict[str, np.ndarray]:
  arrays = {}
  for name in names:
    try:
      arrays[name] = npz[name]
    except ValueError as e:   # An object array: reading it would need pickle.
      raise _error(path, f'array {name} cannot be read without pickle ({e})',
                   'numeric arrays only; nothing is unpickled') from None
  return arrays


def _check_shapes(config, arrays: Dict[str, np.ndarray], path: str) -> None:
  """The parameters the file's config builds must be the file's arrays."""
  import jax
  import jax.numpy as jnp
  from hpu_jax import configuration
  try:
    model = configuration.build_model(config.model)
  except (ValueError, TypeError, AttributeError, KeyError) as e:
    raise _error(path, f'its config does not build a model ({e})',
                 'the config the parameters were trained with') from None
  size = int(config.data.image_size)
  shapes = jax.eval_shape(model.init, jax.random.key(0),
                          jnp.zeros((1, size, size), jnp.int32),
                          jnp.zeros((1, size, size, 1), jnp.float32))
  expected = {f'{PARAMS}{m}/{n}': (tuple(s.shape), np.dtype(s.dtype))
              for m, d in shapes.items() for n, s in d.items()}
  missing = sorted(set(expected) - set(arrays))
  extra = sorted(set(arrays) - set(expected))
  if missing or extra:
    raise _error(path, 'its config builds other parameters than it holds ('
                 + '; '.join([f'{len(missing)} missing, e.g. {missing[0]}'] if missing else [])
                 + ('; ' if missing and extra else '')
                 + (f'{len(extra)} not built, e.g. {extra[0]}' if extra else '') + ')',
                 'the config the parameters were trained with')
  for name, (shape, dtype) in expected.items():
    if arrays[name].shape != shape or arrays[name].dtype != dtype:
      raise _error(path, f'array {name} is {arrays[name].dtype}{list(arrays[name].shape)} but '
                   f'its config builds {dtype}{list(shape)}',
                   'the config the parameters were trained with')


def read(path: str) -> Tuple[ml_collections.ConfigDict, dict, dict]:
  """(config, params, meta) of an export file, verified (see the module docstring)."""
  path = os.path.abspath(os.path.expanduser(os.fspath(path)))
  with _open(path) as npz:
    members = list(npz.files)
    if META not in members:
      shown = ', '.join(members[:4]) + (', ...' if len(members) > 4 else '')
      raise _error(path, f'an .npz without the {META} marker of hpu_jax exports (it holds: '
                   f'{shown or "nothing"})', 'a file written by hpu_jax.export')
    meta = _check_meta(_read_text(npz, META, path), path)
    if CONFIG not in members:
      raise _error(path, f'no {CONFIG} member', 'a file written by hpu_jax.export')
    config_text = _read_text(npz, CONFIG, path)
    listed = set(meta['arrays'])
    held = {m for m in members if m.startswith(PARAMS)}
    if held - listed:
      raise _error(path, f'array {sorted(held - listed)[0]} is not in the list of {META}',
                   'exactly the arrays the export wrote (the file was changed)')
    if listed - held:
      raise _error(path, f'array {sorted(listed - held)[0]} is missing',
                   f'every array listed in {META} (the file was changed or truncated)')
    arrays = _read_arrays(npz, sorted(held), path)
  if digest(arrays, config_text) != meta['sha256']:
    raise _error(path, 'the sha256 of its arrays and config differs from the one it records '
                 '(the file was changed or damaged)', f'sha256 {meta["sha256"]}')
  try:
    config = ml_collections.ConfigDict(json.loads(config_text))
  except (json.JSONDecodeError, TypeError) as e:
    raise _error(path, f'{CONFIG} is not a JSON config ({e})', 'a resolved config') from None
  _check_shapes(config, arrays, path)
  return config, unflatten_params(arrays), meta
