"""Samples segmentations of your own images with a trained model.

  python scripts/sample.py --weights model.npz --images a.png b.png c.npy \
      --num_samples 16 --mean full --seed 0 --out samples/
  python scripts/sample.py --workdir runs/synthetic --which best --images_dir scans/ --out samples/
  python scripts/sample.py --weights lidc_slices_cpu --presence lidc_slices_cpu --images a.png --out s/

Inputs: grayscale PNG (8 or 16 bits; a 16-bit PNG is scaled by 65535, not
stretched) or 2-D .npy (float in [0, 1], or integers scaled by their dtype's
maximum); an image of another size than the model's is centre-cropped or
zero-padded to it (printed per image). Per image, OUT/<name>.npz (labels
uint8 [N, H, W], probs float16 [N, H, W] foreground probabilities, the image
as the model saw it, info) and OUT/<name>.png (the image, the samples, their
per-pixel std and mean foreground probability). The same seed gives
byte-identical .npz files. A bad input stops the command with exit status 1
(the images before it keep their outputs) unless --skip_bad_images.
The logic lives in hpu_jax/predict.py, importable from a notebook.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags, logging  # noqa: E402

from hpu_jax import cli  # noqa: E402

flags.DEFINE_string('weights', None, 'An .npz written by scripts/export.py.')
flags.DEFINE_string('workdir', None, 'Or a training workdir.')
flags.DEFINE_enum('which', None, ['latest', 'best'],
                  'With --workdir: which checkpoint (default latest).')
flags.DEFINE_multi_string('images', None, 'Image files (.png, .npy); more may follow '
                          'as plain arguments: --images a.png b.png.')
flags.DEFINE_string('images_dir', None, 'Or a folder: its .png and .npy files.')
flags.DEFINE_integer('num_samples', 16, 'Samples per image.', lower_bound=1)
flags.DEFINE_enum('mean', 'full', ['full', 'local', 'global'],
                  'full: sample every latent level; local: the mean at every level but '
                  'the finest; global: the mean at every level but the coarsest.')
flags.DEFINE_integer('seed', 0, 'Random seed; the same seed gives the same samples.')
flags.DEFINE_string('out', None, 'The folder to write to.')
flags.DEFINE_list('temperature', None,
                  'Multiplies the standard deviations the latents are drawn with: one '
                  'number, or one per latent level, coarsest first (default: the run\'s '
                  'eval.temperature, 1 if unset).')
flags.DEFINE_string('presence', None, 'A presence classifier (scripts/train_presence.py), or '
                    'the name of shipped weights with one (lidc_slices_cpu): the samples\' '
                    '"nothing or a lesion" follows it (hpu_jax.presence).')
flags.DEFINE_integer('batch_size', 8, 'Images sampled together.', lower_bound=1)
flags.DEFINE_bool('skip_bad_images', False, 'Report bad inputs and go on instead of stopping.')
flags.mark_flags_as_required(['out'])


def main(argv):
  f = flags.FLAGS
  if (f.weights is None) == (f.workdir is None):
    raise app.UsageError('expected exactly one of --weights and --workdir.')
  if f.which is not None and f.workdir is None:
    raise app.UsageError('--which applies to --workdir only (a weights file holds one '
                         'checkpoint).')
  images = list(f.images or []) + list(argv[1:])
  if argv[1:] and not f.images:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])} (images go after '
                         '--images).')
  logging.set_verbosity(logging.WARNING)  # orbax logs every file at INFO.
  import hpu_jax
  from hpu_jax import predict
  try:
    paths = predict.list_inputs(images, f.images_dir)
    source = predict.resolve_weights(f.weights) if f.weights else f.workdir
    run = hpu_jax.load(source, which=f.which or 'latest')
    temperature = None
    if f.temperature is not None:
      try:
        temperature = tuple(float(t) for t in f.temperature)
      except ValueError:
        raise ValueError(f'--temperature={",".join(f.temperature)}: expected numbers > 0, '
                         'e.g. 0.8 or 1,1,0.8.') from None
    classifier = None
    if f.presence:
      from hpu_jax import presence
      classifier = presence.load(predict.resolve_presence(f.presence))
    summary = predict.predict(run, paths, f.out, num_samples=f.num_samples, mean=f.mean,
                              seed=f.seed, batch_size=f.batch_size, temperature=temperature,
                              presence=classifier,
                              skip_bad_images=f.skip_bad_images)
  except (FileNotFoundError, ValueError) as e:   # Bad inputs: one line, exit status 1.
    sys.exit(f'error: {e}')
  print(f'Wrote {len(summary.written)} image(s) to {os.path.abspath(f.out)} '
        '(<name>.npz and <name>.png each)'
        + (f'; skipped {len(summary.bad)} bad file(s).' if summary.bad else '.'))


if __name__ == '__main__':
  cli.run(main)
