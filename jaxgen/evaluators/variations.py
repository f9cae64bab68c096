"""Image variations read by the shipped MNIST classifier (unCLIP's variations: one
source image's CLIP embedding decoded with several seeds). ``VariationScores``
accumulates batches of (variations (S, K, H, W, C) in [0, 1], their sources (S, H, W,
C) in [0, 1], the sources' labels (S,)) and gives:

  variations_accuracy         the share of variations that the classifier reads as
                              their source's label: the digit must survive;
  variations_source_accuracy  the classifier's accuracy on the sources themselves, the
                              ceiling of the above (exact copies score it);
  variations_diversity        the mean pairwise distance in the classifier's features
                              among the K variations of one source, averaged over the
                              sources (0 for copies);
  variations_diversity_real   the same mean pairwise distance among the real digits of
                              the source's class (of ``eval.split``, by their labels),
                              averaged over the sources: the spread of a class, the
                              reference beside which ``variations_diversity`` is read;
  variations_diversity_ratio  their ratio;
  variations_source_distance  the mean distance in the same features between a
                              variation and its source (two real digits of one class
                              lie ``variations_diversity_real`` apart, on average);
  variations_seeds, variations_sources  K and the number of sources.

The features are the classifier's penultimate layer, of each digit as MNIST was made
(``mnist_classifier.prepare``: a canvas' digit is cropped to its ink, scaled and
centred), so position and size on the canvas do not count; shape does.

This is not a registered evaluator: those score one sample per eval example
(``evaluators.compute``), and a variation's diversity needs several decodings of the
same source. A family that makes variations (``families/unclip``) draws them and feeds
this scorer.
"""
from __future__ import annotations

import numpy as np

from jaxgen.evaluators import features as features_lib
from jaxgen.evaluators.digit_classes import NUM_CLASSES, class_diversity, digit_outputs
from jaxgen.metrics.precision_recall import mean_pairwise_distance

NAME = "variations"


def real_class_diversity(net, data_config, split: str) -> list:
  """For each of the 10 classes, the mean pairwise feature distance of the real
  digits of ``split`` labelled with it (None where fewer than 2)."""
  images, _ = features_lib.real_images(data_config, split)
  labels, _ = features_lib.real_images(data_config, split, key="label")
  out = digit_outputs(net, np.concatenate(list(images)), NAME)
  return class_diversity(out["features"], np.concatenate(list(labels)))


class VariationScores:
  """The numbers above, accumulated over batches; ``net`` is the MNIST classifier (a
  ``metrics.features.FeatureNet`` or any callable ``net(images, progress=False) ->
  {"features", "logits"}``)."""

  def __init__(self, net):
    self.net = net
    self.correct = self.source_correct = self.count = 0
    self.diversity, self.distance, self.labels = [], [], []

  def update(self, variations, sources, labels):
    variations, sources = np.asarray(variations), np.asarray(sources)
    labels = np.asarray(labels)
    s, k = variations.shape[:2]
    if k < 2 or sources.shape[0] != s or labels.shape != (s,):
      raise ValueError(f"variations (S, K >= 2, ...) of S sources with S labels; got "
                       f"{variations.shape}, {sources.shape} and {labels.shape}.")
    var = digit_outputs(self.net, variations.reshape(s * k, *variations.shape[2:]), NAME)
    src = digit_outputs(self.net, sources, NAME)
    read = var["logits"].argmax(-1).reshape(s, k)
    self.correct += int((read == labels[:, None]).sum())
    self.source_correct += int((src["logits"].argmax(-1) == labels).sum())
    self.count += s * k
    f = np.asarray(var["features"], np.float64).reshape(s, k, -1)
    self.diversity += [mean_pairwise_distance(f[i]) for i in range(s)]
    self.distance.append(np.linalg.norm(
        f - np.asarray(src["features"], np.float64)[:, None], axis=-1).ravel())
    self.labels.append(labels)

  def result(self, real_diversity) -> dict:
    """The numbers, ``real_diversity`` the per-class reference (``real_class_diversity``:
    10 values, None for a class without 2 real digits)."""
    if len(real_diversity) != NUM_CLASSES:
      raise ValueError(f"need the real diversity of the {NUM_CLASSES} classes.")
    labels = np.concatenate(self.labels)
    sources = len(labels)
    missing = sorted({int(c) for c in labels if real_diversity[int(c)] is None})
    if missing:
      raise ValueError(f"No real reference for the class(es) {missing}: fewer than 2 "
                       f"real digits of them in the split.")
    real = float(np.mean([real_diversity[int(c)] for c in labels]))
    diversity = float(np.mean(self.diversity))
    return {"variations_accuracy": self.correct / self.count,
            "variations_source_accuracy": self.source_correct / sources,
            "variations_diversity": diversity,
            "variations_diversity_real": real,
            "variations_diversity_ratio": diversity / real if real else None,
            "variations_source_distance": float(np.concatenate(self.distance).mean()),
            "variations_seeds": self.count // sources,
            "variations_sources": sources,
            "variations_net": getattr(self.net, "name", type(self.net).__name__)}
