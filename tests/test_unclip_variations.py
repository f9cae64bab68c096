"""The variations' numbers (jaxgen/evaluators/variations.py) on hand-made cases: the
arithmetic against distances worked out by hand, exact copies of the sources (no
diversity, the sources' own accuracy), real digits of the source's class standing in
for its variations (the real classes' diversity); and the tiny decoder run's
``family_metrics`` in its eval.json (the variations and the prior x decoder guidance
grid)."""
import json
import os

import numpy as np
import pytest
from conftest import load_config

from jaxgen.evaluators import features as features_lib
from jaxgen.evaluators import variations as V


class TableNet:
  """A stand-in classifier: image i (its pixel [0, 0] holds i / 100) has the features
  and logits of row i of the tables."""
  name = "table"

  def __init__(self, features, logits):
    self.features, self.logits = np.asarray(features, float), np.asarray(logits, float)

  def __call__(self, images, progress=False):
    i = np.round(np.asarray(images)[:, 0, 0, 0] * 100).astype(int)
    return {"features": self.features[i], "logits": self.logits[i]}


def digits(ids):
  x = np.zeros((len(ids), 28, 28, 1), np.float32)
  x[:, 0, 0, 0] = np.asarray(ids) / 100
  return x


def one_hot(classes):
  return np.eye(10)[classes]


def test_the_arithmetic_against_distances_worked_by_hand():
  # source 0 (a 3): variations at (0, 0), (3, 0), (0, 4), pairwise 3, 4, 5 -> 4;
  # source 1 (a 7): three variations at (1, 1) -> 0. Sources at (0, 0) and (1, 2).
  feats = [[0, 0], [3, 0], [0, 4], [1, 1], [1, 1], [1, 1], [0, 0], [1, 2]]
  reads = [3, 3, 5, 7, 7, 7, 3, 1]  # one variation of the 3 read as a 5; source 1 as a 1
  net = TableNet(feats, one_hot(reads))
  scores = V.VariationScores(net)
  variations = digits(range(6)).reshape(2, 3, 28, 28, 1)
  scores.update(variations, digits([6, 7]), np.array([3, 7]))
  real = [None, None, None, 8.0, None, None, None, 2.0, None, None]
  out = scores.result(real)
  assert out["variations_accuracy"] == pytest.approx(5 / 6)
  assert out["variations_source_accuracy"] == pytest.approx(1 / 2)
  assert out["variations_diversity"] == pytest.approx((4 + 0) / 2)
  assert out["variations_diversity_real"] == pytest.approx((8 + 2) / 2)
  assert out["variations_diversity_ratio"] == pytest.approx(2 / 5)
  # to the source: 0, 3, 4 for the first; |(1, 1) - (1, 2)| = 1 three times
  assert out["variations_source_distance"] == pytest.approx((0 + 3 + 4 + 3) / 6)
  assert (out["variations_seeds"], out["variations_sources"]) == (3, 2)
  # a class without a real reference, and a single variation, are refused
  with pytest.raises(ValueError, match=r"No real reference for the class\(es\) \[3\]"):
    scores.result(real[:3] + [None] + real[4:])
  with pytest.raises(ValueError, match="K >= 2"):
    scores.update(variations[:, :1], digits([6, 7]), np.array([3, 7]))


@pytest.fixture(scope="module")
def real_digits():
  """The MNIST classifier, mnist5k_captions' test canvases in [0, 1], their labels, and
  the per-class real diversity."""
  config = load_config("unclip_mnist", "tiny")
  net = features_lib.feature_net(config, None, "mnist_classifier")
  images, _ = features_lib.real_images(config.data, "test")
  labels, _ = features_lib.real_images(config.data, "test", key="label")
  real = V.real_class_diversity(net, config.data, "test")
  return net, np.concatenate(list(images)), np.concatenate(list(labels)), real


def test_copies_of_the_sources_have_no_diversity_and_the_sources_accuracy(real_digits):
  net, images, labels, real = real_digits
  sources, y = images[:40], labels[:40]
  scores = V.VariationScores(net)
  scores.update(np.repeat(sources[:, None], 3, 1), sources, y)
  out = scores.result(real)
  assert out["variations_diversity"] == pytest.approx(0.0, abs=1e-5)
  assert out["variations_source_distance"] == pytest.approx(0.0, abs=1e-5)
  assert out["variations_accuracy"] == out["variations_source_accuracy"]
  read = net(sources, progress=False)["logits"].argmax(-1)
  assert out["variations_source_accuracy"] == pytest.approx(np.mean(read == y))
  assert out["variations_source_accuracy"] > 0.8  # the classifier reads the canvases


def test_real_digits_of_the_class_give_the_real_diversity(real_digits):
  """Each source's "variations" are 4 other real test digits of its class: their
  pairwise distance estimates the class' mean pairwise distance."""
  net, images, labels, real = real_digits
  rng = np.random.default_rng(0)
  sources = np.arange(100)
  stand_ins = np.stack([rng.choice(np.flatnonzero((labels == labels[i])
                                                  & (np.arange(len(labels)) != i)), 4,
                                   replace=False) for i in sources])
  scores = V.VariationScores(net)
  scores.update(images[stand_ins], images[sources], labels[sources])
  out = scores.result(real)
  assert out["variations_diversity_ratio"] == pytest.approx(1.0, abs=0.1)
  # a real digit lies as far from another of its class as two others do
  assert out["variations_source_distance"] == pytest.approx(
      out["variations_diversity_real"], rel=0.1)
  # the accuracy is the classifier's on those stand-ins
  read = net(images[stand_ins.ravel()], progress=False)["logits"].argmax(-1)
  assert out["variations_accuracy"] == pytest.approx(
      np.mean(read == np.repeat(labels[sources], 4)))


def test_the_tiny_decoder_runs_variations_and_prior_grid(tiny_runs):
  """eval.json of the tiny pipeline (a decoder run with prior and upsampler stages):
  the trainer's ``family_metrics`` beside compute's."""
  with open(os.path.join(tiny_runs("unclip_mnist"), "eval.json")) as f:
    out = json.load(f)
  assert (out["variations_sources"], out["variations_seeds"]) == (4, 2)
  for k in ("variations_accuracy", "variations_source_accuracy"):
    assert 0 <= out[k] <= 1
  assert out["variations_source_accuracy"] == 1.0  # 4 real test digits, read right
  assert out["variations_diversity"] >= 0 and out["variations_diversity_real"] > 0
  assert out["variations_guidance_scale"] == 8.0
  # the prior grid: compute's row is prior 4 (unsuffixed); prior 1 is added
  assert out["prior_guidance_scales"] == [1.0, 4.0]
  for s in (1, 3):
    assert 0 <= out[f"caption_accuracy_digit_guidance_{s}_prior_1"] <= 1
    assert np.isfinite(out[f"fid_guidance_{s}_prior_1"])
  assert not any(k.endswith("_prior_4") for k in out)
