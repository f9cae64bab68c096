r"""LDM-4 class-conditional on ImageNet 256 (Rombach et al. 2022, cin256-v2): CompVis'
U-Net cross-attending to one embedded class token, over the 64x64x3 latents of their
VQ-f4 autoencoder.

  python -m jaxgen.main --config=configs/ldm_cin256.py:paper --mode=summary
  python -m jaxgen.main --config=configs/ldm_cin256.py:paper --workdir=DIR \
      --config.stages.autoencoder=STAGE   # a VQ-f4 run on the same images (see below)

Needs ImageNet through tensorflow-datasets (``imagenet2012``).

Variants (comma-separated after the colon):
  paper     (= default) configs/latent-diffusion/cin256-v2.yaml of
            CompVis/latent-diffusion: the U-Net of 192 channels, channel_mult
            (1, 2, 3, 5), 2 ResNet blocks, SpatialTransformers (depth 1, one head) at
            factors 8, 4, 2 over a context of width 512 (400,920,579 parameters); the
            ClassEmbedder of 1,001 rows of 512 (the 1,000 classes and the null class
            1000 that their guidance samples with: 512,512 parameters); T = 1000 betas
            linear in their square root from 0.0015 to 0.0195; scale factor 1; AdamW
            (torch's defaults, weight decay 0.01) at 1e-4 (the yaml's
            base_learning_rate, not scaled by the batch), constant; no EMA
            (use_ema: False). Not in the yaml: batch 1,200 and 178k steps (the
            paper's table); class dropout 0.1 (the reference has no dropout code;
            guidance needs it); guidance 1.5 with 250 DDIM steps (the paper's
            LDM-4-G). The first stage is CompVis' VQ-f4 (55,322,782 parameters,
            jaxgen.models.autoencoder_kl.VQ_F4); latent.shape is fixed, so
            --mode=summary needs no stage. No jaxgen family trains that network yet:
            training needs such a stage of the same images.
  tiny      seconds, for tests: class-conditional (the 10 digits) at ldm_base's tiny
            size over a tiny VQ-VAE stage (configs/vqvae_mnist.py:captions,tiny) on the
            offline 32x32 canvases.
"""
from jaxgen import config_file

common = config_file.module_beside(__file__, "common")
ldm = config_file.module_beside(__file__, "ldm_base")

# The config that trains each frozen stage (its ``tiny`` variant for this one's).
STAGE_CONFIGS = {"autoencoder": "vqvae_mnist:captions"}


def get_config(arg=None):
  variants = common.parse_arg(arg, "ldm_cin256", {"tiny", "paper"})
  c = ldm.base()
  c.data = common.image_data("imagenet2012", resize=(256, 256), center_crop=True)
  c.latent.update(scale_factor=1.0, shape=(64, 64, 3))
  c.diffusion.update(schedule="scaled_linear", linear_start=0.0015, linear_end=0.0195)
  c.model.update(conditioning="class", num_classes=1000, class_width=512, p_uncond=0.1)
  c.model.unet = ldm.unet(model_channels=192, channel_mult=(1, 2, 3, 5),
                          num_res_blocks=2, attention_resolutions=(8, 4, 2),
                          num_heads=1, num_head_channels=-1, transformer_depth=1,
                          context_dim=512)
  c.optim = ldm.adamw(learning_rate=1e-4, ema_decay=0.0)
  c.train.update(batch_size=1200, num_steps=178_000, log_every=100,
                 checkpoint_every=5_000, sample_every=5_000, num_samples=16)
  c.sample.update(sampler="ddim", num_steps=250, eta=0.0, guidance_scale=1.5)
  c.eval = common.inception_eval(split="validation", metrics=("fid", "is"),
                                 reference_split="train", sample_batch_size=100,
                                 guidance_scales=())
  if "tiny" in variants:
    ldm.paper_tiny(c, STAGE_CONFIGS["autoencoder"])
  return c
