"""An explicit weight on "nothing": a small classifier of how many annotators
mark an image, and a sampler whose empty samples follow it.

The HPU-Net makes its "nothing or a lesion" choice through its coarsest
latent and learns it only through that level's KL, from one annotator's mask
per step. On LIDC that choice follows the radiologists' agreement less well
than the image allows (docs/results.md). This module adds, beside a trained
HPU-Net and without changing it, a classifier trained on the fraction of the
annotators who marked each training image, and a sampler that draws each
sample empty with the classifier's probability of "nothing":

    clf = presence.train(images, masks, image_size=64)        # or presence.load(path)
    presence.save('runs/lidc/presence.npz', clf)
    sample = presence.make_sampler(run.sample, clf)           # same call as run.sample
    out = sample(run.params, jax.random.key(0), images, num_samples=16)

Every sample stays one of the HPU-Net's own draws (labels, probabilities and
latents): per image, each of the N sample slots is independently "empty"
with probability 1 - p(marked) from the classifier, and takes the next of the
model's draws that is empty, or else the next that is not. The draws come in
rounds of N per image, drawn again only for the images whose slots are not
filled, at most `max_rounds` rounds; a slot whose kind the model never drew
in those rounds keeps the model's own next draw (a fallback, counted in
`summary()`). The slots are exchangeable, so the first n of N samples are a
valid n-sample draw, as the evaluation needs.

The classifier sees the model's input (the image at the model's size, in
[0, 1]) and nothing else: ten 3 x 3 convolutions (two per level, 16-64
channels, average pooling between levels), a global mean, one hidden layer;
0.22 M parameters. It is trained with sigmoid cross-entropy against the
fraction of annotators with a foreground pixel in the image, with random
flips and rotations by multiples of 90 degrees, Adam, the learning rate cut
to 0.3 x at 70 % and 90 % of the steps. Several such classifiers trained
from different seeds make one (`combine`; `train_workdir` trains three by
default): its logit is the mean of theirs.

Where the sampler holds the coarsest latent at its mean (mean='local' or
mean=True), the model makes no global choice to reweight and the sampler is
the HPU-Net's own.
"""
import dataclasses
import json
import os
from typing import Any, Dict, NamedTuple, Optional, Sequence, Tuple

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import optax

from hpu_jax import npz_file
from hpu_jax.data import pipeline
from hpu_jax.sampling import Samples

FORMAT = 'hpu_jax.presence/2'
MEMBERS = 3          # Classifiers trained from consecutive seeds and combined.
SINGLE_MEMBER_FORMAT = 'hpu_jax.presence/1'   # Read too: params/<module>/<name>, one member.
PARAMS_PREFIX = 'params/'
META_KEY = 'meta'


@dataclasses.dataclass(frozen=True)
class Settings:
  """How the classifier is built and trained (stored with it)."""
  widths: Tuple[int, ...] = (16, 32, 64, 64, 64)   # Channels per level, two 3x3 convs each.
  hidden: int = 64                                  # Units of the hidden layer.
  steps: int = 3000
  batch_size: int = 64
  learning_rate: float = 1e-3
  seed: int = 0

  def check(self) -> None:
    if not self.widths or any(int(w) < 1 for w in self.widths):
      raise ValueError(f'widths={self.widths}: expected positive channel counts.')
    for name in ('hidden', 'steps', 'batch_size'):
      if int(getattr(self, name)) < 1:
        raise ValueError(f'{name}={getattr(self, name)}: expected a positive integer.')
    if not float(self.learning_rate) > 0:
      raise ValueError(f'learning_rate={self.learning_rate}: expected a positive number.')


class Presence(NamedTuple):
  """A trained classifier: the Haiku params of each member (one, or several
  trained alike from different seeds, whose logits are averaged) and what
  they were trained with."""
  members: Tuple[Any, ...]   # One Haiku params dict per member.
  meta: Dict[str, Any]       # settings, image_size, and what training measured.

  @property
  def image_size(self) -> int:
    return int(self.meta['image_size'])

  def marked_probability(self, images) -> np.ndarray:
    """[B] the probability that an annotator marks each image; images
    [B, H, W] or [B, H, W, 1] float in [0, 1] at the model's size. With
    several members, the sigmoid of their mean logit."""
    images = _to_images(images, self.image_size)
    settings = Settings(**_settings_fields(self.meta['settings']))
    apply = _apply(settings.widths, settings.hidden)
    logits = np.mean([np.asarray(apply(params, images), np.float64)
                      for params in self.members], axis=0)
    return 1.0 / (1.0 + np.exp(-logits))


