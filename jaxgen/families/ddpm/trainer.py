"""The DDPM family (Ho et al. 2020): epsilon-prediction training of a U-Net, the
variational bound in bits/dim on the test set, sample grids and process pictures.

Class-conditional models (``model.num_classes > 0``) train with label dropout
(``model.label_dropout``) and sample with classifier-free guidance
(``sample.guidance_scale``: 1 is the conditional model, ``samplers.guided``).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import losses, viz
from jaxgen.errors import ConfigError
from jaxgen.diffusion import samplers
from jaxgen.diffusion.process import GaussianDiffusion, check_options
from jaxgen.models.unet import UNet
from jaxgen.families.base import OneOptimizerTrainer


class DDPMTrainer(OneOptimizerTrainer):

  def __init__(self, config, spec, stages=None):
    super().__init__(config, spec, stages)
    m = config.model
    self.check_data(config.data)
    d = config.diffusion
    check_options(d.schedule, d.num_steps, d.parameterization, d.variance)
    self.process = GaussianDiffusion.create(config.diffusion.schedule,
                                            config.diffusion.num_steps)
    self.param = config.diffusion.parameterization
    self.variance = config.diffusion.variance  # of p(x_{t-1}|x_t)
    self.num_classes = m.num_classes
    self.unet = self.make_network(m)

  def check_data(self, d):
    if d.scale != "symmetric" or d.binarize:
      raise ConfigError("DDPM models grey levels scaled to [-1, 1]: set "
                        "--config.data.scale=symmetric and --config.data.binarize=''.")

  def make_network(self, m):
    """The noise predictor eps(x_t, t[, y]) from ``config.model``."""
    return UNet(ch=m.ch, ch_mult=tuple(m.ch_mult),
                     num_res_blocks=m.num_res_blocks,
                     attn_resolutions=tuple(m.attn_resolutions), dropout=m.dropout,
                     out_ch=self.example_shape[-1], num_classes=self.num_classes,
                     time_embedding=m.time_embedding,
                     scale_shift=m.scale_shift,
                     num_groups=m.num_groups)

  def networks(self):
    x = jnp.zeros((1, *self.example_shape))
    y = jnp.zeros((1,), jnp.int32) if self.num_classes else None
    return {"unet": (self.unet, (x, jnp.zeros((1,), jnp.int32), y), {"train": False})}

  def apply(self, params, x, t, y=None, *, train=False, rng=None):
    """The network at integer timesteps t; random Fourier features, made for
    continuous time, see t / T in [0, 1) instead."""
    rngs = {"dropout": rng} if train else None
    if getattr(self.unet, "time_embedding", "") == "fourier":
      t = t / self.process.num_steps
    return self.policy.apply(self.unet, {"params": params}, x, t, y, train=train,
                             rngs=rngs)

  def data(self, batch, frozen=None):
    """The examples the diffusion models: the batch's images."""
    return batch["image"]

  def loss(self, params, batch, rng, frozen=None):
    """Ho et al.'s simplified objective: the MSE of the network's prediction of the
    parameterisation's target at a uniform random t, mean over the batch."""
    x0, labels = self.data(batch, frozen), batch.get("label")
    k_t, k_noise, k_drop, k_label = jax.random.split(rng, 4)
    t = jax.random.randint(k_t, (x0.shape[0],), 0, self.process.num_steps)
    noise = jax.random.normal(k_noise, x0.shape, x0.dtype)
    xt = self.process.q_sample(x0, t, noise)
    y = None
    if self.num_classes:  # label dropout: the null label teaches the unconditional
      drop = jax.random.uniform(k_label, t.shape) < self.config.model.label_dropout
      y = jnp.where(drop, self.num_classes, labels)
    target = self.process.target(x0, noise, t, self.param)
    pred = self.apply(params, xt, t, y, train=True, rng=k_drop)
    return losses.mse_per_example(target, pred).mean(), {}

  def _model_fn(self, params, labels=None, guidance=1.0):
    if not self.num_classes:
      return lambda x, t: self.apply(params, x, t)
    return samplers.guided(lambda x, t, y: self.apply(params, x, t, y), labels,
                           jnp.full_like(labels, self.num_classes), guidance)

  def eval_step(self, state, batch, rng, frozen=None):
    """Masked sums of the bound's terms (bits/dim) over the batch: all T timesteps."""
    x0, mask = batch["image"], batch["mask"]
    labels = batch.get("label") if self.num_classes else None
    out = self.process.bpd(self._model_fn(state.ema_params, labels), x0, rng,
                           self.param, self.variance)
    return {"count": mask.sum(), "bits_per_dim": (out["total"] * mask).sum(),
            "prior_bits_per_dim": (out["prior"] * mask).sum(),
            "decoder_bits_per_dim": (out["decoder"] * mask).sum()}

  def finalize_eval(self, sums):
    return {**super().finalize_eval(sums), "num_timesteps": self.process.num_steps}

  @property
  def conditioning_keys(self):
    return ("label",) if self.num_classes else ()

  def run_sampler(self, params, rng, num: int, num_frames: int = 0, labels=None):
    """``num`` samples (and a trajectory) with the configured sampler; for a
    class-conditional model, ``labels`` (default: cycling through the classes)."""
    s = self.config.sample
    if self.num_classes and labels is None:
      labels = jnp.arange(num) % self.num_classes
    kwargs = ({"num_steps": s.num_steps, "eta": s.eta}
              if s.sampler == "ddim" else {"variance": self.variance})
    return samplers.get(s.sampler)(
        self._model_fn(params, labels, s.guidance_scale), self.process,
        (num, *self.example_shape), rng, parameterization=self.param,
        num_frames=num_frames, **kwargs)

  def sample(self, params, rng, num: int, inputs=None, frozen=None):
    labels = inputs["label"] if inputs and self.num_classes else None
    x, _ = self.run_sampler(params, rng, num, labels=labels)
    return (jnp.clip(x, -1.0, 1.0) + 1.0) / 2.0

  def visualize(self, state, rng, batch, frozen=None):
    n = self.config.train.num_samples
    run = self.compiled(self.run_sampler, static_argnames=("num", "num_frames"))
    x, frames = run(state.ema_params, rng, n, num_frames=10)
    u8 = lambda a: viz.to_uint8(np.asarray(a), "symmetric")
    rows = self.num_classes or None
    # Forward process: the first test images noised at 10 evenly spaced t.
    x0 = jnp.asarray(batch["image"][:8])
    ts = jnp.tile(jnp.linspace(0, self.process.num_steps - 1, 10).astype(jnp.int32), 8)
    noise = jax.random.normal(jax.random.fold_in(rng, 1), x0.shape)
    forward = self.process.q_sample(jnp.repeat(x0, 10, 0), ts, jnp.repeat(noise, 10, 0))
    reverse = jnp.moveaxis(frames[:, :8], 0, 1)  # 8 chains x 10 frames
    return {"samples": viz.grid(u8(x), rows=rows),
            "forward_process": viz.grid(u8(forward), rows=8),
            "reverse_process": viz.grid(u8(reverse.reshape(-1, *x0.shape[1:])), rows=8)}


Trainer = DDPMTrainer
