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
ddpm = config_file.module_beside(__file__, "ddpm_base")

# The config that trains each frozen stage (its ``tiny`` variant for this one's).
STAGE_CONFIGS = {"autoencoder": "vae_mnist"}


def get_config(arg=None):
  variants = common.parse_arg(arg, "latent_ddpm_mnist", {"tiny"})
  c = ddpm.base()
  common.over_stages(c, "latent_ddpm", STAGE_CONFIGS)
  c.latent = ml_collections.ConfigDict(dict(scale_factor=1.0))
  c.model = ml_collections.ConfigDict(dict(
      width=256, depth=4, dropout=0.0, num_classes=0, label_dropout=0.1))
  c.train.update(batch_size=128, num_steps=4000)
  c.eval = common.mnist_classifier_eval()
  if "tiny" in variants:
    c.model.update(width=16, depth=1)
    ddpm.tiny(c)
    c.eval.update(batch_size=8, num_examples=16, num_samples=100, sample_batch_size=50)
  return c
