"""Trains an HPU-Net, then evaluates it (report.json and pictures in the workdir).

  python scripts/train.py --config configs/synthetic.py --workdir runs/synthetic
  python scripts/train.py --config configs/lidc_slices.py --workdir runs/lidc \
      --config.data.dir=/path/to/LIDC-IDRI-slices --config.train.batch_size=16

Kept short on purpose: the logic lives in hpu_jax.train, importable from a
notebook. Restarting the same command resumes from the newest checkpoint.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from hpu_jax import cli, train  # noqa: E402

config_flags.DEFINE_config_file('config', None, 'Config file (configs/*.py).',
                                lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, logs and reports.')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # orbax logs every file at INFO.
  train.train_and_evaluate(flags.FLAGS.config, flags.FLAGS.workdir)


if __name__ == '__main__':
  cli.run(main)
