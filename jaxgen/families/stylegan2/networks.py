"""StyleGAN2's generator and discriminator (Karras et al. 2020, "Analyzing and
Improving the Image Quality of StyleGAN"), as NVlabs' stylegan2-ada-pytorch
``training/networks.py`` builds them; the operations are in ``stylegan2_ops.py``.

Generator = mapping network + synthesis network:
* ``MappingNetwork``: z -> pixel norm (and, for conditional models, the pixel-normed
  embedding of the one-hot label c, concatenated) -> ``num_layers`` dense layers of
  ``layer_features`` (leaky ReLU, lr multiplier 0.01) -> w. A running average
  ``w_avg`` lives in the ``buffers`` collection (not a parameter): the truncation
  trick pulls w towards it, w' = w_avg + psi (w - w_avg), on the first
  ``truncation_cutoff`` layers (all without a cutoff).
* ``SynthesisNetwork``: one block per resolution 4, 8, ..., R. The 4x4 block starts
  from a learned constant; the others up-sample (FIR [1, 3, 3, 1]) in their first
  modulated convolution. Each modulated convolution takes its own w (an affine layer
  gives the styles, bias 1), adds noise times a learned strength (random, or the
  fixed ``noise_const`` buffer), bias, leaky ReLU times sqrt(2) and the clamp
  ``conv_clamp``. The ``skip`` architecture sums the blocks' toRGB outputs, each
  earlier sum up-sampled with the FIR filter. ``num_ws`` = 2 log2(R) - 2 w's.

Discriminator (``resnet``, ``orig`` or ``skip``): fromRGB at the top resolution, then
per resolution two 3x3 convolutions (the second down-sampling with the FIR filter),
the ``resnet`` shortcut a 1x1 down-sampling convolution, both branches times
sqrt(1/2); the 4x4 epilogue: minibatch standard deviation (group ``mbstd_group_size``,
``mbstd_num_channels`` channels), a 3x3 convolution, a dense layer, and the output
(1 logit, or for conditional models a ``cmap_dim`` vector projected on the label's
mapping: the projection discriminator of Miyato & Koyama 2018).

Images are NHWC in [-1, 1]; weights keep the reference's torch layouts and names
(``synthesis/b8/conv0/affine/weight`` is ``synthesis.b8.conv0.affine.weight``), so an
official pickle's state maps on by name (jaxgen/weights/stylegan2.py).
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.families.stylegan2.ops import (Conv2dLayer, FullyConnected, bias_act,
                                         hashed_normal, modulated_conv2d,
                                         normalize_2nd_moment,
                                         normal_init, setup_filter, upsample2d,
                                         downsample2d)

BUFFERS = "buffers"  # the non-parameter collection: w_avg, noise_const
NOISE_MODES = ("random", "const", "none")
ARCHITECTURES = ("orig", "skip", "resnet")


def check_resolution(resolution: int):
  if resolution < 4 or resolution & (resolution - 1):
    raise ValueError(f"StyleGAN2 needs a resolution that is a power of two, at least "
                     f"4; got {resolution}. Resize the data (config.data.resize) to "
                     f"e.g. 32 or 64.")


def channels_per_resolution(resolution: int, channel_base: int, channel_max: int):
  """{res: min(channel_base // res, channel_max)} for res = 4 ... resolution."""
  check_resolution(resolution)
  return {2 ** i: min(channel_base // 2 ** i, channel_max)
          for i in range(2, int(math.log2(resolution)) + 1)}


def num_ws(resolution: int) -> int:
  """The number of w's the synthesis network of ``resolution`` takes (skip)."""
  check_resolution(resolution)
  return 2 * int(math.log2(resolution)) - 2


def noise_size(resolution: int) -> int:
  """The number of noise values per image of a synthesis network (res^2 per layer)."""
  return 16 + sum(2 * 4 ** i for i in range(3, int(math.log2(resolution)) + 1))


def check_psi(psi):
  if isinstance(psi, (int, float)) and not 0.0 <= psi <= 1.0:
    raise ValueError(f"truncation_psi={psi}: the truncation trick interpolates "
                     f"between w_avg (psi=0) and w (psi=1); use psi in [0, 1].")


def _as_float(x):
  """``x`` as float32, or as it is in a low-precision compute dtype (the policy's):
  a hard float32 here would run the layers after it in float32 on rounded weights."""
  return x if x.dtype in (jnp.bfloat16, jnp.float16) else x.astype(jnp.float32)


class MappingNetwork(nn.Module):
  """z (and one-hot c) -> w [N, w_dim]; ``w_avg`` in ``buffers`` if ``track_w_avg``."""
  z_dim: int
  c_dim: int
  w_dim: int
  num_layers: int = 8
  embed_features: int | None = None
  layer_features: int | None = None
  lr_multiplier: float = 0.01
  track_w_avg: bool = True

  @nn.compact
  def __call__(self, z, c=None):
    x = None
    if self.z_dim > 0:
      if z is None or z.shape[-1] != self.z_dim:
        raise ValueError(f"The mapping network takes z of dimension {self.z_dim}; got "
                         f"{None if z is None else z.shape}.")
      x = normalize_2nd_moment(_as_float(z))
    if self.c_dim > 0:
      if c is None or c.shape[-1] != self.c_dim:
        raise ValueError(f"This network is conditional: pass one-hot labels c of "
                         f"dimension {self.c_dim}; got {None if c is None else c.shape}.")
      embed = self.embed_features or self.w_dim
      y = normalize_2nd_moment(FullyConnected(embed, name="embed")(
          _as_float(c)))
      x = y if x is None else jnp.concatenate([x, y], axis=1)
    layer = self.layer_features or self.w_dim
    for i in range(self.num_layers):
      out = self.w_dim if i == self.num_layers - 1 else layer
      x = FullyConnected(out, activation="lrelu", lr_multiplier=self.lr_multiplier,
                         name=f"fc{i}")(x)
    if self.track_w_avg:
      self.variable(BUFFERS, "w_avg", lambda: jnp.zeros((self.w_dim,), jnp.float32))
    return x


class SynthesisLayer(nn.Module):
  """A modulated 3x3 convolution (up-sampling when ``up`` = 2) with noise."""
  features: int
  resolution: int
  up: int = 1
  kernel_size: int = 3
  use_noise: bool = True
  conv_clamp: float | None = None
  resample_filter: tuple = (1, 3, 3, 1)

  @nn.compact
  def __call__(self, x, w, noise_mode: str = "random", gain: float = 1.0,
               random_noise=None):
    """``random_noise`` [N, res, res, 1] ~ N(0, 1): the noise of ``noise_mode``
    'random' (drawn here if not given)."""
    cin, k = x.shape[-1], self.kernel_size
    styles = FullyConnected(cin, bias_init=1.0, name="affine")(w)
    weight = self.param("weight", normal_init(), (self.features, cin, k, k))
    noise = None
    if self.use_noise:
      const = self.variable(BUFFERS, "noise_const", lambda: hashed_normal(
          self.make_rng("params"), (self.resolution, self.resolution)))
      strength = self.param("noise_strength", nn.initializers.zeros, ())
      if noise_mode == "random":
        if random_noise is None:
          random_noise = jax.random.normal(
              self.make_rng("noise"), (x.shape[0], self.resolution, self.resolution, 1))
        noise = random_noise * strength
      elif noise_mode == "const":
        noise = (const.value * strength)[None, :, :, None]
    x = modulated_conv2d(x, weight, styles, noise=noise, up=self.up, padding=k // 2,
                         resample_filter=setup_filter(self.resample_filter),
                         flip_weight=self.up == 1)
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
    return bias_act(x, bias, "lrelu", gain=math.sqrt(2.0) * gain, clamp=clamp)


class ToRGBLayer(nn.Module):
  """A modulated 1x1 convolution without demodulation (styles / sqrt(in)), bias."""
  features: int
  conv_clamp: float | None = None

  @nn.compact
  def __call__(self, x, w):
    cin = x.shape[-1]
    styles = FullyConnected(cin, bias_init=1.0, name="affine")(w) / math.sqrt(cin)
    weight = self.param("weight", normal_init(), (self.features, cin, 1, 1))
    x = modulated_conv2d(x, weight, styles, demodulate=False)
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    return bias_act(x, bias, "linear", clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
  in_channels: int  # 0: the first block (learned constant)
  out_channels: int
  resolution: int
  img_channels: int
  is_last: bool
  architecture: str = "skip"
  conv_clamp: float | None = None
  resample_filter: tuple = (1, 3, 3, 1)

  @property
  def num_conv(self):
    return 1 if self.in_channels == 0 else 2

  @property
  def num_torgb(self):
    return 1 if (self.is_last or self.architecture == "skip") else 0

  @nn.compact
  def __call__(self, x, img, ws, noise_mode: str = "random", noise=(None, None)):
    """``noise``: the random noise of conv0 and conv1 (or Nones)."""
    f = setup_filter(self.resample_filter)
    layer = lambda name, **kw: SynthesisLayer(
        self.out_channels, self.resolution, conv_clamp=self.conv_clamp,
        resample_filter=self.resample_filter, name=name, **kw)
    if self.in_channels == 0:
      const = self.param("const", normal_init(),
                         (self.out_channels, self.resolution, self.resolution))
      x = jnp.broadcast_to(jnp.transpose(const, (1, 2, 0))[None],
                           (ws.shape[0], self.resolution, self.resolution,
                            self.out_channels))
      x = layer("conv1")(x, ws[:, 0], noise_mode, random_noise=noise[1])
    elif self.architecture == "resnet":
      y = Conv2dLayer(self.out_channels, 1, up=2, use_bias=False,
                      resample_filter=self.resample_filter, name="skip")(
                          x, gain=math.sqrt(0.5))
      x = layer("conv0", up=2)(x, ws[:, 0], noise_mode, random_noise=noise[0])
      x = layer("conv1")(x, ws[:, 1], noise_mode, gain=math.sqrt(0.5),
                         random_noise=noise[1])
      x = y + x
    else:
      x = layer("conv0", up=2)(x, ws[:, 0], noise_mode, random_noise=noise[0])
      x = layer("conv1")(x, ws[:, 1], noise_mode, random_noise=noise[1])
    if img is not None:
      img = upsample2d(img, f)
    if self.num_torgb:
      y = ToRGBLayer(self.img_channels, conv_clamp=self.conv_clamp, name="torgb")(
          x, ws[:, self.num_conv])
      img = y if img is None else img + y
    return x, img


class SynthesisNetwork(nn.Module):
  """ws [N, num_ws, w_dim] -> images [N, R, R, img_channels]."""
  w_dim: int
  resolution: int
  img_channels: int
  channel_base: int = 32768
  channel_max: int = 512
  architecture: str = "skip"
  conv_clamp: float | None = None

  @nn.compact
  def __call__(self, ws, noise_mode: str = "random", noise_bank=None):
    """``noise_bank`` [N, noise_size(resolution)]: the random noise of every layer
    (noise_mode 'random'), in the reference's draw order (b4.conv1, b8.conv0,
    b8.conv1, ...), each layer's [res, res] row-major; drawn here if not given."""
    if noise_mode not in NOISE_MODES:
      raise ValueError(f"noise_mode={noise_mode!r}; use one of {NOISE_MODES}.")
    if self.architecture not in ARCHITECTURES:
      raise ValueError(f"architecture={self.architecture!r}; use {ARCHITECTURES}.")
    channels = channels_per_resolution(self.resolution, self.channel_base,
                                       self.channel_max)
    if ws.ndim != 3 or ws.shape[1:] != (num_ws(self.resolution), self.w_dim):
      raise ValueError(f"The synthesis network takes ws [N, {num_ws(self.resolution)},"
                       f" {self.w_dim}]; got {ws.shape}.")
    bank = None
    if noise_mode == "random":  # one draw for all layers (XLA compiles it faster)
      shape = (ws.shape[0], noise_size(self.resolution))
      if noise_bank is None:
        bank = jax.random.normal(self.make_rng("noise"), shape)
      elif noise_bank.shape != shape:
        raise ValueError(f"noise_bank must be {shape} (batch, noise_size); got "
                         f"{noise_bank.shape}.")
      else:
        bank = noise_bank
    x = img = None
    w_idx = offset = 0
    for res in channels:
      noise = []
      for i in range(2):
        if bank is None or (res == 4 and i == 0):
          noise.append(None)
          continue
        noise.append(bank[:, offset:offset + res * res].reshape(-1, res, res, 1))
        offset += res * res
      block = SynthesisBlock(channels[res // 2] if res > 4 else 0, channels[res], res,
                             self.img_channels, res == self.resolution,
                             self.architecture, self.conv_clamp, name=f"b{res}")
      x, img = block(x, img, ws[:, w_idx:w_idx + block.num_conv + block.num_torgb],
                     noise_mode, tuple(noise))
      w_idx += block.num_conv
    return img


class Generator(nn.Module):
  """StyleGAN2's generator: ``__call__(z, c)`` = ``synthesize(truncate(map(z, c)))``.
  ``c`` is the one-hot label [N, c_dim] (``None`` for unconditional models)."""
  z_dim: int
  c_dim: int
  w_dim: int
  resolution: int
  img_channels: int
  mapping_layers: int = 8
  mapping_lr_multiplier: float = 0.01
  channel_base: int = 32768
  channel_max: int = 512
  architecture: str = "skip"
  conv_clamp: float | None = None

  @property
  def num_ws(self) -> int:
    return num_ws(self.resolution)

  def setup(self):
    check_resolution(self.resolution)
    self.mapping = MappingNetwork(self.z_dim, self.c_dim, self.w_dim,
                                  num_layers=self.mapping_layers,
                                  lr_multiplier=self.mapping_lr_multiplier)
    self.synthesis = SynthesisNetwork(self.w_dim, self.resolution, self.img_channels,
                                      self.channel_base, self.channel_max,
                                      self.architecture, self.conv_clamp)

  def map(self, z, c=None):
    """w [N, w_dim] (not broadcast, not truncated)."""
    return self.mapping(z, c)

  def w_avg(self):
    return self.mapping.get_variable(BUFFERS, "w_avg")

  def broadcast(self, w, truncation_psi=1.0, truncation_cutoff: int | None = None):
    """w [N, w_dim] -> ws [N, num_ws, w_dim], truncated towards ``w_avg``: psi in
    [0, 1] on the first ``truncation_cutoff`` layers (all without one)."""
    check_psi(truncation_psi)
    ws = jnp.broadcast_to(w[:, None], (w.shape[0], self.num_ws, w.shape[-1]))
    if isinstance(truncation_psi, (int, float)) and truncation_psi == 1:
      return ws
    w_avg = self.w_avg()
    cut = self.num_ws if truncation_cutoff is None else truncation_cutoff
    if not 0 <= cut <= self.num_ws:
      raise ValueError(f"truncation_cutoff={truncation_cutoff}: use 0 ... "
                       f"{self.num_ws} (the number of w's) or None (all).")
    layer = jnp.arange(self.num_ws)[None, :, None]
    truncated = w_avg + truncation_psi * (ws - w_avg)
    return jnp.where(layer < cut, truncated, ws)

  def synthesize(self, ws, noise_mode: str = "random", noise_bank=None):
    return self.synthesis(ws, noise_mode, noise_bank)

  def __call__(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None,
               noise_mode: str = "random"):
    check_psi(truncation_psi)
    w = self.map(z, c)
    return self.synthesize(self.broadcast(w, truncation_psi, truncation_cutoff),
                           noise_mode)


def mix_styles(ws, ws_other, cutoff):
  """Style mixing: layers >= ``cutoff`` take ``ws_other``'s w's."""
  n = ws.shape[1]
  if n < 2:
    raise ValueError(f"Style mixing needs a synthesis network with at least two w's "
                     f"(layers); this one has {n}. Set style_mixing_prob=0.")
  layer = jnp.arange(n)[None, :, None]
  return jnp.where(layer < cutoff, ws, ws_other)


def minibatch_stddev(x, group_size: int | None, num_channels: int = 1):
  """Append the minibatch standard deviation as ``num_channels`` feature maps: groups
  of ``group_size`` examples n, n + N/G, ... (the reference's reshape), the std over
  each group averaged over channels (in ``num_channels`` parts) and pixels."""
  n, h, w, c = x.shape
  g = min(group_size, n) if group_size is not None else n
  if n % g:
    raise ValueError(f"Minibatch std: the batch ({n} per call) must be a multiple of "
                     f"the group size {g}; change train.batch_size or "
                     f"model.mbstd_group_size.")
  f = num_channels
  if c % f:
    raise ValueError(f"Minibatch std: {c} channels do not split into {f} groups.")
  y = x.reshape(g, n // g, h, w, f, c // f)
  y = y - y.mean(axis=0)
  y = jnp.sqrt(jnp.mean(jnp.square(y), axis=0) + 1e-8)  # [n/g, h, w, f, c/f]
  y = y.mean(axis=(1, 2, 4))  # [n/g, f]
  y = jnp.tile(y, (g, 1))[:, None, None, :]
  return jnp.concatenate([x, jnp.broadcast_to(y, (n, h, w, f))], axis=-1)


class DiscriminatorBlock(nn.Module):
  in_channels: int  # 0: the first block (fromRGB)
  tmp_channels: int
  out_channels: int
  architecture: str = "resnet"
  conv_clamp: float | None = None
  resample_filter: tuple = (1, 3, 3, 1)

  @nn.compact
  def __call__(self, x, img):
    f = setup_filter(self.resample_filter)
    conv = lambda name, feat, k, **kw: Conv2dLayer(
        feat, k, resample_filter=self.resample_filter, name=name, **kw)
    if self.in_channels == 0 or self.architecture == "skip":
      y = conv("fromrgb", self.tmp_channels, 1, activation="lrelu",
               conv_clamp=self.conv_clamp)(img)
      x = y if x is None else x + y
      img = downsample2d(img, f) if self.architecture == "skip" else None
    if self.architecture == "resnet":
      y = conv("skip", self.out_channels, 1, down=2, use_bias=False)(
          x, gain=math.sqrt(0.5))
      x = conv("conv0", self.tmp_channels, 3, activation="lrelu",
               conv_clamp=self.conv_clamp)(x)
      x = conv("conv1", self.out_channels, 3, activation="lrelu", down=2,
               conv_clamp=self.conv_clamp)(x, gain=math.sqrt(0.5))
      x = y + x
    else:
      x = conv("conv0", self.tmp_channels, 3, activation="lrelu",
               conv_clamp=self.conv_clamp)(x)
      x = conv("conv1", self.out_channels, 3, activation="lrelu", down=2,
               conv_clamp=self.conv_clamp)(x)
    return x, img


class DiscriminatorEpilogue(nn.Module):
  in_channels: int
  cmap_dim: int
  architecture: str = "resnet"
  mbstd_group_size: int | None = 4
  mbstd_num_channels: int = 1
  conv_clamp: float | None = None

  @nn.compact
  def __call__(self, x, img, cmap):
    if self.architecture == "skip":
      x = x + Conv2dLayer(self.in_channels, 1, activation="lrelu", name="fromrgb")(img)
    if self.mbstd_num_channels > 0:
      x = minibatch_stddev(x, self.mbstd_group_size, self.mbstd_num_channels)
    x = Conv2dLayer(self.in_channels, 3, activation="lrelu",
                    conv_clamp=self.conv_clamp, name="conv")(x)
    x = jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)  # torch's NCHW flatten
    x = FullyConnected(self.in_channels, activation="lrelu", name="fc")(x)
    x = FullyConnected(self.cmap_dim or 1, name="out")(x)
    if self.cmap_dim > 0:
      x = jnp.sum(x * cmap, axis=1, keepdims=True) / math.sqrt(self.cmap_dim)
    return x[:, 0]


class Discriminator(nn.Module):
  """images [N, R, R, C] (and one-hot c) -> logits [N]."""
  c_dim: int
  resolution: int
  img_channels: int
  architecture: str = "resnet"
  channel_base: int = 32768
  channel_max: int = 512
  conv_clamp: float | None = None
  cmap_dim: int | None = None
  mbstd_group_size: int | None = 4
  mbstd_num_channels: int = 1
  mapping_layers: int = 8  # of the label mapping (conditional models)

  @nn.compact
  def __call__(self, img, c=None):
    if self.architecture not in ARCHITECTURES:
      raise ValueError(f"architecture={self.architecture!r}; use {ARCHITECTURES}.")
    channels = channels_per_resolution(self.resolution, self.channel_base,
                                       self.channel_max)
    if self.resolution < 8:
      raise ValueError(f"The StyleGAN2 discriminator needs a resolution of at least 8 "
                       f"(one block above the 4x4 epilogue); got {self.resolution}.")
    if img.shape[1:] != (self.resolution, self.resolution, self.img_channels):
      raise ValueError(f"The discriminator takes images [N, {self.resolution}, "
                       f"{self.resolution}, {self.img_channels}]; got {img.shape}.")
    x = None
    for res in sorted(channels, reverse=True)[:-1]:
      block = DiscriminatorBlock(channels[res] if res < self.resolution else 0,
                                 channels[res], channels[res // 2],
                                 self.architecture, self.conv_clamp, name=f"b{res}")
      x, img = block(x, img)
    cmap_dim = 0
    cmap = None
    if self.c_dim > 0:
      cmap_dim = self.cmap_dim or channels[4]
      cmap = MappingNetwork(0, self.c_dim, cmap_dim, num_layers=self.mapping_layers,
                            track_w_avg=False, name="mapping")(None, c)
    return DiscriminatorEpilogue(channels[4], cmap_dim, self.architecture,
                                 self.mbstd_group_size, self.mbstd_num_channels,
                                 self.conv_clamp, name="b4")(x, img, cmap)
