"""Measures the HPU-Net's speed on this machine; prints one JSON line.

  python scripts/benchmark.py --config configs/lidc_crops.py --batch 8
  python scripts/benchmark.py --config configs/synthetic.py --dtype bfloat16 --remat

Flags: --batch (global batch, default 8), --size (default
config.data.image_size), --samples (N per image, default 16), --repeats
(timed calls, default 5), --dtype {float32,bfloat16} (sets
config.model.compute_dtype and passes compute_dtype to the train step and the
sampler; float32 passes nothing), --remat (sets config.model.remat = True),
--no_2dev (skips the 2-device subprocess), and any config field as with
scripts/train.py (--config.model.channels_per_block=...).

Every time is the median over `--repeats` timed calls after one compile call
(lowering, compilation and one run: the *_compile_s fields); each call is
waited for with block_until_ready. The fields of the JSON line:

  impl, jax, platform, device, num_devices, cpu_count, xla_flags: what ran
    (device kind of jax.devices()[0], os.cpu_count(), $XLA_FLAGS or '').
  dtype, remat, size, batch, samples_per_image, annotations_per_image,
    repeats, params*: the settings and the parameter counts.
  train_images_per_s, train_compile_s: forward, backward and Adam update of
    the configured loss, jitted on one device, `--batch` images per step.
  train_images_per_s_2dev, train_compile_s_2dev: the same global batch
    through the pmapped train step of hpu_jax/train.py (state replicated with
    hpu_jax.train.replicate, batch split [2, batch / 2, ...]), measured in a
    child process of this script (`--_child train2`). On CPU the child gets
    XLA_FLAGS=--xla_force_host_platform_device_count=2: two fake devices
    sharing the same cores. Null when skipped or impossible (one GPU, odd
    batch); train_2dev_note says what ran or why not. device_2dev,
    xla_flags_2dev and peak_host_rss_mb_2dev describe the child.
  sample_images_per_s, sample_compile_s: sampled label maps per second,
    `--samples` per image through the jitted sampler (the prior encoder is
    shared across samples).
  metric_images_per_s, metric_compile_s: images per second through the
    evaluation metrics as hpu_jax/evaluate.py scores one batch (`--batch`
    images of random binary masks, `--samples` samples and 4 annotations per
    image): the distance matrices (sample-annotation, sample-sample and
    annotation-annotation), GED, HM-IoU and S_NCC, results read back to numpy.
  train_gflops_per_step, sample_gflops_per_call: FLOPs of one compiled call
    from XLA's cost analysis ('flops'); *_achieved_gflops_per_s divides them
    by the median time of a call. Null where the backend reports no cost.
  matmul_peak_gflops_per_s, matmul_size: median rate (at least 3 calls) of
    jitted float32 n x n matmuls (2 n^3 FLOPs; n = 2048 on CPU, 8192 on an
    accelerator) at the default matmul precision, like the model's;
    *_fraction_of_matmul_peak is the achieved rate over it (with --dtype
    bfloat16 still over the float32 rate).
  peak_host_rss_mb: peak resident memory of this process (getrusage
    ru_maxrss) after the train, sampling and metric measurements and before
    the matmul probe, in MiB; peak_device_memory_mb: peak_bytes_in_use of
    jax.devices()[0].memory_stats() at the same point (null on CPU, where
    there are no memory stats).
"""
import inspect
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from hpu_jax import configuration, parameter_split  # noqa: E402
from hpu_jax import evaluate as evaluation  # noqa: E402
from hpu_jax.model import model_summary  # noqa: E402
from hpu_jax.precision import DTYPES  # noqa: E402
from hpu_jax.sampling import make_sampler  # noqa: E402
from hpu_jax.train import AXIS, replicate  # noqa: E402
from hpu_jax.train_step import create_train_state, make_train_step  # noqa: E402

NUM_ANNOTATIONS = 4          # Annotations per image for the metric throughput.
DEVICE_COUNT_FLAG = '--xla_force_host_platform_device_count'
# What the 2-device child reports (null in the parent's line when it did not run).
CHILD_FIELDS = ('train_images_per_s_2dev', 'train_compile_s_2dev', 'device_2dev',
                'xla_flags_2dev', 'peak_host_rss_mb_2dev')


def apply_options(config, args):
  """--dtype and --remat into the model config (only the fields asked for)."""
  if args.dtype != 'float32' or 'compute_dtype' in config.model:
    config.model.compute_dtype = args.dtype
  if args.remat:
    config.model.remat = True
  return config


