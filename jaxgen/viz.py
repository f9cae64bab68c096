"""Image grids and strips, saved as PNG."""
from __future__ import annotations

import math
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from jaxgen.errors import UserError


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


def image_format(path: str) -> str:
  """PIL's format for the extension of ``path`` (PNG for .png, JPEG for .jpg, ...); a
  ``UserError`` for an extension that names no image format."""
  ext = os.path.splitext(path)[1].lower()
  found = Image.registered_extensions().get(ext)
  if found is None:
    raise UserError(f"{path}: {ext or 'no extension'} names no image format; name "
                    f"the file .png (or .jpg, .webp, ...).")
  return found


def save_png(image: np.ndarray, path: str, min_size: int = 256) -> str:
  """Save a uint8 image, enlarged by an integer factor (nearest) to >= min_size, in
  the format its extension names (``image_format``; PNG for .png)."""
  fmt = image_format(path)
  image = np.asarray(image)
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  factor = max(1, int(math.ceil(min_size / max(image.shape[:2]))))
  image = image.repeat(factor, 0).repeat(factor, 1)
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  tmp = f"{path}.{os.getpid()}.tmp"
  try:
    Image.fromarray(image).save(tmp, format=fmt)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
  os.replace(tmp, path)
  return path


def code_map(codes, num_codes: int) -> np.ndarray:
  """The code indices of a batch (N, h, w) as grey levels (index / (K - 1)), one tile
  per image."""
  grey = np.round(255 * codes.astype(np.float64) / max(num_codes - 1, 1)).astype(np.uint8)
  return grid(grey[..., None], rows=4)


def usage_histogram(codes, num_codes: int, height: int = 64) -> np.ndarray:
  """A bar chart (uint8, white background) of how often each code occurs in
  ``codes``, codes in index order, one column per code (codes binned when K > 1024),
  bars scaled to the most frequent."""
  counts = np.bincount(codes.reshape(-1), minlength=num_codes).astype(np.float64)
  per_col = max(1, math.ceil(num_codes / 1024))
  counts = np.pad(counts, (0, -num_codes % per_col)).reshape(-1, per_col).sum(1)
  bars = np.round(height * counts / max(counts.max(), 1)).astype(int)
  image = np.full((height, len(counts)), 255, np.uint8)
  rows = np.arange(height)[:, None]
  image[rows >= height - bars[None, :]] = 0
  return image


def captioned_rows(captions, images, text_width: int = 330) -> np.ndarray:
  """One row per caption: the caption written out, then its images (rows, k, H, W, 3
  or 1) uint8 (a retrieval grid, or a caption's samples)."""
  if images.shape[-1] == 1:
    images = np.repeat(images, 3, -1)
  rows, k, h, w, _ = images.shape
  font = ImageFont.load_default()
  pad = 2
  canvas = Image.new("RGB", (text_width + k * (w + pad), rows * (h + pad)), (255,) * 3)
  draw = ImageDraw.Draw(canvas)
  for r, text_ in enumerate(captions):
    draw.text((2, r * (h + pad) + h // 2 - 6), text_, fill=(0, 0, 0), font=font)
    for j in range(k):
      canvas.paste(Image.fromarray(images[r, j]), (text_width + j * (w + pad), r * (h + pad)))
  return np.asarray(canvas)
