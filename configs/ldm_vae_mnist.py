r"""Latent diffusion in its smallest form: an MLP denoiser over the 16-d latents (the
posterior means) of a frozen dense VAE on MNIST-5k.

  python -m jaxgen.main --config=configs/vae_mnist.py --workdir=/tmp/vae_mnist
  python -m jaxgen.main --config=configs/ldm_vae_mnist.py --workdir=/tmp/ldm_vae \
      --config.stages.autoencoder=/tmp/vae_mnist

Variants (comma-separated after the colon):
  (default) unconditional over a finished configs/vae_mnist.py run: T = 1000 linear
            betas, epsilon prediction, a residual MLP (width 256, 4 blocks), batch
            128, 4,000 steps, EMA 0.999, scale factor 1; DDIM-50 samples decoded by
            the VAE.
  tiny      seconds: for tests, over a configs/vae_mnist.py:tiny stage.
"""
from jaxgen import config_file

common = config_file.module_beside(__file__, "common")
ldm = config_file.module_beside(__file__, "ldm_base")
ddpm = config_file.module_beside(__file__, "ddpm_base")

# The config that trains each frozen stage (its ``tiny`` variant for this one's).
STAGE_CONFIGS = {"autoencoder": "vae_mnist"}


def get_config(arg=None):
  variants = common.parse_arg(arg, "ldm_vae_mnist", {"tiny"})
  c = ldm.base()
  common.over_stages(c, "ldm", STAGE_CONFIGS)
  c.latent.scale_factor = 1.0
  c.diffusion.schedule = "linear"
  c.model.update(network="mlp", conditioning="none", p_uncond=0.0)
  c.train.update(batch_size=128, num_steps=4000, sample_every=2000, num_samples=64)
  c.optim = ddpm.base().optim  # DDPM's: Adam 2e-4 (ldm_base's is the U-Net's)
  c.eval = common.mnist_classifier_eval(metrics=common.DIGIT_METRICS)
  if "tiny" in variants:
    c.model.update(width=16, depth=1)
    ddpm.tiny(c)
    c.eval.update(batch_size=8, num_examples=16, num_samples=100, sample_batch_size=50)
  return c
