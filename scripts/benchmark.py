"""Measures the HPU-Net's speed on this machine; prints one JSON line.

  python scripts/benchmark.py --config configs/lidc_crops.py --batch 8
  python scripts/benchmark.py --config configs/synthetic.py --dtype bfloat16 --remat
  python scripts/benchmark.py --config configs/lidc_slices.py --batch 32 --profile_dir prof

Flags: --batch (global batch, default 8), --size (default
config.data.image_size), --samples (N per image, default 16), --repeats
(timed calls, default 5), --dtype {float32,bfloat16} (sets
config.model.compute_dtype and passes compute_dtype to the train step and the
sampler; float32 passes nothing), --remat (sets config.model.remat = True),
--no_2dev (skips the 2-device subprocess), --matmul_size N (the matmul probes'
n; default 2048 on CPU, 8192 on an accelerator), --memory_mb M (the bandwidth
probe's array; default 256 MiB on CPU, 2048 on an accelerator),
--profile_dir DIR and --profile_steps K (default 5): after every timed
measurement, K more train steps run under jax.profiler.trace(DIR,
create_perfetto_trace=True), which writes DIR/plugins/profile/<run>/ (an
XSpace .xplane.pb, a Chrome <host>.trace.json.gz and perfetto_trace.json.gz);
and any config field as with scripts/train.py
(--config.model.channels_per_block=...).

Every time is the median over `--repeats` timed calls after one compile call;
each call is waited for with block_until_ready. The fields of the JSON line:

  impl, jax, platform, device, num_devices, cpu_count, xla_flags, host_malloc:
    what ran (device kind of jax.devices()[0], os.cpu_count(), $XLA_FLAGS or
    '', and how glibc's allocator serves XLA:CPU's buffers:
    hpu_jax.host_memory.state(), 'reuse' or why not).
  dtype, remat, size, batch, samples_per_image, annotations_per_image,
    repeats, params*: the settings and the parameter counts.
  train_images_per_s: forward, backward and Adam update of the configured
    loss, jitted on one device, `--batch` images per step; train_step_s is
    the median seconds of one step.
  train_compile_s = train_lower_s + train_xla_compile_s + train_first_step_s:
    tracing and lowering to StableHLO (jit(...).lower), XLA's compilation
    (.compile(); on GPU it includes autotuning, and a hit in JAX's persistent
    compilation cache makes it a load), and the first call of the compiled
    step, which may hold one-off costs (allocation, transfers). None of it
    is in train_step_s.
  protocol_hours: the paper's protocol, 240,000 steps of batch 32, at the
    measured rate: 240000 * 32 / train_images_per_s / 3600. The rate is that
    of `--batch` on one device, so the figure is the protocol's exactly only
    with --batch 32.
  train_images_per_s_2dev, train_compile_s_2dev: the same global batch
    through the pmapped train step of hpu_jax/train.py (state replicated with
    hpu_jax.train.replicate, batch split [2, batch / 2, ...]), measured in a
    child process of this script (`--_child train2`); the compile time is
    that of its first call. On CPU the child gets
    XLA_FLAGS=--xla_force_host_platform_device_count=2: two fake devices
    sharing the same cores. Null when skipped or impossible (one GPU, odd
    batch); train_2dev_note says what ran or why not. device_2dev,
    xla_flags_2dev and peak_host_rss_mb_2dev describe the child.
  sample_images_per_s: sampled label maps per second, `--samples` per image
    through the jitted sampler (the prior encoder is shared across samples);
    sample_call_s is the median seconds of one call (`--batch` images).
    sample_compile_s = sample_lower_s + sample_xla_compile_s +
    sample_first_call_s, as for training.
  metric_images_per_s, metric_compile_s: images per second through the
    evaluation metrics as hpu_jax/evaluate.py scores one batch (`--batch`
    images of random binary masks, `--samples` samples and 4 annotations per
    image): the distance matrices (sample-annotation, sample-sample and
    annotation-annotation), GED, HM-IoU and S_NCC, results read back to
    numpy; the compile time is that of the first call.

  FLOPs, counted three ways (hpu_jax/flops.py states the conventions: 2 FLOPs
  per multiply-add of the convolutions and matrix products; a training step
  is forward + backward, the backward 2x the forward, 1x for the convs that
  read the network's input):
  train_gflops_per_step, sample_gflops_per_call: the program's count, from
    XLA's cost analysis of the compiled call ('flops'); null where the
    backend reports no cost. It counts the elementwise work too (activations,
    losses, Adam: a few per cent), convolutions only over the taps inside
    the input, and with --remat the recomputed forward pass.
  train_gflops_per_step_architecture, sample_gflops_per_call_architecture:
    the network as written in the paper (hpu_jax.flops with every tap of
    each k x k conv, the zero padding's included, and no savings: for
    sampling, the whole network once per sample).
  train_gflops_per_step_implementation, sample_gflops_per_call_implementation:
    what hpu_jax's convolutions and matrix products compute, counted as XLA
    counts them (hpu_jax.flops with padding_taps=False and the savings in
    flops_savings). On CPU the program's count is this plus the elementwise
    work (tests/test_flops.py checks it on a small config).
  flops_savings: the names of the savings that hpu_jax makes
    (hpu_jax.flops.implementation_savings()): 'upsampled_1x1' (a 1x1 conv of
    an upsampled input run before the upsampling), 'subpixel_3x3' (a 3x3 one
    in its sub-pixel form), 'shared_per_image' (in sampling, the encoder and
    the decoder's share over its features once per image, not per sample).
  train_flops_program_complete, sample_flops_program_complete: whether the
    program's count is at least 0.9x the implementation's. False means the
    cost analysis misses work: on GPU, convolutions run as cuDNN custom calls
    that XLA's cost analysis does not count (seen on an H100, jax 0.11.2), so
    the program's count, and the rates and fractions made from it, are far
    too low there; use the *_model_* fields. Null without a program count.
  train_achieved_gflops_per_s, sample_achieved_gflops_per_s: the program's
    count over the median time of a call; train_model_gflops_per_s,
    sample_model_gflops_per_s: the architecture's count over that time (the
    useful work per second, as for a "model FLOPs utilisation").
  matmul_peak_float32_gflops_per_s, matmul_peak_bfloat16_gflops_per_s,
    matmul_size: median rate (at least 3 calls) of jitted n x n matmuls of
    that dtype (2 n^3 FLOPs) at the default matmul precision, like the
    model's (on GPU float32 then uses TF32); matmul_peak_gflops_per_s is the
    one of `--dtype`. train_fraction_of_matmul_peak and
    sample_fraction_of_matmul_peak divide the achieved rates by it,
    train_model_fraction_of_matmul_peak and
    sample_model_fraction_of_matmul_peak the model rates.
  train_gbytes_per_step, sample_gbytes_per_call: bytes accessed by one call
    from XLA's cost analysis ('bytes accessed': every operand and result of
    the compiled program's operations, caches ignored), in GB (1e9);
    *_achieved_gbytes_per_s divides them by the median time of a call.
  memory_bandwidth_gbytes_per_s, memory_probe_mb: median rate (at least 3
    calls) of a jitted x + 1 over a float32 array of memory_probe_mb MiB,
    updated in place (donated), counting its bytes read and written (2x its
    size) per call; train_fraction_of_memory_bandwidth and
    sample_fraction_of_memory_bandwidth are the achieved byte rates over it.
    On CPU they can exceed 1: the cost analysis' bytes include what caches
    serve.
  peak_host_rss_mb: peak resident memory of this process (getrusage
    ru_maxrss) after the train, sampling and metric measurements and before
    the probes, in MiB; peak_device_memory_mb: peak_bytes_in_use of
    jax.devices()[0].memory_stats() at the same point (null on CPU, where
    there are no memory stats).
  profile_dir, profiled_steps, profile_trace: with --profile_dir, the
    directory (absolute), the number of train steps traced (after the
    probes, the same compiled step and batch; dispatched back to back and
    waited for once at the end, like a training loop; each step in a
    jax.profiler.StepTraceAnnotation 'train_step' with its step_num), and
    the perfetto_trace.json.gz written (null if none). Without the flag:
    null, 0, null.
"""
import glob
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
from hpu_jax import compile_cache, configuration, flops, host_memory, parameter_split  # noqa: E402
from hpu_jax import evaluate as evaluation  # noqa: E402
from hpu_jax.model import model_summary  # noqa: E402
from hpu_jax.precision import DTYPES  # noqa: E402
from hpu_jax.sampling import make_sampler  # noqa: E402
from hpu_jax.train import AXIS, replicate  # noqa: E402
from hpu_jax.train_step import create_train_state, make_train_step  # noqa: E402

