"""The DALL-E transformer: a decoder-only GPT over ``[text tokens | image tokens]``.

* Embeddings: text and image each have their own token embedding; text positions are
  learned per position; image positions are a learned row embedding plus a learned
  column embedding, broadcast over the grid (DALL-E, appendix B.1: ``row_col``), or one
  learned embedding per image position (minDALL-E's ``pos_emb_img``: ``learned``).
* Blocks: pre-LayerNorm GPT blocks (``x + attn(ln1(x))``, ``x + mlp(ln2(x))``) with
  separate query, key and value projections, a 4x MLP with exact GELU, and a final
  LayerNorm (minDALL-E ``stage2/layers.py``). Weights are initialised N(0, 0.02),
  biases 0, LayerNorms (1, 0).
* Heads: a text head and an image head, no bias, not tied (minDALL-E
  ``head_txt`` / ``head_img``). Text position i predicts text token i + 1; the last
  text position predicts image token 0 (no image BOS); image position j predicts image
  token j + 1. So the network reads ``L + N - 1`` positions: every token but the last
  image token.
* Attention masks (``attention_mask``): causal over the whole sequence (``dense``), or
  DALL-E's sparse masks over the image tokens (appendix B.1, figure 11) in which every
  image token still sees every text token: ``row`` (the previous w + 1 image tokens in
  raster order, itself included: the last one is the same column of the previous
  row), ``column`` (the image tokens of its own column, at or above it) and ``conv``
  (a causal k x k window around it, wrapping around the grid's edges as
  raster order does). ``layer_kinds`` gives the paper's pattern: column attention in
  layer i (1-based) where (i - 2) mod 4 = 0, convolutional in the last layer, row
  elsewhere. Masks are applied as dense boolean masks (no block-sparse kernels): they
  change what the model sees, not its cost.
* A key-value cache (``prefill``, ``step``): the keys and values of every position fed
  so far are kept per layer, so that each new image token costs one position
  (minDALL-E's ``use_cache`` path). ``__call__`` is the teacher-forced forward pass
  over the whole sequence.
"""
from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

ATTENTION_KINDS = ("dense", "row", "column", "conv")
IMAGE_POSITIONS = ("row_col", "learned")
LAYER_NORM_EPS = 1e-5  # PyTorch's nn.LayerNorm, as minDALL-E
INIT = nn.initializers.normal(0.02)


def layer_kinds(num_layers: int, sparse: bool) -> tuple:
  """Each layer's attention kind: all ``dense``, or DALL-E's sparse pattern (layer i,
  1-based: ``column`` where (i - 2) mod 4 = 0, ``conv`` in the last layer, ``row``
  elsewhere)."""
  if not sparse:
    return ("dense",) * num_layers
  return tuple("conv" if i == num_layers else "column" if (i - 2) % 4 == 0 else "row"
               for i in range(1, num_layers + 1))


