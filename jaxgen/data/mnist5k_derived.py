"""Offline derived datasets built from MNIST-5k, for the conditional families.

Every set keeps MNIST-5k's split (4,500 train / 500 test): example i of a derived split
comes from digit i of the same MNIST-5k split. Its randomness comes from
``config.data.derived_seed`` (default 0) alone, so a seed gives the same arrays on
every machine; arrays are built once per (split, seed) in a few seconds, vectorised,
and kept in memory.

``mnist5k_captions``   text-to-image. ``image`` uint8 (32, 32, 1): the digit scaled by
    a random factor in [0.5, 0.9] and placed at a random position of a 32 x 32 canvas;
    ``label``; ``text`` int32 (context_length,) token ids of its caption, padded with 0;
    ``text_length`` (tokens with <bos> and <eos>). The caption is measured from the
    image: "a thick small 3 slanted left in the top right" (grammar: CAPTION_GRAMMAR).
    ``config.data.layouts`` (default 1): the train split lays each digit out that many
    times (a new scale, position, partner and caption each time; example i comes from
    digit i mod 4,500), for models that would otherwise memorise 4,500 canvases; the
    test split and the words' tertiles come from the first layout alone.
``mnist5k_captions2``  two digits side by side on a 32 x 64 canvas, each in its own
    half: "a small 3 left of a thick 7". ``label`` is digit i (the first one named),
    ``label2`` its partner (another digit of the split, a fixed seeded derangement).
``mnist5k_edges``      paired translation (``paired = True``): ``source`` the digit's
    edge map (uint8 (28, 28, 1), 255 where the Sobel gradient magnitude of the digit
    exceeds half that of a full black-to-white step), ``target`` the digit, ``label``.
    The edge map is a function of the digit: it does not depend on the seed.
``mnist5k_styles``     unpaired translation (``paired = False``): ``domain_a`` plain
    digits (grey repeated to RGB, uint8 (28, 28, 3)), ``domain_b`` digits restyled as
    ``ink * colour + (1 - ink) * texture`` (a seeded palette colour, a seeded smooth
    texture); ``label_a`` and ``label_b``, their digits' classes, and
    ``dark_background_b`` (1: bright strokes on a dark texture, 0: dark strokes on a
    light one), for evaluation (training reads the images alone). In the train split domain_b[i] restyles another digit than domain_a[i]
    (a seeded derangement), so training never sees a pair; in the test split they are
    the same digit, the ground truth of evaluation (``styles_ground_truth``), and
    ``unstyle`` inverts the restyling given the colour and texture.

Caption images must not be flipped (``random_flip``): the words "left" and "right" name
what the unflipped image shows.
"""
from __future__ import annotations

import functools

import jax
import numpy as np
from scipy import ndimage

from jaxgen.data import text
from jaxgen.errors import ConfigError
from jaxgen.data.sources import (LABEL, ArraySource, Dataset, get_dataset, image_spec,
                                 mnist5k_arrays, register)
# A pixel is ink when its grey level exceeds INK: one threshold for the captions'
# measurements and for the MNIST classifier's reading of a canvas (to_mnist).
from jaxgen.metrics.mnist_classifier import INK

SPLIT_CODES = {"train": 0, "test": 1}
# Distinct random streams per derived set: default_rng([seed, split, set]).
_CAPTIONS, _CAPTIONS2, _STYLES = 101, 102, 103
DEFAULT_CONTEXT_LENGTH = 16


def derived_seed(data_config) -> int:
  return int(data_config.get("derived_seed", 0))


def _rng(seed: int, split: str, stream: int) -> np.random.Generator:
  return np.random.default_rng([seed, SPLIT_CODES[split], stream])


def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
  """A random permutation without fixed points: each element moves to the position
  of its successor in a random cycle."""
  p = rng.permutation(n)
  out = np.empty(n, np.int64)
  out[p] = np.roll(p, -1)
  return out


def _readonly(arrays: dict) -> dict:
  for v in arrays.values():
    if isinstance(v, np.ndarray):
      v.setflags(write=False)
  return arrays


