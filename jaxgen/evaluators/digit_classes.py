"""digit_classes: which of the ten digits a generator draws, by the shipped MNIST
classifier's predicted class of each sample, so that a mode-collapsed generator (one
digit shape, or a few) is measured.

Reported (``config.eval.metrics = ("digit_classes",)``, any family whose samples are
28x28x1):
  digit_classes            the number of classes drawn: those with at least
                           ``eval.digit_classes_min_share`` of the samples;
  digit_classes_effective  exp(entropy) of the class histogram: 10 for a generator
                           that draws every digit equally often, 1 for one digit;
  digit_classes_max_share  the share of the most drawn class (0.1 at best, 1 for one);
  digit_classes_counts     the samples per class, 0 to 9.
The default threshold is half the share of a generator that draws the ten
digits evenly, as MNIST-5k's splits hold them: a digit drawn at half that rate or more
counts; the classifier's misreadings of a one-digit generator, spread over the nine
other classes, count only where one in twenty samples goes to the same wrong class.
With fewer than a few hundred samples, sampling noise alone can move an evenly drawn
class across it; ``digit_classes_effective`` and ``digit_classes_max_share`` need no
threshold.
"""
from __future__ import annotations

import numpy as np

from jaxgen.evaluators import Evaluator, option, register
from jaxgen.evaluators.features import feature_net

NUM_CLASSES = 10


def summary(counts, min_share: float) -> dict:
  """The numbers above for a class histogram ``counts`` (10 sample counts)."""
  counts = np.asarray(counts, np.int64)
  if counts.shape != (NUM_CLASSES,) or counts.sum() == 0:
    raise ValueError(f"need the sample counts of the {NUM_CLASSES} digit classes, at "
                     f"least one sample; got {counts.tolist()}")
  share = counts / counts.sum()
  nonzero = share[share > 0]
  return {"digit_classes": int(np.sum(share >= min_share)),
          "digit_classes_effective": float(np.exp(-np.sum(nonzero * np.log(nonzero)))),
          "digit_classes_max_share": float(share.max()),
          "digit_classes_counts": counts.tolist()}


def class_counts(logits) -> np.ndarray:
  """The histogram of the predicted classes (argmax) of classifier ``logits``."""
  return np.bincount(np.asarray(logits).argmax(-1), minlength=NUM_CLASSES)


@register("digit_classes")
class DigitClasses(Evaluator):
  """The shipped MNIST classifier's class histogram of the samples."""
  options = {"digit_classes_min_share": 0.05}  # a class's share to count as drawn

  def __init__(self, config, mesh, nets):
    super().__init__(config, mesh, nets)
    self.net = nets.setdefault("mnist_classifier",
                               feature_net(config, mesh, "mnist_classifier"))
    self.counts = np.zeros(NUM_CLASSES, np.int64)

  def update(self, samples, examples):
    if samples.shape[1:] != (28, 28, 1):
      raise ValueError(f"digit_classes classifies 28x28x1 digits with the shipped MNIST "
                       f"classifier; these samples are {samples.shape[1:]}. Remove it "
                       f"from config.eval.metrics.")
    self.counts += class_counts(self.net(samples, progress=False)["logits"])

  def result(self):
    min_share = option(self.config, "digit_classes_min_share")
    return {**summary(self.counts, min_share), "digit_classes_min_share": min_share,
            "digit_classes_net": self.net.name}
