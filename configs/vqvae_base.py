"""The vqvae family's fields and their defaults: the MNIST-5k default of
configs/vqvae_mnist.py (sonnet's VQ-VAE layout at a small width: 64 hidden channels,
28x28 -> 7x7 codes, K = 128, D = 16, EMA codebook, beta 0.25). Not a runnable config:
``base()`` is what the family's configs start from; ``tiny(c)`` is what their ``tiny``
variants share."""
import ml_collections

from jaxgen import config_file

common = config_file.module_beside(__file__, "common")


def base() -> ml_collections.ConfigDict:
  return common.config(
      "vqvae",
      data=common.mnist5k_data(),
      model=ml_collections.ConfigDict(dict(
          num_hiddens=64, num_residual_layers=2, num_residual_hiddens=32,
          num_downsamples=2, num_codes=128, code_dim=16, beta=0.25, codebook="ema",
          ema_decay=0.99, ema_epsilon=1e-5, restart_after=0,
          # The variance of MNIST-5k's training pixels in [0, 1] (sonnet divides the
          # reconstruction error by the data variance).
          data_variance=0.095)),
      optim=common.optim(),
      train=common.train(),
      # No sample metrics (the VQ-VAE's own samples decode uniformly drawn codes);
      # class_accuracy_recon: the MNIST classifier reads each test reconstruction as
      # its input's digit.
      eval=common.mnist_classifier_eval(metrics=("class_accuracy_recon",),
                                        num_samples=500))


def tiny(c: ml_collections.ConfigDict) -> None:
  """Shrinks ``c`` to seconds, for tests: 8 hidden channels, 16 codes of 4 dims."""
  c.model.update(num_hiddens=8, num_residual_layers=1, num_residual_hiddens=4,
                 num_codes=16, code_dim=4)
  c.train.update(common.tiny_train())
  c.eval.update(batch_size=8, num_examples=16, metrics=())
