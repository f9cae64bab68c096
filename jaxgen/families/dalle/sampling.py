"""Drawing the image tokens one by one: the logits of each step filtered by
temperature, top-k and top-p (minDALL-E ``dalle/utils/sampling.py``), optionally mixed
with the unconditional logits first (super-conditioning, dalle-mini
``modeling.py``: ``uncond + scale * (cond - uncond)``, then the filters), and drawn
with one key per sequence, so that a sequence's tokens do not depend on the batch it
is drawn in (candidate j of a caption is the same whether 8 or 32 are drawn).

``sample_cached`` feeds each new token through the key-value cache (one position a
step); ``sample_uncached`` runs the whole sequence at every step and reads the
logits at the step's position. Both are one ``lax.fori_loop`` and, for the same
keys, draw the same tokens (tests/test_dalle.py).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def filter_logits(logits, temperature: float = 1.0, top_k: int = 0,
                  top_p: float = 1.0):
  """``logits`` (..., V) / ``temperature``; then all but the ``top_k`` largest set to
  -inf (0: keep all); then all but the most probable tokens whose cumulative
  probability first reaches ``top_p`` (nucleus; 1: keep all). minDALL-E's order:
  temperature, top-k, top-p. Tokens tied with the last one kept are kept too."""
  logits = logits.astype(jnp.float32) / temperature
  vocab = logits.shape[-1]
  if top_k and top_k < vocab:
    kth = jax.lax.top_k(logits, top_k)[0][..., -1:]
    logits = jnp.where(logits < kth, -jnp.inf, logits)
  if top_p < 1.0:
    ranked = -jnp.sort(-logits, axis=-1)  # descending
    probs = jax.nn.softmax(ranked, axis=-1)
    before = jnp.cumsum(probs, axis=-1) - probs  # the mass of the more probable tokens
    keep = before < top_p  # the first token always: its `before` is 0
    threshold = jnp.min(jnp.where(keep, ranked, jnp.inf), axis=-1, keepdims=True)
    logits = jnp.where(logits < threshold, -jnp.inf, logits)
  return logits


def guided(cond, uncond, scale):
  """Super-conditioning: ``uncond + scale (cond - uncond)``, ``scale`` (B,)."""
  return uncond + jnp.reshape(scale, (-1,) + (1,) * (cond.ndim - 1)) * (cond - uncond)


def draw(keys, logits, step):
  """One token per row: ``logits`` (B, V), ``keys`` (B,) the rows' own keys, folded
  with the step."""
  step_keys = jax.vmap(lambda k: jax.random.fold_in(k, step))(keys)
  return jax.vmap(jax.random.categorical)(step_keys, logits).astype(jnp.int32)


def sample_cached(prefill, step, caches, pick, num_tokens: int, batch: int):
  """Image tokens (B, N) through a key-value cache. ``prefill(caches) -> (logits,
  caches)`` runs the text; ``step(tokens (B,), index, caches) -> (logits, caches)``
  feeds image token ``index``; ``pick(logits, index) -> tokens (B,)`` draws image
  token ``index`` from its logits."""
  logits, caches = prefill(caches)
  out = jnp.zeros((batch, num_tokens), jnp.int32).at[:, 0].set(pick(logits, 0))

  def body(j, carry):
    out, caches = carry
    logits, caches = step(out[:, j], j, caches)
    return out.at[:, j + 1].set(pick(logits, j + 1)), caches

  out, _ = jax.lax.fori_loop(0, num_tokens - 1, body, (out, caches))
  return out


def sample_uncached(forward, pick, num_tokens: int, batch: int):
  """Image tokens (B, N) by the whole teacher-forced pass at every step:
  ``forward(tokens (B, N)) -> image logits (B, N, V)`` (the causal mask keeps the
  positions not drawn yet out of the logits read)."""
  def body(j, out):
    logits = jax.lax.dynamic_index_in_dim(forward(out), j, axis=1, keepdims=False)
    return out.at[:, j].set(pick(logits, j))

  return jax.lax.fori_loop(0, num_tokens, body,
                           jnp.zeros((batch, num_tokens), jnp.int32))
