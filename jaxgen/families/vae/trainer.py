"""The VAE family: ELBO training, test-set ELBO and importance-weighted NLL, pictures.

Likelihoods (``config.model.likelihood``): ``bernoulli`` for binarised data,
``gaussian`` (per-pixel mean and log-scale) and ``logistic`` (discretised logistic,
256 levels) for grey-level data.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgen import losses, viz
from jaxgen.errors import ConfigError
from jaxgen.families.vae import networks as vae_models
from jaxgen.families.base import OneOptimizerTrainer
from jaxgen.stages import VectorAutoencoder

LIKELIHOODS = ("bernoulli", "gaussian", "logistic")
MIN_LOG_SCALE = -7.0  # as PixelCNN++: keeps the logistic and Gaussian scales sane


class VAETrainer(OneOptimizerTrainer, VectorAutoencoder):

  def __init__(self, config, spec, stages=None):
    super().__init__(config, spec, stages)
    m, d = config.model, config.data
    self.likelihood = m.likelihood
    self.scale = d.scale
    _validate(m, d)
    h, w, c = self.example_shape
    self.num_dims = h * w * c
    out_channels = c if self.likelihood == "bernoulli" else 2 * c
    self.encoder, self.decoder = vae_models.make(
        m.arch, tuple(m.hidden), m.latent_dim, (h, w, out_channels))
    self.beta = (optax.linear_schedule(0.0, 1.0, m.kl_warmup_steps)
                 if m.kl_warmup_steps else (lambda step: 1.0))
    # bits/dim is a bound on the discrete data's NLL only where the likelihood is
    # discrete, or continuous on dequantised data (then the bin width enters).
    low, high = (-1.0, 1.0) if self.scale == "symmetric" else (0.0, 1.0)
    self.range = (low, high)
    self.log_bin_width = (math.log((high - low) / 256)
                          if self.likelihood == "gaussian" else 0.0)
    self.has_bits_per_dim = self.likelihood != "gaussian" or bool(d.dequantize)
    self.latent_spec = jax.ShapeDtypeStruct((m.latent_dim,), jnp.float32)

  # --- networks -------------------------------------------------------------------
  def networks(self):
    x = jnp.zeros((1, *self.example_shape))
    z = jnp.zeros((1, self.config.model.latent_dim))
    return {"encoder": (self.encoder, (x,), {}), "decoder": (self.decoder, (z,), {})}

  def _encoder(self, params, x):
    """(mean, log-variance) of q(z | x), x in the data's range."""
    return self.policy.apply(self.encoder, {"params": params["encoder"]}, x)

  def _decoder(self, params, z):
    """The decoder's output (logits or location and log-scale) at z."""
    return self.policy.apply(self.decoder, {"params": params["decoder"]}, z)

  # --- the autoencoder stage protocol (images in [0, 1]) ------------------------------
  def encode(self, params, images):
    """The posterior means of q(z | x)."""
    low, high = self.range
    return self._encoder(params, low + (high - low) * images)[0]

  def decode(self, params, latents):
    """The decoder's mean images (Bernoulli: probabilities) in [0, 1]."""
    low, high = self.range
    return (self.mean_image(self._decoder(params, latents)) - low) / (high - low)

  def log_likelihood(self, x, out):
    """log p(x | z) per example from the decoder output ``out``."""
    if self.likelihood == "bernoulli":
      low, high = self.range
      return losses.bernoulli_log_prob((x - low) / (high - low), out)
    loc, log_scale = jnp.split(out, 2, axis=-1)
    log_scale = jnp.maximum(log_scale, MIN_LOG_SCALE)
    if self.likelihood == "gaussian":
      return losses.gaussian_log_prob(x, loc, 2 * log_scale)
    return losses.discretized_logistic_log_prob(x, loc, log_scale, *self.range)

  def mean_image(self, out):
    """The decoder's mean image (Bernoulli: probabilities), in the data's range."""
    if self.likelihood == "bernoulli":
      low, high = self.range
      return low + (high - low) * jax.nn.sigmoid(out)
    return jnp.clip(jnp.split(out, 2, axis=-1)[0], *self.range)

  # --- training -------------------------------------------------------------------
  def _terms(self, params, x, rng):
    mean, logvar = self._encoder(params, x)
    z = vae_models.reparameterize(rng, mean, logvar)
    ll = self.log_likelihood(x, self._decoder(params, z))
    return ll, losses.gaussian_kl(mean, logvar)

  def step_inputs(self, step):
    return {"beta": self.beta(step)}  # the KL weight (warm-up)

  def loss(self, params, batch, rng, frozen=None):
    """The negative ELBO with the KL weighted by ``beta``, mean over the batch."""
    beta = batch["beta"]
    ll, kl = self._terms(params, batch["image"], rng)
    elbo, loss = losses.elbo(ll, kl, beta)
    metrics = {"elbo": elbo.mean(), "recon": -ll.mean(), "kl": kl.mean(),
               "beta": jnp.asarray(beta, jnp.float32)}
    if self.has_bits_per_dim:
      metrics["bits_per_dim"] = losses.bits_per_dim(-elbo.mean(), self.num_dims,
                                                    self.log_bin_width)
    return loss.mean(), metrics

  # --- evaluation -----------------------------------------------------------------
  def eval_step(self, state, batch, rng, frozen=None):
    """Masked sums of the ELBO terms and of the K-sample IWAE bound.

    The K importance samples are drawn in chunks (``eval.iw_chunk``) under
    ``lax.map`` so that memory stays bounded for K in the thousands.
    """
    params, x, mask = state.ema_params, batch["image"], batch["mask"]
    k, chunk = self.config.eval.iw_samples, self.config.eval.iw_chunk
    chunk = min(chunk, k)
    if k % chunk:
      raise ConfigError(f"config.eval.iw_samples={k} must be a multiple of "
                        f"config.eval.iw_chunk={chunk}.")
    mean, logvar = self._encoder(params, x)
    k1, k2 = jax.random.split(rng)
    z1 = vae_models.reparameterize(k1, mean, logvar)
    ll1 = self.log_likelihood(x, self._decoder(params, z1))
    kl = losses.gaussian_kl(mean, logvar)

    def log_weights(key):
      z = vae_models.reparameterize(key, mean, logvar, chunk)  # (chunk, B, L)
      flat = z.reshape(-1, z.shape[-1])
      xs = jnp.broadcast_to(x, (chunk, *x.shape)).reshape(-1, *x.shape[1:])
      ll = self.log_likelihood(xs, self._decoder(params, flat)).reshape(chunk, -1)
      log_q = jax.vmap(lambda zz: losses.gaussian_log_prob(zz, mean, logvar))(z)
      log_p = jax.vmap(losses.standard_normal_log_prob)(z)
      return ll + log_p - log_q  # (chunk, B)

    lw = jax.lax.map(log_weights, jax.random.split(k2, k // chunk))
    lw = jnp.moveaxis(lw.reshape(k, -1), 0, -1)  # (B, K)
    iwae = losses.iwae_bound(lw)
    return {"count": mask.sum(), "elbo_nats": ((ll1 - kl) * mask).sum(),
            "recon_nats": (-ll1 * mask).sum(), "kl_nats": (kl * mask).sum(),
            "nll_iwae_nats": (-iwae * mask).sum()}

  def finalize_eval(self, sums):
    out = {**super().finalize_eval(sums),
           "iw_samples": int(self.config.eval.iw_samples)}
    if self.has_bits_per_dim:
      for key, nll in (("elbo", -out["elbo_nats"]), ("nll_iwae", out["nll_iwae_nats"])):
        out[f"{key}_bits_per_dim"] = float(
            losses.bits_per_dim(nll, self.num_dims, self.log_bin_width))
    return out

  # --- pictures -------------------------------------------------------------------
  def prior_sample(self, params, rng, num: int):
    """Decoder means for ``num`` latents from the prior, in the data's range."""
    z = jax.random.normal(rng, (num, self.config.model.latent_dim))
    return self.mean_image(self._decoder(params, z))

  def sample(self, params, rng, num: int, inputs=None, frozen=None):
    low, high = self.range
    return (self.prior_sample(params, rng, num) - low) / (high - low)

  def reconstruct(self, params, x):
    return self.mean_image(self._decoder(params, self._encoder(params, x)[0]))

  def interpolate(self, params, x, steps: int):
    """Decoder means along the straight line between the posterior means of x[0]
    and x[1]."""
    mu = self._encoder(params, x[:2])[0]
    t = jnp.linspace(0.0, 1.0, steps)[:, None]
    return self.mean_image(self._decoder(params, (1 - t) * mu[0] + t * mu[1]))

  def manifold(self, params, size: int):
    """Decoder means over a grid of latents at standard-normal quantiles (2-D z)."""
    from scipy.stats import norm
    q = norm.ppf(np.linspace(0.05, 0.95, size)).astype(np.float32)
    zz = np.stack(np.meshgrid(q, -q[::-1]), -1)[::-1].reshape(-1, 2)
    return self.mean_image(self._decoder(params, jnp.asarray(zz)))

  def visualize(self, state, rng, batch, frozen=None):
    params, n = state.ema_params, self.config.train.num_samples
    u8 = lambda a: viz.to_uint8(np.asarray(a), self.scale)
    x = batch["image"][:16]
    recon = np.asarray(self.compiled(self.reconstruct)(params, x))
    pairs = np.stack([np.asarray(x), recon], 1).reshape(-1, *x.shape[1:])
    samples = self.compiled(self.prior_sample, static_argnames="num")(params, rng, n)
    path = self.compiled(self.interpolate, static_argnames="steps")(params, x, 10)
    out = {"samples": viz.grid(u8(samples)),
           "reconstructions": viz.grid(u8(pairs), rows=4),
           "interpolation": viz.grid(u8(path), rows=1)}
    if self.config.model.latent_dim == 2:
      grid = self.compiled(self.manifold, static_argnames="size")(params, 20)
      out["manifold"] = viz.grid(u8(grid), rows=20, pad=0)
    return out


def _validate(m, d):
  if m.likelihood not in LIKELIHOODS:
    raise ConfigError(f"config.model.likelihood={m.likelihood!r}; use one of "
                      f"{LIKELIHOODS}.")
  binary = bool(d.binarize)
  if m.likelihood == "bernoulli" and not binary:
    raise ConfigError("A Bernoulli decoder needs binary data: set "
                      "--config.data.binarize=dynamic (or fixed, threshold), or use "
                      "--config.model.likelihood=gaussian|logistic for grey levels.")
  if m.likelihood != "bernoulli" and binary:
    raise ConfigError(f"config.model.likelihood={m.likelihood!r} is for grey-level "
                      f"data but config.data.binarize={d.binarize!r}; use bernoulli.")
  if m.likelihood == "logistic" and d.dequantize:
    raise ConfigError("The discretised logistic decoder models the 256 grey levels "
                      "themselves: set --config.data.dequantize=False.")


Trainer = VAETrainer
