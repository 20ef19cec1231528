"""Evaluation: sample N segmentations per image, score them, write report.json
and pictures.

    report = evaluate(sample, params, source, image_size=128, num_samples=(16, 100))
    report['metrics']['ged16'], report['metrics']['hm_iou16'], ...

`sample` is `hpu_jax.make_sampler(model)`. Samples are drawn in batches of
images through the jitted sampler; the largest N is drawn once per image and
each smaller N scores a prefix of those samples (the samples are i.i.d., so a
prefix is a valid N-sample draw). Memory is bounded by one batch whatever the
split size.

On a source that knows its true annotation distribution (the synthetic set:
`sample_annotations` and `mode_masks`), the report adds oracle numbers at the
same N, so the model's numbers have a floor to be read against.
"""
import json
import math
import os
from typing import Dict, Iterable, Optional, Sequence

import jax
import numpy as np

from hpu_jax import metrics as M
from hpu_jax.data import pipeline
from hpu_jax.sampling import MEAN_MODES, MODE_LABELS
from hpu_jax.workdir import GIF_FILE, GRID_FILE, REPORT_FILE

FRESH_ANNOTATIONS = 100      # True annotations drawn per image for *_fresh metrics.


def has_oracle(source) -> bool:
  return all(hasattr(source, name) for name in ('sample_annotations', 'mode_masks', 'mode_probs'))


def _foreground(labels) -> np.ndarray:
  return (np.asarray(labels) > 0).astype(np.uint8)


def _draw(sample, params, rng, images, num_samples: int, mean: str):
  """[B, N, H, W] uint8 labels and [B, N, H, W] float32 foreground probs."""
  out = sample(params, rng, images, num_samples=num_samples, mean=mean)
  labels = np.asarray(out.labels).transpose(1, 0, 2, 3)
  probs = np.asarray(1.0 - out.probs[..., 0]).transpose(1, 0, 2, 3)
  return _foreground(labels), probs


class _Sums:
  """Running sums of per-image values, NaN-aware (undefined values counted)."""

  def __init__(self):
    self.sum, self.count, self.undefined = {}, {}, {}
    self.vectors = {}     # Sums of per-batch vectors, e.g. mode frequencies.

  def add_vector(self, name: str, total) -> None:
    self.vectors[name] = self.vectors.get(name, 0.0) + np.asarray(total, np.float64)

  def add(self, name: str, values, defined=None) -> None:
    values = np.asarray(values, np.float64)
    defined = np.isfinite(values) if defined is None else np.asarray(defined, bool)
    self.sum[name] = self.sum.get(name, 0.0) + float(values[defined].sum())
    self.count[name] = self.count.get(name, 0) + int(defined.sum())
    self.undefined[name] = self.undefined.get(name, 0) + int((~defined).sum())

  def means(self) -> Dict[str, float]:
    return {k: (self.sum[k] / self.count[k] if self.count[k] else math.nan)
            for k in self.sum}


def _score(sums: _Sums, prefix: str, samples, probs, annotations, n: int,
           with_sncc: bool = True) -> None:
  s, a = samples[:, :n], annotations
  distances = M.distance_matrices(s, a)          # One pass for GED and HM-IoU.
  sums.add(f'{prefix}ged{n}', np.asarray(M.ged_from_distances(distances).ged))
  sums.add(f'{prefix}hm_iou{n}', M.hungarian_matched_iou_from_distances(distances.sy))
  if with_sncc:
    sn = M.sncc(probs[:, :n], a)
    sums.add(f'{prefix}sncc{n}', np.asarray(sn.value), np.asarray(sn.defined))


def _oracle_scores(sums: _Sums, source, indices, annotations, samples,
                   num_samples: Sequence[int], seed: int) -> None:
  """Oracle GED at the same N, GED against fresh true annotations, and mode
  frequencies of the model's samples against the true ones."""
  n_max = max(num_samples)
  oracle = np.stack([source.sample_annotations(int(i), n_max, seed) for i in indices])
  fresh = np.stack([source.sample_annotations(int(i), FRESH_ANNOTATIONS, seed + 1)
                    for i in indices])
  mode_masks = np.stack([source.mode_masks(int(i)) for i in indices])
  true_probs = np.stack([source.mode_probs(int(i)) for i in indices])
  for n in num_samples:
    sums.add(f'oracle_ged{n}', np.asarray(M.generalized_energy_distance(oracle[:, :n], annotations).ged))
    sums.add(f'ged{n}_fresh', np.asarray(M.generalized_energy_distance(samples[:, :n], fresh).ged))
    sums.add(f'oracle_ged{n}_fresh', np.asarray(M.generalized_energy_distance(oracle[:, :n], fresh).ged))
  num_modes = mode_masks.shape[1]
  model_freq = M.mode_frequencies(M.assign_modes(samples[:, :n_max], mode_masks), num_modes)
  oracle_freq = M.mode_frequencies(M.assign_modes(oracle, mode_masks), num_modes)
  sums.add('mode_tv', np.asarray(M.total_variation(model_freq, true_probs)))
  sums.add('oracle_mode_tv', np.asarray(M.total_variation(oracle_freq, true_probs)))
  sums.add('unmatched_fraction', np.asarray(model_freq)[:, -1])
  sums.add_vector('model_mode_frequencies', np.asarray(model_freq).sum(0))
  sums.add_vector('true_mode_frequencies', true_probs.sum(0))