def dtype_kwargs(fn, dtype: str) -> dict:
  """{'compute_dtype': ...} for bfloat16, {} for float32 (the default)."""
  if dtype == 'float32':
    return {}
  if 'compute_dtype' not in inspect.signature(fn).parameters:
    raise SystemExit(f'--dtype {dtype}: {fn.__module__}.{fn.__name__} does not '
                     'take compute_dtype yet.')
  return {'compute_dtype': DTYPES[dtype]}


def median_seconds(fn, repeats):
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def flops_of(compiled):
  """FLOPs of a compiled computation from XLA's cost analysis, or None."""
  try:
    cost = compiled.cost_analysis()
  except Exception:  # noqa: BLE001  Some backends do not implement it.
    return None
  if isinstance(cost, dict):
    cost = [cost]
  flops = [c['flops'] for c in cost or () if c and c.get('flops') is not None]
  return float(sum(flops)) if flops else None


def peak_host_rss_mb():
  rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return rss / 2**20 if sys.platform == 'darwin' else rss / 2**10  # bytes / KiB


def peak_device_memory_mb():
  try:
    stats = jax.devices()[0].memory_stats()
  except Exception:  # noqa: BLE001  Not implemented on some backends.
    return None
  if not stats or 'peak_bytes_in_use' not in stats:
    return None
  return stats['peak_bytes_in_use'] / 2**20


def signif(x, digits=4):
  return None if x is None else float(f'{x:.{digits}g}')


def ratio(a, b):
  return None if a is None or b is None else a / b


def setup(config, args):
  """(config, model, optimizer, loss config, image size) for the arguments."""
  config = apply_options(config, args)
  size = args.size or int(config.data.image_size)
  model = configuration.build_model(config.model)
  optimizer = configuration.optimizer(config.train)
  return config, model, optimizer, configuration.loss_config(config.loss), size


def random_batch(batch, size):
  images = jax.random.uniform(jax.random.key(1), (batch, size, size, 1))
  labels = (jax.random.uniform(jax.random.key(2), (batch, size, size)) > 0.9).astype(jnp.int32)
  return images, labels


def bench_train(model, optimizer, loss_cfg, state, images, labels, args):
  """One-device jitted train step: (state, seconds per step, compile s, flops)."""
  step = jax.jit(make_train_step(model, optimizer, loss_cfg,
                                 **dtype_kwargs(make_train_step, args.dtype)),
                 donate_argnums=0)
  start = time.perf_counter()
  compiled = step.lower(state, images, labels).compile()
  state, seconds, compile_s = time_train_steps(compiled, state, images, labels,
                                               args.repeats, start)
  return state, seconds, compile_s, flops_of(compiled)


def time_train_steps(step, state, images, labels, repeats, start):
  """Runs one step (finishing the compile timed from `start`), then the median
  of `repeats` steps; the state is donated and replaced each step.
  Returns (state, seconds per step, compile seconds)."""
  state, _ = step(state, images, labels)
  jax.block_until_ready(state)
  compile_s = time.perf_counter() - start
  holder = [state]

  def one_step():
    holder[0], metrics = step(holder[0], images, labels)
    return metrics
  seconds = median_seconds(one_step, repeats)
  return holder[0], seconds, compile_s


def bench_sample(model, params, images, args):
  """The sampler, jitted as one call: (seconds per call, compile s, flops)."""
  sample = make_sampler(model, **dtype_kwargs(make_sampler, args.dtype))
  # The outer jit inlines the sampler's own; it is compiled once, and its
  # cost analysis covers the whole call (every output is kept).
  sample_all = jax.jit(lambda p, rng, x: sample(p, rng, x, args.samples))
  rng = jax.random.key(3)
  start = time.perf_counter()
  compiled = sample_all.lower(params, rng, images).compile()
  jax.block_until_ready(compiled(params, rng, images))
  compile_s = time.perf_counter() - start
  seconds = median_seconds(lambda: compiled(params, jax.random.key(4), images), args.repeats)
  return seconds, compile_s, flops_of(compiled)


