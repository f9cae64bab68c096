"""A word-level tokenizer for jaxgen's generated captions (``mnist5k_captions``).

The vocabulary is built from the caption corpus itself (``Tokenizer.build(texts)``):
the four special tokens ``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2, ``<unk>`` = 3, then
the corpus' words in sorted order, so the same corpus always gives the same ids. Text
is lower-cased and split on whitespace. ``encode`` gives ``<bos> words <eos>`` padded
with 0 to the context length; a caption that does not fit is an error, never
truncated. ``save`` / ``load`` keep the vocabulary as JSON, so a run can store its
tokenizer in its workdir and a later stage read the same ids back.

(CLIP's byte-level BPE tokenizer, for the CLIP towers, is ``clip_tokenizer.py``.)
"""
from __future__ import annotations

import json
from typing import Iterable, Sequence

import numpy as np

SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
PAD, BOS, EOS, UNK = range(len(SPECIALS))
FORMAT = "jaxgen-word-tokenizer"
VERSION = 1


def split_words(text: str) -> list:
  """The words of a text as the tokenizer sees them: lower-cased, split on spaces."""
  return text.lower().split()


class Tokenizer:
  """Words <-> int32 ids over a fixed vocabulary (``vocab[i]`` is the word of id i)."""

  def __init__(self, words: Sequence[str]):
    words = list(words)
    clash = sorted(set(words) & set(SPECIALS))
    if clash:
      raise ValueError(f"The vocabulary's words include the special tokens {clash}.")
    if len(set(words)) != len(words):
      raise ValueError("The vocabulary lists some words more than once.")
    self.vocab = list(SPECIALS) + words
    self._ids = {w: i for i, w in enumerate(self.vocab)}

  @classmethod
  def build(cls, texts: Iterable[str]) -> "Tokenizer":
    """The tokenizer of a corpus: every word that occurs in it, sorted."""
    return cls(sorted({w for t in texts for w in split_words(t)}))

  @property
  def vocab_size(self) -> int:
    return len(self.vocab)

  def __eq__(self, other):
    return isinstance(other, Tokenizer) and self.vocab == other.vocab

  def __repr__(self):
    return f"Tokenizer(vocab_size={self.vocab_size})"

  def ids(self, text: str) -> list:
    """``<bos>``, the ids of the words (``<unk>`` for words not in the vocabulary),
    ``<eos>``; no padding."""
    return [BOS, *(self._ids.get(w, UNK) for w in split_words(text)), EOS]

  def unknown_words(self, text: str) -> list:
    """The words of ``text`` outside the vocabulary (``ids`` would give them
    ``<unk>``), in order: what a prompt checks before it is encoded."""
    return [w for w in split_words(text) if w not in self._ids or w in SPECIALS]

  def encode(self, texts, context_length: int) -> np.ndarray:
    """int32 ids, ``(context_length,)`` for one text, ``(N, context_length)`` for a
    sequence of N texts: ``<bos> words <eos>`` then ``<pad>`` (0)."""
    single = isinstance(texts, str)
    texts = [texts] if single else list(texts)
    if context_length < 2:
      raise ValueError(f"context_length={context_length}: a caption needs at least 2 "
                       f"positions (<bos> and <eos>).")
    rows = [self.ids(t) for t in texts]
    lengths = np.asarray([len(r) for r in rows], np.int64)
    if len(rows) and lengths.max() > context_length:
      too_long = np.flatnonzero(lengths > context_length)
      worst = int(too_long[np.argmax(lengths[too_long])])
      raise ValueError(
          f"Caption {texts[worst]!r} is {lengths[worst]} tokens long (its "
          f"{lengths[worst] - 2} words plus <bos> and <eos>), more than the context "
          f"length {context_length}; {len(too_long)} of {len(texts)} captions do not "
          f"fit. Captions are not truncated: raise the context length "
          f"(config.data.context_length) to at least {int(lengths.max())}.")
    out = np.full((len(rows), context_length), PAD, np.int32)
    for i, r in enumerate(rows):
      out[i, :len(r)] = r
    return out[0] if single else out

  def decode(self, ids) -> str:
    """The text of one row of ids: the words after ``<bos>`` up to ``<eos>`` (or the
    end), padding skipped."""
    ids = np.asarray(ids)
    if ids.ndim != 1:
      raise ValueError(f"decode takes one row of ids, got shape {ids.shape}; use "
                       f"decode_batch for several.")
    bad = ids[(ids < 0) | (ids >= self.vocab_size)]
    if bad.size:
      raise ValueError(f"Token id {int(bad[0])} is outside the vocabulary of "
                       f"{self.vocab_size} ids.")
    words = []
    for i in ids.tolist():
      if i == EOS:
        break
      if i not in (PAD, BOS):
        words.append(self.vocab[i])
    return " ".join(words)

  def decode_batch(self, ids) -> list:
    return [self.decode(row) for row in np.asarray(ids)]

  def save(self, path: str):
    with open(path, "w") as f:
      json.dump({"format": FORMAT, "version": VERSION, "specials": list(SPECIALS),
                 "words": self.vocab[len(SPECIALS):]}, f, indent=1)

  @classmethod
  def load(cls, path: str) -> "Tokenizer":
    with open(path) as f:
      d = json.load(f)
    if not isinstance(d, dict) or d.get("format") != FORMAT:
      raise ValueError(f"{path} is not a jaxgen word tokenizer (expected a JSON object "
                       f"with format {FORMAT!r}).")
    if d.get("version") != VERSION or tuple(d.get("specials", ())) != SPECIALS:
      raise ValueError(f"{path} holds tokenizer version {d.get('version')} with special "
                       f"tokens {d.get('specials')}; this jaxgen reads version {VERSION} "
                       f"with {list(SPECIALS)}.")
    return cls(d["words"])
