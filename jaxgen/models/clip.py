"""CLIP (Radford et al. 2021) in Flax: the towers and CLIP's image input.

``CLIP(VIT_B_32)`` is OpenAI's ViT-B/32 (``clip/model.py``): 151,277,313 parameters. Its
parameter tree mirrors the state dict of transformers' ``CLIPModel`` (``vision_model``,
``text_model``, ``visual_projection``, ``text_projection``, ``logit_scale``, with HF's own
spelling ``pre_layrnorm``), so ``jaxgen.weights.clip`` reads ``openai/clip-vit-base-patch32``'s
``model.safetensors`` with a fixed renaming and transposition and no torch.

The same module serves as a frozen feature network (CLIP score, ``jaxgen.metrics``) and
as a trainable stage; it reads weights from a path it is given and downloads nothing
(``jaxgen.weights`` knows where the published files come from). Token ids come
from ``jaxgen.data.clip_tokenizer``. ``preprocess`` is CLIP's image transform on the host:
PIL bicubic resize of the shorter side to 224 (as torchvision's ``Resize`` does for PIL
images, which is what CLIPScore runs; jax.image's cubic kernel differs from PIL's
antialiased one), centre crop, OpenAI's mean and std.
"""
from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

HIGHEST = jax.lax.Precision.HIGHEST
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclasses.dataclass(frozen=True)
class CLIPConfig:
  """Dimensions of a ViT CLIP; the defaults are OpenAI's ViT-B/32.

  ``image_size`` is the side of square images, or (height, width); ``image_channels``
  the channels the patch embedding reads. ``end_of_text`` is where the text tower
  pools: ``argmax`` (OpenAI: the largest token id, CLIP's end token 49407) or
  ``length`` (the last non-padding token, padding id 0: jaxgen's word tokenizer,
  whose end token 2 is not its largest id). Neither changes the parameter tree, nor
  does ``activation``, the MLPs' nonlinearity: ``quick_gelu`` (OpenAI's, x sigmoid(1.702
  x)) or ``gelu`` (the exact, erf GELU: OpenCLIP's ViT-H, Stable Diffusion 2.x's text
  encoder).
  ``conv_stem``: the channels of 3 x 3 stride-2 convolutions (GELU after each) that
  replace the stride-p patch convolution with a 1 x 1 one on their output, as Xiao et
  al. 2021 ("Early convolutions help transformers see better") do; 2 ** len(conv_stem)
  must equal patch_size. Empty (OpenAI's CLIP): the patch convolution.
  """
  embed_dim: int = 512
  image_size: int | tuple = 224
  patch_size: int = 32
  vision_width: int = 768
  vision_layers: int = 12
  vision_heads: int = 12
  context_length: int = 77
  vocab_size: int = 49408
  text_width: int = 512
  text_layers: int = 12
  text_heads: int = 8
  image_channels: int = 3
  end_of_text: str = "argmax"
  conv_stem: tuple = ()
  activation: str = "quick_gelu"

  def __post_init__(self):
    if self.conv_stem and 2 ** len(self.conv_stem) != self.patch_size:
      raise ValueError(f"conv_stem {tuple(self.conv_stem)} halves the image "
                       f"{len(self.conv_stem)} times, so patch_size must be "
                       f"{2 ** len(self.conv_stem)}, not {self.patch_size}.")
    if any(side % self.patch_size for side in self.image_hw):
      raise ValueError(f"image_size {self.image_size} is not a multiple of patch_size "
                       f"{self.patch_size}.")
    if self.end_of_text not in END_OF_TEXT:
      raise ValueError(f"end_of_text={self.end_of_text!r}; use one of {END_OF_TEXT}.")
    if self.activation not in ACTIVATIONS:
      raise ValueError(f"activation={self.activation!r}; use one of {ACTIVATIONS}.")
    for width, heads, tower in ((self.vision_width, self.vision_heads, "vision"),
                                (self.text_width, self.text_heads, "text")):
      if width % heads:
        raise ValueError(f"{tower}_width {width} is not divisible by {tower}_heads {heads}.")


  @property
  def image_hw(self) -> tuple:
    """(height, width) of the image tower's input."""
    s = self.image_size
    return (int(s), int(s)) if isinstance(s, (int, np.integer)) else tuple(map(int, s))

  @property
  def image_shape(self) -> tuple:
    """(height, width, channels) of one input image."""
    return (*self.image_hw, self.image_channels)