# ---------------------------------------------------------------------------------
# Measuring digits

def _erode(mask: np.ndarray) -> np.ndarray:
  """Binary erosion of (N, H, W) masks by the 4-neighbour cross, outside = False."""
  p = np.pad(mask, ((0, 0), (1, 1), (1, 1)))
  return (p[:, 1:-1, 1:-1] & p[:, :-2, 1:-1] & p[:, 2:, 1:-1]
          & p[:, 1:-1, :-2] & p[:, 1:-1, 2:])


def measure(images: np.ndarray) -> dict:
  """Attributes of the ink of uint8 images (N, H, W[, 1]), one value per image:
    height     rows between the first and the last with ink (grey > 127), inclusive;
    slant      the shear of the ink: -cov(x, y) / var(y) of the grey-weighted pixel
               coordinates (y down), > 0 when the top leans right;
    thickness  the stroke width 2 * area / boundary (ink pixels, and ink pixels with a
               4-neighbour that is not ink), relative to the height;
    centre     (N, 2) grey-weighted centre of mass (row, column).
  """
  x = images[..., 0] if images.ndim == 4 else images
  n, h, w = x.shape
  g = x.astype(np.float32) / 255
  mass = np.maximum(g.sum((1, 2)), 1e-6)
  r = np.arange(h, dtype=np.float32)[None, :, None]
  c = np.arange(w, dtype=np.float32)[None, None, :]
  cy, cx = (g * r).sum((1, 2)) / mass, (g * c).sum((1, 2)) / mass
  dy, dx = r - cy[:, None, None], c - cx[:, None, None]
  var_y = np.maximum((g * dy * dy).sum((1, 2)) / mass, 1e-6)
  slant = -(g * dx * dy).sum((1, 2)) / mass / var_y
  mask = x > INK
  rows = mask.any(2)
  height = np.where(rows.any(1), h - rows.argmax(1) - rows[:, ::-1].argmax(1), 0)
  area = mask.sum((1, 2))
  boundary = (mask & ~_erode(mask)).sum((1, 2))
  thickness = 2 * area / np.maximum(boundary, 1) / np.maximum(height, 1)
  return {"height": height.astype(np.int64), "slant": slant.astype(np.float32),
          "thickness": thickness.astype(np.float32),
          "centre": np.stack([cy, cx], -1).astype(np.float32)}


# ---------------------------------------------------------------------------------
# Placing digits on canvases

SCALE_RANGE = (0.5, 0.9)   # digit scale on a caption canvas
CANVAS = 32                # one digit: 32 x 32; two digits: 32 x 64
_SUBPIXELS = (-0.25, 0.25)  # 2 x 2 supersampling, in canvas pixels


def _hat_weights(q, n_src):
  """Bilinear interpolation weights (N, S, n_src) of source coordinates q (N, S),
  pixel centres at integers; zero outside the source."""
  return np.maximum(0, 1 - np.abs(q[..., None] - np.arange(n_src, dtype=np.float32)))


def _ink_frame(digits):
  """Centre of mass (N, 2) and extent of any grey (N, 2 axes, lo/hi) of uint8
  (N, 28, 28) digits."""
  m = measure(digits)["centre"]
  rows, cols = (digits > 0).any(2), (digits > 0).any(1)
  size = digits.shape[1]
  lo = np.stack([rows.argmax(1), cols.argmax(1)], -1)
  hi = size - 1 - np.stack([rows[:, ::-1].argmax(1), cols[:, ::-1].argmax(1)], -1)
  return m, lo, hi


def feasible_centres(digits, scale, size: int = CANVAS):
  """The range (lo, hi), each (N, 2), of canvas positions of each digit's centre of
  mass that keep all its ink at least one pixel inside a size x size canvas."""
  com, lo, hi = _ink_frame(digits)
  s = scale[:, None]
  return 1 + (com - lo) * s, size - 2 - (hi - com) * s


