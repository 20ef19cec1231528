"""A procedurally generated segmentation set whose annotation distribution is known exactly.

Each example is a grayscale image with at most one lesion-like object on a
smooth textured background, plus annotations drawn from an exactly known
distribution over five crisp masks ("modes"). It plays the role of the
PU-Net paper's flipped-class Cityscapes: unlimited ground-truth draws per
image (`SyntheticDataset.sample_annotations`), an oracle GED floor, and true
mode frequencies to compare a model's samples with.

Generative process of example `i` of split `s` (a pure function of
(seed, s, i) and, for the pixels only, of `image_size`):

1. With probability `LESION_FREE_PROB` = 0.2 the image shows no lesion; every
   annotator marks nothing (mode 0 has probability 1).
2. Otherwise a lesion is drawn: a disc "core" of radius r ~ U(0.10, 0.16) x
   image_size and two "lobes", discs of radius `LOBE_RADIUS` x r whose centres
   lie `LOBE_OFFSET` x r from the core centre, at a random angle for lobe 0
   and that angle + U(120, 240) degrees for lobe 1 (so the lobes never touch
   each other). The centre is uniform over the positions that keep the whole
   lesion at least `BORDER_PAD` x image_size away from the image border.
3. The core gets one of three contrast levels, uniformly, which fixes the
   probability p_mark that an annotator marks the lesion at all (GLOBAL
   ambiguity), see `CORE_LEVELS`:
       strong (+120 grey levels) -> p_mark = 1.0
       medium (+85)              -> p_mark = 0.75
       faint  (+50)              -> p_mark = 0.5
4. Each lobe independently gets one of three contrast levels, uniformly, which
   fixes the probability q_i that an annotator who marks the lesion includes
   lobe i (LOCAL ambiguity), see `LOBE_LEVELS`:
       bright (+110) -> q = 0.9
       medium (+70)  -> q = 0.5
       faint  (+35)  -> q = 0.25
   Inside the core the core's intensity is shown; a lobe's visible contrast is
   that of its part outside the core.
5. Each annotator independently marks nothing with probability 1 - p_mark;
   otherwise the core plus each lobe i with probability q_i. Annotations are
   exactly the mode masks: no boundary noise.

Modes, always in this order (`NUM_MODES` = 5):
    0: empty mask                 p = 1 - p_mark            (1 if lesion-free)
    1: core                       p = p_mark (1 - q0) (1 - q1)
    2: core + lobe 0              p = p_mark q0 (1 - q1)
    3: core + lobe 1              p = p_mark (1 - q0) q1
    4: core + lobe 0 + lobe 1     p = p_mark q0 q1
For a lesion-free image modes 1..4 have probability 0 and empty masks.

With lobe radius 0.85 r at offset 1.15 r, a lobe adds 0.50 pi r^2 outside the
core, so in the continuum IoU(core, core + lobe) = 0.67 and IoU(core + one
lobe, core + both) = 0.75: masks of modes that differ by one lobe are well
separated (on the pixel grid the worst case is about 0.79 at 32 x 32 and 0.77
at 64 x 64; the tests check <= 0.8). The lobes never overlap each other
(centre distance >= 1.99 r > 1.7 r).

Image: base grey level U(60, 80), plus two smooth random fields (4 x 4 and
8 x 8 Gaussian-interpolated grids, standard deviations 6 and 4 grey levels),
plus the lesion with edges blurred over `image_size / 64` pixels, plus white
noise of standard deviation 3, rounded and clipped to uint8.

Random streams: geometry and contrast levels come from
`default_rng([seed, split_id, i, 0])`, the stored annotations from
`[..., 1]`, the image texture from `[..., 2]` and the oracle draws of
`sample_annotations(i, num, s)` from `[..., 3, s]`; so the stored annotations
and oracle draws are independent, and example i does not depend on
`num_examples`.
"""
from typing import Dict, NamedTuple, Optional, Tuple

import numpy as np

NUM_MODES = 5
SPLITS = ('train', 'validation', 'test')

LESION_FREE_PROB = 0.2
# (added grey levels, probability that an annotator marks the lesion).
CORE_LEVELS: Tuple[Tuple[float, float], ...] = ((120.0, 1.0), (85.0, 0.75), (50.0, 0.5))
# (added grey levels, probability that a marking annotator includes the lobe).
LOBE_LEVELS: Tuple[Tuple[float, float], ...] = ((110.0, 0.9), (70.0, 0.5), (35.0, 0.25))
CORE_RADIUS_RANGE = (0.10, 0.16)   # Fraction of image_size.
LOBE_RADIUS = 0.85                 # Fraction of the core radius.
LOBE_OFFSET = 1.15                 # Lobe-centre distance from the core centre / core radius.
LOBE_MIN_SEPARATION_DEG = 120.0    # Lobe 1 angle = lobe 0 angle + U(120, 240) degrees.
BORDER_PAD = 0.04                  # Fraction of image_size kept free around the lesion.
BASE_LEVEL_RANGE = (60.0, 80.0)
FIELD_GRIDS = ((4, 6.0), (8, 4.0))  # (grid nodes per side, std in grey levels).
WHITE_NOISE_STD = 3.0
MIN_IMAGE_SIZE = 32

