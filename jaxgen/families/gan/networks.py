"""Generators and discriminators of the GAN family, optionally class-conditional.

* MLPs, the setting of the original GAN (Goodfellow et al. 2014): for toy 2-D points
  (linear output) and for flattened images (tanh output).
* DCGAN (Radford et al. 2016), as pytorch/examples ``dcgan/main.py`` builds it: the
  generator maps z through a stride-1 transposed convolution to a small map, then
  doubles it with 4x4 stride-2 transposed convolutions (BatchNorm + ReLU, tanh
  output); the discriminator halves the image with 4x4 stride-2 convolutions
  (LeakyReLU 0.2, BatchNorm on all but the first) down to the small map, then a
  convolution over the whole map gives the logit. No convolution of the reference
  has a bias; weights start as N(0, 0.02), BatchNorm scales as N(1, 0.02).

Images are NHWC in [-1, 1]. A ``num_classes`` > 0 makes a network conditional
(Mirza & Osindero 2014): the one-hot label joins the generator's z, and the
discriminator's input (as extra input features, or constant extra image channels).
``aux_classes`` > 0 gives the discriminator an auxiliary classifier head (AC-GAN,
Odena et al. 2017); it then returns ``(logits, class_logits)`` instead of ``logits``.
Discriminator logits have shape (N,).

Every ``__call__`` takes ``train``: BatchNorm uses batch statistics (and updates its
running averages in the ``batch_stats`` collection) when it is true.
"""
from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.errors import ConfigError
from jaxgen.models.layers import DCGAN_INIT, batch_norm

def join_label(h, y, num_classes: int):
  """Concatenate the one-hot label to the features ``h`` (N, D)."""
  if not num_classes:
    return h
  if y is None:
    raise ValueError("This network is class-conditional: pass the labels y.")
  return jnp.concatenate([h, jax.nn.one_hot(y, num_classes, dtype=h.dtype)], -1)


def label_channels(x, y, num_classes: int):
  """Append ``num_classes`` constant channels holding the one-hot label to images."""
  if not num_classes:
    return x
  if y is None:
    raise ValueError("This network is class-conditional: pass the labels y.")
  maps = jax.nn.one_hot(y, num_classes, dtype=x.dtype)[:, None, None, :]
  return jnp.concatenate([x, jnp.broadcast_to(maps, (*x.shape[:3], num_classes))], -1)


def pyramid(size: int) -> tuple[int, int]:
  """(start size, number of 2x stages) of a DCGAN for square images of ``size``:
  halve while the size is even and above 7 (64 -> (4, 4), 32 -> (4, 3), 28 -> (7, 2))."""
  start, stages = size, 0
  while start % 2 == 0 and start > 7:
    start, stages = start // 2, stages + 1
  if stages == 0:
    raise ConfigError(f"A DCGAN needs an even image size above 7, got {size}; resize "
                      f"the data (e.g. --config.data.resize='(32, 32)').")
  return start, stages


def _square_size(shape) -> int:
  if len(shape) != 3 or shape[0] != shape[1]:
    raise ConfigError(f"A DCGAN needs square images (H, W, C), got {tuple(shape)}; "
                      f"set --config.data.resize to a square size.")
  return shape[0]


# ------------------------------------------------------------------------------------
# MLPs.

class MLPGenerator(nn.Module):
  """z -> ReLU MLP -> ``out_shape``: tanh for images, linear for points (out_shape
  of length 1). ``batch_norm`` normalises every hidden layer but the first."""
  hidden: Sequence[int]
  out_shape: tuple
  num_classes: int = 0
  batch_norm: bool = False

  @nn.compact
  def __call__(self, z, y=None, *, train: bool = False):
    h = join_label(z, y, self.num_classes)
    for i, width in enumerate(self.hidden):
      h = nn.Dense(width, name=f"hidden_{i}")(h)
      if self.batch_norm and i > 0:
        h = batch_norm(train, f"hidden_{i}_bn")(h)
      h = nn.relu(h)
    out = nn.Dense(math.prod(self.out_shape), name="out")(h)
    if len(self.out_shape) > 1:
      out = jnp.tanh(out)
    return out.reshape(z.shape[0], *self.out_shape)


