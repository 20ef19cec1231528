"""The presence classifier (hpu_jax.presence): it learns how many annotators
mark an image, it survives a file round trip, bad files are named, and its
sampler draws empty samples at its rate from the model's own draws."""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from helpers import ROOT, constant_classifier, tiny_config
from hpu_jax import configuration, evaluate, npz_file, presence
from hpu_jax.sampling import Samples


class FakeSampler:
  """Draws whose emptiness is random with rate q; each draw carries a unique
  id in its latent, and its probabilities say whether it is empty."""

  def __init__(self, q: float):
    self.q, self.calls, self.ids = q, [], []

  def __call__(self, params, rng, images, num_samples=1, mean='full', temperature=1.0):
    b, h, w = images.shape[:3]
    empty = np.asarray(jax.random.uniform(rng, (num_samples, b))) < self.q
    ids = np.asarray(jax.random.uniform(jax.random.fold_in(rng, 1), (num_samples, b)))
    labels = np.broadcast_to((~empty)[..., None, None], (num_samples, b, h, w)).astype(np.int32)
    fg = np.where(labels > 0, 0.9, 0.05).astype(np.float32)
    self.calls.append((b, mean))
    self.ids.append(ids)
    return Samples(labels, np.stack([1 - fg, fg], -1), (ids[..., None, None, None],))


def draw(p_marked, q, n=200, b=4, max_rounds=8, mean='full', seed=0):
  base = FakeSampler(q)
  sampler = presence.make_sampler(base, constant_classifier(p_marked), max_rounds=max_rounds)
  images = np.random.default_rng(0).uniform(size=(b, 8, 8, 1)).astype(np.float32)
  out = sampler(None, jax.random.key(seed), images, num_samples=n, mean=mean)
  return out, sampler, base


def test_the_empty_samples_follow_the_classifier_and_are_the_models_draws():
  out, sampler, base = draw(p_marked=0.3, q=0.5)
  empty = ~out.labels.reshape(200, 4, -1).any(-1)
  summary = sampler.summary()
  assert summary['fallback_slots'] == 0 and summary['slots'] == 800
  assert empty.sum() == summary['empty_slots']           # exactly the slots drawn empty
  assert abs(empty.mean() - 0.7) < 0.06                  # at the classifier's rate, not q
  assert summary['mean_marked_probability'] == pytest.approx(0.3, abs=1e-6)
  # Every sample is one of the model's draws, each used once, its probabilities with it.
  drawn = np.concatenate([ids.ravel() for ids in base.ids])
  got = out.latents[0].ravel()
  assert np.isin(got, drawn).all() and len(np.unique(got)) == got.size
  assert np.array_equal(out.probs[..., 1].max((2, 3)) > 0.5, ~empty)
  assert len(base.calls) >= 2 and summary['draws'] == sum(b * 200 for b, _ in base.calls)


@pytest.mark.parametrize('p_marked, empty_fraction', [(1e-6, 1.0), (1 - 1e-6, 0.0)])
def test_a_sure_classifier_gives_all_or_no_empty_samples(p_marked, empty_fraction):
  out, sampler, _ = draw(p_marked=p_marked, q=0.5, n=32)
  assert (~out.labels.reshape(32, 4, -1).any(-1)).mean() == empty_fraction
  assert sampler.summary()['fallback_slots'] == 0


def test_a_slot_the_model_never_draws_keeps_the_models_own_draw_and_is_counted():
  out, sampler, base = draw(p_marked=0.5, q=0.0, n=16, max_rounds=3)
  summary = sampler.summary()
  assert out.labels.reshape(16, 4, -1).any(-1).all()     # the model never draws empty
  assert summary['fallback_slots'] == summary['empty_slots'] > 0
  assert summary['draws'] == 3 * 16 * 4 and len(base.calls) == 3
  assert 'kept the model\'s own draw' in evaluate.format_presence(
      dict(summary, file='presence.npz'))[0]


def test_the_same_key_gives_the_same_samples_and_later_rounds_draw_only_what_is_missing():
  first, _, base = draw(p_marked=0.3, q=0.8, n=8, b=8)
  second, _, _ = draw(p_marked=0.3, q=0.8, n=8, b=8)
  assert np.array_equal(first.labels, second.labels)
  assert np.array_equal(first.latents[0], second.latents[0])
  assert base.calls[0][0] == 8 and all(b in (1, 2, 4, 8) for b, _ in base.calls[1:])


def test_without_a_global_choice_the_sampler_is_the_models():
  out, sampler, base = draw(p_marked=0.01, q=0.5, n=8, mean='local')
  assert base.calls == [(4, 'local')]
  assert np.array_equal(out.latents[0], base.ids[0][..., None, None, None])
  assert sampler.summary()['slots'] == 0


