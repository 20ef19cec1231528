"""The PNG example grid, the sampling GIF and their helpers (hpu_jax.plots)."""
import os

import numpy as np
import pytest

matplotlib = pytest.importorskip('matplotlib')
Image = pytest.importorskip('PIL.Image')

from hpu_jax import plots  # noqa: E402

H = W = 32


def _disc(r, cx=16.0, cy=16.0, h=H, w=W):
  yy, xx = np.mgrid[:h, :w]
  return ((xx - cx) ** 2 + (yy - cy) ** 2 < r ** 2).astype(np.int32)


def _data(e=2, a=3, s=5, seed=0):
  rng = np.random.default_rng(seed)
  images = rng.normal(size=(e, H, W)).astype(np.float32) * 100 + 40
  annotations = np.stack([np.stack([_disc(6 + i) for i in range(a)])] * e)
  samples = (rng.random((e, s, H, W)) < 0.3).astype(np.int32)
  probs = rng.random((e, s, H, W)).astype(np.float32)
  return images, annotations, samples, probs


def _orange(rgb):
  """Pixels coloured like a sample overlay (orange), as a bool mask."""
  rgb = np.asarray(rgb, np.int32)
  r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
  return (r - g > 25) & (r - b > 60)


def _blue(rgb):
  rgb = np.asarray(rgb, np.int32)
  r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
  return (b - r > 50) & (b - g > 20)


# ------------------------------------------------------------------ helpers --


def test_normalize_image():
  x = np.array([[-500.0, 0.0], [250.0, 1000.0]])
  out = plots.normalize_image(x)
  np.testing.assert_allclose(out, [[0, 1 / 3], [0.5, 1]], atol=1e-6)
  np.testing.assert_allclose(plots.normalize_image(np.full((3, 3), 7.0)), 0.5)


def test_mask_outline_of_a_square():
  m = np.zeros((8, 8), int)
  m[2:6, 2:6] = 1
  out = plots.mask_outline(m)
  expected = m.astype(bool).copy()
  expected[3:5, 3:5] = False  # the interior of a 4x4 square is 2x2
  np.testing.assert_array_equal(out, expected)
  # The image border is not an edge: a full mask has no outline.
  assert not plots.mask_outline(np.ones((5, 5))).any()


def test_mask_overlay_colours():
  img = np.linspace(0, 1, H * W).reshape(H, W)
  m = np.zeros((H, W), int)
  m[8:24, 8:24] = 1
  col = (1.0, 0.0, 0.0)
  rgb = plots.mask_overlay(img, m, color=col, alpha=0.5)
  assert rgb.shape == (H, W, 3) and rgb.dtype == np.float32
  assert rgb.min() >= 0 and rgb.max() <= 1
  # Outside: plain gray. Outline: solid colour. Inside: a blend.
  np.testing.assert_allclose(rgb[0, 0], [img[0, 0]] * 3, atol=1e-6)
  np.testing.assert_allclose(rgb[8, 12], col)
  np.testing.assert_allclose(rgb[16, 16], 0.5 * img[16, 16] + 0.5 * np.array(col), atol=1e-6)
  # An empty mask leaves the gray image.
  np.testing.assert_allclose(plots.mask_overlay(img, np.zeros_like(m)),
                             np.repeat(img[..., None], 3, -1), atol=1e-6)
  with pytest.raises(ValueError, match='mask'):
    plots.mask_overlay(img, m[:10])


def test_pixel_std_of_binary_masks():
  masks = np.stack([np.zeros((4, 4)), np.ones((4, 4))])
  np.testing.assert_allclose(plots.pixel_std(masks), 0.5)
  np.testing.assert_allclose(plots.pixel_std(np.ones((3, 4, 4))), 0.0)


# --------------------------------------------------------------- PNG grid --


def test_grid_writes_a_png(tmp_path):
  images, annotations, samples, probs = _data()
  path = tmp_path / 'sub' / 'grid.png'
  out = plots.save_example_grid(path, images, annotations, samples,
                                titles=['case a', 'case b'], sample_probs=probs)
  assert out == str(path) and os.path.exists(out)
  with Image.open(out) as im:
    assert im.format == 'PNG' and im.mode == 'RGB'
    w, h = im.size
    rgb = np.asarray(im)
  assert w > h > 100
  assert _blue(rgb).sum() > 50    # annotations are drawn
  assert _orange(rgb).sum() > 50  # samples are drawn


def test_grid_accepts_channel_axis_and_bool_masks(tmp_path):
  images, annotations, samples, _ = _data(e=1)
  out = plots.save_example_grid(tmp_path / 'g.png', images[..., None],
                                annotations.astype(bool), samples.astype(np.float32))
  with Image.open(out) as im:
    assert im.size[0] > im.size[1]


def _size(tmp_path, name, **kw):
  images, annotations, samples, probs = _data(e=kw.pop('e', 2), a=kw.pop('a', 3),
                                              s=kw.pop('s', 5))
  if kw.pop('probs', False):
    kw['sample_probs'] = probs
  out = plots.save_example_grid(tmp_path / name, images, annotations, samples, **kw)
  with Image.open(out) as im:
    return im.size


