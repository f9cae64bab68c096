"""Per-batch preprocessing on the host, in numpy, deterministic given a numpy Generator.

Raw uint8 images become float32 in the configured range:
  resize -> random horizontal flip -> binarise or dequantise -> scale.
``scale='unit'`` gives [0, 1], ``'symmetric'`` gives [-1, 1]. Binarised images are
{0, 1} (unit) or {-1, 1} (symmetric). Dequantised images are (k + u) / 256 for a grey
level k and u ~ U[0, 1), then scaled; otherwise k / 255.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

SCALES = ("unit", "symmetric")
BINARIZE = ("", "dynamic", "fixed", "threshold")
FIXED_BINARIZATION_SEED = 1234


def validate(cfg):
  """Check the preprocessing fields of a data config; clear errors otherwise."""
  if cfg.get("scale", "unit") not in SCALES:
    raise ValueError(f"config.data.scale={cfg.scale!r}; use one of {SCALES}.")
  if (cfg.get("binarize") or "") not in BINARIZE:
    raise ValueError(f"config.data.binarize={cfg.binarize!r}; use one of "
                     f"{BINARIZE} ('' for none).")
  if cfg.get("binarize") and cfg.get("dequantize"):
    raise ValueError("config.data.binarize and config.data.dequantize exclude each "
                     "other: binary data has nothing to dequantise.")


def resize(images: np.ndarray, size, center_crop: bool = False) -> np.ndarray:
  """Bilinear (antialiased) resize of uint8 NHWC images to size = (H, W).

  With ``center_crop`` the aspect ratio is kept: the image is scaled so that it covers
  (H, W), then its centre is cropped (torchvision's Resize(min) + CenterCrop, as the
  DCGAN CelebA recipe does).
  """
  h, w = size
  if images.shape[1:3] == (h, w):
    return images
  in_h, in_w = images.shape[1:3]
  scale = max(h / in_h, w / in_w) if center_crop else None
  new_h, new_w = (max(h, round(in_h * scale)), max(w, round(in_w * scale))) if scale \
      else (h, w)
  top, left = (new_h - h) // 2, (new_w - w) // 2
  out = []
  for img in images:
    squeeze = img.shape[-1] == 1
    pil = Image.fromarray(img[..., 0] if squeeze else img)
    arr = np.asarray(pil.resize((new_w, new_h), Image.BILINEAR))[top:top + h, left:left + w]
    out.append(arr[..., None] if squeeze else arr)
  return np.stack(out)


def output_shape(cfg, raw_shape):
  if len(raw_shape) != 3 or not cfg.get("resize"):
    return tuple(raw_shape)
  return (*tuple(cfg.resize), raw_shape[-1])


def process(batch: dict, cfg, rng: np.random.Generator, train: bool,
            indices: np.ndarray) -> dict:
  """Preprocess a raw batch. ``indices`` (example indices) key fixed binarisation."""
  if "image" not in batch:
    return batch
  out = dict(batch)
  images = batch["image"]
  if cfg.get("resize"):
    images = resize(images, tuple(cfg.resize), cfg.get("center_crop", False))
  if train and cfg.get("random_flip"):
    flip = rng.uniform(size=len(images)) < 0.5
    images = np.where(flip[:, None, None, None], images[:, :, ::-1], images)
  x = images.astype(np.float32)
  mode = cfg.get("binarize") or ""
  if mode == "threshold":
    x = (x > 127.5).astype(np.float32)
  elif mode == "dynamic":
    x = (rng.uniform(size=x.shape) < x / 255).astype(np.float32)
  elif mode == "fixed":  # one Bernoulli draw per example, the same every epoch
    u = np.stack([np.random.default_rng([FIXED_BINARIZATION_SEED, int(i)])
                  .uniform(size=x.shape[1:]) for i in indices])
    x = (u < x / 255).astype(np.float32)
  elif cfg.get("dequantize"):
    x = (x + rng.uniform(size=x.shape).astype(np.float32)) / 256
  else:
    x = x / 255
  if cfg.get("scale", "unit") == "symmetric":
    x = 2 * x - 1
  out["image"] = x.astype(np.float32)
  return out
