"""The numerical building blocks of StyleGAN2 (Karras et al. 2020), as NVlabs'
stylegan2-ada-pytorch ``torch_utils/ops`` and ``training/networks.py`` define them,
written for NHWC activations and torch-layout weights (``[out, in, kh, kw]``, so that
the official pickles map onto these parameters without reshuffling).

* ``setup_filter`` / ``upfirdn2d``: upsample by zero insertion, pad (or crop), FIR
  filter, downsample by dropping pixels; ``upsample2d`` / ``downsample2d`` with the
  padding the reference adds so that the shape doubles or halves.
* ``bias_act``: bias, activation, the activation's gain (sqrt(2) for (leaky) ReLU)
  and an optional clamp.
* ``conv2d_resample``: a convolution with FIR up-sampling before it or down-sampling
  after it (the reference's padding arithmetic); with ``flip_weight=False`` the kernel
  is flipped (true convolution), as the reference does in its up-sampling layers.
* ``modulated_conv2d``: StyleGAN2's weight (de)modulation, computed by scaling the
  activations before and after a shared convolution (the reference's non-fused path,
  equal to the per-sample modulated weights' convolution).
* ``FullyConnected`` / ``Conv2dLayer``: equalised learning rate: weights drawn as
  N(0, 1) / lr_multiplier, multiplied at run time by lr_multiplier / sqrt(fan_in).
"""
from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

LRELU_ALPHA = 0.2
ACT_GAIN = {"linear": 1.0, "relu": math.sqrt(2.0), "lrelu": math.sqrt(2.0)}


def setup_filter(f: Sequence[float] = (1, 3, 3, 1), normalize: bool = True) -> np.ndarray:
  """The 2-D FIR filter of 1-D taps ``f`` (outer product), normalised to sum 1."""
  f = np.asarray(f, np.float32)
  if f.ndim == 1:
    f = np.outer(f, f)
  if f.ndim != 2 or f.size == 0:
    raise ValueError(f"A FIR filter is 1-D taps or a 2-D array; got shape {f.shape}.")
  if normalize:
    f = f / f.sum()
  return f.astype(np.float32)


def _padding(padding):
  if isinstance(padding, int):
    return padding, padding, padding, padding
  if len(padding) == 2:
    return padding[0], padding[0], padding[1], padding[1]
  if len(padding) == 4:
    return tuple(padding)
  raise ValueError(f"padding={padding!r}: an int, (x, y) or (x0, x1, y0, y1).")


def upfirdn2d(x, f, up: int = 1, down: int = 1, padding=0, flip_filter: bool = False,
              gain: float = 1.0):
  """NHWC ``x`` -> zero-insertion up-sampling by ``up``, padding ``(x0, x1, y0, y1)``
  (negative crops), convolution with the 2-D filter ``f`` (a correlation with
  ``flip_filter``) times ``gain``, and keeping every ``down``-th pixel: the reference's
  ``_upfirdn2d_ref``. Pixels outside the image are zero."""
  f = np.asarray(f, np.float32)
  if f.ndim != 2:
    raise ValueError(f"upfirdn2d takes a 2-D filter (setup_filter); got {f.shape}.")
  n, h, w, c = x.shape
  px0, px1, py0, py1 = _padding(padding)
  fh, fw = f.shape
  oh = h * up + py0 + py1 - fh + 1
  ow = w * up + px0 + px1 - fw + 1
  if oh < 1 or ow < 1:
    raise ValueError(f"upfirdn2d: the padded input is smaller than the filter "
                     f"{f.shape}.")
  k = f * gain
  if not flip_filter:
    k = k[::-1, ::-1]
  taps = _separable(k)
  if taps is not None and max(h * up, w * up) <= MATMUL_MAX_SIZE:
    ky, kx = taps
    my = _fir_matrix(h, up, down, py0, py1, ky)
    mx = _fir_matrix(w, up, down, px0, px1, kx)
    x = jnp.einsum("ph,nhwc->npwc", jnp.asarray(my, x.dtype), x)
    return jnp.einsum("qw,npwc->npqc", jnp.asarray(mx, x.dtype), x)
  if min(px0, px1, py0, py1) < 0:  # crop first; the convolution pads the rest
    if up > 1:
      x = jnp.pad(x.reshape(n, h, 1, w, 1, c),
                  ((0, 0), (0, 0), (0, up - 1), (0, 0), (0, up - 1), (0, 0)))
      x = x.reshape(n, h * up, w * up, c)
    x = x[:, max(-py0, 0):x.shape[1] - max(-py1, 0),
          max(-px0, 0):x.shape[2] - max(-px1, 0)]
    up, (px0, px1, py0, py1) = 1, (max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0))
  kernel = jnp.broadcast_to(jnp.asarray(np.ascontiguousarray(k))[:, :, None, None],
                            (fh, fw, 1, c)).astype(x.dtype)
  # Zero insertion is the convolution's input dilation: (h - 1) up + 1 samples, and
  # the up - 1 zeros after the last one go into the high padding.
  return jax.lax.conv_general_dilated(
      x, kernel, (down, down), ((py0, py1 + up - 1), (px0, px1 + up - 1)),
      lhs_dilation=(up, up), dimension_numbers=("NHWC", "HWIO", "NHWC"),
      feature_group_count=c)


