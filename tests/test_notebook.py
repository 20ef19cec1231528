"""The demo notebook (notebooks/hpu_jax_demo.ipynb): committed clean; it runs
from zero on the shipped weights and example slices (no workdir anywhere), and
end to end on a tiny trained workdir."""
import base64
import os

import pytest

nbformat = pytest.importorskip('nbformat')
nbclient = pytest.importorskip('nbclient')
pytest.importorskip('ipykernel')

from helpers import tiny_config  # noqa: E402  (tests/ is on sys.path: rootdir conftest)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, 'notebooks', 'hpu_jax_demo.ipynb')
PARAMETERS = ('WEIGHTS', 'WORKDIR', 'NUM_SAMPLES', 'NUM_EXAMPLES', 'SEED')


def _read():
  return nbformat.read(NOTEBOOK, as_version=4)


def _parameters_cell(nb):
  cells = [c for c in nb.cells
           if c.cell_type == 'code' and 'parameters' in c.metadata.get('tags', [])]
  assert len(cells) == 1, 'expected exactly one code cell tagged "parameters"'
  return cells[0]


def _kernel_env():
  """The kernel inherits this process's environment (XLA_FLAGS included: the
  conftest's 2 fake CPU devices). It runs on CPU unless JAX_PLATFORMS says
  otherwise and never preallocates accelerator memory, which this process may
  already hold."""
  env = dict(os.environ)
  env.setdefault('JAX_PLATFORMS', 'cpu')
  env['XLA_PYTHON_CLIENT_PREALLOCATE'] = 'false'
  env['PYDEVD_DISABLE_FILE_VALIDATION'] = '1'  # debugpy's frozen-modules warning
  return env


def test_notebook_is_committed_clean():
  nb = _read()
  nbformat.validate(nb)
  assert nb.nbformat == 4
  assert nb.metadata['kernelspec']['name'] == 'python3'
  for cell in nb.cells:
    if cell.cell_type == 'code':
      assert cell.outputs == [] and cell.execution_count is None, (
          'clear the outputs before committing the notebook')
  source = _parameters_cell(nb).source
  for name in PARAMETERS:
    assert f'{name} =' in source
  assert "WEIGHTS = 'lidc_slices_cpu'" in source and "WORKDIR = ''" in source


def _execute(nb, cwd):
  client = nbclient.NotebookClient(nb, timeout=300, kernel_name='python3',
                                   resources={'metadata': {'path': cwd}})
  client.execute(env=_kernel_env())  # raises CellExecutionError on a failing cell
  outputs = [o for c in nb.cells if c.cell_type == 'code' for o in c.outputs]
  assert not [o for o in outputs if o.output_type == 'error']
  text = ''.join(o.get('text', '') for o in outputs if o.output_type == 'stream')
  images = {}
  for o in outputs:
    for mime in ('image/png', 'image/gif'):
      if mime in o.get('data', {}):
        images.setdefault(mime, []).append(base64.b64decode(o['data'][mime]))
  # The sample grid and the matplotlib figure (PNG), the sampling animation (GIF).
  assert len(images.get('image/png', [])) >= 2
  assert len(images.get('image/gif', [])) == 1
  assert all(data.startswith(b'\x89PNG') for data in images['image/png'])
  assert images['image/gif'][0].startswith(b'GIF8')
  return outputs, text


def test_notebook_runs_from_zero_on_the_shipped_weights(tmp_path):
  """As committed (the shipped LIDC weights and example slices), from an empty
  folder: no workdir, no data set, nothing trained."""
  nb = _read()
  source = _parameters_cell(nb).source
  _parameters_cell(nb).source = source.replace('NUM_SAMPLES = 16', 'NUM_SAMPLES = 8')
  outputs, text = _execute(nb, str(tmp_path))
  assert "Loaded the shipped weights 'lidc_slices_cpu'" in text
  assert '4 examples of 64 x 64, 4 annotations each' in text
  assert 'A presence classifier (3 members) at temperature [1.0, 1.0, 0.85]' in text
  tables = [o['data']['text/markdown'] for o in outputs if 'text/markdown' in o.get('data', {})]
  assert tables and '| ged16 |' in tables[-1] and 'test (' in tables[-1]
  empties = next(t for t in tables if 'empty samples, configured' in t)
  assert len(empties.splitlines()) == 2 + 4     # header, rule, one row per example


def test_notebook_runs_on_a_trained_workdir(tmp_path):
  from hpu_jax.train import train
  workdir = str(tmp_path / 'run')
  train(tiny_config(num_steps=2), workdir)

  nb = _read()
  _parameters_cell(nb).source = (
      f"WEIGHTS = 'synthetic'\nWORKDIR = {workdir!r}\nNUM_SAMPLES = 8\nNUM_EXAMPLES = 2\n"
      'SEED = 0\n')
  _, text = _execute(nb, ROOT)
  assert 'Checkpoint step: 2' in text
  assert 'Not running on Colab: nothing installed' in text
  # The workdir has no report.json (train() alone): the cell says so instead of failing.
  assert 'this model has no evaluation' in text
  assert 'No presence classifier for this model' in text
