"""The VQ-VAE's codebook and commitment terms (van den Oord et al. 2017, eq. 3). z_e is
the encoder's output, z_q its nearest code vectors, both (batch, ..., D); per-example
sums of squares, as in ``jaxgen.losses``. (The statistics of code use, shared with the
dVAE, are ``jaxgen.losses.code_counts`` and its neighbours.)
"""
from __future__ import annotations

import jax

from jaxgen.losses import sum_per_example


def vq_codebook_loss(z_e, z_q):
  """||sg[z_e] - z_q||^2 per example: moves the codes towards the encoder outputs."""
  return sum_per_example((jax.lax.stop_gradient(z_e) - z_q) ** 2)


def vq_commitment_loss(z_e, z_q):
  """||z_e - sg[z_q]||^2 per example: keeps the encoder close to its codes (weighted
  by beta in the loss)."""
  return sum_per_example((z_e - jax.lax.stop_gradient(z_q)) ** 2)
