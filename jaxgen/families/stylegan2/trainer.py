"""The StyleGAN2 family (Karras et al. 2020), with ADA (Karras et al. 2020b), trained as
NVlabs' stylegan2-ada-pytorch ``training/training_loop.py`` + ``training/loss.py`` do.

State: two players in one ``TrainState``, keyed as in jaxgen/families/adversarial.py
but built here: ``params`` / ``opt_state`` keyed ``generator`` / ``discriminator``,
``ema_params`` = G_ema, and in ``extra``: ``buffers`` (the generator's ``w_avg`` and
``noise_const``, shared by G and G_ema as the reference copies G's buffers into G_ema
every step), ``pl_mean``, the ADA probability ``ada_p`` and its sign accumulators
``ada_sum`` / ``ada_count``.
``step`` is the reference's ``batch_idx``.

One compiled train step is one reference iteration, its four phases in order, each
phase on its own z (and labels):
  Gmain  non-saturating loss softplus(-D(G(z))), style mixing (prob
         ``style_mixing_prob``, crossover uniform in [1, num_ws)), one Adam step;
  Greg   on steps with step % pl_interval == 0 (``lax.cond``): the path-length penalty
         on batch / pl_batch_shrink, (|J_w^T y| - a)^2 with y ~ N(0, I) / sqrt(HW),
         a <- a + pl_decay (mean |J_w^T y| - a) (``pl_mean``; the penalty sees the
         updated a with its gradient, as the reference), times pl_weight and
         pl_interval; its own Adam step;
  Dmain  softplus(D(G(z))) + softplus(-D(x)), one Adam step;
  Dreg   on steps with step % r1_interval == 0: (r1_gamma / 2) |grad_x D(x)|^2 on the
         reals (R1) plus, with ``r2_gamma`` > 0, (r2_gamma / 2) |grad_x D(G(z))|^2 on
         the fakes Dmain saw (R2, Mescheder et al. 2018; R3GAN, Huang et al. 2024,
         pairs it with R1: no second generator pass, no gradient into G), the sum
         times r1_interval, one Adam step (R2 off: the reference's Dreg, unchanged).
Every mapping pass of a phase moves ``w_avg`` towards the batch mean of w (decay
``w_avg_beta``). Adam of each player uses the lazy-regularisation correction:
lr * k/(k+1), betas ** (k/(k+1)) for interval k. Gradients go through nan_to_num
(nan 0, +-1e5) as the reference's. G_ema: half-life ``ema_kimg`` thousand images,
ramped up to ``ema_rampup`` times the images seen (0: no ramp-up).

ADA (``stylegan2.augment='bgc'``, or the presets blit, geom, color of the
reference's train.py): every image D sees (reals and fakes, in all
phases) goes through the differentiable pipeline of jaxgen/families/stylegan2/augment.py
with probability ``ada_p``. Every ``ada_interval`` steps, p <- max(0, p + sign(r_t -
ada_target) * batch * ada_interval / (ada_kimg * 1000)), r_t = E[sign(D(x))] over the
real logits of those steps (Dmain and Dreg). ``augment_p`` is the start value;
``ada_target`` 0 turns the adjustment off and p stays ``augment_p`` (the reference's
--aug=fixed --p). ``augment='digits'`` is jaxgen's digit-safe preset (augment.py).

Data: images in [-1, 1]; a dataset resolution below ``model.resolution`` (28x28
MNIST in a 32x32 model) is padded with -1 (black) around the image for D, and the
generator's images are cropped back for samples and metrics.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxgen import viz
from jaxgen.errors import ConfigError
from jaxgen.families.stylegan2 import augment as stylegan2_augment
from jaxgen.families.stylegan2 import networks as sg
from jaxgen.families.base import (Trainer, TrainState, apply_player_gradients,
                                  make_optimizer)

AUGMENT = ("", *stylegan2_augment.PRESETS)  # '' (none) or an augment.py preset


def lazy_ratio(interval: int) -> float:
  """The reference's mb_ratio k / (k + 1) of a lazy regulariser every k steps."""
  return interval / (interval + 1)


def lazy_optimizer(cfg, interval: int, num_steps: int):
  """``make_optimizer`` of ``cfg`` with lr * r and betas ** r, r = lazy_ratio."""
  r = lazy_ratio(interval)
  c = ml_collections.ConfigDict(cfg.to_dict())
  c.learning_rate = cfg.learning_rate * r
  c.b1, c.b2 = cfg.b1 ** r, cfg.b2 ** r
  return make_optimizer(c, num_steps)