END_OF_TEXT = ("argmax", "length")
ACTIVATIONS = ("quick_gelu", "gelu")
VIT_B_32 = CLIPConfig()


def _dense(features: int, name: str | None = None, use_bias: bool = True) -> nn.Dense:
  return nn.Dense(features, use_bias=use_bias, precision=HIGHEST, name=name)


def _layer_norm(name: str) -> nn.LayerNorm:
  # Two-pass variance, as torch computes it.
  return nn.LayerNorm(epsilon=1e-5, use_fast_variance=False, name=name)


class Attention(nn.Module):
  """Multi-head self-attention with separate q, k, v projections (HF's layout);
  ``mask`` (N, L), True = attend, hides keys (padding) besides the causal mask."""
  width: int
  heads: int
  causal: bool

  @nn.compact
  def __call__(self, x, mask=None):
    n, length, _ = x.shape
    head_dim = self.width // self.heads
    q, k, v = (_dense(self.width, name)(x).reshape(n, length, self.heads, head_dim)
               for name in ("q_proj", "k_proj", "v_proj"))
    logits = jnp.einsum("nqhd,nkhd->nhqk", q, k, precision=HIGHEST) * head_dim ** -0.5
    if self.causal:
      logits = jnp.where(jnp.tril(jnp.ones((length, length), bool)), logits, -jnp.inf)
    if mask is not None:
      logits = jnp.where(jnp.asarray(mask, bool)[:, None, None, :], logits, -jnp.inf)
    weights_ = jax.nn.softmax(logits, axis=-1)
    out = jnp.einsum("nhqk,nkhd->nqhd", weights_, v, precision=HIGHEST)
    return _dense(self.width, "out_proj")(out.reshape(n, length, self.width))


class MLP(nn.Module):
  width: int
  activation: str = "quick_gelu"

  @nn.compact
  def __call__(self, x):
    x = _dense(4 * self.width, "fc1")(x)
    if self.activation == "gelu":
      x = nn.gelu(x, approximate=False)
    else:
      x = x * jax.nn.sigmoid(1.702 * x)  # QuickGELU
    return _dense(self.width, "fc2")(x)


class EncoderLayer(nn.Module):
  """OpenAI's ResidualAttentionBlock: pre-LayerNorm attention and MLP, each residual."""
  width: int
  heads: int
  causal: bool
  activation: str = "quick_gelu"

  @nn.compact
  def __call__(self, x, mask=None):
    x = x + Attention(self.width, self.heads, self.causal, name="self_attn")(
        _layer_norm("layer_norm1")(x), mask)
    return x + MLP(self.width, self.activation, name="mlp")(_layer_norm("layer_norm2")(x))


class Encoder(nn.Module):
  width: int
  layers: int
  heads: int
  causal: bool
  activation: str = "quick_gelu"

  @nn.compact
  def __call__(self, x, mask=None):
    for i in range(self.layers):
      x = EncoderLayer(self.width, self.heads, self.causal, self.activation,
                       name=f"layers_{i}")(x, mask)
    return x


class VisionEmbeddings(nn.Module):
  """Patches (a stride-p convolution without bias, or a convolutional stem and a 1 x 1
  one), a class token, learned positions."""
  patch_size: int
  width: int
  conv_stem: tuple = ()

  @nn.compact
  def __call__(self, pixels):
    p = self.patch_size
    x = pixels
    for i, channels in enumerate(self.conv_stem):
      x = nn.gelu(nn.Conv(channels, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)),
                          precision=HIGHEST, name=f"stem_{i}")(x))
    if self.conv_stem:
      p = 1
    x = nn.Conv(self.width, (p, p), strides=(p, p), padding="VALID", use_bias=False,
                precision=HIGHEST, name="patch_embedding")(x)
    n = x.shape[0]
    x = x.reshape(n, -1, self.width)  # row-major patches, as torch's flatten(2)
    cls = self.param("class_embedding", nn.initializers.normal(self.width ** -0.5),
                     (self.width,))
    x = jnp.concatenate([jnp.broadcast_to(cls, (n, 1, self.width)), x], axis=1)
    positions = nn.Embed(x.shape[1], self.width, name="position_embedding")
    return x + positions(jnp.arange(x.shape[1]))


