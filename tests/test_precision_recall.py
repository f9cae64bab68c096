"""Improved precision and recall (jaxgen/metrics/precision_recall.py and the
precision_recall evaluator): hand-computed cases, the authors' code and clovaai's prdc
on the same features (tests/fixtures/make_precision_recall_fixture.py), and real
digits in the MNIST classifier's features."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from jaxgen import data, evaluators, sharding
from jaxgen.errors import ConfigError
from jaxgen.families.base import Trainer
from jaxgen.metrics import features
from jaxgen.metrics import precision_recall as pr

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures",
                       "precision_recall_parity.npz")


def test_hand_computed_balls():
  # 1-D, k = 1. Real 0, 1, 3: radii 1, 1, 2. Fake 0.5 (in the ball of 0), 2.5 (of 3),
  # 6 (3 away from 3, outside every ball): precision 2/3. Fake radii 2, 2, 3.5 cover
  # every real point: recall 1.
  real, fake = np.array([[0.0], [1.0], [3.0]]), np.array([[0.5], [2.5], [6.0]])
  np.testing.assert_array_equal(pr.knn_radii(real, 1), [1, 1, 2])
  np.testing.assert_array_equal(pr.knn_radii(fake, 1), [2, 2, 3.5])
  assert pr.precision_recall(real, fake, k=1) == (pytest.approx(2 / 3), 1.0)
  # A point on a ball's surface is inside (the authors' <=): 4 is 2 from 2, radius 2
  # (strict < would give 1/2).
  assert pr.precision_recall([[0.0], [2.0]], [[4.0], [1.0]], k=1)[0] == 1.0
  # k-th neighbour, not the k-th point: radii of 0, 1, 3, 7 with k = 2.
  np.testing.assert_array_equal(pr.knn_radii([[0.0], [1.0], [3.0], [7.0]], 2),
                                [3, 2, 3, 6])
  assert pr.mean_pairwise_distance([[0.0, 0.0], [3.0, 4.0], [0.0, 8.0]]) == (
      pytest.approx((5 + 8 + 5) / 3))


def test_identical_sets_give_one_and_one():
  x = np.random.default_rng(0).standard_normal((300, 16))
  assert pr.precision_recall(x, x.copy()) == (1.0, 1.0)


@pytest.mark.parametrize("case,k", [("shifted", 3), ("shifted", 5), ("modes", 3)])
def test_against_the_authors_code_and_prdc(case, k):
  with np.load(FIXTURE) as f:
    real, fake = f[f"{case}_real"], f[f"{case}_fake"]
    ref = {key[len(f"{case}_k{k}_"):]: f[key] for key in f.files
           if key.startswith(f"{case}_k{k}_")}
  np.testing.assert_allclose(pr.knn_radii(real, k), ref["prdc_real_radii"], rtol=1e-6)
  np.testing.assert_allclose(pr.knn_radii(fake, k), ref["prdc_fake_radii"], rtol=1e-6)
  precision, recall = pr.precision_recall(real, fake, k)
  for impl in ("authors", "prdc"):  # no ties: the two references agree
    assert precision == pytest.approx(float(ref[f"{impl}_precision"]), abs=1e-6)
    assert recall == pytest.approx(float(ref[f"{impl}_recall"]), abs=1e-6)
  assert 0.05 < min(precision, recall) and max(precision, recall) < 0.95


def test_duplicated_points_count_as_the_authors_code_counts_them():
  """A set against itself where 10 points appear 4 times: their k = 3 radius is 0, and
  a point at distance 0 is inside (<=, the authors'); prdc's strict < leaves it out."""
  with np.load(FIXTURE) as f:
    real, fake = f["ties_real"], f["ties_fake"]
    authors = (float(f["ties_k3_authors_precision"]), float(f["ties_k3_authors_recall"]))
    prdc = (float(f["ties_k3_prdc_precision"]), float(f["ties_k3_prdc_recall"]))
  assert pr.precision_recall(real, fake, 3) == authors == (1.0, 1.0)
  assert prdc[0] < 0.5  # the references differ here: the fixture shows where


def test_bad_inputs_are_clear_errors():
  with pytest.raises(ValueError, match="differ in width"):
    pr.precision_recall(np.zeros((5, 3)), np.zeros((5, 4)))
  with pytest.raises(ValueError, match="at least 4 feature vectors"):
    pr.knn_radii(np.zeros((3, 2)), 3)
  with pytest.raises(ValueError, match=r"\(N, d\) array"):
    pr.precision_recall(np.zeros(5), np.zeros((5, 1)))


@pytest.fixture(scope="module")
def digit_features():
  """The MNIST classifier's features of MNIST-5k's train digits, and their labels."""
  cfg = load_config("gan_mnist", "tiny").data
  split = data.get_source(cfg, "train")[np.arange(4500)]
  net = features.get("mnist_classifier", batch_size=500)
  return net(split["image"].astype(np.float32) / 255, progress=False)["features"], \
      split["label"]


def test_one_digit_against_ten_has_high_precision_and_low_recall(digit_features):
  feats, labels = digit_features
  rng = np.random.default_rng(0)
  threes = feats[labels == 3]
  n = len(threes)
  all_digits = feats[rng.permutation(len(feats))[:n]]
  others = feats[rng.permutation(len(feats))[n:2 * n]]
  precision, recall = pr.precision_recall(all_digits, threes)
  assert precision > 0.8 and recall < 0.35
  # Real digits of all ten classes against other real digits: high both.
  precision, recall = pr.precision_recall(all_digits, others)
  assert precision > 0.7 and recall > 0.7


class _Fixed(Trainer):
  """An unconditional 'generator' that draws rows of a table of images in turn."""

  def __init__(self, config, table):
    super().__init__(config, data.example_spec(config.data))
    self.table = jnp.asarray(table)

  def generate(self, state, rng, num, inputs=None, frozen=None):
    return self.table[:num]


def _config(num, **options):
  c = load_config("gan_mnist", "tiny")
  c.eval.update(metrics=("fid", "precision_recall"), num_samples=num,
                sample_batch_size=num, **options)
  return c


def test_the_evaluator_compares_equal_numbers_of_each(digit_features):
  """200 test digits as samples against the 4,500 train digits: the evaluator draws
  200 of the train digits (seed 0) and gives the metric of those, in the features FID
  uses. (The split is sorted by class: 200 drawn from all of it.)"""
  pick = np.sort(np.random.default_rng(1).permutation(500)[:200])
  test = data.get_source(load_config("gan_mnist", "tiny").data, "test")[pick]
  images = test["image"].astype(np.float32) / 255
  c = _config(200)
  got = evaluators.compute(_Fixed(c, images), None, c, sharding.make_mesh(),
                           jax.random.key(0))
  feats, _ = digit_features
  net = features.get("mnist_classifier", batch_size=200)
  fake = net(images, progress=False)["features"]
  real = feats[np.sort(np.random.default_rng(0).permutation(4500)[:200])]
  assert (got["precision"], got["recall"]) == pytest.approx(
      pr.precision_recall(real, fake, 3), abs=1e-6)
  assert got["precision_recall_k"] == 3 and got["precision_recall_num"] == 200
  assert got["feature_net"] == "mnist-classifier"
  assert got["reference"] == "mnist5k/train (4500 images)"
  assert got["precision"] > 0.6 and got["recall"] > 0.6  # real digits


def test_bad_options_are_config_errors():
  mesh = sharding.make_mesh()
  for options, match in (({"precision_recall_k": 0}, "positive whole number"),
                         ({"precision_recall_k": 2.5}, "positive whole number"),
                         ({"num_samples": 3}, "more than 3 samples")):
    c = _config(options.pop("num_samples", 100), **options)
    with pytest.raises(ConfigError, match=match):
      evaluators.compute(_Fixed(c, np.zeros((100, 28, 28, 1))), None, c, mesh,
                         jax.random.key(0))
