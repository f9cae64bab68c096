"""Latent diffusion (Rombach et al. 2022) in its smallest form: a DDPM over the latents
of a frozen autoencoder stage (``config.stages.autoencoder``, a finished run).

Training encodes each batch with the stage (``encode``: the VAE's posterior means),
scales the latents by ``config.latent.scale_factor`` and trains the noise predictor
on them; sampling runs the configured sampler in latent space and decodes with the
stage (``decode``: images in [0, 1]). Vector latents get a residual MLP noise
predictor (``config.model.width``, ``depth``); the stage's parameters enter every
compiled function as the ``frozen`` argument. The data config must preprocess images
as the stage's own run did. Evaluation reports the epsilon-prediction loss on the
eval split's latents and the sample metrics of ``config.eval.metrics``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import losses, viz
from jaxgen.families.latent_ddpm.networks import MLPDenoiser
from jaxgen.models.unet import UNet
from jaxgen.stages import Autoencoder, check_same_data
from jaxgen.families.base import OneOptimizerTrainer
from jaxgen.families.ddpm.trainer import DDPMTrainer

DATA_FIELDS = ("name", "scale", "binarize", "resize", "center_crop")


class LatentDDPMTrainer(DDPMTrainer):
  stage_roles = {"autoencoder": Autoencoder}

  def __init__(self, config, spec, stages):
    ae = stages["autoencoder"]
    self.autoencoder = ae.trainer
    check_same_data(config.data, ae.trainer.config.data, ae.path, DATA_FIELDS)
    # The diffusion's examples are latents: its "image" is the latent of one image.
    super().__init__(config, {**spec, "image": ae.trainer.latent_spec}, stages)
    self.scale_factor = config.latent.scale_factor
    low, high = (-1.0, 1.0) if config.data.scale == "symmetric" else (0.0, 1.0)
    self.to_unit = lambda x: (x - low) / (high - low)

  def check_data(self, d):
    pass  # any preprocessing the stage was trained with (checked in __init__)

  def make_network(self, m):
    if len(self.example_shape) == 1:
      return MLPDenoiser(width=m.width, depth=m.depth, dropout=m.dropout,
                         out_dim=self.example_shape[0], num_classes=self.num_classes)
    return UNet(ch=m.ch, ch_mult=tuple(m.ch_mult), num_res_blocks=m.num_res_blocks,
                attn_resolutions=tuple(m.attn_resolutions), dropout=m.dropout,
                out_ch=self.example_shape[-1], num_classes=self.num_classes,
                num_groups=m.num_groups)

  def encode(self, frozen, images):
    """Scaled latents of preprocessed images."""
    z = self.autoencoder.encode(frozen["autoencoder"], self.to_unit(images))
    return jax.lax.stop_gradient(z) * self.scale_factor

  def decode(self, frozen, z):
    return self.autoencoder.decode(frozen["autoencoder"], z / self.scale_factor)

  def data(self, batch, frozen=None):
    return self.encode(frozen, batch["image"])

  def eval_step(self, state, batch, rng, frozen=None):
    """Masked sums of the epsilon-prediction loss at uniform random t on the eval
    split's latents (EMA parameters)."""
    z0, mask = self.encode(frozen, batch["image"]), batch["mask"]
    k_t, k_noise = jax.random.split(rng)
    t = jax.random.randint(k_t, (z0.shape[0],), 0, self.process.num_steps)
    noise = jax.random.normal(k_noise, z0.shape, z0.dtype)
    labels = batch.get("label") if self.num_classes else None
    pred = self.apply(state.ema_params, self.process.q_sample(z0, t, noise), t, labels)
    mse = losses.eps_mse(self.process.target(z0, noise, t, self.param), pred)
    return {"count": mask.sum(), "eps_mse": (mse * mask).sum(),
            "latent_std": (jnp.std(z0, axis=tuple(range(1, z0.ndim))) * mask).sum()}

  def finalize_eval(self, sums):
    return OneOptimizerTrainer.finalize_eval(self, sums)  # the means (no bound here)

  def sample(self, params, rng, num: int, inputs=None, frozen=None):
    labels = inputs["label"] if inputs and self.num_classes else None
    z, _ = self.run_sampler(params, rng, num, labels=labels)
    return jnp.clip(self.decode(frozen, z), 0.0, 1.0)

  def pictures(self, state, rng, images, frozen, num: int):
    """(decoded samples, reconstructions of ``images``, decoded frames of 8 reverse
    chains)."""
    z, frames = self.run_sampler(state.ema_params, rng, num, num_frames=10)
    recon = self.decode(frozen, self.encode(frozen, images))
    chains = jnp.moveaxis(frames[:, :8], 0, 1).reshape(-1, *z.shape[1:])
    return self.decode(frozen, z), recon, self.decode(frozen, chains)

  def visualize(self, state, rng, batch, frozen=None):
    n = self.config.train.num_samples
    images = jnp.asarray(batch["image"][:16])
    pictures = self.compiled(self.pictures, static_argnames="num")
    x, recon, reverse = (np.asarray(a) for a in pictures(state, rng, images, frozen, n))
    u8 = lambda a: viz.to_uint8(np.clip(a, 0, 1))
    pairs = np.stack([np.asarray(self.to_unit(images)), recon], 1)
    return {"samples": viz.grid(u8(x), rows=self.num_classes or None),
            "reconstructions": viz.grid(u8(pairs.reshape(-1, *recon.shape[1:])), rows=4),
            "reverse_process": viz.grid(u8(reverse), rows=8)}


Trainer = LatentDDPMTrainer
