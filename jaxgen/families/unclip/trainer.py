"""unCLIP (Ramesh et al. 2022, "DALL-E 2"), after kakaobrain/karlo: a diffusion prior
from CLIP text to CLIP image embeddings, a diffusion decoder from the image embedding,
a diffusion upsampler. One family, three roles (``config.model.role``), each a run of
its own, over a frozen CLIP stage (``config.stages.clip``: a ``clip`` run, the
``ConditioningEncoder`` protocol with per-token ``text_states``):

``prior``     ``networks.PriorTransformer`` over [caption states, text embedding, time,
              noised image embedding, query]; predicts x0 (``diffusion.parameterization
              ="x0"``) of the standardised image embedding with an MSE on the cosine
              schedule. **Standardisation:** karlo's per-dimension mean and std of the
              CLIP image embeddings of ``model.prior.stats_examples`` training images,
              computed when the run starts and kept in the state (``extra``: every
              checkpoint, and the stage's parameters, hold them). Not DALLE2-pytorch's
              L2 norm x sqrt(d): the CLIP stage's embeddings are already unit vectors,
              and a small CLIP trained on digits puts them in a narrow cone (a large
              common mean, a few dimensions carrying the variance), so x sqrt(d) leaves
              each dimension far from N(0, 1); per-dimension statistics make every
              dimension unit-variance, as the Gaussian process assumes.
              Classifier-free guidance: the caption replaced by the empty one with
              probability ``model.prior.text_drop`` (0.1); ``sample.prior_guidance_scale``
              mixes the x0 predictions (karlo: 4), which are then clamped to [-10, 10]
              (karlo's ``denoised_fn``). Sampling draws ``sample.prior_candidates`` (2)
              per caption and keeps the one of the highest dot product with the text
              embedding (section 2.2), L2-normalised as the stage's image embeddings.
              Logged in training: the cosine of the one-step x0 prediction with the
              true embedding (``x0_cosine``). eval.json: the x0 MSE, and the readout:
              cosine(sampled image embedding, true image embedding) of the test
              captions at each prior guidance scale, beside the baseline
              cosine(text embedding, true image embedding).
``decoder``   ``networks.Decoder``: guided-diffusion's U-Net (``model.decoder.unet``)
              with the image embedding added to the time embedding and projected into
              ``clip_tokens`` attention tokens, optionally before the caption's states
              (``model.decoder.text``); eps prediction of the images at
              ``model.decoder.resolution`` (2x2 means of the canvases for 16). CFG: the
              embedding replaced by a learned null with probability
              ``model.decoder.image_drop`` (0.1), the caption by the empty one with
              ``text_drop`` (0.5); ``sample.decoder_guidance_scale`` (karlo: 8), or each
              sample's ``guidance_scale`` (``eval.guidance_scales``). Stages:
              ``prior`` (an unclip prior run over the same CLIP: the digests must
              agree) makes the run text-to-image, the pipeline text -> prior ->
              decoder [-> upsampler] in one ``generate``, the prior guided with this
              run's ``sample.prior_guidance_scale`` (or each sample's
              ``prior_guidance_scale``); without it the run samples variations of
              given images (``inputs["image"]``). ``upsampler`` (an unclip upsampler
              run from the decoder's resolution to the data's) makes the cascade;
              without it a lower-resolution sample is enlarged (nearest) to the
              data's size. Bipartite variations (section 3.1): an image's x_T by DDIM
              inversion (``jaxgen.diffusion.inversion``) of the decoder conditioned on
              its own CLIP embedding, decoded with DDIM at eta > 0.
              eval.json, beside the target MSE (``v_mse``) and
              ``evaluators.compute``'s sample metrics (``family_metrics``): with a
              prior stage, those metrics at the other prior guidance scales of
              ``eval.prior_guidance_scales``
              (``NAME_guidance_S_prior_P``: the grid prior x decoder guidance); and
              the variations' numbers (jaxgen/evaluators/variations.py):
              ``eval.variation_seeds`` decodings of each of ``eval.variation_sources``
              test images, read by the MNIST classifier against the source's label,
              their diversity beside the real digits' of its class.
``upsampler`` ``UNetModel`` over the noised image and its low-resolution condition (2x2
              means to ``model.upsampler.low_resolution``, bilinearly enlarged),
              blurred in training by a Gaussian of sigma uniform in
              ``model.upsampler.blur_sigma`` (the paper's first upsampler), so that it
              is robust to the decoder's samples; no CLIP stage. It samples from given
              images' low-resolution versions (``inputs["image"]``).

Pictures (``--mode=sample``): the decoder's ``samples`` (per caption through the
prior, else variations), ``variations`` (a row per real image: the image, its
embedding decoded with 4 seeds, then 4 bipartite variations at each eta of
``sample.bipartite_etas``), ``interpolation`` (slerp between two images' embeddings,
the decoder noise fixed along each row, the real images at the ends) and ``text_diff``
(section 3.3: each image's embedding moved toward normalise(z_t(another caption) -
z_t(its own))); the prior's: each caption's real image, then the test images nearest
to its sampled embedding; the upsampler's: input, sample, truth. The same for image
files: ``python -m jaxgen.families.unclip.edit`` (edit.py).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import data, evaluators, losses, sharding, viz
from jaxgen.diffusion import inversion, samplers
from jaxgen.diffusion.process import GaussianDiffusion, check_options
from jaxgen.errors import ConfigError, StageError
from jaxgen.evaluators import features as features_lib
from jaxgen.evaluators import variations as variations_lib
from jaxgen.families.base import OneOptimizerTrainer, check_guidance
from jaxgen.families.unclip import embeddings as emb_lib
from jaxgen.families.unclip import networks
from jaxgen.models import ldm_unet
from jaxgen.stages import ConditioningEncoder, check_tokenizer, frozen_params

ROLES = ("prior", "decoder", "upsampler")
X0_CLAMP = 10.0  # karlo's denoised_fn for the prior


class EmbeddingPrior:
  """The stage protocol of a prior: captions -> CLIP image embeddings
  (``image_embeddings``), over the CLIP stage whose parameters it is given."""


class ImageUpsampler:
  """The stage protocol of an upsampler: low-resolution images -> images."""


class UnCLIPTrainer(OneOptimizerTrainer, EmbeddingPrior, ImageUpsampler):
  data_keys = (("image", "text"), ("image",))
  # The decoder trains on CLIP's image embeddings alone: a better prior or upsampler
  # can replace its stage after training (the paper trains each model apart).
  sampling_stages = ("prior", "upsampler")

  @classmethod
  def roles(cls, config) -> dict:
    m, named = config.model, dict(config.get("stages") or {})
    role = m.role
    roles = {}
    if role != "upsampler" and (named.get("clip") or not int(m.clip_dim)):
      roles["clip"] = ConditioningEncoder
    if role == "decoder":
      if named.get("prior"):
        roles["prior"] = EmbeddingPrior
      if named.get("upsampler"):
        roles["upsampler"] = ImageUpsampler
    return roles

  def __init__(self, config, spec, stages=None):
    super().__init__(config, spec, stages)
    m = config.model
    self.role = m.role
    if self.role not in ROLES:
      raise ConfigError(f"config.model.role={self.role!r}; use one of {', '.join(ROLES)}.")
    self.generates = self.role != "prior"
    self.data_scale = config.data.scale
    self.data_shape = tuple(spec["image"].shape)
    d = config.diffusion
    check_options(d.schedule, d.num_steps, d.parameterization, d.variance)
    self.process = GaussianDiffusion.create(d.schedule, d.num_steps)
    self.param = d.parameterization
    if self.role == "prior" and self.param != "x0":
      raise ConfigError(f"config.diffusion.parameterization={self.param!r}: the unCLIP "
                        f"prior predicts the unnoised embedding (x0), as the paper and "
                        f"karlo do.")
    self.clip = self.stages.get("clip")
    if self.role != "upsampler":
      self.setup_clip(config, spec)
    if self.role == "prior":
      self.setup_prior(config)
      # On the host, before any compiled program closes over them.
      self.statistics = (self.embedding_statistics() if self.clip is not None else
                         None)
    elif self.role == "decoder":
      self.setup_decoder(config)
    else:
      self.setup_upsampler(config)

  # --- setup --------------------------------------------------------------------------
  def setup_clip(self, config, spec):
    m = config.model
    self.tokenizer = data.caption_tokenizer(config.data, f"config.model.role="
                                                         f"{self.role!r} (unclip)")
    self.text_length = int(spec["text"].shape[0])
    self.null_tokens = np.asarray(self.tokenizer.encode([""], self.text_length)[0],
                                  np.int32)
    if self.clip is None:  # a paper config's --mode=summary
      self.clip_dim, self.text_width = int(m.clip_dim), int(m.text_width)
      self.text_length = int(m.text_length) or self.text_length
      return
    check_tokenizer(self.clip, self.tokenizer, f"unclip ({self.role}) on "
                                               f"{config.data.name}")
    tokens = jnp.zeros((1, self.text_length), jnp.int32)
    trainer, params = self.clip.trainer, self.clip.params
    try:
      states = jax.eval_shape(lambda p, t: trainer.text_states(p, t)[0], params, tokens)
    except NotImplementedError:
      raise StageError(
          f"config.stages.clip={self.clip.path} ({type(trainer).__name__}) gives no "
          f"per-token text states (ConditioningEncoder.text_states), which the unCLIP "
          f"prior and decoder read: use a clip run (configs/clip_mnist.py).") from None
    image = jax.eval_shape(trainer.embed_image, params,
                           jnp.zeros((1, *self.data_shape), jnp.float32))
    self.clip_dim, self.text_width = int(image.shape[-1]), int(states.shape[-1])
    for field, mine in (("clip_dim", self.clip_dim), ("text_width", self.text_width)):
      if int(m[field]) and int(m[field]) != mine:
        raise ConfigError(f"config.model.{field}={m[field]}, but the CLIP stage "
                          f"{self.clip.path} gives {mine}: set 0 to take the stage's.")

  def setup_prior(self, config):
    p = config.model.prior
    self.text_drop = float(p.text_drop)
    self.prior_net = networks.PriorTransformer(
        int(p.width), int(p.layers), int(p.heads), self.clip_dim, self.text_length,
        bool(p.final_ln))
    s = config.sample
    self.candidates = int(s.prior_candidates)
    if self.candidates < 1:
      raise ConfigError(f"config.sample.prior_candidates={self.candidates}: at least 1.")
    self.prior_scale = float(s.prior_guidance_scale)
    self.prior_scales = tuple(float(v) for v in (config.eval.get("guidance_scales")
                                                 or ())) or (self.prior_scale,)
    check_guidance((self.prior_scale, *self.prior_scales), self.text_drop,
                   "Prior guidance scales other than 1 need a prior trained with "
                   "text dropout: set config.model.prior.text_drop (0.1).")

  def unet_config(self, u, in_channels, out_channels, **extra):
    fields = {k: (tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in u.items()}
    try:
      return ldm_unet.UNetConfig(in_channels=in_channels, out_channels=out_channels,
                                 **fields, **extra)
    except (TypeError, ValueError) as e:
      raise ConfigError(f"config.model.{self.role}.unet: {e}") from None

  def image_channels(self):
    return int(self.config.model.image_channels) or self.data_shape[-1]

  def setup_decoder(self, config):
    dm = config.model.decoder
    self.resolution = int(dm.resolution)
    self.image_drop, self.text_drop = float(dm.image_drop), float(dm.text_drop)
    self.use_text = bool(dm.text)
    self.learn_sigma = bool(dm.learn_sigma)
    c = self.image_channels()
    unet = self.unet_config(dm.unet, c, 2 * c if self.learn_sigma else c,
                            encoder_channels=int(dm.xf_width))
    self.decoder_net = networks.Decoder(unet, self.clip_dim, int(dm.clip_tokens),
                                        self.use_text)
    s = config.sample
    self.decoder_scale = float(s.decoder_guidance_scale)
    scales = [self.decoder_scale, *(float(v) for v in config.eval.get(
        "guidance_scales") or ())]
    check_guidance(scales, self.image_drop,
                   "Decoder guidance scales other than 1 need a decoder trained with "
                   "the null image embedding: set config.model.decoder.image_drop (0.1).")
    self.bipartite_etas = tuple(float(v) for v in s.get("bipartite_etas", ()))
    if any(not 0 <= v for v in self.bipartite_etas):
      raise ConfigError(f"config.sample.bipartite_etas={self.bipartite_etas}: DDIM's "
                        f"eta is at least 0 (bipartite variations want eta > 0).")
    self.prior = self.stages.get("prior")
    self.upsampler = self.stages.get("upsampler")
    self.prior_scale = float(s.prior_guidance_scale)
    self.prior_grid = tuple(float(v) for v in (config.eval.get("prior_guidance_scales")
                                               or ()))
    if self.prior is not None:
      self.check_prior(self.prior)
      check_guidance((self.prior_scale, *self.prior_grid), self.prior.trainer.text_drop,
                     f"Prior guidance scales other than 1 (config.sample."
                     f"prior_guidance_scale, config.eval.prior_guidance_scales) need a "
                     f"prior trained with text dropout, and {self.prior.path} was not: "
                     f"train it with config.model.prior.text_drop (0.1).")
    if self.upsampler is not None:
      self.check_upsampler(self.upsampler)

  def check_prior(self, stage):
    other = stage.trainer
    if getattr(other, "role", None) != "prior":
      raise StageError(f"config.stages.prior={stage.path} is an unclip "
                       f"{getattr(other, 'role', '?')} run, not a prior.")
    theirs = other.stages.get("clip")
    if theirs is None or theirs.digest != self.clip.digest:
      raise StageError(
          f"config.stages.prior={stage.path} was trained over another CLIP than this "
          f"decoder's: its CLIP {getattr(theirs, 'path', '?')} (digest "
          f"{getattr(theirs, 'digest', '?')[:12]}), this run's {self.clip.path} (digest "
          f"{self.clip.digest[:12]}); the prior's image embeddings live in its CLIP's "
          f"space: train both over the same clip run.")

  def check_upsampler(self, stage):
    other = stage.trainer
    if getattr(other, "role", None) != "upsampler":
      raise StageError(f"config.stages.upsampler={stage.path} is an unclip "
                       f"{getattr(other, 'role', '?')} run, not an upsampler.")
    if other.low_resolution != self.resolution or other.data_shape != self.data_shape:
      raise StageError(
          f"config.stages.upsampler={stage.path} upsamples {other.low_resolution}x"
          f"{other.low_resolution} images to {other.data_shape[0]}x"
          f"{other.data_shape[1]}, and this decoder samples at {self.resolution}x"
          f"{self.resolution} for {self.data_shape[0]}x{self.data_shape[1]} images: "
          f"train an upsampler with config.model.upsampler.low_resolution="
          f"{self.resolution}, or set config.model.decoder.resolution="
          f"{other.low_resolution}.")

  def setup_upsampler(self, config):
    um = config.model.upsampler
    self.low_resolution = int(um.low_resolution)
    lo, hi = (float(v) for v in um.blur_sigma)
    if not 0 <= lo <= hi:
      raise ConfigError(f"config.model.upsampler.blur_sigma=({lo}, {hi}): a range "
                        f"0 <= low <= high.")
    self.blur_sigma = (lo, hi)
    c = self.image_channels()
    self.upsampler_net = ldm_unet.UNetModel(self.unet_config(um.unet, 2 * c, c))

  # --- networks -----------------------------------------------------------------------
  def networks(self):
    t = jnp.zeros((1,), jnp.int32)
    if self.role == "prior":
      d = self.clip_dim
      return {"prior": (self.prior_net, (jnp.zeros((1, d)), t, jnp.zeros((1, d)),
                                         jnp.zeros((1, self.text_length, self.text_width)),
                                         jnp.ones((1, self.text_length), bool)), {})}
    c = self.image_channels()
    if self.role == "decoder":
      r = self.resolution
      text = ((jnp.zeros((1, self.clip_dim)),
               jnp.zeros((1, self.text_length, self.text_width)),
               jnp.ones((1, self.text_length), bool)) if self.use_text else ())
      return {"decoder": (self.decoder_net, (jnp.zeros((1, r, r, c)), t,
                                             jnp.zeros((1, self.clip_dim)), *text), {})}
    h, w = self.data_shape[:2]
    return {"upsampler": (self.upsampler_net, (jnp.zeros((1, h, w, 2 * c)), t), {})}

  def init_state(self, rng):
    if self.role != "upsampler" and self.clip is None:
      raise ConfigError("config.stages.clip is not set: unCLIP trains and samples over "
                        "a frozen CLIP stage; set --config.stages.clip=WORKDIR to a "
                        "finished clip run (config.model.clip_dim only lets "
                        "--mode=summary count the networks).")
    self.check_sizes()
    if self.role == "decoder" and self.learn_sigma:
      raise ConfigError("config.model.decoder.learn_sigma=True builds karlo's variance "
                        "channels for --mode=summary's count; jaxgen trains the decoder "
                        "with fixed variances: set it False to train.")
    return super().init_state(rng)

  def check_sizes(self):
    """The decoder's resolution (the upsampler's low one) against the data's square
    images, checked before training (a paper config's --mode=summary counts its
    networks over any data)."""
    side = self.data_shape[0]
    if self.role == "decoder" and (side % self.resolution or side != self.data_shape[1]):
      raise ConfigError(f"config.model.decoder.resolution={self.resolution} must divide "
                        f"the square images' side {side} (shape {self.data_shape}).")
    if self.role == "upsampler" and (side % self.low_resolution
                                     or self.low_resolution >= side):
      raise ConfigError(f"config.model.upsampler.low_resolution={self.low_resolution} "
                        f"must divide, and be below, the images' side {side}.")

  def initial_extra(self):
    if self.role != "prior":
      return {}
    mean, std = self.statistics
    return {"clip_mean": jnp.asarray(mean), "clip_std": jnp.asarray(std)}

  def embedding_statistics(self):
    """Per-dimension mean and std of the CLIP image embeddings of
    ``model.prior.stats_examples`` training images spread over the split."""
    source = data.get_source(self.config.data, "train")
    n = min(len(source), int(self.config.model.prior.stats_examples))
    idx = np.unique(np.linspace(0, len(source) - 1, n).astype(np.int64))
    batch = data.preprocess.process(source[idx], self.config.data,
                                    np.random.default_rng(0), train=False, indices=idx)
    embed = jax.jit(self.clip.trainer.embed_image)
    e = np.concatenate([np.asarray(embed(self.clip.params,
                                         jnp.asarray(batch["image"][i:i + 256])))
                        for i in range(0, len(idx), 256)])
    return emb_lib.statistics(e)

  def stage_params(self, state):
    if self.role == "prior":
      return {"net": state.ema_params, **state.extra}
    return state.ema_params

  # --- images -------------------------------------------------------------------------
  def to_unit(self, images):
    return (images + 1) / 2 if self.data_scale == "symmetric" else images

  def to_model(self, images, side: int):
    """Images in the data's scale -> [-1, 1], averaged over blocks to ``side``."""
    x = 2 * self.to_unit(images) - 1
    n, h, w, c = x.shape
    if side != h:
      x = x.reshape(n, side, h // side, side, w // side, c).mean((2, 4))
    return x

  def enlarge(self, x, side: int, method: str):
    return jax.image.resize(x, (x.shape[0], side, side, x.shape[-1]), method)

  # --- CLIP ---------------------------------------------------------------------------
  def text_inputs(self, clip_params, tokens):
    """(text embedding (N, D), token states (N, L, W), mask (N, L)) of caption ids."""
    t = self.clip.trainer
    states, mask = t.text_states(clip_params, tokens)
    return jax.lax.stop_gradient((t.embed_text(clip_params, tokens), states, mask))

  def image_embedding(self, clip_params, images):
    return jax.lax.stop_gradient(self.clip.trainer.embed_image(clip_params, images))

  def drop_captions(self, tokens, rng, p: float):
    drop = jax.random.uniform(rng, (tokens.shape[0], 1)) < p
    return jnp.where(drop, jnp.asarray(self.null_tokens)[None], tokens)

  def null_text(self, clip_params, n: int):
    return self.text_inputs(clip_params, jnp.broadcast_to(
        jnp.asarray(self.null_tokens), (n, self.text_length)))

  # --- the prior ----------------------------------------------------------------------
  def apply_prior(self, net_params, x, t, text):
    e, states, mask = text
    return self.policy.apply(self.prior_net, {"params": net_params}, x, t, e, states, mask)

  def image_embeddings(self, prior_params, clip_params, rng, tokens, scale=None,
                       candidates=None):
    """The prior's CLIP image embeddings (B, D), unit norm, of captions (B, L): of
    ``candidates`` draws per caption (``sample.prior_candidates``), the one of the
    highest dot product with the caption's text embedding; guided with ``scale``
    (a number or (B,); default ``sample.prior_guidance_scale``)."""
    n = self.candidates if candidates is None else candidates
    b = tokens.shape[0]
    text = self.text_inputs(clip_params, tokens)
    rep = lambda a: jnp.repeat(a, n, axis=0)
    scale = self.prior_scale if scale is None else scale
    if not isinstance(scale, (int, float)):
      scale = rep(jnp.asarray(scale))
    guided = samplers.guided(
        lambda x, t, c: self.apply_prior(prior_params["net"], x, t, c),
        jax.tree.map(rep, text), self.null_text(clip_params, b * n), scale)
    s = self.config.sample
    z, _ = samplers.ddim(lambda x, t: jnp.clip(guided(x, t), -X0_CLAMP, X0_CLAMP),
                         self.process, (b * n, self.clip_dim), rng,
                         num_steps=int(s.prior_num_steps), eta=float(s.eta),
                         parameterization="x0", clip_x0=False)
    found = emb_lib.unstandardize(z, prior_params["clip_mean"], prior_params["clip_std"])
    best, _ = emb_lib.pick_candidates(found.reshape(b, n, -1), text[0])
    return emb_lib.normalize(best)

  def prior_loss(self, params, batch, rng, frozen):
    k_drop, k_t, k_noise = jax.random.split(rng, 3)
    z = emb_lib.standardize(self.image_embedding(frozen["clip"], batch["image"]),
                            batch["clip_mean"], batch["clip_std"])
    text = self.text_inputs(frozen["clip"], self.drop_captions(batch["text"], k_drop,
                                                               self.text_drop))
    t = jax.random.randint(k_t, (z.shape[0],), 0, self.process.num_steps)
    zt = self.process.q_sample(z, t, jax.random.normal(k_noise, z.shape, z.dtype))
    pred = self.apply_prior(params, zt, t, text)
    cosine = jnp.mean(jnp.sum(emb_lib.normalize(emb_lib.unstandardize(
        pred, batch["clip_mean"], batch["clip_std"])) * emb_lib.normalize(
            emb_lib.unstandardize(z, batch["clip_mean"], batch["clip_std"])), -1))
    return losses.mse_per_example(z, pred).mean(), {"x0_cosine": cosine}

  def prior_eval(self, state, batch, rng, frozen):
    extra, mask = state.extra, batch["mask"]
    clip_p = frozen["clip"]
    true = self.image_embedding(clip_p, batch["image"])
    z = emb_lib.standardize(true, extra["clip_mean"], extra["clip_std"])
    text = self.text_inputs(clip_p, batch["text"])
    k_t, k_noise, k_sample = jax.random.split(rng, 3)
    t = jax.random.randint(k_t, (z.shape[0],), 0, self.process.num_steps)
    zt = self.process.q_sample(z, t, jax.random.normal(k_noise, z.shape, z.dtype))
    mse = losses.mse_per_example(z, self.apply_prior(state.ema_params, zt, t, text))
    out = {"count": mask.sum(), "x0_mse": (mse * mask).sum(),
           "cosine_text_baseline": (jnp.sum(text[0] * true, -1) * mask).sum(),
           "cosine_mean_baseline": (jnp.sum(emb_lib.normalize(extra["clip_mean"])
                                            * true, -1) * mask).sum()}
    params = self.stage_params(state)
    for s in self.prior_scales:
      found = self.image_embeddings(params, clip_p, k_sample, batch["text"], s)
      out[f"cosine_guidance_{s:g}"] = (jnp.sum(found * true, -1) * mask).sum()
    return out

  # --- the decoder --------------------------------------------------------------------
  def apply_decoder(self, params, x, t, cond, *, train=False, rng=None):
    text = (cond["text_emb"], cond["states"], cond["mask"]) if self.use_text else ()
    out = self.policy.apply(self.decoder_net, {"params": params}, x, t, cond["image"],
                            *text, drop_image=cond["drop"], train=train,
                            rngs={"dropout": rng} if train else None)
    return out[..., :x.shape[-1]]

  def decoder_conditions(self, clip_params, image_emb, tokens=None):
    """(cond, null) of the decoder for image embeddings (B, D) and captions (B, L)
    (None: the empty caption): the null has the learned image embedding and the
    empty caption."""
    b = image_emb.shape[0]
    null_text = self.null_text(clip_params, b) if self.use_text else None
    text = (self.text_inputs(clip_params, tokens) if tokens is not None and self.use_text
            else null_text)
    pack = lambda drop, txt: {"image": image_emb, "drop": jnp.full((b,), drop),
                              **({"text_emb": txt[0], "states": txt[1], "mask": txt[2]}
                                 if txt is not None else {})}
    return pack(False, text), pack(True, null_text)

  def decoder_loss(self, params, batch, rng, frozen):
    k_img, k_txt, k_t, k_noise, k_dropout = jax.random.split(rng, 5)
    x0 = self.to_model(batch["image"], self.resolution)
    image_emb = self.image_embedding(frozen["clip"], batch["image"])
    b = x0.shape[0]
    cond = {"image": image_emb,
            "drop": jax.random.uniform(k_img, (b,)) < self.image_drop}
    if self.use_text:
      e, states, mask = self.text_inputs(frozen["clip"], self.drop_captions(
          batch["text"], k_txt, self.text_drop))
      cond.update(text_emb=e, states=states, mask=mask)
    t = jax.random.randint(k_t, (b,), 0, self.process.num_steps)
    noise = jax.random.normal(k_noise, x0.shape, x0.dtype)
    pred = self.apply_decoder(params, self.process.q_sample(x0, t, noise), t, cond,
                              train=True, rng=k_dropout)
    target = self.process.target(x0, noise, t, self.param)
    return losses.mse_per_example(target, pred).mean(), {}

  def guided_decoder(self, params, frozen, image_emb, tokens=None, scale=None):
    """The decoder's ``model_fn(x, t)`` for image embeddings (B, D) and captions
    (B, L) (None: the empty one), classifier-free guided with ``scale`` (default
    ``sample.decoder_guidance_scale``)."""
    scale = self.decoder_scale if scale is None else scale
    cond, null = self.decoder_conditions(frozen["clip"], image_emb, tokens)
    return samplers.guided(lambda x, t, c: self.apply_decoder(params, x, t, c), cond,
                           null, scale)

  def decode(self, params, frozen, rng, image_emb, tokens=None, scale=None, noise=None,
             eta=None):
    """Images in [0, 1] of the data's shape from image embeddings (B, D), with the
    captions ``tokens`` (or the empty one), through the upsampler stage when there is
    one; ``noise`` fixes the decoder's x_T, ``eta`` (default ``sample.eta``) DDIM's
    stochasticity."""
    b, r = image_emb.shape[0], self.resolution
    k_dec, k_up = jax.random.split(rng)
    s = self.config.sample
    x, _ = samplers.ddim(
        self.guided_decoder(params, frozen, image_emb, tokens, scale), self.process,
        (b, r, r, self.image_channels()), k_dec, num_steps=int(s.num_steps),
        eta=float(s.eta) if eta is None else eta, parameterization=self.param,
        x_init=noise)
    side = self.data_shape[0]
    if self.upsampler is not None:
      x = self.upsampler.trainer.upsample(frozen["upsampler"], k_up, x)
    elif side != r:
      x = self.enlarge(x, side, "nearest")
    return jnp.clip((x + 1) / 2, 0.0, 1.0)

  def decoder_eval(self, state, batch, rng, frozen):
    x0, mask = self.to_model(batch["image"], self.resolution), batch["mask"]
    cond, _ = self.decoder_conditions(
        frozen["clip"], self.image_embedding(frozen["clip"], batch["image"]),
        batch.get("text"))
    return self.target_sums(x0, mask, rng, lambda x, t: self.apply_decoder(
        state.ema_params, x, t, cond))

  def target_sums(self, x0, mask, rng, model):
    """Masked sums of the MSE of ``model(x_t, t)`` against its target (eps, x0 or v:
    the key names it) at uniform t."""
    k_t, k_noise = jax.random.split(rng)
    t = jax.random.randint(k_t, (x0.shape[0],), 0, self.process.num_steps)
    noise = jax.random.normal(k_noise, x0.shape, x0.dtype)
    pred = model(self.process.q_sample(x0, t, noise), t)
    mse = losses.mse_per_example(self.process.target(x0, noise, t, self.param), pred)
    return {"count": mask.sum(), f"{self.param}_mse": (mse * mask).sum()}

  # --- the upsampler ------------------------------------------------------------------
  def low_condition(self, low):
    """A low-resolution image in [-1, 1] -> the upsampler's condition channels."""
    return self.enlarge(low, self.data_shape[0], "bilinear")

  def apply_upsampler(self, params, x, t, low, *, train=False, rng=None):
    inp = jnp.concatenate([x, self.low_condition(low).astype(x.dtype)], -1)
    return self.policy.apply(self.upsampler_net, {"params": params}, inp, t, train=train,
                             rngs={"dropout": rng} if train else None)

  def upsample(self, params, rng, low):
    """Images (B, H, W, C) in [-1, 1] from their low-resolution versions (B, r, r, C)
    in [-1, 1] (DDIM with this run's ``sample`` settings)."""
    if low.shape[1] != self.low_resolution:
      raise ValueError(f"The upsampler takes {self.low_resolution}x"
                       f"{self.low_resolution} images, not {low.shape[1:3]}.")
    s = self.config.sample
    x, _ = samplers.ddim(lambda x, t: self.apply_upsampler(params, x, t, low),
                         self.process, (low.shape[0], *self.data_shape[:2], low.shape[-1]),
                         rng, num_steps=int(s.num_steps), eta=float(s.eta),
                         parameterization=self.param)
    return x

  def upsampler_loss(self, params, batch, rng, frozen):
    k_blur, k_t, k_noise, k_dropout = jax.random.split(rng, 4)
    x0 = self.to_model(batch["image"], self.data_shape[0])
    low = self.to_model(batch["image"], self.low_resolution)
    lo, hi = self.blur_sigma
    low = gaussian_blur(low, jax.random.uniform(k_blur, (low.shape[0],), minval=lo,
                                                maxval=hi))
    t = jax.random.randint(k_t, (x0.shape[0],), 0, self.process.num_steps)
    noise = jax.random.normal(k_noise, x0.shape, x0.dtype)
    pred = self.apply_upsampler(params, self.process.q_sample(x0, t, noise), t, low,
                                train=True, rng=k_dropout)
    target = self.process.target(x0, noise, t, self.param)
    return losses.mse_per_example(target, pred).mean(), {}

  def upsampler_eval(self, state, batch, rng, frozen):
    x0, mask = self.to_model(batch["image"], self.data_shape[0]), batch["mask"]
    low = self.to_model(batch["image"], self.low_resolution)
    return self.target_sums(x0, mask, rng, lambda x, t: self.apply_upsampler(
        state.ema_params, x, t, low))

  # --- the loop's hooks ---------------------------------------------------------------
  def loss(self, params, batch, rng, frozen=None):
    return {"prior": self.prior_loss, "decoder": self.decoder_loss,
            "upsampler": self.upsampler_loss}[self.role](params, batch, rng, frozen)

  def train_step(self, state, batch, rng, frozen=None):
    # The prior's standardisation statistics live in the state: the loss reads them.
    return super().train_step(state, {**batch, **state.extra}, rng, frozen)

  def eval_step(self, state, batch, rng, frozen=None):
    return {"prior": self.prior_eval, "decoder": self.decoder_eval,
            "upsampler": self.upsampler_eval}[self.role](state, batch, rng, frozen)

  @property
  def conditioning_keys(self):
    if self.role == "decoder" and self.prior is not None:
      return ("text",)
    return ("image",) if self.role != "prior" else ()

  def sample(self, params, rng, num, inputs=None, frozen=None):
    inputs = dict(inputs or {})
    missing = [k for k in self.conditioning_keys if k not in inputs]
    if self.role == "prior":
      raise ConfigError("An unclip prior run samples image embeddings, not images: use "
                        "it as the prior stage of a decoder run (config.stages.prior), "
                        "and drop the sample metrics of config.eval.metrics.")
    if missing:
      raise ConfigError(f"The unclip {self.role} samples from given "
                        f"{' and '.join(missing)} (inputs[{missing[0]!r}]).")
    if self.role == "upsampler":
      low = self.to_model(inputs["image"], self.low_resolution)
      return jnp.clip((self.upsample(params, rng, low) + 1) / 2, 0.0, 1.0)
    scale = inputs.get("guidance_scale")
    k_prior, k_dec = jax.random.split(rng)
    if self.prior is not None:
      tokens = inputs["text"]
      image_emb = self.prior.trainer.image_embeddings(
          frozen["prior"], frozen["clip"], k_prior, tokens,
          inputs.get("prior_guidance_scale", self.prior_scale))
    else:
      tokens = None
      image_emb = self.image_embedding(frozen["clip"], inputs["image"])
    return self.decode(params, frozen, k_dec, image_emb, tokens, scale)

  # --- pictures -----------------------------------------------------------------------
  def variations(self, params, frozen, rng, images, seeds: int):
    """(B, seeds, H, W, C): each image's CLIP embedding decoded with ``seeds`` seeds."""
    e = self.image_embedding(frozen["clip"], images)
    b = e.shape[0]
    out = self.decode(params, frozen, rng, jnp.repeat(e, seeds, 0))
    return out.reshape(b, seeds, *out.shape[1:])

  def invert(self, params, frozen, images, scale=None):
    """x_T (B, r, r, C) of images (the data's scale) by DDIM inversion (``diffusion.
    inversion``) of the decoder conditioned on their own CLIP image embeddings, guided
    with ``scale`` (default ``sample.decoder_guidance_scale``), over the steps that
    ``decode`` samples with: decoding it with eta 0 redraws the images (at the
    decoder's resolution), up to the steps' discretisation."""
    e = self.image_embedding(frozen["clip"], images)
    return inversion.ddim_invert(
        self.guided_decoder(params, frozen, e, scale=scale), self.process,
        self.to_model(images, self.resolution),
        num_steps=int(self.config.sample.num_steps), parameterization=self.param)

  def bipartite_variations(self, params, frozen, rng, images, seeds: int, eta: float):
    """(B, seeds, H, W, C): unCLIP's bipartite variations (section 3.1): each image's
    (CLIP embedding, DDIM-inverted x_T) decoded with DDIM at ``eta`` > 0, ``seeds``
    draws of the noise that eta adds."""
    e = self.image_embedding(frozen["clip"], images)
    x_t = self.invert(params, frozen, images)
    b = e.shape[0]
    out = self.decode(params, frozen, rng, jnp.repeat(e, seeds, 0),
                      noise=jnp.repeat(x_t, seeds, 0), eta=eta)
    return out.reshape(b, seeds, *out.shape[1:])

  def interpolation(self, params, frozen, rng, a, b, steps: int):
    """(B, steps, H, W, C): slerp(z_a, z_b, theta) for theta in [0, 1], the decoder's
    noise the same along each row."""
    za = self.image_embedding(frozen["clip"], a)
    zb = self.image_embedding(frozen["clip"], b)
    theta = jnp.linspace(0.0, 1.0, steps)
    z = emb_lib.slerp(za[:, None], zb[:, None], theta[None]).reshape(-1, za.shape[-1])
    k_noise, k_dec = jax.random.split(rng)
    r, c = self.resolution, self.image_channels()
    noise = jnp.repeat(jax.random.normal(k_noise, (za.shape[0], r, r, c)), steps, 0)
    out = self.decode(params, frozen, k_dec, z, noise=noise)
    return out.reshape(za.shape[0], steps, *out.shape[1:])

  def text_diffs(self, params, frozen, rng, images, source, target, steps: int,
                 max_theta: float = 0.5):
    """(B, steps, H, W, C): each image's embedding slerped toward normalise(z_t(target)
    - z_t(source)) for theta in [0, max_theta], the noise fixed along each row."""
    z = self.image_embedding(frozen["clip"], images)
    t0 = self.text_inputs(frozen["clip"], source)[0]
    t1 = self.text_inputs(frozen["clip"], target)[0]
    theta = jnp.linspace(0.0, max_theta, steps)
    moved = emb_lib.text_diff(z[:, None], t0[:, None], t1[:, None], theta[None])
    k_noise, k_dec = jax.random.split(rng)
    r, c = self.resolution, self.image_channels()
    noise = jnp.repeat(jax.random.normal(k_noise, (z.shape[0], r, r, c)), steps, 0)
    out = self.decode(params, frozen, k_dec, moved.reshape(-1, z.shape[-1]), noise=noise)
    return out.reshape(z.shape[0], steps, *out.shape[1:])

  def prior_picture(self, state, frozen, rng, tokens, pool):
    """The indices (B, 4) of the pool images nearest to each caption's sampled
    embedding."""
    found = self.image_embeddings(self.stage_params(state), frozen["clip"], rng, tokens)
    sims = found @ self.image_embedding(frozen["clip"], pool).T
    return jax.lax.top_k(sims, min(4, pool.shape[0]))[1]

  def visualize(self, state, rng, batch, frozen=None):
    images = jnp.asarray(batch["image"][:8])
    real = np.asarray(self.to_unit(images))
    u8 = lambda x: viz.to_uint8(np.clip(np.asarray(x), 0, 1))
    rows = len(real)
    if self.role == "prior":
      tokens = jnp.asarray(batch["text"][:rows])
      pool = jnp.asarray(batch["image"])
      top = np.asarray(self.compiled(self.prior_picture)(state, frozen, rng, tokens, pool))
      cells = np.concatenate([real[:, None], np.asarray(self.to_unit(pool))[top]], 1)
      return {"samples": viz.captioned_rows(self.tokenizer.decode_batch(
          np.asarray(tokens)), u8(cells))}
    if self.role == "upsampler":
      up = np.asarray(self.compiled(self.generate, static_argnums=2)(
          state, rng, rows, {"image": images}, frozen))
      low = (np.asarray(self.enlarge(self.to_model(images, self.low_resolution),
                                     self.data_shape[0], "nearest")) + 1) / 2
      return {"samples": viz.grid(u8(np.stack([low, up, real]).reshape(-1, *up.shape[1:])),
                                  rows=3)}
    params, seeds = state.ema_params, 4
    var = np.asarray(self.compiled(self.variations, static_argnames="seeds")(
        params, frozen, rng, images, seeds=seeds))
    bipartite = [np.asarray(self.compiled(self.bipartite_variations,
                                          static_argnames="seeds")(
        params, frozen, rng, images, seeds=seeds, eta=eta)) for eta in self.bipartite_etas]
    var_cells = np.concatenate([real[:, None], var, *bipartite], 1)
    pairs = rows // 2
    interp = np.asarray(self.compiled(self.interpolation, static_argnames="steps")(
        params, frozen, rng, images[:pairs], images[pairs:2 * pairs], steps=6))
    interp = np.concatenate([real[:pairs, None], interp, real[pairs:2 * pairs, None]], 1)
    out = {"variations": viz.grid(u8(var_cells.reshape(-1, *real.shape[1:])), rows=rows),
           "interpolation": viz.grid(u8(interp.reshape(-1, *real.shape[1:])), rows=pairs)}
    if "text" in batch:
      captions = jnp.asarray(batch["text"][:rows])
      other = jnp.roll(captions, 1, axis=0)
      diff = np.asarray(self.compiled(self.text_diffs, static_argnames="steps")(
          params, frozen, rng, images, captions, other, steps=5))
      out["text_diff"] = viz.captioned_rows(
          [f"toward: {c}" for c in self.tokenizer.decode_batch(np.asarray(other))],
          u8(np.concatenate([real[:, None], diff], 1)))
    if self.prior is not None:
      tokens = jnp.asarray(batch["text"][:rows])
      samples = np.asarray(self.compiled(self.text_samples, static_argnames="seeds")(
          params, frozen, rng, tokens, seeds=seeds))
      out["samples"] = viz.captioned_rows(self.tokenizer.decode_batch(np.asarray(tokens)),
                                          u8(np.concatenate([real[:, None], samples], 1)))
    else:
      out["samples"] = out["variations"]
    return out

  # --- the variations' numbers (eval.json) -------------------------------------------
  def family_metrics(self, state, mesh, rng) -> dict:
    """The decoder's numbers beyond the eval step's and ``evaluators.compute``'s (at
    ``sample.prior_guidance_scale``): the sample metrics at the other prior guidance
    scales of ``eval.prior_guidance_scales`` (with a prior stage), and the
    variations' (``variation_metrics``)."""
    if self.role != "decoder":
      return {}
    return {**self.prior_grid_metrics(state, mesh, rng),  # compute's seeds
            **self.variation_metrics(state, mesh, jax.random.split(rng)[0])}

  def prior_grid_metrics(self, state, mesh, rng) -> dict:
    """``evaluators.compute``'s numbers of the pipeline's samples (each decoder
    guidance scale of ``eval.guidance_scales``) at each prior guidance scale of
    ``eval.prior_guidance_scales`` other than ``sample.prior_guidance_scale`` (whose
    row is compute's own, unsuffixed), named ``NAME[_guidance_S]_prior_P``, with the
    same seeds and conditioning; without the shuffled baseline, and the real images'
    numbers once. Nothing without a prior stage (variations have no prior)."""
    if self.prior is None or not self.prior_grid:
      return {}
    config = self.config.copy_and_resolve_references()
    config.unlock()
    config.eval.shuffled_baseline = False
    out = {"prior_guidance_scale": self.prior_scale,
           "prior_guidance_scales": list(self.prior_grid)}
    for p in self.prior_grid:
      if p == self.prior_scale:
        continue
      found = evaluators.compute(PriorScaled(self, p), state, config, mesh, rng)
      for k, v in found.items():
        if isinstance(v, (int, float)) and k != "num_samples" and "_real" not in k:
          out[f"{k}_prior_{p:g}"] = v
    return out

  def variation_metrics(self, state, mesh, rng) -> dict:
    """``eval.variation_seeds`` variations (K) of each of the first
    ``eval.variation_sources`` examples of ``eval.split`` (in ``evaluators.compute``'s
    order), at ``sample.decoder_guidance_scale``, scored by the shipped MNIST
    classifier against the source's label, with their diversity beside the real
    digits' of the source's class (jaxgen/evaluators/variations.py). None without
    ``eval.variation_sources``."""
    e = self.config.eval
    n, k = int(e.get("variation_sources", 0) or 0), int(e.get("variation_seeds", 4))
    if n <= 0:
      return {}
    if k < 2:
      raise ConfigError(f"config.eval.variation_seeds={k}: the variations' diversity "
                        f"needs at least 2 per source.")
    h, w, c = self.data_shape
    if "label" not in self.spec or h != w or c != 1:
      raise ConfigError(f"config.eval.variation_sources={n}: the variations are read "
                        f"by the MNIST classifier against their source's label, which "
                        f"takes labelled one-digit grey canvases, and "
                        f"{self.config.data.name!r} gives {self.data_shape} images"
                        f"{'' if 'label' in self.spec else ' without labels'}: set "
                        f"config.eval.variation_sources=0.")
    net = features_lib.feature_net(self.config, mesh, "mnist_classifier")
    scores = variations_lib.VariationScores(net)
    examples = evaluators.conditioning(self, self.config, n, ("image", "label"))
    per = max(1, int(e.sample_batch_size) // k)
    run = self.compiled(self.variations, static_argnames="seeds")
    frozen = frozen_params(self.stages)
    for i, start in enumerate(range(0, n, per)):
      batch = examples(start, per)
      keep = min(per, n - start)
      images = jnp.asarray(batch["image"])
      var = np.asarray(run(state.ema_params, frozen, jax.random.fold_in(rng, i), images,
                           seeds=k))
      scores.update(var[:keep], np.asarray(self.to_unit(images))[:keep],
                    batch["label"][:keep])
    real = variations_lib.real_class_diversity(net, self.config.data, e.split)
    return {**scores.result(real), "variations_guidance_scale": self.decoder_scale}

  def text_samples(self, params, frozen, rng, tokens, seeds: int):
    """(B, seeds, H, W, C): the pipeline's samples of each caption, ``seeds`` seeds."""
    b = tokens.shape[0]
    rep = jnp.repeat(tokens, seeds, 0)
    out = self.sample(params, rng, b * seeds, {"text": rep}, frozen)
    return out.reshape(b, seeds, *out.shape[1:])


class PriorScaled:
  """A decoder trainer with a prior stage, seen by ``evaluators.compute`` as one whose
  prior samples at guidance ``scale``: every sample's ``prior_guidance_scale``, added
  to the inputs outside the compiled ``generate``, so that every scale runs the
  trainer's one program."""

  def __init__(self, trainer: UnCLIPTrainer, scale: float):
    self.trainer, self.scale = trainer, scale
    self.stages, self.config = trainer.stages, trainer.config
    self.conditioning_keys = trainer.conditioning_keys

  def scaled(self, inputs, num):
    """``inputs`` and the prior scale of each sample, placed as the captions are."""
    scale = np.full((num,), self.scale, np.float32)
    placed = getattr(inputs["text"], "sharding", None)
    return {**inputs, "prior_guidance_scale": scale if placed is None else
            sharding.put_global(scale, placed)}

  def generate(self, state, rng, num, inputs=None, frozen=None):
    return self.trainer.generate(state, rng, num, self.scaled(inputs, num), frozen)

  def compiled(self, fn, **jit_options):
    if fn != self.generate:
      return self.trainer.compiled(fn, **jit_options)
    run = self.trainer.compiled(self.trainer.generate, **jit_options)
    return lambda state, rng, num, inputs, frozen: run(
        state, rng, num, self.scaled(inputs, num), frozen)


def gaussian_blur(x, sigma, radius: int = 2):
  """Images (N, H, W, C) blurred by a separable Gaussian of per-image ``sigma`` (N,)
  (sigma 0: unchanged), edges repeated."""
  offsets = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
  s = jnp.maximum(sigma, 1e-6)[:, None]
  k = jnp.exp(-offsets[None] ** 2 / (2 * s ** 2))
  k = k / k.sum(1, keepdims=True)  # (N, 2r + 1)
  h, w = x.shape[1:3]
  p = jnp.pad(x, ((0, 0), (radius, radius), (radius, radius), (0, 0)), mode="edge")
  size = 2 * radius + 1
  rows = sum(k[:, i, None, None, None] * p[:, i:i + h] for i in range(size))
  return sum(k[:, i, None, None, None] * rows[:, :, i:i + w] for i in range(size))


Trainer = UnCLIPTrainer
