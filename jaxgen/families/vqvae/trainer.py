"""The VQ-VAE family (van den Oord et al. 2017): a discrete-latent autoencoder stage.

Training: the encoder's grid of D-dim vectors z_e is replaced by its nearest codes z_q
(K codes), the decoder reconstructs from z_q with the gradient copied straight through
to z_e, and the loss is (as sonnet's example)

  mean_pixels (x - x_rec)^2 / data_variance + ||sg[z_e] - z_q||^2 + beta ||z_e - sg[z_q]||^2

with the squared norms averaged over the latent elements. ``model.codebook`` chooses
how the codes learn: ``loss`` (the codebook term above, through the optimiser) or
``ema`` (sonnet's ``VectorQuantizerEMA``: exponential moving averages, decay
``model.ema_decay``, of the code counts and of the sums of the encoder outputs
assigned to each code, zero-debiased as sonnet 2's ``ExponentialMovingAverage``; the
counts are Laplace-smoothed with ``model.ema_epsilon`` before the division; the
codebook term is dropped). The EMA statistics are ``TrainState.extra``; the codebook
itself stays in ``params["quantizer"]`` (the optimiser gets a zero gradient for it and
the EMA value overwrites it after each step), so ``stage_params`` carry it either way.

Dead codes: with ``model.restart_after = n > 0``, a code that no encoder output of the
last n training batches chose is restarted at a random encoder output of the current
batch (its EMA statistics reset to that one vector).

Data: images in [0, 1]; the networks see x - 0.5 (sonnet's [-0.5, 0.5]).

Evaluation (``--mode=eval``, ``eval.json``): the test split's reconstruction MSE, PSNR
(the mean over images of 10 log10(1 / MSE)), SSIM, the fraction of the K codes used
and their perplexity over the whole split, and bits/dim. The VQ-VAE has no
likelihood of its own; as in the paper's comparison with VAEs, its ELBO is taken
with the uniform prior over codes during this stage (q(z|x) is one-hot, so
KL(q || uniform) = h w log K nats per image) and a Gaussian decoder around the
reconstruction whose single variance is the split's MSE (the maximum-likelihood
choice), on pixels with bins of width 1/256:

  bits/dim = [ h w log K + D_x (0.5 log(2 pi e MSE) + log 256) ] / (D_x log 2),

with D_x = H W C. It is an upper bound on the discrete data's NLL up to the
continuous approximation of the bin integral (good while sqrt(MSE) >> 1/256). The
paper's 4.67 bits/dim on CIFAR-10 is the same kind of number (uniform-prior ELBO of a
VQ-VAE, K = 512, 8x8 latents: the latent part is 64 * 9 / 3072 = 0.19 bits/dim); the
paper does not say which decoder likelihood it used, so the two agree in kind, not to
the digit. A learned prior over the codes (the PixelCNN prior family) replaces the
h w log K term by the prior's NLL of the codes.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgen import losses
from jaxgen.errors import ConfigError, StageError
from jaxgen.metrics import psnr as psnr_lib
from jaxgen.metrics import ssim as ssim_lib
from jaxgen.families.vqvae import networks as vq
from jaxgen.families.vqvae.losses import vq_codebook_loss, vq_commitment_loss
from jaxgen.models import quantizer
from jaxgen.families.base import OneOptimizerTrainer, optimizer_step
from jaxgen.families.discrete_autoencoder import DiscreteAutoencoderPictures
from jaxgen.stages import CodeAutoencoder, VectorAutoencoder

CODEBOOKS = ("ema", "loss")


class VQVAETrainer(DiscreteAutoencoderPictures, OneOptimizerTrainer,
                   CodeAutoencoder, VectorAutoencoder):
  # The encoder and decoder go through the policy; the codebook distances, the
  # quantisation and the losses stay float32.

  def __init__(self, config, spec, stages=None):
    super().__init__(config, spec, stages)
    m = config.model
    h, w, c = self.example_shape
    if m.codebook not in CODEBOOKS:
      raise ConfigError(f"config.model.codebook={m.codebook!r}; use one of {CODEBOOKS}.")
    factor = 2 ** m.num_downsamples
    if h % factor or w % factor:
      raise ConfigError(f"The images are {h}x{w}, which {m.num_downsamples} stride-2 "
                        f"downsamplings do not divide: set config.data.resize to a "
                        f"multiple of {factor} or change config.model.num_downsamples.")
    for name in ("num_codes", "code_dim"):
      if m[name] < 1:
        raise ConfigError(f"config.model.{name}={m[name]}: the codebook needs at least "
                          f"1 (the paper: num_codes=512, code_dim=64).")
    if not 0.0 <= m.ema_decay < 1.0:
      raise ConfigError(f"config.model.ema_decay={m.ema_decay} must be in [0, 1).")
    if m.restart_after < 0:
      raise ConfigError(f"config.model.restart_after={m.restart_after}: use 0 (no "
                        f"restarts) or the number of unused steps after which a code "
                        f"is restarted.")
    self.num_codes, self.code_dim = int(m.num_codes), int(m.code_dim)
    self.grid = (h // factor, w // factor)
    self.num_dims = h * w * c
    self.latent_spec = jax.ShapeDtypeStruct(self.grid, jnp.int32)
    self.encoder = vq.Encoder(m.num_hiddens, m.num_residual_layers,
                              m.num_residual_hiddens, m.code_dim, m.num_downsamples)
    self.quantizer = quantizer.Codebook(m.num_codes, m.code_dim)
    self.decoder = vq.Decoder(m.num_hiddens, m.num_residual_layers,
                              m.num_residual_hiddens, c, m.num_downsamples)

  # --- networks -------------------------------------------------------------------
  def networks(self):
    x = jnp.zeros((1, *self.example_shape))
    z = jnp.zeros((1, *self.grid, self.code_dim))
    return {"encoder": (self.encoder, (x,), {}), "quantizer": (self.quantizer, (), {}),
            "decoder": (self.decoder, (z,), {})}

  def initial_extra(self):
    k = self.num_codes
    extra = {"unused_steps": jnp.zeros((k,), jnp.int32)}
    if self.config.model.codebook == "ema":
      # sonnet 2's ExponentialMovingAverage: hidden values start at zero and the
      # average is hidden / (1 - decay^t) after t updates.
      extra.update(ema_count=jnp.zeros((k,), jnp.float32),
                   ema_sum=jnp.zeros((k, self.code_dim), jnp.float32),
                   ema_updates=jnp.zeros((), jnp.int32))
    return extra

  def encode_vectors(self, params, images):
    return self.policy.apply(self.encoder, {"params": params["encoder"]}, images - 0.5)

  def _decode_vectors(self, params, z):
    return self.policy.apply(self.decoder, {"params": params["decoder"]}, z) + 0.5

  def _codebook(self, params):
    codebook = params["quantizer"]["codebook"]
    if codebook.shape != (self.num_codes, self.code_dim):
      raise ConfigError(
          f"The parameters hold a codebook of {codebook.shape[0]} codes of dimension "
          f"{codebook.shape[1]}, but config.model.num_codes={self.num_codes} and "
          f"config.model.code_dim={self.code_dim}: the checkpoint was trained with "
          f"other K or D. Use the config of the run that wrote it (its config.json), "
          f"or set --config.model.num_codes={codebook.shape[0]} "
          f"--config.model.code_dim={codebook.shape[1]}.")
    return codebook

  def _check_images(self, images):
    if tuple(images.shape[1:]) != self.example_shape:
      h, w, c = self.example_shape
      raise StageError(
          f"This VQ-VAE's encoder was trained on {h}x{w}x{c} images, got images of "
          f"shape {tuple(images.shape[1:])}: give the stage images of its own size "
          f"(resize them, e.g. with config.data.resize=({h}, {w}), and match the "
          f"channels), or train a VQ-VAE on images of this size.")

  # --- the autoencoder stage protocol (images in [0, 1], integer codes) --------------
  def encode(self, params, images):
    """The index (N, h, w) of the nearest code to each encoder output."""
    self._check_images(images)
    codebook = self._codebook(params)  # checked before the encoder sees the params
    return quantizer.nearest(self.encode_vectors(params, images), codebook)

  def decode(self, params, codes):
    """Reconstructions in [0, 1] (N, H, W, C) from integer codes (N, h, w)."""
    if tuple(codes.shape[1:]) != self.grid:
      raise StageError(f"This VQ-VAE decodes code grids of shape {self.grid}, got "
                       f"{tuple(codes.shape[1:])}.")
    z = quantizer.lookup(codes, self._codebook(params))
    return jnp.clip(self._decode_vectors(params, z), 0.0, 1.0)

  # --- continuous latents, for a latent diffusion (as LDM's VQ first stages) ---------
  def encode_latents(self, params, images):
    """The encoder's vectors (N, h, w, D) before quantisation."""
    self._check_images(images)
    return self.encode_vectors(params, images)

  def decode_latents(self, params, z):
    """Vectors (N, h, w, D) quantised to their nearest codes, then decoded."""
    codebook = self._codebook(params)
    codes = quantizer.nearest(z, codebook)
    return self.decode(params, codes)

  def stage_params(self, state):
    return state.ema_params

  # --- training -------------------------------------------------------------------
  def _forward(self, params, x):
    """(reconstruction, z_e, z_q, codes) with the straight-through gradient."""
    z_e = self.encode_vectors(params, x)
    codebook = self._codebook(params)
    codes = quantizer.nearest(jax.lax.stop_gradient(z_e), jax.lax.stop_gradient(codebook))
    z_q = quantizer.lookup(codes, codebook)
    recon = self._decode_vectors(params, quantizer.straight_through(z_e, z_q))
    return recon, z_e, z_q, codes

  def objective(self, params, x):
    """(loss, (its terms' means, z_e, codes)) on images ``x``."""
    m = self.config.model
    latent_elems = self.grid[0] * self.grid[1] * self.code_dim
    recon, z_e, z_q, codes = self._forward(params, x)
    mse = losses.mse_per_example(x, recon)
    commit = vq_commitment_loss(z_e, z_q) / latent_elems
    codebook = vq_codebook_loss(z_e, z_q) / latent_elems
    loss = mse / m.data_variance + m.beta * commit + (
        codebook if m.codebook == "loss" else 0.0)
    terms = {"recon_mse": mse.mean(), "commitment": commit.mean(),
             "codebook_loss": codebook.mean()}
    return loss.mean(), (terms, z_e, codes)

  def loss(self, params, batch, rng, frozen=None):
    """The objective of one batch; the codebook's own update (EMA, restarts) is
    ``train_step``'s, after the optimiser step."""
    loss, (terms, _, _) = self.objective(params, batch["image"])
    return loss, terms

  def train_step(self, state, batch, rng, frozen=None):
    m = self.config.model
    use_loss = m.codebook == "loss"
    (loss, (terms, z_e, codes)), grads = jax.value_and_grad(
        self.objective, has_aux=True)(state.params, batch["image"])
    params, opt_state = optimizer_step(self.tx, grads, state.opt_state, state.params)
    counts = losses.code_counts(codes, self.num_codes)
    flat = jax.lax.stop_gradient(z_e).reshape(-1, self.code_dim)
    codebook, extra = params["quantizer"]["codebook"], dict(state.extra)
    if not use_loss:
      codebook, extra = ema_update(extra, codes.reshape(-1), flat, m.ema_decay,
                                   m.ema_epsilon, self.num_codes)
    codebook, extra, restarted = restart_dead_codes(
        codebook, extra, counts, flat, rng, m.restart_after, m.ema_decay)
    params = {**params, "quantizer": {"codebook": codebook}}
    ema_decay = self.config.optim.ema_decay
    ema = optax.incremental_update(params, state.ema_params, 1.0 - ema_decay)
    state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                          ema_params=ema, extra=extra)
    metrics = {"loss": loss, **terms, "perplexity": losses.code_perplexity(counts),
               "used_fraction": losses.code_used_fraction(counts),
               "restarted_codes": restarted.astype(jnp.float32),
               "grad_norm": optax.tree.norm(grads)}
    return state, metrics

  # --- evaluation -----------------------------------------------------------------
  def eval_step(self, state, batch, rng, frozen=None):
    params, x, mask = self.stage_params(state), batch["image"], batch["mask"]
    codes = self.encode(params, x)
    recon = self.decode(params, codes)
    z_e = self.encode_vectors(params, x)
    z_q = quantizer.lookup(codes, self._codebook(params))
    mse = losses.mse_per_example(x, recon)
    psnr = psnr_lib.psnr(mse)
    ssim = ssim_lib.ssim(recon, x, 1.0)
    latent_elems = self.grid[0] * self.grid[1] * self.code_dim
    commit = vq_commitment_loss(z_e, z_q) / latent_elems
    return {"count": mask.sum(), "recon_mse": (mse * mask).sum(),
            "psnr": (psnr * mask).sum(),
            "ssim": (ssim * mask).sum(), "commitment": (commit * mask).sum(),
            "code_counts": losses.code_counts(codes, self.num_codes, mask)}

  def finalize_eval(self, sums):
    sums = dict(sums)
    counts = jnp.asarray(sums.pop("code_counts"))
    out = super().finalize_eval(sums)
    latent_nats = self.grid[0] * self.grid[1] * math.log(self.num_codes)
    recon_nats = self.num_dims * (0.5 * math.log(2 * math.pi * math.e *
                                                 max(out["recon_mse"], 1e-12)))
    bin_width = math.log(1.0 / 256)
    return {**out, "codebook_used_fraction": float(losses.code_used_fraction(counts)),
            "codebook_used": int((np.asarray(counts) > 0).sum()),
            "codebook_perplexity": float(losses.code_perplexity(counts)),
            "num_codes": self.num_codes,
            "bits_per_dim": float(losses.bits_per_dim(latent_nats + recon_nats,
                                                      self.num_dims, bin_width)),
            "latent_bits_per_dim": latent_nats / (self.num_dims * math.log(2))}


