"""The latent diffusion family's own networks: the residual MLP noise predictor of
vector latents (a dense VAE's), and the class embedder that makes a label one token of
cross-attention context (CompVis ``ClassEmbedder``). The U-Net is shared
(``jaxgen.models.ldm_unet``), and so is the jointly trained text encoder
(``jaxgen.models.ldm_text``).

``MLPDenoiser``: eps_theta(x_t, t[, y]) with the signature of the U-Net: (N, D) in,
(N, D) out. Each block is LayerNorm -> swish -> Dense -> (+ Dense(swish(temb))) ->
LayerNorm -> swish -> dropout -> Dense, plus the input, as the U-Net's ResBlock with
dense layers.
"""
from __future__ import annotations

import flax.linen as nn

from jaxgen.models.layers import TimeEmbedding, default_init


class MLPDenoiser(nn.Module):
  width: int
  depth: int
  dropout: float
  out_dim: int
  num_classes: int = 0

  @nn.compact
  def __call__(self, x, t, y=None, *, train: bool):
    temb = TimeEmbedding(self.width // 4, name="temb")(t, x.dtype)  # (N, width)
    if self.num_classes:
      if y is None:
        raise ValueError("A class-conditional MLPDenoiser needs labels y.")
      temb = temb + nn.Embed(self.num_classes + 1, self.width, name="label_emb")(y)
    h = nn.Dense(self.width, kernel_init=default_init(), name="dense_in")(x)
    for i in range(self.depth):
      r = nn.Dense(self.width, kernel_init=default_init(), name=f"block{i}_dense0")(
          nn.swish(nn.LayerNorm(name=f"block{i}_norm0")(h)))
      r = r + nn.Dense(self.width, kernel_init=default_init(), name=f"block{i}_temb")(
          nn.swish(temb))
      r = nn.swish(nn.LayerNorm(name=f"block{i}_norm1")(r))
      r = nn.Dropout(self.dropout, deterministic=not train)(r)
      h = h + nn.Dense(self.width, kernel_init=default_init(0.0),
                       name=f"block{i}_dense1")(r)
    h = nn.swish(nn.LayerNorm(name="norm_out")(h))
    return nn.Dense(self.out_dim, kernel_init=default_init(0.0), name="dense_out")(h)


class ClassEmbedder(nn.Module):
  """Labels (N,) -> one context token each (N, 1, width); row ``num_classes`` is the
  null class of classifier-free guidance (CompVis ``ClassEmbedder`` has no null row:
  its class-conditional models were trained without dropout)."""
  num_classes: int
  width: int

  @nn.compact
  def __call__(self, labels):
    return nn.Embed(self.num_classes + 1, self.width, name="embedding")(labels)[:, None]
