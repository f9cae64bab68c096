"""The unclip family's fields and their defaults (not a runnable config): ``base(role)``
is what configs/unclip_*.py start from, ``tiny(c)`` what their ``tiny`` variants share,
``paper(c)`` karlo's networks (kakaobrain/karlo configs/*.yaml).

``model.role`` picks the network a run trains: ``prior`` (configs/unclip_prior_mnist.py),
``decoder`` (configs/unclip_mnist.py, the text-to-image pipeline over a prior stage)
or ``upsampler`` (configs/unclip_upsampler_mnist.py). ``model.clip_dim``,
``text_width`` and ``text_length`` (0: the CLIP stage's and the captions') and
``image_channels`` (0: the data's) are fixed only by the paper variants, whose
``--mode=summary`` needs no stage. ``model.decoder.unet`` / ``model.upsampler.unet``
hold guided-diffusion's U-Net arguments under CompVis' names (jaxgen/models/ldm_unet.py);
``xf_width`` is the width of the decoder's attention tokens (karlo's ``xf_width``)."""
import ml_collections

from jaxgen import config_file

common = config_file.module_beside(__file__, "common")

ROLES = ("prior", "decoder", "upsampler")


def base(role: str) -> ml_collections.ConfigDict:
  stages = {"prior": ("clip",), "decoder": ("clip", "prior", "upsampler"),
            "upsampler": ()}[role]
  c = common.config(
      "unclip",
      # The images and captions as the CLIP stage saw them.
      data=config_file.sibling(__file__, "clip_mnist").data,
      stages=ml_collections.ConfigDict({s: "" for s in stages}),
      # karlo: 1000 steps of squaredcos_cap_v2 (the cosine schedule), the prior
      # predicting x0 and the image models eps; sigma_small: the posterior variance.
      # Here the image models predict v (Salimans & Ho 2022): the eps loss weighs the
      # x0 error by the SNR, ~0 over the last third of this schedule, and a small
      # network trained for minutes keeps an eps error of ~0.025 there, which is an
      # x0 error of ~1 at t = 900: its DDIM samples from pure noise were noise (the
      # upsampler: PSNR 4.7 dB). The v loss weighs the x0 error by 1 + SNR. karlo's
      # eps comes back with ``paper``.
      diffusion=ml_collections.ConfigDict(dict(
          schedule="cosine", num_steps=1000,
          parameterization="x0" if role == "prior" else "v", variance="fixedsmall")),
      model=ml_collections.ConfigDict(dict(
          role=role, clip_dim=0, text_width=0, text_length=0, image_channels=0,
          prior=ml_collections.ConfigDict(dict(
              width=256, layers=4, heads=4, final_ln=True, text_drop=0.1,
              stats_examples=2000)),
          decoder=ml_collections.ConfigDict(dict(
              resolution=16, xf_width=64, clip_tokens=4, text=True, image_drop=0.1,
              text_drop=0.5, learn_sigma=False,
              unet=ml_collections.ConfigDict(dict(
                  model_channels=32, channel_mult=(1, 2), num_res_blocks=2,
                  attention_resolutions=(1, 2), num_heads=-1, num_head_channels=32,
                  dropout=0.1, use_scale_shift_norm=True, resblock_updown=True)))),
          upsampler=ml_collections.ConfigDict(dict(
              low_resolution=16, blur_sigma=(0.4, 0.6),
              unet=ml_collections.ConfigDict(dict(
                  model_channels=32, channel_mult=(1, 2, 2), num_res_blocks=1,
                  attention_resolutions=(), num_heads=1, dropout=0.0,
                  use_scale_shift_norm=False, resblock_updown=True,
                  use_middle_attention=False)))))),
      optim=common.optim(learning_rate=3e-4, warmup_steps=200, grad_clip_norm=1.0,
                         ema_decay=0.999),
      train=common.train(batch_size=64, num_steps=3000, sample_every=1000,
                         num_samples=16),
      # karlo's defaults: prior 25 steps at guidance 4, decoder at 8 (unCLIP's
      # pipeline and diffusers' UnCLIPPipeline alike); DDIM here for every model.
      # bipartite_etas: the DDIM eta of the decoder's bipartite variations (x_T by
      # DDIM inversion, then decoded with eta > 0: unCLIP section 3.1), one column
      # block each in the variations picture.
      sample=ml_collections.ConfigDict(dict(
          num_steps=25, eta=0.0, prior_num_steps=25, prior_guidance_scale=4.0,
          decoder_guidance_scale=8.0, prior_candidates=2, bipartite_etas=(0.5, 1.0))),
      eval=common.evaluation(batch_size=100, num_examples=500))
  return c


def tiny(c: ml_collections.ConfigDict) -> None:
  """Seconds, for tests: T = 100, DDIM-5, 4 steps of batch 8, the narrowest networks
  (CompVis' GroupNorm has 32 groups: 32 channels)."""
  m = c.model
  m.prior.update(width=32, layers=1, heads=2, stats_examples=64)
  m.decoder.update(xf_width=16)
  m.decoder.unet.update(model_channels=32, channel_mult=(1,), num_res_blocks=1,
                        attention_resolutions=(1,), num_head_channels=16)
  m.upsampler.unet.update(model_channels=32, channel_mult=(1,), num_res_blocks=1)
  c.diffusion.num_steps = 100
  c.optim.warmup_steps = 1
  c.sample.update(num_steps=5, prior_num_steps=5)
  c.train.update(common.tiny_train())
  c.eval.update(batch_size=8, num_examples=16)
  if "num_samples" in c.eval:
    c.eval.update(num_samples=16, sample_batch_size=8)


def paper(c: ml_collections.ConfigDict) -> None:
  """karlo's networks over CLIP ViT-L/14 (768-d embeddings, 77 tokens of width 768):
  the prior (configs/prior_1B_vit_l.yaml: 1,022,028,544 parameters), the 64x64 decoder
  (configs/decoder_900M_vit_l.yaml: 893,318,086, with its learned-variance channels)
  and each 64 -> 256 upsampler (configs/improved_sr_64_256_1.4B.yaml: two of
  691,579,523)."""
  m = c.model
  m.update(clip_dim=768, text_width=768, text_length=77, image_channels=3)
  if m.role != "prior":
    c.diffusion.parameterization = "eps"
  m.prior.update(width=2048, layers=20, heads=32, final_ln=True, text_drop=0.1)
  m.decoder.update(resolution=64, xf_width=1536, clip_tokens=4, text=True,
                   learn_sigma=True)
  m.decoder.unet.update(model_channels=320, channel_mult=(1, 2, 3, 4), num_res_blocks=3,
                        attention_resolutions=(2, 4, 8), num_head_channels=64,
                        dropout=0.1, use_scale_shift_norm=True, resblock_updown=True)
  m.upsampler.update(low_resolution=64)
  m.upsampler.unet.update(model_channels=320, channel_mult=(1, 2, 3, 4),
                          num_res_blocks=3, attention_resolutions=(), num_heads=1,
                          dropout=0.0, use_scale_shift_norm=False,
                          resblock_updown=True, use_middle_attention=False)
