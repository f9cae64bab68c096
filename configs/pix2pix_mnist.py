r"""Pix2Pix (Isola et al. 2017) on MNIST-5k edges -> digits (``mnist5k_edges``), offline.

  python -m jaxgen.main --config=configs/pix2pix_mnist.py --workdir=/tmp/pix2pix_mnist

Variants (comma-separated after the colon):
  (default) the digits resized to 32x32 (a 5-level U-Net halves 32 to 1x1, as
            unet_256 halves 256), ngf = ndf = 32, BatchNorm, dropout 0.5 at the
            middle level, the 70x70 PatchGAN (n_layers=3) on the concatenated pair,
            vanilla GAN loss + 100 L1, Adam 2e-4 beta1 0.5, the rate constant for the
            first half of the steps then linear to zero; jitter 36 -> random 32 crop,
            drawn jointly for the pair (no mirroring: digits are not symmetric);
            batch 16 (the paper's batch 1 on 256x256 facades would take hours here).
            Evaluated on the 500 test pairs: L1, PSNR, SSIM of G(edges) against the
            digit, with the paper's test mode (dropout on, per-image statistics).
  tiny      seconds: for tests.
"""
from jaxgen import config_file

common = config_file.module_beside(__file__, "common")
pix2pix = config_file.module_beside(__file__, "pix2pix_base")


def get_config(arg=None):
  variants = common.parse_arg(arg, "pix2pix_mnist", {"tiny"})
  c = pix2pix.base()
  if "tiny" in variants:
    pix2pix.tiny(c, batch_size=4)
    c.eval.update(batch_size=8, num_examples=16, num_samples=16, sample_batch_size=8)
  return c
