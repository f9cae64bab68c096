"""The terms of CompVis' ``LPIPSWithDiscriminator`` (``ldm/modules/losses/
contperceptual.py``) and of taming-transformers' ``vqperceptual.py`` it imports
(``adopt_weight``, ``hinge_d_loss``, ``vanilla_d_loss``; taming 3ba01b2), as plain
functions of arrays; the trainer composes them.

Autoencoder step (optimizer 0), images x and reconstructions x_rec in [-1, 1]:

  rec   = |x - x_rec| + perceptual_weight * LPIPS(x, x_rec)   (per pixel: the per-image
          LPIPS is added to every pixel of its image, as the reference broadcasts it)
  nll   = sum(rec / exp(logvar) + logvar) / N                (logvar: a learned scalar)
  kl    = sum KL(q(z|x) || N(0, I)) / N
  g     = -mean(D(x_rec))
  loss  = nll + kl_weight * kl + d_weight * disc_factor * g
  d_weight = clip(||grad_K nll|| / (||grad_K g|| + 1e-4), 0, 1e4) * disc_weight

with K the decoder's last layer's kernel (``conv_out``), d_weight without gradient,
and disc_factor = ``adopt_weight``: 0 before ``disc_start``, ``disc_factor`` from it.
Discriminator step (optimizer 1): disc_factor * ``discriminator_loss`` (hinge:
0.5 (mean relu(1 - D(x)) + mean relu(1 + D(x_rec))); vanilla: the softplus form).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen import losses

DISC_LOSSES = {"hinge": "hinge", "vanilla": "nonsaturating"}  # -> jaxgen.losses kinds
MAX_D_WEIGHT = 1e4
D_WEIGHT_EPS = 1e-4


class LogVar(nn.Module):
  """The loss's learned scalar log-variance (CompVis' ``loss.logvar``)."""
  init_value: float = 0.0

  @nn.compact
  def __call__(self):
    return self.param("logvar", nn.initializers.constant(self.init_value), ())


def reconstruction_nll(x, x_rec, logvar, p_loss=None, perceptual_weight: float = 0.0):
  """(nll, mean of rec): the reconstruction term, summed over pixels and averaged
  over the batch; ``p_loss`` (N,) is the LPIPS of each image pair (or None)."""
  rec = jnp.abs(x - x_rec)
  if p_loss is not None:
    rec = rec + perceptual_weight * p_loss.reshape(-1, *([1] * (rec.ndim - 1)))
  nll = jnp.sum(rec / jnp.exp(logvar) + logvar) / x.shape[0]
  return nll, rec.mean()


def kl_loss(mean, logvar):
  """sum over the latent of KL(N(mean, exp(logvar)) || N(0, I)), averaged over the
  batch (``posterior.kl()`` summed and divided by the batch size)."""
  return losses.gaussian_kl(mean, logvar).mean()


def adopt_weight(weight, step, threshold):
  """taming's ``adopt_weight``: 0 while ``step < threshold``, else ``weight``."""
  return jnp.where(step < threshold, 0.0, weight)


def adaptive_weight(nll_grad, g_grad, disc_weight: float):
  """``calculate_adaptive_weight``: the ratio of the gradient norms at the last layer,
  clamped to [0, 1e4], without gradient, times ``disc_weight``."""
  w = jnp.linalg.norm(nll_grad.ravel()) / (jnp.linalg.norm(g_grad.ravel())
                                           + D_WEIGHT_EPS)
  return jax.lax.stop_gradient(jnp.clip(w, 0.0, MAX_D_WEIGHT)) * disc_weight


def generator_loss(logits_fake):
  """-mean(D(x_rec)), for both discriminator losses (the reference's g_loss)."""
  return losses.generator_loss(logits_fake, "hinge")


def discriminator_loss(logits_real, logits_fake, kind: str = "hinge"):
  """taming's ``hinge_d_loss`` or ``vanilla_d_loss``: half of jaxgen.losses' sum of
  the real and the fake term."""
  if kind not in DISC_LOSSES:
    raise ValueError(f"config.loss.disc_loss={kind!r}; use one of {list(DISC_LOSSES)}.")
  return 0.5 * losses.discriminator_loss(logits_real, logits_fake, DISC_LOSSES[kind])
