r"""CompVis' KL-regularised first stage on mnist5k_captions' 32x32 canvases.

  python -m jaxgen.main --config=configs/autoencoder_kl_mnist.py --workdir=/tmp/aekl_mnist
  python -m jaxgen.main --config=configs/autoencoder_kl_mnist.py --workdir=/tmp/aekl_mnist --mode=eval

Variants:
  (default) CompVis' Encoder / Decoder at a small width (ch 32, ch_mult (1, 2, 2), one
            ResNet block per level, the mid block's attention), f = 4: 32x32x1 ->
            8x8x4 latents; L1 + KL 1e-6 with a learned logvar, the PatchGAN hinge
            loss with the adaptive weight (disc_weight 0.5) from disc_start; no
            perceptual term (no VGG16 weights offline); two Adams (0.5, 0.9).
            eval.json: l1, psnr, ssim, rFID (MNIST classifier), latent_std and
            scale_factor (docs/results.md, "Training runs", autoencoder_kl_mnist).
  tiny      seconds: for tests.
"""
from jaxgen import config_file

common = config_file.module_beside(__file__, "common")
aekl = config_file.module_beside(__file__, "autoencoder_kl_base")


def get_config(arg=None):
  variants = common.parse_arg(arg, "autoencoder_kl_mnist", {"tiny"})
  c = aekl.base()
  if "tiny" in variants:
    aekl.tiny(c)
  return c