def place(digits, scale, centre, size: int = CANVAS) -> np.ndarray:
  """uint8 digits (N, 28, 28) drawn on size x size canvases, scaled by ``scale`` (N,)
  with their centre of mass at ``centre`` (N, 2); bilinear with 2 x 2 supersampling.
  Scaling and shifting act on rows and columns separately, so the drawing is the
  matrix product rows (N, size, 28) @ digit @ columns (N, 28, size)."""
  g = digits.astype(np.float32) / 255
  com = _ink_frame(digits)[0]
  grid = np.arange(size, dtype=np.float32)
  s = scale.astype(np.float32)[:, None]
  centre = centre.astype(np.float32)

  def weights(axis):
    return sum(_hat_weights(com[:, axis, None] + (grid + o - centre[:, axis, None]) / s,
                            g.shape[1 + axis]) for o in _SUBPIXELS) / len(_SUBPIXELS)

  out = weights(0) @ g @ weights(1).transpose(0, 2, 1)
  return np.round(np.clip(out, 0, 1) * 255).astype(np.uint8)


def _layout_one(digits, rng):
  """One digit per 32 x 32 canvas, its centre of mass drawn in a random cell of the
  canvas' 3 x 3 grid (moved inwards where the digit would not fit)."""
  n = len(digits)
  scale = rng.uniform(*SCALE_RANGE, n)
  cell = rng.integers(0, 3, (n, 2))
  target = (cell + 0.1 + 0.8 * rng.uniform(size=(n, 2))) * (CANVAS / 3)
  lo, hi = feasible_centres(digits, scale)
  return place(digits, scale, np.clip(target, lo, hi))


def _layout_half(digits, rng):
  """One digit per 32 x 32 half-canvas, anywhere it fits."""
  n = len(digits)
  scale = rng.uniform(*SCALE_RANGE, n)
  lo, hi = feasible_centres(digits, scale)
  return place(digits, scale, lo + rng.uniform(size=(n, 2)) * (hi - lo))


# ---------------------------------------------------------------------------------
# Captions

POSITIONS = (("in the top left", "at the top", "in the top right"),
             ("on the left", "in the centre", "on the right"),
             ("in the bottom left", "at the bottom", "in the bottom right"))
SLANT_THRESHOLD = 0.15  # |shear| above this (about 8.5 degrees) is "slanted"
CAPTION_GRAMMAR = """\
mnist5k_captions:  ARTICLE [THICKNESS] [SIZE] DIGIT SLANT POSITION
mnist5k_captions2: ARTICLE [THICKNESS] [SIZE] DIGIT RELATION
                   ARTICLE [THICKNESS] [SIZE] DIGIT
  ARTICLE   "a", or "an" before "8"
  THICKNESS "thin" / "thick": relative stroke width in the train set's lowest / highest
            third (none in the middle third)
  SIZE      "small" / "large": ink height in the train set's lowest / highest third
  DIGIT     "0" ... "9", the label
  SLANT     "slanted left" / "slanted right" (shear beyond 0.15) / "upright"
  POSITION  the 3 x 3 cell of the canvas holding the ink's centre of mass: "in the top
            left", "at the top", "in the top right", "on the left", "in the centre", "on
            the right", "in the bottom left", "at the bottom", "in the bottom right"
  RELATION  "left of" / "right of": the first digit's centre of mass against the second's
"""


def _tertiles(values):
  return tuple(float(q) for q in np.quantile(values, [1 / 3, 2 / 3]))


# The grammar's words by attribute class, the one place they are written and read: the
# captions (``_caption_strings``), their parser (``parse_caption``, for
# evaluators) and the zero-shot prompts of the clip family all go through these.
THICKNESS_WORDS = ("thin", "", "thick")   # classes 0, 1, 2 ("" says nothing)
SIZE_WORDS = ("small", "", "large")
SLANT_WORDS = ("slanted left", "upright", "slanted right")
POSITION_WORDS = tuple(p for row in POSITIONS for p in row)  # the 3 x 3 cell, row-major
RELATION_WORDS = ("left of", "right of")


