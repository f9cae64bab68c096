"""class_accuracy: how often the shipped MNIST classifier gives a generated digit the
label it was conditioned on; class_accuracy_recon: how often it gives an autoencoder's
reconstruction of an eval digit that digit's label (a paired evaluator: each
reconstruction against its own input; ``evaluators.compute`` hands it the
reconstructions of any family with the ``stages.Autoencoder`` protocol: vae, vqvae,
dvae, autoencoder_kl). Digits are 28x28x1, or square grey canvases of one digit
(``digit_classes.digit_outputs``)."""
from __future__ import annotations

from jaxgen.evaluators import Evaluator, register
from jaxgen.evaluators.digit_classes import digit_outputs
from jaxgen.evaluators.features import feature_net


@register("class_accuracy")
class ClassAccuracy(Evaluator):
  """The shipped MNIST classifier's agreement with the conditioning label."""
  needs = ("label",)
  name = "class_accuracy"

  def __init__(self, config, mesh, nets):
    super().__init__(config, mesh, nets)
    self.net = nets.setdefault("mnist_classifier",
                               feature_net(config, mesh, "mnist_classifier"))
    self.correct = self.count = 0

  def update(self, samples, examples):
    predicted = digit_outputs(self.net, samples, self.name)["logits"].argmax(-1)
    self.correct += int((predicted == examples["label"]).sum())
    self.count += len(samples)

  def result(self):
    return {self.name: self.correct / self.count, f"{self.name}_net": self.net.name}


@register("class_accuracy_recon")
class ClassAccuracyRecon(ClassAccuracy):
  """The shipped MNIST classifier's agreement of each reconstruction with its input's
  label."""
  needs = ("image", "label")
  reads = "reconstructions"
  name = "class_accuracy_recon"