def test_settings_and_inputs_are_checked():
  with pytest.raises(ValueError, match='max_rounds=0'):
    presence.make_sampler(FakeSampler(0.5), constant_classifier(0.5), max_rounds=0)
  with pytest.raises(ValueError, match='trained on 8 x 8'):
    constant_classifier(0.5).marked_probability(np.zeros((2, 16, 16)))
  with pytest.raises(ValueError, match='steps=0'):
    presence.Settings(steps=0).check()
  with pytest.raises(ValueError, match=r'expected \[N, S, S\] and \[N, A, S, S\]'):
    presence.centre_images_and_targets(np.zeros((2, 8, 8)), np.zeros((3, 4, 8, 8)), 8)


def generated_data(n, rng):
  """Images whose brightness says how many of 4 annotators marked them."""
  marked = rng.integers(0, 5, n)
  images = np.clip(rng.normal(40 + 50 * marked, 10, (16, 16, n)).T, 0, 255).astype(np.uint8)
  masks = np.zeros((n, 4, 16, 16), np.uint8)
  for i, k in enumerate(marked):
    masks[i, :k, 6:10, 6:10] = 1
  return images, masks


def test_training_learns_the_marked_fraction_and_the_file_round_trips(tmp_path):
  rng = np.random.default_rng(0)
  images, masks = generated_data(256, rng)
  settings = presence.Settings(widths=(4, 8), hidden=8, steps=150, batch_size=32,
                               learning_rate=1e-2)
  clf = presence.train(images, masks, image_size=16, settings=settings, log=None)
  val = presence.scores(clf, *presence.centre_images_and_targets(*generated_data(128, rng), 16))
  assert val['cross_entropy'] < val['constant_cross_entropy'] - 0.05
  assert val['correlation'] > 0.8
  path = presence.save(str(tmp_path / 'p.npz'), clf)
  again = presence.load(path)
  x = presence.centre_images_and_targets(images[:8], masks[:8], 16)[0]
  np.testing.assert_array_equal(again.marked_probability(x), clf.marked_probability(x))
  assert again.meta['settings']['widths'] == [4, 8] and again.image_size == 16


def test_bad_files_are_named(tmp_path):
  with pytest.raises(FileNotFoundError, match='missing.npz: no such file'):
    presence.load(str(tmp_path / 'missing.npz'))
  junk = tmp_path / 'junk.npz'
  junk.write_bytes(b'not a zip')
  with pytest.raises(ValueError, match='junk.npz: not a readable .npz'):
    presence.load(str(junk))
  good = constant_classifier(0.5)
  path = presence.save(str(tmp_path / 'good.npz'), good)
  with np.load(path) as f:
    arrays = {k: f[k] for k in f.files}
  meta = json.loads(str(arrays['meta'][0]))
  npz_file.write_npz(str(tmp_path / 'other.npz'),
                     dict(arrays, meta=np.array([json.dumps(dict(meta, format='x/1'))])))
  with pytest.raises(ValueError, match="other.npz: format 'x/1'"):
    presence.load(str(tmp_path / 'other.npz'))
  name = next(k for k in arrays if k.endswith('/w'))
  npz_file.write_npz(str(tmp_path / 'shape.npz'), dict(arrays, **{name: np.zeros((1, 1))}))
  with pytest.raises(ValueError,
                     match='shape.npz: parameters of member 0 do not match.*wrong shapes'):
    presence.load(str(tmp_path / 'shape.npz'))
  renumbered = {k.replace('params/0/', 'params/1/'): v for k, v in arrays.items()}
  npz_file.write_npz(str(tmp_path / 'gap.npz'), renumbered)
  with pytest.raises(ValueError, match=r'gap.npz: classifier members \[1\]; expected 0 .. n-1'):
    presence.load(str(tmp_path / 'gap.npz'))


