"""The digit_classes and class_coverage evaluators (jaxgen/evaluators/digit_classes.py):
real MNIST-5k test digits cover the ten classes, one repeated digit covers one; checked
against the digits' true labels, not against the classifier itself. class_coverage's
within-class diversity: closed forms, scipy's pdist, real digits against real digits
(about 1) and one image per class (0)."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scipy.spatial.distance import pdist

from conftest import load_config
from jaxgen import data, evaluators, sharding
from jaxgen.errors import ConfigError
from jaxgen.evaluators import digit_classes
from jaxgen.families.base import Trainer


@pytest.fixture(scope="module")
def test_digits():
  """MNIST-5k's 500 test digits (50 of each class) in [0, 1], and their labels."""
  cfg = load_config("gan_mnist", "tiny").data
  split = data.get_source(cfg, "test")[np.arange(500)]
  return split["image"].astype(np.float32) / 255, split["label"]


def _config(num=60, **eval_options):
  c = load_config("gan_mnist", "tiny")
  c.eval.update(metrics=("digit_classes",), num_samples=num, sample_batch_size=20,
                **eval_options)
  return c


def _evaluator(config=None):
  return digit_classes.DigitClasses(config or _config(), sharding.make_mesh(), {})


def _first(labels, k):
  return int(np.flatnonzero(labels == k)[0])


def test_registered_by_name():
  assert evaluators.EVALUATORS.get("digit_classes") is digit_classes.DigitClasses


def test_summary_closed_forms():
  four = digit_classes.summary([25, 25, 25, 25, 0, 0, 0, 0, 0, 0], min_share=0.05)
  assert four == {"digit_classes": 4, "digit_classes_effective": pytest.approx(4.0),
                  "digit_classes_max_share": 0.25, "digit_classes_smallest_share": 0.0,
                  "digit_classes_kl_uniform": pytest.approx(math.log(10 / 4)),
                  "digit_classes_counts": [25, 25, 25, 25, 0, 0, 0, 0, 0, 0]}
  even = digit_classes.summary([7] * 10, 0.05, prefix="class_coverage")
  assert even["class_coverage_effective"] == pytest.approx(10.0)
  assert even["class_coverage_smallest_share"] == even["class_coverage_max_share"] == 0.1
  assert even["class_coverage_kl_uniform"] == pytest.approx(0.0, abs=1e-12)
  # KL(p || uniform) = sum p log(10 p), computed directly.
  p = np.array([40, 20, 10, 10, 5, 5, 4, 3, 2, 1]) / 100
  got = digit_classes.summary((p * 100).astype(int), 0.05)
  assert got["digit_classes_kl_uniform"] == pytest.approx(np.sum(p * np.log(10 * p)))
  assert got["digit_classes_smallest_share"] == 0.01
  # Shares 0.9, 0.05, 0.05: the threshold counts a class at exactly 5%, not below.
  counts = [90, 5, 5, 0, 0, 0, 0, 0, 0, 0]
  assert digit_classes.summary(counts, 0.05)["digit_classes"] == 3
  assert digit_classes.summary(counts, 0.051)["digit_classes"] == 1
  entropy = -(0.9 * math.log(0.9) + 2 * 0.05 * math.log(0.05))
  assert digit_classes.summary(counts, 0.05)["digit_classes_effective"] == (
      pytest.approx(math.exp(entropy)))
  with pytest.raises(ValueError, match="10 digit classes"):
    digit_classes.summary([0] * 10, 0.05)
  with pytest.raises(ValueError, match="10 digit classes"):
    digit_classes.summary([1, 2, 3], 0.05)


def test_real_test_digits_cover_all_ten_classes(test_digits):
  images, labels = test_digits
  ev = _evaluator()
  for start in range(0, 500, 100):  # as the loop feeds it: batch by batch
    ev.update(images[start:start + 100], {})
  got = ev.result()
  counts = np.asarray(got["digit_classes_counts"])
  assert counts.sum() == 500 and np.bincount(labels).tolist() == [50] * 10
  # Independently of the classifier: the true labels are 50 a class, and each of the
  # classifier's misreadings (at most 3% of held-out digits, tests/test_score.py)
  # moves one count down and one up.
  assert np.abs(counts - 50).sum() <= 2 * 15
  assert got["digit_classes"] == 10
  assert got["digit_classes_effective"] > 9.9
  assert got["digit_classes_max_share"] <= (50 + 15) / 500
  assert got["digit_classes_min_share"] == 0.05
  assert got["digit_classes_net"] == "mnist-classifier"


