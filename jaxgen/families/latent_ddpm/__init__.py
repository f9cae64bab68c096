"""A DDPM over the latents of a frozen autoencoder stage: ``trainer.py``,
``networks.py`` (the MLP denoiser of vector latents). Configs:
configs/latent_ddpm_mnist.py. Tests: tests/test_latent_ddpm.py."""
