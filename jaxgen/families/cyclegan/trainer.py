"""CycleGAN (Zhu et al. 2017): unpaired translation between domains A and B.

L_GAN(G, D_B) + L_GAN(F, D_A) + lambda L_cyc(G, F) (+ the identity loss), with
G: A -> B (``generator_ab``) and F: B -> A (``generator_ba``); ``discriminator_b``
judges domain B (the reference's netD_A), ``discriminator_a`` domain A (netD_B). As
junyanz/pytorch-CycleGAN-and-pix2pix ``models/cycle_gan_model.py``:

* the generators' update first, both together, on
  MSE(D_B(G(a)), 1) + MSE(D_A(F(b)), 1)
  + lambda_a |F(G(a)) - a| + lambda_b |G(F(b)) - b|
  + lambda_identity (lambda_b |G(b) - b| + lambda_a |F(a) - a|)
  (``cyclegan.gan_loss='lsgan'``, lambdas 10, 10, identity 0.5);
* then each discriminator on 0.5 (MSE(D(real), 1) + MSE(D(pooled fake), 0)), where the
  fake comes from the image pool (``image_pool_query``) fed with this step's G(a)
  (F(b)): 50 earlier fakes per discriminator, kept in ``TrainState.extra`` (``pool_a``,
  ``pool_b``, ``pool_count_a``, ``pool_count_b``) so a resumed run continues exactly;
* Adam 2e-4, beta1 0.5, one optimiser state per network; the rate constant, then
  linear to zero (``schedule='constant_then_linear'``; the paper: 100 epochs + 100).

Networks: resnet_9blocks generators with reflection padding and instance norm, 70x70
PatchGANs with instance norm (jaxgen/models/image_to_image.py); instance norm has no
statistics to keep, so ``extra["batch_stats"]`` is empty per player.

Evaluation on ``mnist5k_styles`` (``cyclegan.styles_metrics``; its test split is
aligned: domain_b[i] is domain_a[i] restyled), by the eval step:
  ``l1_ab`` / ``ssim_ab``  G(a) against the true restyled digit (and ``*_ba``: F(b)
                           against the plain digit), images on [0, 1];
  ``cycle_a`` / ``cycle_b`` |F(G(a)) - a|, |G(F(b)) - b| on [0, 1];
  ``class_kept_cycle``     how often the shipped MNIST classifier reads F(G(a)) as the
                           class it reads a as (grey = channel mean);
  ``class_accuracy_ba``    how often it reads F(b) as b's label (``label_b``): F gives
                           a plain digit of b's class; ``class_accuracy_ba_light`` /
                           ``_dark`` the same over the b of light (dark) backgrounds
                           (``dark_background_b``), of ``num_examples_ba_light``
                           (``_dark``) examples;
  ``fid_ab`` / ``fid_ba``  FID of the translations G(a) (F(b)) against the train
                           split's domain B (A), in the MNIST classifier's features of
                           the channel-mean grey image (the features of plain digits;
                           for the restyled domain a distance between distributions of
                           its luminance, not a perceptual score).
The evaluator ``styles`` (``config.eval.metrics``, jaxgen/families/cyclegan/evaluators.py)
adds G(a)'s content, read by the domain-B reader against a's label, and its content
and style together (G(a) un-styled with the true pair's colour and texture).
"""
from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.errors import ConfigError
from jaxgen.models import image_to_image as nets
from jaxgen.families import adversarial
from jaxgen.families import base
from jaxgen.families import image_to_image as translation
from jaxgen.families.image_to_image import (l1_loss, translation_discriminator_loss,
                                             translation_gan_loss)
from jaxgen.families.base import Trainer, apply_player_gradients

GENERATORS = ("generator_ab", "generator_ba")
DISCRIMINATORS = ("discriminator_a", "discriminator_b")


