r"""Latent diffusion (Rombach et al. 2022) on mnist5k_captions, over a KL autoencoder.

  python -m jaxgen.main --config=configs/autoencoder_kl_mnist.py --workdir=/tmp/aekl_mnist
  python -m jaxgen.main --config=configs/ldm_mnist.py --workdir=/tmp/ldm_mnist \
      --config.stages.autoencoder=/tmp/aekl_mnist

Variants (comma-separated after the colon):
  (default) text-conditional: CompVis' U-Net with SpatialTransformers (64 channels,
            levels (1, 2)) over the stage's 8x8x4 latents, cross-attending to a
            2-layer text transformer trained with it (LDM's recipe); the scale factor
            1 / std of the training latents; T = 1000 LDM betas (scaled_linear),
            caption dropout 0.1; DDIM-50. eval.json: eps MSE, caption_accuracy and
            FID (MNIST classifier, against the test canvases) at guidance 1, 2, 4, 8.
  class     class-conditional: the label as one cross-attention token.
  clip      the text states of a frozen CLIP stage (--config.stages.clip=a clip_mnist
            run) instead of a jointly trained encoder.
  tiny      seconds: for tests.
"""
from jaxgen import config_file

common = config_file.module_beside(__file__, "common")
ldm = config_file.module_beside(__file__, "ldm_base")
aekl = config_file.module_beside(__file__, "autoencoder_kl_base")

# The config that trains each frozen stage (its ``tiny`` variant for this one's).
STAGE_CONFIGS = {"autoencoder": "autoencoder_kl_mnist"}


def get_config(arg=None):
  variants = common.parse_arg(arg, "ldm_mnist", {"tiny", "class", "clip"})
  c = ldm.base()
  c.data = aekl.captions_data()
  if "class" in variants:
    c.model.conditioning = "class"
    c.eval.metrics = ("fid", "class_accuracy")
  if "clip" in variants:
    c.model.text_encoder = "clip"
    c.stages.clip = ""
  if "tiny" in variants:
    ldm.tiny(c)
  return c
