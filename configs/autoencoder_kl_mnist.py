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
  f2        f = 2: ch_mult (1, 2), 16x16x4 latents (the small digits of the canvases
            span 2-3 latent cells at f = 4).
  captions2 the default on mnist5k_captions2's 32x64 canvases (two digits): 8x16x4
            latents, the stage of configs/ldm_mnist.py:captions2.
  tiny      seconds: for tests.
"""
from jaxgen import config_file

common = config_file.module_beside(__file__, "common")
aekl = config_file.module_beside(__file__, "autoencoder_kl_base")


def get_config(arg=None):
  variants = common.parse_arg(arg, "autoencoder_kl_mnist", {"tiny", "f2", "captions2"})
  c = aekl.base()
  if "f2" in variants:
    c.model.ch_mult = (1, 2)
  if "captions2" in variants:
    c.data.name = "mnist5k_captions2"  # resolution stays 32: the canvases' height
  if "tiny" in variants:
    aekl.tiny(c)
  return c
