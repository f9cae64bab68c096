"""The derived MNIST-5k sets: captions (one and two digits), edges, styles.

Claims are checked against quantities the tests measure themselves, with formulas of
their own (per-image loops, skimage's skeleton, scipy's Sobel), not the module's.
"""
import json

import numpy as np
import pytest
from ml_collections import ConfigDict
from scipy import ndimage
from skimage.morphology import skeletonize

from jaxgen import data
from jaxgen.data import mnist5k_derived as derived
from jaxgen.data import text
from jaxgen.data.sources import mnist5k_arrays

NAMES = ("mnist5k_captions", "mnist5k_captions2", "mnist5k_edges", "mnist5k_styles")
POSITION_PHRASES = [p for row in derived.POSITIONS for p in row]


def _cfg(name, **kw):
  base = dict(name=name, scale="unit", binarize="", dequantize=False, resize=(),
              random_flip=True, tfds_data_dir="")
  return ConfigDict({**base, **kw})


def _digit_words(caption):
  return [int(w) for w in caption.split() if w.isdigit()]


def _height(im):
  rows = np.nonzero((im > 127).any(1))[0]
  return rows[-1] - rows[0] + 1


def _relative_width(im):
  """Ink area over skeleton length (skimage), relative to the ink height."""
  ink = im > 127
  return ink.sum() / max(skeletonize(ink).sum(), 1) / _height(im)


def _row_slope(im):
  """Least-squares slope of the per-row ink centroid's column against the row: < 0 when
  the top leans right."""
  g = im.astype(np.float64)
  rows = np.nonzero(g.sum(1) > 0)[0]
  cols = (g[rows] * np.arange(g.shape[1])).sum(1) / g[rows].sum(1)
  return np.polyfit(rows, cols, 1)[0]


def _centre(im):
  g = im.astype(np.float64)
  r, c = np.indices(g.shape)
  return np.array([(g * r).sum(), (g * c).sum()]) / g.sum()


def _auc(pos, neg):
  """P(a positive's score > a negative's)."""
  return (pos[:, None] > neg[None, :]).mean()


def _size_classes(heights, train_heights):
  q1, q2 = np.quantile(train_heights, [1 / 3, 2 / 3])
  return np.where(heights <= q1, "small", np.where(heights > q2, "large", ""))


def _size_word(words):
  return "small" if "small" in words else "large" if "large" in words else ""


@pytest.mark.parametrize("name", NAMES)
def test_splits_specs_and_loader(name):
  cfg = _cfg(name)
  ds = data.get_dataset(cfg)
  spec, processed = ds.spec(), data.example_spec(cfg)
  ref = {s: mnist5k_arrays(s) for s in ("train", "test")}
  for split, n in (("train", 4500), ("test", 500)):
    src = data.get_source(cfg, split)
    assert len(src) == n
    assert set(src.arrays) == set(spec)
    for k, s in spec.items():
      assert src.arrays[k].shape == (n, *s.shape) and src.arrays[k].dtype == s.dtype, k
    # Example i comes from digit i of the same MNIST-5k split.
    if "label" in spec:
      np.testing.assert_array_equal(src.arrays["label"], ref[split]["label"])
  if not ds.flippable:  # captions name left and right: a mirror would contradict them
    with pytest.raises(ValueError, match="random_flip=True mirrors the images"):
      data.Loader(data.get_source(cfg, "train"), cfg, 8, seed=0)
    cfg.random_flip = False
  batch = next(data.Loader(data.get_source(cfg, "train"), cfg, 8, seed=0))
  assert set(batch) == set(processed)
  for k, s in processed.items():
    assert batch[k].shape == (8, *s.shape) and batch[k].dtype == s.dtype, k
    if s.dtype == np.float32:
      assert 0 <= batch[k].min() and batch[k].max() <= 1
  assert ds.paired == (name != "mnist5k_styles")


