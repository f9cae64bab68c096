"""CompVis' first-stage autoencoders of latent diffusion (Rombach et al. 2022): the
``Encoder`` / ``Decoder`` of ``ldm/modules/diffusionmodules/model.py``, and
``AutoencoderKL`` (with ``DiagonalGaussianDistribution``) and ``VQModel`` of
``ldm/models/autoencoder.py`` (CompVis/latent-diffusion a506df5).

* ``Encoder``: ``conv_in`` (3x3 to ``ch``); per level i of ``ch_mult``,
  ``num_res_blocks`` ResNet blocks to ``ch * ch_mult[i]`` (each followed by an attention
  block where the level's resolution is in ``attn_resolutions``) and, except at the
  last level, a stride-2 3x3 ``downsample`` (zero padding one row and column after the
  image, none before); the ``mid`` block (ResNet, attention, ResNet); GroupNorm(32),
  swish, ``conv_out`` (3x3 to ``2 * z_channels`` with ``double_z``).
* ``Decoder``: ``conv_in`` (3x3, ``z_channels`` to ``ch * ch_mult[-1]``); ``mid``; per
  level from the last to the first, ``num_res_blocks + 1`` ResNet blocks (and
  attention) and, except at level 0, a nearest 2x ``upsample`` with a 3x3 convolution;
  GroupNorm(32), swish, ``conv_out`` to ``out_ch`` (no tanh: the outputs are
  unbounded, images live in [-1, 1]).
* ``AutoencoderKL``: ``quant_conv`` (1x1, ``2 z_channels`` to ``2 embed_dim``) gives
  the moments of the diagonal Gaussian posterior, whose log-variance is clamped to
  [-30, 20] (``posterior``); ``post_quant_conv`` (1x1, ``embed_dim`` to
  ``z_channels``) feeds the decoder.
* ``VQModel``: ``quant_conv`` (``z_channels`` to ``embed_dim``), the nearest of
  ``n_embed`` codes (``quantize``: jaxgen/models/quantizer.py), ``post_quant_conv``.

The ResNet, attention, down- and up-sampling blocks are those of the DDPM U-Net
(jaxgen/models/layers.py: the same blocks, GroupNorm(32) with eps 1e-6, swish; without
a time embedding), so the layers are CompVis' own; their initialisation is the DDPM
one of layers.py (the residual branch's last layer near zero), not PyTorch's default.
Layout NHWC.

Parameter names follow CompVis' state-dict keys so that a checkpoint maps onto them
mechanically (``compvis_key``): the flax path ``encoder/down_0/block_1/conv1/kernel``
is ``encoder.down.0.block.1.conv1.weight`` (``name_N`` -> ``name.N`` for the lists
``down``, ``up``, ``block``, ``attn``; the ``mid`` block's ``block_1``, ``attn_1``,
``block_2`` are CompVis' own names), ``scale`` of a GroupNorm is its ``weight``, a
convolution's ``kernel`` (H, W, I, O) is its ``weight`` (O, I, H, W), and the 1x1
convolutions that layers.py writes as Dense layers (``nin_shortcut``, attention's
``q``, ``k``, ``v``, ``proj_out``) have kernels (I, O) for CompVis' (O, I, 1, 1).
VQModel's codebook ``quantize/codebook`` is taming's ``quantize.embedding.weight``.
"""
from __future__ import annotations

import dataclasses
import re

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.models import layers, quantizer

NUM_GROUPS = 32  # CompVis' Normalize: GroupNorm(32, eps=1e-6)
LOGVAR_RANGE = (-30.0, 20.0)  # DiagonalGaussianDistribution's clamp


