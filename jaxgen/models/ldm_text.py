"""The text encoder of LDM text-to-image: CompVis' "BERT-like" ``BERTEmbedder``.

``BERTEmbedder`` (``ldm/modules/encoders/modules.py`` of CompVis/latent-diffusion
a506df57) is not BERT: it is a ``TransformerWrapper`` over an ``Encoder`` of the
x-transformers copy in ``ldm/modules/x_transformer.py``, trained jointly with the U-Net
(``cond_stage_trainable: true``) on BERT's tokenizer's ids. Here: token embedding plus a
learned absolute position embedding (both N(0, 0.02^2) at init), ``n_layer`` pre-LayerNorm
blocks of self-attention (``heads`` x ``dim_head``: x-transformers' defaults 8 x 64, so
the attention's inner width is 512 whatever ``n_embed``) and a GELU feed-forward
(``ff_mult`` x width), each residual, then a final LayerNorm: per-token states (N, L,
n_embed) out, what the U-Net's cross-attention reads.

``TextEncoder(config).apply(variables, tokens, mask=None, train=False)``: ``tokens``
(N, L) int with L <= max_seq_len. ``mask`` (N, L) bool, True = a real token, is
x-transformers' (attention where both the query and the key are real; a padded query
attends uniformly); CompVis passes none, so its encoder attends to BERT's pad tokens.
``return_embeddings=False`` gives the vocabulary logits of ``to_logits``, which the
TransformerWrapper holds (and the released weights and the paper's parameter count
include) but LDM never uses; ``logits_head=False`` leaves that layer out (a jointly
trained encoder has no use for it). ``embedding_dropout`` needs a ``"dropout"`` rng
when ``train``.

Names map onto the wrapper's state-dict keys (``cond_stage_model.transformer.`` in an
LDM checkpoint) by the rule of ``jaxgen.models.ldm_unet``: ``token_emb``, ``pos_emb/emb``,
``attn_layers/layers_{2i}_0`` (LayerNorm) and ``layers_{2i}_1`` (attention: ``to_q``,
``to_k``, ``to_v``, ``to_out``), ``layers_{2i+1}_0`` and ``layers_{2i+1}_1``
(feed-forward: ``net_0_0``, ``net_2``), ``norm``, ``to_logits``.
"""
from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.models.ldm_unet import Attention, FeedForward, layer_norm, linear


@dataclasses.dataclass(frozen=True)
class TextEncoderConfig:
  """``BERTEmbedder(n_embed, n_layer, vocab_size, max_seq_len, embedding_dropout)`` and
  the x-transformers defaults it keeps (``heads``, ``dim_head``, ``ff_mult``)."""
  n_embed: int
  n_layer: int
  vocab_size: int = 30522
  max_seq_len: int = 77
  heads: int = 8
  dim_head: int = 64
  ff_mult: int = 4
  embedding_dropout: float = 0.0
  logits_head: bool = True

  def __post_init__(self):
    for name in ("n_embed", "n_layer", "vocab_size", "max_seq_len", "heads", "dim_head",
                 "ff_mult"):
      if getattr(self, name) < 1:
        raise ValueError(f"TextEncoderConfig: {name}={getattr(self, name)} must be >= 1.")


# configs/latent-diffusion/txt2img-1p4B-eval.yaml's cond_stage_config: 581,994,042
# parameters (39,098,682 of them in to_logits).
TXT2IMG_1P4B = TextEncoderConfig(n_embed=1280, n_layer=32)


class AbsolutePositionalEmbedding(nn.Module):
  max_seq_len: int
  dim: int

  @nn.compact
  def __call__(self, length: int):
    return nn.Embed(self.max_seq_len, self.dim, embedding_init=nn.initializers.normal(0.02),
                    name="emb")(jnp.arange(length))


class Encoder(nn.Module):
  """x-transformers' AttentionLayers with the default ('a', 'f') blocks, pre-norm."""
  config: TextEncoderConfig

  @nn.compact
  def __call__(self, x, mask=None):
    c = self.config
    attn_mask = None if mask is None else mask[:, None, :, None] & mask[:, None, None, :]
    for i in range(c.n_layer):
      a, f = 2 * i, 2 * i + 1
      x = x + Attention(c.heads, c.dim_head, c.n_embed, out_name="to_out",
                        name=f"layers_{a}_1")(layer_norm(f"layers_{a}_0")(x), None,
                                              attn_mask)
      x = x + FeedForward(c.ff_mult, glu=False, name=f"layers_{f}_1")(
          layer_norm(f"layers_{f}_0")(x))
    return x


class TextEncoder(nn.Module):
  """CompVis' BERTEmbedder's transformer; see the module docstring."""
  config: TextEncoderConfig

  @nn.compact
  def __call__(self, tokens, mask=None, *, train: bool = False,
               return_embeddings: bool = True):
    c = self.config
    if tokens.ndim != 2 or tokens.shape[1] > c.max_seq_len:
      raise ValueError(f"TextEncoder expects token ids of shape (N, L <= max_seq_len="
                       f"{c.max_seq_len}), got {tokens.shape}.")
    if mask is not None and mask.shape != tokens.shape:
      raise ValueError(f"TextEncoder: mask of shape {mask.shape} for tokens of shape "
                       f"{tokens.shape}.")
    x = nn.Embed(c.vocab_size, c.n_embed, embedding_init=nn.initializers.normal(0.02),
                 name="token_emb")(tokens)
    x = x + AbsolutePositionalEmbedding(c.max_seq_len, c.n_embed, name="pos_emb")(
        tokens.shape[1])
    x = nn.Dropout(c.embedding_dropout, deterministic=not train)(x)
    x = Encoder(c, name="attn_layers")(x, None if mask is None else jnp.asarray(mask, bool))
    x = layer_norm("norm")(x)
    if not c.logits_head:
      if not return_embeddings:
        raise ValueError("TextEncoder with logits_head=False has no logits.")
      return x
    if return_embeddings and not self.is_initializing():
      return x
    logits = linear(c.vocab_size, c.n_embed, "to_logits")(x)
    return x if return_embeddings else logits


def param_shapes(config: TextEncoderConfig) -> dict:
  """The shapes of TextEncoder(config)'s parameters, computed without any arithmetic."""
  tokens = jax.ShapeDtypeStruct((1, config.max_seq_len), jnp.int32)
  return jax.eval_shape(TextEncoder(config).init, jax.random.key(0), tokens)["params"]
