"""Losses and log-likelihoods that several families share: Gaussian and KL terms,
decoder likelihoods, the ELBO and the IWAE bound, bits per dimension, the diffusion
objective, the GAN losses and R1, the statistics of discrete codes and CLIP's
contrastive loss. A loss that
one family uses lives in that family's package (``jaxgen/families/<name>/``).

Conventions: functions return per-example values (summed over all non-batch axes);
log-probabilities are in nats. ``bits_per_dim`` converts.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax


def sum_per_example(x):
  """The sum over all axes but the first (the batch)."""
  return x.reshape(x.shape[0], -1).sum(-1)


def mean_per_example(x):
  """The mean over all axes but the first (the batch)."""
  return x.reshape(x.shape[0], -1).mean(-1)


def mse_per_example(target, prediction):
  """The squared error per example, its mean over all axes but the batch: a
  reconstruction's MSE, or Ho et al.'s simplified diffusion objective when the target
  is the noise epsilon (or x0, or v)."""
  return mean_per_example((target - prediction) ** 2)


# ----------------------------------------------------------------------------------
# Gaussians and the KL term of the ELBO.

def gaussian_kl(mean, logvar):
  """KL(N(mean, exp(logvar)) || N(0, I)) per example, in closed form."""
  zero = jnp.zeros_like(mean)
  return gaussian_kl_between(mean, logvar, zero, zero)


def gaussian_kl_between(mean1, logvar1, mean2, logvar2):
  """KL(N(mean1, exp(logvar1)) || N(mean2, exp(logvar2))) per example (diagonal)."""
  kl = 0.5 * (logvar2 - logvar1 + jnp.exp(logvar1 - logvar2)
              + (mean1 - mean2) ** 2 * jnp.exp(-logvar2) - 1.0)
  return sum_per_example(kl)


def gaussian_log_prob(x, mean, logvar):
  """log N(x; mean, exp(logvar)) per example (diagonal covariance)."""
  return sum_per_example(
      -0.5 * (math.log(2 * math.pi) + logvar + (x - mean) ** 2 * jnp.exp(-logvar)))


def standard_normal_log_prob(z):
  return sum_per_example(-0.5 * (math.log(2 * math.pi) + z ** 2))


# ----------------------------------------------------------------------------------
# Decoder likelihoods p(x | z).

def bernoulli_log_prob(x, logits):
  """log Bernoulli(x; sigmoid(logits)) per example, for x in {0, 1}."""
  return -sum_per_example(optax.sigmoid_binary_cross_entropy(logits, x))


def discretized_logistic_log_prob(x, mean, log_scale, low=-1.0, high=1.0,
                                  num_bins=256):
  """log P(x) per example under a logistic discretised into ``num_bins`` bins.

  x takes the values low + k (high - low) / (num_bins - 1); the first and last bins
  extend to -inf and +inf (as in PixelCNN++, Salimans et al. 2017).
  """
  half_bin = (high - low) / (2 * (num_bins - 1))
  inv_s = jnp.exp(-log_scale)
  plus = inv_s * (x - mean + half_bin)
  minus = inv_s * (x - mean - half_bin)
  log_cdf_plus = jax.nn.log_sigmoid(plus)  # log F(x + half bin), for the first bin
  log_one_minus_cdf_minus = -jax.nn.softplus(minus)  # log 1 - F(x - half bin)
  # log(F(plus) - F(minus)) computed stably: F(a) - F(b) = sig(a) - sig(b).
  mid = inv_s * (x - mean)
  log_pdf_mid = mid - log_scale - 2.0 * jax.nn.softplus(mid)
  diff = jax.nn.sigmoid(plus) - jax.nn.sigmoid(minus)
  log_diff = jnp.where(diff > 1e-5, jnp.log(jnp.maximum(diff, 1e-12)),
                       log_pdf_mid + math.log(2 * half_bin))
  logp = jnp.where(x < low + half_bin, log_cdf_plus,
                   jnp.where(x > high - half_bin, log_one_minus_cdf_minus, log_diff))
  return sum_per_example(logp)


# ----------------------------------------------------------------------------------
# The evidence lower bound and its importance-weighted tightening.

def elbo(log_likelihood, kl, beta=1.0):
  """The ELBO per example and the training loss -(E log p(x|z) - beta KL).

  Returns (elbo, loss): ``elbo`` is the bound itself (beta = 1), ``loss`` the
  objective to minimise, with the KL weighted by ``beta`` (KL warm-up).
  """
  return log_likelihood - kl, -(log_likelihood - beta * kl)


def iwae_bound(log_weights):
  """log (1/K sum_k w_k) from log-weights of shape (batch, K): the IWAE bound."""
  k = log_weights.shape[-1]
  return jax.nn.logsumexp(log_weights, axis=-1) - math.log(k)


def bits_per_dim(nll_nats, num_dims, log_bin_width=0.0):
  """Convert a per-example NLL in nats to bits per dimension.

  For a continuous density on data whose grey-level bins have width
  ``exp(log_bin_width)`` (1/256 on [0, 1] after uniform dequantisation),
  -log P(bin) <= -log p(x) - num_dims * log_bin_width bounds the NLL of the discrete
  256-level data (Theis et al. 2016); that bound is what is converted.
  """
  return (nll_nats - num_dims * log_bin_width) / (num_dims * math.log(2))


# ----------------------------------------------------------------------------------
# Diffusion: the terms of the variational bound (the denoising objective is
# mse_per_example).

def discretized_gaussian_log_prob(x, mean, log_scale, num_bins=256):
  """log P(x) per example for x on the grid of ``num_bins`` levels in [-1, 1], under a
  Gaussian integrated over each bin; the end bins extend to infinity (the decoder
  term L_0 of Ho et al. 2020)."""
  half_bin = 1.0 / (num_bins - 1)
  inv_s = jnp.exp(-log_scale)
  cdf = lambda v: jax.scipy.stats.norm.cdf(v)
  log_cdf_plus = jax.scipy.stats.norm.logcdf(inv_s * (x - mean + half_bin))
  log_sf_minus = jax.scipy.stats.norm.logcdf(-inv_s * (x - mean - half_bin))
  delta = cdf(inv_s * (x - mean + half_bin)) - cdf(inv_s * (x - mean - half_bin))
  logp = jnp.where(x < -1 + half_bin, log_cdf_plus,
                   jnp.where(x > 1 - half_bin, log_sf_minus,
                             jnp.log(jnp.maximum(delta, 1e-12))))
  return sum_per_example(logp)


# ----------------------------------------------------------------------------------
# GANs. Discriminator outputs are logits l, with D(x) = sigmoid(l); everything is
# computed from the logits (log D = log_sigmoid(l), log(1 - D) = -softplus(l)), so
# saturated discriminators give finite losses and gradients. Unlike the functions
# above, these return scalars: means over the batch (and any other axes, e.g. the
# patches of a PatchGAN).

GAN_LOSSES = ("minimax", "nonsaturating", "hinge", "lsgan")


def _check_gan_kind(kind):
  if kind not in GAN_LOSSES:
    raise ValueError(f"Unknown GAN loss kind {kind!r}; choose one of "
                     f"{', '.join(GAN_LOSSES)}.")


def gan_value(real_logits, fake_logits):
  """The minimax value V(G, D) = E[log D(x)] + E[log(1 - D(G(z)))] (Goodfellow et
  al. 2014), estimated on a batch. It is -log 4 when D = 1/2 everywhere."""
  return (jnp.mean(jax.nn.log_sigmoid(real_logits))
          - jnp.mean(jax.nn.softplus(fake_logits)))


def discriminator_loss(real_logits, fake_logits, kind="nonsaturating"):
  """The loss the discriminator minimises.

  ``minimax`` and ``nonsaturating`` (they differ only for the generator): -V, the
  binary cross-entropy with targets real 1, fake 0. ``hinge``: E[relu(1 - real)] +
  E[relu(1 + fake)]. ``lsgan`` (Mao et al. 2017, targets real 1, fake 0, logits used
  as the raw outputs): 0.5 E[(real - 1)^2] + 0.5 E[fake^2].
  """
  _check_gan_kind(kind)
  if kind == "hinge":
    return (jnp.mean(jax.nn.relu(1.0 - real_logits))
            + jnp.mean(jax.nn.relu(1.0 + fake_logits)))
  if kind == "lsgan":
    return 0.5 * jnp.mean((real_logits - 1.0) ** 2) + 0.5 * jnp.mean(fake_logits ** 2)
  return -gan_value(real_logits, fake_logits)


def generator_loss(fake_logits, kind="nonsaturating"):
  """The loss the generator minimises.

  ``minimax``: the saturating E[log(1 - D(G(z)))], whose gradient vanishes when D
  confidently rejects the samples; ``nonsaturating``: -E[log D(G(z))], same fixed
  points, strong gradients there; ``hinge``: -E[fake]; ``lsgan``: 0.5 E[(fake - 1)^2].
  """
  _check_gan_kind(kind)
  if kind == "minimax":
    return -jnp.mean(jax.nn.softplus(fake_logits))
  if kind == "nonsaturating":
    return jnp.mean(jax.nn.softplus(-fake_logits))
  if kind == "hinge":
    return -jnp.mean(fake_logits)
  return 0.5 * jnp.mean((fake_logits - 1.0) ** 2)


def r1_penalty(d_fn, x):
  """R1 (Mescheder et al. 2018): the batch mean of ||grad_x d_fn(x)_i||^2.

  ``d_fn`` maps a batch x to logits of shape (batch,) or (batch, 1). The per-example
  gradients are taken as the gradient of the summed logits, which is exact only when
  the examples do not interact inside ``d_fn`` (no BatchNorm in training mode, no
  minibatch statistics). Returns the unscaled mean; the trainer multiplies by gamma/2.
  """
  grads = jax.grad(lambda v: jnp.sum(d_fn(v)))(x)
  return jnp.mean(jnp.sum(grads.reshape(grads.shape[0], -1) ** 2, axis=-1))


# ----------------------------------------------------------------------------------
# Discrete latents (VQ-VAE, dVAE): the statistics of code use.

def code_counts(codes, num_codes, mask=None):
  """How often each of ``num_codes`` codes occurs in the integer array ``codes``
  (batch, ...), counting only the examples where ``mask`` (batch,) is 1."""
  one_hot = jax.nn.one_hot(codes.reshape(codes.shape[0], -1), num_codes)
  if mask is not None:
    one_hot = one_hot * mask[:, None, None]
  return one_hot.sum((0, 1))


def code_perplexity(counts):
  """exp(entropy) of the code frequencies ``counts`` (K,): K when every code is
  equally used, 1 when one code takes everything."""
  p = counts / jnp.maximum(counts.sum(), 1e-12)
  return jnp.exp(-jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0)))


def code_used_fraction(counts):
  """The fraction of the K codes that occur at least once in ``counts`` (K,)."""
  return jnp.mean((counts > 0).astype(jnp.float32))


# ----------------------------------------------------------------------------------
# Contrastive learning (CLIP).

def equal_rows(tokens):
  """(N, N) bool: rows i and j of ``tokens`` (N, L) are the same sequence."""
  return jnp.all(tokens[:, None, :] == tokens[None, :, :], axis=-1)


def contrastive_loss(logits, positives=None, text_negatives=None):
  """The symmetric InfoNCE loss of CLIP (Radford et al. 2021) per example, (N,):
  ``logits`` (N, N) scores image i against text j; the loss of example i is the mean
  of its image-to-texts loss (row i) and its text-to-images loss (column i).

  ``positives`` (N, N) bool, symmetric with a true diagonal, marks the pairs that
  match (equal captions: ``equal_rows(tokens)``), and each side's loss is
  -log of the softmax probability of its positives together (MIL-NCE, Miech et al.
  2020): logsumexp of the row minus logsumexp of its positives. Its gradient lowers
  no positive's logit, so two examples with the same caption are never pushed apart.
  ``None``: the diagonal alone, CLIP's one-hot target (the cross-entropy).

  ``text_negatives`` (N, M): image i against M extra captions that no image matches
  (NegCLIP's hard negatives, Yuksekgonul et al. 2023), added to the image-to-text
  side's softmax only; -inf drops one.
  Under ``jit`` with the batch sharded over a mesh the logits are the global batch's.
  """
  if positives is None:
    positives = jnp.eye(logits.shape[0], dtype=bool)

  def one_side(l, extra=None):
    everything = l if extra is None else jnp.concatenate([l, extra], -1)
    return (jax.nn.logsumexp(everything, axis=-1)
            - jax.nn.logsumexp(jnp.where(positives, l, -jnp.inf), axis=-1))

  return 0.5 * (one_side(logits, text_negatives) + one_side(logits.T))
