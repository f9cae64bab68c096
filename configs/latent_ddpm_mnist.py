r"""Latent diffusion on MNIST-5k: a DDPM over the 16-d latents of a frozen VAE stage.

  python -m jaxgen.main --config=configs/vae_mnist.py --workdir=/tmp/vae_mnist
  python -m jaxgen.main --config=configs/latent_ddpm_mnist.py --workdir=/tmp/ldm_mnist \
      --config.stages.autoencoder=/tmp/vae_mnist

Variants (comma-separated after the colon):
  (default) over a finished configs/vae_mnist.py run (conv VAE, 16-d latent,
            posterior means as latents): T = 1000 linear betas, epsilon prediction, a
            residual MLP noise predictor (width 256, 4 blocks), batch 128, 4,000
            steps, EMA 0.999; DDIM-50 samples decoded by the VAE.
  tiny      seconds: for tests, over a configs/vae_mnist.py:tiny stage.
"""
import ml_collections

from jaxgen import config_file

common = config_file.module_beside(__file__, "common")

# The config that trains each frozen stage (its ``tiny`` variant for this one's).
STAGE_CONFIGS = {"autoencoder": "vae_mnist"}


def get_config(arg=None):
  variants = common.parse_arg(arg, "latent_ddpm_mnist", {"tiny"})
  c = ml_collections.ConfigDict()
  c.family = "latent_ddpm"
  c.seed = 0
  c.compute = common.compute()
  c.stages = ml_collections.ConfigDict(dict(autoencoder=""))
  # The images as the VAE stage saw them (configs/vae_mnist.py's data block).
  c.data = common.mnist5k_data(binarize="dynamic")
  c.latent = ml_collections.ConfigDict(dict(scale_factor=1.0))
  c.diffusion = ml_collections.ConfigDict(dict(
      schedule="linear", num_steps=1000, parameterization="eps",
      variance="fixedlarge"))
  c.model = ml_collections.ConfigDict(dict(
      width=256, depth=4, dropout=0.0, num_classes=0, label_dropout=0.1))
  c.optim = ml_collections.ConfigDict(dict(
      name="adam", learning_rate=1e-3, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0,
      schedule="cosine", warmup_steps=200, end_factor=0.05, grad_clip_norm=1.0,
      ema_decay=0.999))
  c.train = ml_collections.ConfigDict(dict(
      batch_size=128, num_steps=4000, log_every=50, checkpoint_every=1000,
      sample_every=2000, keep_checkpoints=3, num_samples=64))
  c.sample = ml_collections.ConfigDict(dict(
      sampler="ddim", num_steps=50, eta=0.0, guidance_scale=0.0))
  c.eval = common.mnist_classifier_eval(split="test", batch_size=100, num_examples=0)
  if "tiny" in variants:
    c.diffusion.num_steps = 100
    c.model.update(width=16, depth=1)
    c.train.update(batch_size=8, num_steps=4, log_every=2, checkpoint_every=2,
                   sample_every=2, num_samples=4)
    c.optim.warmup_steps = 1
    c.sample.num_steps = 5
    c.eval.update(batch_size=8, num_examples=16, num_samples=100, sample_batch_size=50)
  return c
