"""ADA's augmentation pipeline (Karras et al. 2020, "Training Generative Adversarial
Networks with Limited Data"), as NVlabs' stylegan2-ada-pytorch ``training/augment.py``
defines ``AugmentPipe``, for NHWC images in [-1, 1]; differentiable in the images (D's
gradients flow through it into G).

``bgc`` = pixel blitting (x-flip, 90-degree rotations, integer translation), general
geometric transformations (isotropic scaling, pre-rotation, anisotropic scaling,
post-rotation, fractional translation) and colour transformations (brightness,
contrast, luma flip, hue rotation, saturation), each applied to each image with
probability p times its multiplier (1 in ``bgc``), with the reference's parameter
distributions. The geometric ones compose into one inverse 3x3 matrix, executed as
the reference does: reflect padding, 2x up-sampling with the sym6 wavelet, bilinear
sampling (zeros outside, align_corners=False), 2x down-sampling with the flipped
filter and the crop. The colour ones compose into one 4x4 matrix.

One difference: the reference pads by a margin computed on the host from the batch's
transforms; here (inside jit) the padding is always the largest the reference
allows (size - 1 per side), whose reflected pixels agree with the reference's
wherever the reference's padded image reaches.

``digits`` (jaxgen's, not the reference's) keeps a digit the digit it was: integer
translation at the reference's range (up to 1/8 of the size: 4 px at 32x32, less than
the black margin of about 6 px that MNIST's 20x20 digit box and the 28 -> 32 padding
leave on each side, so the digit stays whole), isotropic scaling with a log2-std of
0.1 (half the reference's 0.2: 95% of the draws within x0.87-1.15, so a 20 px digit
stays inside the frame), and the two rotations each uniform within 7.5 degrees (the
reference's go up to 180), at most 15 degrees together: a slant, not a turn. No
x-flip, no 90-degree rotation and no colour transformation: a mirrored 2, a 6 turned
into a 9 and a black digit on white are not digits the generator should draw.
"""
from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.families.stylegan2.ops import upfirdn2d

SYM6 = [0.015404109327027373, 0.0034907120842174702, -0.11799011114819057,
        -0.048311742585633, 0.4910559419267466, 0.787641141030194,
        0.3379294217276218, -0.07263752278646252, -0.021060292512300564,
        0.04472490177066578, 0.0017677118642428036, -0.007800708325034148]

# The reference's defaults of the parameter distributions.
XINT_MAX, SCALE_STD, ROTATE_MAX, ANISO_STD, XFRAC_STD = 0.125, 0.2, 1.0, 0.2, 0.125
# Probability multipliers of the augmentations of each preset (train.py's augpipe_specs;
# ``digits`` is jaxgen's, with narrower ranges: the module docstring says why).
PRESETS = {
    "blit": dict(xflip=1, rotate90=1, xint=1),
    "geom": dict(scale=1, rotate=1, aniso=1, xfrac=1),
    "color": dict(brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1),
    "bgc": dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1,
                brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1),
    "digits": dict(xint=1, scale=1, rotate=1, scale_std=0.1, rotate_max=1 / 24),
}
BRIGHTNESS_STD, CONTRAST_STD, HUE_MAX, SATURATION_STD = 0.2, 0.5, 1.0, 1.0
AUGMENTATIONS = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac",
                 "brightness", "contrast", "lumaflip", "hue", "saturation")


def _mat(rows):
  """A batch of matrices [N, r, c] from rows of scalars or [N] arrays."""
  n = next((e.shape[0] for r in rows for e in r if hasattr(e, "shape") and e.ndim), 1)
  full = lambda e: jnp.broadcast_to(jnp.asarray(e, jnp.float32), (n,))
  return jnp.stack([jnp.stack([full(e) for e in r], -1) for r in rows], -2)


def translate2d(tx, ty):
  return _mat([[1, 0, tx], [0, 1, ty], [0, 0, 1]])


def scale2d(sx, sy):
  return _mat([[sx, 0, 0], [0, sy, 0], [0, 0, 1]])


