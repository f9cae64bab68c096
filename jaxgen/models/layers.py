"""Building blocks of the DDPM U-Net (Ho et al. 2020), shared by later diffusion models.

Layout is NHWC. The blocks follow ``diffusion_tf`` (hojonathanho/diffusion): swish
activations, GroupNorm with 32 groups and epsilon 1e-6 (the default of the
``tf.contrib.layers.group_norm`` the reference calls), Glorot-uniform ("fan_avg")
kernels, zero biases, and a near-zero initialisation of each residual branch's last
layer, so that every block starts close to the identity.
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

GROUP_NORM_EPS = 1e-6


def default_init(scale: float = 1.0):
  """Uniform variance scaling over (fan_in + fan_out) / 2; ``scale=0`` means 1e-10."""
  return nn.initializers.variance_scaling(scale or 1e-10, "fan_avg", "uniform")


def group_norm(num_groups: int, name: str | None = None) -> nn.GroupNorm:
  return nn.GroupNorm(num_groups=num_groups, epsilon=GROUP_NORM_EPS, name=name)


def _as_times(t) -> jax.Array:
  t = jnp.asarray(t, jnp.float32)
  if t.ndim != 1:
    raise ValueError(f"timesteps must have shape (N,), got {t.shape}.")
  return t


def sinusoidal_embedding(t, dim: int, max_period: float = 10000.0) -> jax.Array:
  """The Transformer/DDPM timestep embedding, (N,) -> (N, dim).

  The first ``dim // 2`` columns are sin(t * f_i), the next cos(t * f_i), with
  f_i = max_period ** (-i / (dim // 2 - 1)); an odd ``dim`` gets a zero last column.
  """
  half = dim // 2
  if half < 2:
    raise ValueError(f"sinusoidal_embedding needs dim >= 4, got {dim}.")
  i = jnp.arange(half, dtype=jnp.float32)
  freqs = jnp.exp(-math.log(max_period) / (half - 1) * i)
  return _sin_cos(_as_times(t)[:, None] * freqs[None, :], dim)


def _sin_cos(angles, dim: int) -> jax.Array:
  """[sin(angles), cos(angles)], zero-padded to ``dim`` columns when it is odd."""
  emb = jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=1)
  return jnp.pad(emb, ((0, 0), (0, dim % 2)))


class FourierFeatures(nn.Module):
  """Random Fourier features [sin(2 pi f t), cos(2 pi f t)], f ~ N(0, scale^2).

  The frequencies are fixed: drawn from ``seed`` at every call, never a variable, so
  they add nothing to any collection. Meant for continuous times (t in [0, 1], or
  log-sigma), as in Song et al. 2021; an odd ``dim`` gets a zero last column.
  """
  dim: int
  scale: float = 16.0
  seed: int = 0

  def __call__(self, t):
    half = self.dim // 2
    freqs = self.scale * jax.random.normal(jax.random.key(self.seed), (half,), jnp.float32)
    return _sin_cos(2 * math.pi * _as_times(t)[:, None] * freqs[None, :], self.dim)


class TimeEmbedding(nn.Module):
  """Timestep features of width ``ch`` -> Dense(4ch) -> swish -> Dense(4ch).

  The output is left linear: each ``ResBlock`` applies swish before projecting it.
  """
  ch: int
  kind: str = "sinusoidal"  # or "fourier"
  fourier_scale: float = 16.0

  @nn.compact
  def __call__(self, t, dtype=jnp.float32):
    """``dtype``: the network's compute dtype; the features are float32, then cast
    (float32 features would promote every layer they reach to float32)."""
    if self.kind == "sinusoidal":
      emb = sinusoidal_embedding(t, self.ch)
    elif self.kind == "fourier":
      emb = FourierFeatures(self.ch, self.fourier_scale, name="fourier")(t)
    else:
      raise ValueError(f"time embedding {self.kind!r}; use 'sinusoidal' or 'fourier'.")
    emb = nn.Dense(4 * self.ch, kernel_init=default_init(), name="dense0")(
        emb.astype(dtype))
    return nn.Dense(4 * self.ch, kernel_init=default_init(), name="dense1")(nn.swish(emb))


class ResBlock(nn.Module):
  """Pre-activation residual block conditioned on a time embedding.

  norm -> swish -> conv3x3 -> (+ Dense(swish(temb))) -> norm -> swish -> dropout ->
  conv3x3, plus the input (through a 1x1 "nin" projection when the width changes). With ``scale_shift`` the embedding gives
  2 * out_ch values and the second norm becomes norm(h) * (1 + scale) + shift
  (Nichol & Dhariwal 2021). ``temb=None`` leaves the block unconditioned.
  """
  out_ch: int
  dropout: float = 0.0
  num_groups: int = 32
  scale_shift: bool = False

  @nn.compact
  def __call__(self, x, temb, *, train: bool):
    h = nn.swish(group_norm(self.num_groups, "norm1")(x))
    h = nn.Conv(self.out_ch, (3, 3), kernel_init=default_init(), name="conv1")(h)
    scale = shift = None
    if temb is not None:
      width = 2 * self.out_ch if self.scale_shift else self.out_ch
      proj = nn.Dense(width, kernel_init=default_init(), name="temb_proj")(nn.swish(temb))
      proj = proj[:, None, None, :]
      if self.scale_shift:
        scale, shift = jnp.split(proj, 2, axis=-1)
      else:
        h = h + proj
    h = group_norm(self.num_groups, "norm2")(h)
    if scale is not None:
      h = h * (1 + scale) + shift
    h = nn.Dropout(self.dropout)(nn.swish(h), deterministic=not train)
    h = nn.Conv(self.out_ch, (3, 3), kernel_init=default_init(0.0), name="conv2")(h)
    if x.shape[-1] != self.out_ch:
      x = nn.Dense(self.out_ch, kernel_init=default_init(), name="nin_shortcut")(x)
    return x + h


class AttnBlock(nn.Module):
  """Single-head self-attention over all spatial positions, with a residual.

  norm -> 1x1 q, k, v -> softmax(q k^T / sqrt(C)) v -> 1x1 projection (near-zero init).
  """
  num_groups: int = 32

  @nn.compact
  def __call__(self, x):
    n, c = x.shape[0], x.shape[-1]
    h = group_norm(self.num_groups, "norm")(x)
    q, k, v = (nn.Dense(c, kernel_init=default_init(), name=name)(h).reshape(n, -1, c)
               for name in ("q", "k", "v"))
    weights = jax.nn.softmax(jnp.einsum("bic,bjc->bij", q, k) * c ** -0.5, axis=-1)
    h = jnp.einsum("bij,bjc->bic", weights, v).reshape(x.shape)
    return x + nn.Dense(c, kernel_init=default_init(0.0), name="proj_out")(h)


class Downsample(nn.Module):
  """Halves H and W: a stride-2 3x3 convolution, or 2x2 average pooling.

  Padding is TensorFlow's "SAME" (which lax shares): for even sizes, one row and one
  column of zeros after the image and none before, as in the reference.
  """
  with_conv: bool = True

  @nn.compact
  def __call__(self, x):
    if self.with_conv:
      return nn.Conv(x.shape[-1], (3, 3), strides=(2, 2), padding="SAME",
                     kernel_init=default_init(), name="conv")(x)
    return nn.avg_pool(x, (2, 2), strides=(2, 2), padding="SAME", count_include_pad=False)


class Upsample(nn.Module):
  """Doubles H and W by nearest-neighbour repetition, then an optional 3x3 convolution.

  (The reference's align_corners nearest resize is exactly this repetition at 2x.)
  """
  with_conv: bool = True

  @nn.compact
  def __call__(self, x):
    x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
    if self.with_conv:
      x = nn.Conv(x.shape[-1], (3, 3), kernel_init=default_init(), name="conv")(x)
    return x


# --- PyTorch's BatchNorm and DCGAN's initialisation (the GAN and image-to-image
# families' networks)
BN_MOMENTUM = 0.9  # PyTorch's momentum 0.1: running = 0.9 running + 0.1 batch
BN_EPS = 1e-5


def dcgan_normal(mean: float = 0.0, stddev: float = 0.02):
  """N(mean, stddev^2) weights, as DCGAN's ``weights_init``. Drawn as one flat vector,
  which XLA on CPU compiles faster than a 4-D draw (docs/results.md, "Implementation
  choices")."""
  def init(key, shape, dtype=jnp.float32):
    flat = jax.random.normal(key, (math.prod(shape),), dtype)
    return (mean + stddev * flat).reshape(shape)
  return init


DCGAN_INIT = dcgan_normal()


def batch_norm(train: bool, name: str) -> nn.BatchNorm:
  return nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM,
                      epsilon=BN_EPS, scale_init=dcgan_normal(1.0), name=name)
