"""Pix2Pix (Isola et al. 2017): conditional GAN translation of paired images.

G* = arg min_G max_D L_cGAN(G, D) + lambda L_L1(G), where D sees the pair (x, y): a
PatchGAN on the channel concatenation of the input x (``source``) and the output (the
real ``target`` y, or G(x)). As junyanz/pytorch-CycleGAN-and-pix2pix
``models/pix2pix_model.py``:

* one step: G(x) (train mode: BatchNorm batch statistics, dropout on); a discriminator
  update on (x, G(x)) detached and (x, y), loss 0.5 (GAN(fake, 0) + GAN(real, 1)); then
  a generator update through the updated D: GAN(D(x, G(x)), 1) + ``l1_weight`` |G(x) - y|
  (the same G(x): its forward pass runs once, its gradient comes through ``jax.vjp``);
* ``config.pix2pix.gan_loss``: ``vanilla`` (BCE with logits, the reference) or
  ``lsgan``; ``l1_weight`` 100;
* Adam 2e-4, beta1 0.5 for both players; the learning rate constant for the first half
  of the steps, then linear to zero (``schedule='constant_then_linear'``,
  jaxgen/families/image_to_image.py);
* BatchNorm statistics per player in ``extra["batch_stats"]``; the discriminator's are
  updated by each of its three forward passes (fake, real, and the generator update's),
  the generator's by its one.

``generate`` (and so the evaluators l1 / psnr / ssim against the target, and the
pictures) follows ``config.pix2pix.test_mode``: ``paper`` runs the generator as in
training (the paper: "we apply dropout at test time, and we apply batch normalization
using the statistics of the test batch"), each image as its own batch of 1 (the paper's
and the reference test.py's batch size without --eval), so a result does not depend on
the other images of the batch; ``eval`` uses the running statistics without dropout
(the reference's --eval). Images are [-1, 1] (``data.scale='symmetric'``).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import losses
from jaxgen.errors import ConfigError
from jaxgen.models import image_to_image as nets
from jaxgen.families import adversarial
from jaxgen.families import base
from jaxgen.families import image_to_image as translation
from jaxgen.families.image_to_image import (l1_loss, translation_discriminator_loss,
                                             translation_gan_loss)
from jaxgen.families.adversarial import apply_module
from jaxgen.families.base import Trainer, apply_player_gradients

TEST_MODES = ("paper", "eval")


class Pix2PixTrainer(Trainer):
  data_keys = (("source", "target"),)

  def __init__(self, config, spec, stages=None):
    super().__init__(config, spec, stages)
    m, p = config.model, config.pix2pix
    translation.check_symmetric(config)
    if p.test_mode not in TEST_MODES:
      raise ConfigError(f"config.pix2pix.test_mode={p.test_mode!r}; use one of "
                        f"{TEST_MODES}.")
    translation.check_translation_kind(p.gan_loss)
    self.source_shape = tuple(self.spec["source"].shape)
    self.target_shape = tuple(self.spec["target"].shape)
    h, w = self.source_shape[:2]
    if self.target_shape[:2] != (h, w):
      raise ConfigError(f"Source {self.source_shape} and target {self.target_shape} "
                        f"images differ in size; Pix2Pix maps an image to one of the "
                        f"same size (config.data).")
    self.generator = nets.make_generator(m.generator, self.target_shape[-1], m.ngf,
                                         m.norm, m.use_dropout, m.num_downs)
    if isinstance(self.generator, nets.UNetGenerator):
      nets.check_unet_size(self.generator.num_downs, h, w,
                           f"config.model.generator={m.generator!r}")
    self.discriminator = nets.PatchDiscriminator(m.ndf, m.n_layers_d, m.norm)
    self.gan_loss, self.l1_weight, self.test_mode = p.gan_loss, p.l1_weight, p.test_mode
    n = config.train.num_steps
    self.tx = {"generator": base.make_optimizer(config.optim.generator, n),
               "discriminator": base.make_optimizer(config.optim.discriminator,
                                                           n)}
    self.ema_decay = config.optim.ema_decay

  @property
  def conditioning_keys(self):
    return ("source",)

  def networks(self):
    x = jnp.zeros((1, *self.source_shape))
    pair = jnp.zeros((1, *self.source_shape[:2],
                      self.source_shape[-1] + self.target_shape[-1]))
    return {"generator": (self.generator, (x,), {"train": False}),
            "discriminator": (self.discriminator, (pair,), {"train": False})}

  def init_state(self, rng):
    return adversarial.init_players(self.networks(), rng, self.tx,
                                    ema_player="generator")

  def _d(self, params, stats, x, y, train: bool):
    return apply_module(self.discriminator, params, stats,
                        jnp.concatenate([x, y], -1), train=train, policy=self.policy)

  # --- training -------------------------------------------------------------------
  def train_step(self, state, batch, rng, frozen=None):
    x, y = batch["source"], batch["target"]
    stats = state.extra[adversarial.STATS]

    def g_forward(gp):
      fake, g_stats = apply_module(self.generator, gp, stats["generator"], x,
                                   train=True, rng=rng, dropout=True,
                                   policy=self.policy)
      return fake, g_stats

    fake, g_vjp, g_stats = jax.vjp(g_forward, state.params["generator"], has_aux=True)

    def d_loss_fn(dp):
      fake_logits, s = self._d(dp, stats["discriminator"], x,
                               jax.lax.stop_gradient(fake), train=True)
      real_logits, s = self._d(dp, s, x, y, train=True)
      loss = translation_discriminator_loss(real_logits, fake_logits, self.gan_loss)
      return loss, (s, {"d_real": jax.nn.sigmoid(real_logits).mean(),
                        "d_fake": jax.nn.sigmoid(fake_logits).mean()})

    (d_loss, (d_stats, d_aux)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(
        state.params["discriminator"])
    state, d_norm = apply_player_gradients(state, "discriminator", d_grads, self.tx)
    d_params = state.params["discriminator"]

    def g_loss_fn(f):  # of the generator's output, through the updated D
      logits, s = self._d(d_params, d_stats, x, f, train=True)
      gan = translation_gan_loss(logits, True, self.gan_loss)
      l1 = l1_loss(f, y)
      return gan + self.l1_weight * l1, (s, {"g_gan": gan, "g_l1": l1})

    (g_loss, (d_stats, g_aux)), d_fake = jax.value_and_grad(g_loss_fn, has_aux=True)(
        fake)
    (g_grads,) = g_vjp(d_fake)
    state, g_norm = apply_player_gradients(state, "generator", g_grads, self.tx,
                                           count_step=True)
    state = adversarial.update_ema(state, "generator", self.ema_decay)
    state = adversarial.replace_stats(state, generator=g_stats, discriminator=d_stats)
    return state, {"loss": g_loss, "g_loss": g_loss, "d_loss": d_loss,
                   "g_grad_norm": g_norm, "d_grad_norm": d_norm, **d_aux, **g_aux}

  # --- translation ----------------------------------------------------------------
  def translate(self, params, stats, x, rng, mode: str | None = None):
    """G(x) in [-1, 1] under ``mode`` (default ``config.pix2pix.test_mode``)."""
    mode = mode or self.test_mode
    if mode == "eval":
      return apply_module(self.generator, params, stats, x, train=False,
                          policy=self.policy)[0]

    def one(xi, key):  # a batch of one, as in training: its own statistics, dropout
      out, _ = apply_module(self.generator, params, stats, xi[None], train=True,
                            rng=key, dropout=True, policy=self.policy)
      return out[0]
    return jax.vmap(one)(x, jax.random.split(rng, x.shape[0]))

  def generate(self, state, rng, num: int, inputs=None, frozen=None):
    """G(source) in [0, 1] for ``inputs["source"]`` (num, H, W, C) in [-1, 1]."""
    if not inputs or "source" not in inputs:
      raise ValueError("Pix2Pix translates images: pass inputs={'source': images} "
                       "(num, H, W, C) in [-1, 1].")
    x = inputs["source"][:num]
    stats = state.extra[adversarial.STATS]["generator"]
    return translation.to_unit(self.translate(state.ema_params, stats, x, rng))

  # --- evaluation -----------------------------------------------------------------
  def eval_step(self, state, batch, rng, frozen=None):
    """Masked sums of |G(x) - y| (on [0, 1]) and of D's mean probability on real and
    generated pairs (running statistics)."""
    x, y, mask = batch["source"], batch["target"], batch["mask"]
    stats = state.extra[adversarial.STATS]
    fake = self.translate(state.ema_params, stats["generator"], x, rng)
    d = lambda img: jax.nn.sigmoid(self._d(state.params["discriminator"],
                                           stats["discriminator"], x, img,
                                           train=False)[0])
    return {"count": mask.sum(),
            "eval_l1": (losses.mean_per_example(jnp.abs(fake - y)) / 2 * mask).sum(),
            "eval_d_real": (losses.mean_per_example(d(y)) * mask).sum(),
            "eval_d_fake": (losses.mean_per_example(d(fake)) * mask).sum()}

  def visualize(self, state, rng, batch, frozen=None):
    """input | output | target, one row per example."""
    x, y = batch["source"], batch["target"]
    generate = self.compiled(self.generate, static_argnames="num")
    out = np.asarray(generate(state, rng, len(x), {"source": jnp.asarray(x)}))
    unit = lambda v: np.clip((np.asarray(v) + 1) / 2, 0, 1)
    return {"samples": translation.strips(unit(x), out, unit(y))}


Trainer = Pix2PixTrainer
