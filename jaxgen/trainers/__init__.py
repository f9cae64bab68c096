"""One trainer per model family, selected by ``config.family``."""
from __future__ import annotations

import importlib

# family name -> "module:class"; modules are imported only when used.
FAMILIES = {
    "vae": "jaxgen.trainers.vae:VAETrainer",
    "ddpm": "jaxgen.trainers.ddpm:DDPMTrainer",
    "latent_ddpm": "jaxgen.trainers.latent_ddpm:LatentDDPMTrainer",
    "gan": "jaxgen.trainers.gan:GANTrainer",
    "stylegan2": "jaxgen.trainers.stylegan2:StyleGAN2Trainer",
    "pix2pix": "jaxgen.trainers.pix2pix:Pix2PixTrainer",
    "cyclegan": "jaxgen.trainers.cyclegan:CycleGANTrainer",
    "vqvae": "jaxgen.trainers.vqvae:VQVAETrainer",
    "pixelcnn": "jaxgen.trainers.pixelcnn:PixelCNNTrainer",
    "pixelcnn_prior": "jaxgen.trainers.pixelcnn:PixelCNNPriorTrainer",
    "dvae": "jaxgen.trainers.dvae:DVAETrainer",
}


def family_class(config):
  """The Trainer class of ``config.family``."""
  family = config.get("family")
  if family not in FAMILIES:
    raise ValueError(f"Unknown config.family {family!r}; available: "
                     f"{', '.join(sorted(FAMILIES))}.")
  module, cls = FAMILIES[family].split(":")
  return getattr(importlib.import_module(module), cls)
