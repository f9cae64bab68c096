"""The DALL-E discrete VAE family (Ramesh et al. 2021): a token-grid autoencoder stage.

Training maximises the ELBO with a uniform prior over the K codes of each grid cell,
the KL term weighted by ``kl_weight`` (the paper raises it to 6.6 to spread the use
of the codebook), through the Gumbel-softmax relaxation of the categorical posterior
q(z | x) = softmax(encoder logits) at temperature ``temperature`` (the paper anneals
it from 1 to 1/16). The decoder sees the relaxed one-hot codes and outputs, per pixel
channel, the location and log-scale of the logit-Laplace likelihood of the pixels
mapped into (eps, 1 - eps) (dall_e/utils.py ``map_pixels``, eps = 0.1). Per example

  loss = [ -log p(map(x) | z~) + kl_weight(step) KL(q(z | x) || uniform) ] / (H W C).

``config.model.min_scale`` (0: none, as the paper) floors the likelihood's scale b.
On digits most pixels are exactly 0, where the density grows without bound as b
shrinks: unfloored, the background's b keeps falling, its 1/b gradients swamp the
ink's, and the decoder stops reading the codes (docs/results.md, dvae_mnist rows).

The two schedules live in the config (``config.schedules.temperature`` and
``config.schedules.kl_weight``, beside ``config.optim``'s learning-rate schedule) and
are optax schedules of the step, evaluated inside the compiled step. A temperature
schedule must stay positive over the run (the relaxation divides by it).

The stage protocol: ``encode`` gives the argmax codes (N, h, w), ``decode`` the mean
reconstruction unmap(sigmoid(location)) of their one-hot vectors.

Evaluation (``eval.json``): reconstruction MSE, PSNR and SSIM of decode(encode(x)) on
the test split; the fraction of codes used and their perplexity (argmax codes, whole
split); and bits/dim, the negative ELBO with the uniform prior (KL weight 1, one hard
sample z ~ q(z | x) for the reconstruction term) of the [0, 1] pixels: the mapped
density's log-Jacobian H W C log(1 - 2 eps) enters, and bins of width 1/256 turn the
density into a bound on the 256-level data (Theis et al. 2016).
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
from jaxgen.families.dvae import networks as dvae_models
from jaxgen.families.dvae.losses import (categorical_kl_to_uniform,
                                         logit_laplace_log_prob, map_pixels,
                                         unmap_pixels)
from jaxgen.families.base import OneOptimizerTrainer
from jaxgen.families.discrete_autoencoder import DiscreteAutoencoderPictures
from jaxgen.stages import CodeAutoencoder

SCHEDULE_KINDS = ("constant", "linear", "cosine", "exponential")


def make_schedule(cfg, what: str) -> optax.Schedule:
  """An optax schedule from ``config.schedules.<what>``: ``kind`` constant (``init``),
  linear or cosine from ``init`` to ``end`` over ``steps`` then ``end``, or
  exponential (geometric) from ``init`` to ``end`` over ``steps`` then ``end``."""
  kind, init, end, steps = cfg.kind, float(cfg.init), float(cfg.end), int(cfg.steps)
  if kind not in SCHEDULE_KINDS:
    raise ConfigError(f"config.schedules.{what}.kind={kind!r}; use one of "
                      f"{SCHEDULE_KINDS}.")
  if kind == "constant":
    return optax.constant_schedule(init)
  if steps <= 0:
    raise ConfigError(f"config.schedules.{what}.steps={steps} must be positive for a "
                      f"{kind} schedule.")
  if kind == "linear":
    return optax.linear_schedule(init, end, steps)
  if init == 0.0:
    raise ConfigError(f"config.schedules.{what}: a {kind} schedule cannot start at 0; "
                      f"use kind='linear' to rise from 0.")
  if kind == "cosine":
    return optax.cosine_decay_schedule(init, steps, alpha=end / init)
  if init <= 0 or end <= 0:
    raise ConfigError(f"config.schedules.{what}: an exponential schedule needs positive "
                      f"init and end, got {init} and {end}.")
  return optax.exponential_decay(init, steps, end / init, end_value=end,
                                 transition_begin=0)


def check_positive(schedule, num_steps: int, what: str):
  """Refuse a schedule that reaches zero (or below) at any step 0..num_steps."""
  steps = np.arange(num_steps + 1)
  values = np.asarray(jax.vmap(schedule)(jnp.asarray(steps)))
  bad = np.flatnonzero(~(values > 0))
  if bad.size:
    raise ConfigError(
        f"config.schedules.{what} reaches {values[bad[0]]:.3g} at step {bad[0]} of "
        f"{num_steps}: the Gumbel-softmax relaxation divides the logits by the "
        f"temperature, so it must stay positive. End it at a positive value (the "
        f"paper anneals to 1/16: --config.schedules.{what}.end=0.0625).")


class DVAETrainer(DiscreteAutoencoderPictures, OneOptimizerTrainer,
                  CodeAutoencoder):

  def __init__(self, config, spec, stages=None):
    super().__init__(config, spec, stages)
    m = config.model
    h, w, c = self.example_shape
    factor = dvae_models.downsampling(m.group_count)
    if h % factor or w % factor:
      raise ConfigError(f"The images are {h}x{w}, which the encoder's "
                        f"{m.group_count - 1} 2x2 max-pools do not divide: set "
                        f"config.data.resize to a multiple of {factor} or change "
                        f"config.model.group_count.")
    if m.n_hid % 4:
      raise ConfigError(f"config.model.n_hid={m.n_hid} must be a multiple of 4 (the "
                        f"blocks' bottleneck is n_out / 4).")
    self.eps = float(m.logit_laplace_eps)
    if not 0.0 < self.eps < 0.5:
      raise ConfigError(f"config.model.logit_laplace_eps={self.eps} must be in (0, 0.5).")
    min_scale = float(m.get("min_scale", 0.0))  # runs before the field: no floor
    if not min_scale >= 0.0:
      raise ConfigError(f"config.model.min_scale={min_scale} must be >= 0 (0: the "
                        f"paper's unbounded scale; the MNIST default is 0.1).")
    self.min_log_scale = math.log(min_scale) if min_scale > 0 else None
    self.num_codes = int(m.vocab_size)
    self.grid = (h // factor, w // factor)
    self.num_dims = h * w * c
    self.latent_spec = jax.ShapeDtypeStruct(self.grid, jnp.int32)
    self.encoder = dvae_models.Encoder(m.group_count, m.n_hid, m.n_blk_per_group,
                                       m.vocab_size)
    self.decoder = dvae_models.Decoder(m.group_count, m.n_init, m.n_hid,
                                       m.n_blk_per_group, c)
    s = config.schedules
    self.temperature = make_schedule(s.temperature, "temperature")
    check_positive(self.temperature, config.train.num_steps, "temperature")
    self.kl_weight = make_schedule(s.kl_weight, "kl_weight")

  # --- networks -------------------------------------------------------------------
  def networks(self):
    x = jnp.zeros((1, *self.example_shape))
    z = jnp.zeros((1, *self.grid, self.num_codes))
    return {"encoder": (self.encoder, (x,), {}), "decoder": (self.decoder, (z,), {})}

  def logits(self, params, images):
    """The encoder's code logits (N, h, w, K) of images in [0, 1]."""
    return self.policy.apply(self.encoder, {"params": params["encoder"]},
                             map_pixels(images, self.eps))

  def decoder_stats(self, params, z):
    """(location, log-scale), each (N, H, W, C), of the logit-Laplace likelihood; the
    log-scale floored at log(``config.model.min_scale``) when that is positive."""
    out = self.policy.apply(self.decoder, {"params": params["decoder"]}, z)
    loc, log_scale = jnp.split(out, 2, axis=-1)
    if self.min_log_scale is not None:
      log_scale = jnp.maximum(log_scale, self.min_log_scale)
    return loc, log_scale

  def _check_images(self, images):
    if tuple(images.shape[1:]) != self.example_shape:
      h, w, c = self.example_shape
      raise StageError(
          f"This dVAE's encoder was trained on {h}x{w}x{c} images, got images of "
          f"shape {tuple(images.shape[1:])}: give the stage images of its own size "
          f"(resize them, e.g. with config.data.resize=({h}, {w}), and match the "
          f"channels), or train a dVAE on images of this size.")

  # --- the autoencoder stage protocol ---------------------------------------------
  def encode(self, params, images):
    """The argmax code (N, h, w) of each grid cell."""
    self._check_images(images)
    return jnp.argmax(self.logits(params, images), -1).astype(jnp.int32)

  def decode(self, params, codes):
    """The mean reconstruction unmap(sigmoid(location)) in [0, 1] of integer codes."""
    if tuple(codes.shape[1:]) != self.grid:
      raise StageError(f"This dVAE decodes code grids of shape {self.grid}, got "
                       f"{tuple(codes.shape[1:])}.")
    loc, _ = self.decoder_stats(params, jax.nn.one_hot(codes, self.num_codes))
    return unmap_pixels(jax.nn.sigmoid(loc), self.eps)

  # --- training -------------------------------------------------------------------
  def step_inputs(self, step):
    return {"temperature": self.temperature(step), "kl_weight": self.kl_weight(step)}

  def loss(self, params, batch, rng, frozen=None):
    """The negative ELBO (the KL weighted by ``kl_weight``) per dimension through the
    Gumbel-softmax relaxation at ``temperature``, mean over the batch."""
    x, tau, beta = batch["image"], batch["temperature"], batch["kl_weight"]
    target = map_pixels(x, self.eps)
    logits = self.logits(params, x)
    g = jax.random.gumbel(rng, logits.shape, logits.dtype)
    z = jax.nn.softmax((logits + g) / tau, axis=-1)
    loc, log_scale = self.decoder_stats(params, z)
    nll = -logit_laplace_log_prob(target, loc, log_scale)
    kl = categorical_kl_to_uniform(logits)
    loss = ((nll + beta * kl) / self.num_dims).mean()
    mean = unmap_pixels(jax.nn.sigmoid(loc), self.eps)
    counts = losses.code_counts(jnp.argmax(logits, -1), self.num_codes)
    return loss, {"recon_nats": nll.mean(), "kl": kl.mean(),
                  "temperature": jnp.asarray(tau, jnp.float32),
                  "kl_weight": jnp.asarray(beta, jnp.float32),
                  "recon_mse": ((mean - x) ** 2).mean(),
                  "perplexity": losses.code_perplexity(counts),
                  "used_fraction": losses.code_used_fraction(counts)}

  # --- evaluation -----------------------------------------------------------------
  def eval_step(self, state, batch, rng, frozen=None):
    params, x, mask = self.stage_params(state), batch["image"], batch["mask"]
    logits = self.logits(params, x)
    codes = jnp.argmax(logits, -1).astype(jnp.int32)
    recon = self.decode(params, codes)
    mse = losses.mse_per_example(x, recon)
    psnr = psnr_lib.psnr(mse)
    ssim = ssim_lib.ssim(recon, x, 1.0)
    sample = jax.random.categorical(rng, logits, axis=-1)
    loc, log_scale = self.decoder_stats(params, jax.nn.one_hot(sample, self.num_codes))
    nll = -logit_laplace_log_prob(map_pixels(x, self.eps), loc, log_scale)
    kl = categorical_kl_to_uniform(logits)
    return {"count": mask.sum(), "recon_mse": (mse * mask).sum(),
            "psnr": (psnr * mask).sum(),
            "ssim": (ssim * mask).sum(), "recon_nats": (nll * mask).sum(),
            "kl_nats": (kl * mask).sum(),
            "code_counts": losses.code_counts(codes, self.num_codes, mask)}

  def finalize_eval(self, sums):
    sums = dict(sums)
    counts = jnp.asarray(sums.pop("code_counts"))
    out = super().finalize_eval(sums)
    # -log p(x) of the [0, 1] pixels = -log p(map(x)) - D log(1 - 2 eps).
    nll_x = (out["recon_nats"] + out["kl_nats"]
             - self.num_dims * math.log(1 - 2 * self.eps))
    return {**out, "codebook_used_fraction": float(losses.code_used_fraction(counts)),
            "codebook_used": int((np.asarray(counts) > 0).sum()),
            "codebook_perplexity": float(losses.code_perplexity(counts)),
            "num_codes": self.num_codes,
            "bits_per_dim": float(losses.bits_per_dim(nll_x, self.num_dims,
                                                      math.log(1.0 / 256)))}


Trainer = DVAETrainer
