"""Evaluation: sample N segmentations per image, score them, write report.json
and pictures.

    report = evaluate(sample, params, source, image_size=128, num_samples=(16, 100))
    report['metrics']['ged16'], report['metrics']['hm_iou16'], ...

`sample` is `hpu_jax.make_sampler(model)`. Samples are drawn in batches of
images through the jitted sampler; the largest N is drawn once per image and
each smaller N scores a prefix of those samples (the samples are i.i.d., so a
prefix is a valid N-sample draw). Memory is bounded by one batch whatever the
split size.

S_NCC is computed from the model's 2-class softmax through the foreground
logit log p(fg) - log p(bg), so that both classes' probabilities keep their
float32 relative precision (`hpu_jax.metrics.ncc`); an image where S_NCC is
undefined (a constant map) is counted and named in the report
(`undefined`, `undefined_images`).

With several annotators per image (A >= 2), the report adds
`empty_calibration`: per number k of annotators who marked an image, the
fraction of the model's samples that are empty beside the annotators' own
(A - k) / A, and the same for the marked images grouped by the area of their
marked masks (`EmptyCalibration`); and `metrics_by_marked`: the metrics per k
(`MetricsByMarked`), so that splits with another mix of agreement can be
compared.

`evaluate_config(..., presence_file=...)` samples through a presence
classifier (hpu_jax.presence) and adds its counts to the report ('presence').

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
from hpu_jax.metrics import ncc
from hpu_jax.sampling import MEAN_MODES, MODE_LABELS
from hpu_jax.workdir import GIF_FILE, GRID_FILE, REPORT_FILE

FRESH_ANNOTATIONS = 100      # True annotations drawn per image for *_fresh metrics.
AREA_GROUPS = 5              # Groups of marked images by area in empty_calibration.
PRESENCE_EVAL_DIR = 'presence_eval'   # Default output folder with a presence classifier.

# Conventions of this module's numbers, added to the report's 'conventions'.
REPORT_CONVENTIONS = {
    'sncc_probabilities': (
        'S_NCC is computed from the 2-class softmax of the logits: the '
        'foreground logit d = log p(fg) - log p(bg) of each class\'s own '
        'softmax probability, then p(fg) = sigmoid(d) and p(bg) = sigmoid(-d), '
        'each to float32 relative precision; never 1 - p(bg), which rounds '
        'p(fg) below 3e-8 to 0 in float32.'),
    'sncc_undefined_images': (
        'The report\'s undefined gives, per S_NCC metric and even when 0, the '
        'number of images where S_NCC is undefined (see sncc_undefined), and '
        'undefined_images names them by their id (by their index in the split '
        'where the data has no ids); they are left out of the mean.'),
    'empty_calibration': (
        'For A >= 2 annotators per image, per k = 0..A annotators who marked the '
        'image (at least one foreground pixel): num_images, true_empty_fraction '
        '= (A - k) / A (the annotators\' own fraction of empty masks) and '
        'empty_fractionN = the fraction of the model\'s first N samples per '
        'image (full sampling) with no foreground pixel, pooled over the row\'s '
        'images; null where the row has no image. by_marked_area: the images '
        'with k >= 1 sorted by the mean foreground pixel count of their marked '
        'masks and cut into num_groups groups of (nearly) equal size; per group '
        'area_min and area_max (pixels), num_images, num_images_by_marked (k = '
        '1..A), true_empty_fraction (the mean of (A - k) / A), empty_fractionN '
        '(pooled) and empty_fractionN_by_marked (k = 1..A; null where no image).'),
    'metrics_by_marked': (
        'For A >= 2 annotators per image, per k = 0..A annotators who marked the '
        'image: num_images, metrics (the means of the report\'s metrics over '
        'the row\'s images, with the same conventions; empty where the row has '
        'no image, null where no image of the row defines the metric) and '
        'undefined (per S_NCC metric, the row\'s images left out of its mean). '
        'Each of the report\'s metrics is the mean of the rows\' values weighted '
        'by the images that define it.'),
}


def has_oracle(source) -> bool:
  return all(hasattr(source, name) for name in ('sample_annotations', 'mode_masks', 'mode_probs'))


def _foreground(labels) -> np.ndarray:
  return (np.asarray(labels) > 0).astype(np.uint8)


def _draw(sample, params, rng, images, num_samples: int, mean: str, logits: bool = True,
          temperature=1.0):
  """[B, N, H, W] uint8 foreground masks and [B, N, H, W] float32 foreground
  logits log p(fg) - log p(bg) of the softmax (None with logits=False).

  The logit comes from each class's own probability, not 1 - p(background),
  which in float32 rounds a foreground probability below 3e-8 to 0 and the
  rest near 0 to multiples of 6e-8 (`hpu_jax.metrics.ncc`)."""
  # A sampler without a temperature argument serves the untempered model.
  tempered = {} if np.all(np.asarray(temperature) == 1.0) else {'temperature': temperature}
  out = sample(params, rng, images, num_samples=num_samples, mean=mean, **tempered)
  labels = np.asarray(out.labels).transpose(1, 0, 2, 3)
  if not logits:
    return _foreground(labels), None
  fg_logits = np.asarray(ncc.foreground_logit(out.probs)).transpose(1, 0, 2, 3)
  return _foreground(labels), fg_logits


def _sigmoid(x) -> np.ndarray:
  """The foreground probability of a foreground logit (float32)."""
  import scipy.special
  return scipy.special.expit(np.asarray(x, np.float32))


def _example_id(source, index: int):
  """The example's 'id' (a string), or its index in the source if it has none."""
  example = source[int(index)]
  return str(example['id']) if 'id' in example else int(index)


