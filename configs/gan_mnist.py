r"""The original GAN (Goodfellow et al. 2014) with MLP players, on MNIST-5k.

  python -m jaxgen.main --config=configs/gan_mnist.py --workdir=/tmp/gan_mnist

Variants (comma-separated after the colon):
  (default) ReLU generator 100 -> 256 -> 512 -> 1024 -> 784 (tanh; BatchNorm on the
            last two hidden layers), LeakyReLU(0.2) discriminator 784 -> 512 -> 256
            -> 1 with dropout 0.3 (without these two, the generator collapsed to a
            few digits on these 4,500 training digits), non-saturating loss, Adam
            2e-4 beta1 0.5 for both players, batch 64, EMA 0.999 of the generator;
            10,000 steps (docs/results.md, "Training runs", gan_mnist).
  minimax   the saturating generator loss log(1 - D(G(z))) of the paper's equation.
  tiny      seconds: for tests.
"""
from jaxgen import config_file

common = config_file.module_beside(__file__, "common")
gan = config_file.module_beside(__file__, "gan_base")


def get_config(arg=None):
  variants = common.parse_arg(arg, "gan_mnist", {"tiny", "minimax"})
  c = gan.base()
  if "minimax" in variants:
    c.gan.loss = "minimax"
  if "tiny" in variants:
    c.model.update(latent_dim=8, hidden_g=(16, 16), hidden_d=(16,))
    gan.tiny(c)
  return c
