"""The VQ-VAE paper's prior (van den Oord et al. 2017, section 3.2): the PixelCNN
family's networks (a Gated PixelCNN by default) over the (h, w) code grid of
``config.stages.autoencoder`` (a finished VQ-VAE run: integer codes, ``encode`` /
``decode``), a K-way categorical per code, class-conditional where
``config.model.num_classes`` is set; samples decode through the frozen decoder.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxgen import stages
from jaxgen.errors import ConfigError, StageError
from jaxgen.families.base import OneOptimizerTrainer
from jaxgen.stages import CodeAutoencoder
from jaxgen.families.pixelcnn.trainer import PixelCNNTrainer


class PixelCNNPriorTrainer(PixelCNNTrainer):
  """A categorical PixelCNN (gated by default) over a frozen VQ-VAE's code grid."""
  stage_roles = {"autoencoder": CodeAutoencoder}

  def __init__(self, config, spec, stages_):
    OneOptimizerTrainer.__init__(self, config, spec, stages_)  # not PixelCNN's checks
    stage = self.stages["autoencoder"]
    ae = stage.trainer
    latent = ae.latent_spec
    if not jnp.issubdtype(latent.dtype, jnp.integer) or not hasattr(ae, "num_codes"):
      raise StageError(
          f"config.stages.autoencoder={stage.path} is a {ae.config.family!r} run whose "
          f"latents are {latent.dtype} {tuple(latent.shape)}, not integer codes: the "
          f"PixelCNN prior models the codes of a VQ-VAE. Point it at a finished "
          f"configs/vqvae_mnist.py run.")
    stages.check_same_data(config.data, ae.config.data, stage.path)
    if config.model.likelihood != "categorical":
      raise ConfigError(f"config.model.likelihood={config.model.likelihood!r}: the prior "
                        f"is a K-way categorical over the stage's codes; use "
                        f"categorical.")
    self.autoencoder = ae
    self.scale = config.data.scale
    self.levels = int(ae.num_codes)
    self.image_shape = self.example_shape
    self.build_network(config, (*latent.shape, 1))

  def net_input(self, levels):
    """Codes enter the network one-hot (their indices have no order)."""
    return jax.nn.one_hot(levels[..., 0], self.levels)

  def networks(self):
    x = self.net_input(jnp.zeros((1, *self.shape), jnp.int32))
    kwargs = {"labels": jnp.zeros((1,), jnp.int32)} if self.num_classes else {}
    return {"prior": (self.net, (x,), kwargs)}

  def to_levels(self, images, frozen=None):
    x = (images + 1.0) / 2.0 if self.scale == "symmetric" else images
    codes = self.autoencoder.encode(frozen["autoencoder"], x)
    return jax.lax.stop_gradient(codes).astype(jnp.int32)[..., None]

  def from_levels(self, levels, frozen=None):
    return jnp.clip(self.autoencoder.decode(frozen["autoencoder"], levels[..., 0]), 0, 1)


Trainer = PixelCNNPriorTrainer
