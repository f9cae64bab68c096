"""The ddpm family's fields and their defaults: the MNIST-5k default of
configs/ddpm_mnist.py (T = 1000 linear betas, epsilon prediction, a 16-channel
U-Net, DDIM-50 samples). Not a runnable config: ``base()`` is what the family's
configs start from (configs/ldm_vae_mnist.py's too: the same diffusion over a
VAE's latents); ``tiny(c)`` is what their ``tiny`` variants share."""
import ml_collections

from jaxgen import config_file

common = config_file.module_beside(__file__, "common")


def diffusion() -> ml_collections.ConfigDict:
  """``config.diffusion``: T = 1000 linear betas, epsilon prediction, the fixed large
  variance (beta_t) of the reverse steps."""
  return ml_collections.ConfigDict(dict(
      schedule="linear", num_steps=1000, parameterization="eps",
      variance="fixedlarge"))


def sample() -> ml_collections.ConfigDict:
  """``config.sample``: DDIM with 50 steps, deterministic (eta 0), unguided
  (guidance scale 1: the conditional model alone; samplers.guided)."""
  return ml_collections.ConfigDict(dict(
      sampler="ddim", num_steps=50, eta=0.0, guidance_scale=1.0))


def base() -> ml_collections.ConfigDict:
  return common.config(
      "ddpm",
      data=common.mnist5k_data(scale="symmetric"),
      diffusion=diffusion(),
      model=ml_collections.ConfigDict(dict(
          ch=16, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(7,),
          dropout=0.1, num_groups=8, num_classes=0, label_dropout=0.1,
          time_embedding="sinusoidal", scale_shift=False)),
      optim=common.optim(warmup_steps=200, grad_clip_norm=1.0, ema_decay=0.999),
      train=common.train(batch_size=32, num_steps=7000, sample_every=2000),
      sample=sample(),
      eval=common.mnist_classifier_eval(batch_size=50, num_examples=100,
                                        metrics=common.DIGIT_METRICS))


def tiny(c: ml_collections.ConfigDict, **train) -> None:
  """Shrinks ``c``'s diffusion, training and sampling to seconds, for tests: T = 100,
  ``common.tiny_train(**train)``, DDIM-5 samples (configs/ldm_vae_mnist.py uses it
  too); each config shrinks its own network and evaluation."""
  c.diffusion.num_steps = 100
  c.optim.warmup_steps = 1
  c.sample.update(sampler="ddim", num_steps=5)
  c.train.update(common.tiny_train(**train))
  c.eval.metrics = common.tiny_metrics(c.eval.metrics)
