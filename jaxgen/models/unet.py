"""The noise-prediction U-Net of DDPM (Ho et al. 2020), after ``diffusion_tf/models/unet.py``.

Paper configurations (``num_res_blocks=2``, ``attn_resolutions=(16,)``, ``ch=128``):
CIFAR-10 32x32 uses ``ch_mult=(1, 2, 2, 2)`` and dropout 0.1 (35.7M parameters),
CelebA-HQ / LSUN 256x256 ``ch_mult=(1, 1, 2, 2, 4, 4)`` and dropout 0 (113.7M).
"""
from __future__ import annotations

import functools

import flax.linen as nn
import jax.numpy as jnp

from jaxgen.models.layers import (AttnBlock, Downsample, ResBlock, TimeEmbedding,
                                  Upsample, default_init, group_norm)


class UNet(nn.Module):
  """eps_theta(x_t, t[, y]): NHWC in, NHWC with ``out_ch`` channels out.

  Level i works at width ``ch * ch_mult[i]`` and resolution H / 2**i; attention follows
  each residual block whose output height is in ``attn_resolutions``. With
  ``num_classes > 0`` a label embedding (``num_classes + 1`` rows, the last one the
  "null" label of classifier-free guidance) is added to the time embedding, and ``y``
  is required. ``time_embedding="fourier"`` expects continuous times (e.g. in [0, 1]).
  """
  ch: int
  ch_mult: tuple[int, ...]
  num_res_blocks: int
  attn_resolutions: tuple[int, ...]
  dropout: float
  out_ch: int
  resamp_with_conv: bool = True
  num_classes: int = 0
  time_embedding: str = "sinusoidal"
  scale_shift: bool = False
  num_groups: int = 32

  @nn.compact
  def __call__(self, x, t, y=None, *, train: bool):
    n, height, width, _ = x.shape
    factor = 2 ** (len(self.ch_mult) - 1)
    if height % factor or width % factor:
      raise ValueError(f"UNet: image size {height}x{width} is not divisible by "
                       f"2**(len(ch_mult) - 1) = {factor}.")
    t = jnp.broadcast_to(jnp.asarray(t), (n,))
    temb = TimeEmbedding(self.ch, self.time_embedding, name="temb")(t, x.dtype)
    if self.num_classes:
      if y is None:
        raise ValueError(f"UNet with num_classes={self.num_classes} needs labels y; "
                         f"pass {self.num_classes} (the null label) for unconditional.")
      temb = temb + nn.Embed(self.num_classes + 1, 4 * self.ch, name="label_emb")(y)
    elif y is not None:
      raise ValueError("UNet got labels y but num_classes=0.")

    block = functools.partial(ResBlock, dropout=self.dropout, num_groups=self.num_groups,
                              scale_shift=self.scale_shift)
    attn = functools.partial(AttnBlock, num_groups=self.num_groups)

    # Downsampling: keep every intermediate map for the skip connections.
    hs = [nn.Conv(self.ch, (3, 3), kernel_init=default_init(), name="conv_in")(x)]
    for level, mult in enumerate(self.ch_mult):
      for i in range(self.num_res_blocks):
        h = block(self.ch * mult, name=f"down_{level}_block_{i}")(hs[-1], temb, train=train)
        if h.shape[1] in self.attn_resolutions:
          h = attn(name=f"down_{level}_attn_{i}")(h)
        hs.append(h)
      if level != len(self.ch_mult) - 1:
        hs.append(Downsample(self.resamp_with_conv, name=f"down_{level}_downsample")(hs[-1]))

    # Middle: res, attention, res.
    h = hs[-1]
    h = block(h.shape[-1], name="mid_block_1")(h, temb, train=train)
    h = attn(name="mid_attn_1")(h)
    h = block(h.shape[-1], name="mid_block_2")(h, temb, train=train)

    # Upsampling: num_res_blocks + 1 blocks per level, each eating one skip.
    for level in reversed(range(len(self.ch_mult))):
      for i in range(self.num_res_blocks + 1):
        h = jnp.concatenate([h, hs.pop()], axis=-1)
        h = block(self.ch * self.ch_mult[level], name=f"up_{level}_block_{i}")(
            h, temb, train=train)
        if h.shape[1] in self.attn_resolutions:
          h = attn(name=f"up_{level}_attn_{i}")(h)
      if level != 0:
        h = Upsample(self.resamp_with_conv, name=f"up_{level}_upsample")(h)
    assert not hs

    h = nn.swish(group_norm(self.num_groups, "norm_out")(h))
    return nn.Conv(self.out_ch, (3, 3), kernel_init=default_init(0.0), name="conv_out")(h)
