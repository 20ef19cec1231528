"""Times every convolution of the HPU-Net on its own; prints one JSON line.

  python scripts/benchmark_convs.py --config configs/lidc_crops.py --batch 8
  python scripts/benchmark_convs.py --config configs/lidc_crops.py --batch 8 --impl torch
  python scripts/benchmark_convs.py --config configs/lidc_crops.py --kind sample --samples 16

Where does a step's time go? `scripts/benchmark.py` times the whole step;
this script times its convolutions, one at a time, so that the step's time
splits into the convolutions and the rest (activations, additions, layout
changes, the loss, the optimiser), and so that two implementations can be
compared layer by layer on the same machine.

The layers are those of `hpu_jax.flops.conv_layers` for the config's
network (`--kind train`: the training forward pass, posterior, prior and
f_comb; `--kind sample`: `--samples` samples of each image). Identical
layers are timed once and counted as often as the network has them. Each
time is the median of `--repeats` calls after a first (compiling) call.

  --impl jax: as hpu_jax computes them: `hpu_jax.layers.Conv` (bias
    included) given the layer's input groups, so with the same savings as
    the model (1x1 convs as matrix products, a conv of an upsampled input
    before the upsampling or in its sub-pixel form, on a 1x1 map the centre
    tap, and when sampling the encoder and the encoder features' share once
    per image); jitted, on JAX's default device.
  --impl torch: as a plain PyTorch network computes them: `torch.nn.Conv2d`
    over the whole concatenated input at the output's resolution, for every
    sample. PyTorch is not a dependency of hpu_jax; install it to compare.
    --threads sets torch.set_num_threads (default: PyTorch's own).
  --kind train: forward and backward (the gradients of the weights and bias,
    and of the input except for the convs that read the network's input).
  --kind sample: forward only.

Each distinct layer is printed on stderr (count, shape, ms per call, GFLOP/s
of the FLOPs that implementation computes: hpu_jax.flops with its savings
for jax, the network as written for torch). The JSON line:

  impl, version (of jax or torch), kind, size, batch, samples, repeats,
    threads (torch), xla_flags and host_malloc (jax, as in
    scripts/benchmark.py): what ran.
  layers, distinct: the network's convolutions and how many were timed.
  conv_s: the sum over the network's convolutions of their median times,
    seconds per step (train) or per call (sample); conv3x3_s and conv1x1_s
    split it by kernel size.
  gflops, gflops_per_s: the FLOPs of those convolutions and the rate.
  slowest: the 5 distinct layers that take the most time in all
    (name of the first such layer, count, ms per call, share of conv_s).
"""
import collections
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hpu_jax import host_memory  # pylint: disable=wrong-import-position

IMPLS = ('jax', 'torch')
KINDS = ('train', 'sample')


def layer_key(layer):
  """What a layer's time depends on: everything but its name."""
  return layer._replace(name='')


def distinct_layers(layers):
  """[(first layer of each distinct shape, how many the network has)], in
  the order the network first runs them."""
  counts = collections.Counter(layer_key(l) for l in layers)
  first = {}
  for l in layers:
    first.setdefault(layer_key(l), l)
  return [(first[key], counts[key]) for key in first]


def layer_flops(layer, kind, impl):
  """The FLOPs the implementation computes for one call of the layer."""
  from hpu_jax import flops  # pylint: disable=import-outside-toplevel
  if impl == 'jax':
    costs = flops.layer_costs(layer, padding_taps=False,
                              savings=flops.implementation_savings())
  else:
    costs = flops.layer_costs(layer, padding_taps=True)
  return sum(costs) if kind == 'train' else costs[0]


def signif(x, digits=4):
  return float(f'{x:.{digits}g}')


