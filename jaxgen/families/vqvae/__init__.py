"""The VQ-VAE (van den Oord et al. 2017): ``trainer.py`` (the EMA or loss codebook,
dead-code restarts, the Autoencoder stage), ``networks.py`` (sonnet's encoder and
decoder), ``losses.py`` (codebook and commitment terms). The quantiser is shared
(jaxgen/models/quantizer.py). Configs: configs/vqvae_*.py. Tests:
tests/test_vqvae.py."""
