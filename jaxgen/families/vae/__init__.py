"""The VAE (Kingma & Welling 2014): ``trainer.py`` (the ELBO loss, the IWAE bound,
the sampler, the pictures), ``networks.py`` (MLP and conv encoders and decoders).
Configs: configs/vae_mnist.py. Tests: tests/test_vae.py."""
