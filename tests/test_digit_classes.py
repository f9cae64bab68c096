"""The digit_classes evaluator (jaxgen/evaluators/digit_classes.py): real MNIST-5k test
digits cover the ten classes, one repeated digit covers one; checked against the
digits' true labels, not against the classifier itself."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from jaxgen import data, evaluators, sharding
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
                  "digit_classes_max_share": 0.25,
                  "digit_classes_counts": [25, 25, 25, 25, 0, 0, 0, 0, 0, 0]}
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
  for shape in ((4, 32, 32, 1), (4, 28, 28, 3)):
    with pytest.raises(ValueError, match="28x28x1 digits.*config.eval.metrics"):
      ev.update(np.zeros(shape, np.float32), {})


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