def _settings_fields(stored: dict) -> dict:
  fields = dict(stored)
  fields['widths'] = tuple(int(w) for w in fields['widths'])
  return fields


def _classifier(widths: Sequence[int], hidden: int):
  def forward(images):
    x = images
    for width in widths:
      x = jax.nn.relu(hk.Conv2D(int(width), 3)(x))
      x = jax.nn.relu(hk.Conv2D(int(width), 3)(x))
      x = hk.avg_pool(x, (1, 2, 2, 1), (1, 2, 2, 1), 'SAME')
    x = jax.nn.relu(hk.Linear(int(hidden))(x.mean((1, 2))))
    return hk.Linear(1)(x)[:, 0]
  return hk.without_apply_rng(hk.transform(forward))


_APPLY_CACHE = {}


def _apply(widths: Tuple[int, ...], hidden: int):
  """The jitted logits of a classifier shape (one compile per shape)."""
  key = (tuple(widths), int(hidden))
  if key not in _APPLY_CACHE:
    _APPLY_CACHE[key] = jax.jit(_classifier(widths, hidden).apply)
  return _APPLY_CACHE[key]


def _to_images(images, image_size: int) -> np.ndarray:
  images = np.asarray(images, np.float32)
  if images.ndim == 3:
    images = images[..., None]
  if images.ndim != 4 or images.shape[-1] != 1:
    raise ValueError(f'images of shape {images.shape}: expected [B, H, W] or [B, H, W, 1].')
  if images.shape[1:3] != (image_size, image_size):
    raise ValueError(f'images of shape {images.shape}: the classifier was trained on '
                     f'{image_size} x {image_size} images.')
  return images


def marked_fraction(masks) -> np.ndarray:
  """[N] the fraction of annotators with a foreground pixel; masks [N, A, H, W]."""
  masks = np.asarray(masks)
  if masks.ndim != 4:
    raise ValueError(f'masks of shape {masks.shape}: expected [N, A, H, W].')
  return (masks.reshape(masks.shape[0], masks.shape[1], -1) != 0).any(-1).mean(-1)


def centre_images_and_targets(images, masks, image_size: int):
  """Stored images [N, S, S] uint8 and masks [N, A, S, S] -> the centre crops
  at image_size as float32 [N, H, W, 1] in [0, 1] (the model's evaluation
  input) and the fraction of annotators who marked each crop [N]."""
  images, masks = np.asarray(images), np.asarray(masks)
  if images.ndim != 3 or masks.ndim != 4 or masks.shape[0] != images.shape[0] \
      or masks.shape[2:] != images.shape[1:]:
    raise ValueError(f'images {images.shape} and masks {masks.shape}: expected '
                     '[N, S, S] and [N, A, S, S].')
  stored = images.shape[1]
  if stored < image_size:
    raise ValueError(f'images of size {stored}: smaller than image_size={image_size}.')
  top = pipeline.centre_crop_offset(stored, image_size)
  crop = slice(top, top + image_size)
  x = pipeline.image_to_float(images[:, crop, crop])
  return x, marked_fraction(masks[:, :, crop, crop]).astype(np.float32)


def _augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  if rng.random() < 0.5:
    x = x[:, :, ::-1]
  if rng.random() < 0.5:
    x = x[:, ::-1]
  return np.ascontiguousarray(np.rot90(x, int(rng.integers(4)), axes=(1, 2)))


def cross_entropy(marked_probability, target) -> float:
  """Mean binary cross-entropy (nats) of predicted against true fractions."""
  p = np.clip(np.asarray(marked_probability, np.float64), 1e-7, 1 - 1e-7)
  t = np.asarray(target, np.float64)
  return float(np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p))))


