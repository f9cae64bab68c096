"""Per-batch preprocessing on the host, in numpy, deterministic given a numpy Generator.

Every image key of a batch (each uint8 array of rank 4: ``image``, ``source``,
``target``, ``domain_a``, ...) becomes float32 in the configured range:
  resize -> (train) random jitter crop -> (train) random horizontal flip ->
  binarise or dequantise -> scale.
Random jitter (``jitter_resize``: resize to that size first, then crop a random
window of ``resize``, as Pix2Pix's 286 -> 256) and flips are drawn once per example
for all its image keys when the dataset is paired, so source and target move
together; otherwise each key draws its own.
``scale='unit'`` gives [0, 1], ``'symmetric'`` gives [-1, 1]. Binarised images are
{0, 1} (unit) or {-1, 1} (symmetric). Dequantised images are (k + u) / 256 for a grey
level k and u ~ U[0, 1), then scaled; otherwise k / 255.
"""
from __future__ import annotations

import numpy as np

from jaxgen import viz
from jaxgen.errors import ConfigError
from PIL import Image

SCALES = ("unit", "symmetric")
BINARIZE = ("", "dynamic", "fixed", "threshold")
FIXED_BINARIZATION_SEED = 1234


def validate(cfg):
  """Check the preprocessing fields of a data config; clear errors otherwise."""
  if cfg.get("scale", "unit") not in SCALES:
    raise ConfigError(f"config.data.scale={cfg.scale!r}; use one of {SCALES}.")
  if (cfg.get("binarize") or "") not in BINARIZE:
    raise ConfigError(f"config.data.binarize={cfg.binarize!r}; use one of "
                      f"{BINARIZE} ('' for none).")
  if cfg.get("jitter_resize") and not cfg.get("resize"):
    raise ConfigError("config.data.jitter_resize needs config.data.resize, the size "
                      "of the random crop taken from the jittered image.")
  if cfg.get("jitter_resize") and any(
      j < r for j, r in zip(tuple(cfg.jitter_resize), tuple(cfg.resize))):
    raise ConfigError(f"config.data.jitter_resize={tuple(cfg.jitter_resize)} must be at "
                      f"least config.data.resize={tuple(cfg.resize)}.")
  if cfg.get("binarize") and cfg.get("dequantize"):
    raise ConfigError("config.data.binarize and config.data.dequantize exclude each "
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


def is_image(spec_or_array) -> bool:
  return len(spec_or_array.shape) == 3 and spec_or_array.dtype == np.uint8


def image_keys(batch: dict) -> list:
  return [k for k, v in batch.items() if v.ndim == 4 and v.dtype == np.uint8]


def output_spec(cfg, raw_spec: dict) -> dict:
  """The spec of one preprocessed example, from the raw spec (no data loaded)."""
  import jax
  out = {}
  for key, s in raw_spec.items():
    if is_image(s):
      shape = (*tuple(cfg.resize), s.shape[-1]) if cfg.get("resize") else s.shape
      out[key] = jax.ShapeDtypeStruct(tuple(shape), np.float32)
    else:
      out[key] = s
  return out


def _random_crop(images, size, offsets):
  h, w = size
  return np.stack([img[t:t + h, l:l + w] for img, (t, l) in zip(images, offsets)])


def process(batch: dict, cfg, rng: np.random.Generator, train: bool,
            indices: np.ndarray, paired: bool = True) -> dict:
  """Preprocess a raw batch. ``indices`` (example indices) key fixed binarisation."""
  out = dict(batch)
  keys = image_keys(batch)
  draws = {}  # per-example random transforms, shared by the keys of a pair
  for key in keys:
    if not paired or not draws:
      draws = _draw(batch[key], cfg, rng, train)
    out[key] = _process_images(batch[key], cfg, rng, indices, draws)
  return out


def _draw(images, cfg, rng, train):
  n = len(images)
  draws = {}
  if train and cfg.get("jitter_resize"):
    (jh, jw), (h, w) = tuple(cfg.jitter_resize), tuple(cfg.resize)
    draws["crop"] = np.stack([rng.integers(0, jh - h + 1, n),
                              rng.integers(0, jw - w + 1, n)], -1)
  if train and cfg.get("random_flip"):
    draws["flip"] = rng.uniform(size=n) < 0.5
  return draws


def _process_images(images, cfg, rng, indices, draws):
  if "crop" in draws:
    images = resize(images, tuple(cfg.jitter_resize), cfg.get("center_crop", False))
    images = _random_crop(images, tuple(cfg.resize), draws["crop"])
  elif cfg.get("resize"):
    images = resize(images, tuple(cfg.resize), cfg.get("center_crop", False))
  if "flip" in draws:
    images = np.where(draws["flip"][:, None, None, None], images[:, :, ::-1], images)
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
  return x.astype(np.float32)


def read_files(paths, shape, data_config, background: float = 0.0,
               seed: int = 0) -> np.ndarray:
  """Image files as the data pipeline gives a test batch of ``data_config``: float32
  (N, H, W, C) for ``shape`` = (H, W, C). Each file is read at its depth and resized
  (``viz.read_image``), quantised to the 8-bit levels the datasets hold, then
  preprocessed as test data (``process``, train=False: binarisation, dequantisation
  and scale as configured, random draws from ``seed``)."""
  h, w, c = shape
  x = np.stack([viz.read_image(p, c, (w, h), background) for p in paths])
  batch = {"image": viz.to_uint8(x)}
  return process(batch, data_config, np.random.default_rng(seed), train=False,
                 indices=np.arange(len(paths)))["image"]