def attention_mask(kind: str, text_length: int, grid: tuple, kernel: int = 11
                   ) -> np.ndarray:
  """The (S, S) boolean mask (query rows, key columns; True = may attend) over
  S = ``text_length`` + h w positions of one layer of attention ``kind``. Causal
  everywhere; text queries see the text before them; image queries see every text
  token and, among the image tokens, those ``kind`` allows (see the module's
  docstring)."""
  if kind not in ATTENTION_KINDS:
    raise ValueError(f"attention kind {kind!r}; use one of {ATTENTION_KINDS}.")
  h, w = grid
  s = text_length + h * w
  q = np.arange(s)[:, None]
  k = np.arange(s)[None, :]
  causal = k <= q
  if kind == "dense":
    return causal
  qi, ki = q - text_length, k - text_length  # image indices (negative: text)
  if kind == "row":
    near = qi - ki <= w
  elif kind == "column":
    near = (qi - ki) % w == 0
  else:
    r = kernel // 2
    dr, dc = (qi // w - ki // w) % h, (qi % w - ki % w) % w
    near = (np.minimum(dr, h - dr) <= r) & (np.minimum(dc, w - dc) <= r)
  both_image = (qi >= 0) & (ki >= 0)
  return causal & (~both_image | near)


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
  width: int
  layers: int
  heads: int
  text_vocab: int  # text ids the embedding and the text head cover (pads included)
  image_vocab: int  # the stage's codes
  text_length: int
  grid: tuple  # (h, w) image tokens
  image_positions: str = "row_col"
  attention: tuple = ()  # each layer's kind (layer_kinds); () = all dense
  conv_kernel: int = 11
  mlp_ratio: int = 4
  dropout: float = 0.0

  @property
  def image_length(self) -> int:
    return self.grid[0] * self.grid[1]

  @property
  def input_length(self) -> int:
    """Positions the network reads: every token but the last image token."""
    return self.text_length + self.image_length - 1

  @property
  def kinds(self) -> tuple:
    return tuple(self.attention) or ("dense",) * self.layers

  def masks(self) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct masks (M, S', S') over the input positions S' = input_length,
    each layer's index into them (layers,))."""
    kinds = self.kinds
    distinct = sorted(set(kinds), key=kinds.index)
    n = self.input_length
    masks = np.stack([attention_mask(k, self.text_length, self.grid,
                                     self.conv_kernel)[:n, :n] for k in distinct])
    return masks, np.asarray([distinct.index(k) for k in kinds], np.int32)


class SelfAttention(nn.Module):
  width: int
  heads: int
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x, mask, cache=None, start=0, train: bool = False):
    """``x`` (B, T, D) at positions ``start``.. ``start + T - 1``; ``mask`` (B or 1,
    T, K) over the key positions 0..K-1: all T positions' keys when ``cache`` is None
    (K = T, ``start`` 0), else the cache's K positions, into which this call's keys
    and values are written at ``start``. Returns (output, the new cache or None)."""
    b, t, _ = x.shape
    hd = self.width // self.heads
    dense = lambda name: nn.Dense(self.width, kernel_init=INIT, name=name)
    split = lambda y: y.reshape(b, t, self.heads, hd)
    q, k, v = (split(dense(n)(x)) for n in ("query", "key", "value"))
    if cache is not None:
      k = jax.lax.dynamic_update_slice(cache[0], k.astype(cache[0].dtype),
                                       (0, start, 0, 0))
      v = jax.lax.dynamic_update_slice(cache[1], v.astype(cache[1].dtype),
                                       (0, start, 0, 0))
      cache = (k, v)
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k.astype(q.dtype)) / math.sqrt(hd)
    logits = jnp.where(mask[:, None], logits.astype(jnp.float32), -1e30)
    weights = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    weights = nn.Dropout(self.dropout)(weights, deterministic=not train)
    out = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b, t, self.width)
    out = dense("proj")(out.astype(x.dtype))
    return nn.Dropout(self.dropout)(out, deterministic=not train), cache


class Block(nn.Module):
  width: int
  heads: int
  mlp_ratio: int = 4
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x, mask, cache=None, start=0, train: bool = False):
    norm = lambda name: nn.LayerNorm(epsilon=LAYER_NORM_EPS, name=name)
    h, cache = SelfAttention(self.width, self.heads, self.dropout, name="attn")(
        norm("ln1")(x), mask, cache, start, train)
    x = x + h
    h = nn.Dense(self.mlp_ratio * self.width, kernel_init=INIT, name="fc")(norm("ln2")(x))
    h = nn.Dense(self.width, kernel_init=INIT, name="fc_out")(nn.gelu(h, approximate=False))
    return x + nn.Dropout(self.dropout)(h, deterministic=not train), cache


