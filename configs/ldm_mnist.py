r"""Latent diffusion (Rombach et al. 2022) on mnist5k_captions, over a KL autoencoder.

  python -m jaxgen.main --config=configs/autoencoder_kl_mnist.py:f2 --workdir=/tmp/aekl_f2
  python -m jaxgen.main --config=configs/clip_mnist.py --workdir=/tmp/clip_mnist
  python -m jaxgen.main --config=configs/ldm_mnist.py --workdir=/tmp/ldm_mnist \
      --config.stages.autoencoder=/tmp/aekl_f2 --config.stages.clip=/tmp/clip_mnist
  # LDM's own recipe: a text transformer trained with the U-Net (no CLIP stage)
  python -m jaxgen.main --config=configs/ldm_mnist.py:joint --workdir=/tmp/ldm_joint \
      --config.stages.autoencoder=/tmp/aekl_f2
  # super-resolution (concat conditioning) over the same stage
  python -m jaxgen.main --config=configs/ldm_mnist.py:superres --workdir=/tmp/ldm_sr \
      --config.stages.autoencoder=/tmp/aekl_f2
  # over a VQ-VAE stage
  python -m jaxgen.main --config=configs/vqvae_mnist.py:captions --workdir=/tmp/vq
  python -m jaxgen.main --config=configs/ldm_mnist.py:vq --workdir=/tmp/ldm_vq \
      --config.stages.autoencoder=/tmp/vq --config.stages.clip=/tmp/clip_mnist

Variants (comma-separated after the colon):
  (default) text-conditional: CompVis' U-Net with SpatialTransformers (32 channels,
            levels (1, 2, 2), attention at the two coarser levels) over the 16x16x4
            latents of the f = 2 KL stage (configs/autoencoder_kl_mnist.py:f2),
            cross-attending to the per-token text states of a frozen CLIP trained on
            the same captions (configs/clip_mnist.py); the scale factor 1 / std of
            the training latents; T = 1000 LDM betas (scaled_linear), caption dropout
            0.1; DDIM-50. eval.json: eps MSE, caption_accuracy and FID (MNIST
            classifier, against the test canvases) at guidance 1, 2, 4, 8.
            Why f = 2 and CLIP rather than the paper's f = 4 and a jointly trained
            encoder: the canvases' small digits span 2-3 latent cells at f = 4, and
            the joint encoder learns nothing of the caption in 3,000 steps
            (docs/results.md, "ldm_mnist": caption digit 0.11 joint f = 4, 0.26 CLIP
            f = 4, 0.56 CLIP f = 2 at guidance 4).
  joint     LDM's text conditioning: a 2-layer text transformer trained with the
            U-Net (no CLIP stage).
  f4        over the f = 4 stage (configs/autoencoder_kl_mnist.py: 8x8x4 latents),
            U-Net levels (1, 2) with attention at both.
  class     class-conditional: the label as one cross-attention token (no CLIP).
  superres  LDM's super-resolution (``conditioning="concat"``, no CLIP): each canvas
            averaged over the f x f blocks of the latent grid is concatenated to the
            noised latents (a U-Net of 4 + 1 input channels, with self-attention),
            dropped to mid-grey with probability 0.1. eval.json: PSNR and SSIM of each
            sample against the canvas it was drawn from, and FID, at guidance 1 and 2,
            beside the shuffled baseline (the same metrics for samples drawn from
            another canvas's low-resolution image: ``*_shuffled_*``).
  vq        over a VQ-VAE stage (configs/vqvae_mnist.py:captions): its 8x8x16 vectors
            before quantisation are diffused, and its decoder quantises the samples
            (the LDM paper's VQ first stages); U-Net levels (1, 2).
  captions2 the two-digit set (mnist5k_captions2, 32 x 64 canvases: 16 x 32 latents)
            over configs/autoencoder_kl_mnist.py:f2,captions2 and a
            clip_mnist.py:captions2 CLIP (with vq: vqvae_mnist.py:captions2).
  tiny      seconds: for tests.
"""
from jaxgen import config_file

common = config_file.module_beside(__file__, "common")
ldm = config_file.module_beside(__file__, "ldm_base")
aekl = config_file.module_beside(__file__, "autoencoder_kl_base")

# The config that trains each frozen stage (its ``tiny`` variant for this one's).
STAGE_CONFIGS = {"autoencoder": "autoencoder_kl_mnist:f2", "clip": "clip_mnist"}
NO_CLIP = {"joint", "class", "superres"}  # variants that read no CLIP stage


def stage_config(variants, role: str = "autoencoder") -> str:
  """The config (``name:variant``) that trains the stage ``role`` of ``variants``."""
  two = "captions2" in variants
  if role == "clip":
    return "clip_mnist:captions2" if two else "clip_mnist"
  if "vq" in variants:
    return f"vqvae_mnist:captions{'2' if two else ''}"
  kl = [] if "f4" in variants else ["f2"]
  return ":".join(["autoencoder_kl_mnist", ",".join(kl + ["captions2"] * two)]).rstrip(":")


def get_config(arg=None):
  variants = common.parse_arg(arg, "ldm_mnist", {"tiny", "joint", "f4", "class",
                                                 "superres", "vq", "captions2"})
  c = ldm.base()
  name, _, variant = stage_config(variants).partition(":")
  c.data = config_file.sibling(__file__, name, variant or None).data  # as the stage saw them
  if variants & {"f4", "vq"}:  # 8 x 8 latents: two levels
    c.model.unet.update(channel_mult=(1, 2), attention_resolutions=(1, 2))
  else:  # 16 x 16 latents: three levels, attention at 8 x 8 and 4 x 4
    c.model.unet.update(channel_mult=(1, 2, 2), attention_resolutions=(2, 4))
  if not variants & NO_CLIP:
    c.model.text_encoder = "clip"
    c.stages.clip = ""
  if "class" in variants:
    c.model.conditioning = "class"
    # class_accuracy reads 28x28 digits; on the canvases the caption's digit
    # attribute is the label's accuracy.
    c.eval.metrics = ("fid", "caption_accuracy")
  if "superres" in variants:
    c.model.conditioning = "concat"
    c.eval.update(metrics=("psnr", "ssim", "fid"), paired_key="image",
                  shuffled_baseline=True, guidance_scales=(1.0, 2.0))
  if "tiny" in variants:
    ldm.tiny(c)
  return c
