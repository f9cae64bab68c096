"""The FID Inception-v3 network in Flax, its weights, its input conventions, its features.

``InceptionV3`` is pytorch-fid's ``FIDInceptionV3`` (the 2015-12-05 TensorFlow graph that
TTUR's FID uses): torchvision's Inception-v3 with the FIDInceptionA/C/E_1/E_2 blocks,
average pools that ignore padding, a max pool in the last block, BatchNorm with eps 1e-3
and running statistics, and a 2048 -> 1008 classifier. ``load_variables`` converts
pytorch-fid's ``.pth`` weights (read without torch) once into a cached ``.npz``.

Two input conventions (``mode``) exist, and FIDs computed under one are not comparable
with FIDs under the other:

* ``"tf"`` (default), what papers report (TTUR, torch-fidelity): uint8 images, TF1
  bilinear resize to 299 without half-pixel centres, then (x - 128) / 128.
* ``"pytorch-fid"``, pytorch-fid 0.3.0: float images in [0, 1], torch bilinear resize to
  299 (``align_corners=False``: half-pixel centres, no antialiasing), then 2x - 1.

``features_and_logits`` computes pool3 features (N, 2048) and the logits (N, 1008) that
the Inception Score uses, from a host batch that ``prepare_batch`` checks;
``features.get("inception")`` streams any number of images through them, batch-sharded
over the device mesh.
"""
from __future__ import annotations

import functools
import os
import pathlib
import tempfile

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.weights import torch_pickle
from jaxgen import weights as weights_lib

MODES = ("tf", "pytorch-fid")
INPUT_SIZE = 299
NUM_FEATURES = 2048
NUM_CLASSES = 1008
HIGHEST = jax.lax.Precision.HIGHEST


# ---------------------------------------------------------------------------------------
# The network. Module and parameter names follow the torch state dict's keys.


class BasicConv2d(nn.Module):
  """Convolution without bias, BatchNorm (running statistics, eps 1e-3), ReLU."""
  features: int
  kernel_size: tuple[int, int]
  strides: int = 1
  padding: tuple[int, int] = (0, 0)

  @nn.compact
  def __call__(self, x):
    x = nn.Conv(self.features, self.kernel_size, strides=self.strides,
                padding=[(p, p) for p in self.padding], use_bias=False, precision=HIGHEST,
                name="conv")(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=1e-3, name="bn")(x)
    return nn.relu(x)


def _avg_pool_3x3(x):
  """3x3 average pool, stride 1, over the unpadded pixels only (TF's SAME average pool)."""
  return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)),
                     count_include_pad=False)


def _max_pool_3x3(x, strides=1, padding=1):
  return nn.max_pool(x, (3, 3), strides=(strides, strides),
                     padding=((padding, padding), (padding, padding)))


