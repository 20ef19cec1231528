"""Writes a trained model to one small portable .npz file: its parameters (no
optimiser state), its config and metadata (data set, split rule, step,
evaluation, package versions, a sha256 of the contents).

  python scripts/export.py --workdir runs/synthetic --out synthetic.npz
  python scripts/export.py --workdir runs/lidc --out lidc.npz --which best \
      --report runs/lidc/eval_test/report.json

Load it with `hpu_jax.load('synthetic.npz')`, or sample your own images with
`python scripts/sample.py --weights synthetic.npz ...`. The logic lives in
hpu_jax/export_file.py.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags, logging  # noqa: E402

import hpu_jax  # noqa: E402
from hpu_jax import cli  # noqa: E402

flags.DEFINE_string('workdir', None, 'The training workdir.')
flags.DEFINE_string('out', None, 'The .npz file to write.')
flags.DEFINE_enum('which', 'latest', ['latest', 'best'], 'Which checkpoint.')
flags.DEFINE_integer('step', None, 'A specific checkpoint step (with --which=latest).')
flags.DEFINE_multi_string('report', [], 'A report.json of scripts/evaluate.py that scored '
                          'the same checkpoint (e.g. its --split test), added to the '
                          "metadata's evaluations; repeatable.")
flags.mark_flags_as_required(['workdir', 'out'])


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # orbax logs every file at INFO.
  f = flags.FLAGS
  from hpu_jax.export_file import read
  try:
    path = hpu_jax.export(f.workdir, f.out, which=f.which, step=f.step, reports=f.report)
    _, _, meta = read(path)
  except (FileNotFoundError, ValueError) as e:   # One line, exit status 1.
    sys.exit(f'error: {e}')
  size = os.path.getsize(path)
  print(f'Wrote {path} ({size / 1024:.1f} KiB): step {meta["step"]}, '
        f'{meta["num_parameters"]:,} parameters, data {meta["data"]["name"]}, '
        f'sha256 {meta["sha256"][:16]}...')


if __name__ == '__main__':
  cli.run(main)
