"""CycleGAN's own evaluator on the mnist5k_styles set: ``styles``."""
from __future__ import annotations

import numpy as np

from jaxgen.data.mnist5k_derived import styles_ground_truth, unstyle
from jaxgen.evaluators import Evaluator, register
from jaxgen.metrics import features


@register("styles")
class Styles(Evaluator):
  """The class of G(a) once un-styled, on mnist5k_styles' aligned test split: each
  sample's example is found in ``styles_ground_truth`` by its plain digit (domain_a),
  the sample (uint8) is un-styled with that example's true colour and texture
  (``mnist5k_derived.unstyle``) and read by the shipped MNIST classifier, against the
  true label (``class_accuracy_unstyled``); ``l1_unstyled`` is its mean |unstyle(G(a))
  - digit| on [0, 1]. For CycleGAN's G (``generate`` conditioned on domain_a)."""
  needs = ("domain_a",)

  def __init__(self, config, mesh, nets):
    super().__init__(config, mesh, nets)
    if config.data.name != "mnist5k_styles" or config.data.resize:
      raise ValueError("The styles evaluator reads mnist5k_styles at 28x28: use "
                       "config.data.name='mnist5k_styles' without config.data.resize.")
    split = config.eval.split
    self.gt = styles_ground_truth(split, int(config.data.derived_seed))
    self.index = {d.tobytes(): i for i, d in enumerate(self.gt["digit"])}
    if len(self.index) != len(self.gt["digit"]):
      raise ValueError(f"Two digits of the {split} split are identical: examples "
                       f"cannot be matched to their ground truth.")
    self.net = nets.setdefault("mnist_classifier",
                               features.get("mnist_classifier", mesh=mesh))
    self.symmetric = config.data.scale == "symmetric"
    self.correct, self.l1, self.count = 0, 0.0, 0

  def _indices(self, domain_a):
    a = np.asarray(domain_a, np.float64)
    a = (a + 1) / 2 if self.symmetric else a
    digits = np.round(a[..., :1] * 255).astype(np.uint8)
    try:
      return np.asarray([self.index[d.tobytes()] for d in digits])
    except KeyError:
      raise ValueError("An eval example's domain_a is no digit of the ground truth: "
                       "the styles evaluator needs the unjittered, unflipped split.")

  def update(self, samples, examples):
    idx = self._indices(examples["domain_a"])
    styled = np.round(np.clip(np.asarray(samples), 0, 1) * 255).astype(np.uint8)
    ink = unstyle(styled, self.gt["colour"][idx], self.gt["texture"][idx])
    logits = self.net(ink.astype(np.float32) / 255, progress=False)["logits"]
    self.correct += int((logits.argmax(-1) == self.gt["label"][idx]).sum())
    self.l1 += float(np.abs(ink.astype(np.float64) - self.gt["digit"][idx]).sum()
                     / (255 * ink[0].size))
    self.count += len(idx)

  def result(self):
    return {"class_accuracy_unstyled": self.correct / self.count,
            "l1_unstyled": self.l1 / self.count,
            "class_accuracy_unstyled_net": self.net.name}
