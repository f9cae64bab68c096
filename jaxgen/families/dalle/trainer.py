"""DALL-E 1 (Ramesh et al. 2021): a decoder-only transformer over the caption's tokens
followed by a frozen discrete autoencoder's image tokens, trained to predict each next
token; samples drawn token by token, decoded by the stage and re-ranked by CLIP.

* **Image tokens** are the integer codes of ``config.stages.autoencoder``: a finished
  ``dvae`` or ``vqvae`` run trained on the same captioned canvases (a stage with
  continuous latents is refused), or OpenAI's dVAE weights file. They are encoded
  inside the compiled step, from the batch's images (docs/results.md, "dalle", has the
  measurement against encoding the training set once ahead of training).
* **Text** (the dataset's word ids, ``<bos> words <eos>`` then ``<pad>``) is padded to
  the transformer's text context (``model.text_length``; 0: the captions' length).
  ``model.pad_tokens="per_position"`` gives each padding position its own learned token
  (id ``text vocabulary + position``: DALL-E section 2.2, lucidrains' DALLE-pytorch);
  ``"shared"`` keeps one pad id (minDALL-E). ``model.mask_pads`` also hides the pads
  from attention and from the text loss (the paper's rejected alternative).
* **Loss** (section 2.2): the cross-entropy averaged over the text targets and over the
  image tokens of the batch separately, weighted ``loss.text_weight`` (1/8) and
  ``loss.image_weight`` (7/8); both terms are logged. Text position i predicts text
  token i + 1 and the last text position predicts image token 0.
* **Super-conditioning** (dalle-mini): training replaces a caption by the empty one
  (``<bos> <eos>``) with probability ``model.blank_caption_prob``; sampling mixes the
  logits as ``uncond + cond_scale (cond - uncond)`` (``sample.cond_scale``, or each
  example's ``guidance_scale`` input when ``eval.guidance_scales`` sweeps it) in one
  batch of twice the sequences.
* **Sampling** (``sampling.py``): one compiled ``fori_loop`` through the key-value
  cache (``sample.use_cache``; False: the whole sequence at every step, for
  comparison), temperature, top-k, top-p (``sample.*``), one key per sequence.
* **Re-ranking** (``rerank.py``): with ``config.stages.reranker`` (a ``clip`` run, or
  a CLIP weights file), n candidates are drawn per caption and the one CLIP finds most
  similar to the caption is kept. ``eval.rerank_candidates`` sweeps n (1, 8, 32: the
  same captions and seeds; candidate j is the same draw for every n, so best-of-32
  contains best-of-8); ``sample.candidates`` is n for other callers.
* **Evaluation:** the test NLL of the text and of the image tokens (nats per token), the
  image tokens' NLL per image and spread over the image's dimensions in bits (the
  code term alone: what the stage's decoder adds is not counted); the sample metrics
  of ``eval.metrics`` at each rerank count (and, with ``eval.shuffled_baseline``, for
  samples drawn from other examples' captions: what the metrics give a model that
  ignores the text).
* **Pictures:** per test caption, the real canvas, the stage's reconstruction of it,
  then its candidates (the largest rerank count with a reranker, best first; else 8).
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgen import data, viz
from jaxgen.data import text as text_lib
from jaxgen.data.clip_tokenizer import CLIPTokenizer
from jaxgen.errors import ConfigError, StageError
from jaxgen.families.base import OneOptimizerTrainer, check_guidance
from jaxgen.families.dalle import networks, rerank, sampling
from jaxgen.metrics import clip_score
from jaxgen.stages import (CodeAutoencoder, ConditioningEncoder, check_same_data,
                           check_tokenizer)
from jaxgen.weights.clip import CLIPEncoder

PAD_TOKENS = ("per_position", "shared")
ATTENTION = ("dense", "sparse")
DATA_FIELDS = ("name", "scale", "binarize", "resize", "center_crop")


def candidate_counts(config) -> tuple:
  """The candidate counts a run samples with: ``sample.candidates`` and each of
  ``eval.rerank_candidates``, sorted, distinct, each checked to be a positive
  integer."""
  values = [config.sample.candidates, *(config.eval.get("rerank_candidates") or ())]
  for v in values:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
      raise ConfigError(f"Candidate count {v!r} (config.sample.candidates, "
                        f"config.eval.rerank_candidates): each must be an integer of at "
                        f"least 1.")
  return tuple(sorted({int(v) for v in values}))


class DalleTrainer(OneOptimizerTrainer):
  data_keys = (("image", "text"),)

  @classmethod
  def roles(cls, config) -> dict:
    """The autoencoder stage, unless the model fixes the image tokens' grid and
    vocabulary and none is named (``:paper``'s parameter count needs no stage); the
    reranker when named or when more than one candidate is drawn."""
    m, named = config.model, dict(config.get("stages") or {})
    roles = {}
    if named.get("autoencoder") or not (m.image_vocab_size and tuple(m.image_grid)):
      roles["autoencoder"] = CodeAutoencoder
    if named.get("reranker") or max(candidate_counts(config)) > 1:
      roles["reranker"] = ConditioningEncoder
    return roles

  def __init__(self, config, spec, stages=None):
    super().__init__(config, spec, stages)
    m = config.model
    for name, value, options in (("pad_tokens", m.pad_tokens, PAD_TOKENS),
                                 ("attention", m.attention, ATTENTION),
                                 ("image_positions", m.image_positions,
                                  networks.IMAGE_POSITIONS)):
      if value not in options:
        raise ConfigError(f"config.model.{name}={value!r}; use one of "
                          f"{', '.join(options)}.")
    self.tokenizer = data.caption_tokenizer(config.data, "config.family='dalle'")
    self.scale = config.data.scale
    self.setup_text(m, spec)
    self.setup_autoencoder(config)
    self.net_config = networks.TransformerConfig(
        width=int(m.width), layers=int(m.layers), heads=int(m.heads),
        text_vocab=self.text_vocab, image_vocab=self.num_codes,
        text_length=self.text_length, grid=self.grid,
        image_positions=m.image_positions,
        attention=networks.layer_kinds(int(m.layers), m.attention == "sparse"),
        conv_kernel=int(m.conv_kernel), mlp_ratio=int(m.mlp_ratio),
        dropout=float(m.dropout))
    if m.width % m.heads:
      raise ConfigError(f"config.model.width={m.width} is not divisible by "
                        f"config.model.heads={m.heads}.")
    self.net = networks.Transformer(self.net_config)
    self.setup_loss(config)
    self.setup_sampling(config)
    self.reranker = self.stages.get("reranker")
    if self.reranker is not None:
      self.setup_reranker(self.reranker)

  # --- setup ------------------------------------------------------------------------
  def setup_text(self, m, spec):
    self.caption_length = int(spec["text"].shape[0])
    self.text_length = int(m.text_length) or self.caption_length
    if self.text_length < self.caption_length:
      raise ConfigError(
          f"The captions are {self.caption_length} tokens long "
          f"(config.data.context_length), longer than the transformer's text context "
          f"config.model.text_length={self.text_length}: captions are never cut; set "
          f"config.model.text_length to at least {self.caption_length} (0 takes the "
          f"captions' length).")
    self.base_vocab = int(m.text_vocab_size) or self.tokenizer.vocab_size
    if self.base_vocab < self.tokenizer.vocab_size:
      raise ConfigError(f"config.model.text_vocab_size={self.base_vocab} is smaller than "
                        f"the caption tokenizer's {self.tokenizer.vocab_size} ids; set 0 "
                        f"to use it.")
    self.per_position_pads = m.pad_tokens == "per_position"
    self.text_vocab = self.base_vocab + (self.text_length if self.per_position_pads else 0)
    self.mask_pads = bool(m.mask_pads)

  def setup_autoencoder(self, config):
    m = config.model
    stage = self.stages.get("autoencoder")
    self.autoencoder = None if stage is None else stage.trainer
    if stage is None:
      self.grid, self.num_codes = tuple(int(v) for v in m.image_grid), int(m.image_vocab_size)
      return
    ae = stage.trainer
    latent = ae.latent_spec
    if not int(getattr(ae, "num_codes", 0)) or not jnp.issubdtype(latent.dtype,
                                                                   jnp.integer):
      family = getattr(getattr(ae, "config", None), "family", type(ae).__name__)
      raise StageError(
          f"config.stages.autoencoder={stage.path} is a {family!r} stage with "
          f"continuous latents ({latent.dtype} {tuple(latent.shape)}), not integer "
          f"codes: the DALL-E transformer models the tokens of a discrete autoencoder; "
          f"point it at a finished dvae or vqvae run (configs/dvae_mnist.py:captions, "
          f"configs/vqvae_mnist.py:captions) or OpenAI's dVAE weights file.")
    if len(latent.shape) != 2:
      raise StageError(f"config.stages.autoencoder={stage.path} gives codes of shape "
                       f"{tuple(latent.shape)}; the transformer reads an (h, w) grid.")
    if getattr(ae, "config", None) is not None:  # a run (a weights file has no data)
      check_same_data(config.data, ae.config.data, stage.path, DATA_FIELDS)
    self.grid, self.num_codes = tuple(int(v) for v in latent.shape), int(ae.num_codes)
    for field, mine, theirs in (("image_grid", tuple(m.image_grid), self.grid),
                                ("image_vocab_size", int(m.image_vocab_size),
                                 self.num_codes)):
      if mine and mine != theirs:
        raise ConfigError(f"config.model.{field}={mine}, but the autoencoder stage "
                          f"{stage.path} gives {theirs}: set it to {theirs}, or to its "
                          f"empty value to take the stage's.")

  def setup_loss(self, config):
    m, w = config.model, config.loss
    self.text_weight, self.image_weight = float(w.text_weight), float(w.image_weight)
    if min(self.text_weight, self.image_weight) < 0 or not (
        self.text_weight + self.image_weight > 0):
      raise ConfigError(f"config.loss.text_weight={self.text_weight} and image_weight="
                        f"{self.image_weight}: give non-negative weights, not both 0 "
                        f"(the paper: 1/8 and 7/8).")
    self.blank_caption_prob = float(m.blank_caption_prob)
    if not 0.0 <= self.blank_caption_prob < 1.0:
      raise ConfigError(f"config.model.blank_caption_prob={self.blank_caption_prob} is "
                        f"a probability below 1.")
    # The empty caption <bos> <eos>: super-conditioning's unconditional input.
    self.null_caption = np.asarray(self.tokenizer.encode("", self.caption_length),
                                   np.int32)

  def setup_sampling(self, config):
    s, e = config.sample, config.eval
    self.temperature, self.top_k = float(s.temperature), int(s.top_k)
    self.top_p, self.cond_scale = float(s.top_p), float(s.cond_scale)
    self.use_cache = bool(s.use_cache)
    if not self.temperature > 0 or self.top_k < 0 or not 0 < self.top_p <= 1:
      raise ConfigError(f"config.sample: temperature={self.temperature} must be > 0, "
                        f"top_k={self.top_k} >= 0 (0: all codes), top_p={self.top_p} in "
                        f"(0, 1] (1: no nucleus cut).")
    scales = [self.cond_scale, *(float(v) for v in e.get("guidance_scales") or ())]
    check_guidance(
        scales, self.blank_caption_prob,
        f"Super-conditioning scales {scales} mix in the unconditional logits, which a "
        f"model trained without blank captions (config.model.blank_caption_prob=0) "
        f"never learned: train with blank_caption_prob 0.1, or sample with "
        f"--config.sample.cond_scale=1 and --config.eval.guidance_scales=().")
    self.counts = candidate_counts(config)
    self.default_candidates = int(s.candidates)
    self.picture_candidates = max(self.counts) if max(self.counts) > 1 else 8
    if e.get("metrics"):
      guided = 2 if any(v != 1 for v in scales) else 1
      per_call = int(e.sample_batch_size) * max(self.counts) * guided
      if per_call > int(s.max_batch):
        raise ConfigError(
            f"config.eval.rerank_candidates up to {max(self.counts)} for each of "
            f"config.eval.sample_batch_size={e.sample_batch_size} captions"
            f"{' (twice, for super-conditioning)' if guided > 1 else ''} draws "
            f"{per_call} sequences in one batch, more than config.sample.max_batch="
            f"{s.max_batch} allows: lower eval.sample_batch_size to "
            f"{max(1, int(s.max_batch) // (max(self.counts) * guided))} or fewer, use "
            f"fewer candidates, or raise sample.max_batch.")

  def setup_reranker(self, stage):
    """How the reranker reads the captions: the dataset's word ids (a run with the same
    tokenizer, padded to its context) or OpenAI's BPE ids (a weights file)."""
    who = f"the dalle reranker (config.stages.reranker={stage.path})"
    if stage.tokenizer is not None:
      check_tokenizer(stage, self.tokenizer, who)
      run_data = getattr(getattr(stage.trainer, "config", None), "data", None)
      length = (int(data.example_spec(run_data)["text"].shape[0]) if run_data is not None
                else self.caption_length)
      if length < self.caption_length:
        raise StageError(f"{who} reads captions of {length} tokens, and these are "
                         f"{self.caption_length}: train the reranker with "
                         f"config.data.context_length={self.caption_length}.")
      self.rerank_text = lambda t: jnp.pad(t, ((0, 0), (0, length - t.shape[1])))
    elif isinstance(stage.trainer, CLIPEncoder):
      bpe = CLIPTokenizer.from_openai_bpe(clip_score.bpe_file(
          self.config.sample.reranker_bpe or None))
      table = rerank.bpe_table(self.tokenizer, bpe)
      context = stage.trainer.clip_config.context_length
      longest = 0  # BPE ids of the dataset's longest caption
      for split in ("train", "test"):
        source = data.get_source(self.config.data, split)
        tokens = np.asarray(source[np.arange(len(source))]["text"])
        longest = max(longest, int((table[tokens] >= 0).sum((1, 2)).max()))
      if longest > context:
        raise StageError(f"{who}: the longest caption is {longest} BPE tokens, more "
                         f"than the CLIP's {context} positions; use a CLIP run trained "
                         f"on these captions.")
      self.rerank_text = lambda t: rerank.to_bpe(t, table, context)
    else:
      raise StageError(f"{who} saved no caption tokenizer (tokenizer.json), so its "
                       f"token ids cannot be matched to {self.config.data.name!r}'s "
                       f"captions: use a clip run trained on {self.config.data.name}.")

  # --- the stage --------------------------------------------------------------------
  def require_autoencoder(self):
    if self.autoencoder is None:
      raise ConfigError(
          "config.stages.autoencoder is not set: the dalle family trains on the codes "
          "of a frozen discrete autoencoder; set --config.stages.autoencoder=WORKDIR "
          "to a finished dvae or vqvae run (the model's fixed image_grid and "
          "image_vocab_size only let --mode=summary count its parameters).")

  def codes(self, frozen, images):
    """The stage's codes (B, N) of images in the data's scale, raster order."""
    self.require_autoencoder()
    x = (images + 1.0) / 2.0 if self.scale == "symmetric" else images
    codes = jax.lax.stop_gradient(self.autoencoder.encode(frozen["autoencoder"], x))
    return codes.astype(jnp.int32).reshape(codes.shape[0], -1)

  def decode(self, frozen, codes):
    """Images in [0, 1] of codes (B, N)."""
    self.require_autoencoder()
    grid = codes.reshape(codes.shape[0], *self.grid)
    return jnp.clip(self.autoencoder.decode(frozen["autoencoder"], grid), 0.0, 1.0)

  # --- text -------------------------------------------------------------------------
  def pad_caption(self, text):
    """Caption ids (B, Lc) padded with <pad> to the text context (B, Lt)."""
    extra = self.text_length - text.shape[1]
    return jnp.pad(text, ((0, 0), (0, extra)), constant_values=text_lib.PAD)

  def model_text(self, caption):
    """Padded caption ids (B, Lt) -> the transformer's text ids: with per-position
    pads, the pad at position i is id ``base vocabulary + i``."""
    if not self.per_position_pads:
      return caption
    own = self.base_vocab + jnp.arange(self.text_length, dtype=caption.dtype)
    return jnp.where(caption == text_lib.PAD, own[None], caption)

  def key_mask(self, caption):
    """With ``mask_pads``: the input positions attention may read (B, S'): every
    position but the pads; else None."""
    if not self.mask_pads:
      return None
    image = jnp.ones((caption.shape[0], self.net_config.image_length - 1), bool)
    return jnp.concatenate([caption != text_lib.PAD, image], axis=1)

  def drop_captions(self, text, rng):
    """Each caption replaced by the empty one with probability blank_caption_prob."""
    if not self.blank_caption_prob:
      return text
    drop = jax.random.uniform(rng, (text.shape[0], 1)) < self.blank_caption_prob
    return jnp.where(drop, jnp.asarray(self.null_caption)[None], text)

  # --- networks and the loss --------------------------------------------------------
  def networks(self):
    text = jnp.zeros((1, self.text_length), jnp.int32)
    image = jnp.zeros((1, self.net_config.image_length), jnp.int32)
    return {"transformer": (self.net, (text, image), {})}

  def init_state(self, rng):
    self.require_autoencoder()
    return super().init_state(rng)

  def token_losses(self, params, text, codes, train=False, rng=None):
    """Cross-entropies of captions ``text`` (B, Lc) and codes (B, N): (text CE
    (B, Lt - 1) of text tokens 1.., their weights (0 at pads with mask_pads), image CE
    (B, N))."""
    caption = self.pad_caption(text)
    tokens = self.model_text(caption)
    rngs = {"dropout": rng} if train and rng is not None else None
    text_logits, image_logits = self.policy.apply(
        self.net, {"params": params}, tokens, codes, self.key_mask(caption), train=train,
        rngs=rngs)
    text_ce = cross_entropy(text_logits, tokens[:, 1:])
    weights = ((caption[:, 1:] != text_lib.PAD).astype(jnp.float32) if self.mask_pads
               else jnp.ones_like(text_ce))
    return text_ce, weights, cross_entropy(image_logits, codes)

  def loss(self, params, batch, rng, frozen=None):
    codes = self.codes(frozen, batch["image"])
    k_drop, k_dropout = jax.random.split(rng)
    text_ce, weights, image_ce = self.token_losses(
        params, self.drop_captions(batch["text"], k_drop), codes, train=True,
        rng=k_dropout)
    text_loss = (text_ce * weights).sum() / jnp.maximum(weights.sum(), 1.0)
    image_loss = image_ce.mean()
    loss = self.text_weight * text_loss + self.image_weight * image_loss
    return loss, {"text_loss": text_loss, "image_loss": image_loss}

  # --- evaluation -------------------------------------------------------------------
  def eval_step(self, state, batch, rng, frozen=None):
    """Sums over the real examples of the NLL of the text and of the image tokens, in
    nats per token (EMA parameters, the examples' own captions)."""
    codes = self.codes(frozen, batch["image"])
    text_ce, weights, image_ce = self.token_losses(state.ema_params, batch["text"], codes)
    mask = batch["mask"]
    text_nll = (text_ce * weights).sum(1) / jnp.maximum(weights.sum(1), 1.0)
    return {"count": mask.sum(), "text_nll_nats_per_token": (text_nll * mask).sum(),
            "image_nll_nats_per_token": (image_ce.mean(1) * mask).sum()}

  def finalize_eval(self, sums):
    out = super().finalize_eval(sums)
    per_image = out["image_nll_nats_per_token"] * self.net_config.image_length
    dims = int(np.prod(self.example_shape))
    return {**out, "image_nll_nats": per_image,
            "image_code_bits_per_dim": per_image / (dims * math.log(2))}

  # --- sampling ---------------------------------------------------------------------
  @property
  def conditioning_keys(self):
    return ("text",)

  def draw_tokens(self, params, text, keys, scale=None, cached=None):
    """Image codes (B, N) for captions ``text`` (B, Lc), one key per sequence
    (``keys`` (B,)); ``scale`` (B,) super-conditions (default: ``sample.cond_scale``
    where it is not 1); ``cached``: through the key-value cache (default
    ``sample.use_cache``)."""
    cached = self.use_cache if cached is None else cached
    b, n = text.shape[0], self.net_config.image_length
    if scale is None and self.cond_scale != 1:
      scale = jnp.full((b,), self.cond_scale, jnp.float32)
    guide = scale is not None
    caption = self.pad_caption(text)
    if guide:
      null = jnp.broadcast_to(self.pad_caption(jnp.asarray(self.null_caption)[None]),
                              caption.shape)
      caption = jnp.concatenate([caption, null])
    tokens, key_mask = self.model_text(caption), self.key_mask(caption)
    twice = (lambda t: jnp.concatenate([t, t])) if guide else (lambda t: t)

    def pick(logits, j):
      if guide:
        cond, uncond = jnp.split(logits, 2)
        logits = sampling.guided(cond, uncond, scale)
      return sampling.draw(keys, sampling.filter_logits(
          logits, self.temperature, self.top_k, self.top_p), j)

    apply = functools.partial(self.policy.apply, self.net, {"params": params})
    if not cached:
      return sampling.sample_uncached(
          lambda out: apply(tokens, twice(out), key_mask)[1], pick, n, b)
    caches = networks.init_cache(self.net_config, tokens.shape[0])
    return sampling.sample_cached(
        lambda c: apply(tokens, c, key_mask, method=networks.Transformer.prefill),
        lambda t, j, c: apply(twice(t), j, c, key_mask, method=networks.Transformer.step),
        caches, pick, n, b)

  def candidates(self, params, frozen, rng, text, n: int, scale=None):
    """``n`` decoded candidates (B, n, H, W, C) per caption of ``text`` (B, Lc);
    candidate j of caption i draws with key fold_in(fold_in(rng, i), j)."""
    b = text.shape[0]
    keys = jax.vmap(lambda i: jax.vmap(lambda j: jax.random.fold_in(
        jax.random.fold_in(rng, i), j))(jnp.arange(n)))(jnp.arange(b)).reshape(-1)
    codes = self.draw_tokens(params, jnp.repeat(text, n, axis=0), keys,
                             None if scale is None else jnp.repeat(scale, n))
    return self.decode(frozen, codes).reshape(b, n, *self.example_shape)

  def rerank_scores(self, frozen, images, text):
    """The reranker's cosine similarity (B, n) of candidates (B, n, H, W, C) to their
    captions (B, Lc)."""
    stage = self.reranker.trainer
    b, n = images.shape[:2]
    e_img = stage.embed_image(frozen["reranker"], images.reshape(b * n, *images.shape[2:]))
    e_txt = stage.embed_text(frozen["reranker"], self.rerank_text(text))
    return rerank.scores(e_img.reshape(b, n, -1), e_txt)

  def ranked(self, params, frozen, rng, text, n: int, scale=None):
    """(candidates (B, n, H, W, C) best first by the reranker (as drawn without
    one), their scores (B, n) or None)."""
    images = self.candidates(params, frozen, rng, text, n, scale)
    if self.reranker is None or n == 1:
      return images, None
    scores = self.rerank_scores(frozen, images, text)
    order = jnp.argsort(-scores, axis=1)
    return (jnp.take_along_axis(images, order.reshape(*order.shape, 1, 1, 1), 1),
            jnp.take_along_axis(scores, order, 1))

  def best_of(self, params, frozen, rng, text, n: int, scale=None):
    return self.ranked(params, frozen, rng, text, n, scale)[0][:, 0]

  def sample(self, params, rng, num: int, inputs=None, frozen=None):
    """Samples of the captions ``inputs['text']``, each the best of
    ``inputs['rerank_candidates']`` (the evaluation's sweep; else
    ``sample.candidates``) by the reranker."""
    inputs = dict(inputs or {})
    if "text" not in inputs:
      raise ConfigError("The dalle family samples from captions: give each sample's "
                        "caption tokens (inputs['text']).")
    text = jnp.asarray(inputs["text"])
    scale = inputs.get("guidance_scale")
    count = inputs.get("rerank_candidates")
    if count is None or len(self.counts) == 1:
      return self.best_of(params, frozen, rng, text, self.default_candidates if count is None
                          else self.counts[0], scale)
    # The sweep's count is the same for the whole batch: one branch runs.
    index = jnp.searchsorted(jnp.asarray(self.counts), jnp.asarray(count)[0])
    branches = [lambda ops, n=n: self.best_of(*ops[:4], n, ops[4]) for n in self.counts]
    return jax.lax.switch(index, branches, (params, frozen, rng, text, scale))

  # --- pictures ---------------------------------------------------------------------
  def picture(self, params, frozen, rng, text, images, n: int):
    """Per caption: the stage's reconstruction of its real image, then ``n``
    candidates ranked (B, n + 1, H, W, C)."""
    recon = self.decode(frozen, self.codes(frozen, images))
    ranked, _ = self.ranked(params, frozen, rng, text, n)
    return jnp.concatenate([recon[:, None], ranked], axis=1)

  def visualize(self, state, rng, batch, frozen=None):
    """``samples``: for 8 test captions, the real canvas, the stage's reconstruction
    and the candidates (best first when a reranker ranks them)."""
    rows = min(8, len(batch["text"]))
    text, images = jnp.asarray(batch["text"][:rows]), jnp.asarray(batch["image"][:rows])
    cells = self.compiled(self.picture, static_argnames="n")(
        state.ema_params, frozen, rng, text, images, n=self.picture_candidates)
    real = (images + 1) / 2 if self.scale == "symmetric" else images
    cells = np.concatenate([np.asarray(real)[:, None], np.asarray(cells)], 1)
    return {"samples": viz.captioned_rows(
        self.tokenizer.decode_batch(np.asarray(text)), viz.to_uint8(cells))}


def cross_entropy(logits, targets):
  """Per-position cross-entropy in nats, computed in float32."""
  return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32),
                                                         targets)


Trainer = DalleTrainer