# Up to this (up-sampled) size, a separable filter runs as two small dense matrix
# products (one per axis), which XLA on CPU executes and compiles far faster than a
# depthwise convolution (docs/results.md, "Implementation choices"); beyond it, the
# convolution.
MATMUL_MAX_SIZE = 256


def _separable(k):
  """(column taps, row taps) with outer(ky, kx) == k, or None if k has rank > 1."""
  u, sv, vt = np.linalg.svd(k.astype(np.float64))
  if sv.size > 1 and sv[1] > 1e-7 * max(sv[0], 1e-30):
    return None
  return u[:, 0] * np.sqrt(sv[0]), vt[0] * np.sqrt(sv[0])


def _fir_matrix(length: int, up: int, down: int, p0: int, p1: int, taps):
  """The matrix [out, in] of 1-D upfirdn along one axis: output r is the correlation
  of the taps with the padded zero-inserted signal at r * down, whose sample m is
  input (m - p0) / up where that is a whole index in range."""
  k = len(taps)
  n_out = (length * up + p0 + p1 - k + 1 + down - 1) // down
  m = np.zeros((n_out, length), np.float64)
  for r in range(n_out):
    for i in range(length):
      t = i * up + p0 - r * down
      if 0 <= t < k:
        m[r, i] = taps[t]
  return m.astype(np.float32)


def upsample2d(x, f, up: int = 2, padding=0, gain: float = 1.0):
  """Up-sampling by ``up`` with the FIR filter ``f``; the output is ``up`` times as
  large (plus ``padding``)."""
  fh, fw = f.shape
  px0, px1, py0, py1 = _padding(padding)
  p = (px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2,
       py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2)
  return upfirdn2d(x, f, up=up, padding=p, gain=gain * up * up)


def downsample2d(x, f, down: int = 2, padding=0, gain: float = 1.0):
  """Down-sampling by ``down`` after the FIR filter ``f``."""
  fh, fw = f.shape
  px0, px1, py0, py1 = _padding(padding)
  p = (px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2,
       py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2)
  return upfirdn2d(x, f, down=down, padding=p, gain=gain)


def bias_act(x, b=None, act: str = "linear", gain: float | None = None,
             clamp: float | None = None, axis: int = -1):
  """``clamp(act(x + b) * gain)``; ``gain`` defaults to the activation's (sqrt(2) for
  relu and lrelu, slope 0.2), ``b`` is added along ``axis`` (channels last)."""
  if act not in ACT_GAIN:
    raise ValueError(f"activation={act!r}; use one of {sorted(ACT_GAIN)}.")
  if b is not None:
    shape = [1] * x.ndim
    shape[axis] = -1
    x = x + b.reshape(shape)
  if act == "relu":
    x = jax.nn.relu(x)
  elif act == "lrelu":
    x = jax.nn.leaky_relu(x, LRELU_ALPHA)
  gain = ACT_GAIN[act] if gain is None else gain
  if gain != 1:
    x = x * gain
  if clamp is not None and clamp >= 0:
    x = jnp.clip(x, -clamp, clamp)
  return x