def test_grid_size_follows_columns_and_rows(tmp_path):
  base = _size(tmp_path, 'a.png')
  more_ann = _size(tmp_path, 'b.png', a=5)
  more_samp = _size(tmp_path, 'c.png', s=8, max_samples=8)
  capped = _size(tmp_path, 'd.png', s=8, max_samples=5)
  with_probs = _size(tmp_path, 'e.png', probs=True)
  more_rows = _size(tmp_path, 'f.png', e=4)
  assert more_ann[0] > base[0] and more_ann[1] == base[1]
  assert more_samp[0] > base[0]
  assert capped == base  # only max_samples samples are shown
  assert with_probs[0] > base[0]
  assert more_rows[1] > base[1] and more_rows[0] == base[0]


def test_grid_shows_only_max_samples(tmp_path):
  # Identical annotations and samples: both std maps are zero (black), so any
  # orange comes from the sample panels.
  images, annotations, _, _ = _data(e=1, a=2)
  samples = np.stack([np.stack([_disc(9)] * 4)])
  annotations = np.stack([np.stack([_disc(9)] * 2)])
  counts = []
  for k in (0, 1, 3):
    out = plots.save_example_grid(tmp_path / f'k{k}.png', images, annotations, samples,
                                  max_samples=k)
    with Image.open(out) as im:
      counts.append(_orange(np.asarray(im)).sum())
  # The colorbar's orange is the same in all three; the panels add to it.
  one, three = counts[1] - counts[0], counts[2] - counts[0]
  assert one > 100
  assert 2.5 * one < three < 3.5 * one


def test_grid_std_uses_the_fixed_scale(tmp_path):
  # One of four annotations marks the disc: std 0.433 there. On the fixed
  # scale [0, 0.5] that is magma(0.866), not the top of the map (which an
  # autoscaled map would use).
  disc = _disc(9)
  annotations = np.stack([disc, 0 * disc, 0 * disc, 0 * disc])[None]
  samples = np.stack([disc] * 3)[None]
  out = plots.save_example_grid(tmp_path / 's.png', np.zeros((1, H, W)), annotations, samples,
                                max_samples=0)
  with Image.open(out) as im:
    rgb = np.asarray(im, np.int32)
  cmap = matplotlib.colormaps['magma']

  def count(value):
    ref = np.round(np.asarray(cmap(value)[:3]) * 255)
    return (np.abs(rgb - ref).max(-1) <= 2).sum()

  zoom = 160 // H
  area = disc.sum() * zoom ** 2
  assert count(np.sqrt(0.75 * 0.25) / 0.5) >= area
  assert count(1.0) < 0.2 * area


def test_grid_eight_rows_stays_small(tmp_path):
  rng = np.random.default_rng(1)
  e, s = 8, 16
  images = rng.normal(size=(e, 128, 128))
  annotations = np.stack([np.stack([_disc(20 + i, 64, 64, 128, 128) for i in range(4)])] * e)
  samples = np.stack([np.stack([_disc(15 + i, 64, 64, 128, 128) for i in range(s)])] * e)
  out = plots.save_example_grid(tmp_path / 'big.png', images, annotations, samples,
                                sample_probs=rng.random(samples.shape),
                                titles=[f'example {i}' for i in range(e)])
  assert os.path.getsize(out) < 2.5e6
  with Image.open(out) as im:
    assert im.size[0] < 3000 and im.size[1] < 1500


@pytest.mark.parametrize('arg, change', [
    ('images', lambda d: d.update(images=d['images'][0])),
    ('images', lambda d: d.update(images=np.where(d['images'] > 0, np.nan, d['images']))),
    ('images', lambda d: d.update(images=d['images'][:0], annotations=d['annotations'][:0],
                                  samples=d['samples'][:0])),
    ('annotations', lambda d: d.update(annotations=d['annotations'][..., :16, :16])),
    ('annotations', lambda d: d.update(annotations=d['annotations'][:1])),
    ('annotations', lambda d: d.update(annotations=d['annotations'][:, 0])),
    ('annotations', lambda d: d.update(annotations=d['annotations'] * 2)),
    ('annotations', lambda d: d.update(annotations=d['annotations'][:, :0])),
    ('samples', lambda d: d.update(samples=d['samples'][..., :31])),
    ('samples', lambda d: d.update(samples=d['samples'] + 0.5)),
    ('sample_probs', lambda d: d.update(sample_probs=d['sample_probs'][:, :2])),
    ('sample_probs', lambda d: d.update(sample_probs=d['sample_probs'] * 3)),
    ('titles', lambda d: d.update(titles=['only one'])),
    ('titles', lambda d: d.update(titles='ab')),
    ('max_samples', lambda d: d.update(max_samples=-1)),
    ('max_samples', lambda d: d.update(max_samples=2.5)),
])
def test_grid_bad_inputs_name_the_argument(tmp_path, arg, change):
  images, annotations, samples, probs = _data()
  kw = dict(images=images, annotations=annotations, samples=samples, sample_probs=probs,
            titles=['a', 'b'], max_samples=3)
  change(kw)
  with pytest.raises(ValueError, match=arg):
    plots.save_example_grid(tmp_path / 'bad.png', **kw)
  assert not (tmp_path / 'bad.png').exists()