_STREAM_GEOMETRY, _STREAM_ANNOTATIONS, _STREAM_TEXTURE, _STREAM_ORACLE = 0, 1, 2, 3


class LesionSpec(NamedTuple):
  """The latent description of one example, in pixel units of its image size."""
  has_lesion: bool
  center: Tuple[float, float]          # (row, col) of the core centre.
  core_radius: float
  lobe_centers: Tuple[Tuple[float, float], Tuple[float, float]]
  lobe_radius: float
  core_level: int                      # Index into CORE_LEVELS.
  lobe_levels: Tuple[int, int]         # Indices into LOBE_LEVELS.
  p_mark: float
  q: Tuple[float, float]


def mode_probabilities(p_mark: float, q0: float, q1: float) -> np.ndarray:
  """float64 [NUM_MODES] probabilities of the modes in the module's mode order."""
  return np.array([1.0 - p_mark,
                   p_mark * (1.0 - q0) * (1.0 - q1),
                   p_mark * q0 * (1.0 - q1),
                   p_mark * (1.0 - q0) * q1,
                   p_mark * q0 * q1])


def _check_int(name: str, value, minimum: int) -> int:
  if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
    raise TypeError(f'{name}={value!r}: expected an integer >= {minimum}.')
  if value < minimum:
    raise ValueError(f'{name}={value}: expected an integer >= {minimum}.')
  return int(value)


def _smoothing_matrix(size: int, grid: int) -> np.ndarray:
  """float32 [size, grid] row-normalised Gaussian interpolation weights."""
  pixels = (np.arange(size) + 0.5) / size
  nodes = (np.arange(grid) + 0.5) / grid
  weights = np.exp(-0.5 * ((pixels[:, None] - nodes[None, :]) * grid) ** 2)
  return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


def _field_gain(matrix: np.ndarray) -> float:
  """1 / mean pixel std of matrix @ G @ matrix.T for a unit-variance i.i.d. grid G."""
  row_power = np.sum(matrix.astype(np.float64) ** 2, axis=1)
  return float(1.0 / np.sqrt(np.mean(np.outer(row_power, row_power))))


def _lesion_extent(radius: float, lobe_centers_rel: np.ndarray, lobe_radius: float) -> np.ndarray:
  """[2, 2] distances (low, high) per axis from the core centre to the lesion's bounding box."""
  low = np.maximum(radius, np.max(-lobe_centers_rel, axis=0) + lobe_radius)
  high = np.maximum(radius, np.max(lobe_centers_rel, axis=0) + lobe_radius)
  return np.stack([low, high], axis=1)


def draw_lesion_spec(rng: np.random.Generator, image_size: int) -> LesionSpec:
  """Draws the lesion geometry and contrast levels (the geometry stream's whole use)."""
  has_lesion = bool(rng.random() >= LESION_FREE_PROB)
  radius = rng.uniform(*CORE_RADIUS_RANGE) * image_size
  angle0 = rng.uniform(0.0, 2 * np.pi)
  angle1 = angle0 + np.deg2rad(rng.uniform(LOBE_MIN_SEPARATION_DEG, 360.0 - LOBE_MIN_SEPARATION_DEG))
  angles = np.array([angle0, angle1])
  lobe_rel = LOBE_OFFSET * radius * np.stack([np.sin(angles), np.cos(angles)], axis=1)
  lobe_radius = LOBE_RADIUS * radius
  extent = _lesion_extent(radius, lobe_rel, lobe_radius)
  pad = BORDER_PAD * image_size
  center = np.array([rng.uniform(pad + extent[axis, 0], image_size - pad - extent[axis, 1])
                     for axis in range(2)])
  core_level = int(rng.integers(len(CORE_LEVELS)))
  lobe_levels = tuple(int(v) for v in rng.integers(len(LOBE_LEVELS), size=2))
  lobe_centers = tuple(tuple(float(v) for v in center + rel) for rel in lobe_rel)
  p_mark = CORE_LEVELS[core_level][1] if has_lesion else 0.0
  q = tuple(LOBE_LEVELS[level][1] for level in lobe_levels)
  return LesionSpec(has_lesion, (float(center[0]), float(center[1])), float(radius),
                    lobe_centers, float(lobe_radius), core_level, lobe_levels, p_mark, q)


