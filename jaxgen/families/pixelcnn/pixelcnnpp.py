"""PixelCNN++ (Salimans et al. 2017), the architecture of openai/pixel-cnn
``pixel_cnn_pp/model.py``.

Two streams replace masked convolutions by shifts: ``u`` sees the rows above
(down-shifted 2x3 convolutions), ``ul`` the rows above and the pixels to the left
(down-right-shifted 2x2 convolutions). Each has three resolutions (stride-2
down-sampling, then transposed convolutions back up) of ``num_resnet`` gated resnet
blocks with concat_elu non-linearities and dropout; the down (decoding) pass takes the
up pass's activations through short-cut connections (1x1 "nin" projections). Every
convolution and the 1x1 layers are weight-normalised (Salimans & Kingma 2016): a
direction V, a scale g and a bias b per output, as the reference, so the parameter
count matches its 53,659,080 for CIFAR-10 (160 filters, 5 blocks, 10 logistics).

Differences from the reference, stated: the reference initialises g and b from the
data (an init pass); here g starts at ``init_scale`` (1, or 0.1 for the second
convolution of each block) and b at 0. The output at pixel (i, j) depends only on
pixels strictly before (i, j) in raster order; the channel dependence inside a pixel
is in the likelihood (``discretized_mix_logistic_log_prob`` of
jaxgen/families/pixelcnn/losses.py).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.errors import ConfigError

_DN = ("NHWC", "HWIO", "NHWC")


def concat_elu(x):
  return jax.nn.elu(jnp.concatenate([x, -x], axis=-1))


def wn_weight(v, g):
  """Weight normalisation: ``g`` times the unit direction of ``v`` per output (the
  last axis); the kernel every weight-normalised layer here (and the cached sampler
  of fast_sampling.py) uses."""
  axes = tuple(range(v.ndim - 1))
  return g * (v * jax.lax.rsqrt(jnp.sum(v * v, axis=axes, keepdims=True)))


def conv_valid(x, w, b, stride=1):
  """The VALID convolution of NHWC ``x`` with the HWIO kernel ``w``, plus ``b``."""
  return jax.lax.conv_general_dilated(x, w, (stride,) * 2, "VALID",
                                      dimension_numbers=_DN) + b


def deconv_valid(x, w, b, stride=2):
  """The VALID stride-``stride`` transposed convolution, plus ``b`` (uncropped)."""
  return jax.lax.conv_transpose(x, w, (stride,) * 2, "VALID",
                                dimension_numbers=_DN) + b


class WNConv(nn.Module):
  """Weight-normalised convolution, VALID padding after the explicit ``pad``."""
  features: int
  kernel: tuple[int, int]
  pad: tuple = ((0, 0), (0, 0))
  stride: int = 1
  init_scale: float = 1.0

  @nn.compact
  def __call__(self, x):
    kh, kw = self.kernel
    v = self.param("V", nn.initializers.normal(0.05), (kh, kw, x.shape[-1], self.features))
    g = self.param("g", nn.initializers.constant(self.init_scale), (self.features,))
    b = self.param("b", nn.initializers.zeros, (self.features,))
    x = jnp.pad(x, ((0, 0), *self.pad, (0, 0)))
    return conv_valid(x, wn_weight(v, g), b, self.stride)


class WNDeconv(nn.Module):
  """Weight-normalised stride-2 transposed convolution (VALID), then the crop that
  keeps it shifted: ``kind`` "down" (2x3) or "down_right" (2x2)."""
  features: int
  kernel: tuple[int, int]
  kind: str
  stride: int = 2

  @nn.compact
  def __call__(self, x):
    kh, kw = self.kernel
    v = self.param("V", nn.initializers.normal(0.05), (kh, kw, x.shape[-1], self.features))
    g = self.param("g", nn.initializers.ones, (self.features,))
    b = self.param("b", nn.initializers.zeros, (self.features,))
    y = deconv_valid(x, wn_weight(v, g), b, self.stride)
    n, h, wd = x.shape[:3]
    return shifted_crop(y, h * self.stride, wd * self.stride, self.kind, kw)


def shifted_crop(y, rows: int, cols: int, kind: str, kernel_width: int):
  """The part of a transposed convolution's output that keeps it shifted: the first
  ``rows`` rows and ``cols`` columns from column (kernel_width - 1) // 2 for ``kind``
  "down" (centred), from column 0 for "down_right"."""
  left = (kernel_width - 1) // 2 if kind == "down" else 0
  return y[:, :rows, left:left + cols]


class WNDense(nn.Module):
  """Weight-normalised 1x1 layer (the reference's ``nin``)."""
  features: int
  init_scale: float = 1.0

  @nn.compact
  def __call__(self, x):
    v = self.param("V", nn.initializers.normal(0.05), (x.shape[-1], self.features))
    g = self.param("g", nn.initializers.constant(self.init_scale), (self.features,))
    b = self.param("b", nn.initializers.zeros, (self.features,))
    return x @ wn_weight(v, g) + b


def down_shift(x):
  return jnp.pad(x, ((0, 0), (1, 0), (0, 0), (0, 0)))[:, :-1]


def right_shift(x):
  return jnp.pad(x, ((0, 0), (0, 0), (1, 0), (0, 0)))[:, :, :-1]


def down_shifted_conv(features, kernel=(2, 3), stride=1, **kw):
  kh, kwd = kernel
  return WNConv(features, kernel, ((kh - 1, 0), ((kwd - 1) // 2, (kwd - 1) // 2)),
                stride, **kw)


def down_right_shifted_conv(features, kernel=(2, 2), stride=1, **kw):
  kh, kwd = kernel
  return WNConv(features, kernel, ((kh - 1, 0), (kwd - 1, 0)), stride, **kw)


class GatedResnet(nn.Module):
  """x + a * sigmoid(b), [a, b] = conv(dropout(concat_elu(conv(concat_elu(x)) +
  nin(concat_elu(shortcut))))) (+ the conditioning's projection)."""
  kind: str  # "down" (u stream) or "down_right" (ul stream)
  dropout: float
  num_classes: int = 0

  @nn.compact
  def __call__(self, x, shortcut=None, labels=None, deterministic=True):
    f = x.shape[-1]
    conv = down_shifted_conv if self.kind == "down" else down_right_shifted_conv
    c1 = conv(f)(concat_elu(x))
    if shortcut is not None:
      c1 = c1 + WNDense(f)(concat_elu(shortcut))
    c1 = concat_elu(c1)
    c1 = nn.Dropout(self.dropout)(c1, deterministic=deterministic)
    c2 = conv(2 * f, init_scale=0.1)(c1)
    if self.num_classes and labels is not None:
      hw = self.param("hw", nn.initializers.normal(0.05), (self.num_classes, 2 * f))
      c2 = c2 + hw[labels][:, None, None]
    a, b = jnp.split(c2, 2, axis=-1)
    return x + a * jax.nn.sigmoid(b)


class PixelCNNPP(nn.Module):
  """Image (N, H, W, C) in [-1, 1] -> mixture parameters (N, H, W, out_features)."""
  features: int = 160
  num_resnet: int = 5
  out_features: int = 100  # the mixture's parameter count (10 * 10 for RGB)
  dropout: float = 0.5
  num_classes: int = 0
  num_scales: int = 3

  @nn.compact
  def __call__(self, x, labels=None, cond=None, deterministic=True):
    if cond is not None:
      raise ValueError("PixelCNN++ here conditions on class labels only "
                       "(config.model.num_classes); it takes no general input.")
    f, n = self.features, self.num_resnet
    if x.shape[1] % 2 ** (self.num_scales - 1) or x.shape[2] % 2 ** (self.num_scales - 1):
      raise ConfigError(f"PixelCNN++ halves the image {self.num_scales - 1} times: "
                        f"{x.shape[1:3]} must be divisible by "
                        f"{2 ** (self.num_scales - 1)} (config.data.resize).")
    res = lambda kind: GatedResnet(kind, self.dropout, self.num_classes)
    kw = dict(labels=labels, deterministic=deterministic)
    x = jnp.concatenate([x, jnp.ones((*x.shape[:3], 1), x.dtype)], -1)
    u_list = [down_shift(down_shifted_conv(f, (2, 3))(x))]
    ul_list = [down_shift(down_shifted_conv(f, (1, 3))(x))
               + right_shift(down_right_shifted_conv(f, (2, 1))(x))]
    for scale in range(self.num_scales):
      if scale:
        u_list.append(down_shifted_conv(f, (2, 3), stride=2)(u_list[-1]))
        ul_list.append(down_right_shifted_conv(f, (2, 2), stride=2)(ul_list[-1]))
      for _ in range(n):
        u_list.append(res("down")(u_list[-1], **kw))
        ul_list.append(res("down_right")(ul_list[-1], u_list[-1], **kw))
    u, ul = u_list.pop(), ul_list.pop()
    for scale in range(self.num_scales):
      if scale:
        u = WNDeconv(f, (2, 3), "down")(u)
        ul = WNDeconv(f, (2, 2), "down_right")(ul)
      for _ in range(n if scale == 0 else n + 1):
        u = res("down")(u, u_list.pop(), **kw)
        ul = res("down_right")(ul, jnp.concatenate([u, ul_list.pop()], -1), **kw)
    assert not u_list and not ul_list
    return WNDense(self.out_features)(jax.nn.elu(ul))