def check_settings(*, num_samples: Sequence[int], batch_size: int, num_examples: int,
                   modes: Sequence[str]) -> None:
  """The checks of `evaluate`'s arguments, also run on a config before training."""
  samples = tuple(num_samples)
  if not samples or min(int(n) for n in samples) < 1:
    raise ValueError(f'num_samples={samples}: expected positive sample counts, e.g. (16, 100).')
  if not batch_size > 0:
    raise ValueError(f'batch_size={batch_size}: expected a positive value.')
  if num_examples < 0:
    raise ValueError(f'num_examples={num_examples}: expected >= 0 (0 means all).')
  for mode in modes:
    if mode not in MEAN_MODES:
      raise ValueError(f'modes={tuple(modes)}: expected names from {MEAN_MODES}.')


def evaluate(sample, params, source, *, image_size: int,
             num_samples: Sequence[int] = (16, 100), batch_size: int = 16,
             num_examples: Optional[int] = None, seed: int = 0,
             modes: Sequence[str] = ('full',), progress: bool = True) -> dict:
  """Scores `num_samples` samples per image of `source` (its first
  `num_examples`, default all). Returns the report dict (see REPORT_FILE)."""
  check_settings(num_samples=num_samples, batch_size=batch_size,
                 num_examples=num_examples or 0, modes=modes)
  num_samples = tuple(sorted({int(n) for n in num_samples}))
  n_max, n_min = num_samples[-1], num_samples[0]
  total = len(source) if num_examples is None else min(int(num_examples), len(source))
  oracle = has_oracle(source)
  sums, mode_sums = _Sums(), {m: _Sums() for m in modes if m != 'full'}
  key = jax.random.key(seed)
  from tqdm import tqdm
  bar = tqdm(total=total, unit='img', desc='evaluate', disable=not progress,
             dynamic_ncols=True, mininterval=2.0)
  for batch_index, batch in enumerate(pipeline.eval_batches(
      source, batch_size=batch_size, image_size=image_size, limit=total)):
    v = batch.num_valid
    annotations = batch.masks[:v]
    rng = jax.random.fold_in(key, batch_index)
    samples, probs = _draw(sample, params, rng, batch.images, n_max, 'full')
    samples, probs = samples[:v], probs[:v]
    for n in num_samples:
      _score(sums, '', samples, probs, annotations, n)
    if oracle:
      _oracle_scores(sums, source, batch.indices[:v], annotations, samples,
                     num_samples, seed)
    for mode_index, (mode, msums) in enumerate(mode_sums.items(), 1):
      msamples, mprobs = _draw(sample, params, jax.random.fold_in(rng, mode_index),
                               batch.images, n_min, mode)
      _score(msums, '', msamples[:v], mprobs[:v], annotations, n_min, with_sncc=False)
    bar.update(v)
  bar.close()
  report = {
      'metrics': sums.means(),
      'undefined': {k: n for k, n in sums.undefined.items() if n},
      'num_samples': list(num_samples),
      'num_examples': total,
      'by_sampling_mode': {m: s.means() for m, s in mode_sums.items()},
      'conventions': dict(M.CONVENTIONS),
  }
  if oracle and sums.vectors:
    model_marginal = sums.vectors['model_mode_frequencies'] / total
    true_marginal = sums.vectors['true_mode_frequencies'] / total
    report['mode_frequencies'] = {
        'model': [float(x) for x in model_marginal],
        'true': [float(x) for x in true_marginal] + [0.0],
        'note': ('mean over images of the fraction of the model\'s samples (N = '
                 f'{n_max}) in each true mode; the last entry is "unmatched".')}
    report['conventions']['mode_tv'] = (
        f'Per image, total variation between the mode frequencies of N = {n_max} '
        'samples and the true mode probabilities, averaged over images; '
        'oracle_mode_tv is the same for N true draws (the sampling-noise floor).')
  return report


def quick_validation(sample, params, source, *, image_size: int, num_samples: int,
                     num_examples: Optional[int], batch_size: int, seed: int) -> dict:
  """GED and HM-IoU at a small N on part of a split, for use during training."""
  report = evaluate(sample, params, source, image_size=image_size,
                    num_samples=(num_samples,), batch_size=batch_size,
                    num_examples=num_examples, seed=seed, modes=(), progress=False)
  keep = (f'ged{num_samples}', f'hm_iou{num_samples}', 'oracle_ged' + str(num_samples),
          'mode_tv')
  return {k: v for k, v in report['metrics'].items() if k in keep}


