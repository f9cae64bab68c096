"""The denoiser of latent diffusion and Stable Diffusion v1/v2: CompVis' ``UNetModel``.

A port of ``ldm/modules/diffusionmodules/openaimodel.py`` (``UNetModel``, ``ResBlock``,
``AttentionBlock``, ``Downsample``) and ``ldm/modules/attention.py``
(``SpatialTransformer``, ``BasicTransformerBlock``, ``CrossAttention``, ``FeedForward``,
``GEGLU``) of CompVis/latent-diffusion (a506df57; CompVis/stable-diffusion 21f890f9
holds the same two files). Layout is NHWC; ``UNetConfig``'s fields carry the names of
the ``unet_config.params`` of CompVis' yaml files, and the paper configurations are the
constants ``CELEBAHQ_VQ4``, ``CIN256_V2``, ``TXT2IMG_1P4B`` and ``SD_V1`` (parameter
counts in their comments, as CompVis' ``UNetModel`` counts them).

Call: ``UNetModel(config).apply(variables, x, timesteps, context=None, y=None,
context_mask=None, train=False)``: ``x`` (N, H, W, in_channels) with H and W divisible by
2 ** (len(channel_mult) - 1), ``timesteps`` (N,) or a scalar (integer or fractional),
``context`` (N, L, context_dim) for the cross-attention (required when
``use_spatial_transformer``), ``y`` (N,) integer labels when ``num_classes`` is set;
returns (N, H, W, out_channels). Keywords of jaxgen's additions: ``emb_add`` (N, 4
model_channels) is added to the time embedding (unCLIP's projected CLIP embedding);
``encoder_out`` (N, L, encoder_channels) and ``encoder_mask`` (N, L) feed the
AttentionBlocks' ``encoder_kv`` when ``encoder_channels`` is set. ``context_mask`` (N, L) bool is jaxgen's addition: where
it is False the cross-attention ignores that context token. CompVis never passes one (SD
attends to its pad tokens too), so leave it None to compute what they compute. Dropout
(only in the ResBlocks, as in CompVis, whose SpatialTransformers get dropout 0) needs a
``"dropout"`` rng when ``train``. ``use_checkpoint`` rematerialises every ResBlock and
attention block in the backward pass (``nn.remat``), as CompVis' gradient checkpointing.

**Parameter names map mechanically onto CompVis' state-dict keys.** Every Flax module
name is the torch module path with each index joined to the name before it by ``_``:
torch ``input_blocks.3.1.transformer_blocks.0.attn2.to_out.0.weight`` is Flax
``params["input_blocks_3_1"]["transformer_blocks_0"]["attn2"]["to_out_0"]["kernel"]``.
So the Flax path becomes the torch key by joining the path with ``.``, writing each
``_<digits>`` as ``.<digits>``, and naming the leaf ``weight`` (``kernel``, ``scale`` and
``embedding``) or ``bias``; no module name of this file has a ``_<digits>`` of its own.
Top level: ``time_embed_0`` / ``time_embed_2`` (Dense), ``label_emb`` (Embed),
``input_blocks_N_M``, ``middle_block_M``, ``output_blocks_N_M``, ``out_0`` (GroupNorm) and
``out_2`` (Conv). In a ResBlock: ``in_layers_0`` (norm), ``in_layers_2`` (conv),
``emb_layers_1``, ``out_layers_0`` (norm), ``out_layers_3`` (conv), ``skip_connection``
(a 1x1 conv, only when the width changes); Downsample's conv is ``op``, Upsample's
``conv``; the legacy AttentionBlock has ``norm``, ``qkv`` and ``proj_out`` (1-D convs of
kernel 1). Kernels are in Flax's layout: a conv's torch weight (O, I, *k) is (*k, I, O),
a linear's (O, I) is (I, O); ``jaxgen.weights.ldm`` converts a state dict.

Initialisation is PyTorch's default (weights and biases U(-1/sqrt(fan_in),
1/sqrt(fan_in)), embeddings N(0, 1), norms 1 and 0) with CompVis' zero modules
(``out_layers.3``, ``proj_out``, ``out.2``), so that training from scratch starts where
CompVis' does. The Upsample conv is ``jaxgen.models.layers.Upsample`` (nearest 2x, then
a 3x3 conv), which keeps the DDPM U-Net's Glorot initialisation.

What this port shares with jaxgen's DDPM U-Net (``jaxgen/models/unet.py``) and what it
does not: the upsampling is the same module. The ResBlock is the same architecture as
``layers.ResBlock`` but not the same numbers: CompVis' GroupNorm32 has epsilon 1e-5
(``diffusion_tf``'s 1e-6), ``resblock_updown`` resamples inside the block, the names
must be CompVis'. The timestep embedding is guided-diffusion's (cos before sin, frequencies
max_period ** (-i / half)), not ``layers.sinusoidal_embedding`` (sin before cos,
max_period ** (-i / (half - 1))). The stride-2 downsampling conv pads one pixel on every
side (torch ``padding=1``), where ``layers.Downsample`` pads TensorFlow's "SAME" way (none
before, one after).
"""
from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.models.layers import Upsample