def median_seconds(call, repeats):
  call()  # compiles (jax) or warms up (torch).
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    call()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def jax_call(layer, kind):
  """A no-argument function running the layer as hpu_jax does, waited for."""
  import haiku as hk  # pylint: disable=import-outside-toplevel
  import jax  # pylint: disable=import-outside-toplevel
  from hpu_jax import layers  # pylint: disable=import-outside-toplevel

  h, w = layer.height, layer.width
  shapes = []
  for part in layer.inputs:
    batch = layer.batch // layer.samples if part.per_image else layer.batch
    size = (h // 2, w // 2) if part.upsampled else (h, w)
    shapes.append((batch,) + size + (part.channels,))
  flags = tuple(p.upsampled for p in layer.inputs)

  def conv(*values):
    return layers.Conv(layer.out_channels, layer.kernel, name='conv')(
        [layers.Part(v, f) for v, f in zip(values, flags)])
  model = hk.without_apply_rng(hk.transform(conv))
  keys = jax.random.split(jax.random.key(0), len(shapes) + 2)
  values = [jax.random.normal(k, s) for k, s in zip(keys, shapes)]
  params = model.init(keys[-1], *values)
  if kind == 'sample':
    fn = jax.jit(model.apply)
    return lambda: jax.block_until_ready(fn(params, *values))
  out_shape = jax.eval_shape(model.apply, params, *values).shape
  cotangent = jax.random.normal(keys[-2], out_shape)
  # Gradients of the parameters and, where the network needs them, the inputs.
  argnums = tuple(range(2, 2 + len(values))) if layer.input_gradient else ()

  def loss(cotangent, params, *values):
    return (model.apply(params, *values) * cotangent).sum()
  # Every array is an argument: a constant would be folded into the program.
  fn = jax.jit(jax.grad(loss, argnums=(1,) + argnums))
  return lambda: jax.block_until_ready(fn(cotangent, params, *values))


def torch_call(layer, kind):
  """A no-argument function running the layer as a plain PyTorch network."""
  import torch  # pylint: disable=import-outside-toplevel
  cin = sum(p.channels for p in layer.inputs)
  conv = torch.nn.Conv2d(cin, layer.out_channels, layer.kernel, padding=layer.kernel // 2)
  x = torch.randn(layer.batch, cin, layer.height, layer.width,
                  requires_grad=kind == 'train' and layer.input_gradient)
  if kind == 'sample':
    def forward():
      with torch.no_grad():
        conv(x)
    return forward
  cotangent = torch.randn(layer.batch, layer.out_channels, layer.height, layer.width)

  def forward_backward():
    conv.zero_grad(set_to_none=True)
    x.grad = None
    conv(x).backward(cotangent)
  return forward_backward


def describe(layer):
  """'193^+192s -> 96 3x3 at 4x4, batch 8': ^ upsampled, s shared per image."""
  inputs = '+'.join(f'{p.channels}{"^" if p.upsampled else ""}{"s" if p.per_image else ""}'
                    for p in layer.inputs)
  return (f'{inputs} -> {layer.out_channels} {layer.kernel}x{layer.kernel} at '
          f'{layer.height}x{layer.width}, batch {layer.batch}')


def run(layers, kind, impl, repeats, log=sys.stderr):
  """Times the distinct layers; the JSON fields that depend on them."""
  make_call = jax_call if impl == 'jax' else torch_call
  rows, total, by_kernel, total_flops = [], 0.0, collections.Counter(), 0
  for layer, count in distinct_layers(layers):
    seconds = median_seconds(make_call(layer, kind), repeats)
    layer_fl = layer_flops(layer, kind, impl)
    total += count * seconds
    by_kernel[layer.kernel] += count * seconds
    total_flops += count * layer_fl
    rows.append((layer, count, seconds))
    print(f'{count:3d} x {seconds * 1e3:8.2f} ms  {layer_fl / seconds / 1e9:7.1f} GFLOP/s  '
          f'{describe(layer)}  ({layer.name})', file=log, flush=True)
  slowest = sorted(rows, key=lambda r: -r[1] * r[2])[:5]
  return {
      'layers': len(layers), 'distinct': len(rows),
      'conv_s': round(total, 4),
      'conv3x3_s': round(by_kernel[3], 4), 'conv1x1_s': round(by_kernel[1], 4),
      'gflops': signif(total_flops / 1e9),
      'gflops_per_s': signif(total_flops / total / 1e9) if total else None,
      'slowest': [{'name': l.name, 'count': c, 'ms': round(s * 1e3, 3),
                   'share': round(c * s / total, 3)} for l, c, s in slowest],
  }


def define_flags():
  from absl import flags  # pylint: disable=import-outside-toplevel
  from ml_collections import config_flags  # pylint: disable=import-outside-toplevel
  config_flags.DEFINE_config_file('config', None, 'Config file (configs/*.py).')
  flags.DEFINE_enum('impl', 'jax', IMPLS, 'Whose convolutions: hpu_jax\'s or PyTorch\'s.')
  flags.DEFINE_enum('kind', 'train', KINDS, 'Training step (forward + backward) or '
                    'sampling (forward).')
  flags.DEFINE_integer('batch', 8, 'Images per step or call.', lower_bound=1)
  flags.DEFINE_integer('samples', 16, 'Samples per image (--kind sample).', lower_bound=1)
  flags.DEFINE_integer('size', None, 'Image size (default: config.data.image_size).')
  flags.DEFINE_integer('repeats', 5, 'Timed calls per layer.', lower_bound=1)
  flags.DEFINE_integer('threads', None, 'torch.set_num_threads (--impl torch).',
                       lower_bound=1)
  flags.mark_flags_as_required(['config'])


def main(argv):
  del argv
  from absl import flags  # pylint: disable=import-outside-toplevel
  from hpu_jax import configuration, flops  # pylint: disable=import-outside-toplevel
  args = flags.FLAGS
  config = args.config
  size = args.size or int(config.data.image_size)
  arch = flops.architecture_args(configuration.model_kwargs(config.model))
  samples = args.samples if args.kind == 'sample' else 1
  layers = flops.conv_layers(args.kind, size, args.batch, samples, **arch)
  record = {'impl': args.impl}
  if args.impl == 'torch':
    try:
      import torch  # pylint: disable=import-outside-toplevel
    except ImportError as e:
      raise SystemExit(f'--impl torch needs PyTorch, which is not installed ({e}); '
                       'hpu_jax does not depend on it: pip install torch') from None
    if args.threads:
      torch.set_num_threads(args.threads)
    record.update(version=torch.__version__, threads=torch.get_num_threads())
  else:
    # As scripts/train.py does, before JAX starts: the config's CPU settings.
    configuration.configure_cpu_host(config.train)
    import jax  # pylint: disable=import-outside-toplevel
    record.update(version=jax.__version__, device=jax.devices()[0].device_kind,
                  xla_flags=os.environ.get('XLA_FLAGS', ''), host_malloc=host_memory.state())
  record.update(kind=args.kind, size=size, batch=args.batch, samples=samples,
                repeats=args.repeats)
  record.update(run(layers, args.kind, args.impl, args.repeats))
  print(json.dumps(record))


if __name__ == '__main__':
  from absl import app  # pylint: disable=g-import-not-at-top
  define_flags()
  app.run(main)
