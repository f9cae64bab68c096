"""The KL-regularised autoencoder of latent diffusion (Rombach et al. 2022), the first
stage of the ``ldm`` family: ``trainer.py`` (CompVis' two-optimiser step, the
adaptive weight, the Autoencoder stage, evaluation and pictures), ``losses.py``
(``LPIPSWithDiscriminator``'s terms and the learned logvar). The network is shared
(jaxgen/models/autoencoder_kl.py: CompVis' Encoder / Decoder, AutoencoderKL,
VQModel), as are the PatchGAN (jaxgen/models/image_to_image.py) and LPIPS
(jaxgen/metrics/lpips.py, weights through jaxgen/weights/lpips.py). Configs:
configs/autoencoder_kl_*.py. Tests: tests/test_autoencoder_kl.py, tests/test_lpips.py."""