RESBLOCK_NORM_EPS = 1e-5  # GroupNorm32 (torch's default epsilon)
TRANSFORMER_NORM_EPS = 1e-6  # ldm.modules.attention.Normalize
LAYER_NORM_EPS = 1e-5
NUM_GROUPS = 32


# ---------------------------------------------------------------------------------------
# The configuration.

@dataclasses.dataclass(frozen=True)
class UNetConfig:
  """CompVis' ``UNetModel`` arguments, under their yaml names.

  ``attention_resolutions`` are downsampling factors (1, 2, 4, ...), not sizes: attention
  follows the ResBlocks of every level whose factor is listed. Heads: ``num_heads``
  fixed, or with ``num_head_channels`` set, width / num_head_channels heads of that width
  (one of the two must be set; ``num_heads_upsample`` overrides ``num_heads`` in the
  output blocks' legacy AttentionBlocks). ``use_spatial_transformer`` replaces each
  AttentionBlock by a SpatialTransformer of ``transformer_depth`` blocks that attend to a
  context of width ``context_dim`` (required with it, refused without it);
  ``use_linear_in_transformer`` (Stable Diffusion 2.x) makes its ``proj_in`` and
  ``proj_out`` linear instead of 1x1 convs. ``num_classes`` adds ``label_emb`` (that many
  rows) to the time embedding; a null label for classifier-free guidance is one more
  class. ``image_size`` is the latent side the model was trained at; the network itself
  takes any side divisible by 2 ** (len(channel_mult) - 1).

  Two fields of guided-diffusion's later U-Nets (GLIDE, kakaobrain/karlo
  ``karlo/modules/unet.py``), jaxgen's additions: ``encoder_channels`` gives every legacy
  AttentionBlock an ``encoder_kv`` (a 1-D conv of kernel 1 from that width to 2C) whose
  keys and values of the ``encoder_out`` tokens are put before the block's own (GLIDE's
  text conditioning, unCLIP's decoder); ``use_middle_attention=False`` drops the middle
  block's attention (karlo's super-resolution U-Nets).

  CompVis' ``legacy``, ``dims`` (2 only), ``use_fp16`` (jaxgen's compute policy does
  this) and ``n_embed`` (codebook-id prediction, used by no released config) are not
  fields. With ``legacy=False`` CompVis ignores ``num_heads_upsample``; no released
  config sets it.
  """
  in_channels: int
  model_channels: int
  out_channels: int
  num_res_blocks: int
  attention_resolutions: tuple[int, ...]
  dropout: float = 0.0
  channel_mult: tuple[int, ...] = (1, 2, 4, 8)
  conv_resample: bool = True
  num_classes: int | None = None
  use_checkpoint: bool = False
  num_heads: int = -1
  num_head_channels: int = -1
  num_heads_upsample: int = -1
  use_scale_shift_norm: bool = False
  resblock_updown: bool = False
  use_new_attention_order: bool = False
  use_spatial_transformer: bool = False
  transformer_depth: int = 1
  context_dim: int | None = None
  use_linear_in_transformer: bool = False
  image_size: int | None = None
  encoder_channels: int | None = None
  use_middle_attention: bool = True

  def __post_init__(self):
    for name in ("attention_resolutions", "channel_mult"):  # yaml gives lists
      object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
    if self.use_spatial_transformer and self.context_dim is None:
      raise ValueError("UNetConfig: use_spatial_transformer needs context_dim (the width "
                       "of the cross-attention's context).")
    if self.context_dim is not None and not self.use_spatial_transformer:
      raise ValueError(f"UNetConfig: context_dim={self.context_dim} needs "
                       "use_spatial_transformer=True (only SpatialTransformers take a "
                       "context).")
    if self.encoder_channels is not None and self.use_spatial_transformer:
      raise ValueError("UNetConfig: encoder_channels feeds the legacy AttentionBlocks; "
                       "it cannot be combined with use_spatial_transformer.")
    if self.num_heads == -1 and self.num_head_channels == -1:
      raise ValueError("UNetConfig: set num_heads or num_head_channels.")
    if self.num_classes is not None and self.num_classes < 1:
      raise ValueError(f"UNetConfig: num_classes={self.num_classes}; use None for a "
                       "model without labels.")
    if not self.channel_mult or self.num_res_blocks < 1:
      raise ValueError("UNetConfig: channel_mult must be non-empty and num_res_blocks "
                       ">= 1.")
    levels = len(self.channel_mult)
    for level, mult in enumerate(self.channel_mult):
      width = self.model_channels * mult
      if width % NUM_GROUPS:
        raise ValueError(f"UNetConfig: level {level} has width {width}, which "
                         f"GroupNorm's {NUM_GROUPS} groups do not divide.")
      if 2 ** level in self.attention_resolutions or (
          level == levels - 1 and self.use_middle_attention):  # the middle block
        for upsample in (False, True):
          heads, dim_head = self.heads(width, upsample)
          if heads < 1 or heads * dim_head != width:
            raise ValueError(f"UNetConfig: {heads} heads do not divide the width {width} "
                             f"of level {level}; change num_heads / num_head_channels.")

  @property
  def time_embed_dim(self) -> int:
    return 4 * self.model_channels

  def heads(self, width: int, upsample: bool = False) -> tuple[int, int]:
    """(heads, channels per head) of the attention at ``width``, as CompVis counts them
    (``upsample``: in an output block)."""
    if self.num_head_channels != -1:
      return width // self.num_head_channels, self.num_head_channels
    heads = self.num_heads
    if upsample and not self.use_spatial_transformer and self.num_heads_upsample != -1:
      heads = self.num_heads_upsample
    return heads, width // heads