def _distance_map(coords: np.ndarray, center: Tuple[float, float]) -> np.ndarray:
  """float32 [H, W] distance of every pixel centre to `center`."""
  dy = (coords - np.float32(center[0])) ** 2
  dx = (coords - np.float32(center[1])) ** 2
  return np.sqrt(dy[:, None] + dx[None, :])


def _disc_distances(spec: LesionSpec, coords: np.ndarray) -> Tuple[np.ndarray, ...]:
  """Distance maps to the core centre and to both lobe centres."""
  return (_distance_map(coords, spec.center),
          _distance_map(coords, spec.lobe_centers[0]),
          _distance_map(coords, spec.lobe_centers[1]))


def _mode_masks_from_distances(spec: LesionSpec, distances, image_size: int) -> np.ndarray:
  masks = np.zeros((NUM_MODES, image_size, image_size), np.uint8)
  if not spec.has_lesion:
    return masks
  core = distances[0] <= spec.core_radius
  lobe0 = distances[1] <= spec.lobe_radius
  lobe1 = distances[2] <= spec.lobe_radius
  masks[1] = core
  masks[2] = core | lobe0
  masks[3] = core | lobe1
  masks[4] = masks[2] | lobe1
  return masks


def _soft_disc(distance: np.ndarray, radius: float, edge_width: float) -> np.ndarray:
  """float32 [H, W] in [0, 1]: 1 inside, 0 outside, a linear ramp of `edge_width` px at the rim."""
  return np.clip((np.float32(radius) - distance) * np.float32(1.0 / edge_width) + np.float32(0.5),
                 0.0, 1.0)


def _lesion_intensity(spec: LesionSpec, distances, image_size: int) -> np.ndarray:
  """float32 [H, W] grey levels the lesion adds; the core covers the lobes."""
  edge = max(1.0, image_size / 64.0)
  core = _soft_disc(distances[0], spec.core_radius, edge)
  lobes = np.maximum(
      _soft_disc(distances[1], spec.lobe_radius, edge) * np.float32(LOBE_LEVELS[spec.lobe_levels[0]][0]),
      _soft_disc(distances[2], spec.lobe_radius, edge) * np.float32(LOBE_LEVELS[spec.lobe_levels[1]][0]))
  core_level = np.float32(CORE_LEVELS[spec.core_level][0])
  return lobes + core * (core_level - lobes)


