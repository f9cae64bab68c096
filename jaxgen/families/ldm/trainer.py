"""Latent diffusion (Rombach et al. 2022): a DDPM over the latents of a frozen
autoencoder stage (``config.stages.autoencoder``), its denoiser attending to the
conditioning through cross-attention.

* **Latents.** Each batch is encoded by the stage (``Autoencoder.encode_latents``: a KL
  autoencoder's posterior mode, a dense VAE's means, a VQ-VAE's vectors before
  quantisation, which its decoder quantises) and multiplied by the scale factor
  (``config.latent.scale_factor``; 0: 1 / the standard deviation of the latents of the
  first ``config.latent.scale_examples`` training images, computed when the run is
  built, logged, kept in every checkpoint's record and in eval.json; a resume whose
  factor differs is refused). Samples are decoded by the stage.
  ``config.latent.shape`` (h, w, c) fixes the latents' shape: a stage must give it,
  and with none named the networks are built on it alone, so that ``--mode=summary``
  counts a paper configuration's parameters without its first stage (training and
  sampling still need one; the scale factor must then be given).
* **Denoiser** (``config.model.network``): ``unet`` is CompVis' ``UNetModel`` with
  ``SpatialTransformer`` blocks (``jaxgen.models.ldm_unet``, ``config.model.unet``
  under CompVis' names); ``mlp`` a residual MLP for vector latents (a dense VAE's).
  The ``scaled_linear`` schedule is CompVis' ``linear`` from ``diffusion.linear_start``
  to ``diffusion.linear_end`` (their names; 0.00085 to 0.012 in the text-to-image
  configs, 0.0015 to 0.0195 in the CelebA-HQ and ImageNet ones).
* **Conditioning** (``config.model.conditioning``):
  ``text``   cross-attention to per-token text states: of a text encoder trained with
             the U-Net (``model.text_encoder="joint"``, LDM's transformer,
             ``jaxgen.models.ldm_text``, sized by ``model.text``) or of a frozen CLIP
             stage (``"clip"``, ``config.stages.clip``: its ``text_states``);
  ``class``  cross-attention to one embedded token per label (U-Net), or the label
             added to the time embedding (MLP);
  ``concat`` an image concatenated to the noised latents at the U-Net's input (LDM's
             ``conditioning_key: concat``, its image-to-image tasks; U-Net only): the
             example's own ``image`` averaged over blocks to the latents' grid, in
             [-1, 1], i.e. its low-resolution version (LDM's super-resolution, whose
             low-resolution input has the latents' size); the U-Net's input has the
             latent channels plus the image's. Samples are drawn from given images
             (``inputs["image"]``), and the paired metrics (``eval.paired_key=
             "image"``) score each against the image it was conditioned on;
  ``none``.
  Training drops the conditioning with probability ``model.p_uncond`` (to the empty
  caption, the null class, or for ``concat`` the uniform mid-grey image, whose
  low-resolution input is all zeros); sampling mixes the conditional and unconditional
  predictions with ``sample.guidance_scale`` in one batched call (1: conditional;
  ``diffusion.samplers.guided``), or with each example's own scale (the
  ``guidance_scale`` input that ``eval.guidance_scales`` sets).
* **Evaluation:** the epsilon MSE on the eval split's latents, the latents' standard
  deviation after scaling, the scale factor; sample metrics (``eval.metrics``) at each
  of ``eval.guidance_scales`` with the same seeds. Pictures: samples of the same
  captions and seeds at each guidance scale, the stage's reconstructions.
"""
from __future__ import annotations

import logging

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import data, losses, viz
from jaxgen.diffusion import samplers, schedules
from jaxgen.diffusion.process import GaussianDiffusion, check_options
from jaxgen.errors import ConfigError, StageError
from jaxgen.families.base import OneOptimizerTrainer, check_guidance
from jaxgen.families.ldm.networks import ClassEmbedder, MLPDenoiser
from jaxgen.models import ldm_text, ldm_unet
from jaxgen.stages import (Autoencoder, ConditioningEncoder, VectorAutoencoder,
                           check_same_data, check_tokenizer)

log = logging.getLogger("jaxgen")
CONDITIONING = ("none", "class", "text", "concat")
TEXT_ENCODERS = ("joint", "clip")
NETWORKS = ("unet", "mlp")
DATA_FIELDS = ("name", "scale", "binarize", "resize", "center_crop")


