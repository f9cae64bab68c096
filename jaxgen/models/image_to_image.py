"""The networks of image-to-image translation, as junyanz/pytorch-CycleGAN-and-pix2pix
``models/networks.py`` builds them (Pix2Pix: Isola et al. 2017; CycleGAN: Zhu et al.
2017).

* ``UNetGenerator``: the U-Net of Pix2Pix (``unet_256``: 8 halvings, ``unet_128``: 7).
  Level i (0 = outermost) halves the map with a 4x4 stride-2 convolution to
  ``ngf * (1, 2, 4, 8, 8, ...)[i]`` channels (LeakyReLU 0.2 before it, except at level
  0; a norm after it, except at levels 0 and innermost); on the way up, ReLU, a 4x4
  stride-2 transposed convolution, a norm (tanh at level 0 instead), dropout 0.5 at the
  levels 4 .. n-2 (the paper's three CD512 layers in unet_256), and the concatenation
  [skip, up] with the level's input. (The reference's in-place LeakyReLU also rewrites
  the tensor that ``torch.cat([x, model(x)])`` then reads, so its skip is
  LeakyReLU(input); that is kept here, and it changes nothing: the skip only enters the
  parent's ReLU, and relu(leaky_relu(x)) = relu(x).)
* ``ResnetGenerator``: CycleGAN's ``resnet_9blocks`` (``resnet_6blocks``): reflection
  padding 3, 7x7 convolution, two 3x3 stride-2 halvings, residual blocks (reflection
  padding, two 3x3 convolutions), two 3x3 stride-2 transposed convolutions (output
  padding 1), reflection padding 3, 7x7 convolution, tanh; a norm + ReLU after every
  convolution but the last.
* ``PatchDiscriminator``: the ``n_layers`` PatchGAN (``n_layers=3``: the 70x70 patch):
  4x4 convolutions, stride 2 then the last two stride 1, LeakyReLU 0.2, a norm on all
  but the first and the last; one logit per patch, (N, H', W').

Norms: ``batch`` (BatchNorm with PyTorch's momentum 0.1 and eps 1e-5; no convolution
bias before it) or ``instance`` (InstanceNorm2d with affine=False: per-image, per-channel
statistics over H x W, eps 1e-5, no parameters; the convolutions keep their bias), as
the reference's ``use_bias = norm is InstanceNorm2d``. Weights start as N(0, 0.02),
BatchNorm scales as N(1, 0.02) (the reference's ``init_weights('normal')``).

Every ``__call__`` takes ``train`` (BatchNorm batch statistics and their running
averages in ``batch_stats``) and, for the generators, ``dropout`` (whether dropout is
on; the paper keeps it on at test time as the noise z, and keys it by the 'dropout'
rng). Images are NHWC in [-1, 1].
"""
from __future__ import annotations

import re

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.models.layers import BN_EPS, BN_MOMENTUM, DCGAN_INIT, dcgan_normal

NORMS = ("batch", "instance")
IN_EPS = 1e-5
UNET_DEPTHS = {"unet_128": 7, "unet_256": 8}
RESNET_BLOCKS = {"resnet_6blocks": 6, "resnet_9blocks": 9}
GENERATORS = (*UNET_DEPTHS, *RESNET_BLOCKS)


def check_norm(norm: str):
  if norm not in NORMS:
    raise ValueError(f"norm={norm!r}; use one of {NORMS}.")


def instance_norm(x, eps: float = IN_EPS):
  """InstanceNorm2d(affine=False): each image's channels to zero mean, unit (biased)
  variance over H x W."""
  mean = x.mean(axis=(1, 2), keepdims=True)
  var = ((x - mean) ** 2).mean(axis=(1, 2), keepdims=True)
  return (x - mean) * jax.lax.rsqrt(var + eps)


class Norm(nn.Module):
  """The configured norm layer (``batch`` has parameters and statistics)."""
  kind: str
  train: bool = False

  @nn.compact
  def __call__(self, x):
    if self.kind == "instance":
      return instance_norm(x)
    return nn.BatchNorm(use_running_average=not self.train, momentum=BN_MOMENTUM,
                        epsilon=BN_EPS, scale_init=dcgan_normal(1.0), name="bn")(x)


