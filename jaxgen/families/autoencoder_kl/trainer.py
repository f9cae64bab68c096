"""The KL-regularised first stage of latent diffusion (Rombach et al. 2022): CompVis'
``AutoencoderKL`` (jaxgen/models/autoencoder_kl.py) trained with their
``LPIPSWithDiscriminator`` (losses.py), a continuous ``Autoencoder`` stage.

One training step is CompVis' Lightning step with its two optimisers, in order:

1. the autoencoder (``opt_ae``): x (the data, mapped to [-1, 1]) -> posterior ->
   a sample z -> x_rec; the loss of losses.py, with the adaptive weight from the
   gradients of the nll and of g at the decoder's ``conv_out`` kernel (``jax.grad``
   through that layer alone, at the decoder's features); the PatchGAN sees x_rec in
   train mode (BatchNorm's batch statistics);
2. the discriminator (``opt_disc``): the reference runs the autoencoder again for this
   optimiser (Lightning calls ``training_step`` once per optimiser), so x_rec is
   recomputed with the updated autoencoder and a new posterior sample, and D learns on
   (x, x_rec) with disc_factor * the hinge loss.

Before ``disc_start`` disc_factor is 0 and, as in the reference, everything else
runs: the PatchGAN sees x_rec, the adaptive weight is computed (and multiplied by 0),
the discriminator's BatchNorm statistics move and its Adam takes zero-gradient steps,
which move no weight but count the steps, as PyTorch's Adam does. Both optimisers
are Adam with betas (0.5, 0.9) (``config.optim``).

The learned ``logvar`` (the loss's own parameter, CompVis' ``loss.logvar``; a player
of its own here: ``params["logvar"]``) is trained by the autoencoder's optimiser
(``loss.learn_logvar``). CompVis' ``configure_optimizers`` leaves it out of
``opt_ae``, so in the reference it never moves from ``logvar_init``: ``learn_logvar
= False`` reproduces that (the ``paper`` config). The perceptual term is LPIPS
(jaxgen/metrics/lpips.py) when ``loss.perceptual_weight > 0``; its VGG16 and head
weights (``loss.vgg_weights``, ``loss.lpips_weights``; "" = the known files in the
weights cache) are read once and passed to the steps as a frozen stage named
``lpips`` (never checkpointed; a resume with other weights is refused). Offline
there are no VGG16 weights, so the MNIST configs set the weight to 0.

The ``Autoencoder`` stage protocol (images in [0, 1]):

* ``encode(params, images)``: the posterior **mode** (its mean), (N, H/f, W/f,
  embed_dim). The protocol has no random key, so a stage's latents are a pure
  function of the images (the same latents at every epoch and on resume); with KL
  weight 1e-6 the posterior's standard deviation is small beside the spread of the
  means (eval.json: ``posterior_std`` against ``latent_std``), so the mode differs
  little from the sample that CompVis' ``get_first_stage_encoding`` takes. A user
  that wants the sample draws it from ``posterior``.
* ``posterior(params, images)``: (mean, clamped log-variance).
* ``decode(params, latents)``: images in [0, 1] (the decoder's output mapped from
  [-1, 1] and clipped).
* ``latent_spec``: float32 (H/f, W/f, embed_dim); ``num_codes`` 0.

``generate`` with ``inputs["image"]`` reconstructs those images (encode, decode), so
the sample metrics (``fid`` in ``config.eval.metrics``) measure reconstructions: rFID
against ``eval.reference_split``; without inputs it decodes N(0, I) latents (CompVis'
"samples" picture). Evaluation (``eval.json``): on the eval split, reconstructions
from the posterior mode: ``l1`` and ``psnr`` on [0, 1], ``ssim``, ``lpips`` (when
its weights are loaded), the KL term, the latents' ``latent_mean`` and
``latent_std`` (of the modes, over every element of the split) with ``scale_factor``
= 1 / latent_std (what a latent-diffusion run over this stage would use), the mean
posterior standard deviation ``posterior_std`` and ``latent_sample_std`` (of samples:
sqrt(latent_std^2 + mean posterior variance)).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import losses, sharding, stages, viz, weights
from jaxgen.errors import ConfigError, StageError
from jaxgen.families import adversarial, base
from jaxgen.families.adversarial import STATS, apply_module
from jaxgen.families.autoencoder_kl import losses as kl_losses
from jaxgen.families.base import Trainer, apply_player_gradients
from jaxgen.metrics import lpips
from jaxgen.metrics import psnr as psnr_lib
from jaxgen.metrics import ssim as ssim_lib
from jaxgen.models import autoencoder_kl as aekl
from jaxgen.models.image_to_image import PatchDiscriminator
from jaxgen.stages import VectorAutoencoder

LPIPS_STAGE = "lpips"


def first_stage_config(m) -> aekl.FirstStageConfig:
  """The model's ``FirstStageConfig`` from ``config.model`` (CompVis' field names)."""
  return aekl.FirstStageConfig(
      ch=m.ch, ch_mult=tuple(m.ch_mult), num_res_blocks=m.num_res_blocks,
      attn_resolutions=tuple(m.attn_resolutions), z_channels=m.z_channels,
      double_z=m.double_z, embed_dim=m.embed_dim, resolution=m.resolution,
      in_channels=m.in_channels, out_ch=m.out_ch, dropout=m.dropout)


class AutoencoderKLTrainer(Trainer, VectorAutoencoder):
  num_codes = 0
  lpips_pending = False

  def __init__(self, config, spec, stages=None):
    super().__init__(config, spec, stages)
    m, lc = config.model, config.loss
    h, w, c = self.example_shape
    self.cfg = first_stage_config(m)
    _check(self.cfg, lc, (h, w, c))
    self.loss_cfg = lc
    self.autoencoder = aekl.AutoencoderKL(self.cfg)
    self.last_layer = aekl.last_layer(self.cfg)
    self.logvar = kl_losses.LogVar(float(lc.logvar_init))
    self.discriminator = PatchDiscriminator(lc.disc_ndf, lc.disc_num_layers, "batch")
    self.latent_spec = jax.ShapeDtypeStruct(self.cfg.latent_shape(h, w), jnp.float32)
    n = config.train.num_steps
    ae_tx = base.make_optimizer(config.optim.autoencoder, n)
    # Adam works coordinate by coordinate: one Adam over the autoencoder and the logvar
    # is these two with the same settings.
    self.tx = {"autoencoder": ae_tx, "logvar": ae_tx,
               "discriminator": base.make_optimizer(config.optim.discriminator, n)}
    low, high = (-1.0, 1.0) if config.data.scale == "symmetric" else (0.0, 1.0)
    self.to_unit = lambda x: (x - low) / (high - low)
    self.perceptual_weight = float(lc.perceptual_weight)
    self.lpips_pending = self.perceptual_weight > 0 or bool(config.eval.lpips)

  @property
  def stages(self) -> dict:
    """The frozen stages, with LPIPS' weights (when the loss or the evaluation uses
    them) read on first use: building the trainer (``--mode=summary``) needs no
    weights files, a run's steps and record do."""
    if self.lpips_pending:
      self.lpips_pending = False
      lc = self.loss_cfg
      self.own_stages[LPIPS_STAGE] = load_lpips_stage(lc.vgg_weights, lc.lpips_weights)
    return self.own_stages

  @stages.setter
  def stages(self, value):
    self.own_stages = value

  @property
  def conditioning_keys(self):
    return ("image",)  # generate reconstructs the eval images it is given

  # --- networks ---------------------------------------------------------------------
  def networks(self):
    x = jnp.zeros((1, *self.example_shape))
    return {"autoencoder": (self.autoencoder, (x,), {}),
            "logvar": (self.logvar, (), {}),
            "discriminator": (self.discriminator, (x,), {"train": False})}

  def init_state(self, rng):
    return adversarial.init_players(self.networks(), rng, self.tx)

  def stage_params(self, state):
    return state.params["autoencoder"]

  def _ae(self, params, *args, method, train=False, rng=None, **kwargs):
    rngs = {"dropout": rng} if train and self.cfg.dropout > 0 else None
    return self.policy.apply(self.autoencoder, {"params": params}, *args, train=train,
                             method=method, rngs=rngs, **kwargs)

  def _d(self, params, stats, x):
    """D's logits (train mode: batch statistics) and its new running statistics."""
    return apply_module(self.discriminator, params, stats, x, train=True,
                        policy=self.policy)

  def _check_images(self, images):
    if tuple(images.shape[1:]) != self.example_shape:
      h, w, c = self.example_shape
      raise StageError(f"This autoencoder was trained on {h}x{w}x{c} images, got "
                       f"{tuple(images.shape[1:])}: give the stage images of its own "
                       f"size and channels.")

  # --- the autoencoder stage protocol (images in [0, 1]) ------------------------------
  def posterior(self, params, images):
    """(mean, log-variance clamped to [-30, 20]) of q(z | images)."""
    self._check_images(images)
    return aekl.posterior(self._ae(params, 2.0 * images - 1.0, method="encode"))

  def encode(self, params, images):
    """The posterior mode (module docstring: why not a sample)."""
    return self.posterior(params, images)[0]

  def decode(self, params, latents):
    if tuple(latents.shape[1:]) != tuple(self.latent_spec.shape):
      raise StageError(f"This autoencoder decodes latents of shape "
                       f"{tuple(self.latent_spec.shape)}, got {tuple(latents.shape[1:])}.")
    x = self._ae(params, latents, method="decode")
    return jnp.clip((x + 1.0) / 2.0, 0.0, 1.0)

  # --- training ---------------------------------------------------------------------
  def perceptual(self, frozen, x, x_rec):
    """LPIPS (N,) of the pairs, or None without a perceptual term."""
    if self.perceptual_weight <= 0:
      return None
    return lpips.distance(frozen[LPIPS_STAGE], x, x_rec)

  def autoencoder_loss(self, gp, x, rng, step, d_params, stats, frozen):
    """(loss, (metrics, the discriminator's new statistics)) of the autoencoder step
    for the players ``gp`` = {"autoencoder", "logvar"} on images x in [-1, 1]."""
    lc = self.loss_cfg
    k_sample, k_drop = jax.random.split(rng)
    logvar = gp["logvar"]["logvar"]
    if not lc.learn_logvar:
      logvar = jax.lax.stop_gradient(logvar)
    ae = gp["autoencoder"]
    mean, post_logvar = aekl.posterior(self._ae(ae, x, method="encode", train=True,
                                                rng=k_drop))
    z = aekl.sample(k_sample, mean, post_logvar)
    h = self._ae(ae, z, method="decode", train=True, rng=k_drop, features=True)
    last = lambda p, feats: self.policy.apply(self.last_layer, {"params": p}, feats)
    x_rec = last(ae["decoder"]["conv_out"], h)

    def nll_of(xr):
      return kl_losses.reconstruction_nll(x, xr, logvar, self.perceptual(frozen, x, xr),
                                          self.perceptual_weight)

    nll, rec = nll_of(x_rec)
    kl = kl_losses.kl_loss(mean, post_logvar)
    logits, new_stats = self._d(d_params, stats, x_rec)
    g = kl_losses.generator_loss(logits)
    # The adaptive weight: gradients at the last layer's kernel alone, from the
    # decoder's features held fixed (the weight has no gradient of its own).
    h0, k0 = jax.lax.stop_gradient((h, ae["decoder"]["conv_out"]))
    grad_k = lambda f: jax.grad(lambda p: f(last(p, h0)))(k0)["kernel"]
    g_nll = grad_k(lambda xr: nll_of(xr)[0])
    g_g = grad_k(lambda xr: kl_losses.generator_loss(self._d(d_params, stats, xr)[0]))
    d_weight = kl_losses.adaptive_weight(g_nll, g_g, lc.disc_weight)
    disc_factor = kl_losses.adopt_weight(lc.disc_factor, step, lc.disc_start)
    loss = nll + lc.kl_weight * kl + d_weight * disc_factor * g
    metrics = {"nll": nll, "rec_loss": rec, "kl": kl, "logvar": logvar, "g_loss": g,
               "d_weight": d_weight, "disc_factor": disc_factor}
    return loss, (metrics, new_stats)

  def discriminator_step(self, ae, d_params, stats, x, rng, step):
    """(gradients, new statistics, metrics) of the discriminator step (zero gradients
    before ``disc_start``: the loss is multiplied by disc_factor 0)."""
    lc = self.loss_cfg
    k_sample, k_drop = jax.random.split(rng)
    mean, logvar = aekl.posterior(self._ae(ae, x, method="encode", train=True,
                                           rng=k_drop))
    x_rec = jax.lax.stop_gradient(self._ae(
        ae, aekl.sample(k_sample, mean, logvar), method="decode", train=True,
        rng=k_drop))
    disc_factor = kl_losses.adopt_weight(lc.disc_factor, step, lc.disc_start)

    def loss_fn(dp):
      real, s = self._d(dp, stats, x)
      fake, s = self._d(dp, s, x_rec)
      loss = disc_factor * kl_losses.discriminator_loss(real, fake, lc.disc_loss)
      return loss, (s, real.mean(), fake.mean())

    (loss, (s, real, fake)), grads = jax.value_and_grad(loss_fn, has_aux=True)(d_params)
    return grads, s, {"d_loss": loss, "logits_real": real, "logits_fake": fake}

  def train_step(self, state, batch, rng, frozen=None):
    frozen = frozen or {}
    x = 2.0 * self.to_unit(batch["image"]) - 1.0
    k_ae, k_d = jax.random.split(rng)
    step, stats = state.step, state.extra[STATS]["discriminator"]
    players = {p: state.params[p] for p in ("autoencoder", "logvar")}
    (loss, (metrics, stats)), grads = jax.value_and_grad(
        self.autoencoder_loss, has_aux=True)(players, x, k_ae, step,
                                             state.params["discriminator"], stats, frozen)
    state, ae_norm = apply_player_gradients(state, "autoencoder", grads["autoencoder"],
                                            self.tx)
    state, _ = apply_player_gradients(state, "logvar", grads["logvar"], self.tx)
    d_grads, stats, d_metrics = self.discriminator_step(
        state.params["autoencoder"], state.params["discriminator"], stats, x, k_d, step)
    state, d_norm = apply_player_gradients(state, "discriminator", d_grads, self.tx,
                                           count_step=True)
    state = adversarial.replace_stats(state, discriminator=stats)
    return state, {"loss": loss, **metrics, **d_metrics, "ae_grad_norm": ae_norm,
                   "d_grad_norm": d_norm}

  # --- evaluation -------------------------------------------------------------------
  def eval_step(self, state, batch, rng, frozen=None):
    """Masked sums over the batch: reconstructions from the posterior mode."""
    params, mask = self.stage_params(state), batch["mask"]
    x = self.to_unit(batch["image"])
    mean, logvar = self.posterior(params, x)
    recon = self.decode(params, mean)
    mse = losses.mse_per_example(x, recon)
    sums = {"count": mask.sum(),
            "l1": (losses.mean_per_example(jnp.abs(recon - x)) * mask).sum(),
            "psnr": (psnr_lib.psnr(mse) * mask).sum(),
            "ssim": (ssim_lib.ssim(recon, x, 1.0) * mask).sum(),
            "kl": (losses.gaussian_kl(mean, logvar) * mask).sum(),
            "latent_mean": (losses.mean_per_example(mean) * mask).sum(),
            "latent_square": (losses.mean_per_example(mean ** 2) * mask).sum(),
            "posterior_var": (losses.mean_per_example(jnp.exp(logvar)) * mask).sum(),
            "posterior_std": (losses.mean_per_example(jnp.exp(0.5 * logvar))
                              * mask).sum()}
    if LPIPS_STAGE in (frozen or {}):
      d = lpips.distance(frozen[LPIPS_STAGE], 2.0 * x - 1.0, 2.0 * recon - 1.0)
      sums["lpips"] = (d * mask).sum()
    return sums

  def finalize_eval(self, sums):
    out = super().finalize_eval(sums)
    square, var = out.pop("latent_square"), out.pop("posterior_var")
    std = float(np.sqrt(max(square - out["latent_mean"] ** 2, 0.0)))
    return {**out, "latent_std": std, "scale_factor": 1.0 / max(std, 1e-12),
            "latent_sample_std": float(np.sqrt(std ** 2 + var)),
            "latent_shape": list(self.latent_spec.shape)}

  # --- samples and pictures ---------------------------------------------------------
  def generate(self, state, rng, num: int, inputs=None, frozen=None):
    """Reconstructions of ``inputs["image"]`` (num of them), or decoded N(0, I)
    latents without inputs."""
    params = self.stage_params(state)
    if inputs and "image" in inputs:
      return self.decode(params, self.encode(params, self.to_unit(inputs["image"][:num])))
    z = jax.random.normal(rng, (num, *self.latent_spec.shape))
    return self.decode(params, z)

  def visualize(self, state, rng, batch, frozen=None):
    """``samples``: N(0, I) latents decoded (CompVis' "samples"); ``reconstructions``:
    each eval image beside its reconstruction (from the posterior mode)."""
    gen = self.compiled(self.generate, static_argnums=2)
    x = np.asarray(batch["image"][:16])
    recon = np.asarray(gen(state, rng, len(x), {"image": jnp.asarray(x)}))
    pairs = np.stack([np.asarray(self.to_unit(x)), recon], 1).reshape(-1, *x.shape[1:])
    samples = np.asarray(gen(state, rng, self.config.train.num_samples))
    return {"samples": viz.grid(viz.to_uint8(samples)),
            "reconstructions": viz.grid(viz.to_uint8(pairs), rows=4)}