def scores(presence: Presence, images, target, batch_size: int = 256) -> Dict[str, float]:
  """How well the classifier follows the annotators on (images, target):
  cross-entropy, the correlation with the true fraction, and the
  cross-entropy of the best constant (the true mean) for scale."""
  target = np.asarray(target, np.float64)
  p = np.concatenate([presence.marked_probability(images[i:i + batch_size])
                      for i in range(0, len(images), batch_size)])
  corr = float(np.corrcoef(p, target)[0, 1]) if np.std(p) > 0 and np.std(target) > 0 \
      else float('nan')
  return {'cross_entropy': cross_entropy(p, target),
          'constant_cross_entropy': cross_entropy(np.full_like(target, target.mean()), target),
          'correlation': corr, 'num_images': int(len(target))}


def train(images, masks, *, image_size: int, settings: Settings = Settings(),
          log_every: int = 500, log=print) -> Presence:
  """The classifier trained on stored images [N, S, S] uint8 and all their
  annotators' masks [N, A, S, S] (centre crops at image_size)."""
  settings.check()
  x, target = centre_images_and_targets(images, masks, image_size)
  net = _classifier(settings.widths, settings.hidden)
  params = net.init(jax.random.key(settings.seed), x[:1])
  steps = int(settings.steps)
  schedule = optax.piecewise_constant_schedule(
      settings.learning_rate, {int(steps * 0.7): 0.3, int(steps * 0.9): 0.3})
  optimizer = optax.adam(schedule)
  opt_state = optimizer.init(params)

  @jax.jit
  def step(params, opt_state, x, y):
    def loss_fn(p):
      return jnp.mean(optax.sigmoid_binary_cross_entropy(net.apply(p, x), y))
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  rng = np.random.default_rng(settings.seed)
  losses = []
  for i in range(steps):
    idx = rng.integers(0, len(x), int(settings.batch_size))
    params, opt_state, loss = step(params, opt_state, _augment(x[idx], rng), target[idx])
    if log_every and (i % log_every == 0 or i == steps - 1):
      losses.append((i, float(loss)))
      if log:
        log(f'presence step {i}/{steps}: cross-entropy {float(loss):.4f}')
  meta = {'format': FORMAT, 'image_size': int(image_size),
          'settings': dataclasses.asdict(settings), 'train_losses': losses,
          'train_images': int(len(x)), 'train_marked_fraction': float(target.mean())}
  return Presence(members=(jax.device_get(params),), meta=meta)


def _member_metas(presence: Presence) -> list:
  if 'members' in presence.meta:
    return list(presence.meta['members'])
  return [{k: v for k, v in presence.meta.items() if k not in ('format', 'image_size')}]


def combine(classifiers: Sequence[Presence]) -> Presence:
  """One classifier whose logit is the mean of the given classifiers' (of
  one image size and architecture, e.g. trained from different seeds); its
  meta keeps each member's settings and scores under 'members'."""
  classifiers = list(classifiers)
  if not classifiers:
    raise ValueError('combine: expected at least one classifier.')
  def shape(c):
    return (c.image_size, tuple(int(w) for w in c.meta['settings']['widths']),
            int(c.meta['settings']['hidden']))
  for i, c in enumerate(classifiers[1:], 1):
    if shape(c) != shape(classifiers[0]):
      raise ValueError(f'combine: classifier {i} has (image_size, widths, hidden) '
                       f'{shape(c)}; classifier 0 has {shape(classifiers[0])}.')
  members = tuple(m for c in classifiers for m in c.members)
  if len(members) == 1:
    return classifiers[0]
  meta = {'format': FORMAT, 'image_size': classifiers[0].image_size,
          'settings': dict(classifiers[0].meta['settings']),
          'members': [m for c in classifiers for m in _member_metas(c)]}
  return Presence(members=members, meta=meta)


# ----------------------------------------------------------------------------
# Files.