class VisionTransformer(nn.Module):
  """Image (N, S, S, 3), normalised -> the class token after ln_post (N, width)."""
  config: CLIPConfig

  @nn.compact
  def __call__(self, pixels):
    c = self.config
    x = VisionEmbeddings(c.patch_size, c.vision_width, tuple(c.conv_stem),
                         name="embeddings")(pixels)
    x = _layer_norm("pre_layrnorm")(x)
    x = Encoder(c.vision_width, c.vision_layers, c.vision_heads, False, c.activation,
                name="encoder")(x)
    return _layer_norm("post_layernorm")(x[:, 0])


class TextEmbeddings(nn.Module):
  config: CLIPConfig

  @nn.compact
  def __call__(self, tokens):
    c = self.config
    x = nn.Embed(c.vocab_size, c.text_width, name="token_embedding")(tokens)
    positions = nn.Embed(c.context_length, c.text_width, name="position_embedding")
    return x + positions(jnp.arange(tokens.shape[1]))


def end_positions(tokens, rule: str = "argmax"):
  """The end-of-text position of each row of token ids (N, L). ``argmax``: the largest
  id (OpenAI's; CLIP's end token 49407 is the largest id of its vocabulary), so rows
  must hold one. ``length``: the last token that is not padding (id 0), for
  tokenizers that pad with 0 after their end token (jaxgen's word tokenizer)."""
  if rule == "length":
    return jnp.maximum((tokens != 0).sum(-1) - 1, 0)
  return jnp.argmax(tokens, axis=-1)


class TextTransformer(nn.Module):
  """Token ids (N, L) -> the end-of-text position after ln_final (N, width), or with
  ``all_states`` every position's (N, L, width)."""
  config: CLIPConfig

  @nn.compact
  def __call__(self, tokens, all_states: bool = False):
    c = self.config
    x = TextEmbeddings(c, name="embeddings")(tokens)
    x = Encoder(c.text_width, c.text_layers, c.text_heads, True, c.activation,
                name="encoder")(x)
    x = _layer_norm("final_layer_norm")(x)
    if all_states:
      return x
    return x[jnp.arange(x.shape[0]), end_positions(tokens, c.end_of_text)]


def _normalize(x):
  return x / jnp.linalg.norm(x, axis=-1, keepdims=True)


class CLIP(nn.Module):
  """CLIP: ``encode_image``, ``encode_text`` and, as ``__call__``, logits per image.

  ``model.apply(variables, pixels, method=CLIP.encode_image)`` embeds normalised images
  (N, S, S, 3) (``preprocess`` makes them); ``encode_text`` embeds token ids (N, L) with
  L <= context_length (``jaxgen.data.clip_tokenizer`` makes them). Embeddings are not
  normalised.
  """
  config: CLIPConfig = VIT_B_32

  def setup(self):
    c = self.config
    self.vision_model = VisionTransformer(c)
    self.visual_projection = _dense(c.embed_dim, use_bias=False)
    self.text_model = TextTransformer(c)
    self.text_projection = _dense(c.embed_dim, use_bias=False)
    self.logit_scale = self.param("logit_scale", nn.initializers.constant(np.log(1 / 0.07)),
                                  ())

  def encode_image(self, pixels):
    shape = self.config.image_shape
    if pixels.ndim != 4 or tuple(pixels.shape[1:]) != shape:
      raise ValueError(f"CLIP expects normalised images of shape (N, "
                       f"{', '.join(map(str, shape))}), got {pixels.shape}; "
                       f"preprocess(images, {self.config.image_size}) makes them.")
    return self.visual_projection(self.vision_model(pixels))

  def encode_text(self, tokens):
    if tokens.ndim != 2 or tokens.shape[1] > self.config.context_length:
      raise ValueError(f"CLIP expects token ids of shape (N, L <= "
                       f"{self.config.context_length}), got {tokens.shape}.")
    return self.text_projection(self.text_model(tokens))

  def text_states(self, tokens):
    """The text tower's per-token states after ln_final (N, L, width), unprojected,
    and the mask (N, L) of the positions up to the end of text (the causal tower's
    states there have seen no padding)."""
    states = self.text_model(tokens, all_states=True)
    end = end_positions(tokens, self.config.end_of_text)
    mask = jnp.arange(tokens.shape[1])[None, :] <= end[:, None]
    return states, mask

  def __call__(self, pixels, tokens):
    image, text = _normalize(self.encode_image(pixels)), _normalize(self.encode_text(tokens))
    return jnp.exp(self.logit_scale) * jnp.matmul(image, text.T, precision=HIGHEST)