NUM_ANNOTATIONS = 4          # Annotations per image for the metric throughput.
DEVICE_COUNT_FLAG = '--xla_force_host_platform_device_count'
# The paper's training protocol: steps and batch (protocol_hours).
PROTOCOL_STEPS, PROTOCOL_BATCH = 240_000, 32
# The program's FLOP count is complete when at least this fraction of the
# implementation's count from hpu_jax.flops (it can only add elementwise work).
COMPLETE_FRACTION = 0.9
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


def cost_of(compiled, key):
  """A total of XLA's cost analysis of a compiled computation ('flops',
  'bytes accessed'), or None where the backend reports none."""
  try:
    cost = compiled.cost_analysis()
  except Exception:  # noqa: BLE001  Some backends do not implement it.
    return None
  if isinstance(cost, dict):
    cost = [cost]
  values = [c[key] for c in cost or () if c and c.get(key) is not None]
  return float(sum(values)) if values else None


def flops_of(compiled):
  """FLOPs of a compiled computation from XLA's cost analysis, or None."""
  return cost_of(compiled, 'flops')


def bytes_of(compiled):
  """Bytes accessed by a compiled computation (XLA's cost analysis), or None."""
  return cost_of(compiled, 'bytes accessed')


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
  return None if a is None or b is None or not b else a / b