def test_one_repeated_digit_is_one_class(test_digits):
  images, labels = test_digits
  i = _first(labels, 3)
  ev = _evaluator()
  ev.update(np.repeat(images[i:i + 1], 200, axis=0), {})
  got = ev.result()
  assert got["digit_classes"] == 1
  assert got["digit_classes_effective"] == pytest.approx(1.0)
  assert got["digit_classes_max_share"] == 1.0
  assert got["digit_classes_counts"][3] == 200  # the digit's true label


def test_a_few_digits_with_a_rare_one(test_digits):
  """100 copies of a 0, 90 of a 1 and 10 of a 7 (5%): three classes; one 7 fewer (4.5%),
  two."""
  images, labels = test_digits
  picks = {k: images[_first(labels, k)] for k in (0, 1, 7)}

  def result(sevens):
    ev = _evaluator()
    ev.update(np.stack([picks[0]] * 100 + [picks[1]] * 90 + [picks[7]] * sevens), {})
    return ev.result()

  got = result(10)
  assert got["digit_classes_counts"] == [100, 90, 0, 0, 0, 0, 0, 10, 0, 0]
  assert got["digit_classes"] == 3
  assert got["digit_classes_max_share"] == 0.5
  assert result(9)["digit_classes"] == 2


def test_other_shapes_are_a_clear_error():
  ev = _evaluator()
  for shape in ((4, 32, 64, 1), (4, 28, 28, 3)):  # two digits side by side; colour
    with pytest.raises(ValueError, match="28x28x1 digits.*config.eval.metrics"):
      ev.update(np.zeros(shape, np.float32), {})


def test_a_square_canvas_of_one_digit_is_read_as_that_digit(test_digits):
  """A 28x28 digit pasted into a 40x40 canvas is read as MNIST was made
  (mnist_classifier.prepare), as the digit itself is."""
  images, labels = test_digits
  picks = [_first(labels, k) for k in range(10)]
  canvases = np.zeros((10, 40, 40, 1), np.float32)
  canvases[:, 5:33, 9:37] = images[picks]
  ev = _evaluator()
  ev.update(canvases, {})
  assert ev.result()["digit_classes_counts"] == [1] * 10


class _TwoDigits(Trainer):
  """An unconditional 'generator': each batch, the first half one digit, the rest
  another."""

  def __init__(self, config, a, b):
    super().__init__(config, data.example_spec(config.data))
    self.a, self.b = a, b

  def generate(self, state, rng, num, inputs=None, frozen=None):
    half = num // 2
    return jnp.concatenate([jnp.broadcast_to(self.a, (half, *self.a.shape)),
                            jnp.broadcast_to(self.b, (num - half, *self.b.shape))])


def test_through_the_evaluation_loop_with_its_option(test_digits):
  images, labels = test_digits
  a, b = images[_first(labels, 4)], images[_first(labels, 9)]
  mesh = sharding.make_mesh()
  got = evaluators.compute(_TwoDigits(_config(num=60), a, b), None, _config(num=60),
                           mesh, jax.random.key(0))
  assert got["num_samples"] == 60
  assert got["digit_classes_counts"] == [0, 0, 0, 0, 30, 0, 0, 0, 0, 30]
  assert got["digit_classes"] == 2
  assert got["digit_classes_effective"] == pytest.approx(2.0)
  # config.eval.digit_classes_min_share: above a half, neither class counts.
  strict = _config(num=60, digit_classes_min_share=0.6)
  got = evaluators.compute(_TwoDigits(strict, a, b), None, strict, mesh,
                           jax.random.key(0))
  assert got["digit_classes"] == 0 and got["digit_classes_min_share"] == 0.6


# --- class_coverage ------------------------------------------------------------------
def _coverage(num=500):
  c = _config(num)
  c.eval.metrics = ("class_coverage",)
  return digit_classes.ClassCoverage(c, sharding.make_mesh(), {})


def test_class_diversity_against_scipy():
  rng = np.random.default_rng(0)
  feats = rng.standard_normal((60, 5))
  classes = np.repeat(np.arange(6), 10)
  classes[-1] = 9  # class 9: one point (no pair); classes 6-8: none
  got = digit_classes.class_diversity(feats, classes)
  for c in range(6):
    assert got[c] == pytest.approx(pdist(feats[classes == c]).mean(), rel=1e-12)
  assert got[6:] == [None] * 4