def test_members_are_combined_by_their_mean_logit_and_round_trip(tmp_path):
  logit = lambda p: np.log(p) - np.log1p(-p)
  combined = presence.combine([constant_classifier(0.2), constant_classifier(0.9),
                               constant_classifier(0.6)])
  assert len(combined.members) == 3 and len(combined.meta['members']) == 3
  x = np.zeros((2, 8, 8), np.float32)
  want = 1 / (1 + np.exp(-np.mean([logit(0.2), logit(0.9), logit(0.6)])))
  np.testing.assert_allclose(combined.marked_probability(x), [want, want], rtol=1e-6)
  again = presence.load(presence.save(str(tmp_path / 'three.npz'), combined))
  assert len(again.members) == 3
  np.testing.assert_array_equal(again.marked_probability(x), combined.marked_probability(x))
  # Combining combined classifiers flattens the members; one alone is itself.
  assert len(presence.combine([again, constant_classifier(0.5)]).members) == 4
  one = constant_classifier(0.3)
  assert presence.combine([one]) is one
  with pytest.raises(ValueError, match=r'classifier 1 has \(image_size, widths, hidden\) '
                                       r'\(16, \(2,\), 2\); classifier 0 has \(8'):
    presence.combine([one, constant_classifier(0.3, image_size=16)])
  with pytest.raises(ValueError, match='at least one'):
    presence.combine([])


def test_the_script_combines_trained_files(tmp_path):
  script = os.path.join(ROOT, 'scripts', 'train_presence.py')
  a = presence.save(str(tmp_path / 'a.npz'), constant_classifier(0.2))
  b = presence.save(str(tmp_path / 'b.npz'), constant_classifier(0.6))
  out = str(tmp_path / 'ab.npz')
  done = subprocess.run([sys.executable, script, '--combine', f'{a},{b}', '--out', out],
                        capture_output=True, text=True)
  assert done.returncode == 0, done.stderr
  assert f'{out} (2 members)' in done.stdout
  combined = presence.load(out)
  assert len(combined.members) == 2
  np.testing.assert_allclose(combined.marked_probability(np.zeros((1, 8, 8))),
                             presence.combine([presence.load(a), presence.load(b)])
                             .marked_probability(np.zeros((1, 8, 8))))
  refused = subprocess.run([sys.executable, script, '--combine', a],
                           capture_output=True, text=True)
  assert refused.returncode != 0 and '--combine needs --out' in refused.stderr


def test_a_single_member_file_of_the_first_format_is_read(tmp_path):
  """Files written before classifiers had members: params/<module>/<name>."""
  clf = constant_classifier(0.7)
  arrays = {f'params/{m}/{n}': np.asarray(v) for m, d in clf.members[0].items()
            for n, v in d.items()}
  arrays['meta'] = np.array([json.dumps(dict(clf.meta, format=presence.SINGLE_MEMBER_FORMAT))])
  path = npz_file.write_npz(str(tmp_path / 'old.npz'), arrays)
  old = presence.load(path)
  assert len(old.members) == 1
  np.testing.assert_allclose(old.marked_probability(np.zeros((1, 8, 8))), [0.7], rtol=1e-6)
  # The same keys under the current format are named as not its layout.
  arrays['meta'] = np.array([json.dumps(dict(clf.meta, format=presence.FORMAT))])
  npz_file.write_npz(str(tmp_path / 'mixed.npz'), arrays)
  with pytest.raises(ValueError, match=r'mixed.npz: unexpected member .*params/<member>/'):
    presence.load(str(tmp_path / 'mixed.npz'))


def test_trained_for_a_config_and_used_by_the_evaluation(tmp_path):
  """train_workdir on the tiny synthetic set (4 annotators), then
  evaluate_config with it: the report says what the classifier did."""
  config = tiny_config()
  config.data.synthetic.num_validation = 8
  out = str(tmp_path / 'presence.npz')
  clf = presence.train_workdir(None, config=config, out=out, steps=3, batch_size=4,
                               members=2, seed=5, log=None)
  assert os.path.isfile(out) and clf.meta['validation']['num_images'] == 8
  assert [m['settings']['seed'] for m in clf.meta['members']] == [5, 6]
  assert all(m['validation']['num_images'] == 8 for m in clf.meta['members'])
  model = configuration.build_model(config.model)
  params = model.init(jax.random.key(0), np.zeros((1, 32, 32), np.int32),
                      np.zeros((1, 32, 32, 1), np.float32))
  workdir = str(tmp_path / 'run')
  report = evaluate.evaluate_config(config, params, workdir=workdir, step=0, presence_file=out)
  summary = report['presence']
  assert report['report'] == os.path.join(workdir, evaluate.PRESENCE_EVAL_DIR, 'report.json')
  assert summary['file'] == out and summary['validation'] == clf.meta['validation']
  assert summary['members'] == 2
  # 4 validation images x 4 samples, and x 2 global-only ones; the pictures came after.
  assert summary['images'] == 8 and summary['slots'] == 4 * 4 + 4 * 2
  with pytest.raises(ValueError, match='a classifier of 8 px images'):
    evaluate.evaluate_config(config, params, workdir=workdir, step=0,
                             presence_file=presence.save(str(tmp_path / 'c.npz'),
                                                         constant_classifier(0.5)))
