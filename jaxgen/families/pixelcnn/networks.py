"""PixelCNN (van den Oord et al. 2016a) and Gated PixelCNN (van den Oord et al. 2016b).

Both networks map an image (N, H, W, C), scaled to [-1, 1], to ``out_per_channel``
numbers per sub-pixel, (N, H, W, C, K): logits of a 256-way softmax (K = 256), of a
Bernoulli (K = 1), or of a K-way categorical over discrete codes. Output sub-pixel
(i, c) depends only on the sub-pixels before it in raster order and, inside a pixel,
on the channels before c (R -> G -> B).

The autoregressive order is enforced by masking the KERNELS (never the activations,
which would leak gradients through the masked-out positions). Feature channels are
split into C contiguous groups, one per colour; at the kernel's centre a group-g
output sees input groups < g (mask A, the first layer) or <= g (mask B, all later
layers). Above the centre row everything is seen; in the centre row, everything to
the left of the centre.

The gated network has no blind spot: a vertical stack (rows strictly above, through a
down-shift of its (k//2 + 1) x k convolutions) feeds a horizontal stack (the current
row to the left, 1 x (k//2 + 1) masked convolutions) at every layer, and both use the
gated unit tanh(W_f x + V_f h) * sigmoid(W_g x + V_g h). The conditioning h is a class
label (an embedding per layer) and/or a general input: a vector (N, D) or a spatial map
(N, h, w, D) resized to the image by nearest neighbour and projected by 1x1
convolutions.

``check_causal`` is the construction-time guard: a first layer without mask A, an
even kernel (no centre) or a vertical stack without the down-shift would let an output
see itself, and are refused.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.errors import ConfigError

MASK_TYPES = ("A", "B")


def channel_groups(num: int, colours: int) -> np.ndarray:
  """The colour group (0..colours-1) of each of ``num`` channels: contiguous blocks."""
  if num % colours:
    raise ConfigError(f"{num} channels cannot be split into {colours} colour groups: "
                      f"use a multiple of {colours} (config.model.features).")
  return np.arange(num) * colours // num


def causal_mask(kh: int, kw: int, in_groups, out_groups, mask_type: str,
                center: tuple[int, int] | None = None) -> np.ndarray:
  """The (kh, kw, C_in, C_out) 0/1 kernel mask: rows above the centre, the centre row
  left of the centre, and at the centre the colour groups allowed by ``mask_type``."""
  if mask_type not in MASK_TYPES:
    raise ValueError(f"mask_type={mask_type!r}; use 'A' (first layer) or 'B'.")
  ci, cj = center if center is not None else (kh // 2, kw // 2)
  gi, go = np.asarray(in_groups), np.asarray(out_groups)
  m = np.zeros((kh, kw, len(gi), len(go)), np.float32)
  m[:ci] = 1.0
  m[ci, :cj] = 1.0
  allowed = gi[:, None] < go[None, :] if mask_type == "A" else gi[:, None] <= go[None, :]
  m[ci, cj] = allowed.astype(np.float32)
  return m


def check_causal(arch: str, first_mask: str, kernels: Sequence[int],
                 vertical_shift: bool = True):
  """Refuse a configuration whose receptive field is not causal."""
  if first_mask != "A":
    raise ConfigError(
        f"The first masked layer has mask {first_mask!r}: with mask B each output "
        f"sub-pixel sees its own input value and the likelihood is meaningless. Use "
        f"mask 'A' in the first layer (config.model.first_mask='A').")
  for k in kernels:
    if k < 1 or k % 2 == 0:
      raise ConfigError(f"Kernel size {k} has no centre pixel, so the causal mask is "
                        f"undefined: use odd kernel sizes (config.model.kernel_size, "
                        f"first_kernel_size).")
  if arch == "gated" and not vertical_shift:
    raise ConfigError("A vertical stack fed to the horizontal stack without the "
                      "down-shift sees the current row (pixels to the right included): "
                      "keep vertical_shift=True.")


def down_shift(x):
  """Move every row one down (zeros enter at the top)."""
  return jnp.pad(x, ((0, 0), (1, 0), (0, 0), (0, 0)))[:, :-1]


class MaskedConv(nn.Module):
  """A convolution whose kernel is multiplied by a fixed causal mask.

  ``padding`` is explicit ((top, bottom), (left, right)); ``mask`` (kh, kw, in, out)
  is None for an unmasked convolution."""
  features: int
  kernel: tuple[int, int]
  padding: tuple
  mask: np.ndarray | None = None

  @nn.compact
  def __call__(self, x):
    kh, kw = self.kernel
    w = self.param("kernel", nn.initializers.lecun_normal(),
                   (kh, kw, x.shape[-1], self.features))
    b = self.param("bias", nn.initializers.zeros, (self.features,))
    if self.mask is not None:
      w = w * jnp.asarray(self.mask, w.dtype)
    y = jax.lax.conv_general_dilated(x, w, (1, 1), self.padding,
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + b


def _square(k):
  return ((k // 2, k // 2), (k // 2, k // 2))


class PixelCNN(nn.Module):
  """The PixelCNN of van den Oord et al. 2016a: a k x k mask-A convolution, residual
  blocks (ReLU, 1x1 to h, ReLU, k x k mask B, ReLU, 1x1 to 2h, add), two ReLU + 1x1
  mask-B layers, and a 1x1 mask-B output layer of C * K numbers."""
  channels: int
  features: int  # 2h, the residual stream's width
  num_blocks: int
  out_per_channel: int
  first_kernel: int = 7
  kernel: int = 3
  output_features: int = 0  # width of the two output 1x1 layers (0: features)
  first_mask: str = "A"

  @nn.compact
  def __call__(self, x, labels=None, cond=None):
    check_causal("pixelcnn", self.first_mask, (self.first_kernel, self.kernel))
    c, f = self.channels, self.features
    half = f // 2
    # the input's channels (C colours, or a one-hot code: one group) in colour groups
    g_in, g_f, g_h = (channel_groups(x.shape[-1], c), channel_groups(f, c),
                      channel_groups(half, c))
    conv = lambda feats, k, gi, go, t, name: MaskedConv(
        feats, (k, k), _square(k), causal_mask(k, k, gi, go, t), name=name)
    h = conv(f, self.first_kernel, g_in, g_f, self.first_mask, "conv_in")(x)
    for i in range(self.num_blocks):
      r = conv(half, 1, g_f, g_h, "B", f"block{i}_reduce")(nn.relu(h))
      r = conv(half, self.kernel, g_h, g_h, "B", f"block{i}_conv")(nn.relu(r))
      h = h + conv(f, 1, g_h, g_f, "B", f"block{i}_expand")(nn.relu(r))
    of = self.output_features or f
    g_o = channel_groups(of, c)
    h = conv(of, 1, g_f, g_o, "B", "out1")(nn.relu(h))
    h = conv(of, 1, g_o, g_o, "B", "out2")(nn.relu(h))
    k = self.out_per_channel
    out = conv(c * k, 1, g_o, np.repeat(np.arange(c), k), "B", "logits")(nn.relu(h))
    return out.reshape(*out.shape[:3], c, k)


def _gate(x):
  a, b = jnp.split(x, 2, axis=-1)
  return jnp.tanh(a) * jax.nn.sigmoid(b)


class Conditioning(nn.Module):
  """The bias V h of one gated layer (2F channels) from a label and/or a general
  conditioning input (vector (N, D) or spatial (N, h, w, D)); None without either."""
  features: int
  num_classes: int = 0

  @nn.compact
  def __call__(self, shape, labels=None, cond=None):
    out = None
    if self.num_classes and labels is not None:
      out = nn.Embed(self.num_classes, self.features, name="label")(labels)[:, None, None]
    if cond is not None:
      if cond.ndim == 2:
        v = nn.Dense(self.features, use_bias=False, name="cond")(cond)[:, None, None]
      elif cond.ndim == 4:
        h, w = shape
        if h % cond.shape[1] or w % cond.shape[2]:
          raise ValueError(f"A spatial conditioning input of {cond.shape[1:3]} does "
                           f"not divide the image size {shape}.")
        cond = jnp.repeat(jnp.repeat(cond, h // cond.shape[1], 1), w // cond.shape[2], 2)
        v = nn.Conv(self.features, (1, 1), use_bias=False, name="cond")(cond)
      else:
        raise ValueError(f"The conditioning input has shape {cond.shape}: use a vector "
                         f"(N, D) or a spatial map (N, h, w, D).")
      out = v if out is None else out + v
    return out


class GatedPixelCNN(nn.Module):
  """The Gated PixelCNN of van den Oord et al. 2016b (vertical and horizontal stacks,
  no blind spot, gated units, class and general conditioning)."""
  channels: int
  features: int  # F: each stack's width (the gated layers compute 2F, gate to F)
  num_layers: int
  out_per_channel: int
  first_kernel: int = 7
  kernel: int = 3
  output_features: int = 0
  num_classes: int = 0
  first_mask: str = "A"
  vertical_shift: bool = True

  @nn.compact
  def __call__(self, x, labels=None, cond=None):
    check_causal("gated", self.first_mask, (self.first_kernel, self.kernel),
                 self.vertical_shift)
    c, f = self.channels, self.features
    g_in, g_f = channel_groups(x.shape[-1], c), channel_groups(f, c)
    g_2f = np.concatenate([g_f, g_f])  # the two halves (tanh, sigmoid) of a gate
    hw = x.shape[1:3]
    v, h = x, x
    for i in range(self.num_layers):
      k = self.first_kernel if i == 0 else self.kernel
      t = self.first_mask if i == 0 else "B"
      gi = g_in if i == 0 else g_f
      # vertical: rows i - k//2 .. i of the stack below, all columns within k//2
      v_pre = MaskedConv(2 * f, (k // 2 + 1, k), ((k // 2, 0), (k // 2, k // 2)),
                         name=f"v{i}")(v)
      link = down_shift(v_pre) if self.vertical_shift else v_pre
      # horizontal: the current row, k//2 pixels left and the centre (masked)
      h_pre = MaskedConv(2 * f, (1, k // 2 + 1), ((0, 0), (k // 2, 0)),
                         causal_mask(1, k // 2 + 1, gi, g_2f, t, center=(0, k // 2)),
                         name=f"h{i}")(h)
      h_pre = h_pre + MaskedConv(2 * f, (1, 1), ((0, 0), (0, 0)), name=f"v2h{i}")(link)
      bias = Conditioning(2 * f, self.num_classes, name=f"cond{i}")(hw, labels, cond)
      if bias is not None:
        v_pre, h_pre = v_pre + bias, h_pre + bias
      v = _gate(v_pre)
      h_out = MaskedConv(f, (1, 1), ((0, 0), (0, 0)), causal_mask(1, 1, g_f, g_f, "B"),
                         name=f"h_res{i}")(_gate(h_pre))
      h = h_out if i == 0 else h + h_out
    of = self.output_features or f
    g_o = channel_groups(of, c)
    h = MaskedConv(of, (1, 1), ((0, 0), (0, 0)), causal_mask(1, 1, g_f, g_o, "B"),
                   name="out1")(nn.relu(h))
    k = self.out_per_channel
    out = MaskedConv(c * k, (1, 1), ((0, 0), (0, 0)),
                     causal_mask(1, 1, g_o, np.repeat(np.arange(c), k), "B"),
                     name="logits")(nn.relu(h))
    return out.reshape(*out.shape[:3], c, k)