def save(path: str, presence: Presence) -> str:
  """The classifier as one .npz (each member's params, params/<member>/<module>/<name>,
  and a JSON meta), written atomically."""
  meta = dict(presence.meta, format=FORMAT)
  arrays = {META_KEY: np.array([json.dumps(meta, sort_keys=True)])}
  for i, params in enumerate(presence.members):
    for module, names in sorted(params.items()):
      for name, value in sorted(names.items()):
        arrays[f'{PARAMS_PREFIX}{i}/{module}/{name}'] = np.asarray(value, np.float32)
  return npz_file.write_npz(path, arrays)


def load(path: str) -> Presence:
  """A classifier that `save` wrote; a clear error for anything else."""
  path = os.path.abspath(os.path.expanduser(os.fspath(path)))
  if not os.path.isfile(path):
    raise FileNotFoundError(f'{path}: no such file; expected a presence classifier '
                            'written by scripts/train_presence.py.')
  try:
    with np.load(path, allow_pickle=False) as f:
      arrays = {k: f[k] for k in f.files}
  except Exception as e:  # zip or npy errors, whatever their type.
    raise ValueError(f'{path}: not a readable .npz ({e}); expected a presence classifier '
                     'written by scripts/train_presence.py.') from e
  if META_KEY not in arrays:
    raise ValueError(f'{path}: no {META_KEY!r} member; expected a presence classifier '
                     'written by scripts/train_presence.py.')
  try:
    meta = json.loads(str(arrays.pop(META_KEY).reshape(-1)[0]))
  except (ValueError, IndexError) as e:
    raise ValueError(f'{path}: member {META_KEY!r} is not JSON ({e}).') from e
  if meta.get('format') not in (FORMAT, SINGLE_MEMBER_FORMAT):
    raise ValueError(f'{path}: format {meta.get("format")!r}; expected {FORMAT!r}.')
  for field in ('image_size', 'settings'):
    if field not in meta:
      raise ValueError(f'{path}: meta has no {field!r}; expected a presence classifier '
                       'written by scripts/train_presence.py.')
  single = meta['format'] == SINGLE_MEMBER_FORMAT
  layout = PARAMS_PREFIX + ('<module>/<name>' if single else '<member>/<module>/<name>')
  members: Dict[int, Dict[str, Dict[str, np.ndarray]]] = {}
  for key, value in arrays.items():
    parts = key[len(PARAMS_PREFIX):].split('/')
    if not key.startswith(PARAMS_PREFIX) or len(parts) != (2 if single else 3) \
        or not (single or parts[0].isdigit()):
      raise ValueError(f'{path}: unexpected member {key!r}; expected {layout}.')
    index = 0 if single else int(parts[0])
    members.setdefault(index, {}).setdefault(parts[-2], {})[parts[-1]] = value
  if sorted(members) != list(range(len(members))) or not members:
    raise ValueError(f'{path}: classifier members {sorted(members)}; expected 0 .. n-1.')
  settings = Settings(**_settings_fields(meta['settings']))
  expected = jax.eval_shape(_classifier(settings.widths, settings.hidden).init,
                            jax.random.key(0), jnp.zeros((1, meta['image_size'],
                                                          meta['image_size'], 1)))
  want = {(m, n): v.shape for m, d in expected.items() for n, v in d.items()}
  for index, params in sorted(members.items()):
    got = {(m, n): v.shape for m, d in params.items() for n, v in d.items()}
    if want != got:
      missing = sorted(set(want) - set(got))
      wrong = sorted(k for k in set(want) & set(got) if want[k] != got[k])
      extra = sorted(set(got) - set(want))
      raise ValueError(f'{path}: parameters of member {index} do not match the stored '
                       f'settings (missing {missing}, wrong shapes {wrong}, unexpected {extra}).')
  return Presence(members=tuple(members[i] for i in range(len(members))), meta=meta)


# ----------------------------------------------------------------------------
# Sampling.

def _samples_global_choice(mean) -> bool:
  """Whether a sampler call draws the coarsest latent (else it is at its mean)."""
  if isinstance(mean, str):
    return mean != 'local'
  if isinstance(mean, (bool, np.bool_)):
    return not bool(mean)
  return not bool(tuple(mean)[0])


def _bucket(n: int, batch: int) -> int:
  """The sub-batch size for n images: the next power of two, at most batch
  (a few jitted shapes, not one per count)."""
  size = 1
  while size < n:
    size *= 2
  return min(size, batch)