def bench_metrics(batch, size, num_samples, repeats):
  """Evaluation metrics of one batch as evaluate.py scores it: (s, compile s)."""
  rng = np.random.default_rng(0)
  samples = (rng.random((batch, num_samples, size, size)) > 0.5).astype(np.uint8)
  probs = rng.random((batch, num_samples, size, size), dtype=np.float32)
  annotations = (rng.random((batch, NUM_ANNOTATIONS, size, size)) > 0.5).astype(np.uint8)

  # evaluate.py's own per-batch scoring at one N: GED, HM-IoU and S_NCC.
  sums_class, score_batch = evaluation._Sums, evaluation._score  # pylint: disable=protected-access

  def score():
    sums = sums_class()
    score_batch(sums, '', samples, probs, annotations, num_samples)
    return sums.means()
  start = time.perf_counter()
  score()
  compile_s = time.perf_counter() - start
  return median_seconds(score, repeats), compile_s


def matmul_peak(repeats):
  """(GFLOP/s of jitted float32 n x n matmuls, n)."""
  n = 2048 if jax.default_backend() == 'cpu' else 8192
  ka, kb = jax.random.split(jax.random.key(5))
  a = jax.random.normal(ka, (n, n), jnp.float32)
  b = jax.random.normal(kb, (n, n), jnp.float32)
  matmul = jax.jit(jnp.matmul)
  jax.block_until_ready(matmul(a, b))
  seconds = median_seconds(lambda: matmul(a, b), max(repeats, 3))
  return 2 * n**3 / seconds / 1e9, n


# ----------------------------------------------------------------------------
# Two devices: a child process of this script.

