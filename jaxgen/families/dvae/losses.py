"""The DALL-E discrete VAE's objective (Ramesh et al. 2021): the logit-Laplace
likelihood of pixels mapped into (eps, 1 - eps), and the KL of a categorical posterior
to the uniform prior over the codes. Per-example values, as in ``jaxgen.losses``.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxgen.losses import sum_per_example

LOGIT_LAPLACE_EPS = 0.1  # dall_e/utils.py logit_laplace_eps


def map_pixels(x, eps=LOGIT_LAPLACE_EPS):
  """[0, 1] -> [eps, 1 - eps], where the logit-Laplace density lives."""
  return (1 - 2 * eps) * x + eps


def unmap_pixels(x, eps=LOGIT_LAPLACE_EPS):
  """The inverse of ``map_pixels``, clipped to [0, 1]."""
  return jnp.clip((x - eps) / (1 - 2 * eps), 0.0, 1.0)


def logit_laplace_log_prob(x, loc, log_scale):
  """log p(x) per example of the logit-Laplace density on (0, 1),

    p(x | mu, b) = exp(-|logit(x) - mu| / b) / (2 b x (1 - x)),

  a Laplace distribution of logit(x) with location ``loc`` and scale
  b = exp(``log_scale``), pushed through the sigmoid (x: mapped pixels)."""
  logit = jnp.log(x) - jnp.log1p(-x)
  logp = (-math.log(2.0) - log_scale - jnp.log(x) - jnp.log1p(-x)
          - jnp.abs(logit - loc) * jnp.exp(-log_scale))
  return sum_per_example(logp)


def categorical_kl_to_uniform(logits):
  """KL(softmax(logits) || uniform) per example, summed over the grid: sum over
  cells of log K - H(q)."""
  log_q = jax.nn.log_softmax(logits, axis=-1)
  kl = jnp.sum(jnp.exp(log_q) * log_q, axis=-1) + math.log(logits.shape[-1])
  return sum_per_example(kl)
