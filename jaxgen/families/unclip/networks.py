"""unCLIP's networks, after kakaobrain/karlo (3c68a50): the prior's causal transformer
(``karlo/modules/xf.py`` ``PriorTransformer``) and the decoder's U-Net conditioning
(``karlo/modules/unet.py`` ``PLMImUNet``). The U-Net itself is shared
(``jaxgen.models.ldm_unet``: guided-diffusion's, with GLIDE's ``encoder_kv``), and so is
the transformer (``jaxgen.models.clip.Encoder``: pre-LayerNorm blocks with q, k, v
biases and a 4x GELU MLP, as karlo's ``ResidualAttentionBlock``); the upsampler is a
plain ``UNetModel`` over the noised image and its low-resolution condition.

``PriorTransformer``: the sequence [caption token states (L), text embedding, timestep
embedding, noised image embedding, learned query] (L + 4 tokens), each projected to
the width, plus learned positions; a causal mask with the caption's padding hidden;
the output read at the query: the predicted unnoised image embedding (karlo predicts
x0: ``predict_xstart: true``).

``Decoder``: the CLIP image embedding projected and added to the time embedding
(``clip_emb``), and projected into ``clip_tokens`` extra tokens (``clip_tok_proj``) that
every attention block attends to, before the caption's projected token states
(``text_seq_proj``: linear and LayerNorm) when ``text`` is on, whose pooled embedding is
added to the time embedding too (``text_feat_proj``). ``drop_image`` (N,) bool replaces
the image embedding by the learned null ``cf_param`` (karlo's ``proc_clip_emb_drop``),
for classifier-free guidance.
"""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jaxgen.models import clip, ldm_unet

EXTRA_TOKENS = 4  # text embedding, timestep, noised image embedding, query


class PriorTransformer(nn.Module):
  width: int
  layers: int
  heads: int
  clip_dim: int
  text_length: int
  final_ln: bool = True

  @nn.compact
  def __call__(self, x, t, text_emb, text_states, text_mask):
    """x (N, D) noised standardised image embeddings, t (N,), text_emb (N, D), the
    caption's token states (N, L, W) and mask (N, L) -> x0 (N, D)."""
    n, w = x.shape[0], self.width
    dense = lambda name, fan_in: ldm_unet.linear(w, fan_in, name)
    temb = ldm_unet.timestep_embedding(t, w).astype(x.dtype)
    temb = dense("time_embed_2", w)(nn.silu(dense("time_embed_0", w)(temb)))
    seq = jnp.concatenate([
        dense("text_enc_proj", text_states.shape[-1])(text_states),
        dense("text_emb_proj", text_emb.shape[-1])(text_emb)[:, None],
        temb[:, None],
        dense("clip_img_proj", x.shape[-1])(x)[:, None],
        jnp.broadcast_to(self.param("prd_emb", nn.initializers.normal(0.01), (1, 1, w)),
                         (n, 1, w)).astype(x.dtype)], axis=1)
    length = self.text_length + EXTRA_TOKENS
    if seq.shape[1] != length:
      raise ValueError(f"PriorTransformer built for {self.text_length} text tokens got "
                       f"{text_states.shape[1]}.")
    seq = seq + self.param("positional_embedding", nn.initializers.normal(0.01),
                           (1, length, w)).astype(seq.dtype)
    mask = jnp.concatenate([jnp.asarray(text_mask, bool),
                            jnp.ones((n, EXTRA_TOKENS), bool)], axis=1)
    out = clip.Encoder(w, self.layers, self.heads, causal=True, activation="gelu",
                       name="transformer")(seq, mask)
    if self.final_ln:
      out = ldm_unet.layer_norm("final_ln")(out)
    return ldm_unet.linear(self.clip_dim, w, "out_proj")(out[:, -1])


class Decoder(nn.Module):
  unet: ldm_unet.UNetConfig  # with encoder_channels: the width of the extra tokens
  clip_dim: int
  clip_tokens: int = 4
  text: bool = False  # attend to the caption's token states too

  @nn.compact
  def __call__(self, x, t, image_emb, text_emb=None, text_states=None, text_mask=None,
               drop_image=None, *, train: bool = False):
    n, c = x.shape[0], self.unet
    width = c.encoder_channels
    null = self.param("cf_param", nn.initializers.normal(1.0 / self.clip_dim ** 0.5),
                      (self.clip_dim,))
    if drop_image is not None:
      image_emb = jnp.where(jnp.asarray(drop_image)[:, None], null[None].astype(
          image_emb.dtype), image_emb)
    emb = ldm_unet.linear(c.time_embed_dim, self.clip_dim, "clip_emb")(image_emb)
    # karlo reshapes the projection to (N, width, tokens): channel-major tokens.
    tokens = ldm_unet.linear(width * self.clip_tokens, self.clip_dim, "clip_tok_proj")(
        image_emb).reshape(n, width, self.clip_tokens).transpose(0, 2, 1)
    mask = jnp.ones((n, self.clip_tokens), bool)
    if self.text:
      if text_states is None or text_emb is None:
        raise ValueError("A Decoder with text=True needs text_emb and text_states.")
      emb = emb + ldm_unet.linear(c.time_embed_dim, text_emb.shape[-1],
                                  "text_feat_proj")(text_emb)
      states = ldm_unet.linear(width, text_states.shape[-1], "text_seq_proj_0")(
          text_states)
      tokens = jnp.concatenate([tokens, ldm_unet.layer_norm("text_seq_proj_1")(states)],
                               axis=1)
      mask = jnp.concatenate([mask, jnp.asarray(text_mask, bool)], axis=1)
    return ldm_unet.UNetModel(c, name="unet")(
        x, t, train=train, emb_add=emb, encoder_out=tokens.astype(x.dtype),
        encoder_mask=mask)
