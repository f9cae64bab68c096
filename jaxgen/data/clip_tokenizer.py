"""CLIP's byte-level BPE tokenizer (OpenAI's ``clip/simple_tokenizer.py``), for its text tower.

Text is cleaned as OpenAI cleans it (``ftfy.fix_text``, HTML unescaped twice, runs of
whitespace collapsed to one space, stripped, lower-cased), split with CLIP's regular
expression (contractions, runs of letters, single digits, runs of other non-space
characters), mapped byte by byte to printable unicode characters, and merged by BPE with
``</w>`` marking the end of each word. ``tokenizer(captions)`` returns the
(N, context_length) int32 array ``clip.tokenize`` returns: the start token, the caption's
tokens, the end token, zeros after it.

Captions longer than the context are truncated by default, keeping the end token in the
last position: what ``clip.tokenize(..., truncate=True)`` (used by CLIPScore), open_clip
and Hugging Face's ``truncation=True`` do. ``truncate=False`` raises instead, like
``clip.tokenize``'s default.

Hugging Face's ``CLIPTokenizer`` (transformers 5, backed by ``tokenizers``) normalises with
NFC instead of ftfy + HTML unescaping, so it differs from OpenAI's on HTML entities,
mojibake, curly quotes, full-width characters and ligatures; this tokenizer follows OpenAI.
"""
from __future__ import annotations

import functools
import gzip
import html
import json

import ftfy
import numpy as np
import regex

START, END = "<|startoftext|>", "<|endoftext|>"
CONTEXT_LENGTH = 77
# OpenAI's bpe_simple_vocab_16e6.txt.gz holds more merges than CLIP uses: its vocabulary of
# 49408 is 256 bytes, the same 256 ending a word, 48894 merges and the two special tokens.
_OPENAI_NUM_MERGES = 49408 - 2 * 256 - 2

_PATTERN = regex.compile(
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|"
    r"[^\s\p{L}\p{N}]+", regex.IGNORECASE)


@functools.lru_cache(maxsize=None)
def bytes_to_unicode() -> dict[int, str]:
  """GPT-2's reversible map from the 256 byte values to printable unicode characters.

  Printable Latin-1 bytes map to themselves; the others (control characters, space,
  ...) to the characters from U+0100 upwards, in byte order. The dict's order (printable
  bytes first) is the order of the first 256 tokens of CLIP's vocabulary.
  """
  printable = [*range(ord("!"), ord("~") + 1), *range(ord("\xa1"), ord("\xac") + 1),
               *range(ord("\xae"), ord("\xff") + 1)]
  table = {b: chr(b) for b in printable}
  extra = 0
  for b in range(256):
    if b not in table:
      table[b] = chr(256 + extra)
      extra += 1
  return table


def clean(text: str) -> str:
  """OpenAI's text cleaning: ftfy, HTML unescaped twice, whitespace collapsed, lower case."""
  text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
  return " ".join(text.split()).lower()


class CLIPTokenizer:
  """Byte-level BPE over a vocabulary (token -> id) and a ranked list of merges."""

  def __init__(self, vocab: dict[str, int], merges: list[tuple[str, str]]):
    self.vocab = dict(vocab)
    self.ranks = {tuple(m): i for i, m in enumerate(merges)}
    self._byte_encoder = bytes_to_unicode()
    self._check()
    self.start_id, self.end_id = self.vocab[START], self.vocab[END]
    self._cache = {START: START, END: END}

  def _check(self):
    needed = [START, END, *self._byte_encoder.values(),
              *(c + "</w>" for c in self._byte_encoder.values()),
              *(a + b for a, b in self.ranks)]
    absent = [t for t in needed if t not in self.vocab]
    if absent:
      raise ValueError(
          f"The vocabulary lacks {len(absent)} tokens that the merges or the byte alphabet "
          f"produce (first: {absent[:5]}): the vocabulary and merges files do not belong "
          "together.")

  @classmethod
  def from_files(cls, vocab_json, merges_txt) -> CLIPTokenizer:
    """Hugging Face's pair of files (``vocab.json``, ``merges.txt``)."""
    with open(vocab_json, encoding="utf-8") as f:
      vocab = json.load(f)
    with open(merges_txt, encoding="utf-8") as f:
      lines = f.read().split("\n")
    merges = [tuple(line.split()) for line in lines
              if line.strip() and not line.startswith("#version")]
    bad = [m for m in merges if len(m) != 2]
    if bad:
      raise ValueError(f"{merges_txt}: merge lines must hold two symbols, got {bad[:3]}.")
    return cls(vocab, merges)

  @classmethod
  def from_openai_bpe(cls, path, num_merges: int = _OPENAI_NUM_MERGES) -> CLIPTokenizer:
    """OpenAI's ``bpe_simple_vocab_16e6.txt.gz``: merges only; the vocabulary follows.

    The vocabulary is the byte alphabet, the same characters ending a word, the first
    ``num_merges`` merges (the file holds more than CLIP uses) and the two special tokens.
    """
    with gzip.open(path, "rt", encoding="utf-8") as f:
      lines = f.read().split("\n")
    merges = [tuple(line.split()) for line in lines[1:num_merges + 1] if line.strip()]
    alphabet = list(bytes_to_unicode().values())
    tokens = [*alphabet, *(c + "</w>" for c in alphabet), *(a + b for a, b in merges),
              START, END]
    return cls({t: i for i, t in enumerate(tokens)}, merges)

  def _bpe(self, token: str) -> list[str]:
    """The BPE symbols of one pre-token (already mapped to the byte alphabet)."""
    if token in self._cache:
      return self._cache[token].split(" ")
    word = [*token[:-1], token[-1] + "</w>"]
    while len(word) > 1:
      pairs = set(zip(word[:-1], word[1:]))
      best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
      if best not in self.ranks:
        break
      merged, i = [], 0
      while i < len(word):
        if i < len(word) - 1 and (word[i], word[i + 1]) == best:
          merged.append(word[i] + word[i + 1])
          i += 2
        else:
          merged.append(word[i])
          i += 1
      word = merged
    self._cache[token] = " ".join(word)
    return word

  def encode(self, text: str) -> list[int]:
    """The token ids of ``text``, without the start and end tokens."""
    ids = []
    for piece in _PATTERN.findall(clean(text)):
      token = "".join(self._byte_encoder[b] for b in piece.encode("utf-8"))
      ids.extend(self.vocab[s] for s in self._bpe(token))
    return ids

  def __call__(self, texts, context_length: int = CONTEXT_LENGTH,
               truncate: bool = True) -> np.ndarray:
    """(N, context_length) int32 ids: start, tokens, end, then zeros.

    A caption that does not fit is cut to ``context_length`` tokens with the end token
    in the last position, or, with ``truncate=False``, raises a ValueError.
    """
    if isinstance(texts, str):
      texts = [texts]
    out = np.zeros((len(texts), context_length), np.int32)
    for row, text in enumerate(texts):
      ids = [self.start_id, *self.encode(text), self.end_id]
      if len(ids) > context_length:
        if not truncate:
          raise ValueError(
              f"Caption {row} ({text[:60]!r}...) has {len(ids)} tokens with the start and "
              f"end tokens, more than the context length {context_length}. Shorten it, or "
              "pass truncate=True to cut it (keeping the end token last).")
        ids = ids[:context_length - 1] + [self.end_id]
      out[row, :len(ids)] = ids
    return out