def _conv(x, w, stride: int = 1, padding=(0, 0), flip_weight: bool = True):
  """NHWC x, OIHW w: a correlation (``flip_weight``) or a true convolution."""
  if not flip_weight:
    w = w[:, :, ::-1, ::-1]
  py, px = padding
  return jax.lax.conv_general_dilated(
      x, w, (stride, stride), ((py, py), (px, px)),
      dimension_numbers=("NHWC", "OIHW", "NHWC"))


def conv2d_resample(x, w, f=None, up: int = 1, down: int = 1, padding: int = 0,
                    flip_weight: bool = True):
  """The reference's ``conv2d_resample`` (ungrouped): a ``kh x kw`` convolution with
  ``padding`` measured on the up-sampled image; ``up`` > 1 up-samples with the FIR
  filter ``f`` first, ``down`` > 1 filters and subsamples (strided)."""
  if up > 1 and down > 1:
    raise ValueError("conv2d_resample: up-sampling and down-sampling at once is not "
                     "used by StyleGAN2; use one of them.")
  kh, kw = w.shape[2:]
  px0 = px1 = py0 = py1 = padding
  if (up > 1 or down > 1) and f is None:
    raise ValueError("conv2d_resample: resampling needs the FIR filter f.")
  if up > 1:
    fh, fw = f.shape
    px0 += (fw + up - 1) // 2
    px1 += (fw - up) // 2
    py0 += (fh + up - 1) // 2
    py1 += (fh - up) // 2
    x = upfirdn2d(x, f, up=up, padding=(px0, px1, py0, py1), gain=up * up)
    return _conv(x, w, flip_weight=flip_weight)
  if down > 1:
    fh, fw = f.shape
    px0 += (fw - down + 1) // 2
    px1 += (fw - down) // 2
    py0 += (fh - down + 1) // 2
    py1 += (fh - down) // 2
    if kh == 1 and kw == 1:
      x = upfirdn2d(x, f, down=down, padding=(px0, px1, py0, py1))
      return _conv(x, w, flip_weight=flip_weight)
    x = upfirdn2d(x, f, padding=(px0, px1, py0, py1))
    return _conv(x, w, stride=down, flip_weight=flip_weight)
  return _conv(x, w, padding=(py0, px0), flip_weight=flip_weight)


def modulated_conv2d(x, weight, styles, noise=None, up: int = 1, padding: int = 0,
                     resample_filter=None, demodulate: bool = True,
                     flip_weight: bool = True):
  """StyleGAN2's modulated convolution of NHWC ``x`` with ``weight`` [O, I, kh, kw]
  and per-sample ``styles`` [N, I]: the weights w'_nois = s_ni w_ois, demodulated by
  (sum_ik w'_nik^2 + 1e-8)^-1/2 per output channel, then ``noise`` added. Computed as
  conv(x * s) * d (equal to the per-sample weights' convolution)."""
  n, _, _, cin = x.shape
  if weight.shape[1] != cin or styles.shape != (n, cin):
    raise ValueError(f"modulated_conv2d: x has {cin} channels, weight {weight.shape}, "
                     f"styles {styles.shape}; they must agree (styles [N, in]).")
  x = x * styles[:, None, None, :].astype(x.dtype)
  x = conv2d_resample(x, weight.astype(x.dtype), f=resample_filter, up=up,
                      padding=padding, flip_weight=flip_weight)
  if demodulate:
    w = weight[None] * styles[:, None, :, None, None]  # [N, O, I, kh, kw]
    dcoefs = jax.lax.rsqrt(jnp.sum(jnp.square(w), axis=(2, 3, 4)) + 1e-8)  # [N, O]
    x = x * dcoefs[:, None, None, :].astype(x.dtype)
  if noise is not None:
    x = x + noise.astype(x.dtype)
  return x


