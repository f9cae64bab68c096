r"""AC-GAN (Odena et al. 2017) on MNIST-5k: the generator gets the class, the
discriminator also predicts it, and both players add the auxiliary classification
loss.

  python -m jaxgen.main --config=configs/acgan_mnist.py --workdir=/tmp/acgan_mnist

Variants (comma-separated after the colon):
  (default) DCGAN players as configs/dcgan_mnist.py (ngf = ndf = 32) with a class
            head on the discriminator, auxiliary loss weight 1, non-saturating loss,
            Adam 2e-4 beta1 0.5, batch 64, EMA 0.99; 3,000 steps (docs/results.md,
            "Training runs", acgan_mnist; eval.json's aux_accuracy is the auxiliary
            classifier's on the test digits). The pictures have one row per class.
  tiny      seconds: for tests.
"""
from jaxgen import config_file

common = config_file.module_beside(__file__, "common")


def get_config(arg=None):
  variants = common.parse_arg(arg, "acgan_mnist", {"tiny"})
  c = config_file.sibling(__file__, "dcgan_mnist", arg)  # the same players and training
  c.model.update(conditioning="acgan", num_classes=10)
  c.train.num_samples = 10 if "tiny" in variants else 100  # a row per class
  # Samples conditioned on the eval digits' labels; the classifier checks the class.
  c.eval.metrics = ("fid", "is", "class_accuracy")
  return c