def conv(features: int, kernel: int, stride: int, pad: int, bias: bool, name: str):
  """PyTorch's Conv2d(kernel, stride, padding=pad) with zero padding."""
  return nn.Conv(features, (kernel, kernel), (stride, stride),
                 padding=((pad, pad), (pad, pad)), use_bias=bias, kernel_init=DCGAN_INIT,
                 name=name)


def conv_transpose(features: int, kernel: int, pad: int, output_pad: int, bias: bool,
                   name: str):
  """PyTorch's ConvTranspose2d(kernel, stride 2, padding=pad, output_padding) as a
  convolution over the 2x dilated input padded (k - 1 - pad, k - 1 - pad + output_pad);
  the kernel is PyTorch's (Cin, Cout, k, k) flipped in space, as (k, k, Cin, Cout)."""
  lo = kernel - 1 - pad
  return nn.ConvTranspose(features, (kernel, kernel), (2, 2),
                          padding=((lo, lo + output_pad), (lo, lo + output_pad)),
                          use_bias=bias, kernel_init=DCGAN_INIT, name=name)


def reflect_pad(x, pad: int):
  return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")


def unet_channels(num_downs: int, ngf: int) -> tuple:
  """The channels after each level's down convolution: ngf, 2 ngf, 4 ngf, 8 ngf, ..."""
  return tuple(ngf * min(2 ** i, 8) for i in range(num_downs))


def unet_dropout_levels(num_downs: int) -> tuple:
  """The levels whose up path ends in dropout (when enabled): 4 .. num_downs - 2."""
  return tuple(range(4, num_downs - 1))


def check_unet_size(num_downs: int, height: int, width: int, name: str = "the U-Net"):
  """A ValueError unless H and W are multiples of 2^num_downs (each level halves)."""
  if num_downs < 5:
    raise ValueError(f"The reference U-Net has at least 5 levels (num_downs >= 5), got "
                     f"{num_downs}.")
  unit = 2 ** num_downs
  if height % unit or width % unit:
    raise ValueError(
        f"{name} halves the image {num_downs} times, so its height and width must be "
        f"multiples of {unit} ({unit}, {2 * unit}, {3 * unit}, ...); these images are "
        f"{height}x{width}. Set config.data.resize=({unit}, {unit}) (and "
        f"config.data.jitter_resize larger, if jittering), or choose a generator with "
        f"fewer levels.")


class UNetGenerator(nn.Module):
  """Pix2Pix's U-Net (module docstring). Names: ``down_i`` / ``up_i`` convolutions,
  ``down_norm_i`` (levels 1 .. n-2) and ``up_norm_i`` (levels 1 .. n-1)."""
  output_nc: int
  num_downs: int = 8
  ngf: int = 64
  norm: str = "batch"
  use_dropout: bool = True
  dropout_rate: float = 0.5

  @nn.compact
  def __call__(self, x, *, train: bool = False, dropout: bool = False):
    check_norm(self.norm)
    n = self.num_downs
    check_unet_size(n, x.shape[1], x.shape[2])
    bias = self.norm == "instance"
    chans = unet_channels(n, self.ngf)
    skips, h = [], x
    for i in range(n):
      if i > 0:
        h = nn.leaky_relu(h, 0.2)
        skips.append(h)  # as the reference's in-place LeakyReLU leaves it
      h = conv(chans[i], 4, 2, 1, bias, f"down_{i}")(h)
      if 0 < i < n - 1:
        h = Norm(self.norm, train, name=f"down_norm_{i}")(h)
    drop_levels = unet_dropout_levels(n) if self.use_dropout else ()
    for i in reversed(range(n)):
      h = nn.relu(h)
      if i == 0:
        h = conv_transpose(self.output_nc, 4, 1, 0, True, "up_0")(h)
        return jnp.tanh(h)
      h = conv_transpose(chans[i - 1], 4, 1, 0, bias, f"up_{i}")(h)
      h = Norm(self.norm, train, name=f"up_norm_{i}")(h)
      if i in drop_levels:
        h = nn.Dropout(self.dropout_rate, deterministic=not dropout)(h)
      h = jnp.concatenate([skips[i - 1], h], axis=-1)


class ResnetBlock(nn.Module):
  dim: int
  norm: str = "instance"
  use_dropout: bool = False

  @nn.compact
  def __call__(self, x, *, train: bool, dropout: bool):
    bias = self.norm == "instance"
    h = conv(self.dim, 3, 1, 0, bias, "conv_0")(reflect_pad(x, 1))
    h = nn.relu(Norm(self.norm, train, name="norm_0")(h))
    if self.use_dropout:
      h = nn.Dropout(0.5, deterministic=not dropout)(h)
    h = conv(self.dim, 3, 1, 0, bias, "conv_1")(reflect_pad(h, 1))
    return x + Norm(self.norm, train, name="norm_1")(h)


