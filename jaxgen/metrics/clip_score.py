"""CLIP score: CLIP's towers as feature functions, the embedder, and CLIPScore.

CLIPScore (Hessel et al. 2021, jmhessel/clipscore) is 2.5 * max(cos(image, caption), 0)
per pair, averaged, with captions prefixed by "A photo depicts ". torchmetrics' variant is
max(100 * mean cos, 0) without a prefix (its per-pair values are not clipped).

The network is ``jaxgen.models.clip`` (images go through its host ``preprocess``); the
captions' token ids come from a tokenizer given by the caller (``jaxgen.data.clip_tokenizer``,
which this package does not import). ``CLIPEmbedder`` runs the two towers as
``features.FeatureNet``s, which ``features.clip_embedder`` builds.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import numpy as np

from jaxgen.weights import clip as clip_weights
from jaxgen import weights as weights_lib
from jaxgen.models import clip

NAME = "clip-vit-b32"
CLIPSCORE_PREFIX = "A photo depicts "
PREFIXES = {"clipscore": CLIPSCORE_PREFIX, "torchmetrics": ""}


def load_variables(weights=None, config: clip.CLIPConfig = clip.VIT_B_32) -> dict:
  """CLIP's variables from a Hugging Face ``model.safetensors``: ``weights``, or OpenAI's
  ViT-B/32 from the cache (downloaded if missing)."""
  return clip_weights.load_hf_checkpoint(weights_lib.resolve("clip_vit_b32", weights), config)


def bpe_file(path=None):
  """A verified local copy of OpenAI's BPE vocabulary (``path`` if given), for
  ``CLIPTokenizer.from_openai_bpe``."""
  return weights_lib.resolve("clip_bpe", path)


# ---------------------------------------------------------------------------------------
# The towers as feature functions: apply(variables, batch) -> {"features": ...}.

def image_features(variables, pixels, config: clip.CLIPConfig = clip.VIT_B_32):
  """Image embeddings (N, embed_dim), not normalised, of preprocessed images."""
  return {"features": clip.CLIP(config).apply(variables, pixels,
                                              method=clip.CLIP.encode_image)}


def text_features(variables, tokens, config: clip.CLIPConfig = clip.VIT_B_32):
  """Caption embeddings (N, embed_dim), not normalised, of token ids (N, L)."""
  return {"features": clip.CLIP(config).apply(variables, tokens,
                                              method=clip.CLIP.encode_text)}


def image_tower(config: clip.CLIPConfig = clip.VIT_B_32) -> tuple[str, Callable, Callable]:
  """(name, apply, prepare) of the image tower, for a ``features.FeatureNet``."""
  return (f"{NAME} images", functools.partial(image_features, config=config),
          functools.partial(clip.preprocess, size=config.image_size))


def text_tower(config: clip.CLIPConfig = clip.VIT_B_32) -> tuple[str, Callable, Callable]:
  """(name, apply, prepare) of the text tower, for a ``features.FeatureNet``."""
  return (f"{NAME} captions", functools.partial(text_features, config=config), _check_tokens)


def _check_tokens(tokens) -> np.ndarray:
  tokens = np.asarray(tokens)
  if tokens.ndim != 2 or not np.issubdtype(tokens.dtype, np.integer):
    raise ValueError(f"Token ids must be integers of shape (N, L), got {tokens.dtype} of "
                     f"shape {tokens.shape}; a CLIPTokenizer makes them from captions.")
  return tokens.astype(np.int32)


# ---------------------------------------------------------------------------------------
# Embedding many images and captions.

class CLIPEmbedder:
  """Embeds images and captions with CLIP's two towers, each a batched feature network.

  ``images`` and ``texts`` are ``features.FeatureNet``s over the towers (sharing one copy
  of the weights; ``features.clip_embedder`` builds them); ``tokenizer`` maps a list of
  captions and a context length to token ids (a ``CLIPTokenizer``), or is None for an
  embedder of images and token ids only. Single process: on several hosts, embed on one.
  """

  def __init__(self, images, texts, tokenizer=None,
               config: clip.CLIPConfig = clip.VIT_B_32):
    if jax.process_count() > 1:
      raise NotImplementedError("CLIPEmbedder runs in one process; run it on one host.")
    vocab = getattr(tokenizer, "vocab", None)
    if vocab is not None and len(vocab) != config.vocab_size:
      raise ValueError(f"The tokenizer has {len(vocab)} tokens but the model's "
                       f"vocabulary has {config.vocab_size}: they belong to different CLIPs.")
    self.images, self.texts, self.tokenizer, self.config = images, texts, tokenizer, config

  @property
  def variables(self):
    return self.images.variables

  def embed_images(self, images, total: int | None = None) -> np.ndarray:
    """Embeddings (N, embed_dim) of images: one array (N, H, W, C) or an iterable of them.

    uint8 or float [0, 1], grey or RGB, any size (each is resized and cropped); an
    iterable (for example a sampler's batches) is consumed as it is produced.
    """
    if isinstance(images, jax.Array):
      images = np.asarray(images)
    return self.images(images, total)["features"]

  def embed_tokens(self, tokens) -> np.ndarray:
    """Embeddings (N, embed_dim) of token ids (N, L <= context_length)."""
    return self.texts(np.asarray(tokens))["features"]

  def embed_texts(self, captions) -> np.ndarray:
    """Embeddings (N, embed_dim) of a list of captions (truncated to the context length)."""
    if self.tokenizer is None:
      raise ValueError("This CLIPEmbedder has no tokenizer; pass one to embed captions.")
    if isinstance(captions, str):
      captions = [captions]
    return self.embed_tokens(self.tokenizer(list(captions), self.config.context_length))


# ---------------------------------------------------------------------------------------
# The score.

@dataclasses.dataclass(frozen=True)
class CLIPScore:
  value: float
  per_sample: np.ndarray  # per image-caption pair, before averaging
  variant: str  # "clipscore" (Hessel et al. 2021) or "torchmetrics"

  def __str__(self):
    return f"CLIP score ({self.variant}) {self.value:.4f} over {len(self.per_sample)} pairs"


def _check_variant(variant: str) -> None:
  if variant not in PREFIXES:
    raise ValueError(f"Unknown CLIP score variant {variant!r}; use one of {sorted(PREFIXES)}.")


def clip_score(image_embeddings, text_embeddings, variant: str = "clipscore") -> CLIPScore:
  """CLIP score of paired embeddings (N, d), computed in float64.

  ``"clipscore"``: mean over pairs of 2.5 * max(cos, 0) (jmhessel/clipscore).
  ``"torchmetrics"``: max(mean over pairs of 100 * cos, 0) (torchmetrics' CLIPScore).
  """
  _check_variant(variant)
  image = np.asarray(image_embeddings, np.float64)
  text = np.asarray(text_embeddings, np.float64)
  if image.ndim != 2 or image.shape != text.shape or not len(image):
    raise ValueError(f"CLIP score needs paired embeddings of equal shape (N, d) with N > 0, "
                     f"got {image.shape} for images and {text.shape} for captions.")
  cos = np.sum(image * text, axis=1) / (np.linalg.norm(image, axis=1) *
                                        np.linalg.norm(text, axis=1))
  if variant == "clipscore":
    per_sample = 2.5 * np.maximum(cos, 0.0)
    return CLIPScore(float(per_sample.mean()), per_sample, variant)
  per_sample = 100.0 * cos
  return CLIPScore(max(float(per_sample.mean()), 0.0), per_sample, variant)


def compute_clip_score(embedder: CLIPEmbedder, images, captions,
                       variant: str = "clipscore", total: int | None = None) -> CLIPScore:
  """CLIP score of images (array or iterable of batches) against their captions.

  The variant's prefix ("A photo depicts " for CLIPScore) is put before each caption.
  """
  _check_variant(variant)
  captions = list(captions)
  image_embeddings = embedder.embed_images(images, total)
  if len(image_embeddings) != len(captions):
    raise ValueError(f"Got {len(image_embeddings)} images but {len(captions)} captions; "
                     "CLIP score pairs them one to one.")
  text_embeddings = embedder.embed_texts([PREFIXES[variant] + c for c in captions])
  return clip_score(image_embeddings, text_embeddings, variant)