def test_captions_agree_with_independent_measurements():
  cfg = _cfg("mnist5k_captions")
  ds = data.get_dataset(cfg)
  test, train = data.get_source(cfg, "test").arrays, data.get_source(cfg, "train").arrays
  caps, ims = ds.captions("test"), test["image"][..., 0]
  assert ims.shape[1:] == (32, 32) and len(caps) == 500
  tok = ds.tokenizer()
  assert [tok.decode(t) for t in test["text"]] == caps
  words = [c.split() for c in caps]
  # The label word is always right, and the article fits it.
  assert all(_digit_words(c) == [l] for c, l in zip(caps, test["label"]))
  assert all(w[0] == ("an" if w[1] == "8" else "a") for w in words)
  # Position: the 3 x 3 cell of the ink's centre of mass.
  pos = [next(p for p in POSITION_PHRASES if c.endswith(p)) for c in caps]
  cells = [tuple(np.clip((_centre(im) // (32 / 3)).astype(int), 0, 2)) for im in ims]
  want = [derived.POSITIONS[r][c] for r, c in cells]
  assert np.mean([p == w for p, w in zip(pos, want)]) > 0.98
  assert len(set(pos)) == 9  # every position occurs
  # Size: ink height against the train set's tertiles, both measured here.
  heights = np.array([_height(im) for im in ims])
  size = _size_classes(heights, [_height(im) for im in train["image"][..., 0]])
  assert np.mean(size == np.array([_size_word(w) for w in words])) > 0.95
  assert 0.2 < np.mean(size == "small") < 0.5 and 0.15 < np.mean(size == "large") < 0.5
  # Slant: the sign of the per-row centroid's slope.
  slope = np.array([_row_slope(im) for im in ims])
  right = np.array(["slanted right" in c for c in caps])
  left = np.array(["slanted left" in c for c in caps])
  upright = np.array(["upright" in c for c in caps])
  assert (right | left | upright).all()
  assert min(right.sum(), left.sum(), upright.sum()) > 30
  assert np.mean(slope[right] < 0) > 0.95 and np.mean(slope[left] > 0) > 0.95
  assert np.median(np.abs(slope[upright])) < 0.5 * np.median(np.abs(slope[~upright]))
  # Thickness: skeleton-based stroke width relative to the height separates the words.
  width = np.array([_relative_width(im) for im in ims])
  thick = np.array(["thick" in c for c in caps])
  thin = np.array(["thin" in c for c in caps])
  assert thick.sum() > 100 and thin.sum() > 100
  assert _auc(width[thick], width[thin]) > 0.85


def test_two_digit_captions_name_both_digits_and_their_order():
  cfg = _cfg("mnist5k_captions2")
  ds = data.get_dataset(cfg)
  test, train = data.get_source(cfg, "test").arrays, data.get_source(cfg, "train").arrays
  caps, ims = ds.captions("test"), test["image"][..., 0]
  assert ims.shape[1:] == (32, 64)
  partner = derived.caption_data("test", 0, two_digits=True)["partner"]
  labels = mnist5k_arrays("test")["label"]
  assert (partner != np.arange(500)).all()
  np.testing.assert_array_equal(test["label2"], labels[partner])
  assert all(_digit_words(c) == [a, b]
             for c, a, b in zip(caps, test["label"], test["label2"]))
  # Each half holds one digit, whose ink stays inside it.
  halves = (ims[:, :, :32], ims[:, :, 32:])
  assert all((h > 127).any((1, 2)).all() for h in halves)
  assert (ims[:, :, 31:33] == 0).all()
  # The relation says which half holds the first digit: its size word agrees with the
  # height measured there, and not with the other half's.
  train_halves = (train["image"][..., :32, 0], train["image"][..., 32:, 0])
  train_h = [_height(h) for half in train_halves for h in half]
  size = [_size_classes(np.array([_height(im) for im in h]), train_h) for h in halves]
  first_left = np.array([" left of " in c for c in caps])
  assert 0.3 < first_left.mean() < 0.7  # the first digit is on either side
  assert all((" left of " in c) != (" right of " in c) for c in caps)
  first, second = zip(*(c.split(" left of " if " left of " in c else " right of ")
                        for c in caps))
  w1 = np.array([_size_word(f.split()) for f in first])
  w2 = np.array([_size_word(s.split()) for s in second])
  named1 = np.where(first_left, size[0], size[1])
  named2 = np.where(first_left, size[1], size[0])
  assert np.mean(w1 == named1) > 0.95 and np.mean(w2 == named2) > 0.95
  assert np.mean(w1 == named2) < 0.7  # swapping the halves would not agree


def test_edges_are_the_digits_boundaries():
  src = data.get_source(_cfg("mnist5k_edges"), "test").arrays
  digits = mnist5k_arrays("test")["image"]
  np.testing.assert_array_equal(src["target"], digits)
  g = digits[..., 0].astype(np.float64) / 255
  mag = np.stack([np.hypot(ndimage.sobel(im, 1, mode="constant"),
                           ndimage.sobel(im, 0, mode="constant")) for im in g])
  edges = src["source"][..., 0]
  assert set(np.unique(edges)) == {0, 255}
  assert np.mean((edges == 255) == (mag > 2.0)) > 0.999
  assert (edges == 255).any((1, 2)).all()
  ink = digits[..., 0] > 127
  near = lambda m: ndimage.binary_dilation(m, np.ones((1, 3, 3), bool))
  e = edges == 255
  assert np.mean(near(ink)[e]) > 0.99 and np.mean(near(~ink)[e]) > 0.99
  # Not a copy of the digit: ink surrounded by ink and the far background are not
  # edges; edges lie on both sides of the strokes' borders.
  inside = ndimage.binary_erosion(ink, np.ones((1, 3, 3), bool))
  far = ~ndimage.binary_dilation(ink, np.ones((1, 5, 5), bool))
  assert inside.sum() > 1000 and e[inside].mean() < 0.02 and not e[far].any()
  assert 0.3 < np.mean(~ink[e]) < 0.7 and np.mean(~e[ink]) > 0.2


def test_paired_flip_hits_source_and_target_identically():
  cfg = _cfg("mnist5k_edges")
  src = data.get_source(cfg, "train")
  loader = data.Loader(src, cfg, 8, seed=0)
  flips = []
  for _ in range(4):
    idx = loader.indices(loader.position)
    batch, raw = next(loader), src[idx]
    for key in ("source", "target"):
      plain = raw[key] / 255
      same = lambda x: np.all(np.abs(batch[key] - x) < 1e-6, axis=(1, 2, 3))
      is_flipped = same(plain[:, :, ::-1])
      assert (is_flipped | same(plain)).all()
      flips.append(is_flipped)
  flips = np.array(flips).reshape(4, 2, 8)
  np.testing.assert_array_equal(flips[:, 0], flips[:, 1])
  assert flips.any() and not flips.all()


def test_unpaired_flips_are_drawn_per_domain():
  cfg = _cfg("mnist5k_styles")
  src = data.get_source(cfg, "train")
  loader = data.Loader(src, cfg, 8, seed=0)
  differ = 0
  for _ in range(4):
    idx = loader.indices(loader.position)
    batch, raw = next(loader), src[idx]
    f = [np.all(np.abs(batch[k] - (raw[k] / 255)[:, :, ::-1]) < 1e-6, axis=(1, 2, 3))
         for k in ("domain_a", "domain_b")]
    differ += (f[0] != f[1]).sum()
  assert differ > 0


def test_styles_restyle_is_invertible_and_only_test_is_aligned():
  gt = derived.styles_ground_truth("test", 0)
  digits = mnist5k_arrays("test")["image"]
  colour, texture = gt["colour"], gt["texture"]
  np.testing.assert_array_equal(gt["digit"], digits)
  np.testing.assert_array_equal(gt["domain_a"], np.repeat(digits, 3, -1))
  # domain_b is the composition ink * colour + (1 - ink) * texture.
  ink = digits / 255.0
  b = np.round(255 * (ink * colour[:, None, None] + (1 - ink) * texture))
  assert np.abs(gt["domain_b"] - b).max() <= 1
  # Coloured strokes on a textured (not flat, smooth: not white noise) background that
  # differs from the colour everywhere.
  assert np.linalg.norm(colour[:, None, None] - texture, axis=-1).min() >= 0.4
  assert texture.std((1, 2)).min() > 0.01
  step = np.abs(np.diff(texture, axis=1)).mean() / texture.std((1, 2)).mean()
  assert step < 0.5  # white noise would give about 1.1
  assert len({tuple(np.round(c, 1)) for c in colour}) > 8
  # The inverse recovers the digit to within uint8 rounding (module's and our own:
  # per pixel, through the channel where colour and texture differ most).
  rec = derived.unstyle(gt["domain_b"], colour, texture).astype(int)
  err = np.abs(rec - digits)
  assert err.max() <= 2 and np.mean(err <= 1) > 0.99
  d = colour[:, None, None] - texture
  k = np.abs(d).argmax(-1)[..., None]
  pick = lambda x: np.take_along_axis(x, k, -1)
  own = (pick(gt["domain_b"] / 255) - pick(texture)) / pick(d)
  assert np.mean(np.abs(np.round(255 * np.clip(own, 0, 1)) - digits) <= 1) > 0.99
  # The test split is aligned: its pairs are the ground truth.
  cfg = _cfg("mnist5k_styles")
  test = data.get_source(cfg, "test").arrays
  np.testing.assert_array_equal(test["domain_a"], gt["domain_a"])
  np.testing.assert_array_equal(test["domain_b"], gt["domain_b"])
  # The train split is not: domain_b[i] is another digit, restyled.
  train = data.get_source(cfg, "train").arrays
  gtr = derived.styles_ground_truth("train", 0)
  j = gtr["b_index"]
  assert (j != np.arange(4500)).all() and (np.sort(j) == np.arange(4500)).all()
  plain_b = derived.unstyle(train["domain_b"], gtr["colour"][j], gtr["texture"][j])
  assert np.mean(np.abs(plain_b.astype(int) - gtr["digit"][j]) <= 1) > 0.99
  gap = np.abs(plain_b.astype(int) - train["domain_a"][..., :1]).mean((1, 2, 3))
  assert gap.min() > 5  # grey levels: no example pairs a digit with itself


def test_deterministic_from_the_seed():
  # Rebuilt without the cache: the same arrays.
  again = derived.build_caption_data("test", 0, False, 1)
  cached = derived.caption_data("test", 0)
  np.testing.assert_array_equal(again["image"], cached["image"])
  assert again["caption"].tolist() == cached["caption"].tolist()
  again = derived.styles.__wrapped__("test", 0)
  np.testing.assert_array_equal(again["domain_b"],
                                derived.styles_ground_truth("test", 0)["domain_b"])
  # Another seed: other arrays (edges are a function of the digit alone).
  for name, key in (("mnist5k_captions", "image"), ("mnist5k_captions", "text"),
                    ("mnist5k_styles", "domain_b")):
    a = data.get_source(_cfg(name), "test").arrays[key]
    b = data.get_source(_cfg(name, derived_seed=1), "test").arrays[key]
    assert a.shape == b.shape and not np.array_equal(a, b), (name, key)
  a = data.get_source(_cfg("mnist5k_captions2"), "test").arrays["image"]
  b = data.get_source(_cfg("mnist5k_captions2", derived_seed=1), "test").arrays["image"]
  assert not np.array_equal(a, b)
  np.testing.assert_array_equal(
      data.get_source(_cfg("mnist5k_edges"), "test").arrays["source"],
      data.get_source(_cfg("mnist5k_edges", derived_seed=1), "test").arrays["source"])


@pytest.mark.parametrize("two", [False, True])
def test_layouts_extend_the_train_split(two):
  """layouts=3: the first layout is the layouts=1 split, each further layout places
  the same digits anew with its own measured captions; test split and tokenizer are
  unchanged."""
  name = "mnist5k_captions2" if two else "mnist5k_captions"
  one = data.get_source(_cfg(name), "train").arrays
  three = data.get_source(_cfg(name, layouts=3), "train").arrays
  n = len(one["label"])
  assert len(three["label"]) == 3 * n
  for key in one:
    np.testing.assert_array_equal(three[key][:n], one[key])
  np.testing.assert_array_equal(three["label"], np.tile(one["label"], 3))
  for k in (1, 2):  # new canvases of the same digits, not copies
    layout = three["image"][k * n:(k + 1) * n]
    assert np.mean(np.any(layout != one["image"], axis=(1, 2, 3))) > 0.99
  # The captions of a later layout name what its own canvases show.
  d = derived.caption_data("train", 0, two, 3)
  later = slice(2 * n, 3 * n)
  tok = data.get_dataset(_cfg(name, layouts=3)).tokenizer()
  assert tok == data.get_dataset(_cfg(name)).tokenizer()
  assert tok.decode_batch(three["text"][later]) == d["caption"][later].tolist()
  for i in range(2 * n, 3 * n, 97):
    im = d["image"][i, ..., 0]
    words = d["caption"][i].split()
    if two:
      assert _digit_words(d["caption"][i]) == [d["label"][i], d["label2"][i]]
    else:
      assert _digit_words(d["caption"][i]) == [d["label"][i]]
      cy, cx = ndimage.center_of_mass(im.astype(float))
      phrase = POSITION_PHRASES[int(cy * 3 // 32) * 3 + int(cx * 3 // 32)]
      assert " ".join(words).endswith(" " + phrase), (d["caption"][i], phrase)
  for key in ("image", "text"):
    np.testing.assert_array_equal(
        data.get_source(_cfg(name, layouts=3), "test").arrays[key],
        data.get_source(_cfg(name), "test").arrays[key])
  with pytest.raises(ValueError, match="layouts=0"):
    data.get_source(_cfg(name, layouts=0), "train")


def test_too_long_caption_is_a_clear_error():
  cfg = _cfg("mnist5k_captions", context_length=8)
  assert data.example_spec(cfg)["text"].shape == (8,)
  with pytest.raises(ValueError, match=r"Caption '.+' is \d+ tokens long .*context "
                                       r"length 8.*config.data.context_length"):
    data.get_source(cfg, "test")
  tok = text.Tokenizer.build(["a small 3"])
  with pytest.raises(ValueError) as e:
    tok.encode(["a 3", "a small 3 in the top left"], context_length=5)
  msg = str(e.value)
  assert "'a small 3 in the top left'" in msg and "9 tokens" in msg
  assert "context length 5" in msg and "at least 9" in msg and "not truncated" in msg


def test_text_length_and_padding():
  cfg = _cfg("mnist5k_captions2", context_length=20)
  src = data.get_source(cfg, "test").arrays
  assert src["text"].shape == (500, 20) and src["text"].dtype == np.int32
  caps = data.get_dataset(cfg).captions("test")
  np.testing.assert_array_equal(src["text_length"], [len(c.split()) + 2 for c in caps])
  assert (src["text"][:, 0] == text.BOS).all()
  rows = np.arange(500)
  assert (src["text"][rows, src["text_length"] - 1] == text.EOS).all()
  padding = np.arange(20)[None] >= src["text_length"][:, None]
  assert (src["text"][padding] == 0).all() and (src["text"][~padding] != 0).all()


def test_tokenizer_round_trip(tmp_path):
  ds = data.get_dataset(_cfg("mnist5k_captions"))
  tok = ds.tokenizer()
  assert tok.vocab[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"] and tok.vocab_size < 40
  caps = ds.captions("test")
  ids = tok.encode(caps, 16)
  assert ids.dtype == np.int32 and ids.shape == (500, 16)
  assert tok.decode_batch(ids) == caps
  path = tmp_path / "tokenizer.json"
  tok.save(str(path))
  back = text.Tokenizer.load(str(path))
  assert back == tok
  np.testing.assert_array_equal(back.encode(caps, 16), ids)
  assert back.decode(ids[3]) == caps[3]
  one = tok.encode("a purple 3", 6)
  assert one.shape == (6,) and one.tolist() == [1, tok.vocab.index("a"), 3,
                                               tok.vocab.index("3"), 2, 0]
  json.dump({"format": "something else"}, open(tmp_path / "bad.json", "w"))
  with pytest.raises(ValueError, match="not a jaxgen word tokenizer"):
    text.Tokenizer.load(str(tmp_path / "bad.json"))
  with pytest.raises(ValueError, match="has no captions"):
    derived.captions(_cfg("mnist5k_edges"), "test")
  assert derived.captions(_cfg("mnist5k_captions"), "test") == caps
