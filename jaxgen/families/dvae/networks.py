"""The DALL-E discrete VAE's encoder and decoder (Ramesh et al. 2021; openai/DALL-E,
``dall_e/encoder.py`` and ``decoder.py``), as Flax modules.

Encoder: a 7x7 convolution to ``n_hid`` channels, then ``group_count`` groups of
``n_blk_per_group`` residual blocks of widths n_hid * (1, 2, 4, 8, ...), a 2x2
max-pool after every group but the last, and a ReLU + 1x1 convolution to the
``vocab_size`` logits of each grid cell. Decoder: a 1x1 convolution from the (one-hot
or relaxed) codes to ``n_init`` channels, groups of residual blocks of widths
n_hid * (..., 4, 2, 1) with nearest-neighbour 2x upsampling after every group but the
last, and a ReLU + 1x1 convolution to 2 * output_channels: the location (a logit)
and log-scale of the logit-Laplace likelihood per channel.

Blocks: out = id_path(x) + post_gain * res_path(x), post_gain = 1 / n_layers^2 with
n_layers = group_count * n_blk_per_group, res_path four ReLU + convolutions through
n_out / 4 hidden channels (encoder 3x3, 3x3, 3x3, 1x1; decoder 1x1, 3x3, 3x3, 3x3),
id_path a 1x1 convolution where the width changes. Every convolution has a bias and
"same" padding, as ``dall_e.utils.Conv2d``. With the defaults (4 groups, n_hid 256,
2 blocks, 8192 codes, 3 channels) the encoder has 53,786,240 and the decoder
43,829,766 parameters.

Module names follow the reference's ``blocks`` (``group_1_block_1/conv_1`` is
``blocks.group_1.block_1.res_path.conv_1``) so that its weights map one to one.
"""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp


def _conv(n_out: int, kw: int, name: str):
  return nn.Conv(n_out, (kw, kw), padding=(kw - 1) // 2, name=name)


class Block(nn.Module):
  """One residual block; ``kind`` is ``encoder`` or ``decoder`` (the kernel sizes)."""
  n_out: int
  n_layers: int
  kind: str

  @nn.compact
  def __call__(self, x):
    n_hid = self.n_out // 4
    widths = (n_hid, n_hid, n_hid, self.n_out)
    kernels = (3, 3, 3, 1) if self.kind == "encoder" else (1, 3, 3, 3)
    ident = x if x.shape[-1] == self.n_out else _conv(self.n_out, 1, "id_path")(x)
    h = x
    for i, (width, kw) in enumerate(zip(widths, kernels)):
      h = _conv(width, kw, f"conv_{i + 1}")(nn.relu(h))
    return ident + h / self.n_layers ** 2


def _group_widths(group_count: int, n_hid: int):
  return [n_hid * 2 ** g for g in range(group_count)]


class Encoder(nn.Module):
  group_count: int = 4
  n_hid: int = 256
  n_blk_per_group: int = 2
  vocab_size: int = 8192

  @nn.compact
  def __call__(self, x):
    """Pixels mapped to (eps, 1 - eps), (N, H, W, C) -> logits (N, h, w, vocab)."""
    n_layers = self.group_count * self.n_blk_per_group
    h = _conv(self.n_hid, 7, "input")(x)
    for g, width in enumerate(_group_widths(self.group_count, self.n_hid)):
      for b in range(self.n_blk_per_group):
        h = Block(width, n_layers, "encoder", name=f"group_{g + 1}_block_{b + 1}")(h)
      if g < self.group_count - 1:
        h = nn.max_pool(h, (2, 2), strides=(2, 2))
    return _conv(self.vocab_size, 1, "output")(nn.relu(h))


class Decoder(nn.Module):
  group_count: int = 4
  n_init: int = 128
  n_hid: int = 256
  n_blk_per_group: int = 2
  output_channels: int = 3

  @nn.compact
  def __call__(self, z):
    """Codes (N, h, w, vocab) (one-hot or relaxed) -> (N, H, W, 2 C): the logit-
    Laplace locations (logits of the mapped pixels), then the log-scales."""
    n_layers = self.group_count * self.n_blk_per_group
    h = _conv(self.n_init, 1, "input")(z)
    widths = _group_widths(self.group_count, self.n_hid)[::-1]
    for g, width in enumerate(widths):
      for b in range(self.n_blk_per_group):
        h = Block(width, n_layers, "decoder", name=f"group_{g + 1}_block_{b + 1}")(h)
      if g < self.group_count - 1:
        h = jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)  # nearest, x2
    return _conv(2 * self.output_channels, 1, "output")(nn.relu(h))


def downsampling(group_count: int) -> int:
  """How much the encoder shrinks each side: 2^(group_count - 1)."""
  return 2 ** (group_count - 1)