# configs/latent-diffusion/celebahq-ldm-vq-4.yaml: 274,056,163 parameters.
CELEBAHQ_VQ4 = UNetConfig(image_size=64, in_channels=3, out_channels=3, model_channels=224,
                          attention_resolutions=(8, 4, 2), num_res_blocks=2,
                          channel_mult=(1, 2, 3, 4), num_head_channels=32)
# configs/latent-diffusion/cin256-v2.yaml: 400,920,579 (the ClassEmbedder, 1001 x 512,
# is the conditioning stage, apart).
CIN256_V2 = UNetConfig(image_size=64, in_channels=3, out_channels=3, model_channels=192,
                       attention_resolutions=(8, 4, 2), num_res_blocks=2,
                       channel_mult=(1, 2, 3, 5), num_heads=1, use_spatial_transformer=True,
                       transformer_depth=1, context_dim=512)
# configs/latent-diffusion/txt2img-1p4B-eval.yaml: 872,300,484 (the BERT-like text encoder
# is jaxgen.models.ldm_text.TXT2IMG_1P4B).
TXT2IMG_1P4B = UNetConfig(image_size=32, in_channels=4, out_channels=4, model_channels=320,
                          attention_resolutions=(4, 2, 1), num_res_blocks=2,
                          channel_mult=(1, 2, 4, 4), num_heads=8,
                          use_spatial_transformer=True, transformer_depth=1,
                          context_dim=1280, use_checkpoint=True)
