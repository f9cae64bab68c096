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
# Each attribute's words by class, as the captions were written (mnist5k_derived).
ATTRIBUTES = {"thickness": mnist5k_derived.THICKNESS_WORDS,
              "size": mnist5k_derived.SIZE_WORDS,
              "slant": mnist5k_derived.SLANT_WORDS,
              "position": mnist5k_derived.POSITION_WORDS}


def caption(digit, thickness: int = 1, size: int = 1, slant: int = 1,
            position: int = 4) -> str:
  """A caption of the one-digit grammar from attribute classes (default: no
  thickness or size word, upright, in the centre)."""
  return " ".join(mnist5k_derived.caption_words(digit, thickness, size, slant,
                                                position))


def parse(caption_: str) -> dict:
  """The attribute classes of a one-digit caption: digit, thickness, size, slant,
  position (``mnist5k_derived.parse_caption``)."""
  return mnist5k_derived.parse_caption(caption_)


def digit_prompts() -> list:
  """10 lists (digits 0-9) of the same templates: every caption with that digit."""
  templates = list(itertools.product(*(range(len(v)) for v in ATTRIBUTES.values())))
  return [[caption(d, *t) for t in templates] for d in DIGITS]


def attribute_variants(caption_: str, attribute: str) -> tuple[list, int]:
  """The captions that differ from ``caption_`` only in ``attribute`` (each of its
  classes in order), and the index of ``caption_``'s own class."""
  parts = parse(caption_)
  variants = [caption(**{**parts, attribute: k})
              for k in range(len(ATTRIBUTES[attribute]))]
  return variants, parts[attribute]


def pair_prompts(relation: str = "left of") -> list:
  """"a A left of a B" for A, B in 0-9 (index 10 A + B), adjectives left out."""
  return [" ".join([*mnist5k_derived.noun_phrase(a), relation,
                    *mnist5k_derived.noun_phrase(b)])
          for a in DIGITS for b in DIGITS]


def encode(tokenizer: text.Tokenizer, prompts, context_length: int) -> np.ndarray:
  """Token ids (N, context_length) of the prompts; a word outside the tokenizer's
  vocabulary is an error (``<unk>`` would silently stand in for it)."""
  prompts = list(prompts)
  for p in prompts:
    unknown = tokenizer.unknown_words(p)
    if unknown:
      raise ConfigError(
          f"The zero-shot prompt {p!r} has the word {unknown[0]!r}, which is not in "
          f"the run's caption vocabulary ({tokenizer.vocab_size - len(text.SPECIALS)} "
          f"words from the training captions): prompts must use the words of the "
          f"caption grammar the model was trained on.")
  return tokenizer.encode(prompts, context_length)