class _Sums:
  """Running sums of per-image values, NaN-aware (undefined values counted,
  and with `indices`, which images they were)."""

  def __init__(self):
    self.sum, self.count, self.undefined = {}, {}, {}
    self.undefined_indices = {}   # name -> source indices of undefined images
    self.can_be_undefined = set()  # names added with an explicit `defined`
    self.vectors = {}     # Sums of per-batch vectors, e.g. mode frequencies.

  def add_vector(self, name: str, total) -> None:
    self.vectors[name] = self.vectors.get(name, 0.0) + np.asarray(total, np.float64)

  def add(self, name: str, values, defined=None, indices=None) -> None:
    values = np.asarray(values, np.float64)
    if defined is None:
      defined = np.isfinite(values)
    else:
      defined = np.asarray(defined, bool)
      self.can_be_undefined.add(name)
    self.sum[name] = self.sum.get(name, 0.0) + float(values[defined].sum())
    self.count[name] = self.count.get(name, 0) + int(defined.sum())
    self.undefined[name] = self.undefined.get(name, 0) + int((~defined).sum())
    if indices is not None:
      self.undefined_indices.setdefault(name, []).extend(
          int(i) for i in np.asarray(indices)[~defined])

  def undefined_counts(self) -> Dict[str, int]:
    """Every metric that can be undefined (S_NCC), with its count, even 0;
    any other only where some value was not finite."""
    return {k: n for k, n in self.undefined.items() if n or k in self.can_be_undefined}

  def means(self) -> Dict[str, float]:
    return {k: (self.sum[k] / self.count[k] if self.count[k] else math.nan)
            for k in self.sum}


def _score(samples, fg_logits, annotations, n: int) -> Dict[str, tuple]:
  """Per image, GED and HM-IoU of the first n samples, and S_NCC too given
  fg_logits: name -> (values [B], defined [B], or None where a value is
  defined when it is finite)."""
  s, a = samples[:, :n], annotations
  distances = M.distance_matrices(s, a)          # One pass for GED and HM-IoU.
  scores = {f'ged{n}': (np.asarray(M.ged_from_distances(distances).ged), None),
            f'hm_iou{n}': (np.asarray(M.hungarian_matched_iou_from_distances(distances.sy)), None)}
  if fg_logits is not None:
    sn = ncc.sncc_from_logits(fg_logits[:, :n], a)
    scores[f'sncc{n}'] = (np.asarray(sn.value), np.asarray(sn.defined))
  return scores