# ------------------------------------------------------------ sampling GIF --


def _modes(f=3, s=4, names=('full', 'local', 'global'), seed=0):
  rng = np.random.default_rng(seed)
  return {n: (rng.random((f, s, H, W)) < 0.3).astype(np.int32) for n in names}


def test_gif_frames_loop_and_duration(tmp_path):
  image = np.random.default_rng(0).normal(size=(H, W))
  annotations = np.stack([_disc(5 + i) for i in range(2)])
  path = tmp_path / 'a' / 's.gif'
  out = plots.save_sampling_gif(path, image, _modes(f=5), annotations=annotations, fps=4)
  assert out == str(path)
  with Image.open(out) as im:
    assert im.format == 'GIF'
    assert im.n_frames == 5
    assert im.info.get('loop') == 0  # loops forever
    assert im.info.get('duration') == 250
    first = np.asarray(im.convert('RGB'))
    im.seek(4)
    last = np.asarray(im.convert('RGB'))
  assert first.shape == last.shape
  assert _blue(first).sum() > 20


def test_gif_frames_step_through_samples(tmp_path):
  # Frame 0: empty masks; frame 1: full masks. Only frame 1 has orange.
  image = np.random.default_rng(0).normal(size=(H, W))
  s = np.stack([np.zeros((2, H, W), int), np.ones((2, H, W), int)])
  out = plots.save_sampling_gif(tmp_path / 's.gif', image, {'full': s, 'global': s})
  with Image.open(out) as im:
    assert im.n_frames == 2
    f0 = _orange(np.asarray(im.convert('RGB'))).sum()
    im.seek(1)
    f1 = _orange(np.asarray(im.convert('RGB'))).sum()
  assert f0 == 0
  assert f1 > 4 * 25 * 25  # four fully covered panels


def test_gif_layout_grows_with_modes_and_samples(tmp_path):
  image = np.zeros((H, W))

  def size(name, **kw):
    with Image.open(plots.save_sampling_gif(tmp_path / name, image, **kw)) as im:
      return im.size

  one = size('1.gif', samples_by_mode=_modes(names=('full',)))
  three = size('3.gif', samples_by_mode=_modes())
  wide = size('w.gif', samples_by_mode=_modes(s=6))
  assert three[1] > one[1] and three[0] == one[0]
  assert wide[0] > three[0]
  # Annotations add a column when image + A exceeds the samples per row.
  with_ann = size('a.gif', samples_by_mode=_modes(s=2),
                  annotations=np.stack([_disc(4)] * 3))
  without = size('n.gif', samples_by_mode=_modes(s=2))
  assert with_ann[0] > without[0]


def test_full_size_gif_has_every_frame(tmp_path):
  rng = np.random.default_rng(0)
  modes = {n: (rng.random((8, 4, 128, 128)) < 0.2).astype(np.int32)
           for n in ('full', 'local', 'global')}
  out = plots.save_sampling_gif(tmp_path / 'big.gif', rng.normal(size=(128, 128)), modes,
                                annotations=(rng.random((4, 128, 128)) < 0.2))
  with Image.open(out) as im:
    assert im.n_frames == 8


@pytest.mark.parametrize('arg, kw', [
    ('samples_by_mode', dict(samples_by_mode={})),
    ('samples_by_mode', dict(samples_by_mode={'full': np.zeros((3, 2, H, W)),
                                              'local': np.zeros((4, 2, H, W))})),
    ('samples_by_mode', dict(samples_by_mode={'full': np.zeros((3, 2, H, W - 1))})),
    ('samples_by_mode', dict(samples_by_mode={'full': np.zeros((2, H, W))})),
    ('samples_by_mode', dict(samples_by_mode={'full': np.full((2, 2, H, W), 0.5)})),
    ('samples_by_mode', dict(samples_by_mode={'full': np.zeros((0, 2, H, W))})),
    ('annotations', dict(annotations=np.zeros((2, H + 1, W)))),
    ('annotations', dict(annotations=np.zeros((H, W)))),
    ('image', dict(image=np.zeros((2, H, W)))),
    ('fps', dict(fps=0)),
])
def test_gif_bad_inputs_name_the_argument(tmp_path, arg, kw):
  args = dict(image=np.zeros((H, W)), samples_by_mode=_modes(f=2), annotations=None, fps=2)
  args.update(kw)
  with pytest.raises(ValueError, match=arg):
    plots.save_sampling_gif(tmp_path / 'bad.gif', **args)
  assert not (tmp_path / 'bad.gif').exists()


def test_gif_rejects_a_non_dict():
  with pytest.raises(TypeError, match='samples_by_mode'):
    plots.save_sampling_gif('unused.gif', np.zeros((H, W)), [np.zeros((2, 2, H, W))])
