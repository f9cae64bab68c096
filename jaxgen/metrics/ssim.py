"""SSIM and MS-SSIM (Wang et al. 2004, 2003) in jax.numpy, as tf.image and dm_pix compute them.

The local statistics come from an 11-tap Gaussian window (sigma 1.5) applied separably
with VALID padding, so only windows inside the image count; both metrics are jitted, and
shape errors are raised when they are traced.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

FILTER_SIZE = 11
FILTER_SIGMA = 1.5
K1, K2 = 0.01, 0.03
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _gaussian_taps():
  x = np.arange(FILTER_SIZE) - (FILTER_SIZE - 1) / 2
  g = np.exp(-x ** 2 / (2 * FILTER_SIGMA ** 2))
  return tuple(g / g.sum())


_TAPS = _gaussian_taps()


def _prepare(a, b):
  """Both images as float NHWC batches, and whether a single HWC image was given."""
  a, b = jnp.asarray(a), jnp.asarray(b)
  if a.shape != b.shape:
    raise ValueError(f"Images must have the same shape, got {a.shape} and {b.shape}.")
  if a.ndim not in (3, 4):
    raise ValueError(f"Images must be HWC or NHWC (rank 3 or 4), got shape {a.shape}.")
  dtype = jnp.promote_types(jnp.result_type(a, b), jnp.float32)
  single = a.ndim == 3
  if single:
    a, b = a[None], b[None]
  return a.astype(dtype), b.astype(dtype), single


def _gaussian_filter(x):
  """The normalised 2-D Gaussian window over H and W of NHWC x, VALID (no padding).

  Separable: a column then a row filter, each the weighted sum of the 11 shifted
  slices (one fused loop, equal to a depthwise convolution within float rounding and
  faster on a CPU: docs/results.md, "Implementation choices").
  """
  h, w = x.shape[1:3]
  oh, ow = h - FILTER_SIZE + 1, w - FILTER_SIZE + 1
  x = sum(t * x[:, i:i + oh] for i, t in enumerate(_TAPS))
  return sum(t * x[:, :, i:i + ow] for i, t in enumerate(_TAPS))


def _luminance_and_contrast_structure(a, b, max_val):
  """The maps l(a, b) and cs(a, b), arranged as tf.image's _ssim_helper computes them."""
  c1, c2 = (K1 * max_val) ** 2, (K2 * max_val) ** 2
  mu_a, mu_b = _gaussian_filter(a), _gaussian_filter(b)
  num0 = 2 * mu_a * mu_b
  den0 = mu_a ** 2 + mu_b ** 2
  num1 = 2 * _gaussian_filter(a * b)
  den1 = _gaussian_filter(a ** 2 + b ** 2)
  return (num0 + c1) / (den0 + c1), (num1 - num0 + c2) / (den1 - den0 + c2)


@functools.partial(jax.jit, static_argnames="return_map")
def ssim(a, b, max_val, return_map: bool = False):
  """Per-image SSIM of NHWC batches (or one HWC image) with data range ``max_val``.

  The SSIM map (N, H - 10, W - 10, C) is averaged over H, W and C; with ``return_map``
  the map is returned too, as (ssim, map).
  """
  a, b, single = _prepare(a, b)
  if min(a.shape[1:3]) < FILTER_SIZE:
    raise ValueError(f"SSIM needs images of at least {FILTER_SIZE}x{FILTER_SIZE} pixels (the "
                     f"Gaussian filter's size), got {a.shape[1]}x{a.shape[2]}.")
  luminance, cs = _luminance_and_contrast_structure(a, b, max_val)
  ssim_map = luminance * cs
  value = ssim_map.mean(axis=(1, 2, 3))
  if single:
    value, ssim_map = value[0], ssim_map[0]
  return (value, ssim_map) if return_map else value


@jax.jit
def _map_sums(a, b, max_val):
  """The sum of each image's SSIM map (N,)."""
  luminance, cs = _luminance_and_contrast_structure(a, b, max_val)
  return (luminance * cs).sum(axis=(1, 2, 3))


def ssim_streamed(a: np.ndarray, b: np.ndarray, max_val: float,
                  budget: int = 2 ** 24, progress: bool = True) -> np.ndarray:
  """Per-image SSIM of NHWC host arrays of any size, as ``ssim`` gives it, computed
  a few images (or, for an image larger than ``budget`` values, a band of rows) at a
  time: the bands overlap by the filter's 10 rows, so their map sums add up to the
  whole map's. Memory stays near ``budget`` float32 values times a few maps; a
  progress bar counts the pixels done."""
  from tqdm import tqdm
  if a.shape != b.shape or a.ndim != 4:
    raise ValueError(f"ssim_streamed takes two NHWC arrays of one shape, got {a.shape} "
                     f"and {b.shape}.")
  n, h, w, c = a.shape
  if min(h, w) < FILTER_SIZE:
    raise ValueError(f"SSIM needs images of at least {FILTER_SIZE}x{FILTER_SIZE} pixels (the "
                     f"Gaussian filter's size), got {h}x{w}.")
  pad = FILTER_SIZE - 1
  per_image = h * w * c
  images = max(1, budget // per_image)  # whole images at a time
  rows = h - pad if images > 1 or per_image <= budget else max(1, budget // (w * c) - pad)
  sums = np.zeros(n, np.float64)
  bar = tqdm(total=n * (h - pad), desc="ssim", unit="row", disable=not progress,
             dynamic_ncols=True)
  for i in range(0, n, images):
    for r in range(0, h - pad, rows):
      band = slice(r, min(r + rows, h - pad) + pad)
      sums[i:i + images] += np.asarray(_map_sums(
          np.asarray(a[i:i + images, band], np.float32),
          np.asarray(b[i:i + images, band], np.float32), max_val), np.float64)
      bar.update(len(sums[i:i + images]) * (band.stop - band.start - pad))
  bar.close()
  return sums / ((h - pad) * (w - pad) * c)


def _downsample(x):
  """2x2 average pooling; odd sizes first gain one mirrored row or column, as in tf.image."""
  x = jnp.pad(x, ((0, 0), (0, x.shape[1] % 2), (0, x.shape[2] % 2), (0, 0)),
              mode="symmetric")
  n, h, w, c = x.shape
  return x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


@jax.jit
def ms_ssim(a, b, max_val, power_factors=MS_SSIM_WEIGHTS):
  """Per-image multi-scale SSIM of NHWC batches (or one HWC image), as tf.image does it.

  Scale k contributes its mean contrast-structure to the power ``power_factors[k]``; the
  coarsest contributes its full SSIM instead. Values are clipped at 0 (a relu) and the
  product is averaged over channels.
  """
  a, b, single = _prepare(a, b)
  levels = len(power_factors)
  min_size = (FILTER_SIZE - 1) * 2 ** (levels - 1) + 1
  if min(a.shape[1:3]) < min_size:
    raise ValueError(f"MS-SSIM with {levels} scales needs images of at least "
                     f"{min_size}x{min_size} pixels (the coarsest scale must fit the "
                     f"{FILTER_SIZE}-tap filter), got {a.shape[1]}x{a.shape[2]}.")
  values = []
  for level in range(levels):
    if level:
      a, b = _downsample(a), _downsample(b)
    luminance, cs = _luminance_and_contrast_structure(a, b, max_val)
    values.append(cs.mean(axis=(1, 2)))
  values[-1] = (luminance * cs).mean(axis=(1, 2))
  per_channel = jnp.prod(jax.nn.relu(jnp.stack(values, -1)) ** jnp.asarray(power_factors),
                         axis=-1)
  value = per_channel.mean(axis=-1)
  return value[0] if single else value
