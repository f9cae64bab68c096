"""The CLIP family: contrastive training of an image and a text tower on captioned
images (``mnist5k_captions``, ``mnist5k_captions2``), as open_clip trains CLIP.

* Networks: ``jaxgen.models.clip.CLIP`` (the module of the metric port) sized by
  ``config.model``; the text tower pools at the end of text found from the caption's
  length (``end_of_text="length"``: jaxgen's word tokenizer pads with 0 after
  ``<eos>``, which is not its largest id).
* Loss: ``losses.contrastive_loss`` over the global batch (under ``jit`` with the
  batch sharded over the mesh, the logits are the whole batch's), with the examples
  of equal captions as positives of each other (``losses.equal_rows``).
* Short captions (``config.model.short_caption_rate``): that share of the training
  captions is cut after its first digit ("a thick small 3 slanted left in the top
  right" -> "a thick small 3"). A batch of 128 full captions rarely holds two that
  differ only in the digit, so the loss barely asks the image tower for the digit
  once position, size, thickness and slant separate the batch; a short caption
  matches every image of its digit and noun phrase (equal captions are positives).
* Swapped negatives (``config.model.swapped_negatives``, two digits): each caption
  with its two digits exchanged ("a small 7 left of a thick 3") joins the batch as a
  text that no image matches, NegCLIP's hard negatives (Yuksekgonul et al. 2023).
  Without them a batch almost never holds the reversed pair, and the towers can
  match a bag of digits and still win the batch (the order test stays at chance).
* The log-temperature ``logit_scale`` starts at log(1/0.07) and is clamped to
  [0, log 100] after each step (open_clip ``train.py``); AdamW decays only the
  matrices (``config.optim.weight_decay_mask="matrices"``).
* Stage: the ``ConditioningEncoder`` protocol on ``stage_params`` (the EMA
  parameters; the configs keep no EMA, so they are the parameters).
* ``--mode=eval``: zero-shot digit accuracy (templates of the caption grammar
  averaged per class), per-attribute zero-shot accuracy, the two-digit order test,
  retrieval recall@1/@5 both ways (an example with the same caption is a hit), the
  temperature. Pictures: the similarity matrix and a retrieval grid.

CLIP is not a generative model: ``generates = False``, and ``generate`` is an error.
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import data, losses, viz, weights
from jaxgen.data import text
from jaxgen.errors import ConfigError
from jaxgen.families.base import OneOptimizerTrainer
from jaxgen.families.clip import zero_shot
from jaxgen.models import clip
from jaxgen.stages import ConditioningEncoder
from jaxgen.weights import clip as clip_weights

MAX_LOGIT_SCALE = math.log(100.0)  # open_clip clamps logit_scale to [0, log 100]
RECALL_AT = (1, 5)


class CLIPTrainer(OneOptimizerTrainer, ConditioningEncoder):
  data_keys = (("image", "text"),)
  compute_dtypes = ("float32",)
  generates = False  # a contrastive encoder: no images to sample

  def __init__(self, config, spec, stages=None):
    super().__init__(config, spec, stages)
    m = config.model
    dataset = data.get_dataset(config.data)
    self.tokenizer = data.caption_tokenizer(config.data, "config.family='clip'")
    self.two_digits = bool(getattr(dataset, "two_digits", False))
    self.context_length = int(spec["text"].shape[0])
    vocab = int(m.vocab_size) or self.tokenizer.vocab_size
    if vocab < self.tokenizer.vocab_size:
      raise ConfigError(f"config.model.vocab_size={vocab} is smaller than the caption "
                        f"tokenizer's {self.tokenizer.vocab_size} ids; set 0 to use it.")
    context = int(m.context_length) or self.context_length
    if context < self.context_length:
      raise ConfigError(f"config.model.context_length={context} is shorter than the "
                        f"captions' {self.context_length} tokens "
                        f"(config.data.context_length).")
    size = m.image_size
    self.clip_config = clip.CLIPConfig(
        embed_dim=m.embed_dim, image_size=size if isinstance(size, int) else tuple(size),
        patch_size=m.patch_size, vision_width=m.vision_width,
        vision_layers=m.vision_layers, vision_heads=m.vision_heads,
        context_length=context, vocab_size=vocab, text_width=m.text_width,
        text_layers=m.text_layers, text_heads=m.text_heads,
        image_channels=m.image_channels, end_of_text="length",
        conv_stem=tuple(m.get("conv_stem", ())))
    channels = self.example_shape[-1]
    if channels not in (1, m.image_channels):
      raise ConfigError(f"config.model.image_channels={m.image_channels}, but the "
                        f"images have {channels} channels.")
    self.net = clip.CLIP(self.clip_config)
    self.init_from = m.init
    self.short_caption_rate = float(m.get("short_caption_rate", 0.0))
    if not 0 <= self.short_caption_rate <= 1:
      raise ConfigError(f"config.model.short_caption_rate={self.short_caption_rate} "
                        f"is a probability: give a value in [0, 1].")
    self.digit_ids = np.asarray([self.tokenizer.vocab.index(str(d)) for d in range(10)
                                 if str(d) in self.tokenizer.vocab], np.int32)
    self.swapped_negatives = bool(m.get("swapped_negatives", False))
    if self.swapped_negatives and not self.two_digits:
      raise ConfigError("config.model.swapped_negatives exchanges a caption's two digits: "
                        f"{config.data.name} has one digit per caption; use "
                        "mnist5k_captions2 (the captions2 variant) or set it False.")
    self.scale = config.data.scale

  # --- networks ---------------------------------------------------------------------
  def networks(self):
    pixels = jnp.zeros((1, *self.clip_config.image_shape))
    tokens = jnp.zeros((1, self.context_length), jnp.int32)
    return {"clip": (self.net, (pixels, tokens), {})}

  def init_params(self, rng):
    params = super().init_params(rng)
    if not self.init_from:
      return params
    loaded = self.initial_weights()
    if jax.tree.structure(loaded) != jax.tree.structure(params):
      raise ConfigError(f"config.model.init={self.init_from!r} does not hold the "
                        f"parameters of this CLIP.")
    return jax.tree.map(jnp.asarray, loaded)

  @functools.cache
  def initial_weights(self):
    """The parameters of ``config.model.init``: ``openai`` (OpenAI's ViT-B/32, from
    jaxgen's weights cache) or a Hugging Face ``model.safetensors`` of the same
    sizes."""
    path = (weights.resolve("clip_vit_b32") if self.init_from == "openai"
            else self.init_from)
    try:
      return clip_weights.load_hf_checkpoint(path, self.clip_config)["params"]
    except (OSError, ValueError) as e:
      raise ConfigError(f"config.model.init={self.init_from!r}: {e}") from e

  def pixels(self, images):
    """Images in the data's scale (N, H, W, C) -> the image tower's input: grey
    repeated to the tower's channels, resized (bicubic) to its size when they differ,
    normalised with OpenAI's mean and std."""
    if self.scale == "symmetric":
      images = (images + 1) / 2
    c = self.clip_config
    if images.shape[-1] != c.image_channels:
      images = jnp.repeat(images, c.image_channels, axis=-1)
    if tuple(images.shape[1:3]) != c.image_hw:
      images = jax.image.resize(images, (images.shape[0], *c.image_shape), "bicubic")
    mean, std = np.float32(clip.OPENAI_MEAN), np.float32(clip.OPENAI_STD)
    if c.image_channels != 3:
      mean, std = mean.mean(keepdims=True), std.mean(keepdims=True)
    return (images - mean) / std

  def _apply(self, params, *args, method):
    return self.policy.apply(self.net, {"params": params}, *args, method=method)

  # --- the ConditioningEncoder stage protocol ---------------------------------------
  def embed_image(self, params, images):
    """Images (N, H, W, C) in [0, 1] (the data's scale) -> L2-normalised (N, D)."""
    return _normalize(self._apply(params, self.pixels(images),
                                  method=clip.CLIP.encode_image))

  def embed_text(self, params, tokens):
    """Token ids of the run's tokenizer (N, L) -> L2-normalised (N, D)."""
    return _normalize(self._apply(params, tokens, method=clip.CLIP.encode_text))

  def text_states(self, params, tokens):
    return self._apply(params, tokens, method=clip.CLIP.text_states)

  # --- training ---------------------------------------------------------------------
  def short_captions(self, tokens, rng):
    """Each caption, with probability ``short_caption_rate``, cut after its first
    digit word: <bos> a thick small 3 <eos>, padded."""
    is_digit = jnp.isin(tokens, jnp.asarray(self.digit_ids))
    cut = jnp.argmax(is_digit, -1)[:, None]  # the first digit's position
    pos = jnp.arange(tokens.shape[1])[None]
    short = jnp.where(pos <= cut, tokens, jnp.where(pos == cut + 1, text.EOS, text.PAD))
    pick = (jax.random.uniform(rng, (tokens.shape[0], 1)) < self.short_caption_rate)
    return jnp.where(pick & is_digit.any(-1, keepdims=True), short, tokens)

  def swap_digits(self, tokens):
    """Each caption with its first two digit words exchanged; a caption with fewer
    than two digits comes back unchanged."""
    is_digit = jnp.isin(tokens, jnp.asarray(self.digit_ids))
    first = jnp.argmax(is_digit, -1)
    pos = jnp.arange(tokens.shape[1])[None]
    second = jnp.argmax(is_digit & (pos > first[:, None]), -1)
    second = jnp.where(is_digit.sum(-1) >= 2, second, first)
    take = lambda p: jnp.take_along_axis(tokens, p[:, None], 1)
    return jnp.where(pos == first[:, None], take(second),
                     jnp.where(pos == second[:, None], take(first), tokens))

  def loss(self, params, batch, rng, frozen=None):
    tokens = batch["text"]
    if self.short_caption_rate:
      tokens = self.short_captions(tokens, rng)
    img = self.embed_image(params, batch["image"])
    scale = jnp.exp(params["logit_scale"])
    score = lambda t: scale * jnp.matmul(img, self.embed_text(params, t).T,
                                         precision=clip.HIGHEST)
    logits = score(tokens)
    positives = losses.equal_rows(tokens)
    negatives = None
    if self.swapped_negatives:
      swapped = self.swap_digits(tokens)
      # A swap equal to a caption of the batch (equal digits, a short caption, or the
      # reversed pair drawn too) is no negative: it is dropped.
      in_batch = jnp.any(jnp.all(swapped[:, None] == tokens[None], -1), -1)
      negatives = jnp.where(in_batch[None], -jnp.inf, score(swapped))
    loss = losses.contrastive_loss(logits, positives, negatives).mean()
    hit = lambda l: jnp.take_along_axis(positives, jnp.argmax(l, -1)[:, None], 1)
    return loss, {"temperature": scale,
                  "accuracy_image_to_text": hit(logits).mean(),
                  "accuracy_text_to_image": hit(logits.T).mean()}

  def train_step(self, state, batch, rng, frozen=None):
    """The base's step, then logit_scale clamped to [0, log 100] (open_clip clamps the
    parameter after each optimiser step)."""
    state, metrics = super().train_step(state, batch, rng, frozen)
    return state.replace(params=clamp_logit_scale(state.params),
                         ema_params=clamp_logit_scale(state.ema_params)), metrics

  # --- evaluation ---------------------------------------------------------------------
  @functools.cached_property
  def reference(self) -> dict:
    """The evaluated examples (``config.eval.split``, its first ``num_examples``),
    preprocessed as the eval batches are: the pool that retrieval ranks, and the
    captions behind the per-attribute prompts (host arrays, built once)."""
    c = self.config
    source = data.get_source(c.data, c.eval.split)
    n = min(len(source), c.eval.num_examples or len(source))
    idx = np.arange(n)
    batch = data.preprocess.process(source[idx], c.data, np.random.default_rng(
        [c.seed, 19]), train=False, indices=idx)
    out = {"image": np.asarray(batch["image"], np.float32), "text": batch["text"]}
    captions = self.tokenizer.decode_batch(batch["text"])
    if not self.two_digits:
      for attribute in zero_shot.ATTRIBUTES:
        variants = [zero_shot.attribute_variants(t, attribute) for t in captions]
        out[f"{attribute}_variants"] = np.stack([self.encode_prompts(v)
                                                 for v, _ in variants])
        out[f"{attribute}_truth"] = np.asarray([i for _, i in variants], np.int32)
    return out

  def encode_prompts(self, prompts):
    return zero_shot.encode(self.tokenizer, prompts, self.context_length)

  @functools.cached_property
  def prompts(self) -> dict:
    """Token ids of the zero-shot prompts (host arrays)."""
    if self.two_digits:
      return {"left_of": self.encode_prompts(zero_shot.pair_prompts("left of")),
              "right_of": self.encode_prompts(zero_shot.pair_prompts("right of")),
              "left": self.tokenizer.vocab.index("left")}
    per_digit = zero_shot.digit_prompts()
    return {"digits": self.encode_prompts([p for ps in per_digit for p in ps]),
            "templates": len(per_digit[0])}

  def class_embeddings(self, params, tokens, num_classes):
    """open_clip's zero-shot classifier: each class's prompts embedded, averaged,
    normalised; (num_classes, D)."""
    e = self.embed_text(params, jnp.asarray(tokens))
    return _normalize(e.reshape(num_classes, -1, e.shape[-1]).mean(1))

  def eval_step(self, state, batch, rng, frozen=None):
    """Sums over the real examples of the batch: zero-shot hits, retrieval hits
    against the whole evaluated pool, the temperature."""
    params, mask = state.ema_params, batch["mask"]
    ref = self.reference
    img = self.embed_image(params, batch["image"])
    txt = self.embed_text(params, batch["text"])
    ref_tokens = jnp.asarray(ref["text"])
    # Positives: pool examples whose caption equals the batch example's.
    same = jnp.all(batch["text"][:, None] == ref_tokens[None], -1)  # (B, N)
    pool_txt = self.embed_text(params, ref_tokens)
    pool_img = self.embed_image(params, jnp.asarray(ref["image"]))
    out = {"count": mask.sum(),
           "temperature": jnp.exp(params["logit_scale"]) * mask.sum()}
    for direction, sims in (("image_to_text", img @ pool_txt.T),
                            ("text_to_image", txt @ pool_img.T)):
      for k in RECALL_AT:
        top = jax.lax.top_k(sims, min(k, sims.shape[1]))[1]
        hit = jnp.take_along_axis(same, top, 1).any(-1)
        out[f"recall_at_{k}_{direction}"] = (hit * mask).sum()
    if self.two_digits:
      out.update(self._pair_sums(params, batch, img, mask))
    else:
      out.update(self._one_digit_sums(params, batch, img, mask, same))
    return out

  def _one_digit_sums(self, params, batch, img, mask, same):
    p, ref = self.prompts, self.reference
    classes = self.class_embeddings(params, p["digits"], 10)
    pred = jnp.argmax(img @ classes.T, -1)
    out = {"zero_shot_digit_accuracy": ((pred == batch["label"]) * mask).sum()}
    first = jnp.argmax(same, -1)  # a pool example with this caption (the same prompts)
    for attribute in zero_shot.ATTRIBUTES:
      variants = jnp.asarray(ref[f"{attribute}_variants"])[first]  # (B, K, L)
      b, k, length = variants.shape
      e = self.embed_text(params, variants.reshape(b * k, length)).reshape(b, k, -1)
      choice = jnp.argmax(jnp.einsum("bd,bkd->bk", img, e), -1)
      right = choice == jnp.asarray(ref[f"{attribute}_truth"])[first]
      out[f"zero_shot_{attribute}_accuracy"] = (right * mask).sum()
    return out

  def _pair_sums(self, params, batch, img, mask):
    """Two digits: the left and right digits from the 100 pair classes ("a A left of
    a B" and "a B right of a A" averaged), and the order test: does "a L left of a R"
    beat "a R left of a L" (examples with two different digits)."""
    p = self.prompts
    first_is_left = jnp.any(batch["text"] == p["left"], -1)
    left = jnp.where(first_is_left, batch["label"], batch["label2"])
    right = jnp.where(first_is_left, batch["label2"], batch["label"])
    left_of = self.embed_text(params, jnp.asarray(p["left_of"]))  # (100, D): 10 A + B
    right_of = self.embed_text(params, jnp.asarray(p["right_of"]))
    # "a B right of a A" says A is left of B: reorder to index 10 A + B.
    right_of = right_of.reshape(10, 10, -1).transpose(1, 0, 2).reshape(100, -1)
    classes = _normalize(left_of + right_of)
    pred = jnp.argmax(img @ classes.T, -1)
    scores = img @ left_of.T
    true = jnp.take_along_axis(scores, (10 * left + right)[:, None], 1)[:, 0]
    swapped = jnp.take_along_axis(scores, (10 * right + left)[:, None], 1)[:, 0]
    distinct = (left != right) * mask
    pair = pred == 10 * left + right
    return {"zero_shot_pair_accuracy": (pair * mask).sum(),
            "zero_shot_left_digit_accuracy": ((pred // 10 == left) * mask).sum(),
            "zero_shot_right_digit_accuracy": ((pred % 10 == right) * mask).sum(),
            "zero_shot_digit_accuracy": (0.5 * ((pred // 10 == left).astype(jnp.float32)
                                                + (pred % 10 == right)) * mask).sum(),
            "order_correct": ((true > swapped) * distinct).sum(),
            "order_count": distinct.sum()}

  def finalize_eval(self, sums):
    sums = dict(sums)
    order = (sums.pop("order_correct", None), sums.pop("order_count", None))
    out = super().finalize_eval(sums)
    if order[1] is not None:
      out["order_accuracy"] = float(order[0]) / max(float(order[1]), 1.0)
      out["order_examples"] = int(order[1])
    return out

  # --- not a generative model ---------------------------------------------------------
  def generate(self, state, rng, num, inputs=None, frozen=None):
    raise ConfigError("config.family='clip' is a contrastive encoder and generates no "
                      "images: drop the sample metrics of config.eval.metrics, or use "
                      "the run as a stage (config.stages) of a generative family.")

  def sample(self, params, rng, num, inputs=None, frozen=None):
    return self.generate(None, rng, num, inputs, frozen)

  # --- pictures -----------------------------------------------------------------------
  def _similarities(self, params, images, tokens):
    return self.embed_image(params, images) @ self.embed_text(params, tokens).T

  def _retrieve(self, params, tokens, k: int):
    """The top ``k`` pool images of each caption: (indices (N, k), similarities)."""
    sims = self.embed_text(params, tokens) @ self.embed_image(
        params, jnp.asarray(self.reference["image"])).T
    s, i = jax.lax.top_k(sims, k)
    return i, s

  def visualize(self, state, rng, batch, frozen=None):
    """``samples``: a retrieval grid (captions of the picture batch, each with its
    top 5 images of the evaluated pool); ``similarity``: the cosine similarities of
    the picture batch's images (rows) and captions (columns, each shown by its
    image), black -1 to white 1."""
    params = state.ema_params
    images, tokens = np.asarray(batch["image"]), np.asarray(batch["text"])
    sims = np.asarray(self.compiled(self._similarities)(params, batch["image"],
                                                       batch["text"]))
    pool = self.reference["image"]
    k = min(5, len(pool))
    rows = min(8, len(tokens))
    top, _ = self.compiled(self._retrieve, static_argnames="k")(params, tokens[:rows], k=k)
    u8 = lambda x: _rgb(viz.to_uint8(np.asarray(x), self.scale))
    return {"samples": viz.captioned_rows(self.tokenizer.decode_batch(tokens[:rows]),
                                      u8(pool[np.asarray(top)].reshape(-1, *pool.shape[1:]))
                                      .reshape(rows, k, *pool.shape[1:3], 3)),
            "similarity": similarity_picture(sims, u8(images))}

  def stage_params(self, state):
    return state.ema_params


def _normalize(x):
  return x / jnp.linalg.norm(x, axis=-1, keepdims=True)


def clamp_logit_scale(params):
  """``params`` with ``logit_scale`` clipped to [0, log 100]."""
  return {**params, "logit_scale": jnp.clip(params["logit_scale"], 0.0, MAX_LOGIT_SCALE)}


def _rgb(x):
  x = x if x.ndim == 4 else x[..., None]
  return np.repeat(x, 3, -1) if x.shape[-1] == 1 else x


def similarity_picture(sims, images) -> np.ndarray:
  """The (N, N) similarity matrix as N x N cells the size of the images, the images
  along the top and the left."""
  n, h, w, _ = images.shape
  cells = np.round((np.clip(sims, -1, 1) + 1) / 2 * 255).astype(np.uint8)
  matrix = np.repeat(np.repeat(cells, h, 0), w, 1)
  out = np.full(((n + 1) * h, (n + 1) * w, 3), 255, np.uint8)
  out[h:, w:] = matrix[..., None]
  for i in range(n):
    out[h * (i + 1):h * (i + 2), :w] = images[i]
    out[:h, w * (i + 1):w * (i + 2)] = images[i]
  return out


Trainer = CLIPTrainer