# CompVis/stable-diffusion configs/stable-diffusion/v1-inference.yaml: 859,520,964.
SD_V1 = dataclasses.replace(TXT2IMG_1P4B, context_dim=768)


# ---------------------------------------------------------------------------------------
# PyTorch's layers: initialisation and normalisation.

def torch_kernel_init():
  """nn.Linear / nn.Conv2d weights: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform
  with a = sqrt(5)); Flax's fan_in of a (*k, I, O) kernel is prod(k) * I, as torch's."""
  return nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")


def torch_bias_init(fan_in: int):
  """nn.Linear / nn.Conv2d biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
  bound = 1 / math.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)
  return init


def linear(features: int, fan_in: int, name: str, *, use_bias: bool = True,
           zero: bool = False) -> nn.Dense:
  """torch.nn.Linear(fan_in, features); ``zero``: CompVis' zero_module."""
  if zero:
    return nn.Dense(features, use_bias=use_bias, kernel_init=nn.initializers.zeros,
                    name=name)
  return nn.Dense(features, use_bias=use_bias, kernel_init=torch_kernel_init(),
                  bias_init=torch_bias_init(fan_in), name=name)


def conv(features: int, fan_in_channels: int, kernel: int, name: str, *, stride: int = 1,
         zero: bool = False, ndim: int = 2) -> nn.Conv:
  """torch.nn.Conv{ndim}d(fan_in_channels, features, kernel, stride,
  padding=kernel // 2)."""
  pad = kernel // 2
  init = {"kernel_init": nn.initializers.zeros} if zero else {
      "kernel_init": torch_kernel_init(),
      "bias_init": torch_bias_init(fan_in_channels * kernel ** ndim)}
  return nn.Conv(features, (kernel,) * ndim, strides=(stride,) * ndim,
                 padding=((pad, pad),) * ndim, name=name, **init)


def group_norm(epsilon: float, name: str) -> nn.GroupNorm:
  """torch.nn.GroupNorm(32, C, epsilon): statistics in float32, two-pass variance."""
  return nn.GroupNorm(num_groups=NUM_GROUPS, epsilon=epsilon, use_fast_variance=False,
                      name=name)


def layer_norm(name: str) -> nn.LayerNorm:
  """torch.nn.LayerNorm(C): epsilon 1e-5, two-pass variance."""
  return nn.LayerNorm(epsilon=LAYER_NORM_EPS, use_fast_variance=False, name=name)


def timestep_embedding(timesteps, dim: int, max_period: float = 10000.0) -> jax.Array:
  """guided-diffusion's (and CompVis') sinusoidal embedding, (N,) -> (N, dim) float32:
  [cos(t f_i), sin(t f_i)], f_i = max_period ** (-i / (dim // 2)); an odd ``dim`` gets a
  zero last column."""
  t = jnp.asarray(timesteps, jnp.float32)
  if t.ndim != 1:
    raise ValueError(f"timesteps must have shape (N,), got {t.shape}.")
  half = dim // 2
  freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
  args = t[:, None] * freqs[None]
  emb = jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)
  return jnp.pad(emb, ((0, 0), (0, dim % 2)))


# ---------------------------------------------------------------------------------------
# Transformer parts (ldm/modules/attention.py; the text encoder of ldm_text uses them too).