def picture_indices(source, count: int, scan: int = 500) -> list:
  """The first `count` examples that at least one annotator marked (falling
  back to any examples if there are too few)."""
  chosen = []
  for i in range(min(len(source), scan)):
    if np.asarray(source[i]['masks']).any():
      chosen.append(i)
      if len(chosen) == count:
        return chosen
  rest = [i for i in range(min(len(source), scan)) if i not in chosen]
  return (chosen + rest)[:count]


def write_pictures(sample, params, source, workdir: str, *, image_size: int,
                   num_examples: int = 6, num_samples: int = 16, gif_frames: int = 8,
                   gif_samples: int = 4, seed: int = 0,
                   modes: Sequence[str] = ('full', 'local', 'global')) -> Dict[str, str]:
  """The sample grid (PNG) and the sampling-mode animation (GIF)."""
  from hpu_jax import plots
  indices = picture_indices(source, num_examples)
  examples = [pipeline.eval_example(source[i], image_size) for i in indices]
  images = np.stack([e[0] for e in examples])
  annotations = np.stack([e[1] for e in examples])
  key = jax.random.key(seed)
  samples, probs = _draw(sample, params, key, images, num_samples, 'full')
  # One id part per line: row titles stay readable in a narrow margin.
  titles = [str(source[i].get('id', i)).replace('/', '\n') for i in indices]
  paths = {'grid': plots.save_example_grid(
      os.path.join(workdir, GRID_FILE), images[..., 0], annotations, samples,
      titles=titles, sample_probs=probs)}
  by_mode = {}
  for mode in modes:
    labels, _ = _draw(sample, params, jax.random.fold_in(key, len(by_mode) + 1),
                      images[:1], gif_frames * gif_samples, mode)
    by_mode[MODE_LABELS[mode]] = labels[0].reshape(gif_frames, gif_samples, image_size, image_size)
  paths['gif'] = plots.save_sampling_gif(os.path.join(workdir, GIF_FILE), images[0, ..., 0],
                                         by_mode, annotations=annotations[0])
  return paths


def format_table(report: dict) -> str:
  lines = [f"{'metric':<24}{'value':>10}"]
  for name, value in report['metrics'].items():
    lines.append(f'{name:<24}{value:>10.4f}')
  for mode, values in report.get('by_sampling_mode', {}).items():
    for name, value in values.items():
      lines.append(f'{mode + "/" + name:<24}{value:>10.4f}')
  for name, count in report.get('undefined', {}).items():
    lines.append(f'{name}: undefined (constant map) for {count} image(s), left out of its mean')
  return '\n'.join(lines)


def write_report(report: dict, workdir: str) -> str:
  path = os.path.join(workdir, REPORT_FILE)
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    json.dump(report, f, indent=2, sort_keys=False, default=float)
  os.replace(tmp, path)
  return path


def evaluate_config(config, params, *, workdir: str, step: Optional[int],
                    split: Optional[str] = None, num_samples: Optional[Iterable[int]] = None,
                    out_dir: Optional[str] = None) -> dict:
  """The evaluation the config asks for, written into out_dir (default the
  workdir): report.json, the grid PNG and the GIF; prints a short table."""
  from hpu_jax import configuration
  from hpu_jax.sampling import make_sampler
  ec = config.eval
  split = split or str(ec.split)
  num_samples = tuple(num_samples or ec.num_samples)
  out_dir = out_dir or workdir
  os.makedirs(out_dir, exist_ok=True)
  model = configuration.build_model(config.model)
  sample = make_sampler(model, compute_dtype=configuration.compute_dtype(config.model))
  source = configuration.data_source(config.data, split)
  image_size = int(config.data.image_size)
  report = evaluate(sample, params, source, image_size=image_size,
                    num_samples=num_samples, batch_size=int(ec.batch_size),
                    num_examples=int(ec.num_examples) or None, seed=int(ec.seed),
                    modes=tuple(ec.modes))
  report.update({'split': split, 'checkpoint_step': step, 'data': str(config.data.name),
                 'workdir': workdir})
  report['pictures'] = write_pictures(
      sample, params, source, out_dir, image_size=image_size,
      num_examples=int(ec.picture_examples), num_samples=min(16, max(num_samples)),
      gif_frames=int(ec.gif_frames), seed=int(ec.seed),
      modes=tuple(m for m in ('full', 'local', 'global') if m in tuple(ec.modes) or m == 'full'))
  report['report'] = write_report(report, out_dir)
  print(format_table(report))
  print(f"Report: {report['report']}")
  print(f"Pictures: {report['pictures']['grid']}, {report['pictures']['gif']}")
  return report