def rotate2d(theta):
  c, s = jnp.cos(theta), jnp.sin(theta)
  return _mat([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def translate3d(tx, ty, tz):
  return _mat([[1, 0, 0, tx], [0, 1, 0, ty], [0, 0, 1, tz], [0, 0, 0, 1]])


def scale3d(sx, sy, sz):
  return _mat([[sx, 0, 0, 0], [0, sy, 0, 0], [0, 0, sz, 0], [0, 0, 0, 1]])


def rotate3d(v, theta):
  vx, vy, vz = v[0], v[1], v[2]
  s, c = jnp.sin(theta), jnp.cos(theta)
  cc = 1 - c
  return _mat([[vx * vx * cc + c, vx * vy * cc - vz * s, vx * vz * cc + vy * s, 0],
               [vy * vx * cc + vz * s, vy * vy * cc + c, vy * vz * cc - vx * s, 0],
               [vz * vx * cc - vy * s, vz * vy * cc + vx * s, vz * vz * cc + c, 0],
               [0, 0, 0, 1]])


def _const(m, n):
  return jnp.broadcast_to(jnp.asarray(m, jnp.float32), (n, *np.shape(m)))


def grid_sample(images, grid):
  """Bilinear sampling of NHWC ``images`` at ``grid`` [N, Ho, Wo, 2] (x, y in [-1, 1],
  align_corners=False), zeros outside: torch's grid_sample defaults."""
  n, h, w, c = images.shape
  ix = ((grid[..., 0] + 1) * w - 1) / 2
  iy = ((grid[..., 1] + 1) * h - 1) / 2
  x0, y0 = jnp.floor(ix), jnp.floor(iy)
  out = 0.0
  flat = images.reshape(n, h * w, c)
  for dx in (0, 1):
    for dy in (0, 1):
      xi, yi = x0 + dx, y0 + dy
      wgt = (1 - jnp.abs(ix - xi)) * (1 - jnp.abs(iy - yi))
      inside = (xi >= 0) & (xi <= w - 1) & (yi >= 0) & (yi <= h - 1)
      idx = (jnp.clip(yi, 0, h - 1) * w + jnp.clip(xi, 0, w - 1)).astype(jnp.int32)
      vals = jnp.take_along_axis(flat, idx.reshape(n, -1, 1), axis=1)
      vals = vals.reshape(*idx.shape, c)
      out = out + vals * (wgt * inside)[..., None]
  return out


def augment(images, p, key, xflip=0, rotate90=0, xint=0, scale=0, rotate=0, aniso=0,
            xfrac=0, brightness=0, contrast=0, lumaflip=0, hue=0, saturation=0,
            xint_max=XINT_MAX, scale_std=SCALE_STD, rotate_max=ROTATE_MAX):
  """The reference's ``AugmentPipe.forward`` for the augmentations whose multipliers
  are given, at overall probability ``p`` (a scalar, may be traced). ``xint_max``,
  ``scale_std`` and ``rotate_max`` (in half-turns, per rotation) are the ranges of
  translation, scaling and rotation (the reference's defaults)."""
  n, h, w, ch = images.shape
  # Two draws for all the pipeline's random numbers (XLA on CPU compiles each draw
  # slowly), handed out column by column.
  ku, kn = jax.random.split(key)
  uniform, normal = jax.random.uniform(ku, (n, 32)), jax.random.normal(kn, (n, 16))
  cols = {"u": 0, "n": 0}

  def take(kind, shape):
    bank = uniform if kind == "u" else normal
    width = int(np.prod(shape[1:]))
    i = cols[kind]
    cols[kind] += width
    return bank[:, i:i + width].reshape(shape)

  rand = lambda shape=(n,): take("u", shape)
  randn = lambda shape=(n,): take("n", shape)
  p = jnp.asarray(p, jnp.float32)

  # Pixel blitting and general geometric transformations: G_inv @ out -> in.
  g_inv = None
  mul = lambda a, b: b if a is None else a @ b
  if xflip > 0:
    i = jnp.floor(rand() * 2)
    i = jnp.where(rand() < xflip * p, i, 0.0)
    g_inv = mul(g_inv, scale2d(1 - 2 * i, 1))
  if rotate90 > 0:
    i = jnp.floor(rand() * 4)
    i = jnp.where(rand() < rotate90 * p, i, 0.0)
    g_inv = mul(g_inv, rotate2d(-(-np.pi / 2 * i)))
  if xint > 0:
    t = (rand((n, 2)) * 2 - 1) * xint_max
    t = jnp.where(rand((n, 1)) < xint * p, t, 0.0)
    g_inv = mul(g_inv, translate2d(-jnp.round(t[:, 0] * w), -jnp.round(t[:, 1] * h)))
  if scale > 0:
    s = jnp.exp2(randn() * scale_std)
    s = jnp.where(rand() < scale * p, s, 1.0)
    g_inv = mul(g_inv, scale2d(1 / s, 1 / s))
  p_rot = 1 - jnp.sqrt(jnp.clip(1 - rotate * p, 0, 1))
  if rotate > 0:
    theta = (rand() * 2 - 1) * np.pi * rotate_max
    theta = jnp.where(rand() < p_rot, theta, 0.0)
    g_inv = mul(g_inv, rotate2d(theta))  # rotate2d_inv(-theta)
  if aniso > 0:
    s = jnp.exp2(randn() * ANISO_STD)
    s = jnp.where(rand() < aniso * p, s, 1.0)
    g_inv = mul(g_inv, scale2d(1 / s, s))
  if rotate > 0:
    theta = (rand() * 2 - 1) * np.pi * rotate_max
    theta = jnp.where(rand() < p_rot, theta, 0.0)
    g_inv = mul(g_inv, rotate2d(theta))
  if xfrac > 0:
    t = randn((n, 2)) * XFRAC_STD
    t = jnp.where(rand((n, 1)) < xfrac * p, t, 0.0)
    g_inv = mul(g_inv, translate2d(-t[:, 0] * w, -t[:, 1] * h))
  if g_inv is not None:
    images = _geometric(images, g_inv)

  # Colour transformations: C @ colour_in -> colour_out.
  c_mat = None
  cmul = lambda a, b: a if b is None else a @ b
  if brightness > 0:
    b = randn() * BRIGHTNESS_STD
    b = jnp.where(rand() < brightness * p, b, 0.0)
    c_mat = cmul(translate3d(b, b, b), c_mat)
  if contrast > 0:
    c = jnp.exp2(randn() * CONTRAST_STD)
    c = jnp.where(rand() < contrast * p, c, 1.0)
    c_mat = cmul(scale3d(c, c, c), c_mat)
  v = jnp.asarray(np.array([1, 1, 1, 0]) / np.sqrt(3), jnp.float32)
  eye4 = jnp.eye(4)
  vv = jnp.outer(v, v)
  if lumaflip > 0:
    i = jnp.floor(rand((n, 1, 1)) * 2)
    i = jnp.where(rand((n, 1, 1)) < lumaflip * p, i, 0.0)
    c_mat = cmul(eye4 - 2 * vv * i, c_mat)
  if hue > 0 and ch > 1:
    theta = (rand() * 2 - 1) * np.pi * HUE_MAX
    theta = jnp.where(rand() < hue * p, theta, 0.0)
    c_mat = cmul(rotate3d(v, theta), c_mat)
  if saturation > 0 and ch > 1:
    s = jnp.exp2(randn((n, 1, 1)) * SATURATION_STD)
    s = jnp.where(rand((n, 1, 1)) < saturation * p, s, 1.0)
    c_mat = cmul(vv + (eye4 - vv) * s, c_mat)
  if c_mat is not None:
    flat = images.reshape(n, h * w, ch)
    if ch == 3:
      flat = jnp.einsum("nij,npj->npi", c_mat[:, :3, :3], flat) + c_mat[:, None, :3, 3]
    elif ch == 1:
      m = c_mat[:, :3, :].mean(axis=1)  # [N, 4]
      flat = flat * m[:, None, :3].sum(-1, keepdims=True) + m[:, None, 3:]
    else:
      raise ValueError(f"ADA's colour transformations need RGB (3) or grey (1) "
                       f"channels; got {ch}.")
    images = flat.reshape(n, h, w, ch)
  return images


def _geometric(images, g_inv):
  """Execute the inverse geometric transform ``g_inv`` [N, 3, 3] (pixel coordinates
  about the image centre) as the reference does."""
  n, h, w, ch = images.shape
  f1 = np.asarray(SYM6, np.float32)
  f1 = f1 / f1.sum()
  f = np.outer(f1, f1)
  hz_pad = len(SYM6) // 4
  mx, my = w - 1, h - 1  # the largest reflect padding (see the module docstring)
  images = jnp.pad(images, ((0, 0), (my, my), (mx, mx), (0, 0)), mode="reflect")
  # Up-sample (the reference's upsample2d: gain 4, padding from the filter size).
  fw = f.shape[0]
  pu0, pu1 = (fw + 1) // 2, (fw - 2) // 2
  images = upfirdn2d(images, f, up=2, padding=(pu0, pu1, pu0, pu1), gain=4.0)
  g_inv = scale2d(2, 2) @ g_inv @ scale2d(0.5, 0.5)
  g_inv = translate2d(-0.5, -0.5) @ g_inv @ translate2d(0.5, 0.5)
  out_h, out_w = (h + hz_pad * 2) * 2, (w + hz_pad * 2) * 2
  in_h, in_w = images.shape[1:3]
  g_inv = (scale2d(2 / in_w, 2 / in_h) @ g_inv @ scale2d(out_w / 2, out_h / 2))
  # affine_grid (align_corners=False): normalised output pixel centres -> input.
  xs = (2 * jnp.arange(out_w) + 1) / out_w - 1
  ys = (2 * jnp.arange(out_h) + 1) / out_h - 1
  base = jnp.stack(jnp.broadcast_arrays(xs[None, :], ys[:, None],
                                        jnp.ones((out_h, out_w))), -1)  # [Ho, Wo, 3]
  grid = jnp.einsum("nij,hwj->nhwi", g_inv[:, :2, :], base)
  images = grid_sample(images, grid)
  # Down-sample with the flipped filter and crop (padding -2 hz_pad).
  pd0, pd1 = (fw - 1) // 2 - hz_pad * 2, (fw - 2) // 2 - hz_pad * 2
  return upfirdn2d(images, f, down=2, padding=(pd0, pd1, pd0, pd1), flip_filter=True)


def pipeline(name: str):
  """``fn(images, p, key)`` of the preset ``name`` (blit, geom, color, bgc, digits)."""
  if name not in PRESETS:
    raise ValueError(f"Unknown ADA pipeline {name!r}; use one of {sorted(PRESETS)}.")
  spec = PRESETS[name]
  return lambda images, p, key: augment(images, p, key, **spec)