class PresenceSampler:
  """`sample` with each sample's "nothing or a lesion" drawn from `presence`
  (see the module docstring); called like `hpu_jax.make_sampler`'s sampler."""

  def __init__(self, sample, presence: Presence, max_rounds: int = 8):
    if int(max_rounds) < 1:
      raise ValueError(f'max_rounds={max_rounds}: expected at least 1.')
    self.base, self.presence, self.max_rounds = sample, presence, int(max_rounds)
    self.reset()

  def reset(self) -> None:
    self._stats = {'images': 0, 'slots': 0, 'empty_slots': 0, 'fallback_slots': 0,
                   'draws': 0, 'marked_probability_sum': 0.0}

  def summary(self) -> dict:
    """Counts since the last reset: images and sample slots served, slots
    drawn empty, fallbacks (a slot that kept the model's own draw), the
    model's draws made, and the mean probability of "marked"."""
    s = dict(self._stats)
    s['mean_marked_probability'] = (s.pop('marked_probability_sum') / s['images']
                                    if s['images'] else None)
    s['max_rounds'] = self.max_rounds
    return s

  def __call__(self, params, rng, images, num_samples: int = 1, mean='full',
               temperature=1.0) -> Samples:
    if not _samples_global_choice(mean):
      return self.base(params, rng, images, num_samples=num_samples, mean=mean,
                       temperature=temperature)
    images = _to_images(images, self.presence.image_size)
    b, n = images.shape[0], int(num_samples)
    p_marked = self.presence.marked_probability(images)
    key_slots, key_draws = jax.random.split(rng)
    want_empty = np.asarray(jax.random.uniform(key_slots, (n, b)), np.float64) >= p_marked
    need = [(int(want_empty[:, i].sum()), n - int(want_empty[:, i].sum())) for i in range(b)]
    rounds = []                              # (out, columns: image per column)
    pools = [([], []) for _ in range(b)]     # per image: (empty, non-empty) draws as (round, column, s)
    for r in range(self.max_rounds):
      todo = [i for i in range(b) if len(pools[i][0]) < need[i][0]
              or len(pools[i][1]) < need[i][1]] if r else list(range(b))
      if not todo:
        break
      columns = todo + [todo[-1]] * (_bucket(len(todo), b) - len(todo))
      out = self.base(params, jax.random.fold_in(key_draws, r), images[np.asarray(columns)],
                      num_samples=n, mean=mean, temperature=temperature)
      out = jax.device_get(out)
      empty = ~(np.asarray(out.labels).reshape(n, len(columns), -1) != 0).any(-1)
      for c, i in enumerate(todo):
        for s in range(n):
          pools[i][0 if empty[s, c] else 1].append((r, c, s))
      rounds.append(out)
      self._stats['draws'] += n * len(columns)
    # Slot s of image i takes the next draw of its kind, else the other kind's.
    picks = np.zeros((n, b, 3), np.int64)
    fallbacks = 0
    for i in range(b):
      used = [0, 0]
      for s in range(n):
        kind = 0 if want_empty[s, i] else 1
        if used[kind] >= len(pools[i][kind]):
          kind, fallbacks = 1 - kind, fallbacks + 1
        picks[s, i] = pools[i][kind][used[kind]]
        used[kind] += 1

    def gather(field):
      parts = [np.asarray(field(out)) for out in rounds]
      result = np.empty((n, b) + parts[0].shape[2:], parts[0].dtype)
      for r, part in enumerate(parts):
        sel = picks[..., 0] == r
        result[sel] = part[picks[..., 2][sel], picks[..., 1][sel]]
      return result

    labels, probs = gather(lambda o: o.labels), gather(lambda o: o.probs)
    latents = tuple(gather(lambda o, l=l: o.latents[l]) for l in range(len(rounds[0].latents)))
    self._stats['images'] += b
    self._stats['slots'] += n * b
    self._stats['empty_slots'] += int(want_empty.sum())
    self._stats['fallback_slots'] += fallbacks
    self._stats['marked_probability_sum'] += float(p_marked.sum())
    return Samples(labels, probs, latents)


