"""hpu_jax.flops: the architecture's FLOP count, checked against the model's
parameters (every conv it counts exists with that shape) and against XLA's
cost analysis of the compiled train step and sampler on a small config."""
import jax
import jax.numpy as jnp
import pytest

from hpu_jax import build_hpunet, configuration, flops
from hpu_jax.sampling import make_sampler
from hpu_jax.train_step import create_train_state, make_train_step

from helpers import tiny_config

# A small config whose convolutions carry nearly all the work: 2 levels of 48
# and 96 channels at 16 x 16, one latent level, GECO with top-k.
SMALL = dict(channels_per_block=(48, 96), latent_dims=(2,), convs_per_block=2,
             blocks_per_level=1, prior_components=1)
SIZE, BATCH, SAMPLES = 16, 2, 4


def small_config():
  config = tiny_config()
  for name, value in SMALL.items():
    setattr(config.model, name, value)
  config.data.image_size = SIZE
  config.loss.loss_type = 'geco'
  config.loss.top_k_percentage = 0.02
  return config


def arch_of(config):
  return flops.architecture_args(configuration.model_kwargs(config.model))


def module_path(name):
  """'hpunet/~/prior/~_level/encoder_level_0_block_0/conv_0' ->
  'prior/encoder_level_0_block_0/conv_0' (flops.ConvLayer.name)."""
  return '/'.join(p for p in name.split('/') if p != 'hpunet' and not p.startswith('~'))


# Five levels, three latent levels, custom inner channels, a mixture prior:
# every kind of layer and shape the counter has to get right.
STRUCTURE = dict(channels_per_block=(6, 8, 10, 12, 12), down_channels_per_block=(3, 8, 5, 6, 4),
                 latent_dims=(2, 1, 3), convs_per_block=2, blocks_per_level=2,
                 prior_components=3, num_classes=3)


def test_every_counted_conv_is_a_parameter_of_the_model_with_that_shape():
  model = build_hpunet(**STRUCTURE)
  params = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 16, 16), jnp.int32),
                                             jnp.zeros((1, 16, 16, 1))))
  weights = {module_path(name): values['w'].shape for name, values in params.items()}
  counted = {}
  for kind in ('train', 'sample'):
    for layer in flops.conv_layers(kind, 16, 2, 3, **STRUCTURE):
      shape = (layer.kernel, layer.kernel, sum(i.channels for i in layer.inputs),
               layer.out_channels)
      assert weights.get(layer.name) == shape, (kind, layer.name, shape)
      counted[layer.name] = shape
  # Every weight is counted, but the posterior's last decoder level: nothing
  # reads its output in training (XLA drops it), and sampling has no posterior.
  left_out = set(weights) - set(counted)
  assert left_out and all(n.startswith('posterior/decoder_level_2_') for n in left_out), left_out


def test_one_conv_by_hand():
  layer = flops.ConvLayer('c', 3, (flops.Input(5), flops.Input(2, upsampled=True)), 7,
                          height=4, width=6, batch=2, samples=1, input_gradient=True)
  plain = 2 * 2 * 4 * 6 * 9 * 7 * (5 + 2)
  assert flops.layer_flops(layer) == plain
  # Only the taps inside the input: 3n - 2 per dimension.
  assert flops.layer_flops(layer, padding_taps=False) == 2 * 2 * 10 * 16 * 7 * 7
  assert flops.layer_costs(layer) == (plain, 2 * plain)
  assert flops.layer_costs(layer._replace(input_gradient=False)) == (plain, plain)
  # The upsampled part as four 2x2 taps per output pixel, plus the kernel
  # transform; the untouched part as before.
  subpixel = flops.layer_flops(layer, savings=['subpixel_3x3'])
  assert subpixel == 2 * 2 * 4 * 6 * (9 * 5 + 4 * 2) * 7 + 168 * 2 * 7
  one_by_one = layer._replace(kernel=1)
  assert flops.layer_flops(one_by_one, savings=['upsampled_1x1']) == (
      2 * 2 * 7 * (4 * 6 * 5 + 2 * 3 * 2))
  with pytest.raises(ValueError, match='savings'):
    flops.layer_flops(layer, savings=['winograd'])


def test_valid_taps_and_the_centre_tap_of_a_1x1_map():
  assert [flops._valid_taps(n, 3) for n in (1, 2, 3, 8)] == [1, 4, 7, 22]  # pylint: disable=protected-access
  centre = flops.ConvLayer('c', 3, (flops.Input(4),), 4, 1, 1, 1, 1, True)
  assert flops.layer_flops(centre, padding_taps=False) * 9 == flops.layer_flops(centre)