def level(values, tertiles):
  """0 in the train set's lowest third (<= the first tertile), 2 in its highest (>
  the second), else 1: the class that names a size or a thickness."""
  values = np.asarray(values)
  return np.where(values <= tertiles[0], 0, np.where(values > tertiles[1], 2, 1))


def slant_class(slant):
  """0 slanted left, 1 upright (|shear| <= SLANT_THRESHOLD), 2 slanted right."""
  slant = np.asarray(slant)
  return np.where(np.abs(slant) <= SLANT_THRESHOLD, 1, np.where(slant > 0, 2, 0))


def position_class(centre):
  """The 3 x 3 cell (row-major, 0..8) of the canvas that holds ``centre`` (..., 2)."""
  cell = np.clip((np.asarray(centre) * 3 // CANVAS).astype(int), 0, 2)
  return cell[..., 0] * 3 + cell[..., 1]


def noun_phrase(digit, thickness: int = 1, size: int = 1) -> list:
  """The words "a [thin|thick] [small|large] D" of one digit (attribute classes)."""
  head = [w for w in (THICKNESS_WORDS[thickness], SIZE_WORDS[size]) if w] + [str(digit)]
  return ["an" if head[0] == "8" else "a", *head]


def caption_words(digit, thickness: int = 1, size: int = 1, slant: int | None = None,
                  position: int | None = None) -> list:
  """A digit's caption words: its noun phrase[, slant, position] (attribute classes)."""
  words = noun_phrase(digit, thickness, size)
  if slant is not None:
    words.append(SLANT_WORDS[slant])
  if position is not None:
    words.append(POSITION_WORDS[position])
  return words


def parse_caption(caption: str, two_digits: bool = False) -> dict:
  """The attribute classes a caption names: ``digit``, ``thickness`` and ``size`` (0, 1,
  2), and for one digit ``slant`` (0, 1, 2) and ``position`` (0..8); for two digits each
  digit's with the suffix _1 / _2 and ``first_left``. Text outside the grammar is an
  error naming the word."""
  words = caption.split()

  def fail(what, i):
    raise ValueError(f"cannot read the caption {caption!r}: {what} at word {i + 1} "
                     f"(the grammar: mnist5k_derived.CAPTION_GRAMMAR).")

  def phrase(i, options, what):
    for k, p in enumerate(options):
      p = p.split()
      if p and words[i:i + len(p)] == p:
        return k, i + len(p)
    fail(f"expected {what}", i)

  def digit_phrase(i):
    if i >= len(words) or words[i] not in ("a", "an"):
      fail("expected 'a' or 'an'", i)
    i += 1
    out = {}
    for name, options in (("thickness", THICKNESS_WORDS), ("size", SIZE_WORDS)):
      out[name] = 1
      if i < len(words) and words[i] in (options[0], options[2]):
        out[name] = options.index(words[i])
        i += 1
    if i >= len(words) or words[i] not in [str(d) for d in range(10)]:
      fail("expected a digit", i)
    out["digit"] = int(words[i])
    return out, i + 1

  first, i = digit_phrase(0)
  if two_digits:
    relation, i = phrase(i, RELATION_WORDS, "a relation")
    second, i = digit_phrase(i)
    out = {**{f"{k}_1": v for k, v in first.items()},
           **{f"{k}_2": v for k, v in second.items()}, "first_left": relation == 0}
  else:
    slant, i = phrase(i, SLANT_WORDS, "a slant")
    position, i = phrase(i, POSITION_WORDS, "a position")
    out = {**first, "slant": slant, "position": position}
  if i != len(words):
    fail("words left over", i)
  return out


def _words(label, height, thickness, size_q, thick_q, slant=None, centre=None):
  """Caption words of one digit: article, adjectives, digit[, slant, position]."""
  return caption_words(
      label, int(level(thickness, thick_q)), int(level(height, size_q)),
      None if slant is None else int(slant_class(slant)),
      None if centre is None else int(position_class(centre)))


def _layout_rng(seed: int, split: str, stream: int, layout: int):
  """Layout 0 draws from the set's stream, as a single layout always has; layout k > 0
  from its own, so more layouts extend the split without changing the first."""
  if layout == 0:
    return _rng(seed, split, stream)
  return np.random.default_rng([seed, SPLIT_CODES[split], stream, layout])


@functools.cache
def _layout_one_digit(split: str, seed: int, layout: int) -> dict:
  """Layout ``layout`` of a split's digits: canvases and their measurements."""
  d = mnist5k_arrays(split)
  image = _layout_one(d["image"][..., 0], _layout_rng(seed, split, _CAPTIONS, layout))
  return {"image": image, "label": d["label"], **measure(image)}


@functools.cache
def _layout_two_digits(split: str, seed: int, layout: int) -> dict:
  """Layout ``layout`` of a split's digit pairs: digit i with a partner (a seeded
  derangement), on the left or the right, each in its own half; canvases and each
  digit's measurements (suffix _1: digit i, _2: its partner)."""
  d = mnist5k_arrays(split)
  digits, labels, n = d["image"][..., 0], d["label"], len(d["label"])
  rng = _layout_rng(seed, split, _CAPTIONS2, layout)
  partner = derangement(n, rng)
  first_left = rng.uniform(size=n) < 0.5
  halves = _layout_half(np.concatenate([digits, digits[partner]]), rng)
  a, b = halves[:n], halves[n:]  # digit i, its partner
  left = np.where(first_left[:, None, None], a, b)
  right = np.where(first_left[:, None, None], b, a)
  ml, mr = measure(left), measure(right)
  mr["centre"] = mr["centre"] + np.float32([0, CANVAS])
  ma = {k: np.where(first_left.reshape(-1, *[1] * (v.ndim - 1)), v, mr[k])
        for k, v in ml.items()}
  mb = {k: np.where(first_left.reshape(-1, *[1] * (v.ndim - 1)), mr[k], v)
        for k, v in ml.items()}
  return {"image": np.concatenate([left, right], axis=2), "label": labels,
          "label2": labels[partner], "partner": partner,
          **{f"{k}_1": v for k, v in ma.items()}, **{f"{k}_2": v for k, v in mb.items()}}


def _tertiles_of(seed: int, two_digits: bool):
  """The (size, thickness) tertiles that name "small"/"large" and "thin"/"thick": of
  the train split's first layout, so that neither the test split's captions nor the
  tokenizer depend on ``layouts``."""
  if not two_digits:
    m = _layout_one_digit("train", seed, 0)
    return _tertiles(m["height"]), _tertiles(m["thickness"])
  m = _layout_two_digits("train", seed, 0)
  return (_tertiles(np.concatenate([m["height_1"], m["height_2"]])),
          _tertiles(np.concatenate([m["thickness_1"], m["thickness_2"]])))


def _caption_strings(m: dict, two_digits: bool, size_q, thick_q) -> np.ndarray:
  if not two_digits:
    return np.asarray([" ".join(_words(
        m["label"][i], m["height"][i], m["thickness"][i], size_q, thick_q,
        m["slant"][i], m["centre"][i])) for i in range(len(m["label"]))])
  relation = np.where(m["centre_1"][:, 1] < m["centre_2"][:, 1], *RELATION_WORDS)
  return np.asarray([" ".join([
      *_words(m["label"][i], m["height_1"][i], m["thickness_1"][i], size_q, thick_q),
      relation[i],
      *_words(m["label2"][i], m["height_2"][i], m["thickness_2"][i], size_q, thick_q)])
      for i in range(len(m["label"]))])


def build_caption_data(split: str, seed: int, two_digits: bool, layouts: int) -> dict:
  """``caption_data`` built afresh (no cache)."""
  layout = _layout_two_digits if two_digits else _layout_one_digit
  parts = [layout(split, seed, k) for k in range(layouts if split == "train" else 1)]
  m = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
  size_q, thick_q = _tertiles_of(seed, two_digits)
  m["caption"] = _caption_strings(m, two_digits, size_q, thick_q)
  m["image"] = m["image"][..., None]
  return _readonly({**m, "size_tertiles": size_q, "thickness_tertiles": thick_q})


def caption_data(split: str, seed: int = 0, two_digits: bool = False,
                 layouts: int = 1) -> dict:
  """Everything behind a caption split: ``image``, ``label`` (``label2``, ``partner``),
  the caption strings ``caption``, the measured attributes the captions were made from
  and the train-set tertiles that name them. The train split holds ``layouts`` layouts
  of each digit (example i comes from digit i mod 4,500); the test split one. Cached per
  (split, seed, two_digits, layouts); read-only."""
  if split not in SPLIT_CODES:
    raise ConfigError(f"Unknown split {split!r}; this dataset has {tuple(SPLIT_CODES)}.")
  if int(layouts) < 1:
    raise ConfigError(f"config.data.layouts={layouts}: the number of layouts of each "
                      f"training digit must be at least 1.")
  return _cached_caption_data(split, int(seed), bool(two_digits), int(layouts))


_cached_caption_data = functools.cache(build_caption_data)


@register("mnist5k_captions")
class MNIST5kCaptions(Dataset):
  """One MNIST-5k digit on a 32 x 32 canvas with its measured caption as tokens."""
  flippable = False  # captions name left and right
  two_digits = False

  @property
  def context_length(self) -> int:
    return int(self.cfg.get("context_length", DEFAULT_CONTEXT_LENGTH))

  @property
  def image_shape(self):
    return (CANVAS, 2 * CANVAS if self.two_digits else CANVAS, 1)

  def spec(self):
    out = {"image": image_spec(self.image_shape), "label": LABEL}
    if self.two_digits:
      out["label2"] = LABEL
    out["text"] = jax.ShapeDtypeStruct((self.context_length,), np.int32)
    out["text_length"] = LABEL
    return out

  @property
  def layouts(self) -> int:
    return int(self.cfg.get("layouts", 1))

  def data(self, split: str) -> dict:
    return caption_data(self.check_split(split), derived_seed(self.cfg), self.two_digits,
                        self.layouts)

  def captions(self, split: str) -> list:
    """The caption strings of a split, in example order."""
    return self.data(split)["caption"].tolist()

  def tokenizer(self) -> text.Tokenizer:
    """The word tokenizer of this set's train captions (the same for every split)."""
    return _tokenizer(derived_seed(self.cfg), self.two_digits)

  def split(self, split):
    d = self.data(split)
    tokens = _tokens(split, derived_seed(self.cfg), self.two_digits, self.layouts,
                     self.context_length)
    keys = ("image", "label", "label2") if self.two_digits else ("image", "label")
    return ArraySource({**{k: d[k] for k in keys}, "text": tokens,
                        "text_length": (tokens != text.PAD).sum(1).astype(np.int32)})


@register("mnist5k_captions2")
class MNIST5kCaptions2(MNIST5kCaptions):
  """Two MNIST-5k digits side by side on a 32 x 64 canvas, one caption naming both."""
  two_digits = True


@functools.cache
def _tokenizer(seed: int, two_digits: bool) -> text.Tokenizer:
  return text.Tokenizer.build(caption_data("train", seed, two_digits)["caption"].tolist())


@functools.cache
def _tokens(split: str, seed: int, two_digits: bool, layouts: int, context_length: int):
  caps = caption_data(split, seed, two_digits, layouts)["caption"].tolist()
  tokens = _tokenizer(seed, two_digits).encode(caps, context_length)
  tokens.setflags(write=False)
  return tokens


def captions(data_config, split: str) -> list:
  """The caption strings of a split of ``mnist5k_captions`` / ``mnist5k_captions2``
  (batches carry only their token ids)."""
  ds = get_dataset(data_config)
  if not isinstance(ds, MNIST5kCaptions):
    raise ConfigError(f"Dataset {data_config.name!r} has no captions; the captioned sets "
                      f"are mnist5k_captions and mnist5k_captions2.")
  return ds.captions(split)


# ---------------------------------------------------------------------------------
# Edges

EDGE_THRESHOLD = 2.0  # Sobel magnitude on [0, 1] grey levels; a full 0 -> 1 step is 4


def sobel_magnitude(images: np.ndarray) -> np.ndarray:
  """|Sobel gradient| of uint8 (N, H, W[, 1]) images in [0, 1] grey levels, zero
  outside the image; float32 (N, H, W)."""
  x = images[..., 0] if images.ndim == 4 else images
  p = np.pad(x.astype(np.float32) / 255, ((0, 0), (1, 1), (1, 1)))
  smooth_r = p[:, :-2] + 2 * p[:, 1:-1] + p[:, 2:]        # along rows: (N, H, W + 2)
  smooth_c = p[:, :, :-2] + 2 * p[:, :, 1:-1] + p[:, :, 2:]  # along columns
  gx = smooth_r[:, :, 2:] - smooth_r[:, :, :-2]
  gy = smooth_c[:, 2:] - smooth_c[:, :-2]
  return np.hypot(gx, gy)


def edge_map(images: np.ndarray) -> np.ndarray:
  """uint8 edge maps (N, H, W, 1) of uint8 digits: 255 where the Sobel gradient
  magnitude exceeds EDGE_THRESHOLD, else 0."""
  return np.where(sobel_magnitude(images) > EDGE_THRESHOLD, 255, 0).astype(
      np.uint8)[..., None]


@functools.cache
def _edges(split: str) -> dict:
  d = mnist5k_arrays(split)
  return _readonly({"source": edge_map(d["image"]), "target": d["image"],
                    "label": d["label"]})


@register("mnist5k_edges")
class MNIST5kEdges(Dataset):
  """MNIST-5k as paired translation: the digit's edge map -> the digit."""
  paired = True

  def spec(self):
    return {"source": image_spec((28, 28, 1)), "target": image_spec((28, 28, 1)),
            "label": LABEL}

  def split(self, split):
    return ArraySource(dict(_edges(self.check_split(split))))


# ---------------------------------------------------------------------------------
# Styles

# Stroke colours: bright ones (every colour has a channel at 1) go on dark textures
# (channels at most 0.4), dark ones (channels at most 0.3) on light textures (channels
# at least 0.6); jitter of +-0.05 keeps every colour at least MIN_CONTRAST from every
# texture pixel, which makes the restyling invertible.
BRIGHT = np.float32([[1, .25, .2], [1, .6, .1], [1, .95, .2], [.3, 1, .3],
                     [.2, .9, 1], [.35, .55, 1], [.95, .35, 1], [1, 1, 1]])
DARK = np.float32([[.3, 0, 0], [.3, .15, 0], [0, .25, 0], [0, .2, .3],
                   [0, 0, .3], [.2, 0, .3], [.25, .25, .25], [0, 0, 0]])
TEXTURE_SIGMA = 2.0  # pixels: the smoothing of the texture's white noise
MIN_CONTRAST = 0.4   # least |colour - texture| (RGB in [0, 1]) over all pixels


def style_params(n: int, rng: np.random.Generator, size: int = 28):
  """Per-example stroke colours (n, 3) and background textures (n, size, size, 3),
  float32 RGB in [0, 1]."""
  dark_background = rng.uniform(size=n) < 0.5
  k = rng.integers(0, len(BRIGHT), n)
  jitter = rng.uniform(-0.05, 0.05, (n, 3)).astype(np.float32)
  colour = np.clip(np.where(dark_background[:, None], BRIGHT[k], DARK[k]) + jitter, 0, 1)
  noise = rng.standard_normal((n, size, size, 3)).astype(np.float32)
  sigma = (0, TEXTURE_SIGMA, TEXTURE_SIGMA, 0)
  noise = ndimage.gaussian_filter(noise, sigma, mode="wrap")
  lo, hi = noise.min((1, 2), keepdims=True), noise.max((1, 2), keepdims=True)
  noise = (noise - lo) / np.maximum(hi - lo, 1e-6)
  bottom = np.where(dark_background[:, None], 0.0,
                    rng.uniform(0.6, 0.8, (n, 3))).astype(np.float32)
  top = np.where(dark_background[:, None], rng.uniform(0.2, 0.4, (n, 3)),
                 1.0).astype(np.float32)
  texture = bottom[:, None, None] + (top - bottom)[:, None, None] * noise
  return colour.astype(np.float32), texture.astype(np.float32)


def restyle(digits: np.ndarray, colour: np.ndarray, texture: np.ndarray) -> np.ndarray:
  """uint8 RGB (N, H, W, 3): ink * colour + (1 - ink) * texture, ink = grey / 255 of
  the uint8 digits (N, H, W, 1)."""
  ink = digits.astype(np.float32) / 255
  out = ink * colour[:, None, None, :] + (1 - ink) * texture
  return np.round(np.clip(out, 0, 1) * 255).astype(np.uint8)


def unstyle(styled: np.ndarray, colour: np.ndarray, texture: np.ndarray) -> np.ndarray:
  """The inverse of ``restyle`` given the colour and texture: per pixel the ink that
  best explains the RGB value (least squares along colour - texture), as uint8
  (N, H, W, 1). Exact up to uint8 rounding where the colour differs from the texture."""
  b = styled.astype(np.float32) / 255
  d = colour[:, None, None, :] - texture
  ink = ((b - texture) * d).sum(-1, keepdims=True) / np.maximum(
      (d * d).sum(-1, keepdims=True), 1e-6)
  return np.round(np.clip(ink, 0, 1) * 255).astype(np.uint8)


@functools.cache
def styles(split: str, seed: int) -> dict:
  d = mnist5k_arrays(split)
  n = len(d["label"])
  rng = _rng(seed, split, _STYLES)
  colour, texture = style_params(n, rng)
  contrast = np.linalg.norm(colour[:, None, None] - texture, axis=-1).min()
  assert contrast >= MIN_CONTRAST, contrast  # the palette's guarantee
  b_index = derangement(n, rng) if split == "train" else np.arange(n)
  return _readonly({
      "domain_a": np.repeat(d["image"], 3, axis=-1),
      "domain_b": restyle(d["image"], colour, texture),
      "digit": d["image"], "label": d["label"], "colour": colour, "texture": texture,
      # style_params' textures lie at most 0.4 (dark) or at least 0.6 (light)
      "dark_background": texture.mean((1, 2, 3)) < 0.5, "b_index": b_index})


def styles_ground_truth(split: str = "test", seed: int = 0) -> dict:
  """The aligned pairs behind ``mnist5k_styles``: for every digit i of the split,
  ``domain_a[i]`` (plain, RGB) and ``domain_b[i]`` (the same digit restyled), its
  ``digit`` (grey, (N, 28, 28, 1)), ``label``, ``colour`` (N, 3) and ``texture``
  (N, 28, 28, 3) (float32 RGB in [0, 1]; ``unstyle(domain_b, colour, texture)``
  recovers ``digit``), ``dark_background`` (N,) (bright strokes on a dark texture;
  else dark strokes on a light one), and ``b_index``: the split's example i shows domain_b[b_index[i]]
  (a derangement in train, the identity in test, where the split is aligned).
  Cached per (split, seed); read-only."""
  if split not in SPLIT_CODES:
    raise ConfigError(f"Unknown split {split!r}; this dataset has {tuple(SPLIT_CODES)}.")
  return styles(split, int(seed))


@register("mnist5k_styles")
class MNIST5kStyles(Dataset):
  """Plain MNIST-5k digits (domain_a) and restyled ones (domain_b), unpaired in train."""
  paired = False

  def spec(self):
    return {"domain_a": image_spec((28, 28, 3)), "domain_b": image_spec((28, 28, 3)),
            "label_a": LABEL, "label_b": LABEL,
            "dark_background_b": jax.ShapeDtypeStruct((), np.int32)}

  def split(self, split):
    gt = styles_ground_truth(self.check_split(split), derived_seed(self.cfg))
    b = gt["b_index"]
    return ArraySource({"domain_a": gt["domain_a"], "domain_b": gt["domain_b"][b],
                        "label_a": gt["label"], "label_b": gt["label"][b],
                        "dark_background_b": gt["dark_background"][b].astype(np.int32)})