def param_shapes(config: CLIPConfig = VIT_B_32) -> dict:
  """The shapes of CLIP(config)'s parameters, without computing them."""
  pixels = jax.ShapeDtypeStruct((1, *config.image_shape), jnp.float32)
  tokens = jax.ShapeDtypeStruct((1, config.context_length), jnp.int32)
  return jax.eval_shape(CLIP(config).init, jax.random.key(0), pixels, tokens)["params"]


# ---------------------------------------------------------------------------------------
# Images.

def _as_uint8_rgb(images) -> np.ndarray:
  """Images as uint8 (N, H, W, 3): uint8 as given, floats in [0, 1] rounded to 8 bits."""
  images = np.asarray(images)
  if images.ndim != 4:
    raise ValueError(f"Images must be a batch of shape (N, H, W, C), got shape {images.shape}"
                     "; add a leading axis for one image (image[None]) and a trailing one "
                     "for grey images (x[..., None]).")
  channels = images.shape[-1]
  if channels not in (1, 3):
    hint = (" They look channels-first: use images.transpose(0, 2, 3, 1)."
            if images.shape[1] in (1, 3) else "")
    raise ValueError(f"Images must have 1 (grey) or 3 (RGB) channels last, got shape "
                     f"{images.shape}.{hint} Drop an alpha channel with images[..., :3].")
  if np.issubdtype(images.dtype, np.floating):
    if images.size and not (np.isfinite(images).all() and images.min() >= 0
                            and images.max() <= 1):
      raise ValueError(
          f"Float images must lie in [0, 1], got values in [{np.nanmin(images):.3g}, "
          f"{np.nanmax(images):.3g}]: map [-1, 1] images with (x + 1) / 2 and [0, 255] "
          "ones with x / 255 (or pass uint8).")
    # 8 bits as saving the image to a PNG would keep, since CLIPScore reads image files.
    images = np.round(images * 255).astype(np.uint8)
  elif images.dtype != np.uint8:
    raise ValueError(f"Images must be uint8 or float in [0, 1], got {images.dtype}.")
  return np.repeat(images, 3, axis=-1) if channels == 1 else images


def resize_center_crop(images, size: int = 224) -> np.ndarray:
  """CLIP's geometry on the host: PIL bicubic resize of the shorter side, centre crop.

  As torchvision's Resize(size) and CenterCrop(size) compute them for PIL images: the
  longer side becomes int(size * long / short), the crop offset round((side - size) / 2).
  Returns uint8 (N, size, size, 3).
  """
  images = _as_uint8_rgb(images)
  out = np.empty((len(images), size, size, 3), np.uint8)
  for i, image in enumerate(images):
    h, w = image.shape[:2]
    longer = int(size * max(h, w) / min(h, w))
    new_h, new_w = (longer, size) if w <= h else (size, longer)
    resized = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BICUBIC))
    top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
    out[i] = resized[top:top + size, left:left + size]
  return out


def preprocess(images, size: int = 224) -> np.ndarray:
  """CLIP's input: resize and crop, scale to [0, 1], normalise; float32 (N, size, size, 3)."""
  x = resize_center_crop(images, size).astype(np.float32) / np.float32(255)
  return (x - np.float32(OPENAI_MEAN)) / np.float32(OPENAI_STD)
