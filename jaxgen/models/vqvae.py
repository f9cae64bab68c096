"""The VQ-VAE (van den Oord et al. 2017) in the layout of sonnet's CIFAR-10 example.

``Encoder``: two 4x4 stride-2 convolutions (num_hiddens / 2, num_hiddens), a 3x3
convolution, a residual stack and a 1x1 projection to ``embedding_dim`` (sonnet's
``pre_vq_conv1``). ``Codebook``: K vectors of D dims, with the nearest-neighbour
quantiser. ``Decoder``: a 3x3 convolution, a residual stack and two 4x4 stride-2
transposed convolutions back to the image. With num_hiddens 128, 2 residual layers of
32 hidden channels, K = 512 and D = 64 on 32x32x3 images this is 695,491 parameters.

The codebook is stored (K, D); sonnet keeps its transpose. The quantiser's functions
are plain functions of the codebook so that the EMA update, the loss terms and the
stage protocol share them.
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp


class ResidualStack(nn.Module):
  """Sonnet's residual stack: per layer x += conv1x1(relu(conv3x3(relu(x)))); a final
  ReLU."""
  num_hiddens: int
  num_layers: int
  num_residual_hiddens: int

  @nn.compact
  def __call__(self, x):
    for i in range(self.num_layers):
      h = nn.Conv(self.num_residual_hiddens, (3, 3), padding="SAME",
                  name=f"res3x3_{i}")(nn.relu(x))
      h = nn.Conv(self.num_hiddens, (1, 1), name=f"res1x1_{i}")(nn.relu(h))
      x = x + h
    return nn.relu(x)


class Encoder(nn.Module):
  num_hiddens: int
  num_residual_layers: int
  num_residual_hiddens: int
  embedding_dim: int
  num_downsamples: int = 2

  @nn.compact
  def __call__(self, x):
    h = x
    for i in range(self.num_downsamples):
      width = self.num_hiddens // 2 if i < self.num_downsamples - 1 else self.num_hiddens
      h = nn.relu(nn.Conv(width, (4, 4), strides=(2, 2), padding="SAME",
                          name=f"down_{i}")(h))
    h = nn.Conv(self.num_hiddens, (3, 3), padding="SAME", name="conv")(h)
    h = ResidualStack(self.num_hiddens, self.num_residual_layers,
                      self.num_residual_hiddens, name="residual")(h)
    return nn.Conv(self.embedding_dim, (1, 1), name="pre_vq_conv")(h)


class Decoder(nn.Module):
  num_hiddens: int
  num_residual_layers: int
  num_residual_hiddens: int
  out_channels: int
  num_upsamples: int = 2

  @nn.compact
  def __call__(self, z):
    h = nn.Conv(self.num_hiddens, (3, 3), padding="SAME", name="conv")(z)
    h = ResidualStack(self.num_hiddens, self.num_residual_layers,
                      self.num_residual_hiddens, name="residual")(h)
    for i in range(self.num_upsamples):
      last = i == self.num_upsamples - 1
      width = self.out_channels if last else self.num_hiddens // 2
      h = nn.ConvTranspose(width, (4, 4), strides=(2, 2), padding="SAME",
                           name=f"up_{i}")(h)
      if not last:
        h = nn.relu(h)
    return h


def codebook_init(key, shape, dtype=jnp.float32):
  """Sonnet's VarianceScaling(distribution='uniform') on its (D, K) variable: uniform
  on +-sqrt(3 / D)."""
  limit = math.sqrt(3.0 / shape[-1])
  return jax.random.uniform(key, shape, dtype, -limit, limit)


class Codebook(nn.Module):
  """K code vectors of D dims; calling it returns the (K, D) table."""
  num_codes: int
  dim: int

  @nn.compact
  def __call__(self):
    return self.param("codebook", codebook_init, (self.num_codes, self.dim))


def distances(z, codebook):
  """Squared Euclidean distances (M, K) of vectors z (M, D) to the codes (K, D)."""
  hi = jax.lax.Precision.HIGHEST
  return ((z ** 2).sum(-1, keepdims=True)
          - 2 * jnp.matmul(z, codebook.T, precision=hi)
          + (codebook ** 2).sum(-1)[None, :])


def nearest(z, codebook):
  """Indices (...,) of the nearest code to each vector of z (..., D)."""
  flat = z.reshape(-1, z.shape[-1])
  return jnp.argmin(distances(flat, codebook), -1).astype(jnp.int32).reshape(z.shape[:-1])


def lookup(codes, codebook):
  """The code vectors (..., D) of integer codes (...)."""
  return jnp.take(codebook, codes, axis=0)


def straight_through(z_e, z_q):
  """z_q in the forward pass; the identity's gradient to z_e in the backward pass."""
  return z_e + jax.lax.stop_gradient(z_q - z_e)