class SyntheticDataset:
  """Random-access source of the synthetic lesion set (grain / TFDS style).

  Example `index` of `split` is a pure function of (seed, split, index) and
  `image_size` (see the module docstring for the process and the mode order).
  `__getitem__` returns numpy values:
    'image': uint8 [H, W] grey levels 0..255.
    'masks': uint8 [A, H, W] 0/1, A = num_annotations draws from the modes.
    'mode_probs': float32 [NUM_MODES], sums to 1.
    'annotation_modes': int32 [A], the mode of each stored annotation.
    'id': str, e.g. 'synthetic/train/00012'.

  With `cache=True` each example is generated once and kept in memory
  (read-only arrays; `cache_nbytes()` says how much the whole split takes):
  generation costs about 0.7 ms per 32 x 32 example in Python, a fifth of a
  2-core CPU during training of the main job's model.
  """

  def __init__(self, split: str, num_examples: int, image_size: int = 128,
               num_annotations: int = 4, seed: int = 0, cache: bool = False):
    if split not in SPLITS:
      raise ValueError(f'split={split!r}: expected one of {SPLITS}.')
    self.split = split
    self.split_id = SPLITS.index(split)
    self.num_examples = _check_int('num_examples', num_examples, 0)
    self.image_size = _check_int('image_size', image_size, MIN_IMAGE_SIZE)
    self.num_annotations = _check_int('num_annotations', num_annotations, 1)
    self.seed = _check_int('seed', seed, 0)
    self._coords = (np.arange(self.image_size) + 0.5).astype(np.float32)
    self._fields = [(_smoothing_matrix(self.image_size, grid), std) for grid, std in FIELD_GRIDS]
    self._field_gains = [_field_gain(matrix) for matrix, _ in self._fields]
    self._cache: Optional[Dict[int, Dict[str, object]]] = {} if cache else None

  def cache_nbytes(self) -> int:
    """Bytes the arrays of the whole split take when cached."""
    pixels = self.image_size * self.image_size
    per_example = pixels * (1 + self.num_annotations) + 4 * NUM_MODES + 4 * self.num_annotations
    return self.num_examples * per_example

  def __len__(self) -> int:
    return self.num_examples

  def __repr__(self) -> str:
    return (f'SyntheticDataset(split={self.split!r}, num_examples={self.num_examples}, '
            f'image_size={self.image_size}, num_annotations={self.num_annotations}, seed={self.seed})')

  def _check_index(self, index) -> int:
    if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
      raise TypeError(f'index={index!r}: expected an integer in [0, {self.num_examples}).')
    if not 0 <= index < self.num_examples:
      raise IndexError(f'index={index}: expected 0 <= index < {self.num_examples} '
                       f'(len of the {self.split!r} split).')
    return int(index)

  def _rng(self, index: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng([self.seed, self.split_id, index, *stream])

  def lesion_spec(self, index: int) -> LesionSpec:
    """The latent geometry, contrast levels and p_mark / q of example `index`."""
    index = self._check_index(index)
    return draw_lesion_spec(self._rng(index, _STREAM_GEOMETRY), self.image_size)

  def mode_probs(self, index: int) -> np.ndarray:
    """float32 [NUM_MODES] exact probabilities of the modes of example `index`."""
    return _mode_probs_of(self.lesion_spec(index)).astype(np.float32)

  def mode_masks(self, index: int) -> np.ndarray:
    """uint8 [NUM_MODES, H, W] 0/1 masks of the modes (mode 0 is all zero)."""
    spec = self.lesion_spec(index)
    distances = _disc_distances(spec, self._coords)
    return _mode_masks_from_distances(spec, distances, self.image_size)

  def sample_modes(self, index: int, num: int, seed: int) -> np.ndarray:
    """int32 [num] i.i.d. mode draws, deterministic in (index, seed), independent of the stored ones."""
    num = _check_int('num', num, 0)
    seed = _check_int('seed', seed, 0)
    probs = _mode_probs_of(self.lesion_spec(index))
    return _draw_modes(self._rng(self._check_index(index), _STREAM_ORACLE, seed), probs, num)

  def sample_annotations(self, index: int, num: int, seed: int) -> np.ndarray:
    """uint8 [num, H, W] fresh ground-truth draws (the oracle sampler); see `sample_modes`."""
    modes = self.sample_modes(index, num, seed)
    return self.mode_masks(index)[modes]

  def _background(self, rng: np.random.Generator) -> np.ndarray:
    image = np.full((self.image_size, self.image_size), rng.uniform(*BASE_LEVEL_RANGE), np.float32)
    for (matrix, std), gain in zip(self._fields, self._field_gains):
      grid = rng.standard_normal((matrix.shape[1], matrix.shape[1]), dtype=np.float32)
      image += np.float32(std * gain) * (matrix @ grid @ matrix.T)
    image += np.float32(WHITE_NOISE_STD) * rng.standard_normal(image.shape, dtype=np.float32)
    return image

  def __getitem__(self, index: int) -> Dict[str, object]:
    index = self._check_index(index)
    if self._cache is None:
      return self._generate(index)
    example = self._cache.get(index)
    if example is None:
      example = self._generate(index)
      for value in example.values():
        if isinstance(value, np.ndarray):
          value.flags.writeable = False
      self._cache[index] = example     # A dict store is atomic; a race only repeats work.
    return dict(example)

  def _generate(self, index: int) -> Dict[str, object]:
    spec = draw_lesion_spec(self._rng(index, _STREAM_GEOMETRY), self.image_size)
    probs = _mode_probs_of(spec)
    image = self._background(self._rng(index, _STREAM_TEXTURE))
    distances = _disc_distances(spec, self._coords)
    if spec.has_lesion:
      image += _lesion_intensity(spec, distances, self.image_size)
    masks = _mode_masks_from_distances(spec, distances, self.image_size)
    modes = _draw_modes(self._rng(index, _STREAM_ANNOTATIONS), probs, self.num_annotations)
    return {
        'image': np.clip(np.rint(image), 0, 255).astype(np.uint8),
        'masks': masks[modes],
        'mode_probs': probs.astype(np.float32),
        'annotation_modes': modes,
        'id': f'synthetic/{self.split}/{index:05d}',
    }


def _mode_probs_of(spec: LesionSpec) -> np.ndarray:
  if not spec.has_lesion:
    return np.eye(NUM_MODES)[0]
  return mode_probabilities(spec.p_mark, *spec.q)


def _draw_modes(rng: np.random.Generator, probs: np.ndarray, num: int) -> np.ndarray:
  """int32 [num] categorical draws by inverse CDF (exactly zero-probability modes never occur)."""
  cdf = np.cumsum(probs)
  cdf /= cdf[-1]
  modes = np.searchsorted(cdf, rng.random(num), side='right')
  return np.minimum(modes, NUM_MODES - 1).astype(np.int32)
