"""CycleGAN's own evaluator on the mnist5k_styles set: ``styles``."""
from __future__ import annotations

import numpy as np

from jaxgen.data.mnist5k_derived import styles_ground_truth, unstyle
from jaxgen.errors import ConfigError
from jaxgen.evaluators import Evaluator, register
from jaxgen.metrics import features


@register("styles")
class Styles(Evaluator):
  """G(a) on mnist5k_styles' aligned test split, for CycleGAN's G (``generate``
  conditioned on domain_a):

    class_accuracy_ab           its content: how often the domain-B reader (the
                                shipped ``styles_classifier``, trained on the
                                restyled training digits) reads G(a) as a's label
                                (``label_a``), whatever style G chose. Its ceiling,
                                the reader on the real restyled test digits, is
                                printed by ``python -m jaxgen.train_mnist_classifier
                                --dataset=mnist5k_styles``.
    content_and_style_accuracy  its content *and* style agreement with the true
                                pair: each sample's example is found in
                                ``styles_ground_truth`` by its plain digit
                                (domain_a), the sample (uint8) is un-styled with that
                                example's true colour and texture
                                (``mnist5k_derived.unstyle``) and read by the shipped
                                MNIST classifier against the true label. A G that
                                keeps the digit but draws it in another colour than
                                the pair's scores low here and high above.
    l1_unstyled                 the mean |unstyle(G(a)) - digit| on [0, 1], of the
                                same un-styling (content and style too).
  """
  needs = ("domain_a", "label_a")

  def __init__(self, config, mesh, nets):
    super().__init__(config, mesh, nets)
    if config.data.name != "mnist5k_styles" or config.data.resize:
      raise ConfigError("The styles evaluator reads mnist5k_styles at 28x28: use "
                        "config.data.name='mnist5k_styles' without config.data.resize, "
                        "or drop 'styles' from config.eval.metrics.")
    split = config.eval.split
    self.gt = styles_ground_truth(split, int(config.data.derived_seed))
    self.index = {d.tobytes(): i for i, d in enumerate(self.gt["digit"])}
    if len(self.index) != len(self.gt["digit"]):
      raise ValueError(f"Two digits of the {split} split are identical: examples "
                       f"cannot be matched to their ground truth.")
    self.net = nets.setdefault("mnist_classifier",
                               features.get("mnist_classifier", mesh=mesh))
    self.reader = nets.setdefault("styles_classifier",
                                  features.get("styles_classifier", mesh=mesh))
    self.symmetric = config.data.scale == "symmetric"
    self.correct, self.read, self.l1, self.count = 0, 0, 0.0, 0

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
    styled = np.round(np.clip(np.asarray(samples), 0, 1) * 255).astype(np.uint8)
    logits = self.reader(styled, progress=False)["logits"]
    self.read += int((logits.argmax(-1) == np.asarray(examples["label_a"])).sum())
    idx = self._indices(examples["domain_a"])
    ink = unstyle(styled, self.gt["colour"][idx], self.gt["texture"][idx])
    logits = self.net(ink.astype(np.float32) / 255, progress=False)["logits"]
    self.correct += int((logits.argmax(-1) == self.gt["label"][idx]).sum())
    self.l1 += float(np.abs(ink.astype(np.float64) - self.gt["digit"][idx]).sum()
                     / (255 * ink[0].size))
    self.count += len(idx)

  def result(self):
    return {"class_accuracy_ab": self.read / self.count,
            "class_accuracy_ab_net": self.reader.name,
            "content_and_style_accuracy": self.correct / self.count,
            "content_and_style_accuracy_net": self.net.name,
            "l1_unstyled": self.l1 / self.count}