class Attention(nn.Module):
  """Multi-head attention of ``x`` (N, Lq, C) to ``context`` (N, Lk, Cc; default x):
  q, k, v linear without bias, softmax(q k^T / sqrt(dim_head)), then an output linear
  with bias named ``out_name`` (CompVis' CrossAttention: ``to_out_0``; x-transformers'
  Attention: ``to_out``). ``mask``, True = attend: (N, Lq, Lk) or (N, 1, Lk) for all
  heads, or (N, 1 or heads, Lq, Lk); masked logits become float32's lowest value, as
  torch's masked_fill with -finfo.max (a row masked everywhere attends uniformly)."""
  heads: int
  dim_head: int
  out_features: int
  out_name: str = "to_out_0"

  @nn.compact
  def __call__(self, x, context=None, mask=None):
    context = x if context is None else context
    inner = self.heads * self.dim_head
    n, lq, lk = x.shape[0], x.shape[1], context.shape[1]
    q = linear(inner, x.shape[-1], "to_q", use_bias=False)(x)
    k = linear(inner, context.shape[-1], "to_k", use_bias=False)(context)
    v = linear(inner, context.shape[-1], "to_v", use_bias=False)(context)
    q = q.reshape(n, lq, self.heads, self.dim_head)
    k = k.reshape(n, lk, self.heads, self.dim_head)
    v = v.reshape(n, lk, self.heads, self.dim_head)
    logits = jnp.einsum("nqhd,nkhd->nhqk", q, k) * self.dim_head ** -0.5
    logits = logits.astype(jnp.float32)
    if mask is not None:
      mask = jnp.asarray(mask, bool)
      logits = jnp.where(mask[:, None] if mask.ndim == 3 else mask, logits,
                         jnp.finfo(jnp.float32).min)
    weights = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    out = jnp.einsum("nhqk,nkhd->nqhd", weights, v).reshape(n, lq, inner)
    return linear(self.out_features, inner, self.out_name)(out)


class GEGLU(nn.Module):
  """``proj`` to 2 * features, then x * gelu(gate) (the exact, erf GELU)."""
  features: int

  @nn.compact
  def __call__(self, x):
    h, gate = jnp.split(linear(2 * self.features, x.shape[-1], "proj")(x), 2, axis=-1)
    return h * nn.gelu(gate, approximate=False)


class FeedForward(nn.Module):
  """CompVis' (and x-transformers') FeedForward: ``net_0`` (GEGLU with ``glu``, else
  ``net_0_0`` linear and exact GELU) to mult * width, then linear ``net_2`` back."""
  mult: int = 4
  glu: bool = False

  @nn.compact
  def __call__(self, x):
    dim = x.shape[-1]
    inner = self.mult * dim
    if self.glu:
      h = GEGLU(inner, name="net_0")(x)
    else:
      h = nn.gelu(linear(inner, dim, "net_0_0")(x), approximate=False)
    return linear(dim, inner, "net_2")(h)


class BasicTransformerBlock(nn.Module):
  """Pre-LayerNorm self-attention (``attn1``), cross-attention to the context
  (``attn2``) and GEGLU feed-forward (``ff``), each residual."""
  heads: int
  dim_head: int

  @nn.compact
  def __call__(self, x, context, context_mask=None):
    dim = x.shape[-1]
    x = x + Attention(self.heads, self.dim_head, dim, name="attn1")(layer_norm("norm1")(x))
    mask = None if context_mask is None else context_mask[:, None, :]
    x = x + Attention(self.heads, self.dim_head, dim, name="attn2")(
        layer_norm("norm2")(x), context, mask)
    return x + FeedForward(glu=True, name="ff")(layer_norm("norm3")(x))


class SpatialTransformer(nn.Module):
  """GroupNorm (eps 1e-6), ``proj_in`` (1x1 conv, or linear with ``use_linear``), the
  transformer blocks over the H*W positions, a zero-initialised ``proj_out``, plus the
  input."""
  heads: int
  dim_head: int
  depth: int = 1
  use_linear: bool = False

  @nn.compact
  def __call__(self, x, context, context_mask=None):
    n, height, width, channels = x.shape
    inner = self.heads * self.dim_head
    h = group_norm(TRANSFORMER_NORM_EPS, "norm")(x)
    if self.use_linear:
      h = linear(inner, channels, "proj_in")(h.reshape(n, height * width, channels))
    else:
      h = conv(inner, channels, 1, "proj_in")(h).reshape(n, height * width, inner)
    for d in range(self.depth):
      h = BasicTransformerBlock(self.heads, self.dim_head, name=f"transformer_blocks_{d}")(
          h, context, context_mask)
    if self.use_linear:
      h = linear(channels, inner, "proj_out", zero=True)(h).reshape(x.shape)
    else:
      h = conv(channels, inner, 1, "proj_out", zero=True)(h.reshape(n, height, width, inner))
    return x + h


