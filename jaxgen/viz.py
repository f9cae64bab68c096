"""Image grids and strips, saved as PNG."""
from __future__ import annotations

import math
import os

import numpy as np
from PIL import Image


def to_uint8(images, scale: str = "unit") -> np.ndarray:
  """Float images in [0, 1] (``unit``) or [-1, 1] (``symmetric``) to uint8."""
  x = np.asarray(images, np.float32)
  if scale == "symmetric":
    x = (x + 1) / 2
  return np.clip(np.round(x * 255), 0, 255).astype(np.uint8)


def grid(images, rows: int | None = None, pad: int = 1) -> np.ndarray:
  """Tile N images (N, H, W, C) into one image, ``rows`` rows (default: square)."""
  images = np.asarray(images)
  if images.ndim == 3:
    images = images[..., None]
  n, h, w, c = images.shape
  rows = rows or int(math.ceil(math.sqrt(n)))
  cols = int(math.ceil(n / rows))
  out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c),
                255 if images.dtype == np.uint8 else 1, images.dtype)
  for i, img in enumerate(images):
    r, k = divmod(i, cols)
    out[pad + r * (h + pad):pad + r * (h + pad) + h,
        pad + k * (w + pad):pad + k * (w + pad) + w] = img
  return out


def save_png(image: np.ndarray, path: str, min_size: int = 256) -> str:
  """Save a uint8 image, enlarged by an integer factor (nearest) to >= min_size."""
  image = np.asarray(image)
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  factor = max(1, int(math.ceil(min_size / max(image.shape[:2]))))
  image = image.repeat(factor, 0).repeat(factor, 1)
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  tmp = path + ".tmp.png"
  Image.fromarray(image).save(tmp)
  os.replace(tmp, path)
  return path
