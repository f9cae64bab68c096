"""caption_accuracy: does a sample show what the caption it was generated from says?

For ``mnist5k_captions`` / ``mnist5k_captions2`` (``jaxgen/data/mnist5k_derived.py``).
Each sample is measured with the measurement that wrote the captions
(``mnist5k_derived.measure``, named by the same train-set tertiles, slant threshold and
3 x 3 grid), and its digit is read by the shipped MNIST classifier. The ground truth is
the caption itself: the eval example's ``text`` tokens, decoded by the dataset's
tokenizer and parsed back by ``CAPTION_GRAMMAR`` into the attribute classes that the
caption's words name (a caption is a function of those classes, so parsing recovers
them exactly; ``parse`` refuses a caption outside the grammar).

Reported, per attribute (the share of samples whose measurement names the caption's
word; "medium" / "middle third" where the caption has no size or thickness word):
  one digit    caption_accuracy_{digit, size, thickness, slant, position, all};
  two digits   caption_accuracy_{digit_1, size_1, thickness_1, digit_2, size_2,
               thickness_2}: each named digit measured in the half of the canvas the
               relation puts it in (the data draws each digit in its own 32 x 32 half;
               "a 3 left of a 7": the 3 in the left half); ``digits``: the two halves
               hold the two named digits, on either side; ``order``: each on its named
               side (``digit_1`` and ``digit_2`` both right; ``digits - order`` is the
               share drawn swapped); ``all``: every attribute right.
The same numbers of the real images of ``eval.split`` (all of them, with their own
captions) are the ceiling, ``caption_accuracy_real_*``: the check that the measurement
reads real canvases right (exactly 1 for the measured attributes, the classifier's
accuracy for the digits).

The classifier sees each digit as MNIST was made (``mnist_classifier.to_mnist``): the
ink's bounding box (grey > ``mnist_classifier.INK``) scaled to fit a 20 x 20 box
(aspect kept), with its centre of mass at the centre of a 28 x 28 field; a two-digit
canvas gives one such digit per half. A canvas without ink has no digit (counted
wrong).
"""
from __future__ import annotations

import numpy as np

from jaxgen import data
from jaxgen.data import mnist5k_derived as derived
from jaxgen.evaluators import Evaluator, register
from jaxgen.evaluators.features import feature_net, real_images
from jaxgen.metrics.mnist_classifier import to_mnist

ONE = ("digit", "size", "thickness", "slant", "position")
TWO = ("digit_1", "size_1", "thickness_1", "digit_2", "size_2", "thickness_2",
       "digits", "order")


# --- measurements -> attribute classes ---------------------------------------------------
def measured(canvases, size_q, thick_q) -> dict:
  """The attribute classes of uint8 one-digit canvases (N, H, W[, 1]) by
  ``mnist5k_derived.measure``, as the captions name them (without the digit)."""
  m = derived.measure(canvases)
  return {"size": derived.level(m["height"], size_q),
          "thickness": derived.level(m["thickness"], thick_q),
          "slant": derived.slant_class(m["slant"]),
          "position": derived.position_class(m["centre"])}


class Scorer:
  """Right / wrong per attribute of uint8 canvases against their captions."""

  def __init__(self, classifier, two_digits: bool, size_q, thick_q):
    self.classifier, self.two_digits = classifier, two_digits
    self.size_q, self.thick_q = size_q, thick_q

  def digits(self, canvases):
    """The classifier's digit of each one-digit canvas; -1 where there is no ink."""
    x, has_ink = to_mnist(canvases)
    predicted = self.classifier(x, progress=False)["logits"].argmax(-1)
    return np.where(has_ink, predicted, -1)

  def __call__(self, canvases, captions) -> dict:
    truth = [derived.parse_caption(c, self.two_digits) for c in captions]
    want = {k: np.asarray([t[k] for t in truth]) for k in truth[0]}
    if not self.two_digits:
      got = {**measured(canvases, self.size_q, self.thick_q),
             "digit": self.digits(canvases)}
      right = {k: got[k] == want[k] for k in ONE}
    else:
      half = derived.CANVAS
      halves = (canvases[:, :, :half], canvases[:, :, half:])
      got = [{**measured(x, self.size_q, self.thick_q), "digit": self.digits(x)}
             for x in halves]  # left half, right half
      first_left = want["first_left"]
      right = {}
      for k, side in (("1", first_left), ("2", ~first_left)):
        for a in ("digit", "size", "thickness"):
          right[f"{a}_{k}"] = np.where(side, got[0][a], got[1][a]) == want[f"{a}_{k}"]
      pair = np.sort(np.stack([got[0]["digit"], got[1]["digit"]]), 0)
      named = np.sort(np.stack([want["digit_1"], want["digit_2"]]), 0)
      right["digits"] = (pair == named).all(0)
      right["order"] = right["digit_1"] & right["digit_2"]
    right["all"] = np.all(list(right.values()), 0)
    return right


@register("caption_accuracy")
class CaptionAccuracy(Evaluator):
  """Each attribute of the caption, re-measured on its sample; the real ceiling."""
  needs = ("text",)

  def __init__(self, config, mesh, nets):
    super().__init__(config, mesh, nets)
    dataset = data.get_dataset(config.data)
    if not isinstance(dataset, derived.MNIST5kCaptions):
      raise ValueError(f"caption_accuracy measures samples against their captions, and "
                       f"{config.data.name!r} has none: use mnist5k_captions or "
                       f"mnist5k_captions2, or drop it from config.eval.metrics.")
    self.shape = tuple(dataset.image_shape)
    self.tokenizer = dataset.tokenizer()
    train = derived.caption_data("train", derived.derived_seed(config.data),
                                 dataset.two_digits)
    self.net = nets.setdefault("mnist_classifier",
                               feature_net(config, mesh, "mnist_classifier"))
    self.score = Scorer(self.net, dataset.two_digits, train["size_tertiles"],
                        train["thickness_tertiles"])
    self.right = {}

  def canvases(self, images):
    """Float [0, 1] images of the dataset's canvas -> uint8, as the data's were."""
    if tuple(images.shape[1:]) != self.shape:
      raise ValueError(f"caption_accuracy measures {self.shape} canvases of "
                       f"{self.config.data.name!r}; these samples are "
                       f"{tuple(images.shape[1:])} (a resize in config.data?).")
    return np.round(np.clip(images, 0, 1) * 255).astype(np.uint8)

  def update(self, samples, examples):
    right = self.score(self.canvases(samples),
                       self.tokenizer.decode_batch(examples["text"]))
    for k, v in right.items():
      self.right.setdefault(k, []).append(v)

  def real(self) -> dict:
    """The same numbers for every real image of ``eval.split`` and its caption."""
    split = self.config.eval.split
    images, _ = real_images(self.config.data, split)
    right = self.score(self.canvases(np.concatenate(list(images))),
                       derived.captions(self.config.data, split))
    return {k: float(v.mean()) for k, v in right.items()}

  def result(self):
    out = {f"caption_accuracy_{k}": float(np.concatenate(v).mean())
           for k, v in self.right.items()}
    out.update({f"caption_accuracy_real_{k}": v for k, v in self.real().items()})
    return {**out, "caption_accuracy_net": self.net.name}
