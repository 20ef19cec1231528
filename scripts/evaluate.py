"""Evaluates a trained workdir: N samples per image on a split, report.json
with every metric, a sample grid (PNG) and a sampling-mode animation (GIF).
It prints the metrics, for each S_NCC how many images it was undefined for
(and which: report.json `undefined_images`), and, with several annotators
per image, the metrics by the number of annotators who marked the image
(report.json `metrics_by_marked`) and the fraction of empty samples beside
the annotators' own, by that number and by the size of the marked lesions
(report.json `empty_calibration`; see docs/evaluation.md).

  python scripts/evaluate.py --workdir runs/synthetic                 # its config
  python scripts/evaluate.py --workdir runs/lidc --split test --num_samples 16,100 \
      --which best --out_dir runs/lidc/eval_test

With --presence, each sample's "nothing or a lesion" follows the workdir's
presence classifier (scripts/train_presence.py; hpu_jax.presence) and the
report goes to <workdir>/presence_eval.

The config is the one saved in the workdir; --config (with overrides such as
--config.eval.batch_size=8) replaces it.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

import hpu_jax  # noqa: E402
from hpu_jax import cli, evaluate, presence  # noqa: E402

config_flags.DEFINE_config_file('config', None, 'Optional config (default: the workdir\'s).')
flags.DEFINE_string('workdir', None, 'The training workdir.')
flags.DEFINE_enum('which', 'latest', ['latest', 'best'], 'Which checkpoint.')
flags.DEFINE_integer('step', None, 'A specific checkpoint step (with --which=latest).')
flags.DEFINE_string('split', None, 'Split to evaluate (default: the config\'s eval.split).')
flags.DEFINE_list('num_samples', None, 'Samples per image, e.g. 16,100.')
flags.DEFINE_string('out_dir', None, 'Where to write (default: the workdir; with a presence '
                    'classifier <workdir>/presence_eval).')
flags.DEFINE_bool('presence', False, 'Draw empty samples at the rate of the workdir\'s presence '
                  'classifier (<workdir>/presence.npz, from scripts/train_presence.py).')
flags.DEFINE_string('presence_file', None, 'A presence classifier file (implies --presence).')
flags.mark_flags_as_required(['workdir'])


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # orbax logs every file at INFO.
  f = flags.FLAGS
  run = hpu_jax.load(f.workdir, which=f.which, step=f.step)
  config = f.config or run.config
  evaluate.evaluate_config(
      config, run.params, workdir=f.workdir, step=run.step, split=f.split,
      num_samples=[int(n) for n in f.num_samples] if f.num_samples else None,
      out_dir=f.out_dir,
      presence_file=f.presence_file or (presence.default_path(f.workdir) if f.presence else None))


if __name__ == '__main__':
  cli.run(main)
