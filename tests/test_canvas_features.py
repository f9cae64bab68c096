"""The MNIST classifier's feature network on caption canvases (mnist5k_captions: one
digit on 32 x 32; mnist5k_captions2: two on 32 x 64): each 32 x 32 piece fed as MNIST
was made (``mnist_classifier.to_mnist``), features joined over the pieces, logits of
the joint label. FID in these features tells real canvases from broken ones."""
import numpy as np
import pytest

from jaxgen.data import mnist5k_derived as derived
from jaxgen.data.sources import mnist5k_arrays
from jaxgen.metrics import features, fid, inception_score, mnist_classifier


@pytest.fixture(scope="module")
def net():
  return features.get("mnist_classifier", batch_size=500)


def frechet(net, a, b_stats):
  return fid.frechet_distance(*fid.feature_statistics(
      net(a, progress=False)["features"]), *b_stats)


def sides(d):
  """The digit of each canvas's left and right half (mnist5k_captions2)."""
  first_left = d["centre_1"][:, 1] < d["centre_2"][:, 1]
  return (np.where(first_left, d["label"], d["label2"]),
          np.where(first_left, d["label2"], d["label"]))


@pytest.mark.parametrize("two_digits", [False, True])
def test_fid_of_real_canvases_is_small_and_of_broken_ones_large(net, two_digits):
  train = derived.caption_data("train", 0, two_digits)
  test = derived.caption_data("test", 0, two_digits)
  out = net(train["image"], progress=False)
  k = 2 if two_digits else 1
  assert out["features"].shape == (4500, k * mnist_classifier.FEATURE_DIM)
  assert out["logits"].shape == (4500, 10 ** k)
  ref = fid.feature_statistics(out["features"])
  real = frechet(net, test["image"], ref)
  # Test vs train: 21.6 (one digit), 72.2 (two: 256-d features, 500 samples); a
  # random 500 of train against train: 8.7 and 38.7. Broken sets measured 260 to 6,100.
  assert real < (90 if two_digits else 30), real
  x = test["image"]
  half = derived.CANVAS
  broken = {"mirrored": x[:, :, ::-1], "upside down": x[:, ::-1],
            "blank": np.zeros_like(x)}  # each at least 5x the real distance
  if two_digits:
    broken["right half blank"] = np.concatenate(
        [x[:, :, :half], np.zeros_like(x[:, :, half:])], 2)
    broken["one right half for all"] = np.concatenate(  # one side collapsed
        [x[:, :, :half], np.repeat(x[:1, :, half:], len(x), 0)], 2)
    left, right = sides(train)  # real canvases of the reference itself, modes dropped
    broken["digits 0-4 only"] = train["image"][(left < 5) & (right < 5)]
  else:
    broken["digits 0-4 only"] = x[test["label"] < 5]
  for name, images in broken.items():
    value = frechet(net, images, ref)
    assert value > 5 * real, (name, value, real)
  # Independent pairs: swapping the halves keeps the distribution, and FID with it.
  if two_digits:
    swapped = frechet(net, np.concatenate([x[:, :, half:], x[:, :, :half]], 2), ref)
    assert abs(swapped - real) < 0.2 * real, (swapped, real)
  # IS of the joint label: near 10 ** k when the digits are spread (the train split is
  # sorted by digit: shuffle before chunking).
  order = np.random.default_rng(0).permutation(4500)
  score, _ = inception_score.inception_score(out["logits"][order], 10)
  assert score > (70 if two_digits else 9), score


