r"""CycleGAN (Zhu et al. 2017) on MNIST-5k plain <-> restyled digits (``mnist5k_styles``).

  python -m jaxgen.main --config=configs/cyclegan_mnist.py --workdir=/tmp/cyclegan_mnist

Variants (comma-separated after the colon):
  (default) 28x28 RGB digits; two ResNet generators (reflection padding, instance
            norm, 4 residual blocks, ngf 8) and two 70x70 PatchGANs (instance norm, ndf
            16); LSGAN loss, cycle weight 10, identity weight 0.5 x 10, an image pool
            of 50 fakes per discriminator; Adam 2e-4 beta1 0.5, the rate constant for
            the first half of the steps then linear to zero; batch 2 (the paper's 1
            on 256x256 photos), 8,000 steps. Evaluated on the aligned test split: L1 / SSIM of
            G(a) against the true restyled digit (and of F(b) against the digit),
            class kept by F(G(a)), F(b) read as b's digit by the MNIST classifier
            (all, light and dark backgrounds), cycle errors, FID of the translations
            in the MNIST classifier's features; ``styles``: G(a) read as a's digit by
            the restyled digits' reader, and its content and style un-styled.
  tiny      seconds: for tests.
"""
from jaxgen import config_file

common = config_file.module_beside(__file__, "common")
cyclegan = config_file.module_beside(__file__, "cyclegan_base")


def get_config(arg=None):
  variants = common.parse_arg(arg, "cyclegan_mnist", {"tiny"})
  c = cyclegan.base()
  if "tiny" in variants:
    cyclegan.tiny(c, batch_size=4, pool_size=3)
    c.eval.update(batch_size=8, num_examples=16, num_samples=16, sample_batch_size=8)
  return c
