"""CLIP re-ranking of DALL-E's candidates: the captions as the reranker stage reads
them, and the candidates' scores.

A reranker is a ``ConditioningEncoder`` stage (``config.stages.reranker``): a finished
``clip`` run, which reads the dataset's own word ids (the run saved its tokenizer, and
it must be the dataset's), or a CLIP weights file (Hugging Face ``model.safetensors``),
which reads OpenAI's BPE ids. For a weights file the word ids become BPE ids inside the
compiled sampler through a table (``bpe_table``: each word id's BPE ids, computed on the
host once) and a stable compaction (``to_bpe``), so re-ranking stays one program.
Scores are minDALL-E's ``clip_score``: the cosine similarity of each candidate's image
embedding and its caption's text embedding (both L2-normalised by the protocol).
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jaxgen.data import text as text_lib


def bpe_table(words: text_lib.Tokenizer, bpe) -> np.ndarray:
  """(V, P) int32: the BPE ids of each id of the word tokenizer ``words`` (padded with
  -1): ``<bos>`` -> BPE's start token, ``<eos>`` -> its end token, ``<pad>`` and
  ``<unk>`` -> none, a word -> ``bpe.encode(word)``."""
  rows = []
  for i, word in enumerate(words.vocab):
    if i == text_lib.BOS:
      rows.append([bpe.start_id])
    elif i == text_lib.EOS:
      rows.append([bpe.end_id])
    elif i in (text_lib.PAD, text_lib.UNK):
      rows.append([])
    else:
      rows.append(list(bpe.encode(word)))
  width = max(1, max(len(r) for r in rows))
  table = np.full((len(rows), width), -1, np.int32)
  for i, r in enumerate(rows):
    table[i, :len(r)] = r
  return table


def to_bpe(tokens, table, context_length: int):
  """Word ids (B, L) -> BPE ids (B, ``context_length``): each word's BPE ids in order,
  then zeros (CLIP's padding). The caller checks that L * P fits the context."""
  b = tokens.shape[0]
  pieces = jnp.asarray(table)[tokens].reshape(b, -1)  # (B, L * P), -1 where none
  order = jnp.argsort(pieces < 0, axis=1, stable=True)  # real ids first, in order
  packed = jnp.take_along_axis(pieces, order, axis=1)
  if packed.shape[1] < context_length:
    packed = jnp.pad(packed, ((0, 0), (0, context_length - packed.shape[1])),
                     constant_values=-1)
  return jnp.maximum(packed[:, :context_length], 0)


def scores(image_embeddings, text_embeddings):
  """Cosine similarities (B, n) of candidates (B, n, D) with their captions (B, D),
  embeddings already L2-normalised."""
  return jnp.einsum("bnd,bd->bn", image_embeddings, text_embeddings)