@pytest.mark.parametrize("two_digits", [False, True])
def test_the_classifier_reads_the_test_canvases_digits(net, two_digits):
  test = derived.caption_data("test", 0, two_digits)
  predicted = net(test["image"], progress=False)["logits"].argmax(-1)
  if not two_digits:
    assert np.mean(predicted == test["label"]) >= 0.95
    return
  left, right = sides(test)  # joint label: the left digit most significant
  assert np.mean(predicted // 10 == left) >= 0.95
  assert np.mean(predicted % 10 == right) >= 0.95
  assert np.mean(predicted == 10 * left + right) >= 0.93


def test_a_digit_placed_on_a_canvas_keeps_its_features(net):
  """MNIST digits drawn at their own scale on 32 x 32 canvases, one alone and two
  side by side: to_mnist undoes the placing up to resampling, so the canvas's
  features are the digits' own (joined) and its joint label theirs."""
  d = mnist5k_arrays("test")
  digits, labels = d["image"][::5], d["label"][::5]  # 100 digits, all classes
  com = derived.measure(digits)["centre"]
  placed = derived.place(digits[..., 0], np.ones(len(digits), np.float32), com + 2)
  own = net(digits, progress=False)
  one = net(placed[..., None], progress=False)
  a, b = one["features"], own["features"]
  cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
  assert cos.mean() > 0.95 and np.median(cos) > 0.97, np.sort(cos)[:5]
  assert np.mean(one["logits"].argmax(-1) == own["logits"].argmax(-1)) >= 0.98
  partner = np.roll(np.arange(len(digits)), 1)
  pair = np.concatenate([placed, placed[partner]], 2)
  two = net(pair[..., None], progress=False)
  np.testing.assert_allclose(two["features"], np.concatenate(
      [one["features"], one["features"][partner]], 1), rtol=1e-4, atol=1e-4)
  joint = two["logits"].argmax(-1)
  single = one["logits"].argmax(-1)
  np.testing.assert_array_equal(joint, 10 * single + single[partner])
  assert np.mean(joint == 10 * labels + labels[partner]) >= 0.95


def test_what_the_feature_network_takes(net):
  digits = mnist5k_arrays("test")["image"][:4]
  np.testing.assert_array_equal(mnist_classifier.prepare(digits),
                                mnist_classifier.check_digits(digits))
  canvas = derived.caption_data("test", 0, True)["image"][:3]
  as_float = mnist_classifier.prepare(canvas.astype(np.float32) / 255)
  np.testing.assert_array_equal(as_float, mnist_classifier.prepare(canvas))
  assert as_float.shape == (3, 2, 28, 28, 1)
  np.testing.assert_array_equal(as_float[:, 1], mnist_classifier.to_mnist(
      canvas[:, :, 32:])[0])
  assert net(canvas[:0], progress=False)["features"].shape == (0, 256)
  for shape in ((2, 32, 48, 1), (2, 32, 32, 3)):
    with pytest.raises(ValueError, match="grey canvases of k digits side by side"):
      mnist_classifier.prepare(np.zeros(shape, np.uint8))
  with pytest.raises(ValueError, match="must lie in"):
    mnist_classifier.prepare(np.full((1, 32, 32, 1), 2.0, np.float32))


def test_reference_statistics_are_cached_per_data_config(monkeypatch, tmp_path):
  """A cached reference must not serve another data config of the same dataset:
  more layouts (or another derived seed) are other images."""
  import ml_collections
  from jaxgen.evaluators import features as ev_features
  monkeypatch.setenv("JAXGEN_CACHE", str(tmp_path))
  calls = []
  real = ev_features.real_images

  def counted(cfg, split, *a, **k):
    calls.append((cfg.get("layouts"), cfg.get("derived_seed")))
    images, _ = real(cfg, split, *a, **k)
    return iter([next(images)[:20]]), 20

  monkeypatch.setattr(ev_features, "real_images", counted)
  net = features.get("mnist_classifier", batch_size=20)
  base = dict(name="mnist5k_captions", scale="unit", binarize="", dequantize=False,
              resize=(), random_flip=False, tfds_data_dir="", context_length=16,
              derived_seed=0, layouts=1)
  for changes in ({}, {}, {"layouts": 2}, {"derived_seed": 1}, {"workers": 2}):
    ev_features.reference(net, ml_collections.ConfigDict({**base, **changes}), "train")
  assert calls == [(1, 0), (2, 0), (1, 1)]  # a repeat and another loader: cache hits
