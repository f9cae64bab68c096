"""What the image-to-image translation families (Pix2Pix, CycleGAN) share: the checks
of their data and the picture strips. (Their learning-rate schedule, constant then
linear to zero, is ``schedule="constant_then_linear"`` of ``base.make_optimizer``.)
"""
from __future__ import annotations

import numpy as np


def check_symmetric(config):
  """The generators end in tanh: images must be in [-1, 1]."""
  d = config.data
  if d.scale != "symmetric" or d.binarize:
    raise ValueError("The generators' tanh output models images in [-1, 1]: set "
                     "--config.data.scale=symmetric and --config.data.binarize=''.")


def to_unit(x):
  """[-1, 1] -> [0, 1], clipped."""
  import jax.numpy as jnp
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