@dataclasses.dataclass(frozen=True)
class FirstStageConfig:
  """CompVis' ``ddconfig`` (its field names) and the model's ``embed_dim`` (and
  ``n_embed``, the number of codes, for ``VQModel``; 0 for ``AutoencoderKL``)."""
  ch: int = 128
  ch_mult: tuple = (1, 2, 4, 4)
  num_res_blocks: int = 2
  attn_resolutions: tuple = ()
  z_channels: int = 4
  double_z: bool = True
  embed_dim: int = 4
  resolution: int = 256
  in_channels: int = 3
  out_ch: int = 3
  dropout: float = 0.0
  resamp_with_conv: bool = True
  n_embed: int = 0

  def __post_init__(self):
    object.__setattr__(self, "ch_mult", tuple(self.ch_mult))
    object.__setattr__(self, "attn_resolutions", tuple(self.attn_resolutions))
    widths = [self.ch] + [self.ch * m for m in self.ch_mult]
    odd = [w for w in widths if w % NUM_GROUPS]
    if odd:
      raise ValueError(f"ch={self.ch}, ch_mult={self.ch_mult} give {odd[0]} channels, "
                       f"which GroupNorm's {NUM_GROUPS} groups do not divide: use "
                       f"widths that are multiples of {NUM_GROUPS}.")
    if not self.ch_mult or self.num_res_blocks < 1:
      raise ValueError("ch_mult needs at least one level and num_res_blocks >= 1.")

  @property
  def factor(self) -> int:
    """The downsampling factor f: 2 ** (len(ch_mult) - 1)."""
    return 2 ** (len(self.ch_mult) - 1)

  def latent_shape(self, height: int, width: int) -> tuple:
    """The latent (h, w, embed_dim) of an image of ``height`` x ``width``."""
    return (height // self.factor, width // self.factor, self.embed_dim)


# The paper's autoencoders (models/first_stage_models/*/config.yaml).
KL_F8 = FirstStageConfig(ch=128, ch_mult=(1, 2, 4, 4), num_res_blocks=2,
                         attn_resolutions=(), z_channels=4, double_z=True, embed_dim=4,
                         resolution=256, in_channels=3, out_ch=3)
VQ_F4 = FirstStageConfig(ch=128, ch_mult=(1, 2, 4), num_res_blocks=2,
                         attn_resolutions=(), z_channels=3, double_z=False, embed_dim=3,
                         resolution=256, in_channels=3, out_ch=3, n_embed=8192)


def conv3x3(features: int, name: str) -> nn.Conv:
  return nn.Conv(features, (3, 3), padding=((1, 1), (1, 1)),
                 kernel_init=layers.default_init(), name=name)


def conv1x1(features: int, name: str) -> nn.Conv:
  return nn.Conv(features, (1, 1), kernel_init=layers.default_init(), name=name)


def last_layer(cfg: FirstStageConfig) -> nn.Conv:
  """The decoder's ``conv_out``: the layer whose kernel's gradient norms give the
  adaptive weight of the first-stage loss (CompVis' ``get_last_layer``). A module of
  its own, so that a trainer can apply it to the decoder's ``features``."""
  return conv3x3(cfg.out_ch, "conv_out")


class Mid(nn.Module):
  """``mid``: ResNet block, attention, ResNet block, at constant width."""
  dropout: float

  @nn.compact
  def __call__(self, h, *, train: bool):
    width = h.shape[-1]
    h = layers.ResBlock(width, self.dropout, NUM_GROUPS, name="block_1")(h, None,
                                                                         train=train)
    h = layers.AttnBlock(NUM_GROUPS, name="attn_1")(h)
    return layers.ResBlock(width, self.dropout, NUM_GROUPS, name="block_2")(
        h, None, train=train)


class Level(nn.Module):
  """One resolution of the encoder (``down.i``) or the decoder (``up.i``): ResNet
  blocks ``block.j`` to ``width``, each with ``attn.j`` where ``attention``, then
  ``resample`` (``downsample`` or ``upsample``) unless it is None."""
  width: int
  num_blocks: int
  attention: bool
  dropout: float
  resample: str | None
  with_conv: bool = True

  @nn.compact
  def __call__(self, h, *, train: bool):
    for j in range(self.num_blocks):
      h = layers.ResBlock(self.width, self.dropout, NUM_GROUPS, name=f"block_{j}")(
          h, None, train=train)
      if self.attention:
        h = layers.AttnBlock(NUM_GROUPS, name=f"attn_{j}")(h)
    if self.resample == "downsample":
      h = layers.Downsample(self.with_conv, name="downsample")(h)
    elif self.resample == "upsample":
      h = layers.Upsample(self.with_conv, name="upsample")(h)
    return h


class Encoder(nn.Module):
  """Images (N, H, W, in_channels) in [-1, 1] -> (N, H/f, W/f, (2 *) z_channels)."""
  cfg: FirstStageConfig

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    c = self.cfg
    h = conv3x3(c.ch, "conv_in")(x)
    res = c.resolution
    last = len(c.ch_mult) - 1
    for i, mult in enumerate(c.ch_mult):
      h = Level(c.ch * mult, c.num_res_blocks, res in c.attn_resolutions, c.dropout,
                None if i == last else "downsample", c.resamp_with_conv,
                name=f"down_{i}")(h, train=train)
      if i != last:
        res //= 2
    h = Mid(c.dropout, name="mid")(h, train=train)
    h = nn.swish(layers.group_norm(NUM_GROUPS, "norm_out")(h))
    return conv3x3(2 * c.z_channels if c.double_z else c.z_channels, "conv_out")(h)


class Decoder(nn.Module):
  """Latents (N, h, w, z_channels) -> images (N, h f, w f, out_ch), unbounded.
  ``features=True`` stops before ``conv_out`` (the input of ``last_layer``)."""
  cfg: FirstStageConfig

  @nn.compact
  def __call__(self, z, *, train: bool = False, features: bool = False):
    c = self.cfg
    h = conv3x3(c.ch * c.ch_mult[-1], "conv_in")(z)
    res = c.resolution // c.factor
    h = Mid(c.dropout, name="mid")(h, train=train)
    for i in reversed(range(len(c.ch_mult))):
      h = Level(c.ch * c.ch_mult[i], c.num_res_blocks + 1, res in c.attn_resolutions,
                c.dropout, "upsample" if i else None, c.resamp_with_conv,
                name=f"up_{i}")(h, train=train)
      if i:
        res *= 2
    h = nn.swish(layers.group_norm(NUM_GROUPS, "norm_out")(h))
    if features:
      return h
    return last_layer(c)(h)


# --- DiagonalGaussianDistribution (ldm/modules/distributions/distributions.py) -------
def posterior(moments):
  """(mean, log-variance clamped to [-30, 20]) of the moments (..., 2 embed_dim)."""
  mean, logvar = jnp.split(moments, 2, axis=-1)
  return mean, jnp.clip(logvar, *LOGVAR_RANGE)


def sample(rng, mean, logvar):
  """mean + std * eps, eps ~ N(0, I)."""
  return mean + jnp.exp(0.5 * logvar) * jax.random.normal(rng, mean.shape, mean.dtype)


class AutoencoderKL(nn.Module):
  """CompVis' ``AutoencoderKL``: ``encode`` gives the posterior's moments,
  ``decode`` an image from a latent; calling it reconstructs from the posterior mean
  (``forward(sample_posterior=False)``)."""
  cfg: FirstStageConfig

  def setup(self):
    c = self.cfg
    if not c.double_z:
      raise ValueError("AutoencoderKL needs double_z=True (the encoder gives mean and "
                       "log-variance).")
    self.encoder = Encoder(c)
    self.decoder = Decoder(c)
    self.quant_conv = conv1x1(2 * c.embed_dim, "quant_conv")
    self.post_quant_conv = conv1x1(c.z_channels, "post_quant_conv")

  def encode(self, x, *, train: bool = False):
    """Images in [-1, 1] -> the posterior's moments (N, h, w, 2 embed_dim)."""
    return self.quant_conv(self.encoder(x, train=train))

  def decode(self, z, *, train: bool = False, features: bool = False):
    """Latents (N, h, w, embed_dim) -> images (or, with ``features``, the input of
    the decoder's last layer)."""
    return self.decoder(self.post_quant_conv(z), train=train, features=features)

  def __call__(self, x, *, train: bool = False):
    return self.decode(posterior(self.encode(x, train=train))[0], train=train)


class VQModel(nn.Module):
  """CompVis' ``VQModel`` (taming's ``VectorQuantizer2``, beta 0.25): ``encode``
  gives the latents before quantisation (``encode_to_prequant``), ``quantize`` the
  nearest code vectors and their ids, ``decode`` an image from (quantised) latents,
  ``decode_code`` from code ids."""
  cfg: FirstStageConfig

  def setup(self):
    c = self.cfg
    if c.n_embed < 1:
      raise ValueError("VQModel needs n_embed >= 1 codes.")
    self.encoder = Encoder(c)
    self.decoder = Decoder(c)
    self.quant_conv = conv1x1(c.embed_dim, "quant_conv")
    self.quantize = quantizer.Codebook(c.n_embed, c.embed_dim)
    self.post_quant_conv = conv1x1(c.z_channels, "post_quant_conv")

  def encode(self, x, *, train: bool = False):
    return self.quant_conv(self.encoder(x, train=train))

  def quantize_latents(self, h):
    """(code vectors, code ids) of the nearest codes to ``h`` (N, h, w, embed_dim)."""
    codebook = self.quantize()
    codes = quantizer.nearest(h, codebook)
    return quantizer.lookup(codes, codebook), codes

  def decode(self, quant, *, train: bool = False):
    return self.decoder(self.post_quant_conv(quant), train=train)

  def decode_code(self, codes, *, train: bool = False):
    return self.decode(quantizer.lookup(codes, self.quantize()), train=train)

  def __call__(self, x, *, train: bool = False):
    quant, _ = self.quantize_latents(self.encode(x, train=train))
    return self.decode(quant, train=train)


# --- CompVis' state-dict keys ---------------------------------------------------------
_LISTS = ("down", "up", "block", "attn")
_DENSE_1X1 = ("nin_shortcut", "q", "k", "v", "proj_out")


def compvis_key(path) -> str:
  """The CompVis state-dict key of the flax parameter at ``path`` (a tuple of names,
  e.g. ``("encoder", "down_0", "block_1", "conv1", "kernel")``)."""
  names = list(path)
  out = []
  for i, name in enumerate(names):
    m = re.fullmatch(r"(\w+?)_(\d+)", name)
    in_mid = i > 0 and names[i - 1] == "mid"
    if m and m.group(1) in _LISTS and not in_mid:
      out += [m.group(1), m.group(2)]
    elif name == "codebook" and i > 0 and names[i - 1] == "quantize":
      out += ["embedding", "weight"]
    elif i == len(names) - 1 and name in ("kernel", "scale"):
      out.append("weight")
    else:
      out.append(name)
  return ".".join(out)


def to_compvis(path, value):
  """The flax parameter ``value`` at ``path`` in CompVis' layout (see the module
  docstring): a convolution's (H, W, I, O) kernel as (O, I, H, W), a Dense 1x1
  kernel (I, O) as (O, I, 1, 1); anything else as it is."""
  if path[-1] != "kernel":
    return value
  if value.ndim == 4:
    return value.transpose(3, 2, 0, 1)
  if path[-2] in _DENSE_1X1:
    return value.T[:, :, None, None]
  return value