def _add_scores(sums: _Sums, scores: Dict[str, tuple], indices=None) -> None:
  for name, (values, defined) in scores.items():
    sums.add(name, values, defined, indices)


def annotator_pixels(annotations) -> np.ndarray:
  """[B, A] the foreground pixel count of each annotation; annotations
  [B, A, H, W], non-zero is foreground. An annotator marked an image where
  the count is positive."""
  annotations = np.asarray(annotations)
  return (annotations.reshape(annotations.shape[0], annotations.shape[1], -1) != 0).sum(-1)


class MetricsByMarked:
  """The metrics per number k of annotators who marked the image (k = 0..A).

  Splits with another mix of agreement score differently with the same
  model (an image all 4 annotators marked is scored against four outlines,
  one that 2 marked against two outlines and two empty masks); these rows
  let two splits, or two papers' splits, be compared k by k and re-weighted.

      by_marked = MetricsByMarked()
      by_marked.add(scores, annotations)   # per batch, _score's dict
      by_marked.table()                    # the report's 'metrics_by_marked', or None
  """

  def __init__(self):
    self.num_annotators = None
    self._sums = {}          # k -> _Sums

  def add(self, scores: Dict[str, tuple], annotations) -> None:
    annotations = np.asarray(annotations)
    a = annotations.shape[1]
    if self.num_annotators is None:
      self.num_annotators = a
    elif a != self.num_annotators:
      raise ValueError(f'annotations of shape {annotations.shape}: {a} annotators per '
                       f'image; expected {self.num_annotators}, as in the earlier batches.')
    marked = (annotator_pixels(annotations) > 0).sum(-1)
    for k in np.unique(marked):
      keep = marked == k
      sums = self._sums.setdefault(int(k), _Sums())
      for name, (values, defined) in scores.items():
        sums.add(name, np.asarray(values)[keep],
                 None if defined is None else np.asarray(defined)[keep])

  def table(self) -> Optional[dict]:
    """The report's 'metrics_by_marked' (see docs/evaluation.md), or None
    with fewer than 2 annotators per image (or no image)."""
    a = self.num_annotators
    if a is None or a < 2:
      return None
    rows = []
    for k in range(a + 1):
      sums = self._sums.get(k)
      # Every metric scored every image of the row, defined or not.
      name = next(iter(sums.count)) if sums else None
      count = sums.count[name] + sums.undefined[name] if sums else 0
      means = sums.means() if sums else {}
      rows.append({'marked_by': k, 'num_images': int(count),
                   # null where every image of the row is undefined (S_NCC).
                   'metrics': {n: None if math.isnan(v) else v for n, v in means.items()},
                   'undefined': sums.undefined_counts() if sums else {}})
    return {'num_annotators': a, 'rows': rows}


