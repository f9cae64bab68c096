"""Arithmetic on CLIP embeddings that unCLIP needs, apart from any network.

* ``standardize`` / ``unstandardize``: karlo's per-dimension statistics
  (``prior_model.py``: ``sample * clip_std + clip_mean``), computed over the training
  split (``statistics``).
* ``pick_candidates``: of n prior samples per caption, the one with the highest dot
  product with the caption's text embedding (unCLIP section 2.2).
* ``slerp``: spherical interpolation through the angle between the two vectors,
  omega = arccos(<a/|a|, b/|b|>) (unCLIP section 3.2). diffusers' community
  ``unclip_image_interpolation.py`` computes the angle element-wise; this does not.
* ``text_diff``: unCLIP section 3.3's z_d = normalise(z_t - z_t0), slerped from the
  image embedding.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

MIN_STD = 1e-6  # a dimension that never varies is divided by this, not by 0


def statistics(embeddings) -> tuple[np.ndarray, np.ndarray]:
  """Per-dimension mean and standard deviation (float32) of (N, D) embeddings,
  accumulated in float64; the std is at least ``MIN_STD``."""
  e = np.asarray(embeddings, np.float64)
  return (e.mean(0).astype(np.float32),
          np.maximum(e.std(0), MIN_STD).astype(np.float32))


def standardize(x, mean, std):
  return (x - mean) / std


def unstandardize(z, mean, std):
  return z * std + mean


def normalize(x, axis=-1):
  return x / jnp.linalg.norm(x, axis=axis, keepdims=True)


def pick_candidates(candidates, text_emb):
  """candidates (B, n, D), text embeddings (B, D) -> (the candidate of the highest dot
  product with its text embedding (B, D), its index (B,))."""
  scores = jnp.einsum("bnd,bd->bn", candidates, text_emb)
  best = jnp.argmax(scores, axis=1)
  return jnp.take_along_axis(candidates, best[:, None, None], 1)[:, 0], best


def slerp(a, b, theta):
  """Spherical interpolation from a (theta 0) to b (theta 1) along the great circle of
  their directions, with the norm interpolated linearly: a, b (..., D); theta a number
  or (...,). Collinear vectors fall back to linear interpolation."""
  theta = jnp.asarray(theta, jnp.float32)[..., None]
  na, nb = jnp.linalg.norm(a, axis=-1, keepdims=True), jnp.linalg.norm(b, axis=-1,
                                                                        keepdims=True)
  ua, ub = a / na, b / nb
  omega = jnp.arccos(jnp.clip(jnp.sum(ua * ub, -1, keepdims=True), -1.0, 1.0))
  so = jnp.sin(omega)
  safe = jnp.where(so > 1e-6, so, 1.0)
  wa = jnp.where(so > 1e-6, jnp.sin((1 - theta) * omega) / safe, 1 - theta)
  wb = jnp.where(so > 1e-6, jnp.sin(theta * omega) / safe, theta)
  direction = wa * ua + wb * ub
  return direction / jnp.linalg.norm(direction, axis=-1, keepdims=True) * (
      (1 - theta) * na + theta * nb)


def text_diff(image_emb, text_from, text_to, theta):
  """unCLIP's text diff: slerp(z_i, normalise(z_t - z_t0), theta) (each (..., D))."""
  return slerp(image_emb, normalize(text_to - text_from), theta)
