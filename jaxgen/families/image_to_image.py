"""What the image-to-image translation families (Pix2Pix, CycleGAN) share: their GAN
and L1 losses, the checks of their data and the picture strips. (Their learning-rate
schedule, constant then linear to zero, is ``schedule="constant_then_linear"`` of
``base.make_optimizer``.)
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax

from jaxgen.errors import ConfigError

# The GAN losses as junyanz/pytorch-CycleGAN-and-pix2pix ``GANLoss``: ``vanilla`` is
# BCEWithLogits against a target of 1 (real) or 0 (fake), ``lsgan`` the MSE against
# it; means over the batch and every PatchGAN patch.
TRANSLATION_GAN_LOSSES = ("vanilla", "lsgan")


def check_translation_kind(kind):
  """Refuse a GAN loss that is not one of ``TRANSLATION_GAN_LOSSES``."""
  if kind not in TRANSLATION_GAN_LOSSES:
    raise ConfigError(f"Unknown translation GAN loss {kind!r} (config.*.gan_loss); "
                      f"choose one of "
                      f"{', '.join(TRANSLATION_GAN_LOSSES)}.")


def translation_gan_loss(logits, target_is_real: bool, kind: str = "vanilla"):
  """The reference's ``GANLoss(logits, target_is_real)``."""
  check_translation_kind(kind)
  target = 1.0 if target_is_real else 0.0
  if kind == "lsgan":
    return jnp.mean((logits - target) ** 2)
  return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, jnp.full_like(logits,
                                                                            target)))


def translation_discriminator_loss(real_logits, fake_logits, kind: str = "vanilla"):
  """Both translation papers' discriminator loss: half the sum of the real and the
  fake term (the reference halves it "to slow down the rate at which D learns")."""
  return 0.5 * (translation_gan_loss(real_logits, True, kind)
                + translation_gan_loss(fake_logits, False, kind))


def l1_loss(x, y):
  """The mean absolute difference over all elements (PyTorch's L1Loss)."""
  return jnp.mean(jnp.abs(x - y))


def check_symmetric(config):
  """The generators end in tanh: images must be in [-1, 1]."""
  d = config.data
  if d.scale != "symmetric" or d.binarize:
    raise ConfigError("The generators' tanh output models images in [-1, 1]: set "
                      "--config.data.scale=symmetric and --config.data.binarize=''.")


def to_unit(x):
  """[-1, 1] -> [0, 1], clipped."""
  return jnp.clip((x + 1) / 2, 0.0, 1.0)


def as_rgb(x: np.ndarray, channels: int) -> np.ndarray:
  """Grey images repeated to ``channels`` channels (for strips of mixed images)."""
  return np.repeat(x, channels, -1) if x.shape[-1] == 1 and channels > 1 else x


def strips(*columns) -> np.ndarray:
  """uint8 rows of [column 0 | column 1 | ...], one row per example: each column
  (N, H, W, C) float in [0, 1]."""
  from jaxgen import viz
  channels = max(c.shape[-1] for c in columns)
  cols = [as_rgb(viz.to_uint8(np.asarray(c)), channels) for c in columns]
  n = len(cols[0])
  tiles = np.stack(cols, 1).reshape(n * len(cols), *cols[0].shape[1:])
  return viz.grid(tiles, rows=n)