class EmptyCalibration:
  """Whether the model samples empty masks as often as the annotators draw them.

  For each image, k of its A annotators marked it (drew at least one
  foreground pixel); the annotators' own fraction of empty masks is
  (A - k) / A. Per k = 0..A this counts the images and, for each N, the
  fraction of their first N samples that are empty (no foreground pixel),
  pooled over the images of that row (the same as the mean over them of each
  image's fraction, as every image has N samples).

  The same fractions for the marked images grouped by size
  (`by_marked_area`): a model that reads only the size of a lesion from the
  image can follow the annotators by area and still compress the table by k.

      cal = EmptyCalibration((16, 100))
      cal.add(samples, annotations)   # per batch: [B, >= 100, H, W], [B, A, H, W]
      cal.table()                     # the report's 'empty_calibration', or None
  """

  def __init__(self, num_samples: Sequence[int], area_groups: int = AREA_GROUPS):
    self.num_samples = tuple(sorted({int(n) for n in num_samples}))
    if not self.num_samples or self.num_samples[0] < 1:
      raise ValueError(f'num_samples={tuple(num_samples)}: expected positive sample counts.')
    if int(area_groups) < 1:
      raise ValueError(f'area_groups={area_groups}: expected a positive number of groups.')
    self.area_groups = int(area_groups)
    self.num_annotators = None
    # Per image, batch by batch: k, the mean area of its marked masks (pixels)
    # and its empty samples among the first N, for each N of num_samples.
    self._marked, self._area, self._empty = [], [], []

  def add(self, samples, annotations) -> None:
    """samples [B, N, H, W] (N >= the largest N), annotations [B, A, H, W];
    non-zero is foreground."""
    samples, annotations = np.asarray(samples), np.asarray(annotations)
    if samples.ndim != 4 or annotations.ndim != 4:
      raise ValueError(f'samples {samples.shape} and annotations {annotations.shape}: '
                       'expected [B, N, H, W] and [B, A, H, W].')
    b, n, a = samples.shape[0], samples.shape[1], annotations.shape[1]
    if annotations.shape[0] != b:
      raise ValueError(f'samples {samples.shape} and annotations {annotations.shape}: '
                       'expected the same number of images B.')
    if n < self.num_samples[-1]:
      raise ValueError(f'samples of shape {samples.shape}: {n} samples per image; '
                       f'expected at least N = {self.num_samples[-1]}.')
    if a < 1:
      raise ValueError(f'annotations of shape {annotations.shape}: expected at least '
                       'one annotator per image.')
    if self.num_annotators is None:
      self.num_annotators = a
    elif a != self.num_annotators:
      raise ValueError(f'annotations of shape {annotations.shape}: {a} annotators per '
                       f'image; expected {self.num_annotators}, as in the earlier batches.')
    pixels = annotator_pixels(annotations)                            # [B, A] foreground
    marked = (pixels > 0).sum(-1)                                     # [B] k
    empty = ~(samples.reshape(b, n, -1) != 0).any(-1)                 # [B, N]
    self._marked.append(marked)
    self._area.append(pixels.sum(-1) / np.maximum(marked, 1))
    self._empty.append(np.stack([empty[:, :m].sum(-1) for m in self.num_samples], -1))

  def table(self) -> Optional[dict]:
    """The report's 'empty_calibration' (see docs/evaluation.md), or None
    with fewer than 2 annotators per image (or no image)."""
    a = self.num_annotators
    if a is None or a < 2:
      return None
    marked, area = np.concatenate(self._marked), np.concatenate(self._area)
    empty = np.concatenate(self._empty)                      # [images, len(num_samples)]
    rows = []
    for k in range(a + 1):
      count = int((marked == k).sum())
      row = {'marked_by': k, 'num_images': count, 'true_empty_fraction': (a - k) / a}
      for col, m in enumerate(self.num_samples):
        row[f'empty_fraction{m}'] = (float(empty[marked == k, col].sum()) / (count * m)
                                     if count else None)
      rows.append(row)
    table = {'num_annotators': a, 'num_samples': list(self.num_samples), 'rows': rows}
    by_area = self._by_marked_area(marked, area, empty)
    if by_area is not None:
      table['by_marked_area'] = by_area
    return table

  def _by_marked_area(self, marked, area, empty) -> Optional[dict]:
    """The marked images (k >= 1) sorted by the mean area of their marked
    masks and cut into `area_groups` groups of (nearly) equal size; per
    group the area range, the images per k, the annotators' mean empty
    fraction and the model's, pooled and per k. None without a marked image."""
    a = self.num_annotators
    keep = marked > 0
    if not keep.any():
      return None
    marked, area, empty = marked[keep], area[keep], empty[keep]
    order = np.argsort(area, kind='stable')
    rows = []
    for group in np.array_split(order, min(self.area_groups, len(order))):
      k = marked[group]
      row = {'area_min': float(area[group].min()), 'area_max': float(area[group].max()),
             'num_images': int(len(group)),
             'num_images_by_marked': [int((k == j).sum()) for j in range(1, a + 1)],
             'true_empty_fraction': float(np.mean((a - k) / a))}
      for col, m in enumerate(self.num_samples):
        e = empty[group, col]
        row[f'empty_fraction{m}'] = float(e.sum()) / (len(group) * m)
        row[f'empty_fraction{m}_by_marked'] = [
            float(e[k == j].sum()) / ((k == j).sum() * m) if (k == j).any() else None
            for j in range(1, a + 1)]
      rows.append(row)
    return {'num_groups': len(rows), 'rows': rows}


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
             modes: Sequence[str] = ('full',), progress: bool = True,
             temperature=1.0) -> dict:
  """Scores `num_samples` samples per image of `source` (its first
  `num_examples`, default all), drawn at `temperature` (`make_sampler`).
  Returns the report dict (see REPORT_FILE)."""
  check_settings(num_samples=num_samples, batch_size=batch_size,
                 num_examples=num_examples or 0, modes=modes)
  num_samples = tuple(sorted({int(n) for n in num_samples}))
  n_max, n_min = num_samples[-1], num_samples[0]
  total = len(source) if num_examples is None else min(int(num_examples), len(source))
  oracle = has_oracle(source)
  sums, mode_sums = _Sums(), {m: _Sums() for m in modes if m != 'full'}
  calibration = EmptyCalibration(num_samples)
  by_marked = MetricsByMarked()
  key = jax.random.key(seed)
  from tqdm import tqdm
  bar = tqdm(total=total, unit='img', desc='evaluate', disable=not progress,
             dynamic_ncols=True, mininterval=2.0)
  for batch_index, batch in enumerate(pipeline.eval_batches(
      source, batch_size=batch_size, image_size=image_size, limit=total)):
    v = batch.num_valid
    annotations = batch.masks[:v]
    rng = jax.random.fold_in(key, batch_index)
    samples, fg_logits = _draw(sample, params, rng, batch.images, n_max, 'full',
                               temperature=temperature)
    samples, fg_logits = samples[:v], fg_logits[:v]
    for n in num_samples:
      scores = _score(samples, fg_logits, annotations, n)
      _add_scores(sums, scores, indices=batch.indices[:v])
      by_marked.add(scores, annotations)
    calibration.add(samples, annotations)
    if oracle:
      _oracle_scores(sums, source, batch.indices[:v], annotations, samples,
                     num_samples, seed)
    for mode_index, (mode, msums) in enumerate(mode_sums.items(), 1):
      msamples, _ = _draw(sample, params, jax.random.fold_in(rng, mode_index),
                          batch.images, n_min, mode, logits=False, temperature=temperature)
      _add_scores(msums, _score(msamples[:v], None, annotations, n_min))
    bar.update(v)
  bar.close()
  ids = {}                                   # Read once per undefined image.
  for index in sorted({i for v in sums.undefined_indices.values() for i in v}):
    ids[index] = _example_id(source, index)
  report = {
      'metrics': sums.means(),
      'undefined': sums.undefined_counts(),
      'undefined_images': {k: [ids[i] for i in sums.undefined_indices.get(k, [])]
                           for k in sums.undefined_counts() if k in sums.can_be_undefined},
      'num_samples': list(num_samples),
      'num_examples': total,
      'temperature': ([float(t) for t in temperature] if isinstance(temperature, (tuple, list))
                      else float(temperature)),
      'by_sampling_mode': {m: s.means() for m, s in mode_sums.items()},
      'conventions': dict(M.CONVENTIONS),
  }
  report['conventions'].update(REPORT_CONVENTIONS)
  table = calibration.table()
  if table is not None:
    report['empty_calibration'] = table
  table = by_marked.table()
  if table is not None:
    report['metrics_by_marked'] = table
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
                   modes: Sequence[str] = ('full', 'local', 'global'),
                   temperature=1.0) -> Dict[str, str]:
  """The sample grid (PNG) and the sampling-mode animation (GIF)."""
  from hpu_jax import plots
  indices = picture_indices(source, num_examples)
  examples = [pipeline.eval_example(source[i], image_size) for i in indices]
  images = np.stack([e[0] for e in examples])
  annotations = np.stack([e[1] for e in examples])
  key = jax.random.key(seed)
  samples, fg_logits = _draw(sample, params, key, images, num_samples, 'full',
                             temperature=temperature)
  probs = _sigmoid(fg_logits)
  # One id part per line: row titles stay readable in a narrow margin.
  titles = [str(source[i].get('id', i)).replace('/', '\n') for i in indices]
  paths = {'grid': plots.save_example_grid(
      os.path.join(workdir, GRID_FILE), images[..., 0], annotations, samples,
      titles=titles, sample_probs=probs)}
  by_mode = {}
  for mode in modes:
    labels, _ = _draw(sample, params, jax.random.fold_in(key, len(by_mode) + 1),
                      images[:1], gif_frames * gif_samples, mode, logits=False)
    by_mode[MODE_LABELS[mode]] = labels[0].reshape(gif_frames, gif_samples, image_size, image_size)
  paths['gif'] = plots.save_sampling_gif(os.path.join(workdir, GIF_FILE), images[0, ..., 0],
                                         by_mode, annotations=annotations[0])
  return paths


