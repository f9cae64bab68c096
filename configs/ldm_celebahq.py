r"""LDM-VQ-4 on CelebA-HQ 256 (Rombach et al. 2022): an unconditional latent diffusion
over the 64x64x3 latents of CompVis' VQ-f4 autoencoder.

  python -m jaxgen.main --config=configs/ldm_celebahq.py:paper --mode=summary
  python -m jaxgen.data.prepare celeb_a_hq/256   # needs the manual CelebA-HQ files
  python -m jaxgen.main --config=configs/ldm_celebahq.py:paper --workdir=DIR \
      --config.stages.autoencoder=STAGE   # a VQ-f4 run on celeb_a_hq/256 (see below)

Variants (comma-separated after the colon):
  paper     (= default) configs/latent-diffusion/celebahq-ldm-vq-4.yaml of
            CompVis/latent-diffusion: the U-Net of 224 channels, channel_mult
            (1, 2, 3, 4), 2 ResNet blocks, self-attention at factors 8, 4, 2 with heads
            of 32 channels (274,056,163 parameters); T = 1000 betas linear in their
            square root from 0.0015 to 0.0195; scale factor 1 (the LDM default: a
            VQ space needs no rescaling); AdamW (torch's defaults, weight decay 0.01) at
            base_learning_rate 2e-6 x batch 48 = 9.6e-5 (CompVis' main.py scales it
            by the batch), constant; their LitEma (0.9999); batch 48. Not in the yaml:
            410k steps and DDIM with 500 steps (the paper's tables: FID 5.11).
            The first stage is CompVis' VQ-f4 (ch 128, ch_mult (1, 2, 4), 8,192 codes
            of 3 dims: 55,322,782 parameters, jaxgen.models.autoencoder_kl.VQ_F4); its
            latents are fixed (latent.shape), so --mode=summary needs no stage. No
            jaxgen family trains that network yet (the vqvae family is sonnet's
            VQ-VAE, the autoencoder_kl family the KL model): training needs such a
            stage of the same images.
  tiny      seconds, for tests: the unconditional U-Net of ldm_base's tiny size over
            a tiny VQ-VAE stage (configs/vqvae_mnist.py:captions,tiny) on the offline
            32x32 canvases.
"""
from jaxgen import config_file

common = config_file.module_beside(__file__, "common")
ldm = config_file.module_beside(__file__, "ldm_base")

# The config that trains each frozen stage (its ``tiny`` variant for this one's).
STAGE_CONFIGS = {"autoencoder": "vqvae_mnist:captions"}


def get_config(arg=None):
  variants = common.parse_arg(arg, "ldm_celebahq", {"tiny", "paper"})
  c = ldm.base()
  c.data = common.image_data("celeb_a_hq/256")
  c.latent.update(scale_factor=1.0, shape=(64, 64, 3))
  c.diffusion.update(schedule="scaled_linear", linear_start=0.0015, linear_end=0.0195)
  c.model.update(conditioning="none", p_uncond=0.0)
  c.model.unet = ldm.unet(model_channels=224, channel_mult=(1, 2, 3, 4),
                          num_res_blocks=2, attention_resolutions=(8, 4, 2),
                          num_heads=-1, num_head_channels=32)
  c.optim = ldm.adamw(learning_rate=48 * 2e-6, ema_decay=0.9999)
  c.train.update(batch_size=48, num_steps=410_000, log_every=100,
                 checkpoint_every=10_000, sample_every=10_000, num_samples=16)
  c.sample.update(sampler="ddim", num_steps=500, eta=0.0, guidance_scale=1.0)
  # celeb_a_hq has one split: FID of 50,000 samples against it.
  c.eval = common.inception_eval(split="train", metrics=("fid",),
                                 reference_split="train", sample_batch_size=100,
                                 guidance_scales=())
  if "tiny" in variants:
    ldm.paper_tiny(c, STAGE_CONFIGS["autoencoder"])
  return c