# ---------------------------------------------------------------------------------------
# U-Net blocks (ldm/modules/diffusionmodules/openaimodel.py).

def avg_pool2(x):
  """2x2 average pooling, stride 2 (torch's AvgPool2d(2))."""
  return nn.avg_pool(x, (2, 2), strides=(2, 2), padding="VALID")


class Downsample(nn.Module):
  """A stride-2 3x3 conv ``op`` padded by one on every side, or 2x2 average pooling."""
  use_conv: bool

  @nn.compact
  def __call__(self, x):
    if self.use_conv:
      return conv(x.shape[-1], x.shape[-1], 3, "op", stride=2)(x)
    return avg_pool2(x)


class ResBlock(nn.Module):
  """norm, SiLU, [resample], conv3x3; + linear(SiLU(emb)) (or norm(h) (1 + scale) +
  shift with ``use_scale_shift_norm``); norm, SiLU, dropout, zero conv3x3; plus the
  input (through a 1x1 ``skip_connection`` when the width changes). ``up`` / ``down``:
  nearest 2x / 2x2 average pooling of both branches after the first SiLU."""
  out_channels: int
  dropout: float = 0.0
  use_scale_shift_norm: bool = False
  up: bool = False
  down: bool = False

  @nn.compact
  def __call__(self, x, emb, train: bool = False):
    channels = x.shape[-1]
    h = nn.silu(group_norm(RESBLOCK_NORM_EPS, "in_layers_0")(x))
    if self.up:
      h, x = Upsample(False)(h), Upsample(False)(x)
    elif self.down:
      h, x = avg_pool2(h), avg_pool2(x)
    h = conv(self.out_channels, channels, 3, "in_layers_2")(h)
    width = 2 * self.out_channels if self.use_scale_shift_norm else self.out_channels
    emb_out = linear(width, emb.shape[-1], "emb_layers_1")(nn.silu(emb))[:, None, None, :]
    norm = group_norm(RESBLOCK_NORM_EPS, "out_layers_0")
    if self.use_scale_shift_norm:
      scale, shift = jnp.split(emb_out, 2, axis=-1)
      h = norm(h) * (1 + scale) + shift
    else:
      h = norm(h + emb_out)
    h = nn.Dropout(self.dropout, deterministic=not train)(nn.silu(h))
    h = conv(self.out_channels, self.out_channels, 3, "out_layers_3", zero=True)(h)
    if channels != self.out_channels:
      x = conv(self.out_channels, channels, 1, "skip_connection")(x)
    return x + h


class AttentionBlock(nn.Module):
  """The legacy spatial self-attention: GroupNorm32, a 1-D conv ``qkv`` to 3C,
  attention per head, a zero 1-D conv ``proj_out``, plus the input. ``qkv``'s channels
  are ordered (head, q/k/v, channel) (QKVAttentionLegacy) or with
  ``new_attention_order`` (q/k/v, head, channel) (QKVAttention). With ``encoder_out``
  (N, L, E) (GLIDE and karlo's ``AttentionBlock(encoder_channels=E)``), a 1-D conv
  ``encoder_kv`` E -> 2C gives keys and values ordered (head, k/v, channel) that are
  put before the spatial ones; ``encoder_mask`` (N, L), True = attend, hides tokens
  (the spatial keys are always attended)."""
  heads: int
  new_attention_order: bool = False

  @nn.compact
  def __call__(self, x, encoder_out=None, encoder_mask=None):
    n, channels = x.shape[0], x.shape[-1]
    ch = channels // self.heads
    h = group_norm(RESBLOCK_NORM_EPS, "norm")(x).reshape(n, -1, channels)
    qkv = conv(3 * channels, channels, 1, "qkv", ndim=1)(h)
    length = qkv.shape[1]
    if self.new_attention_order:
      q, k, v = (t.reshape(n, length, self.heads, ch) for t in jnp.split(qkv, 3, axis=-1))
    else:
      q, k, v = jnp.split(qkv.reshape(n, length, self.heads, 3 * ch), 3, axis=-1)
    mask = None
    if encoder_out is not None:
      kv = conv(2 * channels, encoder_out.shape[-1], 1, "encoder_kv", ndim=1)(encoder_out)
      ek, ev = jnp.split(kv.reshape(n, kv.shape[1], self.heads, 2 * ch), 2, axis=-1)
      k, v = jnp.concatenate([ek, k], axis=1), jnp.concatenate([ev, v], axis=1)
      if encoder_mask is not None:
        mask = jnp.concatenate([jnp.asarray(encoder_mask, bool),
                                jnp.ones((n, length), bool)], axis=1)
    logits = jnp.einsum("nthc,nshc->nhts", q, k) * ch ** -0.5
    logits = logits.astype(jnp.float32)
    if mask is not None:
      logits = jnp.where(mask[:, None, None, :], logits, -jnp.inf)
    weights = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    a = jnp.einsum("nhts,nshc->nthc", weights, v).reshape(n, length, channels)
    a = conv(channels, channels, 1, "proj_out", zero=True, ndim=1)(a)
    return x + a.reshape(x.shape)


