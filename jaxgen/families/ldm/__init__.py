"""Latent diffusion (Rombach et al. 2022): ``trainer.py`` (the stage's latents and
their scale factor, conditioning and its dropout, guidance, the eps loss, evaluation),
``networks.py`` (the MLP denoiser of vector latents, the class embedder). The U-Net is
shared (jaxgen/models/ldm_unet.py), so is the text encoder (jaxgen/models/ldm_text.py);
the first stages are families of their own (autoencoder_kl, vae, vqvae). Configs:
configs/ldm_*.py. Tests: tests/test_ldm.py, tests/test_ldm_variants.py (the paper
counts, concat conditioning, the vq and two-digit variants)."""