def child_train2(config, args):
  """The pmapped train step of hpu_jax/train.py on 2 devices; prints JSON."""
  devices = jax.local_devices()[:2]
  if len(devices) < 2:
    raise SystemExit(f'--_child train2: {len(devices)} device(s), need 2.')
  _, model, optimizer, loss_cfg, size = setup(config, args)
  state = create_train_state(model, optimizer, jax.random.key(0), (1, size, size, 1))
  p_step = jax.pmap(
      make_train_step(model, optimizer, loss_cfg, axis_name=AXIS,
                      **dtype_kwargs(make_train_step, args.dtype)),
      axis_name=AXIS, donate_argnums=(0,), devices=devices)
  rstate = replicate(state, devices)
  del state
  mesh = jax.sharding.Mesh(np.asarray(devices), (AXIS,))
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(AXIS))
  images, labels = (jax.device_put(x.reshape((2, args.batch // 2) + x.shape[1:]), sharding)
                    for x in random_batch(args.batch, size))
  _, seconds, compile_s = time_train_steps(p_step, rstate, images, labels, args.repeats,
                                           time.perf_counter())
  values = (signif(args.batch / seconds), signif(compile_s, 3), devices[0].device_kind,
            os.environ.get('XLA_FLAGS', ''), signif(peak_host_rss_mb()))
  print(json.dumps(dict(zip(CHILD_FIELDS, values))))


def train_2dev(args, size):
  """Runs `--_child train2`; (its JSON fields, a note on what ran or why not)."""
  if args.no_2dev:
    return {}, 'skipped (--no_2dev)'
  if args.batch % 2:
    return {}, f'--batch {args.batch} does not split over 2 devices'
  env = dict(os.environ)
  backend = jax.default_backend()
  if backend == 'cpu':
    flags = re.sub(DEVICE_COUNT_FLAG + r'=\S*', '', env.get('XLA_FLAGS', '')).split()
    env['XLA_FLAGS'] = ' '.join(flags + [DEVICE_COUNT_FLAG + '=2'])
    env['JAX_PLATFORMS'] = 'cpu'
    note = (f'pmap over 2 fake CPU devices ({DEVICE_COUNT_FLAG}=2) sharing '
            f'{os.cpu_count()} cores, {args.batch // 2} images per device')
  elif jax.local_device_count() < 2:
    return {}, (f'one {backend} device ({jax.devices()[0].device_kind}): the '
                '2-device step needs 2 devices')
  else:
    note = (f'pmap over 2 of {jax.local_device_count()} {backend} devices, '
            f'{args.batch // 2} images per device')
  # The same flags (the config and its overrides included), run as the child.
  command = [sys.executable, os.path.abspath(__file__)] + sys.argv[1:] + [
      '--size', str(size), '--_child', 'train2']
  proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
  sys.stderr.write(proc.stderr)
  lines = [l for l in proc.stdout.splitlines() if l.strip()]
  if proc.returncode != 0 or not lines:
    tail = proc.stderr.strip().splitlines()[-1:] or ['no output']
    return {}, f'child failed (exit {proc.returncode}): {tail[0]}'
  return json.loads(lines[-1]), note


# ----------------------------------------------------------------------------

def define_flags():
  """The command line (absl flags; the config through ml_collections'
  config_flags, so any field can be overridden: --config.train.seed=1)."""
  from absl import flags
  from ml_collections import config_flags
  config_flags.DEFINE_config_file('config', None, 'Config file (configs/*.py).')
  flags.DEFINE_integer('batch', 8, 'Global batch.', lower_bound=1)
  flags.DEFINE_integer('size', None, 'Image size (default: config.data.image_size).')
  flags.DEFINE_integer('samples', 16, 'Samples per image.', lower_bound=1)
  flags.DEFINE_integer('repeats', 5, 'Timed calls.', lower_bound=1)
  flags.DEFINE_enum('dtype', 'float32', tuple(DTYPES),
                    'Compute dtype (config.model.compute_dtype).')
  flags.DEFINE_bool('remat', False, 'config.model.remat = True.')
  flags.DEFINE_bool('no_2dev', False, 'Skip the 2-device subprocess.')
  flags.DEFINE_enum('_child', None, ['train2'], 'Internal: run as the 2-device child.')
  flags.mark_flags_as_required(['config'])


def main(argv):
  del argv
  from absl import flags
  args = flags.FLAGS
  if args._child == 'train2':  # pylint: disable=protected-access
    child_train2(args.config, args)
    return
  _, model, optimizer, loss_cfg, size = setup(args.config, args)
  state = create_train_state(model, optimizer, jax.random.key(0), (1, size, size, 1))
  images, labels = random_batch(args.batch, size)

  state, train_s, train_compile_s, train_flops = bench_train(
      model, optimizer, loss_cfg, state, images, labels, args)
  params = state.params['model']
  sample_s, sample_compile_s, sample_flops = bench_sample(model, params, images, args)
  metric_s, metric_compile_s = bench_metrics(args.batch, size, args.samples, args.repeats)
  host_mb, device_mb = peak_host_rss_mb(), peak_device_memory_mb()
  peak, matmul_size = matmul_peak(args.repeats)
  child, note = train_2dev(args, size)

  print(model_summary(params), file=sys.stderr)
  counts = parameter_split(params)
  train_gflops = None if train_flops is None else train_flops / 1e9
  sample_gflops = None if sample_flops is None else sample_flops / 1e9
  train_rate, sample_rate = ratio(train_gflops, train_s), ratio(sample_gflops, sample_s)
  print(json.dumps(dict(
      impl='hpu_jax', jax=jax.__version__, platform=jax.default_backend(),
      device=jax.devices()[0].device_kind, num_devices=jax.device_count(),
      cpu_count=os.cpu_count(), xla_flags=os.environ.get('XLA_FLAGS', ''),
      dtype=args.dtype, remat=args.remat,
      params=counts['total'], params_prior=counts['prior'],
      params_posterior=counts['posterior'], params_f_comb=counts['f_comb'],
      size=size, batch=args.batch, samples_per_image=args.samples,
      annotations_per_image=NUM_ANNOTATIONS, repeats=args.repeats,
      train_images_per_s=signif(args.batch / train_s),
      train_compile_s=signif(train_compile_s, 3),
      **{k: child.get(k) for k in CHILD_FIELDS}, train_2dev_note=note,
      sample_images_per_s=signif(args.batch * args.samples / sample_s),
      sample_compile_s=signif(sample_compile_s, 3),
      metric_images_per_s=signif(args.batch / metric_s),
      metric_compile_s=signif(metric_compile_s, 3),
      train_gflops_per_step=signif(train_gflops),
      train_achieved_gflops_per_s=signif(train_rate),
      sample_gflops_per_call=signif(sample_gflops),
      sample_achieved_gflops_per_s=signif(sample_rate),
      matmul_peak_gflops_per_s=signif(peak), matmul_size=matmul_size,
      train_fraction_of_matmul_peak=signif(ratio(train_rate, peak), 3),
      sample_fraction_of_matmul_peak=signif(ratio(sample_rate, peak), 3),
      peak_host_rss_mb=signif(host_mb), peak_device_memory_mb=signif(device_mb))))


if __name__ == '__main__':
  from hpu_jax import cli
  define_flags()
  cli.run(main)