def scaled(x, unit=1e9):
  return None if x is None else x / unit


def protocol_hours(images_per_s):
  """Hours of the paper's 240,000 steps of batch 32 at `images_per_s`."""
  return PROTOCOL_STEPS * PROTOCOL_BATCH / images_per_s / 3600


def program_complete(program, implementation):
  """Whether the program's FLOP count covers the implementation's (see
  COMPLETE_FRACTION); None without a program count."""
  if program is None or not implementation:
    return None
  return program >= COMPLETE_FRACTION * implementation


def architecture_flops(config, size, batch, num_samples):
  """FLOPs from hpu_jax.flops: {'train'|'sample': {'architecture': n,
  'implementation': n}} and the savings the implementation makes."""
  arch = flops.architecture_args(configuration.model_kwargs(config.model))
  savings = flops.implementation_savings()
  counts = {}
  for kind, fn, extra in (('train', flops.train_step_flops, ()),
                          ('sample', flops.sample_flops, (num_samples,))):
    counts[kind] = {
        'architecture': fn(size, batch, *extra, **arch),
        'implementation': fn(size, batch, *extra, padding_taps=False, savings=savings,
                             **arch)}
  return counts, savings


def setup(config, args):
  """(config, model, optimizer, loss config, image size) for the arguments."""
  config = apply_options(config, args)
  # As scripts/train.py does, before JAX starts: the config's CPU settings.
  configuration.configure_cpu_host(config.train)
  if config.train.get('compilation_cache_dir', ''):
    compile_cache.enable(config.train.compilation_cache_dir)  # before any compile.
  size = args.size or int(config.data.image_size)
  model = configuration.build_model(config.model)
  optimizer = configuration.optimizer(config.train)
  return config, model, optimizer, configuration.loss_config(config.loss), size


def random_batch(batch, size):
  images = jax.random.uniform(jax.random.key(1), (batch, size, size, 1))
  labels = (jax.random.uniform(jax.random.key(2), (batch, size, size)) > 0.9).astype(jnp.int32)
  return images, labels


def lower_and_compile(jitted, *args):
  """(compiled, lowering seconds, XLA compile seconds)."""
  start = time.perf_counter()
  lowered = jitted.lower(*args)
  lowered_at = time.perf_counter()
  compiled = lowered.compile()
  return compiled, lowered_at - start, time.perf_counter() - lowered_at