class ResnetGenerator(nn.Module):
  """CycleGAN's ResNet generator (module docstring). Names: ``conv_in``,
  ``down_0/1``, ``block_i``, ``up_0/1``, ``conv_out`` and their ``*_norm``."""
  output_nc: int
  ngf: int = 64
  n_blocks: int = 9
  norm: str = "instance"
  use_dropout: bool = False

  @nn.compact
  def __call__(self, x, *, train: bool = False, dropout: bool = False):
    check_norm(self.norm)
    if x.shape[1] % 4 or x.shape[2] % 4:
      raise ValueError(f"The ResNet generator halves the image twice and doubles it "
                       f"back, so its height and width must be multiples of 4; these "
                       f"images are {x.shape[1]}x{x.shape[2]}: set config.data.resize.")
    bias = self.norm == "instance"
    norm = lambda name: Norm(self.norm, train, name=name)
    h = conv(self.ngf, 7, 1, 0, bias, "conv_in")(reflect_pad(x, 3))
    h = nn.relu(norm("conv_in_norm")(h))
    for i in range(2):
      h = conv(self.ngf * 2 ** (i + 1), 3, 2, 1, bias, f"down_{i}")(h)
      h = nn.relu(norm(f"down_{i}_norm")(h))
    for i in range(self.n_blocks):
      h = ResnetBlock(self.ngf * 4, self.norm, self.use_dropout, name=f"block_{i}")(
          h, train=train, dropout=dropout)
    for i in range(2):
      h = conv_transpose(self.ngf * 2 ** (1 - i), 3, 1, 1, bias, f"up_{i}")(h)
      h = nn.relu(norm(f"up_{i}_norm")(h))
    h = conv(self.output_nc, 7, 1, 0, True, "conv_out")(reflect_pad(h, 3))
    return jnp.tanh(h)


class PatchDiscriminator(nn.Module):
  """The ``n_layers`` PatchGAN (module docstring): (N, H, W, C) -> logits (N, H', W').
  Names: ``conv_0`` .. ``conv_{n_layers + 1}``, ``norm_1`` .. ``norm_{n_layers}``."""
  ndf: int = 64
  n_layers: int = 3
  norm: str = "batch"

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    check_norm(self.norm)
    bias = self.norm == "instance"
    h = nn.leaky_relu(conv(self.ndf, 4, 2, 1, True, "conv_0")(x), 0.2)
    for n in range(1, self.n_layers + 1):
      stride = 2 if n < self.n_layers else 1
      h = conv(self.ndf * min(2 ** n, 8), 4, stride, 1, bias, f"conv_{n}")(h)
      h = nn.leaky_relu(Norm(self.norm, train, name=f"norm_{n}")(h), 0.2)
    h = conv(1, 4, 1, 1, True, f"conv_{self.n_layers + 1}")(h)
    return h[..., 0]


def receptive_field(n_layers: int) -> int:
  """The side of the input window one PatchGAN logit sees: 70 for n_layers = 3."""
  r = 1
  strides = [2] * n_layers + [1, 1]  # the last two convolutions have stride 1
  for s in reversed(strides):
    r = (r - 1) * s + 4
  return r


def make_generator(arch: str, output_nc: int, ngf: int, norm: str, use_dropout: bool,
                   num_downs: int = 0):
  """``unet_256`` / ``unet_128``, ``unet`` with ``num_downs`` levels, or
  ``resnet_9blocks`` / ``resnet_6blocks`` / ``resnet_<N>blocks``."""
  if arch in UNET_DEPTHS or arch == "unet":
    depth = UNET_DEPTHS.get(arch, num_downs)
    return UNetGenerator(output_nc, depth, ngf, norm, use_dropout)
  blocks = re.fullmatch(r"resnet_(\d+)blocks", arch)
  if blocks:  # resnet_9blocks, resnet_6blocks, or any other number of blocks
    return ResnetGenerator(output_nc, ngf, int(blocks.group(1)), norm, use_dropout)
  raise ValueError(f"Unknown generator {arch!r}; use one of {', '.join(GENERATORS)} or "
                   f"'unet' with num_downs.")
