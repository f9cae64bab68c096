"""Vector quantisation (van den Oord et al. 2017): a codebook of K vectors of D dims
and the nearest-neighbour quantiser, for any discrete autoencoder.

The codebook is stored (K, D); sonnet keeps its transpose. The quantiser's functions
are plain functions of the codebook so that the EMA update, the loss terms and the
stage protocol share them.
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp


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