class LDMTrainer(OneOptimizerTrainer):

  @classmethod
  def roles(cls, config) -> dict:
    """The autoencoder stage, unless ``latent.shape`` fixes the latents and none is
    named (a paper configuration's ``--mode=summary``); a CLIP stage for its text."""
    m, named = config.model, dict(config.get("stages") or {})
    roles = {}
    if named.get("autoencoder") or not fixed_latent_shape(config):
      roles["autoencoder"] = VectorAutoencoder
    if m.conditioning == "text" and m.get("text_encoder") == "clip":
      roles["clip"] = ConditioningEncoder
    return roles

  def __init__(self, config, spec, stages):
    m = config.model
    for name, value, options in (("network", m.network, NETWORKS),
                                 ("conditioning", m.conditioning, CONDITIONING),
                                 ("text_encoder", m.get("text_encoder", "joint"),
                                  TEXT_ENCODERS)):
      if value not in options:
        raise ConfigError(f"config.model.{name}={value!r}; use one of "
                          f"{', '.join(options)}.")
    ae = stages.get("autoencoder")
    self.autoencoder = ae.trainer if ae is not None else None
    if ae is not None:
      check_same_data(config.data, ae.trainer.config.data, ae.path, DATA_FIELDS)
      if self.autoencoder.num_codes and (type(self.autoencoder).encode_latents
                                         is Autoencoder.encode_latents):
        raise StageError(
            f"The autoencoder stage {ae.path} ({ae.trainer.config.family}) gives "
            f"integer codes, and latent diffusion needs continuous latents: use a KL "
            f"autoencoder (autoencoder_kl), a VAE or a VQ-VAE (diffused before "
            f"quantisation) stage.")
    low, high = (-1.0, 1.0) if config.data.scale == "symmetric" else (0.0, 1.0)
    self.to_unit = lambda x: (x - low) / (high - low)
    self.data_grey = (low + high) / 2  # the null image of concat: 0 in [-1, 1]
    self.data_shape = tuple(spec["image"].shape)
    shape = fixed_latent_shape(config)
    if ae is not None:
      latent = jax.eval_shape(self.encode_latents, ae.params,
                              jnp.zeros((1, *self.data_shape), jnp.float32))
      if shape and shape != tuple(latent.shape[1:]):
        raise ConfigError(
            f"config.latent.shape={shape}, but the autoencoder stage {ae.path} gives "
            f"latents of shape {tuple(latent.shape[1:])}: set the stage's shape, or () "
            f"to take it from the stage.")
      shape = tuple(latent.shape[1:])
    super().__init__(config, {**spec, "image": jax.ShapeDtypeStruct(shape, jnp.float32)},
                     stages)
    d = config.diffusion
    check_options(d.schedule, d.num_steps, d.parameterization, d.variance)
    self.process = make_process(d)
    self.param = d.parameterization
    self.conditioning = m.conditioning
    self.p_uncond = float(m.p_uncond) if self.conditioning != "none" else 0.0
    self.num_classes = int(m.num_classes) if self.conditioning == "class" else 0
    if self.conditioning == "class" and self.num_classes < 1:
      raise ConfigError("config.model.conditioning='class' needs config.model."
                        "num_classes (10 for the digits).")
    self.check_guidance(config)
    self.text_encoder = m.get("text_encoder", "joint")
    if self.conditioning == "text":
      self.setup_text(config, spec, stages)
    self.context_dim = self.text_width if self.conditioning == "text" else None
    if self.conditioning == "class" and m.network == "unet":
      self.context_dim = int(m.class_width)
      self.class_embedder = ClassEmbedder(self.num_classes, self.context_dim)
    self.concat_channels = self.check_concat() if self.conditioning == "concat" else 0
    self.denoiser = self.make_denoiser(m)
    self.scale_factor = self.find_scale_factor(config, ae)

  # --- setup --------------------------------------------------------------------------
  def check_guidance(self, config):
    scales = [float(config.sample.guidance_scale),
              *(float(s) for s in config.eval.get("guidance_scales", ()) or ())]
    check_guidance(
        scales, self.p_uncond,
        f"Guidance scales {scales} mix in the unconditional prediction, which a "
        f"model trained without conditioning dropout (config.model.p_uncond=0, or "
        f"conditioning 'none') never learned: train with p_uncond 0.1, or sample "
        f"with --config.sample.guidance_scale=1 and --config.eval.guidance_scales=().")

  def setup_text(self, config, spec, stages):
    self.tokenizer = data.caption_tokenizer(config.data,
                                            "config.model.conditioning='text'")
    length = int(spec["text"].shape[0])
    # The empty caption (<bos> <eos>): the unconditional input of guidance.
    self.null_tokens = np.asarray(self.tokenizer.encode([""], length)[0], np.int32)
    m = config.model
    if self.text_encoder == "clip":
      clip = stages["clip"]
      check_tokenizer(clip, self.tokenizer, f"latent diffusion on "
                                 f"{config.data.name}")
      states = jax.eval_shape(lambda p, t: clip.trainer.text_states(p, t)[0],
                              clip.params, jnp.zeros((1, length), jnp.int32))
      self.text_width = int(states.shape[-1])
    else:
      t = m.text
      vocab = int(t.get("vocab_size", 0)) or self.tokenizer.vocab_size
      max_length = int(t.get("max_length", 0)) or length
      if vocab < self.tokenizer.vocab_size or max_length < length:
        raise ConfigError(
            f"config.model.text.vocab_size={vocab} and max_length={max_length}, but "
            f"the captions have {self.tokenizer.vocab_size} token ids and "
            f"{length} positions: give at least these (0 takes them).")
      self.text_config = ldm_text.TextEncoderConfig(
          n_embed=t.width, n_layer=t.layers, vocab_size=vocab, max_seq_len=max_length,
          heads=t.heads, dim_head=int(t.get("dim_head", 0)) or t.width // t.heads,
          logits_head=bool(t.get("logits_head", False)))
      self.text_net = ldm_text.TextEncoder(self.text_config)
      self.text_width = int(t.width)
    width = int(m.unet.get("context_dim") or 0) if m.network == "unet" else 0
    if width and width != self.text_width:
      raise ConfigError(
          f"config.model.unet.context_dim={width}, but the text states are "
          f"{self.text_width} wide ({'the CLIP stage' if self.text_encoder == 'clip' else 'config.model.text.width'}): "
          f"the cross-attention reads the text encoder's width; set 0 to take it.")

  def make_denoiser(self, m):
    channels = self.example_shape[-1]
    if m.network == "mlp":
      if len(self.example_shape) != 1 or self.conditioning in ("text", "concat"):
        raise ConfigError(
            f"config.model.network='mlp' denoises vector latents, unconditionally or "
            f"by class; these latents are {self.example_shape} with conditioning "
            f"{self.conditioning!r}: use network='unet'.")
      return MLPDenoiser(width=m.width, depth=m.depth, dropout=m.dropout,
                         out_dim=channels, num_classes=self.num_classes)
    if len(self.example_shape) != 3:
      raise ConfigError(f"config.model.network='unet' denoises spatial latents; these "
                        f"are {self.example_shape}: use network='mlp'.")
    u = {k: v for k, v in m.unet.items() if k != "context_dim"}
    config = ldm_unet.UNetConfig(
        in_channels=channels + self.concat_channels, out_channels=channels,
        use_spatial_transformer=self.context_dim is not None,
        context_dim=self.context_dim, **u)
    return ldm_unet.UNetModel(config)

  def check_concat(self) -> int:
    """The channels that ``concat`` adds to the U-Net's input (the image's), after
    checking that the latents' grid divides the images into equal blocks."""
    if self.config.model.network != "unet" or len(self.example_shape) != 3:
      raise ConfigError(f"config.model.conditioning='concat' concatenates an image to "
                        f"spatial latents at the U-Net's input; these latents are "
                        f"{self.example_shape} (network "
                        f"{self.config.model.network!r}): use network='unet' over a "
                        f"stage with spatial latents.")
    (height, width, channels), (h, w) = self.data_shape, self.example_shape[:2]
    if height % h or width % w:
      raise ConfigError(f"config.model.conditioning='concat' averages the "
                        f"{height}x{width} images over blocks to the {h}x{w} latent "
                        f"grid, which does not divide them.")
    return channels

  def networks(self):
    x = jnp.zeros((1, *self.example_shape[:-1],
                   self.example_shape[-1] + self.concat_channels))
    t = jnp.zeros((1,), jnp.int32)
    nets = {}
    if self.config.model.network == "mlp":
      y = jnp.zeros((1,), jnp.int32) if self.num_classes else None
      nets["denoiser"] = (self.denoiser, (x, t, y), {"train": False})
    else:
      context = (jnp.zeros((1, 1, self.context_dim))
                 if self.context_dim is not None else None)
      nets["denoiser"] = (self.denoiser, (x, t, context), {})
    if self.conditioning == "text" and self.text_encoder == "joint":
      tokens = jnp.zeros((1, self.text_config.max_seq_len), jnp.int32)
      nets["text"] = (self.text_net, (tokens,), {})
    if self.conditioning == "class" and self.config.model.network == "unet":
      nets["class"] = (self.class_embedder, (jnp.zeros((1,), jnp.int32),), {})
    return nets

  def init_params(self, rng):
    self.require_autoencoder()  # before a paper config's networks are allocated
    params = super().init_params(rng)
    return params if isinstance(params, dict) and "denoiser" in params else {
        "denoiser": params}

  # --- the first stage ------------------------------------------------------------------
  def require_autoencoder(self):
    if self.autoencoder is None:
      raise ConfigError(
          "config.stages.autoencoder is not set: latent diffusion trains and samples "
          "through a frozen autoencoder stage; set --config.stages.autoencoder=WORKDIR "
          "to a finished run of one (config.latent.shape only lets --mode=summary "
          "count the networks).")

  def encode_latents(self, ae_params, images):
    """Unscaled continuous latents of images in the data's scale."""
    self.require_autoencoder()
    return self.autoencoder.encode_latents(ae_params, self.to_unit(images))

  def decode_latents(self, ae_params, z):
    self.require_autoencoder()
    return self.autoencoder.decode_latents(ae_params, z)

  def find_scale_factor(self, config, ae) -> float:
    """``config.latent.scale_factor``, or (0) 1 / the standard deviation of the latents
    of the first ``config.latent.scale_examples`` training images (Rombach et al.,
    appendix G; CompVis ``scale_by_std``)."""
    fixed = float(config.latent.scale_factor)
    if fixed < 0:
      raise ConfigError(f"config.latent.scale_factor={fixed}: give a positive factor, "
                        f"or 0 to take 1 / the std of the training latents.")
    if fixed:
      log.info("latent scale factor %.6g (config.latent.scale_factor)", fixed)
      return fixed
    if ae is None:
      raise ConfigError("config.latent.scale_factor=0 takes 1 / the std of the "
                        "autoencoder stage's latents, and no stage is named: give the "
                        "factor, or set --config.stages.autoencoder.")
    source = data.get_source(config.data, "train")
    n = min(len(source), int(config.latent.get("scale_examples", 1000)))
    # Spread over the split (the captioned sets are sorted by digit).
    idx = np.unique(np.linspace(0, len(source) - 1, n).astype(np.int64))
    batch = data.preprocess.process(source[idx], config.data, np.random.default_rng(0),
                                    train=False, indices=idx)
    encode = jax.jit(self.encode_latents)
    z = np.concatenate([np.asarray(encode(ae.params, jnp.asarray(batch["image"][i:i + 250])))
                        for i in range(0, len(idx), 250)])
    std = float(np.std(z.astype(np.float64)))
    if not std > 0:
      raise StageError(f"The autoencoder stage {ae.path} gives constant latents "
                       f"(std {std}): no scale factor can be computed.")
    factor = float(np.float32(1.0 / std))
    log.info("latent scale factor %.6g = 1 / std of %d training latents", factor, len(z))
    return factor

  def record(self) -> dict:
    return {"latent.scale_factor": self.scale_factor}

  def encode(self, frozen, images):
    """Scaled latents of preprocessed images."""
    self.require_autoencoder()
    z = self.encode_latents(frozen["autoencoder"], images)
    return jax.lax.stop_gradient(z) * self.scale_factor

  def decode(self, frozen, z):
    self.require_autoencoder()
    return self.decode_latents(frozen["autoencoder"], z / self.scale_factor)

  # --- conditioning ---------------------------------------------------------------------
  @property
  def conditioning_keys(self):
    return {"text": ("text",), "class": ("label",), "concat": ("image",),
            "none": ()}[self.conditioning]

  def null_conditioning(self, cond):
    """The unconditional input in the shape of ``cond``."""
    if self.conditioning == "text":
      return {"text": jnp.broadcast_to(jnp.asarray(self.null_tokens), cond["text"].shape)}
    if self.conditioning == "class":
      return {"label": jnp.full_like(cond["label"], self.num_classes)}
    if self.conditioning == "concat":
      return {"image": jnp.full_like(cond["image"], self.data_grey)}
    return cond

  def concat_image(self, images):
    """``concat``'s input: images (N, H, W, C) in the data's scale averaged over
    blocks to the latents' grid (N, h, w, C), in [-1, 1]."""
    n, height, width, channels = images.shape
    h, w = self.example_shape[:2]
    blocks = self.to_unit(images).reshape(n, h, height // h, w, width // w, channels)
    return 2.0 * blocks.mean(axis=(2, 4)) - 1.0

  def drop_conditioning(self, cond, rng):
    """Each example's conditioning replaced by the null one with probability
    ``model.p_uncond``."""
    if not self.p_uncond:
      return cond
    null = self.null_conditioning(cond)
    key = next(iter(cond))
    drop = jax.random.uniform(rng, (cond[key].shape[0],)) < self.p_uncond
    return jax.tree.map(
        lambda c, u: jnp.where(drop.reshape(-1, *[1] * (c.ndim - 1)), u, c), cond, null)

  def context(self, params, cond, frozen):
    """The cross-attention context of the conditioning (None without)."""
    if self.conditioning == "text":
      if self.text_encoder == "clip":
        states, _ = self.stages["clip"].trainer.text_states(frozen["clip"], cond["text"])
        return jax.lax.stop_gradient(states)
      return self.policy.apply(self.text_net, {"params": params["text"]}, cond["text"])
    if self.conditioning == "class" and self.config.model.network == "unet":
      return self.policy.apply(self.class_embedder, {"params": params["class"]},
                               cond["label"])
    return None

  def apply(self, params, x, t, cond, frozen, *, train=False, rng=None):
    """The denoiser's prediction at integer timesteps t for conditioning ``cond``."""
    rngs = {"dropout": rng} if train else None
    if self.config.model.network == "mlp":
      y = cond.get("label") if cond else None
      return self.policy.apply(self.denoiser, {"params": params["denoiser"]}, x, t, y,
                               train=train, rngs=rngs)
    if self.conditioning == "concat":
      x = jnp.concatenate([x, self.concat_image(cond["image"]).astype(x.dtype)], -1)
    context = self.context(params, cond, frozen) if cond else None
    return self.policy.apply(self.denoiser, {"params": params["denoiser"]}, x, t,
                             context, train=train, rngs=rngs)

  def conditions(self, batch):
    return {k: batch[k] for k in self.conditioning_keys}

  # --- training and evaluation ----------------------------------------------------------
  def loss(self, params, batch, rng, frozen=None):
    z0 = self.encode(frozen, batch["image"])
    k_t, k_noise, k_drop, k_cond = jax.random.split(rng, 4)
    t = jax.random.randint(k_t, (z0.shape[0],), 0, self.process.num_steps)
    noise = jax.random.normal(k_noise, z0.shape, z0.dtype)
    zt = self.process.q_sample(z0, t, noise)
    cond = self.drop_conditioning(self.conditions(batch), k_cond)
    pred = self.apply(params, zt, t, cond, frozen, train=True, rng=k_drop)
    target = self.process.target(z0, noise, t, self.param)
    return losses.mse_per_example(target, pred).mean(), {}

  def eval_step(self, state, batch, rng, frozen=None):
    """Masked sums of the epsilon-prediction loss at uniform random t on the eval
    split's latents (EMA parameters, conditional), and the latents' std."""
    z0, mask = self.encode(frozen, batch["image"]), batch["mask"]
    k_t, k_noise = jax.random.split(rng)
    t = jax.random.randint(k_t, (z0.shape[0],), 0, self.process.num_steps)
    noise = jax.random.normal(k_noise, z0.shape, z0.dtype)
    pred = self.apply(state.ema_params, self.process.q_sample(z0, t, noise), t,
                      self.conditions(batch), frozen)
    mse = losses.mse_per_example(self.process.target(z0, noise, t, self.param), pred)
    return {"count": mask.sum(), f"{self.param}_mse": (mse * mask).sum(),
            "latent_std": (jnp.std(z0, axis=tuple(range(1, z0.ndim))) * mask).sum()}

  def finalize_eval(self, sums):
    return {**super().finalize_eval(sums), "scale_factor": self.scale_factor}

  # --- sampling -------------------------------------------------------------------------
  def model_fn(self, params, frozen, cond, scale):
    if self.conditioning == "none":
      return lambda x, t: self.apply(params, x, t, None, frozen)
    return samplers.guided(lambda x, t, c: self.apply(params, x, t, c, frozen), cond,
                           self.null_conditioning(cond), scale)

  def run_sampler(self, params, rng, num: int, cond=None, scale=None, frozen=None,
                  num_frames: int = 0):
    s = self.config.sample
    scale = s.guidance_scale if scale is None else scale
    kwargs = ({"num_steps": s.num_steps, "eta": s.eta} if s.sampler == "ddim"
              else {"variance": self.config.diffusion.variance})
    # Latents are not bounded as images are: no clipping of the predicted x0 (as
    # CompVis' samplers in latent space).
    return samplers.get(s.sampler)(
        self.model_fn(params, frozen, cond, scale), self.process,
        (num, *self.example_shape), rng, parameterization=self.param,
        num_frames=num_frames, clip_x0=False, **kwargs)

  def default_conditioning(self, num: int):
    if self.conditioning == "class":
      return {"label": jnp.arange(num) % self.num_classes}
    if self.conditioning == "text":
      raise ConfigError("A text-conditional latent diffusion samples from captions: "
                        "give each sample's caption tokens (inputs['text']).")
    if self.conditioning == "concat":
      raise ConfigError("An image-conditioned (concat) latent diffusion samples from "
                        "images: give each sample's conditioning image "
                        "(inputs['image']).")
    return None

  def sample(self, params, rng, num: int, inputs=None, frozen=None):
    inputs = dict(inputs or {})
    scale = inputs.pop("guidance_scale", None)
    cond = ({k: inputs[k] for k in self.conditioning_keys}
            if self.conditioning_keys and all(k in inputs for k in self.conditioning_keys)
            else self.default_conditioning(num))
    z, _ = self.run_sampler(params, rng, num, cond, scale, frozen)
    return jnp.clip(self.decode(frozen, z), 0.0, 1.0)

  # --- pictures -------------------------------------------------------------------------
  def guidance_grid(self, state, rng, cond, frozen, scales, num: int):
    """Samples of the same conditioning and seeds at each guidance scale."""
    rows = []
    for s in scales:
      z, _ = self.run_sampler(state.ema_params, rng, num, cond,
                              s if cond is not None else None, frozen)
      rows.append(jnp.clip(self.decode(frozen, z), 0.0, 1.0))
    return jnp.stack(rows)

  def visualize(self, state, rng, batch, frozen=None):
    num = min(8, len(batch["image"]))
    cond = ({k: jnp.asarray(batch[k][:num]) for k in self.conditioning_keys}
            if self.conditioning_keys else None)
    scales = tuple(float(s) for s in (self.config.eval.get("guidance_scales") or ())) or (
        float(self.config.sample.guidance_scale),)
    if self.conditioning == "none":
      scales = scales[:1]
    grid = self.compiled(self.guidance_grid, static_argnames=("scales", "num"))(
        state, rng, cond, frozen, scales=scales, num=num)
    images = jnp.asarray(batch["image"][:num])
    recon = self.compiled(lambda f, x: self.decode(f, self.encode(f, x)))(frozen, images)
    u8 = lambda a: viz.to_uint8(np.clip(np.asarray(a), 0, 1))
    rows = np.asarray(grid).reshape(-1, *grid.shape[2:])
    if self.conditioning == "concat":  # the low-resolution inputs above, the truth below
      low = np.asarray(self.concat_image(images) + 1.0) / 2.0
      h, w = self.example_shape[:2]
      up = low.repeat(self.data_shape[0] // h, 1).repeat(self.data_shape[1] // w, 2)
      rows = np.concatenate([up, rows, np.asarray(self.to_unit(images))])
    out = {"samples": viz.grid(u8(rows), rows=len(rows) // num),
           "reconstructions": viz.grid(u8(np.stack(
               [np.asarray(self.to_unit(images)), np.asarray(recon)], 0).reshape(
                   -1, *recon.shape[1:])), rows=2)}
    if self.conditioning == "text":
      out["captions"] = viz.captioned_rows(
          self.tokenizer.decode_batch(np.asarray(batch["text"][:num])),
          u8(np.moveaxis(np.asarray(grid), 0, 1)))
    return out


def fixed_latent_shape(config) -> tuple:
  """``config.latent.shape`` as a tuple (empty: the stage's)."""
  return tuple(int(v) for v in (config.latent.get("shape") or ()))


def make_process(d) -> GaussianDiffusion:
  """The diffusion process of ``config.diffusion``: ``scaled_linear`` from
  ``linear_start`` to ``linear_end`` (CompVis' names) where the config gives them."""
  if d.schedule == "scaled_linear" and "linear_start" in d:
    return GaussianDiffusion.from_betas(schedules.scaled_linear(
        d.num_steps, float(d.linear_start), float(d.linear_end)))
  return GaussianDiffusion.create(d.schedule, d.num_steps)


Trainer = LDMTrainer