class MLPDiscriminator(nn.Module):
  """Flattened input -> LeakyReLU(0.2) MLP -> logit (and class logits). ``dropout``
  after each hidden layer in training (as Goodfellow et al. and Mirza & Osindero
  regularise their discriminators) needs a 'dropout' rng."""
  hidden: Sequence[int]
  num_classes: int = 0
  aux_classes: int = 0
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x, y=None, *, train: bool = False):
    h = join_label(x.reshape(x.shape[0], -1), y, self.num_classes)
    for i, width in enumerate(self.hidden):
      h = nn.leaky_relu(nn.Dense(width, name=f"hidden_{i}")(h), 0.2)
      h = nn.Dropout(self.dropout, deterministic=not train)(h)
    logits = nn.Dense(1, name="out")(h)[:, 0]
    if self.aux_classes:
      return logits, nn.Dense(self.aux_classes, name="classes")(h)
    return logits


# ------------------------------------------------------------------------------------
# DCGAN.

class Project(nn.Module):
  """PyTorch's ConvTranspose2d(nz, C, k, 1, 0) on a 1x1 input: z (N, nz) -> a k x k
  map (N, k, k, C). Flax's ``ConvTranspose(C, (k, k), padding='VALID')`` on z as a
  1x1 image gives the same (same kernel shape and orientation), but convolves a
  (2k-1)^2 zero-padded input; this is the matmul it amounts to."""
  features: int
  size: int

  @nn.compact
  def __call__(self, z):
    kernel = self.param("kernel", DCGAN_INIT,
                        (self.size, self.size, z.shape[-1], self.features))
    return jnp.einsum("nk,ijkc->nijc", z, kernel[::-1, ::-1])


class ConvTranspose2x(nn.Module):
  """PyTorch's ConvTranspose2d(k=4, s=2, p=1, bias=False): (N, H, W, C) -> (N, 2H,
  2W, features); Flax's ``ConvTranspose(features, (4, 4), strides=(2, 2),
  padding=((2, 2), (2, 2)))`` with the same kernel gives the same.

  Computed by phases (sub-pixel convolution): output pixel (2m + r, 2n + s) sees the
  2x2 input window starting at (m + r - 1, n + s - 1) through the kernel taps
  [r::2, s::2]; one 2x2 convolution over the padded input computes all four phases
  (4 * features channels), which are then interleaved. XLA on CPU takes the gradient
  of the zero-dilated ``lax.conv_transpose`` far more slowly than this
  (docs/results.md, "Implementation choices").
  """
  features: int

  @nn.compact
  def __call__(self, x):
    n, h, w, c = x.shape
    kernel = self.param("kernel", DCGAN_INIT, (4, 4, c, self.features))
    phases = jnp.stack([kernel[r::2, s::2] for r in (0, 1) for s in (0, 1)], -2)
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = jax.lax.conv_general_dilated(
        xp, phases.reshape(2, 2, c, 4 * self.features), (1, 1), "VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    out = out.reshape(n, h + 1, w + 1, 4, self.features)
    rows = [jnp.stack([out[:, r:r + h, s:s + w, 2 * r + s] for s in (0, 1)], 3)
            for r in (0, 1)]  # each (N, H, W, 2, F)
    return jnp.stack(rows, 2).reshape(n, 2 * h, 2 * w, self.features)


class DCGANGenerator(nn.Module):
  """z (N, nz) -> images (N, H, W, C) in [-1, 1].

  Channels are ``base * 2**k`` from the widest (the start map) down to ``base``
  before the output layer: for 64x64, ngf*8 at 4x4, ngf*4 at 8x8, ngf*2 at 16x16,
  ngf at 32x32, C at 64x64. ``upsample='nearest'`` replaces each 4x4 stride-2
  transposed convolution by nearest 2x upsampling and a 3x3 convolution (not the
  reference architecture; docs/results.md, "Throughput", dcgan_mnist:nearest).
  """
  out_shape: tuple[int, int, int]
  base: int = 64
  num_classes: int = 0
  upsample: str = "transpose"

  def _up(self, h, features: int, name: str):
    if self.upsample == "transpose":
      return ConvTranspose2x(features, name=name)(h)
    if self.upsample == "nearest":
      n, hh, ww, c = h.shape
      h = jax.image.resize(h, (n, 2 * hh, 2 * ww, c), "nearest")
      return nn.Conv(features, (3, 3), padding="SAME", use_bias=False,
                     kernel_init=DCGAN_INIT, name=name)(h)
    raise ValueError(f"DCGANGenerator: upsample={self.upsample!r}; use transpose "
                     f"or nearest.")

  @nn.compact
  def __call__(self, z, y=None, *, train: bool = False):
    start, stages = pyramid(_square_size(self.out_shape))
    h = join_label(z, y, self.num_classes)
    h = Project(self.base * 2 ** (stages - 1), start, name="project")(h)
    h = nn.relu(batch_norm(train, "project_bn")(h))
    for i in range(stages - 1):
      h = self._up(h, self.base * 2 ** (stages - 2 - i), f"up_{i}")
      h = nn.relu(batch_norm(train, f"up_{i}_bn")(h))
    return jnp.tanh(self._up(h, self.out_shape[-1], "out"))


class DCGANDiscriminator(nn.Module):
  """Images (N, H, W, C) -> logits (N,) (and class logits (N, aux_classes)).

  Channels ``base * 2**i`` per stride-2 stage: for 64x64, ndf at 32x32 (no
  BatchNorm), ndf*2 at 16x16, ndf*4 at 8x8, ndf*8 at 4x4, then a 4x4 valid
  convolution to one logit. With ``batch_norm=False`` (for example for an R1
  penalty, which needs examples not to interact) the later stages get biases.
  """
  base: int = 64
  num_classes: int = 0
  aux_classes: int = 0
  batch_norm: bool = True

  @nn.compact
  def __call__(self, x, y=None, *, train: bool = False):
    start, stages = pyramid(_square_size(x.shape[1:]))
    h = label_channels(x, y, self.num_classes)
    for i in range(stages):
      norm = self.batch_norm and i > 0
      h = nn.Conv(self.base * 2 ** i, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)),
                  use_bias=i > 0 and not norm, kernel_init=DCGAN_INIT,
                  name=f"down_{i}")(h)
      if norm:
        h = batch_norm(train, f"down_{i}_bn")(h)
      h = nn.leaky_relu(h, 0.2)
    logits = nn.Conv(1, (start, start), padding="VALID", use_bias=False,
                     kernel_init=DCGAN_INIT, name="out")(h).reshape(x.shape[0])
    if self.aux_classes:
      classes = nn.Conv(self.aux_classes, (start, start), padding="VALID",
                        kernel_init=DCGAN_INIT, name="classes")(h)
      return logits, classes.reshape(x.shape[0], self.aux_classes)
    return logits


