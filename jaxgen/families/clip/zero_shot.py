"""Zero-shot prompts from the caption grammar of ``mnist5k_captions`` and
``mnist5k_captions2`` (``jaxgen.data.mnist5k_derived.CAPTION_GRAMMAR``), as strings and
as token ids of a run's word tokenizer.

* ``digit_prompts``: for each digit, every caption of the one-digit grammar with that
  digit (each choice of thickness, size, slant and position is a template), to be
  averaged per class as open_clip's zero-shot classifier averages its templates;
* ``attribute_variants``: a caption with one attribute (thickness, size, slant,
  position) set to each of its values, the others kept;
* ``pair_prompts``: for the two-digit grammar, "a A left of a B" for every pair.
"""
from __future__ import annotations

import itertools

import numpy as np

from jaxgen.data import mnist5k_derived, text
from jaxgen.errors import ConfigError

DIGITS = tuple(str(d) for d in range(10))
THICKNESS = ("", "thin", "thick")
SIZE = ("", "small", "large")
SLANT = ("upright", "slanted left", "slanted right")
POSITION = tuple(p for row in mnist5k_derived.POSITIONS for p in row)
ATTRIBUTES = {"thickness": THICKNESS, "size": SIZE, "slant": SLANT, "position": POSITION}


def noun_phrase(digit: str, thickness: str = "", size: str = "") -> list:
  head = [w for w in (thickness, size) if w] + [digit]
  return ["an" if head[0] == "8" else "a", *head]


def caption(digit, thickness="", size="", slant="upright", position="in the centre"):
  """A caption of the one-digit grammar."""
  return " ".join([*noun_phrase(digit, thickness, size), slant, position])


def parse(caption_: str) -> dict:
  """The attributes of a one-digit caption: thickness, size, digit, slant, position."""
  words = caption_.split()
  i, out = 1, {"thickness": "", "size": ""}
  for attribute, values in (("thickness", THICKNESS), ("size", SIZE)):
    if i < len(words) and words[i] in values[1:]:
      out[attribute] = words[i]
      i += 1
  if i >= len(words) or words[i] not in DIGITS:
    raise ValueError(f"{caption_!r} is not a caption of the one-digit grammar.")
  out["digit"] = words[i]
  n = 1 if words[i + 1:i + 2] == ["upright"] else 2
  out["slant"] = " ".join(words[i + 1:i + 1 + n])
  out["position"] = " ".join(words[i + 1 + n:])
  if out["slant"] not in SLANT or out["position"] not in POSITION:
    raise ValueError(f"{caption_!r} is not a caption of the one-digit grammar.")
  return out


def digit_prompts() -> list:
  """10 lists (digits 0-9) of the same templates: every caption with that digit."""
  templates = list(itertools.product(THICKNESS, SIZE, SLANT, POSITION))
  return [[caption(d, *t) for t in templates] for d in DIGITS]


def attribute_variants(caption_: str, attribute: str) -> tuple[list, int]:
  """The captions that differ from ``caption_`` only in ``attribute`` (each of its
  values, in ``ATTRIBUTES`` order), and the index of ``caption_``'s own value."""
  parts = parse(caption_)
  values = ATTRIBUTES[attribute]
  variants = [caption(**{**{k: v for k, v in parts.items()}, attribute: value})
              for value in values]
  return variants, values.index(parts[attribute])


def pair_prompts(relation: str = "left of") -> list:
  """"a A left of a B" for A, B in 0-9 (index 10 A + B), adjectives left out."""
  return [" ".join([*noun_phrase(a), relation, *noun_phrase(b)])
          for a in DIGITS for b in DIGITS]


def encode(tokenizer: text.Tokenizer, prompts, context_length: int) -> np.ndarray:
  """Token ids (N, context_length) of the prompts; a word outside the tokenizer's
  vocabulary is an error (``<unk>`` would silently stand in for it)."""
  prompts = list(prompts)
  known = set(tokenizer.vocab)
  for p in prompts:
    unknown = [w for w in text.split_words(p) if w not in known]
    if unknown:
      raise ConfigError(
          f"The zero-shot prompt {p!r} has the word {unknown[0]!r}, which is not in "
          f"the run's caption vocabulary ({tokenizer.vocab_size - len(text.SPECIALS)} "
          f"words from the training captions): prompts must use the words of the "
          f"caption grammar the model was trained on.")
  return tokenizer.encode(prompts, context_length)
