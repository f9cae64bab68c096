"""The ldm family's fields and their defaults (not a runnable config): ``base()`` is
what configs/ldm_*.py start from, ``tiny(c)`` what their ``tiny`` variants share.
``model.unet`` holds CompVis' ``unet_config.params`` under their names (in/out
channels and ``context_dim`` come from the stage and the text encoder; 0 takes them);
``model.text`` the jointly trained text encoder (LDM's transformer, small; its
``vocab_size`` and ``max_length`` 0 take the captions', ``dim_head`` 0 is width /
heads, ``logits_head`` keeps the unused vocabulary head that CompVis' count includes).
``latent.shape`` () takes the latents' shape from the stage (a paper config fixes it,
so that ``--mode=summary`` needs no stage); ``diffusion.linear_start`` / ``linear_end``
are CompVis' ends of the ``scaled_linear`` schedule."""
import ml_collections

from jaxgen import config_file

common = config_file.module_beside(__file__, "common")
ddpm = config_file.module_beside(__file__, "ddpm_base")


def unet(**changes) -> ml_collections.ConfigDict:
  """A small CompVis U-Net for 8 x 8 latents: 32 channels (CompVis' GroupNorm has 32
  groups: the narrowest), levels (1, 2), one ResNet block each, a SpatialTransformer
  (when conditioned) at both levels."""
  return ml_collections.ConfigDict(dict(dict(
      model_channels=32, channel_mult=(1, 2), num_res_blocks=1,
      attention_resolutions=(1, 2), num_heads=-1, num_head_channels=32,
      transformer_depth=1, dropout=0.0, context_dim=0), **changes))


def base() -> ml_collections.ConfigDict:
  c = ddpm.base()
  c.family = "ldm"
  c.stages = ml_collections.ConfigDict(dict(autoencoder=""))
  c.latent = ml_collections.ConfigDict(dict(scale_factor=0.0, scale_examples=1000,
                                            shape=()))
  c.diffusion.update(schedule="scaled_linear", linear_start=0.00085, linear_end=0.012)
  c.model = ml_collections.ConfigDict(dict(
      network="unet", conditioning="text", text_encoder="joint", p_uncond=0.1,
      num_classes=10, class_width=64, unet=unet(),
      text=ml_collections.ConfigDict(dict(width=64, layers=2, heads=4, dim_head=0,
                                          vocab_size=0, max_length=0,
                                          logits_head=False)),
      width=256, depth=4, dropout=0.0))  # the MLP denoiser (network="mlp")
  # CompVis' LitEma: decay 0.9999, warmed up as min(decay, (1 + n) / (10 + n)).
  c.optim.update(learning_rate=2e-4, warmup_steps=200, grad_clip_norm=1.0,
                 ema_decay=0.9999, ema_warmup=True)
  c.train.update(batch_size=64, num_steps=3000, sample_every=1000, num_samples=16)
  c.sample.update(guidance_scale=1.0)
  c.eval = common.mnist_classifier_eval(
      batch_size=100, num_examples=500, metrics=("fid", "caption_accuracy"),
      num_samples=500, sample_batch_size=100, reference_split="test",
      guidance_scales=(1.0, 2.0, 4.0, 8.0))
  return c


def tiny(c: ml_collections.ConfigDict) -> None:
  # CompVis' GroupNorm has 32 groups: 32 channels is the narrowest U-Net.
  c.model.unet.update(model_channels=32, channel_mult=(1,), num_res_blocks=1,
                      attention_resolutions=(1,), num_head_channels=16)
  c.model.update(class_width=16, width=16, depth=1)
  c.model.text.update(width=16, layers=1, heads=2)
  c.latent.scale_examples = 64
  ddpm.tiny(c)
  c.eval.update(batch_size=8, num_examples=16, num_samples=16, sample_batch_size=8,
                guidance_scales=(1.0, 3.0))


def adamw(learning_rate: float, ema_decay: float) -> ml_collections.ConfigDict:
  """``config.optim`` of CompVis' ``LatentDiffusion.configure_optimizers``: torch's
  AdamW (betas 0.9, 0.999, eps 1e-8, weight decay 0.01) at a constant rate, no warm-up,
  no clipping; the EMA of ``LitEma`` (decay ``ema_decay`` warmed up; 0 for their
  ``use_ema: False``)."""
  return common.optim(name="adamw", learning_rate=learning_rate, weight_decay=0.01,
                      schedule="constant", warmup_steps=0, grad_clip_norm=0.0,
                      ema_decay=ema_decay, ema_warmup=True)


def paper_tiny(c: ml_collections.ConfigDict, stage_config: str) -> None:
  """The ``tiny`` variant of a paper config, for tests: its conditioning, schedule and
  optimiser with ``tiny``'s networks, over the offline canvases of the stage that
  ``stage_config`` (``name:variant``, the config's STAGE_CONFIGS) trains, whose
  latents' shape it takes; the MNIST-classifier evaluation."""
  name, _, variant = stage_config.partition(":")
  c.data = config_file.sibling(__file__, name, variant or None).data
  c.latent.shape = ()
  fresh = base()
  c.model.unet, c.model.text = fresh.model.unet, fresh.model.text
  c.model.num_classes = fresh.model.num_classes
  c.eval = fresh.eval
  tiny(c)
  if c.model.conditioning != "text":  # caption_accuracy: of the text's samples
    c.eval.metrics = ("fid",)
  if c.model.conditioning == "none":
    c.eval.guidance_scales = ()
