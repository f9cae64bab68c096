"""caption_accuracy against hand-made cases: real canvases read as captioned (the
ceiling), shuffled captions near chance, the canvas fed to the MNIST classifier as
MNIST was made, and its errors."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from jaxgen import data, evaluators, sharding
from jaxgen.data import mnist5k_derived as derived
from jaxgen.evaluators import caption_accuracy
from jaxgen.families.base import Trainer
from jaxgen.metrics import features


class RealOfCaption(Trainer):
  """A 'generator' that draws, for caption tokens, the real test image of that
  caption's example (the first with those tokens), or of the example ``shuffle``
  sends it to."""

  def __init__(self, config, shuffle=None):
    super().__init__(config, data.example_spec(config.data))
    test = data.get_source(config.data, "test")
    test = test[np.arange(len(test))]
    self.tokens = jnp.asarray(test["text"])
    images = test["image"].astype(np.float32) / 255
    self.images = jnp.asarray(images if shuffle is None else images[shuffle])

  @property
  def conditioning_keys(self):
    return ("text",)

  def generate(self, state, rng, num, inputs=None, frozen=None):
    same = (inputs["text"][:, None] == self.tokens[None]).all(-1)
    return self.images[same.argmax(1)]


def captions_config(metrics, two_digits=False, num=200):
  c = load_config("cgan_mnist", "tiny")
  c.data.update(name="mnist5k_captions2" if two_digits else "mnist5k_captions",
                random_flip=False, scale="unit")
  c.eval.update(metrics=metrics, num_samples=num, sample_batch_size=50, split="test")
  return c


def chance(classes) -> float:
  """Agreement of two independent draws from the classes' frequencies."""
  p = np.unique(classes, return_counts=True)[1] / len(classes)
  return float((p ** 2).sum())


@pytest.mark.parametrize("two_digits", [False, True])
def test_real_images_read_as_captioned_and_shuffled_captions_near_chance(two_digits):
  c, mesh = captions_config(("caption_accuracy",), two_digits), sharding.make_mesh()
  got = evaluators.compute(RealOfCaption(c), None, c, mesh, jax.random.key(0))
  attributes = (("size_1", "thickness_1", "size_2", "thickness_2") if two_digits
                else ("size", "thickness", "slant", "position"))
  digits = ("digit_1", "digit_2", "digits", "order") if two_digits else ("digit",)
  for a in attributes:  # the measurement that wrote the captions reads them back
    assert got[f"caption_accuracy_{a}"] == 1.0
    assert got[f"caption_accuracy_real_{a}"] == 1.0
  for a in digits:  # the classifier's accuracy on digits fed as MNIST was made
    least = 0.9 if a in ("digits", "order") else 0.94  # two digits: about its square
    assert got[f"caption_accuracy_{a}"] >= least
    assert got[f"caption_accuracy_real_{a}"] >= least
  assert got["caption_accuracy_all"] == min(got[f"caption_accuracy_{a}"] for a in digits)
  assert got["caption_accuracy_net"] == "mnist-classifier"

  # Each sample the real image of another example: attributes agree by chance.
  shuffle = np.random.default_rng(0).permutation(500)
  bad = evaluators.compute(RealOfCaption(c, shuffle), None, c, mesh, jax.random.key(0))
  truth = [derived.parse_caption(t, two_digits)
           for t in derived.captions(c.data, "test")]
  for a in (*attributes, "digit_1" if two_digits else "digit"):
    expected = chance([t[a] for t in truth])
    assert abs(bad[f"caption_accuracy_{a}"] - expected) < 0.12, a
  assert bad["caption_accuracy_all"] < 0.03
  if two_digits:
    assert bad["caption_accuracy_order"] < 0.05
  # The ceiling is of the real split, whatever was generated.
  assert {k: v for k, v in bad.items() if "_real_" in k} == {
      k: v for k, v in got.items() if "_real_" in k}