def test_counts_scale_as_the_plain_network_does():
  arch = dict(STRUCTURE)
  one = flops.forward_flops(16, 1, **arch)
  assert flops.forward_flops(16, 3, **arch) == 3 * one
  # As written, S samples are the prior and f_comb run S times.
  sample = flops.sample_flops(16, 2, 1, **arch)
  assert flops.sample_flops(16, 2, 5, **arch) == 5 * sample
  # Sharing per image saves nothing for one sample, and a lot for many.
  assert flops.sample_flops(16, 2, 1, savings=['shared_per_image'], **arch) == sample
  assert flops.sample_flops(16, 2, 5, savings=['shared_per_image'], **arch) < 0.7 * 5 * sample
  # Training: backward 2x forward, but the two input convs of each encoder
  # (conv_0 and skip_projection of level 0's first block) 1x.
  train = flops.train_step_flops(16, 1, **arch)
  inputs = sum(flops.layer_flops(l) for l in flops.conv_layers('train', 16, 1, **arch)
               if not l.input_gradient)
  assert train == 3 * one - inputs and inputs > 0
  with pytest.raises(TypeError, match='unexpected'):
    flops.forward_flops(16, 1, log_sigma_bound=1.0, **arch)


def test_the_defaults_are_the_models():
  from hpu_jax import model
  assert flops.DEFAULT_CHANNELS == model.DEFAULT_CHANNELS
  assert flops.DEFAULT_LATENT_DIMS == model.DEFAULT_LATENT_DIMS


def test_the_lidc_model_as_written():
  # The original's LIDC model at 128 x 128, batch 32: about 739 GFLOP per
  # training step and 246 per forward pass, every tap counted.
  assert flops.train_step_flops(128, 32) == pytest.approx(738.6e9, rel=1e-3)
  assert flops.forward_flops(128, 32) == pytest.approx(246.4e9, rel=1e-3)


def compiled_flops(fn, *args):
  cost = jax.jit(fn).lower(*args).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  return cost['flops']


def test_the_programs_flops_agree_with_the_architecture():
  """XLA's cost analysis of the compiled train step and sampler against
  hpu_jax.flops: the plain network (no savings) less the savings that the
  implementation makes, counted as XLA counts a convolution (only the taps
  inside the input). Nothing is run; only compiled.

  Tolerance: the program's count must lie in [0.99, 1.05] x the
  architecture's. Above: XLA also counts elementwise work (activations,
  biases, residual sums, pooling, the loss, random draws and Adam), which
  flops.py leaves out by convention; on this config it is 2.7 % of a train
  step and 1.4 % of a sampling call (jax 0.10.2, CPU). Below: every conv and
  matrix product flops.py counts must be in the program; 1 % allows for
  contractions over a single channel, which XLA turns into a multiply and
  counts as 1 FLOP instead of 2 (0.05 % here). The convs and matrix products
  alone (read from the compiled HLO) matched flops.py to 0.05 %."""
  config = small_config()
  model = configuration.build_model(config.model)
  optimizer = configuration.optimizer(config.train)
  state = jax.eval_shape(lambda: create_train_state(model, optimizer, jax.random.key(0),
                                                    (1, SIZE, SIZE, 1)))
  images = jax.ShapeDtypeStruct((BATCH, SIZE, SIZE, 1), jnp.float32)
  labels = jax.ShapeDtypeStruct((BATCH, SIZE, SIZE), jnp.int32)
  arch, savings = arch_of(config), flops.implementation_savings()

  step = make_train_step(model, optimizer, configuration.loss_config(config.loss))
  program = compiled_flops(step, state, images, labels)
  counted = flops.train_step_flops(SIZE, BATCH, padding_taps=False, savings=savings, **arch)
  plain = flops.train_step_flops(SIZE, BATCH, padding_taps=False, **arch)
  assert counted < plain  # Some savings apply.
  assert 0.99 <= program / counted <= 1.05, (program, counted, savings)

  sample = make_sampler(model)
  program = compiled_flops(lambda p, r, x: sample(p, r, x, SAMPLES),
                           state.params['model'], jax.random.key(0), images)
  counted = flops.sample_flops(SIZE, BATCH, SAMPLES, padding_taps=False, savings=savings,
                               **arch)
  plain = flops.sample_flops(SIZE, BATCH, SAMPLES, padding_taps=False, **arch)
  assert counted < 0.7 * plain  # Shared per image: the encoder once, not 4 times.
  assert 0.99 <= program / counted <= 1.05, (program, counted, savings)