class FIDInceptionA(nn.Module):
  pool_features: int

  @nn.compact
  def __call__(self, x):
    branch1x1 = BasicConv2d(64, (1, 1), name="branch1x1")(x)
    branch5x5 = BasicConv2d(48, (1, 1), name="branch5x5_1")(x)
    branch5x5 = BasicConv2d(64, (5, 5), padding=(2, 2), name="branch5x5_2")(branch5x5)
    branch3x3dbl = BasicConv2d(64, (1, 1), name="branch3x3dbl_1")(x)
    branch3x3dbl = BasicConv2d(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(branch3x3dbl)
    branch3x3dbl = BasicConv2d(96, (3, 3), padding=(1, 1), name="branch3x3dbl_3")(branch3x3dbl)
    branch_pool = BasicConv2d(self.pool_features, (1, 1), name="branch_pool")(_avg_pool_3x3(x))
    return jnp.concatenate([branch1x1, branch5x5, branch3x3dbl, branch_pool], axis=-1)


class InceptionB(nn.Module):
  """The 35x35 -> 17x17 reduction (Mixed_6a), as in torchvision."""

  @nn.compact
  def __call__(self, x):
    branch3x3 = BasicConv2d(384, (3, 3), strides=2, name="branch3x3")(x)
    branch3x3dbl = BasicConv2d(64, (1, 1), name="branch3x3dbl_1")(x)
    branch3x3dbl = BasicConv2d(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(branch3x3dbl)
    branch3x3dbl = BasicConv2d(96, (3, 3), strides=2, name="branch3x3dbl_3")(branch3x3dbl)
    branch_pool = _max_pool_3x3(x, strides=2, padding=0)
    return jnp.concatenate([branch3x3, branch3x3dbl, branch_pool], axis=-1)


class FIDInceptionC(nn.Module):
  channels_7x7: int

  @nn.compact
  def __call__(self, x):
    c7 = self.channels_7x7
    branch1x1 = BasicConv2d(192, (1, 1), name="branch1x1")(x)
    branch7x7 = BasicConv2d(c7, (1, 1), name="branch7x7_1")(x)
    branch7x7 = BasicConv2d(c7, (1, 7), padding=(0, 3), name="branch7x7_2")(branch7x7)
    branch7x7 = BasicConv2d(192, (7, 1), padding=(3, 0), name="branch7x7_3")(branch7x7)
    branch7x7dbl = BasicConv2d(c7, (1, 1), name="branch7x7dbl_1")(x)
    branch7x7dbl = BasicConv2d(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(branch7x7dbl)
    branch7x7dbl = BasicConv2d(c7, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(branch7x7dbl)
    branch7x7dbl = BasicConv2d(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(branch7x7dbl)
    branch7x7dbl = BasicConv2d(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(branch7x7dbl)
    branch_pool = BasicConv2d(192, (1, 1), name="branch_pool")(_avg_pool_3x3(x))
    return jnp.concatenate([branch1x1, branch7x7, branch7x7dbl, branch_pool], axis=-1)


class InceptionD(nn.Module):
  """The 17x17 -> 8x8 reduction (Mixed_7a), as in torchvision."""

  @nn.compact
  def __call__(self, x):
    branch3x3 = BasicConv2d(192, (1, 1), name="branch3x3_1")(x)
    branch3x3 = BasicConv2d(320, (3, 3), strides=2, name="branch3x3_2")(branch3x3)
    branch7x7x3 = BasicConv2d(192, (1, 1), name="branch7x7x3_1")(x)
    branch7x7x3 = BasicConv2d(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(branch7x7x3)
    branch7x7x3 = BasicConv2d(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(branch7x7x3)
    branch7x7x3 = BasicConv2d(192, (3, 3), strides=2, name="branch7x7x3_4")(branch7x7x3)
    branch_pool = _max_pool_3x3(x, strides=2, padding=0)
    return jnp.concatenate([branch3x3, branch7x7x3, branch_pool], axis=-1)


class FIDInceptionE(nn.Module):
  """FIDInceptionE_1 (``max_pool=False``) and FIDInceptionE_2 (``max_pool=True``).

  The FID graph's last block pools with a max where the paper has an average.
  """
  max_pool: bool

  @nn.compact
  def __call__(self, x):
    branch1x1 = BasicConv2d(320, (1, 1), name="branch1x1")(x)
    branch3x3 = BasicConv2d(384, (1, 1), name="branch3x3_1")(x)
    branch3x3 = jnp.concatenate([
        BasicConv2d(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(branch3x3),
        BasicConv2d(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(branch3x3),
    ], axis=-1)
    branch3x3dbl = BasicConv2d(448, (1, 1), name="branch3x3dbl_1")(x)
    branch3x3dbl = BasicConv2d(384, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(branch3x3dbl)
    branch3x3dbl = jnp.concatenate([
        BasicConv2d(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(branch3x3dbl),
        BasicConv2d(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(branch3x3dbl),
    ], axis=-1)
    pooled = _max_pool_3x3(x) if self.max_pool else _avg_pool_3x3(x)
    branch_pool = BasicConv2d(192, (1, 1), name="branch_pool")(pooled)
    return jnp.concatenate([branch1x1, branch3x3, branch3x3dbl, branch_pool], axis=-1)


class InceptionV3(nn.Module):
  """FID Inception-v3 on preprocessed (N, 299, 299, 3) images.

  Returns ``pool3`` (N, 2048), the global average pool of the last block, and
  ``logits`` (N, 1008), the classifier with its bias.
  """

  @nn.compact
  def __call__(self, x):
    x = BasicConv2d(32, (3, 3), strides=2, name="Conv2d_1a_3x3")(x)
    x = BasicConv2d(32, (3, 3), name="Conv2d_2a_3x3")(x)
    x = BasicConv2d(64, (3, 3), padding=(1, 1), name="Conv2d_2b_3x3")(x)
    x = _max_pool_3x3(x, strides=2, padding=0)
    x = BasicConv2d(80, (1, 1), name="Conv2d_3b_1x1")(x)
    x = BasicConv2d(192, (3, 3), name="Conv2d_4a_3x3")(x)
    x = _max_pool_3x3(x, strides=2, padding=0)
    x = FIDInceptionA(32, name="Mixed_5b")(x)
    x = FIDInceptionA(64, name="Mixed_5c")(x)
    x = FIDInceptionA(64, name="Mixed_5d")(x)
    x = InceptionB(name="Mixed_6a")(x)
    x = FIDInceptionC(128, name="Mixed_6b")(x)
    x = FIDInceptionC(160, name="Mixed_6c")(x)
    x = FIDInceptionC(160, name="Mixed_6d")(x)
    x = FIDInceptionC(192, name="Mixed_6e")(x)
    x = InceptionD(name="Mixed_7a")(x)
    x = FIDInceptionE(max_pool=False, name="Mixed_7b")(x)
    x = FIDInceptionE(max_pool=True, name="Mixed_7c")(x)
    pool3 = jnp.mean(x, axis=(1, 2))
    logits = nn.Dense(NUM_CLASSES, precision=HIGHEST, name="fc")(pool3)
    return {"pool3": pool3, "logits": logits}


# ---------------------------------------------------------------------------------------
# Weights: pytorch-fid's state dict -> flax variables, converted once and cached.


@functools.cache
def _variable_shapes() -> dict[str, tuple[int, ...]]:
  """'params/Mixed_5b/branch1x1/conv/kernel' -> shape, for every variable of the network."""
  variables = jax.eval_shape(InceptionV3().init, jax.random.key(0),
                             jax.ShapeDtypeStruct((1, INPUT_SIZE, INPUT_SIZE, 3), jnp.float32))
  flat = jax.tree_util.tree_flatten_with_path(variables)[0]
  return {"/".join(k.key for k in path): leaf.shape for path, leaf in flat}


def convert_state_dict(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """pytorch-fid's state dict (torch names and layouts) -> flat flax variables.

  Convolution kernels go from OIHW to HWIO and the classifier's weight is transposed;
  BatchNorm's weight/bias become scale/bias and its running statistics ``batch_stats``.
  Raises ValueError naming missing, unexpected and misshapen entries.
  """
  flat, torch_names = {}, {}
  for key, value in state.items():
    *module, leaf = key.split(".")
    module = "/".join(module)
    value = np.asarray(value)
    if leaf == "num_batches_tracked":  # a BatchNorm training counter
      continue
    if leaf == "weight" and value.ndim == 4:
      name, value = f"params/{module}/kernel", value.transpose(2, 3, 1, 0)
    elif leaf == "weight" and value.ndim == 2:
      name, value = f"params/{module}/kernel", value.T
    elif leaf == "weight":
      name = f"params/{module}/scale"
    elif leaf == "bias":
      name = f"params/{module}/bias"
    elif leaf == "running_mean":
      name = f"batch_stats/{module}/mean"
    elif leaf == "running_var":
      name = f"batch_stats/{module}/var"
    else:
      name = key
    flat[name] = np.ascontiguousarray(value, np.float32)
    torch_names[name] = key
  expected = _variable_shapes()
  missing = sorted(set(expected) - set(flat))
  unexpected = sorted(torch_names[n] for n in set(flat) - set(expected))
  misshapen = sorted(f"{torch_names[n]} {state[torch_names[n]].shape}" for n in flat
                     if n in expected and flat[n].shape != expected[n])
  if missing or unexpected or misshapen:
    def some(names):
      return ", ".join(names[:5]) + (f" (and {len(names) - 5} more)" if len(names) > 5 else "")
    problems = [f"{what}: {some(names)}" for what, names in (
        ("missing", missing), ("unexpected", unexpected), ("wrong shape", misshapen)) if names]
    raise ValueError("The state dict is not pytorch-fid's FID Inception-v3 (" +
                     "; ".join(problems) + "). Use pt_inception-2015-12-05-6726825d.pth.")
  return flat


def _unflatten(flat: dict[str, np.ndarray]) -> dict:
  tree = {}
  for name, value in flat.items():
    *parents, leaf = name.split("/")
    node = tree
    for parent in parents:
      node = node.setdefault(parent, {})
    node[leaf] = value
  return tree


def load_variables(path) -> dict:
  """Flax variables (``params`` and ``batch_stats``) from pytorch-fid's ``.pth`` weights.

  The first call converts the file into ``<cache_dir>/inception_<sha256>.npz`` (keyed by
  the file's SHA-256, so different weights files get different caches); later calls
  read that cache.
  """
  path = pathlib.Path(path)
  cache = weights_lib.cache_dir() / f"inception_{weights_lib.sha256(path)}.npz"
  if cache.is_file():
    with np.load(cache) as f:
      flat = {name: f[name] for name in f.files}
    if {n: v.shape for n, v in flat.items()} != _variable_shapes():
      raise weights_lib.WeightsError(f"The converted weights {cache} do not fit the network "
                                     "(written by another version?); delete the file.")
    return _unflatten(flat)
  try:
    state = torch_pickle.load_state_dict(path)
  except torch_pickle.TorchPickleError as e:
    raise weights_lib.WeightsError(str(e)) from e
  try:
    flat = convert_state_dict(state)
  except ValueError as e:
    raise weights_lib.WeightsError(f"{path}: {e}") from e
  cache.parent.mkdir(parents=True, exist_ok=True)
  # Write next to the target and rename, so that no reader ever sees a partial file.
  fd, tmp = tempfile.mkstemp(dir=cache.parent, suffix=".npz.part")
  try:
    with os.fdopen(fd, "wb") as f:
      np.savez(f, **flat)
    os.replace(tmp, cache)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  return _unflatten(flat)


# ---------------------------------------------------------------------------------------
# Input conventions.


def _source_pixels(in_size: int, out_size: int, half_pixel_centers: bool):
  """Per output pixel: the two input pixels it interpolates and the weight of the second.

  With half-pixel centres (torch, ``align_corners=False``) output pixel d samples input
  coordinate (d + 0.5) * in / out - 0.5, clamped at 0; without them (TF1's
  ``resize_bilinear``) it samples d * in / out.
  """
  scale = in_size / out_size
  dst = np.arange(out_size, dtype=np.float64)
  src = np.maximum((dst + 0.5) * scale - 0.5, 0.0) if half_pixel_centers else dst * scale
  lo = np.floor(src).astype(np.int32)
  hi = np.minimum(lo + 1, in_size - 1)
  return lo, hi, (src - lo).astype(np.float32)


def resize_bilinear(images, size: tuple[int, int], *, half_pixel_centers: bool) -> jax.Array:
  """Bilinear resize of (N, H, W, C) images to ``size`` = (height, width), in float32.

  No antialiasing, also when downsampling (neither reference filters). Interpolates
  along the width, then along the height, like both references.
  """
  x = jnp.asarray(images, jnp.float32)
  for axis, out_size in ((2, size[1]), (1, size[0])):
    if x.shape[axis] == out_size:  # both conventions map pixels onto themselves
      continue
    lo, hi, frac = _source_pixels(x.shape[axis], out_size, half_pixel_centers)
    a, b = jnp.take(x, lo, axis=axis), jnp.take(x, hi, axis=axis)
    x = a + (b - a) * frac.reshape([-1 if i == axis else 1 for i in range(4)])
  return x


@functools.partial(jax.jit, static_argnames="mode")
def _transform(images, mode: str) -> jax.Array:
  """Checked images -> the network's input (N, 299, 299, 3) under ``mode``."""
  size = (INPUT_SIZE, INPUT_SIZE)
  if mode == "tf":
    x = (resize_bilinear(images, size, half_pixel_centers=False) - 128.0) / 128.0
  else:
    x = 2.0 * resize_bilinear(images, size, half_pixel_centers=True) - 1.0
  return jnp.broadcast_to(x, x.shape[:3] + (3,))  # grey -> RGB


def _check_mode(mode: str) -> None:
  if mode not in MODES:
    raise ValueError(f"Unknown Inception input mode {mode!r}; use 'tf' (uint8 images, the "
                     "convention of published FIDs) or 'pytorch-fid' (float images in [0, 1]).")


def _check_layout(images: np.ndarray, mode: str) -> None:
  """Rank, channels and dtype; the values are checked by ``_check_unit_range``."""
  shape = images.shape
  nchw = len(shape) == 4 and shape[1] in (1, 3) and shape[-1] not in (1, 3)
  if len(shape) != 4:
    hint = " For a single image use images[None]." if len(shape) == 3 else ""
    raise ValueError(f"Images must be an (N, H, W, C) array, got shape {shape}.{hint}")
  if shape[-1] not in (1, 3):
    hint = (" They look like (N, C, H, W): transpose with images.transpose(0, 2, 3, 1)."
            if nchw else " For RGBA drop the alpha channel with images[..., :3]."
            if shape[-1] == 4 else "")
    raise ValueError(f"Images must have 1 (grey) or 3 (RGB) channels in the last axis "
                     f"(N, H, W, C); got shape {shape}.{hint}")
  if mode == "tf" and images.dtype != np.uint8:
    raise ValueError(
        f"Inception mode 'tf' takes uint8 images in [0, 255], got dtype {images.dtype}. "
        "Convert float images in [0, 1] with inception.to_uint8(images) (the reference "
        "implementations read 8-bit image files), or use mode='pytorch-fid'.")
  if mode == "pytorch-fid" and not np.issubdtype(images.dtype, np.floating):
    raise ValueError(
        f"Inception mode 'pytorch-fid' takes float images in [0, 1], got dtype "
        f"{images.dtype}. Divide uint8 images by 255 (images / 255.0), or use mode='tf'.")


def _check_unit_range(images: np.ndarray) -> None:
  if not images.size:
    return
  lo, hi = float(images.min()), float(images.max())
  if lo >= 0.0 and hi <= 1.0:
    return
  if np.isnan(lo) or np.isnan(hi):
    hint = "Remove or fix the NaN values."
  elif lo >= -1.0 and hi <= 1.0:
    hint = "Images in [-1, 1] (a tanh output?) map to [0, 1] with (images + 1) / 2."
  elif lo >= 0.0 and hi <= 255.0:
    hint = "Images in [0, 255] map to [0, 1] with images / 255."
  else:
    hint = "Rescale them to [0, 1]."
  raise ValueError(f"Float images must lie in [0, 1], but these range over [{lo:.4g}, "
                   f"{hi:.4g}]. {hint} Samples that overshoot [0, 1] slightly can be "
                   "clipped with np.clip(images, 0, 1).")


def check_images(images, mode: str = "tf") -> np.ndarray:
  """``images`` as a numpy array, or a ValueError saying what is wrong and how to fix it.

  Mode ``"tf"`` takes uint8, ``"pytorch-fid"`` float in [0, 1]; both (N, H, W, C) with
  C = 1 (grey, repeated to RGB) or 3.
  """
  _check_mode(mode)
  images = np.asarray(images)
  _check_layout(images, mode)
  if mode == "pytorch-fid":
    _check_unit_range(images)
  return images


def to_uint8(images) -> np.ndarray:
  """Float images in [0, 1] -> uint8 by rounding x * 255, as when saving them as PNG."""
  images = np.asarray(images)
  if not np.issubdtype(images.dtype, np.floating):
    raise ValueError(f"to_uint8 takes float images in [0, 1], got dtype {images.dtype}.")
  _check_unit_range(images)
  return np.floor(images * 255.0 + 0.5).astype(np.uint8)


def preprocess(images, mode: str = "tf") -> jax.Array:
  """Checked, resized and normalised network input (N, 299, 299, 3) float32."""
  return _transform(check_images(images, mode), mode)


# ---------------------------------------------------------------------------------------
# The feature function (features.FeatureNet runs it in batches over the mesh).


def net_name(mode: str) -> str:
  """The name results carry: features under one input convention are not comparable
  with features under the other."""
  _check_mode(mode)
  return f"inception-v3-fid ({mode} inputs)"


def prepare_batch(images, mode: str = "tf") -> np.ndarray:
  """A host batch for ``mode``; in "tf" mode float images in [0, 1] are first rounded to
  uint8, as saving them as PNG files for the reference implementations would."""
  if mode == "tf" and np.issubdtype(np.asarray(images).dtype, np.floating):
    images = to_uint8(images)
  images = check_images(images, mode)
  return images.astype(np.float32) if mode == "pytorch-fid" else images


def features_and_logits(variables, images, mode: str = "tf") -> dict[str, jax.Array]:
  """pool3 ``features`` (N, 2048) and the Inception Score's ``logits`` (N, 1008), which
  are pool3 . W^T without the classifier's bias, of a batch from ``prepare_batch``."""
  out = InceptionV3().apply(variables, _transform(images, mode))
  kernel = variables["params"]["fc"]["kernel"]
  logits = jnp.matmul(out["pool3"], kernel, precision=HIGHEST)
  return {"features": out["pool3"], "logits": logits}
