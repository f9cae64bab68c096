"""digit_classes and class_coverage: which of the ten digits a generator draws, by the
shipped MNIST classifier's predicted class of each sample, so that a mode-collapsed
generator (one digit shape, or a few) is measured.

Reported (``config.eval.metrics = ("digit_classes",)``, any family whose samples are
28x28x1 digits, or square grey canvases of one digit):
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
threshold. Also: ``digit_classes_smallest_share`` (0 where a digit is never drawn, 0.1
at best) and ``digit_classes_kl_uniform``, KL(histogram || uniform) in nats (0 at
best, log 10 for one digit; log 10 - log of the effective number).

``class_coverage`` (the coverage evaluator of the unconditional digit models' defaults)
reports the same numbers of the same histogram as ``class_coverage_*``, and beside
them the diversity within each class, so that a generator that draws all ten digits
but one shape of each is measured too:
  class_coverage_diversity_samples  for each class, the mean distance between two
                           samples that the classifier puts in it, in the classifier's
                           128 features (null where it has fewer than 2 samples);
  class_coverage_diversity_real     the same of the real digits of
                           ``eval.reference_split`` (classified the same way: the
                           real images' ceiling, computed once and cached with their
                           features, as FID's);
  class_coverage_diversity the mean over the classes with 2 samples or more of their
                           ratio: about 1 for samples as varied as real digits, 0 for
                           one image repeated per class.
It is part of ``class_coverage`` rather than an evaluator of its own because it is
read from the same classifier pass (its labels group the samples, its features
measure them), and a class's diversity means little without the histogram that says
how many samples it was measured on.
"""
from __future__ import annotations

import numpy as np

from jaxgen.errors import ConfigError
from jaxgen.evaluators import Evaluator, option, register
from jaxgen.evaluators.features import feature_net, split_reference
from jaxgen.metrics.precision_recall import mean_pairwise_distance

NUM_CLASSES = 10


def summary(counts, min_share: float, prefix: str = "digit_classes") -> dict:
  """The numbers above for a class histogram ``counts`` (10 sample counts), named
  ``prefix`` and ``prefix_*``."""
  counts = np.asarray(counts, np.int64)
  if counts.shape != (NUM_CLASSES,) or counts.sum() == 0:
    raise ValueError(f"need the sample counts of the {NUM_CLASSES} digit classes, at "
                     f"least one sample; got {counts.tolist()}")
  share = counts / counts.sum()
  nonzero = share[share > 0]
  entropy = float(-np.sum(nonzero * np.log(nonzero)))
  return {prefix: int(np.sum(share >= min_share)),
          f"{prefix}_effective": float(np.exp(entropy)),
          f"{prefix}_max_share": float(share.max()),
          f"{prefix}_smallest_share": float(share.min()),
          f"{prefix}_kl_uniform": max(float(np.log(NUM_CLASSES)) - entropy, 0.0),
          f"{prefix}_counts": counts.tolist()}


def class_counts(logits) -> np.ndarray:
  """The histogram of the predicted classes (argmax) of classifier ``logits``."""
  return np.bincount(np.asarray(logits).argmax(-1), minlength=NUM_CLASSES)


def digit_outputs(net, images, metric: str) -> dict:
  """The shipped MNIST classifier's ``features`` and 10 ``logits`` of each image: 28 x
  28 grey digits, or square grey canvases of one digit (``mnist_classifier.prepare``
  draws each as MNIST was made). Other images are a ValueError that names ``metric``."""
  shape = tuple(images.shape[1:])
  if shape != (28, 28, 1) and not (len(shape) == 3 and shape[0] == shape[1]
                                   and shape[2] == 1):
    raise ValueError(f"{metric} classifies 28x28x1 digits (or square grey canvases of "
                     f"one digit) with the shipped MNIST classifier; these samples are "
                     f"{shape}. Remove it from config.eval.metrics.")
  return net(images, progress=False)


@register("digit_classes")
class DigitClasses(Evaluator):
  """The shipped MNIST classifier's class histogram of the samples."""
  options = {"digit_classes_min_share": 0.05}  # a class's share to count as drawn
  name = "digit_classes"

  def __init__(self, config, mesh, nets):
    super().__init__(config, mesh, nets)
    self.net = nets.setdefault("mnist_classifier",
                               feature_net(config, mesh, "mnist_classifier"))
    self.counts = np.zeros(NUM_CLASSES, np.int64)

  def update(self, samples, examples):
    self.counts += class_counts(digit_outputs(self.net, samples, self.name)["logits"])

  def result(self):
    min_share = option(self.config, "digit_classes_min_share")
    return {**summary(self.counts, min_share, self.name),
            "digit_classes_min_share": min_share, f"{self.name}_net": self.net.name}


def class_diversity(features, classes) -> list:
  """For each of the 10 classes, the mean pairwise distance of the ``features`` whose
  ``classes`` entry is that class; None where fewer than 2 are."""
  features, classes = np.asarray(features), np.asarray(classes)
  return [mean_pairwise_distance(features[classes == c])
          if np.sum(classes == c) >= 2 else None for c in range(NUM_CLASSES)]


@register("class_coverage")
class ClassCoverage(DigitClasses):
  """``digit_classes``' histogram numbers as ``class_coverage_*``, and the diversity
  within each class against the real digits'."""
  name = "class_coverage"

  def __init__(self, config, mesh, nets):
    super().__init__(config, mesh, nets)
    if config.eval.num_samples <= NUM_CLASSES:
      raise ConfigError(f"class_coverage needs more than {NUM_CLASSES} samples, so that "
                        f"some class has two; config.eval.num_samples is "
                        f"{config.eval.num_samples}: raise it (1,000 for numbers that "
                        f"sampling noise moves little).")
    self.features, self.classes = [], []

  def update(self, samples, examples):
    out = digit_outputs(self.net, samples, self.name)
    self.counts += class_counts(out["logits"])
    self.features.append(out["features"])
    self.classes.append(out["logits"].argmax(-1))

  def result(self):
    ref, info = split_reference(self.config, self.net)
    samples = class_diversity(np.concatenate(self.features),
                              np.concatenate(self.classes))
    real = class_diversity(ref.features, ref.classes)
    ratios = [s / r for s, r in zip(samples, real) if s is not None and r]
    return {**super().result(),
            "class_coverage_diversity": float(np.mean(ratios)) if ratios else None,
            "class_coverage_diversity_samples": samples,
            "class_coverage_diversity_real": real,
            "class_coverage_reference": info["reference"]}