class Transformer(nn.Module):
  """The transformer of ``config``. ``__call__``: teacher-forced logits of a whole
  sequence; ``prefill`` / ``step``: the same logits position by position through a
  key-value cache (``init_cache``)."""
  config: TransformerConfig

  def setup(self):
    c = self.config
    if c.image_positions not in IMAGE_POSITIONS:
      raise ValueError(f"image_positions={c.image_positions!r}; use one of "
                       f"{IMAGE_POSITIONS}.")
    if c.width % c.heads:
      raise ValueError(f"width {c.width} is not divisible by {c.heads} heads.")
    self.text_embed = nn.Embed(c.text_vocab, c.width, embedding_init=INIT)
    self.image_embed = nn.Embed(c.image_vocab, c.width, embedding_init=INIT)
    self.text_pos = self.param("text_pos", INIT, (c.text_length, c.width))
    if c.image_positions == "row_col":
      self.row_pos = self.param("row_pos", INIT, (c.grid[0], c.width))
      self.col_pos = self.param("col_pos", INIT, (c.grid[1], c.width))
    else:
      self.image_pos = self.param("image_pos", INIT, (c.image_length, c.width))
    self.blocks = [Block(c.width, c.heads, c.mlp_ratio, c.dropout, name=f"block_{i}")
                   for i in range(c.layers)]
    self.ln_f = nn.LayerNorm(epsilon=LAYER_NORM_EPS)
    self.text_head = nn.Dense(c.text_vocab, use_bias=False, kernel_init=INIT)
    self.image_head = nn.Dense(c.image_vocab, use_bias=False, kernel_init=INIT)
    self.drop = nn.Dropout(c.dropout)
    masks, index = c.masks()
    self.masks, self.mask_index = masks, index

  # --- embeddings -----------------------------------------------------------------------
  def image_positions(self, index):
    """The position embedding of image indices (raster order), any shape."""
    if self.config.image_positions == "row_col":
      w = self.config.grid[1]
      return self.row_pos[index // w] + self.col_pos[index % w]
    return self.image_pos[index]

  def embed(self, text, image, image_start=0):
    """Embedded text tokens (B, Lt) at positions 0.., then image tokens (B, T) at
    image indices ``image_start``..; either may be None."""
    parts = []
    if text is not None:
      parts.append(self.text_embed(text) + self.text_pos[:text.shape[1]])
    if image is not None:
      index = image_start + jnp.arange(image.shape[1])
      parts.append(self.image_embed(image) + self.image_positions(index))
    return jnp.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]

  # --- the blocks -----------------------------------------------------------------------
  def layer_mask(self, layer: int, rows, key_mask):
    """Layer ``layer``'s mask at query positions ``rows`` (a slice's start and length,
    or None: all), with the per-example key mask (B, K) if any."""
    mask = jnp.asarray(self.masks)[self.mask_index[layer]]
    if rows is not None:
      start, length = rows
      mask = jax.lax.dynamic_slice_in_dim(mask, start, length, axis=0)
    mask = mask[None]
    if key_mask is not None:
      mask = mask & key_mask[:, None, :]
    return mask

  def run(self, x, key_mask=None, caches=None, start=0, train=False):
    """The blocks and the final LayerNorm over ``x`` (B, T, D) at positions
    ``start``..; with ``caches`` (one (keys, values) per layer) the attention reads
    and writes them. Returns (hidden states, new caches or None)."""
    t = x.shape[1]
    if caches is None and t != self.config.input_length:
      raise ValueError(f"The teacher-forced pass reads all {self.config.input_length} "
                       f"input positions, got {t}.")
    rows = None if caches is None else (start, t)
    new = []
    for i, block in enumerate(self.blocks):
      mask = self.layer_mask(i, rows, key_mask)
      x, cache = block(x, mask, None if caches is None else caches[i], start, train)
      new.append(cache)
    return self.ln_f(x), (new if caches is not None else None)

  # --- teacher forcing --------------------------------------------------------------------
  def __call__(self, text, image, key_mask=None, train: bool = False):
    """Text ids (B, Lt) and image codes (B, N) -> (text logits (B, Lt - 1, Vt) of text
    tokens 1..Lt-1, image logits (B, N, Vi) of image tokens 0..N-1). ``key_mask``
    (B, Lt + N - 1): positions other positions may attend to (pad masking)."""
    lt = text.shape[1]
    x = self.drop(self.embed(text, image[:, :-1]), deterministic=not train)
    x, _ = self.run(x, key_mask, train=train)
    return self.text_head(x[:, :lt - 1]), self.image_head(x[:, lt - 1:])

  # --- the key-value cache ------------------------------------------------------------------
  def prefill(self, text, caches, key_mask=None):
    """Text ids (B, Lt) through empty ``caches`` -> (logits (B, Vi) of image token
    0, the caches holding positions 0..Lt-1)."""
    x, caches = self.run(self.embed(text, None), key_mask, caches, 0)
    return self.image_head(x[:, -1]), caches

  def step(self, token, index, caches, key_mask=None):
    """Image token ``index`` (B,) at position Lt + index, through ``caches`` ->
    (logits (B, Vi) of image token index + 1, the caches with this position)."""
    x = self.embed(None, token[:, None], index)
    x, caches = self.run(x, key_mask, caches, self.config.text_length + index)
    return self.image_head(x[:, 0]), caches


def init_cache(config: TransformerConfig, batch: int, dtype=jnp.float32) -> list:
  """Empty key-value caches: per layer (keys, values), each (B, S', H, D / H) over the
  input positions S'."""
  shape = (batch, config.input_length, config.heads, config.width // config.heads)
  return [(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype)) for _ in range(config.layers)]