def load_lpips_stage(vgg: str, heads: str) -> stages.Stage:
  """LPIPS' weights (``jaxgen.weights.lpips``; "" = the known file) as a frozen stage:
  replicated on the mesh, passed to the steps, recorded by digest."""
  try:
    params = lpips.load_params(vgg or None, heads or None)
  except weights.WeightsError as e:
    raise StageError(
        f"{e}\nThe perceptual term (config.loss.perceptual_weight > 0) and LPIPS in the "
        f"evaluation (config.eval.lpips) need these files: set config.loss.vgg_weights "
        f"and config.loss.lpips_weights to their paths, or set "
        f"--config.loss.perceptual_weight=0 --config.eval.lpips=False.") from None
  params = sharding.replicate(params, sharding.make_mesh())
  return stages.Stage(LPIPS_STAGE, f"{vgg or 'vgg16'} + {heads or 'lpips_vgg'}",
                      lpips.LPIPS(), params, 0, stages.digest(params))


def _check(cfg, lc, shape):
  h, w, c = shape
  if cfg.in_channels != c or cfg.out_ch != c:
    raise ConfigError(f"config.model.in_channels={cfg.in_channels} and out_ch="
                      f"{cfg.out_ch}, but the images have {c} channels: set both to {c}.")
  if cfg.resolution != h:
    raise ConfigError(f"config.model.resolution={cfg.resolution}, but the images are "
                      f"{h}x{w}: set --config.model.resolution={h} (attn_resolutions "
                      f"are counted from it).")
  if h % cfg.factor or w % cfg.factor:
    raise ConfigError(f"The images are {h}x{w}, which the factor f={cfg.factor} of "
                      f"config.model.ch_mult={cfg.ch_mult} does not divide.")
  if lc.disc_loss not in kl_losses.DISC_LOSSES:
    raise ConfigError(f"config.loss.disc_loss={lc.disc_loss!r}; use one of "
                      f"{list(kl_losses.DISC_LOSSES)}.")
  if lc.disc_start < 0 or lc.perceptual_weight < 0:
    raise ConfigError("config.loss.disc_start and perceptual_weight must be >= 0.")


Trainer = AutoencoderKLTrainer