def test_real_test_digits_cover_ten_classes_as_varied_as_real_ones(test_digits):
  """MNIST-5k's test digits against its train digits (eval.reference_split): ten
  classes evenly, and within each, a spread close to the train digits' own."""
  images, labels = test_digits
  ev = _coverage()
  for start in range(0, 500, 100):
    ev.update(images[start:start + 100], {})
  got = ev.result()
  counts = np.asarray(got["class_coverage_counts"])
  assert np.abs(counts - 50).sum() <= 2 * 15  # as for digit_classes above
  assert got["class_coverage_effective"] > 9.9
  assert got["class_coverage_smallest_share"] >= (50 - 15) / 500
  assert got["class_coverage_kl_uniform"] < 0.01
  assert got["class_coverage_reference"] == "mnist5k/train (4500 images)"
  assert got["class_coverage_net"] == "mnist-classifier"
  samples, real = got["class_coverage_diversity_samples"], got["class_coverage_diversity_real"]
  assert len(samples) == len(real) == 10 and all(r > 0 for r in real)
  ratios = np.array(samples) / np.array(real)
  assert np.all(np.abs(ratios - 1) < 0.25)
  assert got["class_coverage_diversity"] == pytest.approx(ratios.mean())
  assert abs(got["class_coverage_diversity"] - 1) < 0.1


def test_one_image_per_class_covers_ten_classes_without_diversity(test_digits):
  """Each digit class drawn evenly, but always the same image: ten effective classes,
  and a within-class diversity of exactly 0."""
  images, labels = test_digits
  ev = _coverage(200)
  ev.update(np.repeat(images[[_first(labels, k) for k in range(10)]], 20, axis=0), {})
  got = ev.result()
  assert got["class_coverage_counts"] == [20] * 10
  assert got["class_coverage_effective"] == pytest.approx(10.0)
  # 0 up to the rounding of distances by the norm expansion (features ~30 apart)
  assert got["class_coverage_diversity"] == pytest.approx(0.0, abs=1e-6)
  assert got["class_coverage_diversity_samples"] == [pytest.approx(0.0, abs=1e-4)] * 10


def test_class_coverage_through_the_evaluation_loop_and_its_errors(test_digits):
  images, labels = test_digits
  a, b = images[_first(labels, 4)], images[_first(labels, 9)]
  c = _config(num=60)
  c.eval.metrics = ("class_coverage",)
  got = evaluators.compute(_TwoDigits(c, a, b), None, c, sharding.make_mesh(),
                           jax.random.key(0))
  assert got["class_coverage_counts"] == [0, 0, 0, 0, 30, 0, 0, 0, 0, 30]
  assert got["class_coverage"] == 2
  assert got["class_coverage_smallest_share"] == 0.0
  assert got["class_coverage_kl_uniform"] == pytest.approx(math.log(5))
  assert got["class_coverage_diversity_samples"][4] == pytest.approx(0.0, abs=1e-4)
  assert got["class_coverage_diversity_samples"][0] is None
  c.eval.num_samples = 10
  with pytest.raises(ConfigError, match="more than 10 samples.*num_samples"):
    evaluators.compute(_TwoDigits(c, a, b), None, c, sharding.make_mesh(),
                       jax.random.key(0))


def test_the_reference_caches_the_real_digits_classes(tmp_path, monkeypatch, test_digits):
  """class_coverage reads the real digits' classes from the features cache (FID's);
  a cache file written before it kept them is computed again."""
  from jaxgen.evaluators import features as feature_evaluators
  from jaxgen.metrics import features
  monkeypatch.setenv("JAXGEN_CACHE", str(tmp_path))
  cfg, net = load_config("gan_mnist", "tiny").data, features.get("mnist_classifier")
  first = feature_evaluators.reference(net, cfg, "test")
  images, _ = test_digits
  expected = net(images, progress=False)["logits"].argmax(-1)
  np.testing.assert_array_equal(first.classes, expected)
  np.testing.assert_array_equal(feature_evaluators.reference(net, cfg, "test").classes,
                                expected)  # from the file
  (path,) = (tmp_path / "stats").iterdir()
  with np.load(path) as f:
    old = {k: f[k] for k in f.files if k != "classes"}
  np.savez(path, **old)
  np.testing.assert_array_equal(feature_evaluators.reference(net, cfg, "test").classes,
                                expected)
