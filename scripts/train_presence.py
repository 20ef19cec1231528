"""Trains the presence classifier of a trained workdir: the explicit weight
on "nothing" that `hpu_jax.presence` samples with (docs/evaluation.md,
"Presence classifier"). It reads the workdir's config for the data, trains
on the training split with every annotator's mask, scores the validation
split, and writes <workdir>/presence.npz.

  python scripts/train_presence.py --workdir runs/lidc
  python scripts/evaluate.py --workdir runs/lidc --presence

For weights without a workdir (an exported file, the shipped weights), name
the config and the output instead:

  python scripts/train_presence.py --config configs/lidc_slices_cpu.py \
      --config.data.dir=/path/to/LIDC-IDRI-slices --seed 1 --out lidc_presence.npz

The classifier's own settings are flags.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from hpu_jax import cli, presence  # noqa: E402

config_flags.DEFINE_config_file('config', None, 'Optional config (default: the workdir\'s).')
flags.DEFINE_string('workdir', None, 'The trained workdir (its config names the data).')
flags.DEFINE_string('out', None, 'Where to write (default: <workdir>/presence.npz).')
flags.DEFINE_integer('steps', presence.Settings.steps, 'Training steps.')
flags.DEFINE_integer('batch_size', presence.Settings.batch_size, 'Images per step.')
flags.DEFINE_float('learning_rate', presence.Settings.learning_rate, 'Adam learning rate.')
flags.DEFINE_integer('seed', None, 'Seed (default: the workdir\'s train.seed).')


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  f = flags.FLAGS
  if not f.workdir and not (f.config and f.out):
    raise app.UsageError('expected --workdir, or --config and --out.')
  presence.train_workdir(f.workdir, config=f.config, out=f.out, steps=f.steps,
                         batch_size=f.batch_size, learning_rate=f.learning_rate, seed=f.seed)


if __name__ == '__main__':
  cli.run(main)