_IDS_SHOWN = 5    # Undefined images named in the printed summary.


def format_undefined(report: dict) -> list:
  """One line per metric that can be undefined: how many images, which."""
  lines = []
  total = report.get('num_examples')
  of = f' of {total}' if total is not None else ''
  for name, count in report.get('undefined', {}).items():
    if not count:
      lines.append(f'{name}: defined for all {total} images' if total is not None
                   else f'{name}: defined for every image')
      continue
    ids = report.get('undefined_images', {}).get(name, [])
    shown = ', '.join(str(i) for i in ids[:_IDS_SHOWN])
    more = f', ... ({len(ids)} in report.json undefined_images)' if len(ids) > _IDS_SHOWN else ''
    lines.append(f'{name}: undefined (a constant map) for {count}{of} images, left out '
                 f'of its mean' + (f': {shown}{more}' if ids else ''))
  return lines


def format_presence(summary: Optional[dict]) -> list:
  """The 'presence' summary as text lines (none without one)."""
  if not summary:
    return []
  members = summary.get('members', 1)
  return [f"Presence classifier {summary['file']}"
          f"{f' ({members} members)' if members > 1 else ''}: mean p(marked) "
          f"{summary['mean_marked_probability']:.3f}, {summary['empty_slots']} of "
          f"{summary['slots']} sample slots drawn empty, {summary['fallback_slots']} "
          f"kept the model's own draw (no draw of their kind in {summary['max_rounds']} "
          f"rounds), {summary['draws']} draws of the model."]