def make(arch: str, data_shape: tuple, *, hidden_g=(), hidden_d=(),
         base_g: int = 64, base_d: int = 64, num_classes: int = 0,
         conditioning: str = "", upsample: str = "transpose",
         g_batch_norm: bool = False, d_batch_norm: bool = True,
         d_dropout: float = 0.0):
  """(generator, discriminator) of ``arch`` in mlp | dcgan for data of ``data_shape``.

  ``conditioning``: '' (unconditional), 'cgan' (both players see the label) or
  'acgan' (the generator sees it, the discriminator predicts it). MLPs use
  ``hidden_g``, ``hidden_d``, ``g_batch_norm`` and ``d_dropout``; DCGANs use
  ``base_g`` (ngf), ``base_d`` (ndf), ``upsample`` and ``d_batch_norm``.
  """
  cond_g = num_classes if conditioning else 0
  cond_d = num_classes if conditioning == "cgan" else 0
  aux = num_classes if conditioning == "acgan" else 0
  if arch == "mlp":
    return (MLPGenerator(tuple(hidden_g), tuple(data_shape), cond_g, g_batch_norm),
            MLPDiscriminator(tuple(hidden_d), cond_d, aux, d_dropout))
  if arch == "dcgan":
    if d_dropout:
      raise ConfigError("Discriminator dropout is for the MLP discriminator; set "
                        "--config.model.d_dropout=0 for a DCGAN.")
    if len(data_shape) != 3:
      raise ConfigError(f"A DCGAN needs images, not data of shape {tuple(data_shape)}; "
                        f"use --config.model.arch=mlp.")
    return (DCGANGenerator(tuple(data_shape), base_g, cond_g, upsample),
            DCGANDiscriminator(base_d, cond_d, aux, d_batch_norm))
  raise ConfigError(f"config.model.arch={arch!r}; use mlp or dcgan.")
