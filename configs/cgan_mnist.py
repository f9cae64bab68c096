r"""Conditional GAN (Mirza & Osindero 2014) on MNIST-5k: the one-hot digit class joins
the input of both players.

  python -m jaxgen.main --config=configs/cgan_mnist.py --workdir=/tmp/cgan_mnist

Variants (comma-separated after the colon):
  (default) MLP players as in the paper's MNIST experiment: ReLU generator
            [z, y] -> 256 -> 512 -> 1024 -> 784 (tanh; BatchNorm on the last two
            hidden layers), LeakyReLU(0.2) discriminator [x, y] -> 512 -> 256 -> 1
            with dropout 0.3 (without BatchNorm and dropout, the generator collapsed
            to one image for every class), non-saturating loss, Adam 2e-4 beta1
            0.5, batch 64, EMA 0.999; 10,000 steps (docs/results.md, "Training
            runs", cgan_mnist). The pictures have one row per class.
  dcgan     the DCGAN players of configs/dcgan_mnist.py instead (the label as
            constant input channels of the discriminator).
  tiny      seconds: for tests.
"""
from jaxgen import config_file

common = config_file.module_beside(__file__, "common")


def get_config(arg=None):
  variants = common.parse_arg(arg, "cgan_mnist", {"tiny", "dcgan"})
  c = config_file.sibling(__file__, "gan_mnist", "tiny" if "tiny" in variants else None)
  c.model.update(ngf=32, ndf=32, upsample="transpose", d_batch_norm=True,
                 conditioning="cgan", num_classes=10)
  c.train.num_samples = 100  # a row per class
  # Samples conditioned on the eval digits' labels; the classifier checks the class.
  c.eval.metrics = ("fid", "is", "class_accuracy")
  if "dcgan" in variants:
    c.model.update(arch="dcgan", d_dropout=0.0)
    if "tiny" not in variants:
      c.train.num_steps = 3000
  if "tiny" in variants:
    c.model.update(ngf=4, ndf=4)
    c.train.num_samples = 10
  return c
