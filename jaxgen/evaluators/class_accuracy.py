"""class_accuracy: how often the shipped MNIST classifier gives a generated digit the
label it was conditioned on."""
from __future__ import annotations

from jaxgen.evaluators import Evaluator, register
from jaxgen.evaluators.features import feature_net


@register("class_accuracy")
class ClassAccuracy(Evaluator):
  """The shipped MNIST classifier's agreement with the conditioning label."""
  needs = ("label",)

  def __init__(self, config, mesh, nets):
    super().__init__(config, mesh, nets)
    self.net = nets.setdefault("mnist_classifier",
                               feature_net(config, mesh, "mnist_classifier"))
    self.correct = self.count = 0

  def update(self, samples, examples):
    if samples.shape[1:] != (28, 28, 1):
      raise ValueError(f"class_accuracy classifies 28x28x1 digits with the shipped MNIST "
                       f"classifier; these samples are {samples.shape[1:]}. Remove it "
                       f"from config.eval.metrics.")
    predicted = self.net(samples, progress=False)["logits"].argmax(-1)
    self.correct += int((predicted == examples["label"]).sum())
    self.count += len(samples)

  def result(self):
    return {"class_accuracy": self.correct / self.count,
            "class_accuracy_net": self.net.name}