def ema_update(extra, codes, flat, decay, epsilon, num_codes):
  """Sonnet 2's VectorQuantizerEMA step: (new codebook (K, D), new extra).

  ``codes`` (M,) are the assignments of the encoder outputs ``flat`` (M, D). The
  moving averages of the per-code counts and sums are zero-debiased; the counts are
  Laplace-smoothed, n_k <- (n_k + eps) / (n + K eps) n, before the codebook
  e_k = sum_k / n_k."""
  one_hot = jax.nn.one_hot(codes, num_codes, dtype=flat.dtype)
  count = one_hot.sum(0)
  total = jnp.matmul(one_hot.T, flat, precision=jax.lax.Precision.HIGHEST)
  hidden_count = extra["ema_count"] - (extra["ema_count"] - count) * (1 - decay)
  hidden_sum = extra["ema_sum"] - (extra["ema_sum"] - total) * (1 - decay)
  t = extra["ema_updates"] + 1
  debias = 1.0 - decay ** t.astype(jnp.float32)
  avg_count, avg_sum = hidden_count / debias, hidden_sum / debias
  n = avg_count.sum()
  smoothed = (avg_count + epsilon) / (n + num_codes * epsilon) * n
  codebook = avg_sum / smoothed[:, None]
  return codebook, {**extra, "ema_count": hidden_count, "ema_sum": hidden_sum,
                    "ema_updates": t}


def restart_dead_codes(codebook, extra, counts, flat, rng, restart_after, decay):
  """Count each code's steps without use; with ``restart_after`` > 0, move the codes
  unused that long onto random rows of ``flat`` (this batch's encoder outputs).
  Returns (codebook, extra, number restarted)."""
  unused = jnp.where(counts > 0, 0, extra["unused_steps"] + 1)
  if not restart_after:
    return codebook, {**extra, "unused_steps": unused}, jnp.zeros((), jnp.int32)
  dead = unused >= restart_after
  picks = flat[jax.random.randint(rng, (codebook.shape[0],), 0, flat.shape[0])]
  codebook = jnp.where(dead[:, None], picks, codebook)
  extra = {**extra, "unused_steps": jnp.where(dead, 0, unused)}
  if "ema_count" in extra:
    # The restarted code's averages become that one vector, counted once.
    debias = 1.0 - decay ** extra["ema_updates"].astype(jnp.float32)
    extra["ema_count"] = jnp.where(dead, debias, extra["ema_count"])
    extra["ema_sum"] = jnp.where(dead[:, None], picks * debias, extra["ema_sum"])
  return codebook, extra, dead.sum()


Trainer = VQVAETrainer