def ema_beta(step, batch_size: int, ema_kimg: float, ema_rampup: float):
  """0.5 ** (batch / max(ema_nimg, 1e-8)), ema_nimg = ema_kimg * 1000, at most
  ``step * batch * ema_rampup`` with a ramp-up (images seen before this step)."""
  ema_nimg = jnp.asarray(ema_kimg * 1000.0, jnp.float32)
  if ema_rampup:
    ema_nimg = jnp.minimum(ema_nimg, step.astype(jnp.float32) * batch_size * ema_rampup)
  return 0.5 ** (batch_size / jnp.maximum(ema_nimg, 1e-8))


def ada_adjust(p, sign_mean, target: float, batch_size: int, interval: int,
               ada_kimg: float):
  """The ADA heuristic: max(0, p + sign(r_t - target) * batch * interval / (kimg 1e3))."""
  adjust = jnp.sign(sign_mean - target) * (batch_size * interval) / (ada_kimg * 1000.0)
  return jnp.maximum(p + adjust, 0.0)


def path_length(synthesize, ws, key, noise=None):
  """|J^T y| per example, y ~ N(0, I) / sqrt(H W), J = d synthesize(ws) / d ws: the
  norm over w_dim of the vector-Jacobian product, mean of squares over the ws, sqrt.
  ``noise``: the N(0, I) draw of y (NHWC, drawn from ``key`` if not given).
  Returns (lengths [N], images)."""
  img, vjp = jax.vjp(synthesize, ws)
  if noise is None:
    noise = jax.random.normal(key, img.shape)
  noise = noise / math.sqrt(img.shape[1] * img.shape[2])
  (grads,) = vjp(noise)
  return jnp.sqrt(jnp.mean(jnp.sum(jnp.square(grads), axis=2), axis=1)), img


def path_length_penalty(lengths, pl_mean, decay: float):
  """((lengths - a')^2 per example, a') with a' = pl_mean + decay (mean - pl_mean)."""
  new_mean = pl_mean + decay * (jnp.mean(lengths) - pl_mean)
  return jnp.square(lengths - new_mean), new_mean


def _sanitize(grads):
  return jax.tree.map(lambda g: jnp.nan_to_num(g, nan=0.0, posinf=1e5, neginf=-1e5),
                      grads)