def format_calibration(table: Optional[dict]) -> list:
  """The 'empty_calibration' table as text lines (none without one)."""
  if not table:
    return []
  a, ns = table['num_annotators'], table['num_samples']
  lines = [f'Empty samples by the number of the {a} annotators who marked the image '
           '(true: their own empty fraction):',
           f"{'marked by':>9}{'images':>8}{'true':>8}" + ''.join(f'{"N=" + str(n):>8}' for n in ns)]
  for row in table['rows']:
    values = ''.join(f'{"-":>8}' if row[f'empty_fraction{n}'] is None
                     else f'{row[f"empty_fraction{n}"]:>8.3f}' for n in ns)
    lines.append(f"{str(row['marked_by']) + '/' + str(a):>9}{row['num_images']:>8}"
                 f"{row['true_empty_fraction']:>8.3f}{values}")
  by_area = table.get('by_marked_area')
  if by_area:
    n = ns[-1]
    lines += [f"Empty samples by the mean area of the marked masks (pixels), the marked images in "
              f"{by_area['num_groups']} groups by area (N={n} by 1/{a} .. {a}/{a} marked):",
              f"{'area':>13}{'images':>8}{'true':>8}" + ''.join(f'{"N=" + str(m):>8}' for m in ns)
              + '  by marked']
    for row in by_area['rows']:
      values = ''.join(f"{row[f'empty_fraction{m}']:>8.3f}" for m in ns)
      by_k = ' '.join('-' if v is None else f'{v:.2f}' for v in row[f'empty_fraction{n}_by_marked'])
      lines.append(f"{row['area_min']:>6.0f}-{row['area_max']:<6.0f}{row['num_images']:>8}"
                   f"{row['true_empty_fraction']:>8.3f}{values}  {by_k}")
  return lines