def image_pool_query(pool, count, images, rng):
  """junyanz ``util/image_pool.py`` ``ImagePool.query``, functionally: for each image
  of the batch in turn, while the pool holds fewer than ``pool.shape[0]`` images, store
  it and return it; once full, with probability 1/2 (u > 0.5, u ~ U[0, 1)) return a
  uniformly chosen stored image and store the new one in its place, else return the new
  image. Returns (images to show the discriminator, new pool, new count). The draws are
  ``u = uniform(k_u, (N,))`` and ``ids = randint(k_id, (N,), 0, size)`` with
  ``k_u, k_id = split(rng)``."""
  size = pool.shape[0]
  if size == 0:
    return images, pool, count
  k_u, k_id = jax.random.split(rng)
  n = images.shape[0]
  u = jax.random.uniform(k_u, (n,))
  ids = jax.random.randint(k_id, (n,), 0, size)

  def one(carry, inp):
    pool, count = carry
    image, u_i, id_i = inp
    filling = count < size
    idx = jnp.where(filling, count, id_i)
    old = pool[idx]
    swap = filling | (u_i > 0.5)
    out = jnp.where(filling | (u_i <= 0.5), image, old)
    pool = pool.at[idx].set(jnp.where(swap, image, old))
    return (pool, count + filling.astype(count.dtype)), out

  (pool, count), out = jax.lax.scan(one, (pool, count), (images, u, ids))
  return out, pool, count


@functools.cache
def styles_reference_statistics(seed: int = 0) -> dict:
  """(mu, sigma) of the MNIST classifier's features of the channel-mean grey
  ``domain_a`` and ``domain_b`` images of mnist5k_styles' train split; once per
  process and seed, cached on disk (keyed by the seed and the classifier's weights)
  beside the registry's reference statistics."""
  from jaxgen.data.mnist5k_derived import styles_ground_truth
  from jaxgen.metrics import features, fid, mnist_classifier
  from jaxgen import weights
  digest = weights.sha256(mnist_classifier.WEIGHTS)[:16]
  path = weights.cache_dir() / "stats" / f"mnist5k_styles-train-{seed}-{digest}.npz"
  if path.is_file():
    with np.load(path) as f:
      return {k: (f[f"{k}_mu"], f[f"{k}_sigma"]) for k in ("domain_a", "domain_b")}
  gt = styles_ground_truth("train", seed)
  net = features.get("mnist_classifier", batch_size=500)
  out = {}
  for key in ("domain_a", "domain_b"):
    g = gt[key].astype(np.float32).mean(-1, keepdims=True) / 255
    out[key] = fid.feature_statistics(net(g, progress=False)["features"])
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_suffix(".tmp.npz")
  np.savez(tmp, **{f"{k}_{n}": v for k, (mu, s) in out.items()
                   for n, v in (("mu", mu), ("sigma", s))})
  os.replace(tmp, path)
  return out


def grey(x):
  """Channel-mean grey images, (N, H, W, 1)."""
  return x.mean(-1, keepdims=True)


