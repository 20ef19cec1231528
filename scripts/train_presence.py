"""Trains the presence classifier of a trained workdir: the explicit weight
on "nothing" that `hpu_jax.presence` samples with (docs/evaluation.md,
"Presence classifier"). It reads the workdir's config for the data, trains
on the training split with every annotator's mask, scores the validation
split, and writes <workdir>/presence.npz. By default it trains three
classifiers (seeds 0, 1, 2; --members, --seed) and combines them, the mean
of their logits, into that one file (12 min per member on a 2-core CPU).

  python scripts/train_presence.py --workdir runs/lidc
  python scripts/evaluate.py --workdir runs/lidc --presence

For weights without a workdir (an exported file, the shipped weights), name
the config and the output instead:

  python scripts/train_presence.py --config configs/lidc_slices_cpu.py \
      --config.data.dir=/path/to/LIDC-IDRI-slices --out lidc_presence.npz

--combine makes one file of classifiers trained separately (e.g. one member
per machine, with --members 1 and its own --seed):

  python scripts/train_presence.py --config configs/lidc_slices_cpu.py \
      --config.data.dir=/path/to/LIDC-IDRI-slices \
      --combine a.npz,b.npz,c.npz --out lidc_presence.npz

The classifier's own settings are flags.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from hpu_jax import cli, presence  # noqa: E402
from hpu_jax import workdir as run_dir  # noqa: E402

config_flags.DEFINE_config_file('config', None, 'Optional config (default: the workdir\'s).')
flags.DEFINE_string('workdir', None, 'The trained workdir (its config names the data).')
flags.DEFINE_string('out', None, 'Where to write (default: <workdir>/presence.npz).')
flags.DEFINE_integer('steps', presence.Settings.steps, 'Training steps.')
flags.DEFINE_integer('batch_size', presence.Settings.batch_size, 'Images per step.')
flags.DEFINE_float('learning_rate', presence.Settings.learning_rate, 'Adam learning rate.')
flags.DEFINE_integer('seed', presence.Settings.seed,
                     'Seed of the first member; member i uses seed + i.')
flags.DEFINE_integer('members', presence.MEMBERS, 'Classifiers to train and combine.')
flags.DEFINE_list('combine', None, 'Combine these trained classifier files instead of '
                  'training (scored on the validation split where a config or workdir is given).')


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  f = flags.FLAGS
  if f.combine:
    if not f.out:
      raise app.UsageError('--combine needs --out.')
    clf = presence.combine([presence.load(path) for path in f.combine])
    config = f.config or (run_dir.load_config(f.workdir) if f.workdir else None)
    if config is not None:
      presence.score_validation(clf, *presence.validation_data(config),
                                f'{len(clf.members)} members')
    print(f'presence classifier: {presence.save(f.out, clf)} ({len(clf.members)} members)')
    return
  if not f.workdir and not (f.config and f.out):
    raise app.UsageError('expected --workdir, or --config and --out.')
  presence.train_workdir(f.workdir, config=f.config, out=f.out, steps=f.steps,
                         batch_size=f.batch_size, learning_rate=f.learning_rate, seed=f.seed,
                         members=f.members)


if __name__ == '__main__':
  cli.run(main)