def test_captions_parse_to_the_attributes_they_were_written_from():
  for two in (False, True):
    d = derived.caption_data("test", 0, two)
    size_q, thick_q = d["size_tertiles"], d["thickness_tertiles"]
    level = lambda v, q: 0 if v <= q[0] else 2 if v > q[1] else 1
    for i in range(0, 500, 7):
      t = derived.parse_caption(str(d["caption"][i]), two)
      if two:
        assert (t["digit_1"], t["digit_2"]) == (d["label"][i], d["label2"][i])
        assert t["size_2"] == level(d["height_2"][i], size_q)
        assert t["thickness_1"] == level(d["thickness_1"][i], thick_q)
        assert t["first_left"] == (d["centre_1"][i, 1] < d["centre_2"][i, 1])
      else:
        assert t["digit"] == d["label"][i]
        assert t["size"] == level(d["height"][i], size_q)
        assert t["thickness"] == level(d["thickness"][i], thick_q)
        row, col = np.clip((d["centre"][i] * 3 // 32).astype(int), 0, 2)
        assert t["position"] == row * 3 + col
  assert derived.parse_caption("an 8 slanted left at the top", False) == {
      "digit": 8, "size": 1, "thickness": 1, "slant": 0, "position": 1}
  assert derived.parse_caption("a thick 3 right of a small 7", True)["first_left"] is \
      False
  for bad in ("a 3 upright", "a 3 sideways in the centre", "a huge 3 upright at the top",
              "a 3 upright at the top now"):
    with pytest.raises(ValueError, match="cannot read"):
      derived.parse_caption(bad, False)


def test_canvases_reach_the_classifier_as_mnist_digits():
  """A 10 x 5 block anywhere on a 32 x 32 canvas becomes a 20 x 10 block with its
  centre at the 28 x 28 field's centre; an MNIST digit put on a canvas at its own
  scale comes back nearly as it was; an empty canvas has no digit."""
  canvas = np.zeros((2, 32, 32, 1), np.uint8)
  canvas[0, 3:13, 20:25] = 255
  x, ink = caption_accuracy.to_mnist(canvas)
  assert x.shape == (2, 28, 28, 1) and ink.tolist() == [True, False]
  block = x[0, ..., 0] > 0.5
  assert block.any(1).sum() == 20 and block.any(0).sum() == 10
  r, c = np.nonzero(block)
  assert abs(r.mean() - 13.5) < 0.6 and abs(c.mean() - 13.5) < 0.6
  assert x[1].max() == 0
  digits = data.get_source(load_config("cgan_mnist", "tiny").data, "test")[
      np.arange(0, 500, 50)]["image"]
  com = derived.measure(digits)["centre"]
  placed = derived.place(digits[..., 0], np.ones(10, np.float32), com + 2)
  back, _ = caption_accuracy.to_mnist(placed)
  a, b = back.reshape(10, -1), digits.reshape(10, -1) / 255
  a, b = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
  corr = (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))
  assert corr.mean() > 0.85 and corr.min() > 0.7, corr  # resampled: blurred, rescaled
  net = features.get("mnist_classifier")
  np.testing.assert_array_equal(net(back, progress=False)["logits"].argmax(-1),
                                net(digits, progress=False)["logits"].argmax(-1))


def test_caption_accuracy_errors_are_clear():
  c, mesh = captions_config(("caption_accuracy",)), sharding.make_mesh()
  c.data.name = "mnist5k"
  with pytest.raises(ValueError, match="caption_accuracy measures samples against their "
                                       "captions, and 'mnist5k' has none"):
    evaluators.compute(RealOfCaption(captions_config(())), None, c, mesh,
                       jax.random.key(0))
  c = captions_config(("caption_accuracy",), num=50)
  trainer = RealOfCaption(c)
  trainer.generate = lambda state, rng, num, inputs=None, frozen=None: jnp.zeros(
      (num, 28, 28, 1))
  with pytest.raises(ValueError, match=r"measures \(32, 32, 1\) canvases"):
    evaluators.compute(trainer, None, c, mesh, jax.random.key(0))
