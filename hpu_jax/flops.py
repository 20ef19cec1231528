"""FLOPs of the HPU-Net counted from its architecture, not from a program.

Conventions:
  * Only convolutions (and the 1x1 convs, which are matrix products) are
    counted: 2 FLOPs per multiply-add. Biases, activations, additions,
    resampling, the losses and the optimiser are left out; they are a few per
    cent of the work for the networks' usual widths.
  * Training step = forward + backward. The backward pass of a conv costs
    2x its forward (the gradient with respect to its input and the one with
    respect to its weights, each as many multiply-adds as the forward), except
    for the convs that read the network's input (the image, or the posterior's
    one-hot segmentation and image): their input gradient is not needed, so
    their backward costs 1x. Rematerialisation (`model.remat`) is not
    counted: it adds about one forward pass to the program, not to the
    architecture.
  * Only work whose result is used is counted: the training forward pass
    skips the posterior's decoder blocks after its last latent head (they
    feed nothing; XLA removes them from the program).

`padding_taps=True` (the default, "the network as written") counts every
tap of a k x k SAME convolution, 2 k^2 Cin Cout FLOPs per output pixel, the
taps over the zero padding included. `padding_taps=False` counts only the
taps that fall inside the input: XLA's cost analysis counts convolutions that
way, and it is also what a 3x3 conv on a 1x1 map reduced to its centre tap
costs (1 of 9 taps).

`savings` names the ways hpu_jax computes the same result with fewer FLOPs
(none are in the network as written; hpu_jax/layers.py and model.py):
  'upsampled_1x1':    a 1x1 conv of a nearest-upsampled input runs before
                      the upsampling, at a quarter of the positions.
  'subpixel_3x3':     a 3x3 conv of a nearest-upsampled input in its
                      sub-pixel form (layers.conv3x3_of_upsampled): each of
                      the four output phases is a 2x2 conv of the
                      low-resolution input, 4 taps per output pixel instead
                      of 9 (2.25x fewer), plus the kernel transform (168
                      FLOPs per weight pair, once per call). Counted as XLA
                      counts hpu_jax's form, whatever padding_taps says: the
                      forward conv with all 4 taps per output pixel, the two
                      gradients as convs over the low-resolution input padded
                      by one pixel, (h/2 + 1) x (w/2 + 1) positions.
  'shared_per_image': sampling S samples per image (`HPUNet.sample_many`)
                      runs the prior's encoder once per image, and each
                      decoder conv's share over the encoder features once per
                      image, instead of once per sample.
`implementation_savings()` names those the installed hpu_jax makes.

Everything takes explicit arguments (those of `hpu_jax.build_hpunet` that
shape the network, with its defaults) and is plain Python; only
`implementation_savings()` imports hpu_jax.layers (and so JAX).
"""
import math
from typing import Iterable, NamedTuple, Optional, Sequence, Tuple, Union

SAVINGS = ('upsampled_1x1', 'subpixel_3x3', 'shared_per_image')

# The original's LIDC model (hpu_jax.model's defaults).
DEFAULT_CHANNELS = (24, 48, 96, 192, 192, 192, 192, 192)
DEFAULT_LATENT_DIMS = (1, 1, 1, 1)
# The arguments of build_hpunet that this module reads.
ARCHITECTURE_ARGS = ('num_classes', 'latent_dims', 'channels_per_block',
                     'down_channels_per_block', 'convs_per_block', 'blocks_per_level',
                     'prior_components')

Size = Union[int, Tuple[int, int]]


class Input(NamedTuple):
  """One channel group of a conv's input (the `Part`s of hpu_jax.layers)."""
  channels: int
  upsampled: bool = False   # nearest-upsampled x2 from half the resolution.
  per_image: bool = False   # the same for every sample of an image (sampling).


class ConvLayer(NamedTuple):
  """One SAME convolution of the network, with what its FLOPs depend on."""
  name: str                 # e.g. 'prior/encoder_level_0_block_0/conv_0'.
  kernel: int               # k of a k x k kernel.
  inputs: Tuple[Input, ...]
  out_channels: int
  height: int               # output resolution (SAME: the input's, upsampled).
  width: int
  batch: int                # output batch: images, x samples when sampling.
  samples: int              # samples per image sharing a per_image input.
  input_gradient: bool      # whether training needs the gradient of its input.


def architecture_args(kwargs: dict) -> dict:
  """The entries of `build_hpunet` keyword arguments (e.g.
  hpu_jax.configuration.model_kwargs) that this module takes."""
  return {k: v for k, v in kwargs.items() if k in ARCHITECTURE_ARGS}


def _hw(image_size: Size) -> Tuple[int, int]:
  if isinstance(image_size, (tuple, list)):
    h, w = image_size
  else:
    h = w = image_size
  return int(h), int(w)