def check_image_size(presence: Presence, image_size: int,
                     name: str = 'a presence classifier') -> None:
  """A clear error where the classifier was trained at another size than the
  model samples at (`name` says which classifier, e.g. its file)."""
  if presence.image_size != int(image_size):
    raise ValueError(f'{name} of {presence.image_size} px images; the model samples at '
                     f'{int(image_size)} px (data.image_size).')


def make_sampler(sample, presence: Presence, max_rounds: int = 8) -> PresenceSampler:
  """`sample` (hpu_jax.make_sampler's) with its empty samples drawn at the
  classifier's rate; see PresenceSampler."""
  return PresenceSampler(sample, presence, max_rounds)


def default_path(workdir: str) -> str:
  """Where scripts/train_presence.py saves a workdir's classifier."""
  return os.path.join(workdir, 'presence.npz')


def validation_data(config):
  """The centre crops of a config's validation split and their marked fractions."""
  from hpu_jax import configuration
  from hpu_jax.data.device_batches import stack_source
  image_size = int(config.data.image_size)
  val = stack_source(configuration.data_source(config.data, 'validation'), image_size)
  return centre_images_and_targets(val.images, val.masks, image_size)


def score_validation(clf: Presence, images, target, name: str = 'classifier',
                     log=print) -> Presence:
  """The classifier with meta['validation'] set to its scores on (images, target)."""
  clf.meta['validation'] = scores(clf, images, target)
  if log:
    log(f'presence, validation ({name}): ' + ', '.join(
        f'{k} {v:.4f}' if isinstance(v, float) else f'{k} {v}'
        for k, v in clf.meta['validation'].items()))
  return clf


def train_workdir(workdir: Optional[str], *, config=None, out: Optional[str] = None,
                  steps: int = Settings.steps, batch_size: int = Settings.batch_size,
                  learning_rate: float = Settings.learning_rate,
                  seed: int = Settings.seed, members: int = MEMBERS, log=print) -> Presence:
  """Trains the classifier on the training split of a workdir's data (its
  config, or `config`): `members` classifiers from seeds seed, seed + 1, ...,
  combined (the mean of their logits). Scores the validation
  split (each member and the combination), saves it (default
  default_path(workdir)) and returns it. Without a workdir, `config` and
  `out` are needed."""
  if workdir is None and (config is None or out is None):
    raise ValueError('train_workdir: expected a workdir, or a config and an output path.')
  if int(members) < 1:
    raise ValueError(f'members={members}: expected at least 1.')
  from hpu_jax import configuration
  from hpu_jax import workdir as run_dir
  from hpu_jax.data.device_batches import stack_source
  log = log or (lambda message: None)
  config = config or run_dir.load_config(workdir)
  image_size = int(config.data.image_size)
  first_seed = int(seed)
  settings = [Settings(steps=int(steps), batch_size=int(batch_size),
                       learning_rate=float(learning_rate), seed=first_seed + i)
              for i in range(int(members))]
  for s in settings:
    s.check()
  data = stack_source(configuration.data_source(config.data, 'train'), image_size)
  if data.masks.shape[1] < 2:
    raise ValueError(f'{config.data.name}: {data.masks.shape[1]} annotator per training '
                     'image; the presence classifier learns how many annotators mark an '
                     'image and needs at least 2.')
  log(f'presence: {len(data.images)} training images, {data.masks.shape[1]} annotators each')
  val_x, val_target = validation_data(config)

  def scored(clf: Presence, name: str) -> Presence:
    return score_validation(clf, val_x, val_target, name, log)

  trained = []
  for s in settings:
    if len(settings) > 1:
      log(f'presence: member {len(trained) + 1} of {len(settings)}, seed {s.seed}')
    trained.append(scored(train(data.images, data.masks, image_size=image_size,
                                settings=s, log=log), f'seed {s.seed}'))
  clf = trained[0] if len(trained) == 1 else scored(combine(trained),
                                                    f'{len(trained)} members')
  path = save(out or default_path(workdir), clf)
  log(f'presence classifier: {path}')
  return clf
