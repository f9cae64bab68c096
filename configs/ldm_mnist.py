r"""Latent diffusion (Rombach et al. 2022) on mnist5k_captions, over a KL autoencoder.

  python -m jaxgen.main --config=configs/autoencoder_kl_mnist.py --workdir=/tmp/aekl_mnist
  python -m jaxgen.main --config=configs/ldm_mnist.py --workdir=/tmp/ldm_mnist \
      --config.stages.autoencoder=/tmp/aekl_mnist
  # super-resolution (concat conditioning) over the same stage
  python -m jaxgen.main --config=configs/ldm_mnist.py:superres --workdir=/tmp/ldm_sr \
      --config.stages.autoencoder=/tmp/aekl_mnist
  # over a VQ-VAE stage
  python -m jaxgen.main --config=configs/vqvae_mnist.py:captions --workdir=/tmp/vq
  python -m jaxgen.main --config=configs/ldm_mnist.py:vq --workdir=/tmp/ldm_vq \
      --config.stages.autoencoder=/tmp/vq
  # the two-digit set
  python -m jaxgen.main --config=configs/autoencoder_kl_mnist.py:captions2 \
      --workdir=/tmp/aekl2
  python -m jaxgen.main --config=configs/ldm_mnist.py:captions2 --workdir=/tmp/ldm2 \
      --config.stages.autoencoder=/tmp/aekl2

Variants (comma-separated after the colon):
  (default) text-conditional: CompVis' U-Net with SpatialTransformers (32 channels,
            levels (1, 2)) over the stage's 8x8x4 latents, cross-attending to a
            2-layer text transformer trained with it (LDM's recipe); the scale factor
            1 / std of the training latents; T = 1000 LDM betas (scaled_linear),
            caption dropout 0.1; DDIM-50. eval.json: eps MSE, caption_accuracy and
            FID (MNIST classifier, against the test canvases) at guidance 1, 2, 4, 8.
  class     class-conditional: the label as one cross-attention token.
  clip      the text states of a frozen CLIP stage (--config.stages.clip=a clip_mnist
            run) instead of a jointly trained encoder.
  superres  LDM's super-resolution (``conditioning="concat"``): each canvas averaged
            over 4x4 blocks to the 8x8 latent grid is concatenated to the noised
            latents (a U-Net of 4 + 1 input channels, with self-attention), dropped to
            mid-grey with probability 0.1. eval.json: PSNR and SSIM of each sample
            against the canvas it was drawn from, and FID, at guidance 1 and 2, beside
            the shuffled baseline (the same metrics for samples drawn from another
            canvas's low-resolution image: ``*_shuffled_*``).
  vq        over a VQ-VAE stage (configs/vqvae_mnist.py:captions): its 8x8x16 vectors
            before quantisation are diffused, and its decoder quantises the samples
            (the LDM paper's VQ first stages).
  captions2 the two-digit set (mnist5k_captions2, 32 x 64 canvases: 8 x 16 latents)
            over configs/autoencoder_kl_mnist.py:captions2 (with vq:
            vqvae_mnist.py:captions2).
  tiny      seconds: for tests.
"""
from jaxgen import config_file

common = config_file.module_beside(__file__, "common")
ldm = config_file.module_beside(__file__, "ldm_base")
aekl = config_file.module_beside(__file__, "autoencoder_kl_base")

# The config that trains each frozen stage (its ``tiny`` variant for this one's).
STAGE_CONFIGS = {"autoencoder": "autoencoder_kl_mnist"}


def stage_config(variants) -> str:
  """The config (``name:variant``) that trains the autoencoder stage of ``variants``."""
  name = "vqvae_mnist" if "vq" in variants else STAGE_CONFIGS["autoencoder"]
  variant = "captions2" if "captions2" in variants else (
      "captions" if "vq" in variants else "")
  return f"{name}:{variant}" if variant else name


def get_config(arg=None):
  variants = common.parse_arg(arg, "ldm_mnist", {"tiny", "class", "clip", "superres",
                                                 "vq", "captions2"})
  c = ldm.base()
  c.data = aekl.captions_data()
  if variants & {"vq", "captions2"}:  # the images as the stage saw them
    name, _, variant = stage_config(variants).partition(":")
    c.data = config_file.sibling(__file__, name, variant).data
  if "class" in variants:
    c.model.conditioning = "class"
    # class_accuracy reads 28x28 digits; on the canvases the caption's digit
    # attribute is the label's accuracy.
    c.eval.metrics = ("fid", "caption_accuracy")
  if "clip" in variants:
    c.model.text_encoder = "clip"
    c.stages.clip = ""
  if "superres" in variants:
    c.model.conditioning = "concat"
    c.eval.update(metrics=("psnr", "ssim", "fid"), paired_key="image",
                  shuffled_baseline=True, guidance_scales=(1.0, 2.0))
  if "tiny" in variants:
    ldm.tiny(c)
  return c