def _down(channels, down_channels):
  if down_channels is None or len(tuple(down_channels)) == 0:
    return tuple(c // 2 for c in channels)
  down = tuple(int(c) for c in down_channels)
  if len(down) != len(channels):
    raise ValueError(f'down_channels_per_block={down}: expected {len(channels)} entries.')
  return down


def conv_layers(kind: str, image_size: Size, batch: int, num_samples: int = 1,
                num_classes: int = 2, latent_dims: Sequence[int] = DEFAULT_LATENT_DIMS,
                channels_per_block: Sequence[int] = DEFAULT_CHANNELS,
                down_channels_per_block: Optional[Sequence[int]] = None,
                convs_per_block: int = 3, blocks_per_level: int = 3,
                prior_components: int = 1) -> Tuple[ConvLayer, ...]:
  """Every conv of one call, in the order the network runs them.

  kind 'train': the training forward pass (`HPUNet.__call__`): posterior,
    prior fed the posterior's latents, f_comb, for `batch` images.
  kind 'sample': `num_samples` samples of each of `batch` images
    (`HPUNet.sample_many`): prior and f_comb. As written, that is the network
    run once per sample: every layer has batch num_samples x batch, and the
    encoder's layers and the decoder's encoder-feature inputs are marked
    per_image (what 'shared_per_image' computes once per image).
  """
  if kind not in ('train', 'sample'):
    raise ValueError(f'kind={kind!r}: expected "train" or "sample".')
  height, width = _hw(image_size)
  channels = tuple(int(c) for c in channels_per_block)
  down = _down(channels, down_channels_per_block)
  latent_dims = tuple(int(d) for d in latent_dims)
  levels, n_lat = len(channels), len(latent_dims)
  if not 0 < n_lat < levels:
    raise ValueError(f'latent_dims={latent_dims}: expected 1 to {levels - 1} levels.')
  factor = 2 ** (levels - 1)
  if height % factor or width % factor:
    raise ValueError(f'image size {height} x {width} is not divisible by {factor}.')
  samples = int(num_samples) if kind == 'sample' else 1
  total_batch = batch * samples
  layers = []

  def size(level):
    return height >> level, width >> level

  def blocks(prefix, level, first_inputs, per_image, first_is_input=False):
    """The residual blocks of one level (hpu_jax.layers.ResBlock)."""
    h, w = size(level)
    c, d = channels[level], down[level]
    inputs = tuple(first_inputs)
    for b in range(blocks_per_level):
      name = f'{prefix}_block_{b}'
      grad = not (first_is_input and b == 0)
      cin = sum(i.channels for i in inputs)
      x = inputs
      for i in range(convs_per_block):
        layers.append(ConvLayer(f'{name}/conv_{i}', 3, x, d, h, w, total_batch, samples,
                                grad))
        x = (Input(d, per_image=per_image),)
        grad = True
      if cin != c:
        layers.append(ConvLayer(f'{name}/skip_projection', 1, inputs, c, h, w,
                                total_batch, samples, not (first_is_input and b == 0)))
      if d != c:
        layers.append(ConvLayer(f'{name}/residual_projection', 1,
                                (Input(d, per_image=per_image),), c, h, w, total_batch,
                                samples, True))
      inputs = (Input(c, per_image=per_image),)

  def core(name, in_channels, per_image, components, decode_last_level):
    for level in range(levels):
      cin = in_channels if level == 0 else channels[level - 1]
      blocks(f'{name}/encoder_level_{level}', level, (Input(cin, per_image=per_image),),
             per_image, first_is_input=level == 0)
    x_channels = channels[-1]
    for l, dim in enumerate(latent_dims):
      level = levels - 1 - l
      h, w = size(level)
      k = components if l == 0 else 1
      out = 2 * dim if k == 1 else k * (1 + 2 * dim)
      layers.append(ConvLayer(f'{name}/latent_head_{l}', 1, (Input(x_channels),), out, h, w,
                              total_batch, samples, True))
      if l == n_lat - 1 and not decode_last_level:
        break
      blocks(f'{name}/decoder_level_{l}', level - 1,
             (Input(dim + x_channels, upsampled=True),
              Input(channels[level - 1], per_image=per_image)), False)
      x_channels = channels[level - 1]

  if kind == 'train':
    core('posterior', num_classes + 1, False, 1, decode_last_level=False)
  core('prior', 1, kind == 'sample', int(prior_components), decode_last_level=True)
  for level in range(n_lat + 1, levels):
    lv = levels - 1 - level
    blocks(f'f_comb/level_{level}', lv,
           (Input(channels[lv + 1], upsampled=True),
            Input(channels[lv], per_image=kind == 'sample')), False)
  layers.append(ConvLayer('f_comb/logits', 1, (Input(channels[0]),), int(num_classes),
                          height, width, total_batch, samples, True))
  return tuple(layers)


def _valid_taps(n: int, k: int) -> int:
  """Taps of a k-tap SAME window (k odd) inside an input of n positions,
  summed over the n output positions."""
  p = (k - 1) // 2
  return sum(min(n - 1, i + p) - max(0, i - p) + 1 for i in range(n))


def _check_savings(savings: Iterable[str]) -> frozenset:
  savings = frozenset(savings)
  unknown = savings - set(SAVINGS)
  if unknown:
    raise ValueError(f'savings {sorted(unknown)}: expected names from {SAVINGS}.')
  return savings


def _subpixel_transform_flops(cin: int, cout: int) -> int:
  """The sub-pixel form's kernel transform (3x3 -> four 2x2 phases), as
  layers.conv3x3_of_upsampled contracts it: two products over the taps of
  each direction, 72 + 96 FLOPs per weight pair; once per call."""
  return 168 * cin * cout


def layer_costs(layer: ConvLayer, padding_taps: bool = True,
                savings: Iterable[str] = ()) -> Tuple[int, int]:
  """(forward, backward) FLOPs of one conv (2 per multiply-add); backward is
  2x forward, 1x for a conv that needs no input gradient."""
  savings = _check_savings(savings)
  k, h, w = layer.kernel, layer.height, layer.width
  forward = backward = 0
  for part in layer.inputs:
    batch = layer.batch
    if part.per_image and 'shared_per_image' in savings:
      batch //= layer.samples
    pairs = part.channels * layer.out_channels
    if part.upsampled and k == 1 and 'upsampled_1x1' in savings:
      taps = (h // 2) * (w // 2)
    elif part.upsampled and k == 3 and 'subpixel_3x3' in savings:
      # Four 2x2 taps per low-resolution pixel and output phase: 4 h w per
      # channel pair. hpu_jax runs it as one VALID 2x2 conv with 4x the
      # output channels over the input padded by one pixel; XLA folds that
      # padding into the forward conv (only the taps inside the input
      # count), but both gradients are convs over the padded (h/2 + 1) x
      # (w/2 + 1) positions.
      forward_taps = 4 * h * w
      backward_taps = 16 * (h // 2 + 1) * (w // 2 + 1)
      transform = _subpixel_transform_flops(part.channels, layer.out_channels)
      forward += 2 * batch * forward_taps * pairs + transform
      gradients = 2 if layer.input_gradient else 1
      # The kernel transform's backward: the weights' gradient only.
      backward += 2 * batch * backward_taps * pairs * gradients + transform
      continue
    elif padding_taps:
      taps = h * w * k * k
    else:
      taps = _valid_taps(h, k) * _valid_taps(w, k)
    flops = 2 * batch * taps * pairs
    forward += flops
    backward += flops * (2 if layer.input_gradient else 1)
  return forward, backward


def layer_flops(layer: ConvLayer, padding_taps: bool = True,
                savings: Iterable[str] = ()) -> int:
  """Forward FLOPs of one conv (2 per multiply-add)."""
  return layer_costs(layer, padding_taps, savings)[0]


def _arch(kwargs):
  unknown = set(kwargs) - set(ARCHITECTURE_ARGS)
  if unknown:
    raise TypeError(f'unexpected arguments {sorted(unknown)}; architecture_args() '
                    'filters build_hpunet keywords.')
  return kwargs


def forward_flops(image_size: Size, batch: int, *, padding_taps: bool = True,
                  savings: Iterable[str] = (), **architecture) -> int:
  """FLOPs of the training forward pass (posterior, prior, f_comb)."""
  layers = conv_layers('train', image_size, batch, **_arch(architecture))
  return sum(layer_flops(l, padding_taps, savings) for l in layers)


def train_step_flops(image_size: Size, batch: int, *, padding_taps: bool = True,
                     savings: Iterable[str] = (), **architecture) -> int:
  """FLOPs of one training step: forward + backward (see the conventions)."""
  layers = conv_layers('train', image_size, batch, **_arch(architecture))
  return sum(sum(layer_costs(l, padding_taps, savings)) for l in layers)


def sample_flops(image_size: Size, batch: int, num_samples: int, *,
                 padding_taps: bool = True, savings: Iterable[str] = (),
                 **architecture) -> int:
  """FLOPs of drawing `num_samples` samples of each of `batch` images."""
  layers = conv_layers('sample', image_size, batch, num_samples, **_arch(architecture))
  return sum(layer_flops(l, padding_taps, savings) for l in layers)


def upsampled_share(kind: str, image_size: Size, batch: int, num_samples: int = 1, *,
                    padding_taps: bool = False, **architecture) -> float:
  """The fraction of the (forward) FLOPs, as written, spent on inputs that
  are upsampled: the most that 'upsampled_1x1' and 'subpixel_3x3' can save."""
  layers = conv_layers(kind, image_size, batch, num_samples, **_arch(architecture))
  total = sum(layer_flops(l, padding_taps) for l in layers)
  upsampled = sum(layer_flops(l._replace(inputs=tuple(i for i in l.inputs if i.upsampled)),
                              padding_taps) for l in layers)
  return upsampled / total if total else math.nan


def implementation_savings() -> Tuple[str, ...]:
  """The `savings` that the installed hpu_jax.layers makes: all three, or
  all but 'subpixel_3x3' in versions before its sub-pixel form."""
  from hpu_jax import layers  # pylint: disable=import-outside-toplevel
  if hasattr(layers, 'conv3x3_of_upsampled'):
    return SAVINGS
  return ('upsampled_1x1', 'shared_per_image')