def compiled_costs(compiled, lower_s, compile_s, first_s, seconds):
  """The timing and cost-analysis record of one benchmarked program."""
  return dict(lower_s=lower_s, xla_compile_s=compile_s, first_s=first_s,
              compile_s=lower_s + compile_s + first_s, seconds=seconds,
              flops=flops_of(compiled), bytes=bytes_of(compiled))


def bench_train(model, optimizer, loss_cfg, state, images, labels, args):
  """One-device jitted train step: (state, compiled step, costs dict: lower_s,
  xla_compile_s, first_s, compile_s, seconds per step, flops, bytes)."""
  step = jax.jit(make_train_step(model, optimizer, loss_cfg,
                                 **dtype_kwargs(make_train_step, args.dtype)),
                 donate_argnums=0)
  compiled, lower_s, compile_s = lower_and_compile(step, state, images, labels)
  state, first_s, seconds = time_train_steps(compiled, state, images, labels, args.repeats)
  return state, compiled, compiled_costs(compiled, lower_s, compile_s, first_s, seconds)


def time_train_steps(step, state, images, labels, repeats):
  """Runs one step, timed alone (for a jitted or pmapped function that is
  its compilation), then the median of `repeats` steps; the state is donated
  and replaced each step. Returns (state, first step s, seconds per step)."""
  start = time.perf_counter()
  state, _ = step(state, images, labels)
  jax.block_until_ready(state)
  first_s = time.perf_counter() - start
  holder = [state]

  def one_step():
    holder[0], metrics = step(holder[0], images, labels)
    return holder[0], metrics
  seconds = median_seconds(one_step, repeats)
  return holder[0], first_s, seconds


def bench_sample(model, params, images, args):
  """The sampler, jitted as one call: the costs dict of bench_train."""
  sample = make_sampler(model, **dtype_kwargs(make_sampler, args.dtype))
  # The outer jit inlines the sampler's own; it is compiled once, and its
  # cost analysis covers the whole call (every output is kept).
  sample_all = jax.jit(lambda p, rng, x: sample(p, rng, x, args.samples))
  rng = jax.random.key(3)
  compiled, lower_s, compile_s = lower_and_compile(sample_all, params, rng, images)
  start = time.perf_counter()
  jax.block_until_ready(compiled(params, rng, images))
  first_s = time.perf_counter() - start
  seconds = median_seconds(lambda: compiled(params, jax.random.key(4), images), args.repeats)
  return compiled_costs(compiled, lower_s, compile_s, first_s, seconds)


def bench_metrics(batch, size, num_samples, repeats):
  """Evaluation metrics of one batch as evaluate.py scores it: (s, compile s)."""
  rng = np.random.default_rng(0)
  samples = (rng.random((batch, num_samples, size, size)) > 0.5).astype(np.uint8)
  probs = rng.random((batch, num_samples, size, size), dtype=np.float32)
  annotations = (rng.random((batch, NUM_ANNOTATIONS, size, size)) > 0.5).astype(np.uint8)

  # evaluate.py's own per-batch scoring at one N: GED, HM-IoU and S_NCC, over
  # the batch and per number of annotators who marked the image.
  # pylint: disable=protected-access
  sums_class, score_batch, add_scores = evaluation._Sums, evaluation._score, evaluation._add_scores

  def score():
    sums, by_marked = sums_class(), evaluation.MetricsByMarked()
    scores = score_batch(samples, probs, annotations, num_samples)
    add_scores(sums, scores)
    by_marked.add(scores, annotations)
    return sums.means()
  start = time.perf_counter()
  score()
  compile_s = time.perf_counter() - start
  return median_seconds(score, repeats), compile_s


def matmul_peak(repeats, dtype='float32', n=None):
  """(GFLOP/s of jitted n x n matmuls of `dtype`, n); n defaults to 2048 on
  CPU and 8192 on an accelerator."""
  n = n or (2048 if jax.default_backend() == 'cpu' else 8192)
  ka, kb = jax.random.split(jax.random.key(5))
  a = jax.random.normal(ka, (n, n), DTYPES[dtype])
  b = jax.random.normal(kb, (n, n), DTYPES[dtype])
  matmul = jax.jit(jnp.matmul)
  jax.block_until_ready(matmul(a, b))
  seconds = median_seconds(lambda: matmul(a, b), max(repeats, 3))
  return 2 * n**3 / seconds / 1e9, n


