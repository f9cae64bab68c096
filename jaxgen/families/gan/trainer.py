"""The GAN family: MLP GAN, DCGAN, conditional GAN and AC-GAN, two players in one state.

The state is the two-player state of jaxgen/families/adversarial.py (the core the
adversarial families share): ``params = {"generator", "discriminator"}``, one optimiser
state per player (``config.optim.generator`` / ``config.optim.discriminator``), each
updated by ``base.apply_player_gradients``, BatchNorm statistics in
``extra["batch_stats"]`` (per player) and an EMA of the generator in ``ema_params``.
``step`` counts generator steps.

One train step is ``config.gan.d_steps`` discriminator updates, each on fresh noise
(``update_latents``) against the same real batch, then one generator update on the
noise of the last discriminator update (the reference DCGAN reuses that fake batch).
BatchNorm runs in training mode as in pytorch/examples ``dcgan``: the discriminator
sees the real and the fake batch in separate forward passes, and every forward pass
updates the running averages; in the generator update, the generator's forward pass
repeats the last discriminator update's (same parameters, same z), so its statistics
are not counted twice. Under ``jit`` over a sharded global batch, BatchNorm's batch
statistics are those of the global batch: N devices compute what one device does.

Losses (``config.gan.loss``): minimax | nonsaturating | hinge | lsgan, from
jaxgen/losses.py; ``config.gan.r1_gamma`` > 0 adds gamma/2 times the R1 penalty on real
data to the discriminator's loss. AC-GAN adds ``config.gan.aux_weight`` times the
cross-entropy of the auxiliary classifier to both players' losses (the discriminator
on real and fake images, the generator on its fakes).

Data: images scaled to [-1, 1] (``config.data.scale='symmetric'``, for the tanh
output), or toy 2-D points (batch key ``x``); for those, ``generate`` returns the
points (num, 2) instead of images, and the picture is a scatter plot of real and
generated points over the discriminator's D(x).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgen import losses, viz
from jaxgen.errors import ConfigError
from jaxgen.families.gan import networks as gan_models
from jaxgen.families import adversarial
from jaxgen.families.adversarial import apply_module
from jaxgen.families.base import Trainer, apply_player_gradients, make_optimizer

CONDITIONING = ("", "cgan", "acgan")


class GANTrainer(Trainer):
  data_keys = (("image",), ("x",))  # images, or toy 2-D points

  def __init__(self, config, spec, stages=None):
    super().__init__(config, spec, stages)
    m, g = config.model, config.gan
    self.points = len(self.example_shape) == 1
    self.conditioning = m.conditioning
    self.num_classes = m.num_classes if self.conditioning else 0
    self.latent_dim = m.latent_dim
    self.loss_kind, self.d_steps = g.loss, g.d_steps
    self.r1_gamma, self.aux_weight = g.r1_gamma, g.aux_weight
    _validate(config, self.points)
    # Each architecture reads its own fields (gan_models.make documents them).
    arch_fields = {
        "mlp": lambda: {"hidden_g": m.hidden_g, "hidden_d": m.hidden_d,
                        "g_batch_norm": m.g_batch_norm, "d_dropout": m.d_dropout},
        "dcgan": lambda: {"base_g": m.ngf, "base_d": m.ndf, "upsample": m.upsample,
                          "d_batch_norm": m.d_batch_norm},
    }.get(m.arch, dict)()
    self.generator, self.discriminator = gan_models.make(
        m.arch, self.example_shape, num_classes=self.num_classes,
        conditioning=self.conditioning, **arch_fields)
    n = config.train.num_steps
    self.tx = {"generator": make_optimizer(config.optim.generator, n),
               "discriminator": make_optimizer(config.optim.discriminator,
                                               n * self.d_steps)}
    self.ema_decay = config.optim.ema_decay

  # --- networks -------------------------------------------------------------------
  def networks(self):
    z = jnp.zeros((1, self.latent_dim))
    y = jnp.zeros((1,), jnp.int32) if self.num_classes else None
    x = jnp.zeros((1, *self.example_shape))
    y_d = y if self.conditioning == "cgan" else None
    return {"generator": (self.generator, (z, y), {"train": False}),
            "discriminator": (self.discriminator, (x, y_d), {"train": False})}

  def init_state(self, rng):
    return adversarial.init_players(self.networks(), rng, self.tx,
                                    ema_player="generator")

  def _discriminate(self, params, stats, x, y, *, train: bool, rng=None):
    """(logits, class logits or None, new statistics)."""
    y_d = y if self.conditioning == "cgan" else None
    out, stats = apply_module(self.discriminator, params, stats, x, y_d, train=train,
                              rng=rng, policy=self.policy)
    if self.conditioning == "acgan":
      return out[0], out[1], stats
    return out, None, stats

  def latents(self, rng, num: int):
    """z ~ N(0, I) and, for conditional models, labels drawn uniformly."""
    kz, ky = jax.random.split(rng)
    z = jax.random.normal(kz, (num, self.latent_dim))
    y = (jax.random.randint(ky, (num,), 0, self.num_classes) if self.num_classes
         else None)
    return z, y

  def update_latents(self, rng, i: int, num: int):
    """The z (and labels) of discriminator update ``i`` of the train step keyed
    ``rng``; the generator update reuses those of the last one."""
    return self.latents(jax.random.fold_in(jax.random.split(rng)[0], i), num)

  def _inputs(self, batch):
    x = batch["x"] if self.points else batch["image"]
    return x, (batch["label"] if self.num_classes else None)

  # --- training -------------------------------------------------------------------
  def train_step(self, state, batch, rng, frozen=None):
    x, y_real = self._inputs(batch)
    num = x.shape[0]
    g_params = state.params["generator"]  # fixed during the D updates
    classify = lambda logits, y: optax.softmax_cross_entropy_with_integer_labels(
        logits, y).mean()

    drop_key = jax.random.split(rng)[1]  # dropout, if the discriminator has any

    def d_update(state, i):
      stats = state.extra[adversarial.STATS]
      d_stats = stats["discriminator"]
      z, y_fake = self.update_latents(rng, i, num)
      k_real, k_fake = jax.random.split(jax.random.fold_in(drop_key, i))
      generate = lambda gp: apply_module(self.generator, gp, stats["generator"], z,
                                         y_fake, train=True, policy=self.policy)
      if i == self.d_steps - 1:  # its G(z) serves the generator update too
        g_out, g_vjp, g_stats = jax.vjp(generate, g_params, has_aux=True)
      else:
        (g_out, g_stats), g_vjp = generate(g_params), None
      fake = jax.lax.stop_gradient(g_out)

      def loss_fn(dp):
        real_logits, real_cls, s = self._discriminate(dp, d_stats, x, y_real,
                                                      train=True, rng=k_real)
        fake_logits, fake_cls, s = self._discriminate(dp, s, fake, y_fake, train=True,
                                                      rng=k_fake)
        loss = losses.discriminator_loss(real_logits, fake_logits, self.loss_kind)
        aux = {"d_real": jax.nn.sigmoid(real_logits).mean(),
               "d_fake": jax.nn.sigmoid(fake_logits).mean()}
        if self.conditioning == "acgan":
          aux["d_aux_loss"] = classify(real_cls, y_real) + classify(fake_cls, y_fake)
          aux["d_aux_accuracy"] = (real_cls.argmax(-1) == y_real).mean()
          loss += self.aux_weight * aux["d_aux_loss"]
        if self.r1_gamma:
          # On real data, with the statistics the loss saw (BatchNorm is refused).
          d_fn = lambda v: self._discriminate(dp, d_stats, v, y_real, train=True,
                                              rng=k_real)[0]
          aux["r1"] = losses.r1_penalty(d_fn, x)
          loss += 0.5 * self.r1_gamma * aux["r1"]
        return loss, (s, aux)

      (loss, (d_stats, aux)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
          state.params["discriminator"])
      state, grad_norm = apply_player_gradients(state, "discriminator", grads, self.tx)
      state = adversarial.replace_stats(state, generator=g_stats,
                                        discriminator=d_stats)
      return state, {"d_loss": loss, "d_grad_norm": grad_norm, **aux}, (g_out, g_vjp)

    # A Python loop (d_steps is small and static): on CPU, XLA ran this step more
    # slowly with the D updates inside lax.scan (a while loop), even unrolled
    # (docs/results.md, "Implementation choices").
    d_metrics = []
    for i in range(self.d_steps):
      state, m, (fake, g_vjp) = d_update(state, i)
      d_metrics.append(m)
    # Means over the D updates of this step.
    d_metrics = jax.tree.map(lambda *v: jnp.mean(jnp.stack(v)), *d_metrics)

    # The generator update, on the last D update's noise and its G(z): the generator
    # is the same, so its forward pass is not recomputed (BatchNorm's batch statistics
    # make the output independent of the running statistics); the gradient flows back
    # through that pass's vjp. Its statistics already counted in the D update.
    _, y_fake = self.update_latents(rng, self.d_steps - 1, num)
    d_params = state.params["discriminator"]
    d_stats = state.extra[adversarial.STATS]["discriminator"]

    def g_loss_of(fake):
      logits, cls, s = self._discriminate(d_params, d_stats, fake, y_fake, train=True,
                                          rng=jax.random.fold_in(drop_key, self.d_steps))
      loss = losses.generator_loss(logits, self.loss_kind)
      aux = {"d_fake_after": jax.nn.sigmoid(logits).mean()}
      if self.conditioning == "acgan":
        aux["g_aux_loss"] = classify(cls, y_fake)
        loss += self.aux_weight * aux["g_aux_loss"]
      return loss, (s, aux)

    (g_loss, (d_stats, g_aux)), d_fake = jax.value_and_grad(g_loss_of, has_aux=True)(
        fake)
    grads, = g_vjp(d_fake)
    state, g_grad_norm = apply_player_gradients(state, "generator", grads, self.tx,
                                                count_step=True)
    state = adversarial.update_ema(state, "generator", self.ema_decay)
    state = adversarial.replace_stats(state, discriminator=d_stats)
    # ``loss`` (what the loop shows and checks) is the generator's loss.
    metrics = {"loss": g_loss, "g_loss": g_loss, "g_grad_norm": g_grad_norm,
               **d_metrics, **g_aux}
    return state, metrics

  # --- evaluation -----------------------------------------------------------------
  def eval_step(self, state, batch, rng, frozen=None):
    """Masked sums of D(x) on real data, D(G(z)) on as many fakes, and the GAN value
    log D(x) + log(1 - D(G(z))), for the players as trained (not the EMA generator),
    BatchNorm with running statistics."""
    x, y = self._inputs(batch)
    mask = batch["mask"]
    stats = state.extra[adversarial.STATS]
    z, y_fake = self.latents(rng, x.shape[0])
    fake, _ = apply_module(self.generator, state.params["generator"],
                           stats["generator"], z, y_fake, train=False,
                           policy=self.policy)
    d_params = state.params["discriminator"]
    real_logits, real_cls, _ = self._discriminate(d_params, stats["discriminator"], x,
                                                  y, train=False)
    fake_logits, _, _ = self._discriminate(d_params, stats["discriminator"], fake,
                                           y_fake, train=False)
    value = jax.vmap(losses.gan_value)(real_logits[:, None], fake_logits[:, None])
    sums = {"count": mask.sum(), "d_real": (jax.nn.sigmoid(real_logits) * mask).sum(),
            "d_fake": (jax.nn.sigmoid(fake_logits) * mask).sum(),
            "gan_value": (value * mask).sum()}
    if self.conditioning == "acgan":
      sums["aux_accuracy"] = ((real_cls.argmax(-1) == y) * mask).sum()
    return sums

  # --- samples and pictures -------------------------------------------------------
  def _generate(self, state, z, y):
    stats = state.extra[adversarial.STATS]["generator"]
    out, _ = apply_module(self.generator, state.ema_params, stats, z, y, train=False,
                          policy=self.policy)
    return out if self.points else jnp.clip((out + 1) / 2, 0.0, 1.0)

  @property
  def conditioning_keys(self):
    return ("label",) if self.num_classes else ()

  def generate(self, state, rng, num: int, inputs=None, frozen=None):
    """``num`` samples of the EMA generator (BatchNorm with running statistics):
    images in [0, 1] (num, H, W, C), or for toy 2-D data the points (num, 2); for
    conditional models of ``inputs["label"]`` (default: labels drawn uniformly)."""
    z, y = self.latents(rng, num)
    if inputs and self.num_classes:
      y = inputs["label"]
    return self._generate(state, z, y)

  def interpolate(self, state, rng, rows: int, steps: int):
    """Samples along linear and spherical (``adversarial.slerp``) paths between pairs
    of latents: two arrays (rows * steps, ...); conditional rows keep one class (row
    mod K)."""
    k0, k1, _ = jax.random.split(rng, 3)
    z0, z1 = (jax.random.normal(k, (rows, self.latent_dim)) for k in (k0, k1))
    linear, spherical = adversarial.interpolate_latents(z0, z1, steps)
    y = (jnp.repeat(jnp.arange(rows) % self.num_classes, steps) if self.num_classes
         else None)
    flat = lambda path: path.reshape(rows * steps, self.latent_dim)
    return (self._generate(state, flat(linear), y),
            self._generate(state, flat(spherical), y))

  def d_probability(self, state, points):
    """D(x) (sigmoid of the logits, running statistics) at points (N, 2)."""
    logits, _, _ = self._discriminate(state.params["discriminator"],
                                      state.extra[adversarial.STATS]["discriminator"],
                                      points, None, train=False)
    return jax.nn.sigmoid(logits)

  def visualize(self, state, rng, batch, frozen=None):
    if self.points:
      return {"samples": self._scatter(state, rng)}
    n = self.config.train.num_samples
    u8 = lambda a: viz.to_uint8(np.asarray(a))
    if self.num_classes:  # row = class
      per_row = max(1, n // self.num_classes)
      z = jax.random.normal(rng, (self.num_classes * per_row, self.latent_dim))
      y = jnp.repeat(jnp.arange(self.num_classes), per_row)
      samples = viz.grid(u8(self.compiled(self._generate)(state, z, y)),
                         rows=self.num_classes)
    else:
      samples = viz.grid(u8(self.compiled(self.generate, static_argnames="num")(
          state, rng, n)))
    rows = self.num_classes or 8
    interpolate = self.compiled(self.interpolate, static_argnames=("rows", "steps"))
    linear, spherical = interpolate(state, jax.random.fold_in(rng, 1), rows, 10)
    return {"samples": samples,
            "interpolation_linear": viz.grid(u8(linear), rows=rows),
            "interpolation_slerp": viz.grid(u8(spherical), rows=rows)}

  def _scatter(self, state, rng, size: int = 256):
    """``train.num_samples`` real (blue, from the test split) and generated (red)
    points over D(x) (darker = more 'real')."""
    from jaxgen import data
    source = data.get_source(self.config.data, "test")
    num = min(self.config.train.num_samples, len(source))
    real = source[np.arange(num)]["x"]
    fake = np.asarray(self.compiled(self.generate, static_argnames="num")(
        state, rng, num))
    lo, hi = np.percentile(real, 0.5, axis=0), np.percentile(real, 99.5, axis=0)
    centre, half = (lo + hi) / 2, 0.6 * float(np.max(hi - lo))
    cells = 64
    u = centre[None] + half * (2 * (np.arange(cells) + 0.5) / cells - 1)[:, None]
    gx, gy = np.meshgrid(u[:, 0], u[::-1, 1])  # image rows run top (high y) down
    grid_pts = np.stack([gx.ravel(), gy.ravel()], -1).astype(np.float32)
    d = np.asarray(self.compiled(self.d_probability)(state, jnp.asarray(grid_pts)))
    shade = (255 - 90 * d.reshape(cells, cells)).astype(np.uint8)
    image = np.repeat(np.repeat(shade, size // cells, 0), size // cells, 1)
    image = np.repeat(image[..., None], 3, -1)
    scale = (size - 2) / (2 * half)
    for pts, colour in ((real, (40, 90, 220)), (fake, (220, 50, 30))):
      col = np.round((pts[:, 0] - centre[0] + half) * scale).astype(int)
      row = np.round((centre[1] + half - pts[:, 1]) * scale).astype(int)
      keep = (col >= 0) & (col < size - 1) & (row >= 0) & (row < size - 1)
      for dr in (0, 1):
        for dc in (0, 1):
          image[row[keep] + dr, col[keep] + dc] = colour
    return image


def _validate(config, points: bool):
  m, g, d = config.model, config.gan, config.data
  if g.loss not in losses.GAN_LOSSES:
    raise ConfigError(f"config.gan.loss={g.loss!r}; use one of {losses.GAN_LOSSES}.")
  if g.d_steps < 1:
    raise ConfigError(f"config.gan.d_steps={g.d_steps}; it must be at least 1.")
  cond = m.conditioning
  if cond not in CONDITIONING:
    raise ConfigError(f"config.model.conditioning={cond!r}; use '' (none), cgan or "
                      f"acgan.")
  if cond and m.num_classes < 2:
    raise ConfigError(f"config.model.conditioning={cond!r} needs the number of classes: "
                      f"set --config.model.num_classes (10 for MNIST).")
  if points and m.arch != "mlp":
    raise ConfigError(f"config.model.arch={m.arch!r} needs images, but the toy 2-D data "
                      f"are points: use --config.model.arch=mlp.")
  if cond and points:
    raise ConfigError("The toy 2-D data has no labels: set "
                      "--config.model.conditioning=''.")
  if g.r1_gamma and m.arch == "dcgan" and m.d_batch_norm:
    raise ConfigError("R1 needs per-example gradients, but a BatchNorm discriminator "
                      "mixes the examples of a batch: set "
                      "--config.model.d_batch_norm=False, or --config.gan.r1_gamma=0.")
  if not points and (d.scale != "symmetric" or d.binarize):
    raise ConfigError("The generator's tanh output models grey levels in [-1, 1]: set "
                      "--config.data.scale=symmetric and --config.data.binarize=''.")


Trainer = GANTrainer