def _fmix32(h):
  """MurmurHash3's 32-bit finaliser (an avalanching bijection of uint32)."""
  h = h ^ (h >> 16)
  h = h * np.uint32(0x85EBCA6B)
  h = h ^ (h >> 13)
  h = h * np.uint32(0xC2B2AE35)
  return h ^ (h >> 16)


def hashed_normal(key, shape, dtype=jnp.float32):
  """N(0, 1) samples from a counter-based hash of ``key``: Box-Muller on two hashed
  uniforms per pair. For weight initialisation only: a network has dozens of
  parameters, and XLA on CPU compiles each threefry draw slowly (docs/results.md,
  "Implementation choices"), while these few integer operations compile at once."""
  n = math.prod(shape)
  half = (n + 1) // 2
  k = jax.random.key_data(key).reshape(-1).astype(jnp.uint32)
  i = jnp.arange(half, dtype=jnp.uint32)
  a = _fmix32(_fmix32(i * np.uint32(2) ^ k[0]) + k[-1])
  b = _fmix32(_fmix32(i * np.uint32(2) + np.uint32(1) ^ k[-1]) + k[0])
  u1 = ((a >> 8).astype(jnp.float32) + 1.0) / 16777216.0  # (0, 1]
  u2 = (b >> 8).astype(jnp.float32) / 16777216.0
  r = jnp.sqrt(-2.0 * jnp.log(u1))
  z = jnp.concatenate([r * jnp.cos(2 * np.pi * u2), r * jnp.sin(2 * np.pi * u2)])
  return z[:n].reshape(shape).astype(dtype)


def normal_init(scale: float = 1.0):
  """N(0, scale^2) initialiser (``hashed_normal``)."""
  def init(key, shape, dtype=jnp.float32):
    return scale * hashed_normal(key, shape, dtype)
  return init


def normalize_2nd_moment(x, axis: int = -1, eps: float = 1e-8):
  """x / sqrt(mean(x^2) + eps) along ``axis`` (StyleGAN's pixel norm of z)."""
  return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=axis, keepdims=True) + eps)


class FullyConnected(nn.Module):
  """A dense layer with equalised learning rate: ``weight`` [out, in] ~ N(0, 1) /
  lr_multiplier, used as weight * lr_multiplier / sqrt(in); ``bias`` starts at
  ``bias_init`` and is used times lr_multiplier; then ``bias_act``."""
  features: int
  activation: str = "linear"
  lr_multiplier: float = 1.0
  bias_init: float = 0.0
  use_bias: bool = True

  @nn.compact
  def __call__(self, x):
    fan_in = x.shape[-1]
    weight = self.param("weight", normal_init(1.0 / self.lr_multiplier),
                        (self.features, fan_in))
    y = x @ (weight * (self.lr_multiplier / math.sqrt(fan_in))).T
    b = None
    if self.use_bias:
      b = self.param("bias", nn.initializers.constant(self.bias_init),
                     (self.features,)) * self.lr_multiplier
    return bias_act(y, b, self.activation)


class Conv2dLayer(nn.Module):
  """A convolution with equalised learning rate (weight [out, in, k, k] ~ N(0, 1),
  used times 1 / sqrt(in k^2)), optional FIR up/down-sampling, bias, activation,
  activation gain times ``gain`` and the clamp ``conv_clamp * gain``."""
  features: int
  kernel_size: int
  activation: str = "linear"
  up: int = 1
  down: int = 1
  use_bias: bool = True
  conv_clamp: float | None = None
  resample_filter: tuple = (1, 3, 3, 1)

  @nn.compact
  def __call__(self, x, gain: float = 1.0):
    cin, k = x.shape[-1], self.kernel_size
    weight = self.param("weight", normal_init(), (self.features, cin, k, k))
    w = weight * (1.0 / math.sqrt(cin * k * k))
    f = setup_filter(self.resample_filter)
    x = conv2d_resample(x, w, f=f, up=self.up, down=self.down, padding=k // 2,
                        flip_weight=self.up == 1)
    b = (self.param("bias", nn.initializers.zeros, (self.features,))
         if self.use_bias else None)
    clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
    return bias_act(x, b, self.activation, gain=ACT_GAIN[self.activation] * gain,
                    clamp=clamp)
