r"""LDM-KL-8 text-to-image (Rombach et al. 2022, txt2img-1p4B): CompVis' U-Net
cross-attending to the states of their BERT-like transformer, trained with it, over
the 32x32x4 latents of the KL-f8 autoencoder.

  python -m jaxgen.main --config=configs/ldm_txt2img.py:paper --mode=summary

Variants (comma-separated after the colon):
  paper     (= default) configs/latent-diffusion/txt2img-1p4B-eval.yaml of
            CompVis/latent-diffusion: the U-Net of 320 channels, channel_mult
            (1, 2, 4, 4), 2 ResNet blocks, SpatialTransformers (depth 1, 8 heads) at
            factors 4, 2, 1 over a context of width 1280, gradient checkpointing
            (872,300,484 parameters); the BERTEmbedder's transformer (width 1280, 32
            layers, x-transformers' 8 heads of 64, BERT's 30,522 token ids, 77
            positions, with the vocabulary head CompVis' module holds: 581,994,042);
            T = 1000 betas linear in their square root from 0.00085 to 0.012; scale
            factor 0.18215; AdamW (torch's defaults, weight decay 0.01) at 5e-5 (the
            yaml's base_learning_rate, not scaled by the batch), constant; no EMA
            (use_ema: False). Not in the yaml: batch 680 and 390k steps (the paper's
            table); caption dropout 0.1 (the reference has no dropout code; guidance
            needs it); guidance 5 with 50 DDIM steps (their README's txt2img command).
            --mode=summary only: LAION-400M and BERT's tokenizer are not in jaxgen, so
            the config reads the offline captions (mnist5k_captions, 77 positions) to
            build its networks, latent.shape fixes the KL-f8 latents, and no stage is
            needed; training needs a captioned 256x256 set and a KL-f8 stage of it
            (configs/autoencoder_kl_f8.py:paper).
  tiny      seconds, for tests: text-conditional with ldm_base's tiny networks over a
            tiny KL stage (configs/autoencoder_kl_mnist.py:tiny) on the offline 32x32
            canvases.
"""
from jaxgen import config_file

common = config_file.module_beside(__file__, "common")
ldm = config_file.module_beside(__file__, "ldm_base")
aekl = config_file.module_beside(__file__, "autoencoder_kl_base")

# The config that trains each frozen stage (its ``tiny`` variant for this one's).
STAGE_CONFIGS = {"autoencoder": "autoencoder_kl_mnist"}


def get_config(arg=None):
  variants = common.parse_arg(arg, "ldm_txt2img", {"tiny", "paper"})
  c = ldm.base()
  c.data = aekl.captions_data()
  c.data.context_length = 77
  c.latent.update(scale_factor=0.18215, shape=(32, 32, 4))
  c.diffusion.update(schedule="scaled_linear", linear_start=0.00085, linear_end=0.012)
  c.model.update(conditioning="text", text_encoder="joint", p_uncond=0.1)
  c.model.unet = ldm.unet(model_channels=320, channel_mult=(1, 2, 4, 4),
                          num_res_blocks=2, attention_resolutions=(4, 2, 1),
                          num_heads=8, num_head_channels=-1, transformer_depth=1,
                          context_dim=1280, use_checkpoint=True)
  c.model.text.update(width=1280, layers=32, heads=8, dim_head=64, vocab_size=30522,
                      max_length=77, logits_head=True)
  c.optim = ldm.adamw(learning_rate=5e-5, ema_decay=0.0)
  c.train.update(batch_size=680, num_steps=390_000, log_every=100,
                 checkpoint_every=5_000, sample_every=5_000, num_samples=16)
  c.sample.update(sampler="ddim", num_steps=50, eta=0.0, guidance_scale=5.0)
  c.eval.update(guidance_scales=())
  if "tiny" in variants:
    ldm.paper_tiny(c, STAGE_CONFIGS["autoencoder"])
  return c