class StyleGAN2Trainer(Trainer):
  data_keys = (("image",),)
  # G's and D's calls go through the policy; the losses, the R1 and path-length
  # penalties, w_avg, G_ema and the augment pipeline stay float32.

  def __init__(self, config, spec, stages=None):
    super().__init__(config, spec, stages)
    m, s = config.model, config.stylegan2
    _validate(config, self.example_shape)
    self.resolution = m.resolution
    self.num_classes = m.num_classes
    self.z_dim = m.z_dim
    self.channels = self.example_shape[-1]
    clamp = m.conv_clamp if m.conv_clamp > 0 else None
    self.generator = sg.Generator(
        m.z_dim, m.num_classes, m.w_dim, m.resolution, self.channels,
        mapping_layers=m.mapping_layers, mapping_lr_multiplier=m.mapping_lr_multiplier,
        channel_base=m.channel_base, channel_max=m.channel_max,
        architecture=m.g_architecture, conv_clamp=clamp)
    self.discriminator = sg.Discriminator(
        m.num_classes, m.resolution, self.channels, architecture=m.d_architecture,
        channel_base=m.channel_base, channel_max=m.channel_max, conv_clamp=clamp,
        mbstd_group_size=m.mbstd_group_size, mbstd_num_channels=m.mbstd_num_channels,
        mapping_layers=m.d_mapping_layers)
    self.num_ws = sg.num_ws(m.resolution)
    self.s = s
    self.batch_size = config.train.batch_size
    n = config.train.num_steps
    self.tx = {"generator": lazy_optimizer(config.optim.generator, s.pl_interval, n),
               "discriminator": lazy_optimizer(config.optim.discriminator,
                                               s.r1_interval, n)}
    self.augment_fn = None
    if s.augment:
      self.augment_fn = stylegan2_augment.pipeline(s.augment)

  # --- networks -------------------------------------------------------------------
  def _c(self, labels):
    return (jax.nn.one_hot(labels, self.num_classes) if self.num_classes else None)

  def networks(self):
    z = jnp.zeros((1, self.z_dim))
    c = jnp.zeros((1, self.num_classes)) if self.num_classes else None
    g = max(1, self.config.model.mbstd_group_size)
    x = jnp.zeros((g, self.resolution, self.resolution, self.channels))
    cd = jnp.zeros((g, self.num_classes)) if self.num_classes else None
    return {"generator": (self.generator, (z, c), {"noise_mode": "const"}),
            "discriminator": (self.discriminator, (x, cd), {})}

  def init_state(self, rng):
    nets = self.networks()
    kg, kd = jax.random.split(rng)
    gm, ga, gk = nets["generator"]
    g_vars = gm.init(kg, *ga, **gk)
    dm, da, dk = nets["discriminator"]
    d_vars = dm.init(kd, *da, **dk)
    params = {"generator": g_vars["params"], "discriminator": d_vars["params"]}
    extra = {"buffers": g_vars[sg.BUFFERS],
             "pl_mean": jnp.zeros((), jnp.float32),
             "ada_p": jnp.asarray(self.s.augment_p, jnp.float32),
             "ada_sum": jnp.zeros((), jnp.float32),
             "ada_count": jnp.zeros((), jnp.float32)}
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      opt_state={k: self.tx[k].init(v) for k, v in params.items()},
                      ema_params=jax.tree.map(jnp.copy, params["generator"]),
                      extra=extra)

  # --- the generator's pieces -----------------------------------------------------
  def _g(self, params, buffers, *args, method, rng=None, **kwargs):
    return self.policy.apply(self.generator, {"params": params, sg.BUFFERS: buffers},
                             *args, method=method, rngs={"noise": rng} if rng is not None
                             else None, **kwargs)

  def map(self, params, buffers, z, c):
    return self._g(params, buffers, z, c, method=sg.Generator.map)

  def broadcast(self, params, buffers, w, psi=1.0, cutoff=None):
    return self._g(params, buffers, w, psi, cutoff, method=sg.Generator.broadcast)

  def synthesize(self, params, buffers, ws, rng=None, noise_mode="random",
                 noise_bank=None):
    return self._g(params, buffers, ws, noise_mode, noise_bank,
                   method=sg.Generator.synthesize,
                   rng=rng if noise_bank is None else None)

  def update_w_avg(self, w_avg, w):
    """w_avg <- mean(w) + beta (w_avg - mean(w)) (the reference's lerp)."""
    mean = jnp.mean(jax.lax.stop_gradient(w), axis=0)
    return mean + self.config.model.w_avg_beta * (w_avg - mean)

  def mixing_draws(self, key, z_shape):
    """(cutoff, z2) of style mixing: with probability ``style_mixing_prob`` a
    crossover uniform in [1, num_ws) (else num_ws: no mixing) and the second z."""
    k_u, k_z = jax.random.split(key)
    u = jax.random.uniform(k_u, (2,))
    cutoff = 1 + jnp.floor(u[0] * (self.num_ws - 1)).astype(jnp.int32)  # [1, num_ws)
    cutoff = jnp.where(u[1] < self.s.style_mixing_prob, cutoff, self.num_ws)
    return cutoff, jax.random.normal(k_z, z_shape)

  def mapped_ws(self, params, buffers, z, c, key, mix=None):
    """The training-time ws: map(z), with probability ``style_mixing_prob`` the layers
    from a crossover uniform in [1, num_ws) taken from a second z (``mix`` = (cutoff,
    z2) given explicitly, or drawn from ``key``); and the new buffers (w_avg moved by
    the first mapping)."""
    w = self.map(params, buffers, z, c)
    ws = self.broadcast(params, buffers, w)
    if self.s.style_mixing_prob > 0 or mix is not None:
      cutoff, z2 = self.mixing_draws(key, z.shape) if mix is None else mix
      w2 = self.map(params, buffers, z2, c)
      ws = sg.mix_styles(ws, self.broadcast(params, buffers, w2), cutoff)
    new = dict(buffers)
    new["mapping"] = {"w_avg": self.update_w_avg(buffers["mapping"]["w_avg"], w)}
    return ws, new

  def run_g(self, params, buffers, z, c, key, mix=None, noise_bank=None):
    """(images, ws, new buffers) of one training-time generator pass; ``mix`` and
    ``noise_bank`` replace the draws from ``key`` (mapped_ws, synthesize)."""
    k_ws, k_noise = jax.random.split(key)
    ws, buffers = self.mapped_ws(params, buffers, z, c, k_ws, mix)
    return (self.synthesize(params, buffers, ws, k_noise, noise_bank=noise_bank), ws,
            buffers)

  def pad(self, x):
    """Dataset images -> the model's resolution (padded with -1)."""
    h, w = x.shape[1:3]
    dh, dw = self.resolution - h, self.resolution - w
    if not dh and not dw:
      return x
    return jnp.pad(x, ((0, 0), (dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2),
                       (0, 0)), constant_values=-1.0)

  def crop(self, img):
    """The model's images -> the dataset's resolution (the centre)."""
    h, w = self.example_shape[:2]
    t, l = (self.resolution - h) // 2, (self.resolution - w) // 2
    return img[:, t:t + h, l:l + w]

  def run_d(self, params, img, c, p, key):
    if self.augment_fn is not None:
      img = self.augment_fn(img, p, key)
    return self.policy.apply(self.discriminator, {"params": params}, img, c)

  # --- the four phases' losses (the reference's accumulate_gradients) --------------
  # Each takes its randomness as a key, or explicitly (``mix`` = (cutoff, z2) of style
  # mixing, ``noise_bank`` of the synthesis, ``pl_noise``), so that the parity test
  # (tests/test_stylegan2_training_parity.py) feeds the reference's recorded draws.
  def g_main_loss(self, gp, dp, buffers, z, c, p, key, mix=None, noise_bank=None):
    """Gmain: mean softplus(-D(G(z))); aux (new buffers, fake logits)."""
    k_g, k_d = jax.random.split(key)
    img, _, buffers = self.run_g(gp, buffers, z, c, k_g, mix, noise_bank)
    logits = self.run_d(dp, img, c, p, k_d)
    return jnp.mean(jax.nn.softplus(-logits)), (buffers, logits)

  def g_pl_loss(self, gp, buffers, pl_mean, z, c, key, mix=None, noise_bank=None,
                pl_noise=None):
    """Greg: mean (|J^T y| - a')^2 * pl_weight (before the interval gain); aux (new
    buffers, a' without gradient, mean penalty)."""
    s = self.s
    k_ws, k_noise, k_pl = jax.random.split(key, 3)
    ws, buffers = self.mapped_ws(gp, buffers, z, c, k_ws, mix)
    lengths, _ = path_length(
        lambda v: self.synthesize(gp, buffers, v, k_noise, noise_bank=noise_bank), ws,
        k_pl, pl_noise)
    penalty, new_mean = path_length_penalty(lengths, pl_mean, s.pl_decay)
    loss = jnp.mean(penalty * s.pl_weight)
    return loss, (buffers, jax.lax.stop_gradient(new_mean), jnp.mean(penalty))

  def d_main_loss(self, dp, fake, c, real, c_real, p, key):
    """Dmain: mean softplus(D(fake)) + mean softplus(-D(real)); aux (real logits,
    fake logits)."""
    k_fake, k_real = jax.random.split(key)
    fake_logits = self.run_d(dp, fake, c, p, k_fake)
    real_logits = self.run_d(dp, real, c_real, p, k_real)
    loss = (jnp.mean(jax.nn.softplus(fake_logits)) +
            jnp.mean(jax.nn.softplus(-real_logits)))
    return loss, (real_logits, fake_logits)

  def gradient_penalty(self, dp, x, c, p, key):
    """(|grad_x D(x)|^2 per example, D's logits) of images ``x`` (augmented with
    probability ``p``, as D sees them)."""
    def logits_sum(x):
      logits = self.run_d(dp, x, c, p, key)
      return jnp.sum(logits), logits
    grad_x, logits = jax.grad(logits_sum, has_aux=True)(x)
    return jnp.sum(jnp.square(grad_x), axis=(1, 2, 3)), logits

  def d_r1_loss(self, dp, real, c_real, p, key):
    """Dreg: mean |grad_x D(x)|^2 * r1_gamma / 2 (before the interval gain); aux (mean
    penalty, real logits)."""
    penalty, logits = self.gradient_penalty(dp, real, c_real, p, key)
    return jnp.mean(penalty * (self.s.r1_gamma / 2)), (jnp.mean(penalty), logits)

  def d_r2_loss(self, dp, fake, c, p, key):
    """Dreg's R2: mean |grad_x D(fake)|^2 * r2_gamma / 2 (before the interval gain)
    on generated images ``fake`` (no gradient reaches G); aux the mean penalty."""
    penalty, _ = self.gradient_penalty(dp, jax.lax.stop_gradient(fake), c, p, key)
    return jnp.mean(penalty * (self.s.r2_gamma / 2)), jnp.mean(penalty)

  # --- training -------------------------------------------------------------------
  def train_step(self, state, batch, rng, frozen=None):
    s = self.s
    real = self.pad(batch["image"])
    n = real.shape[0]
    c_real = self._c(batch["label"]) if self.num_classes else None
    keys = jax.random.split(rng, 4)  # Gmain, Greg, Dmain, Dreg
    p = state.extra["ada_p"]
    step = state.step

    # The z (and labels) of the four phases in one draw, as the reference's all_gen_z.
    k_z, k_c = jax.random.split(jax.random.fold_in(rng, 4))
    all_z = jax.random.normal(k_z, (4, n, self.z_dim))
    all_c = jnp.floor(jax.random.uniform(k_c, (4, n)) * max(self.num_classes, 1))

    def phase_latents(i, num):
      c = (self._c(all_c[i, :num].astype(jnp.int32)) if self.num_classes else None)
      return all_z[i, :num], c

    # Gmain.
    z, c = phase_latents(0, n)
    (g_loss, (buffers, fake_logits)), grads = jax.value_and_grad(
        self.g_main_loss, has_aux=True)(
            state.params["generator"], state.params["discriminator"],
            state.extra["buffers"], z, c, p, jax.random.fold_in(keys[0], 1))
    state, g_norm = apply_player_gradients(state, "generator", _sanitize(grads), self.tx)
    state = state.replace(extra={**state.extra, "buffers": buffers})

    # Greg: path length, lazily.
    def g_reg(state):
      m = s.pl_batch_shrink
      num = max(1, n // m)
      z, c = phase_latents(1, num)
      extra = state.extra

      def loss_fn(gp):
        loss, aux = self.g_pl_loss(gp, extra["buffers"], extra["pl_mean"], z, c,
                                   jax.random.fold_in(keys[1], 1))
        return loss * s.pl_interval, aux

      (_, (buffers, pl_mean, penalty)), grads = jax.value_and_grad(
          loss_fn, has_aux=True)(state.params["generator"])
      state, _ = apply_player_gradients(state, "generator", _sanitize(grads), self.tx)
      state = state.replace(extra={**state.extra, "buffers": buffers,
                                   "pl_mean": pl_mean})
      return state, penalty

    if s.pl_weight > 0:
      state, pl_penalty = jax.lax.cond(step % s.pl_interval == 0, g_reg,
                                       lambda st: (st, jnp.zeros((), jnp.float32)),
                                       state)
    else:
      pl_penalty = jnp.zeros((), jnp.float32)

    # Dmain.
    z, c = phase_latents(2, n)
    k_g, k_d = jax.random.split(jax.random.fold_in(keys[2], 1))
    fake, _, buffers = self.run_g(state.params["generator"], state.extra["buffers"],
                                  z, c, k_g)
    fake = jax.lax.stop_gradient(fake)
    (d_loss, (real_logits, d_fake_logits)), grads = jax.value_and_grad(
        self.d_main_loss, has_aux=True)(state.params["discriminator"], fake, c, real,
                                        c_real, p, k_d)
    state, d_norm = apply_player_gradients(state, "discriminator", _sanitize(grads),
                                           self.tx)
    extra = {**state.extra, "buffers": buffers,
             "ada_sum": state.extra["ada_sum"] + jnp.sum(jnp.sign(real_logits)),
             "ada_count": state.extra["ada_count"] + real_logits.size}
    state = state.replace(extra=extra)

    # Dreg: R1 on the reals and R2 on Dmain's fakes, lazily, in one Adam step.
    zero = jnp.zeros((), jnp.float32)

    def d_reg(state):
      k_aug = jax.random.fold_in(keys[3], 1)

      def loss_fn(dp):
        terms, aux = [], {"r1": zero, "r2": zero}
        if s.r1_gamma > 0:
          loss, (aux["r1"], aux["logits"]) = self.d_r1_loss(dp, real, c_real, p, k_aug)
          terms.append(loss)
        if s.r2_gamma > 0:
          loss, aux["r2"] = self.d_r2_loss(dp, fake, c, p,
                                           jax.random.fold_in(keys[3], 2))
          terms.append(loss)
        return sum(terms[1:], terms[0]) * s.r1_interval, aux

      (_, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(
          state.params["discriminator"])
      state, _ = apply_player_gradients(state, "discriminator", _sanitize(grads),
                                        self.tx)
      if "logits" in aux:  # R1's real logits count towards ADA's r_t
        logits, extra = aux["logits"], state.extra
        state = state.replace(extra={
            **extra, "ada_sum": extra["ada_sum"] + jnp.sum(jnp.sign(logits)),
            "ada_count": extra["ada_count"] + logits.size})
      return state, (aux["r1"], aux["r2"])

    if s.r1_gamma > 0 or s.r2_gamma > 0:
      state, (r1_penalty, r2_penalty) = jax.lax.cond(
          step % s.r1_interval == 0, d_reg, lambda st: (st, (zero, zero)), state)
    else:
      r1_penalty = r2_penalty = zero

    # G_ema, the step counter and ADA's p.
    beta = ema_beta(step, self.batch_size, s.ema_kimg, s.ema_rampup)
    g = state.params["generator"]
    ema = jax.tree.map(lambda e, q: q + beta * (e - q), state.ema_params, g)
    new_step = step + 1
    extra = state.extra
    if self.augment_fn is not None and s.ada_target > 0:
      due = new_step % s.ada_interval == 0
      r_t = extra["ada_sum"] / jnp.maximum(extra["ada_count"], 1.0)
      new_p = ada_adjust(extra["ada_p"], r_t, s.ada_target, self.batch_size,
                         s.ada_interval, s.ada_kimg)
      extra = {**extra, "ada_p": jnp.where(due, new_p, extra["ada_p"]),
               "ada_sum": jnp.where(due, 0.0, extra["ada_sum"]),
               "ada_count": jnp.where(due, 0.0, extra["ada_count"])}
    state = state.replace(step=new_step, ema_params=ema, extra=extra)
    metrics = {"loss": g_loss, "g_loss": g_loss, "d_loss": d_loss,
               "g_grad_norm": g_norm, "d_grad_norm": d_norm,
               "pl_penalty": pl_penalty, "r1_penalty": r1_penalty,
               "r2_penalty": r2_penalty,
               "pl_mean": state.extra["pl_mean"], "ada_p": state.extra["ada_p"],
               "real_sign": jnp.mean(jnp.sign(real_logits)),
               "fake_sign": jnp.mean(jnp.sign(d_fake_logits)),
               "g_fake_sign": jnp.mean(jnp.sign(fake_logits)), "ema_beta": beta}
    return state, metrics

  # --- evaluation -----------------------------------------------------------------
  def eval_step(self, state, batch, rng, frozen=None):
    """Masked sums of D's mean sign on real data and on as many fakes of the trained
    generator (no augmentation), and the ADA p (its sum times the count)."""
    mask = batch["mask"]
    real = self.pad(batch["image"])
    n = real.shape[0]
    c_real = self._c(batch["label"]) if self.num_classes else None
    kz, kc, kn = jax.random.split(rng, 3)
    z = jax.random.normal(kz, (n, self.z_dim))
    c = (self._c(jax.random.randint(kc, (n,), 0, self.num_classes))
         if self.num_classes else None)
    buffers = state.extra["buffers"]
    g = state.params["generator"]
    fake = self.synthesize(g, buffers, self.broadcast(g, buffers, self.map(g, buffers,
                                                                           z, c)), kn)
    d = state.params["discriminator"]
    real_logits = self.policy.apply(self.discriminator, {"params": d}, real, c_real)
    fake_logits = self.policy.apply(self.discriminator, {"params": d}, fake, c)
    count = mask.sum()
    return {"count": count,
            "d_real_sign": (jnp.sign(real_logits) * mask).sum(),
            "d_fake_sign": (jnp.sign(fake_logits) * mask).sum(),
            "d_real": (jax.nn.sigmoid(real_logits) * mask).sum(),
            "d_fake": (jax.nn.sigmoid(fake_logits) * mask).sum(),
            "ada_p": state.extra["ada_p"] * count,
            "pl_mean": state.extra["pl_mean"] * count}

  # --- samples and pictures -------------------------------------------------------
  @property
  def conditioning_keys(self):
    return ("label",) if self.num_classes else ()

  def images(self, state, ws, rng=None, noise_mode="random"):
    """ws -> G_ema's images in [0, 1] at the dataset's resolution."""
    img = self.synthesize(state.ema_params, state.extra["buffers"], ws, rng, noise_mode)
    return jnp.clip((self.crop(img) + 1) / 2, 0.0, 1.0)

  def ws_of(self, state, z, labels, psi=1.0, cutoff=None):
    g, b = state.ema_params, state.extra["buffers"]
    return self.broadcast(g, b, self.map(g, b, z, self._c(labels)), psi, cutoff)

  def generate(self, state, rng, num: int, inputs=None, frozen=None):
    """``num`` images of G_ema (random noise, psi ``model.truncation_psi``); for
    conditional models of ``inputs["label"]`` (default: labels drawn uniformly)."""
    kz, kc, kn = jax.random.split(rng, 3)
    z = jax.random.normal(kz, (num, self.z_dim))
    labels = None
    if self.num_classes:
      labels = (inputs["label"] if inputs else
                jax.random.randint(kc, (num,), 0, self.num_classes))
    ws = self.ws_of(state, z, labels, self.config.model.truncation_psi)
    return self.images(state, ws, kn)

  def style_mixing(self, state, rng, rows: int, cols: int):
    """The style-mixing grid: (rows + 1) x (cols + 1) images; the first row shows the
    column sources, the first column the row sources, image (i, j) the coarse styles
    (w's below num_ws // 2) of row i and the fine ones of column j (const noise)."""
    kr, kc = jax.random.split(rng)
    labels = lambda k: (jnp.zeros((k,), jnp.int32) if self.num_classes else None)
    wr = self.ws_of(state, jax.random.normal(kr, (rows, self.z_dim)), labels(rows))
    wc = self.ws_of(state, jax.random.normal(kc, (cols, self.z_dim)), labels(cols))
    cut = self.num_ws // 2
    mixed = sg.mix_styles(jnp.repeat(wr, cols, 0), jnp.tile(wc, (rows, 1, 1)), cut)
    img_r = self.images(state, wr, noise_mode="const")
    img_c = self.images(state, wc, noise_mode="const")
    img_m = self.images(state, mixed, noise_mode="const")
    blank = jnp.ones_like(img_r[:1])
    top = jnp.concatenate([blank, img_c])
    body = jnp.concatenate([img_r[:, None], img_m.reshape(rows, cols, *img_m.shape[1:])],
                           axis=1).reshape(rows * (cols + 1), *img_m.shape[1:])
    return jnp.concatenate([top, body])

  def truncation_sweep(self, state, rng, rows: int, steps: int):
    """rows x steps images, psi from 1 (left) to 0 (right: w_avg) along each row."""
    z = jax.random.normal(rng, (rows, self.z_dim))
    labels = (jnp.arange(rows) % self.num_classes) if self.num_classes else None
    ws = self.ws_of(state, z, labels)  # psi = 1
    w_avg = state.extra["buffers"]["mapping"]["w_avg"]
    psi = jnp.linspace(1.0, 0.0, steps)[None, :, None, None]
    swept = w_avg + psi * (ws[:, None] - w_avg)
    return self.images(state, swept.reshape(rows * steps, *ws.shape[1:]),
                       noise_mode="const")

  def interpolate_w(self, state, rng, rows: int, steps: int):
    """rows x steps images along straight lines in W between two samples' w."""
    k0, k1 = jax.random.split(rng)
    labels = (jnp.arange(rows) % self.num_classes) if self.num_classes else None
    w0 = self.ws_of(state, jax.random.normal(k0, (rows, self.z_dim)), labels)
    w1 = self.ws_of(state, jax.random.normal(k1, (rows, self.z_dim)), labels)
    t = jnp.linspace(0.0, 1.0, steps)[None, :, None, None]
    path = w0[:, None] + t * (w1[:, None] - w0[:, None])
    return self.images(state, path.reshape(rows * steps, *w0.shape[1:]),
                       noise_mode="const")

  def visualize(self, state, rng, batch, frozen=None):
    j = {"generate": self.compiled(self.generate, static_argnames="num"),
         "mixing": self.compiled(self.style_mixing, static_argnames=("rows", "cols")),
         "truncation": self.compiled(self.truncation_sweep,
                                     static_argnames=("rows", "steps")),
         "interpolation": self.compiled(self.interpolate_w,
                                        static_argnames=("rows", "steps"))}
    n = self.config.train.num_samples
    u8 = lambda a: viz.to_uint8(np.asarray(a))
    rows = max(1, min(8, n))
    if self.num_classes:
      per_row = max(1, n // self.num_classes)
      labels = jnp.repeat(jnp.arange(self.num_classes), per_row)
      samples = viz.grid(u8(j["generate"](state, rng, len(labels),
                                          {"label": labels})), rows=self.num_classes)
    else:
      samples = viz.grid(u8(j["generate"](state, rng, n)))
    k1, k2, k3 = (jax.random.fold_in(rng, i) for i in (1, 2, 3))
    return {"samples": samples,
            "style_mixing": viz.grid(u8(j["mixing"](state, k1, rows, rows)),
                                     rows=rows + 1),
            "truncation": viz.grid(u8(j["truncation"](state, k2, rows, 9)), rows=rows),
            "interpolation_w": viz.grid(u8(j["interpolation"](state, k3, rows, 10)),
                                        rows=rows)}


def _validate(config, example_shape):
  m, s, d = config.model, config.stylegan2, config.data
  if m.resolution < 4 or m.resolution & (m.resolution - 1):
    raise ConfigError(f"config.model.resolution={m.resolution}: StyleGAN2 needs a "
                      f"power of two, at least 4 (and at least the data's size).")
  h, w = example_shape[:2]
  if h > m.resolution or w > m.resolution:
    raise ConfigError(f"The data is {h}x{w}, larger than config.model.resolution="
                      f"{m.resolution}: set the resolution to a power of two >= the "
                      f"data's, or resize the data (config.data.resize).")
  if d.scale != "symmetric" or d.binarize:
    raise ConfigError("StyleGAN2 models images in [-1, 1]: set "
                      "--config.data.scale=symmetric and --config.data.binarize=''.")
  if s.augment not in AUGMENT:
    raise ConfigError(f"config.stylegan2.augment={s.augment!r}; use one of {AUGMENT} "
                      f"('' for none).")
  if s.style_mixing_prob and sg.num_ws(m.resolution) < 2:
    raise ConfigError("config.stylegan2.style_mixing_prob: style mixing needs at "
                      "least two w's; set "
                      "config.stylegan2.style_mixing_prob=0.")
  if not 0.0 <= s.style_mixing_prob <= 1.0:
    raise ConfigError(f"config.stylegan2.style_mixing_prob={s.style_mixing_prob}: a "
                      f"probability in [0, 1].")
  if not 0.0 <= m.truncation_psi <= 1.0:
    raise ConfigError(f"config.model.truncation_psi={m.truncation_psi}: the truncation "
                      f"trick interpolates between w_avg (0) and w (1); use [0, 1].")
  for name in ("augment_p", "ada_target"):  # as NVlabs' train.py refuses --p, --target
    if not 0.0 <= s[name] <= 1.0:
      raise ConfigError(f"config.stylegan2.{name}={s[name]}: a probability in [0, 1].")
  for name in ("pl_interval", "r1_interval", "ada_interval", "pl_batch_shrink"):
    if s[name] < 1:
      raise ConfigError(f"config.stylegan2.{name}={s[name]}: at least 1.")
  for name in ("r1_gamma", "r2_gamma"):  # as NVlabs' train.py refuses --gamma
    if not s[name] >= 0:
      raise ConfigError(f"config.stylegan2.{name}={s[name]}: a penalty weight, at "
                        f"least 0 (0 turns it off).")
  if s.augment and not (s.augment_p > 0 or s.ada_target > 0):
    raise ConfigError(f"config.stylegan2.augment={s.augment!r} would never apply: "
                      f"augment_p and ada_target are 0. Set "
                      f"config.stylegan2.augment_p for a fixed p (ada_target=0), or "
                      f"config.stylegan2.ada_target for ADA, or augment=''.")
  if not s.augment and s.augment_p > 0:
    raise ConfigError(f"config.stylegan2.augment_p={s.augment_p} without a pipeline: "
                      f"set config.stylegan2.augment (one of {AUGMENT[1:]}), or "
                      f"augment_p=0.")
  if s.augment and s.ada_target > 0 and not s.ada_kimg > 0:
    raise ConfigError(f"config.stylegan2.ada_kimg={s.ada_kimg}: ADA moves p by its "
                      f"whole range in ada_kimg thousand images; use a positive "
                      f"number (the reference's 500), or ada_target=0 for a fixed p.")
  bs, g = config.train.batch_size, m.mbstd_group_size
  if g > 0 and bs % min(g, bs):
    raise ConfigError(f"config.train.batch_size={bs} must be a multiple of "
                      f"config.model.mbstd_group_size={g} (minibatch std groups).")
  if m.num_classes == 1 or m.num_classes < 0:
    raise ConfigError(f"config.model.num_classes={m.num_classes}: 0 (unconditional) or "
                      f"the number of classes.")


Trainer = StyleGAN2Trainer