def format_by_marked(table: Optional[dict]) -> list:
  """The 'metrics_by_marked' table as text lines (none without one)."""
  if not table:
    return []
  a = table['num_annotators']
  names = []
  for row in table['rows']:
    names += [n for n in row['metrics'] if n not in names]
  lines = [f'Metrics by the number of the {a} annotators who marked the image:',
           f"{'marked by':>9}{'images':>8}" + ''.join(f'{n:>10}' for n in names)]
  for row in table['rows']:
    values = ''.join(f'{"-":>10}' if row['metrics'].get(n) is None
                     else f"{row['metrics'][n]:>10.4f}" for n in names)
    lines.append(f"{str(row['marked_by']) + '/' + str(a):>9}{row['num_images']:>8}{values}")
  return lines


def format_table(report: dict) -> str:
  lines = [f"{'metric':<24}{'value':>10}"]
  for name, value in report['metrics'].items():
    lines.append(f'{name:<24}{value:>10.4f}')
  for mode, values in report.get('by_sampling_mode', {}).items():
    for name, value in values.items():
      lines.append(f'{mode + "/" + name:<24}{value:>10.4f}')
  lines += format_undefined(report)
  lines += format_presence(report.get('presence'))
  lines += format_by_marked(report.get('metrics_by_marked'))
  lines += format_calibration(report.get('empty_calibration'))
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
                    out_dir: Optional[str] = None, presence_file: Optional[str] = None) -> dict:
  """The evaluation the config asks for, written into out_dir (default the
  workdir): report.json, the grid PNG and the GIF; prints a short table.

  With `presence_file` (a classifier from scripts/train_presence.py) the
  samples' "nothing or a lesion" follows the classifier (hpu_jax.presence),
  the report says so under 'presence', and out_dir defaults to
  <workdir>/presence_eval, beside the HPU-Net's own report."""
  from hpu_jax import configuration
  from hpu_jax.sampling import make_sampler
  ec = config.eval
  split = split or str(ec.split)
  num_samples = tuple(num_samples or ec.num_samples)
  out_dir = out_dir or (os.path.join(workdir, PRESENCE_EVAL_DIR) if presence_file else workdir)
  model = configuration.build_model(config.model)
  sample = make_sampler(model, compute_dtype=configuration.compute_dtype(config.model))
  classifier = None
  if presence_file:
    from hpu_jax import presence
    classifier = presence.load(presence_file)
    presence.check_image_size(classifier, config.data.image_size, f'{presence_file}: a classifier')
    sample = presence.make_sampler(sample, classifier)
  os.makedirs(out_dir, exist_ok=True)
  source = configuration.data_source(config.data, split)
  image_size = int(config.data.image_size)
  temperature = configuration.sampling_temperature(config)
  report = evaluate(sample, params, source, image_size=image_size,
                    num_samples=num_samples, batch_size=int(ec.batch_size),
                    num_examples=int(ec.num_examples) or None, seed=int(ec.seed),
                    modes=tuple(ec.modes), temperature=temperature)
  report.update({'split': split, 'checkpoint_step': step, 'data': str(config.data.name),
                 'workdir': workdir})
  if classifier is not None:
    report['presence'] = dict(sample.summary(), file=os.path.abspath(presence_file),
                              members=len(classifier.members),
                              validation=classifier.meta.get('validation'))
  report['pictures'] = write_pictures(
      sample, params, source, out_dir, image_size=image_size,
      num_examples=int(ec.picture_examples), num_samples=min(16, max(num_samples)),
      gif_frames=int(ec.gif_frames), seed=int(ec.seed),
      modes=tuple(m for m in ('full', 'local', 'global') if m in tuple(ec.modes) or m == 'full'),
      temperature=temperature)
  report['report'] = write_report(report, out_dir)
  print(format_table(report))
  print(f"Report: {report['report']}")
  print(f"Pictures: {report['pictures']['grid']}, {report['pictures']['gif']}")
  return report
