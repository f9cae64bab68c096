"""Image files: read at their depth (``read_image``), and grids and strips saved in
the format their extension names."""
from __future__ import annotations

import math
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from jaxgen.errors import MissingInput, UserError


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


SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # PIL's modes of 16-bit grey PNGs
ALPHA = ("RGBA", "LA", "PA", "RGBa", "La")


def read_image(path: str, channels: int, size: tuple[int, int] | None = None,
               background: float = 0.0) -> np.ndarray:
  """The image file ``path`` as float32 (H, W, ``channels``) in [0, 1], resized
  (bilinear) to ``size`` = (width, height) if given. Grey levels are read at the
  file's depth (a 16-bit PNG's 0..65535 is scaled by 1 / 65535, not clipped at 255);
  an image with transparency is composited on ``background`` (the grey level the
  model's images have where nothing is drawn), and one whose picture is in its alpha
  channel alone, blank on that background, is refused. Every refusal is a
  ``UserError`` naming the file."""
  if channels not in (1, 3):
    raise UserError(f"Cannot read image files into {channels} channels (1 or 3).")
  try:
    img = Image.open(path)
    img.load()  # decode now: a truncated file is refused here, by name
  except FileNotFoundError:
    raise MissingInput(f"{path}: no such image file.") from None
  except (OSError, ValueError, SyntaxError) as e:  # UnidentifiedImageError: OSError
    raise UserError(f"{path} is not a readable image ({type(e).__name__}: {e}): "
                    f"remove it or replace it.") from None
  with img:
    if "transparency" in img.info and img.mode in ("P", "L", "RGB"):
      img = img.convert("RGBA")
    if img.mode in SIXTEEN_BIT:
      x = np.asarray(img, np.float64)
      if x.min() < 0 or x.max() > 65535:
        raise UserError(f"{path}: {img.mode} pixel values {x.min():g}..{x.max():g} "
                        f"are not 16-bit grey levels; save it as an 8- or 16-bit PNG.")
      x = (x / 65535)[..., None]
    elif img.mode == "F":
      raise UserError(f"{path} holds floating-point pixels (mode F); save it as an 8- "
                      f"or 16-bit PNG.")
    elif img.mode in ALPHA:
      rgba = np.asarray(img.convert("RGBA"), np.float64) / 255
      alpha = rgba[..., 3:]
      x = rgba[..., :3] * alpha + background * (1 - alpha)
      if np.ptp(x) < 1 / 255 < np.ptp(alpha):
        what = "black" if background == 0 else "white" if background == 1 else (
            f"grey {background:g}")
        raise UserError(
            f"{path} has its picture in the alpha channel (transparency) alone: "
            f"composited on the {what} background the model expects, it is blank. "
            f"Save it with the picture in its grey or colour levels (flattened on "
            f"a background that is not {what}).")
    else:
      mode = "L" if channels == 1 else "RGB"
      if size is not None:
        img = img.convert(mode).resize(size, Image.BILINEAR)
        size = None
      x = np.asarray(img.convert(mode), np.float64).reshape(
          img.size[1], img.size[0], channels) / 255
  if x.shape[-1] != channels:  # grey to RGB, or RGB to grey as PIL weighs it
    x = (np.repeat(x, 3, -1) if channels == 3 else
         x @ np.array([[0.299], [0.587], [0.114]]))
  if size is not None and tuple(size) != (x.shape[1], x.shape[0]):
    x = np.stack([np.asarray(Image.fromarray(c.astype(np.float32), "F").resize(
        size, Image.BILINEAR)) for c in np.moveaxis(x, -1, 0)], -1)
  return np.clip(x, 0, 1).astype(np.float32)


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