class CycleGANTrainer(Trainer):
  data_keys = (("domain_a", "domain_b"),)

  def __init__(self, config, spec, stages=None):
    super().__init__(config, spec, stages)
    m, c = config.model, config.cyclegan
    translation.check_symmetric(config)
    translation.check_translation_kind(c.gan_loss)
    if m.norm != "instance":
      raise ConfigError(f"config.model.norm={m.norm!r}: the CycleGAN family runs the "
                        f"paper's instance norm (no statistics to keep); set "
                        f"--config.model.norm=instance.")
    self.shape_a = tuple(self.spec["domain_a"].shape)
    self.shape_b = tuple(self.spec["domain_b"].shape)
    if self.shape_a[:2] != self.shape_b[:2]:
      raise ConfigError(f"Domain A images {self.shape_a} and domain B images "
                        f"{self.shape_b} differ in size: set config.data.resize.")
    make = functools.partial(nets.make_generator, m.generator, ngf=m.ngf, norm=m.norm,
                             use_dropout=m.use_dropout)
    self.g_ab, self.g_ba = make(output_nc=self.shape_b[-1]), make(
        output_nc=self.shape_a[-1])
    self.d = nets.PatchDiscriminator(m.ndf, m.n_layers_d, m.norm)
    if c.pool_size < 0:
      raise ConfigError(f"config.cyclegan.pool_size={c.pool_size}: the number of "
                        f"generated images kept for the discriminators (0: none; the "
                        f"paper: 50).")
    self.c = c
    n = config.train.num_steps
    self.tx = {**{g: base.make_optimizer(config.optim.generator, n)
                  for g in GENERATORS},
               **{d: base.make_optimizer(config.optim.discriminator, n)
                  for d in DISCRIMINATORS}}
    self.ema_decay = config.optim.ema_decay
    self.styles = c.styles_metrics
    if self.styles:
      if config.data.name != "mnist5k_styles":
        raise ConfigError(f"config.cyclegan.styles_metrics needs the aligned test split "
                          f"and the digits of mnist5k_styles, not {config.data.name!r}: "
                          f"set --config.cyclegan.styles_metrics=False.")
      if self.shape_a != (28, 28, 3):
        raise ConfigError(f"config.cyclegan.styles_metrics reads 28x28 digits with the "
                          f"MNIST classifier; these images are {self.shape_a}: drop "
                          f"config.data.resize.")
      from jaxgen.metrics import mnist_classifier
      self._classifier = mnist_classifier.load_params()
      # Host work, before any trace: the eval step centres its feature sums on these.
      self._reference = styles_reference_statistics(
          int(config.data.derived_seed))

  @property
  def conditioning_keys(self):
    return ("domain_a",)

  def networks(self):
    a, b = jnp.zeros((1, *self.shape_a)), jnp.zeros((1, *self.shape_b))
    return {"generator_ab": (self.g_ab, (a,), {"train": False}),
            "generator_ba": (self.g_ba, (b,), {"train": False}),
            "discriminator_a": (self.d, (a,), {"train": False}),
            "discriminator_b": (self.d, (b,), {"train": False})}

  def init_state(self, rng):
    size = self.c.pool_size
    extra = {"pool_a": jnp.zeros((size, *self.shape_a)),
             "pool_b": jnp.zeros((size, *self.shape_b)),
             "pool_count_a": jnp.zeros((), jnp.int32),
             "pool_count_b": jnp.zeros((), jnp.int32)}
    return adversarial.init_players(self.networks(), rng, self.tx,
                                    ema_player="generator_ab", extra=extra)

  def _g(self, module, params, x, rng=None):
    if rng is None or not module.use_dropout:
      return self.policy.apply(module, {"params": params}, x, train=True)
    return self.policy.apply(module, {"params": params}, x, train=True, dropout=True,
                             rngs={"dropout": rng})

  def _dd(self, params, x):
    return self.policy.apply(self.d, {"params": params}, x, train=True)

  # --- training -------------------------------------------------------------------
  def train_step(self, state, batch, rng, frozen=None):
    a, b = batch["domain_a"], batch["domain_b"]
    c, kind = self.c, self.c.gan_loss
    k_pool_a, k_pool_b, k_drop = jax.random.split(rng, 3)
    kd = list(jax.random.split(k_drop, 6))
    p = state.params

    def g_loss_fn(gp):
      fake_b = self._g(self.g_ab, gp["generator_ab"], a, kd[0])
      rec_a = self._g(self.g_ba, gp["generator_ba"], fake_b, kd[1])
      fake_a = self._g(self.g_ba, gp["generator_ba"], b, kd[2])
      rec_b = self._g(self.g_ab, gp["generator_ab"], fake_a, kd[3])
      terms = {
          "g_gan_ab": translation_gan_loss(
              self._dd(p["discriminator_b"], fake_b), True, kind),
          "g_gan_ba": translation_gan_loss(
              self._dd(p["discriminator_a"], fake_a), True, kind),
          "cycle_a": l1_loss(rec_a, a), "cycle_b": l1_loss(rec_b, b)}
      loss = (terms["g_gan_ab"] + terms["g_gan_ba"] + c.lambda_a * terms["cycle_a"]
              + c.lambda_b * terms["cycle_b"])
      if c.lambda_identity:
        terms["idt_b"] = l1_loss(self._g(self.g_ab, gp["generator_ab"], b, kd[4]), b)
        terms["idt_a"] = l1_loss(self._g(self.g_ba, gp["generator_ba"], a, kd[5]), a)
        loss += c.lambda_identity * (c.lambda_b * terms["idt_b"]
                                     + c.lambda_a * terms["idt_a"])
      return loss, (fake_a, fake_b, terms)

    gp = {g: p[g] for g in GENERATORS}
    (g_loss, (fake_a, fake_b, terms)), g_grads = jax.value_and_grad(
        g_loss_fn, has_aux=True)(gp)
    metrics = {"loss": g_loss, "g_loss": g_loss, **terms}
    for g in GENERATORS:
      state, metrics[f"{g}_grad_norm"] = apply_player_gradients(
          state, g, g_grads[g], self.tx, count_step=g == GENERATORS[-1])

    ex = state.extra
    shown_b, pool_b, count_b = image_pool_query(
        ex["pool_b"], ex["pool_count_b"], jax.lax.stop_gradient(fake_b), k_pool_b)
    shown_a, pool_a, count_a = image_pool_query(
        ex["pool_a"], ex["pool_count_a"], jax.lax.stop_gradient(fake_a), k_pool_a)
    for name, real, shown in (("discriminator_b", b, shown_b),
                              ("discriminator_a", a, shown_a)):
      def d_loss_fn(dp, real=real, shown=shown):
        return translation_discriminator_loss(self._dd(dp, real), self._dd(dp, shown),
                                              kind)
      d_loss, d_grads = jax.value_and_grad(d_loss_fn)(state.params[name])
      state, metrics[f"{name}_grad_norm"] = apply_player_gradients(state, name,
                                                                   d_grads, self.tx)
      metrics[f"d_loss_{name[-1]}"] = d_loss
    state = state.replace(extra={**state.extra, "pool_a": pool_a, "pool_b": pool_b,
                                 "pool_count_a": count_a, "pool_count_b": count_b})
    state = adversarial.update_ema(state, "generator_ab", self.ema_decay)
    return state, metrics

  # --- translation ----------------------------------------------------------------
  def translate(self, params, x, direction: str = "ab"):
    """G(x) (``ab``) or F(x) (``ba``) in [-1, 1], dropout off."""
    module = self.g_ab if direction == "ab" else self.g_ba
    return self.policy.apply(module, {"params": params}, x, train=False)

  def generate(self, state, rng, num: int, inputs=None, frozen=None):
    """G(domain_a) in [0, 1] (the EMA of G where ``optim.ema_decay`` > 0)."""
    if not inputs or "domain_a" not in inputs:
      raise ValueError("CycleGAN translates images: pass inputs={'domain_a': images} "
                       "(num, H, W, C) in [-1, 1].")
    return translation.to_unit(self.translate(state.ema_params,
                                              inputs["domain_a"][:num]))

  # --- evaluation -----------------------------------------------------------------
  def eval_step(self, state, batch, rng, frozen=None):
    a, b, mask = batch["domain_a"], batch["domain_b"], batch["mask"]
    p = state.params
    fake_b = self.translate(state.ema_params, a, "ab")
    fake_a = self.translate(p["generator_ba"], b, "ba")
    rec_a = self.translate(p["generator_ba"], fake_b, "ba")
    rec_b = self.translate(state.ema_params, fake_a, "ab")
    unit = translation.to_unit
    l1 = lambda x, y: jnp.abs(unit(x) - unit(y)).reshape(x.shape[0], -1).mean(-1)
    masked = lambda v: (v * mask).sum()
    sums = {"count": mask.sum(), "cycle_a": masked(l1(rec_a, a)),
            "cycle_b": masked(l1(rec_b, b))}
    if self.styles:
      from jaxgen.metrics import mnist_classifier, ssim
      sums["l1_ab"], sums["l1_ba"] = masked(l1(fake_b, b)), masked(l1(fake_a, a))
      sums["ssim_ab"] = masked(ssim.ssim(unit(fake_b), unit(b), max_val=1.0))
      sums["ssim_ba"] = masked(ssim.ssim(unit(fake_a), unit(a), max_val=1.0))
      classify = lambda x: mnist_classifier.features_and_logits(self._classifier,
                                                                grey(unit(x)))
      read_a = classify(a)["logits"].argmax(-1)
      sums["class_kept_cycle"] = masked(classify(rec_a)["logits"].argmax(-1) == read_a)
      # F(b) read as a plain digit against b's label, over all of b and per background
      right = classify(fake_a)["logits"].argmax(-1) == batch["label_b"]
      sums["class_accuracy_ba"] = masked(right)
      dark = batch["dark_background_b"] == 1
      for part, keep in (("light", ~dark), ("dark", dark)):
        sums[f"background_count_{part}"] = masked(keep)
        sums[f"background_right_{part}"] = masked(right & keep)
      ref = self.reference_statistics()  # host numpy, constants of the trace
      for name, x, domain in (("ab", fake_b, "domain_b"), ("ba", fake_a, "domain_a")):
        # Centred on the reference mean: float32 sums of f f^T lose less to rounding.
        f = (classify(x)["features"] - ref[domain][0]) * mask[:, None]
        sums[f"feat_sum_{name}"] = f.sum(0)
        sums[f"feat_outer_{name}"] = f.T @ f
    return sums

  def finalize_eval(self, sums):
    n = float(sums["count"])
    out = super().finalize_eval({k: v for k, v in sums.items()
                                 if not k.startswith(("feat_", "background_"))})
    if self.styles:
      from jaxgen.metrics import fid
      for part in ("light", "dark"):
        count = float(sums[f"background_count_{part}"])
        out[f"class_accuracy_ba_{part}"] = (
            float(sums[f"background_right_{part}"]) / count if count else None)
        out[f"num_examples_ba_{part}"] = int(count)
      ref = self.reference_statistics()
      for name, domain in (("ab", "domain_b"), ("ba", "domain_a")):
        s = np.asarray(sums[f"feat_sum_{name}"], np.float64)
        outer = np.asarray(sums[f"feat_outer_{name}"], np.float64)
        centred = s / n
        sigma = (outer - n * np.outer(centred, centred)) / max(n - 1, 1)
        mu = centred + ref[domain][0]
        # eigh-based (robust where fewer samples than features leave S1 singular)
        out[f"fid_{name}"] = float(fid.frechet_distance_eigh(mu, sigma, *ref[domain]))
      out["fid_net"] = "mnist-classifier (channel-mean grey); reference: train split"
    return out

  def reference_statistics(self) -> dict:
    return self._reference

  def cycles(self, state, a, b):
    """(G(a), F(G(a)), F(b), G(F(b))) in [-1, 1]."""
    p = state.params
    fb = self.translate(state.ema_params, a, "ab")
    fa = self.translate(p["generator_ba"], b, "ba")
    return (fb, self.translate(p["generator_ba"], fb, "ba"), fa,
            self.translate(state.ema_params, fa, "ab"))

  def visualize(self, state, rng, batch, frozen=None):
    """x | G(x) | F(G(x)) for domain A, then y | F(y) | G(F(y)) for domain B."""
    a, b = jnp.asarray(batch["domain_a"]), jnp.asarray(batch["domain_b"])
    fb, ra, fa, rb = (np.clip((np.asarray(v) + 1) / 2, 0, 1)
                      for v in self.compiled(self.cycles)(state, a, b))
    unit = lambda v: np.clip((np.asarray(v) + 1) / 2, 0, 1)
    return {"samples": translation.strips(unit(a), fb, ra),
            "cycle_b": translation.strips(unit(b), fa, rb)}


# --- host-side evaluation against the ground truth of mnist5k_styles ---------------


Trainer = CycleGANTrainer