def memory_bandwidth(repeats, mib=None):
  """(GB/s of a jitted in-place x + 1 over a float32 array of `mib` MiB,
  counting its bytes read and written, mib); mib defaults to 256 on CPU and
  2048 on an accelerator."""
  mib = mib or (256 if jax.default_backend() == 'cpu' else 2048)
  holder = [jnp.zeros((mib * 2**20 // 4,), jnp.float32)]
  nbytes = holder[0].nbytes
  add = jax.jit(lambda x: x + 1, donate_argnums=0)  # in place: no new buffer.
  holder[0] = jax.block_until_ready(add(holder[0]))

  def one_call():
    holder[0] = add(holder[0])
    return holder[0]
  seconds = median_seconds(one_call, max(repeats, 3))
  del holder[0]
  return 2 * nbytes / seconds / 1e9, mib


def profile_train(step, state, images, labels, steps, directory):
  """`steps` train steps under jax.profiler.trace(directory) with a Perfetto
  trace; returns (state, the perfetto_trace.json.gz written or None)."""
  directory = os.path.abspath(directory)
  with jax.profiler.trace(directory, create_perfetto_trace=True):
    for i in range(steps):
      with jax.profiler.StepTraceAnnotation('train_step', step_num=i):
        state, _ = step(state, images, labels)
    jax.block_until_ready(state)
  traces = glob.glob(os.path.join(directory, 'plugins', 'profile', '*',
                                  'perfetto_trace.json.gz'))
  return state, max(traces, key=os.path.getmtime) if traces else None


# ----------------------------------------------------------------------------
# Two devices: a child process of this script.

def child_train2(config, args):
  """The pmapped train step of hpu_jax/train.py on 2 devices; prints JSON."""
  _, model, optimizer, loss_cfg, size = setup(config, args)   # Before JAX starts.
  devices = jax.local_devices()[:2]
  if len(devices) < 2:
    raise SystemExit(f'--_child train2: {len(devices)} device(s), need 2.')
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
  _, compile_s, seconds = time_train_steps(p_step, rstate, images, labels, args.repeats)
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
  flags.DEFINE_integer('matmul_size', None, 'n of the n x n matmul probes '
                       '(default: 2048 on CPU, 8192 on an accelerator).', lower_bound=1)
  flags.DEFINE_integer('memory_mb', None, 'MiB of the bandwidth probe\'s array '
                       '(default: 256 on CPU, 2048 on an accelerator).', lower_bound=1)
  flags.DEFINE_string('profile_dir', None, 'Trace --profile_steps train steps into '
                      'this directory (jax.profiler, with a Perfetto trace).')
  flags.DEFINE_integer('profile_steps', 5, 'Train steps traced with --profile_dir.',
                       lower_bound=1)
  flags.DEFINE_enum('_child', None, ['train2'], 'Internal: run as the 2-device child.')
  flags.mark_flags_as_required(['config'])


def main(argv):
  del argv
  from absl import flags
  args = flags.FLAGS
  if args._child == 'train2':  # pylint: disable=protected-access
    child_train2(args.config, args)
    return
  config, model, optimizer, loss_cfg, size = setup(args.config, args)
  state = create_train_state(model, optimizer, jax.random.key(0), (1, size, size, 1))
  images, labels = random_batch(args.batch, size)

  state, train_step, train = bench_train(model, optimizer, loss_cfg, state, images, labels,
                                         args)
  params = state.params['model']
  param_counts, summary = parameter_split(params), model_summary(params)
  sample = bench_sample(model, params, images, args)
  del params  # The profiled steps below donate the state that holds them.
  metric_s, metric_compile_s = bench_metrics(args.batch, size, args.samples, args.repeats)
  host_mb, device_mb = peak_host_rss_mb(), peak_device_memory_mb()
  peaks = {}
  for dtype in DTYPES:
    peaks[dtype], matmul_size = matmul_peak(args.repeats, dtype, args.matmul_size)
  bandwidth, memory_mb = memory_bandwidth(args.repeats, args.memory_mb)
  trace = None
  if args.profile_dir:
    state, trace = profile_train(train_step, state, images, labels, args.profile_steps,
                                 args.profile_dir)
  del state, train_step
  child, note = train_2dev(args, size)

  print(summary, file=sys.stderr)
  counts, savings = architecture_flops(config, size, args.batch, args.samples)
  fields = {}
  for kind, measured, per in (('train', train, 'per_step'), ('sample', sample, 'per_call')):
    architecture = counts[kind]['architecture']
    implementation = counts[kind]['implementation']
    rate = ratio(measured['flops'], measured['seconds'])
    model_rate = architecture / measured['seconds']
    byte_rate = ratio(measured['bytes'], measured['seconds'])
    fields[kind] = {
        f'{kind}_gflops_{per}': signif(scaled(measured['flops'])),
        f'{kind}_gflops_{per}_architecture': signif(scaled(architecture)),
        f'{kind}_gflops_{per}_implementation': signif(scaled(implementation)),
        f'{kind}_flops_program_complete': program_complete(measured['flops'],
                                                           implementation),
        f'{kind}_achieved_gflops_per_s': signif(scaled(rate)),
        f'{kind}_model_gflops_per_s': signif(scaled(model_rate)),
        f'{kind}_fraction_of_matmul_peak': signif(ratio(scaled(rate), peaks[args.dtype]), 3),
        f'{kind}_model_fraction_of_matmul_peak': signif(
            ratio(scaled(model_rate), peaks[args.dtype]), 3),
        f'{kind}_gbytes_{per}': signif(scaled(measured['bytes'])),
        f'{kind}_achieved_gbytes_per_s': signif(scaled(byte_rate)),
        f'{kind}_fraction_of_memory_bandwidth': signif(ratio(scaled(byte_rate), bandwidth), 3),
    }
  split = ('train', train, 'step'), ('sample', sample, 'call')
  compile_fields = {}
  for kind, measured, what in split:
    compile_fields[kind] = {
        f'{kind}_compile_s': signif(measured['compile_s'], 3),
        f'{kind}_lower_s': signif(measured['lower_s'], 3),
        f'{kind}_xla_compile_s': signif(measured['xla_compile_s'], 3),
        f'{kind}_first_{what}_s': signif(measured['first_s'], 3),
        f'{kind}_{what}_s': signif(measured['seconds'], 4)}
  train_rate = args.batch / train['seconds']
  print(json.dumps(dict(
      impl='hpu_jax', jax=jax.__version__, platform=jax.default_backend(),
      device=jax.devices()[0].device_kind, num_devices=jax.device_count(),
      cpu_count=os.cpu_count(), xla_flags=os.environ.get('XLA_FLAGS', ''),
      host_malloc=host_memory.state(), dtype=args.dtype, remat=args.remat,
      params=param_counts['total'], params_prior=param_counts['prior'],
      params_posterior=param_counts['posterior'], params_f_comb=param_counts['f_comb'],
      size=size, batch=args.batch, samples_per_image=args.samples,
      annotations_per_image=NUM_ANNOTATIONS, repeats=args.repeats,
      train_images_per_s=signif(train_rate),
      **compile_fields['train'],
      protocol_hours=signif(protocol_hours(train_rate), 4),
      **{k: child.get(k) for k in CHILD_FIELDS}, train_2dev_note=note,
      sample_images_per_s=signif(args.batch * args.samples / sample['seconds']),
      **compile_fields['sample'],
      metric_images_per_s=signif(args.batch / metric_s),
      metric_compile_s=signif(metric_compile_s, 3),
      flops_savings=list(savings),
      **fields['train'], **fields['sample'],
      matmul_peak_gflops_per_s=signif(peaks[args.dtype]),
      **{f'matmul_peak_{d}_gflops_per_s': signif(p) for d, p in peaks.items()},
      matmul_size=matmul_size,
      memory_bandwidth_gbytes_per_s=signif(bandwidth), memory_probe_mb=memory_mb,
      peak_host_rss_mb=signif(host_mb), peak_device_memory_mb=signif(device_mb),
      profile_dir=os.path.abspath(args.profile_dir) if args.profile_dir else None,
      profiled_steps=args.profile_steps if args.profile_dir else 0,
      profile_trace=trace)))


if __name__ == '__main__':
  from hpu_jax import cli
  define_flags()
  cli.run(main)