# ---------------------------------------------------------------------------------------
# The U-Net.

class UNetModel(nn.Module):
  """CompVis' UNetModel; see the module docstring for the call and the names."""
  config: UNetConfig

  def _check(self, x, context, y, context_mask, encoder_out=None):
    c = self.config
    if (encoder_out is None) != (c.encoder_channels is None) or (
        encoder_out is not None and (encoder_out.ndim != 3 or
                                     encoder_out.shape[-1] != c.encoder_channels)):
      got = "none" if encoder_out is None else f"shape {encoder_out.shape}"
      raise ValueError(f"UNetModel with encoder_channels={c.encoder_channels} got "
                       f"encoder_out {got}: pass (N, L, encoder_channels) exactly when "
                       f"encoder_channels is set.")
    factor = 2 ** (len(c.channel_mult) - 1)
    if x.ndim != 4 or x.shape[-1] != c.in_channels:
      raise ValueError(f"UNetModel expects x of shape (N, H, W, {c.in_channels}), got "
                       f"{x.shape}.")
    if x.shape[1] % factor or x.shape[2] % factor:
      raise ValueError(f"UNetModel: size {x.shape[1]}x{x.shape[2]} is not divisible by "
                       f"2 ** (len(channel_mult) - 1) = {factor}.")
    if (y is None) != (c.num_classes is None):
      raise ValueError(f"UNetModel with num_classes={c.num_classes} got "
                       f"{'no' if y is None else ''} labels y: pass y (N,) exactly when "
                       "num_classes is set.")
    if c.use_spatial_transformer:
      if context is None or context.ndim != 3 or context.shape[-1] != c.context_dim:
        got = "none" if context is None else f"shape {context.shape}"
        raise ValueError(f"UNetModel: the cross-attention needs a context of shape "
                         f"(N, L, context_dim={c.context_dim}), got {got}.")
      if context_mask is not None and context_mask.shape != context.shape[:2]:
        raise ValueError(f"UNetModel: context_mask of shape {context_mask.shape} for a "
                         f"context of shape {context.shape}; it must be (N, L).")
    elif context is not None or context_mask is not None:
      raise ValueError("UNetModel got a context but has no SpatialTransformer "
                       "(use_spatial_transformer=False).")

  @nn.compact
  def __call__(self, x, timesteps, context=None, y=None, context_mask=None, *,
               train: bool = False, emb_add=None, encoder_out=None, encoder_mask=None):
    c = self.config
    self._check(x, context, y, context_mask, encoder_out)
    n = x.shape[0]
    t = jnp.broadcast_to(jnp.asarray(timesteps), (n,))
    emb = timestep_embedding(t, c.model_channels).astype(x.dtype)
    emb = linear(c.time_embed_dim, c.model_channels, "time_embed_0")(emb)
    emb = linear(c.time_embed_dim, c.time_embed_dim, "time_embed_2")(nn.silu(emb))
    if c.num_classes is not None:
      emb = emb + nn.Embed(c.num_classes, c.time_embed_dim,
                           embedding_init=nn.initializers.normal(1.0), name="label_emb")(y)
    if emb_add is not None:  # conditioning added to the time embedding (N, 4 C)
      emb = emb + emb_add.astype(emb.dtype)

    remat = nn.remat if c.use_checkpoint else (lambda cls, **_: cls)
    res_block = remat(ResBlock, static_argnums=(3,))
    transformer = remat(SpatialTransformer)
    attention_block = remat(AttentionBlock)

    def resblock(h, out_channels, name, **updown):
      return res_block(out_channels, c.dropout, c.use_scale_shift_norm, name=name,
                       **updown)(h, emb, train)

    def attend(h, name, upsample=False):
      heads, dim_head = c.heads(h.shape[-1], upsample)
      if c.use_spatial_transformer:
        return transformer(heads, dim_head, c.transformer_depth,
                           c.use_linear_in_transformer, name=name)(h, context, context_mask)
      return attention_block(heads, c.use_new_attention_order, name=name)(
          h, encoder_out, encoder_mask)

    hs = [conv(c.model_channels, c.in_channels, 3, "input_blocks_0_0")(x)]
    factor, block = 1, 1
    for level, mult in enumerate(c.channel_mult):
      for _ in range(c.num_res_blocks):
        h = resblock(hs[-1], mult * c.model_channels, f"input_blocks_{block}_0")
        if factor in c.attention_resolutions:
          h = attend(h, f"input_blocks_{block}_1")
        hs.append(h)
        block += 1
      if level != len(c.channel_mult) - 1:
        name = f"input_blocks_{block}_0"
        if c.resblock_updown:
          hs.append(resblock(hs[-1], hs[-1].shape[-1], name, down=True))
        else:
          hs.append(Downsample(c.conv_resample, name=name)(hs[-1]))
        factor, block = factor * 2, block + 1

    h = resblock(hs[-1], hs[-1].shape[-1], "middle_block_0")
    if c.use_middle_attention:
      h = attend(h, "middle_block_1")
    h = resblock(h, h.shape[-1], f"middle_block_{2 if c.use_middle_attention else 1}")

    block = 0
    for level, mult in reversed(list(enumerate(c.channel_mult))):
      for i in range(c.num_res_blocks + 1):
        h = jnp.concatenate([h, hs.pop()], axis=-1)
        h = resblock(h, mult * c.model_channels, f"output_blocks_{block}_0")
        m = 1
        if factor in c.attention_resolutions:
          h = attend(h, f"output_blocks_{block}_1", upsample=True)
          m = 2
        if level and i == c.num_res_blocks:
          name = f"output_blocks_{block}_{m}"
          if c.resblock_updown:
            h = resblock(h, h.shape[-1], name, up=True)
          else:
            h = Upsample(c.conv_resample, name=name)(h)
          factor //= 2
        block += 1
    assert not hs

    h = nn.silu(group_norm(RESBLOCK_NORM_EPS, "out_0")(h))
    return conv(c.out_channels, c.model_channels, 3, "out_2", zero=True)(h)


def param_shapes(config: UNetConfig, context_length: int = 77) -> dict:
  """The shapes of UNetModel(config)'s parameters, computed without any arithmetic."""
  side = 2 ** (len(config.channel_mult) - 1)
  x = jax.ShapeDtypeStruct((1, side, side, config.in_channels), jnp.float32)
  t = jax.ShapeDtypeStruct((1,), jnp.float32)
  context = (jax.ShapeDtypeStruct((1, context_length, config.context_dim), jnp.float32)
             if config.use_spatial_transformer else None)
  y = None if config.num_classes is None else jax.ShapeDtypeStruct((1,), jnp.int32)
  return jax.eval_shape(UNetModel(config).init, jax.random.key(0), x, t, context,
                        y)["params"]
