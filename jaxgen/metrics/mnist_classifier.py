"""A small MNIST digit classifier: the feature network for FID and IS on 28x28 digits.

Inception features say little about 28x28 grey digits, so sample quality on MNIST-5k
is measured with this network's penultimate activations (128-d, "FID (MNIST
classifier)") and its logits (a classifier-based Inception Score, at most 10). Its
weights are trained by ``experiments/train_mnist_classifier.py`` (fixed seed, MNIST-5k
train split) and shipped with the package; numbers computed with them are comparable
only with numbers computed with the same file, which ``WEIGHTS_SHA256`` identifies.
"""
from __future__ import annotations

import pathlib
import zipfile

import flax
import flax.linen as nn
import jax
import numpy as np

WEIGHTS = pathlib.Path(__file__).parent / "assets" / "mnist_classifier.npz"
NAME = "mnist-classifier"
FEATURE_DIM = 128


class MNISTClassifier(nn.Module):
  """Two conv stages and a 128-unit layer (the features) before 10 logits."""

  @nn.compact
  def __call__(self, x):
    for width in (32, 64):
      x = nn.relu(nn.Conv(width, (3, 3))(x))
      x = nn.relu(nn.Conv(width, (3, 3))(x))
      x = nn.avg_pool(x, (2, 2), (2, 2))
    x = nn.relu(nn.Conv(64, (3, 3), padding="VALID")(x))  # 7 -> 5
    x = nn.avg_pool(x, (2, 2), (2, 2))  # 5 -> 2
    features = nn.relu(nn.Dense(FEATURE_DIM)(x.reshape(x.shape[0], -1)))
    return features, nn.Dense(10)(features)


def features_and_logits(params, images) -> dict[str, jax.Array]:
  """The 128-d penultimate ``features`` and the 10 ``logits`` of a ``check_digits`` batch."""
  features, logits = MNISTClassifier().apply({"params": params}, images)
  return {"features": features, "logits": logits}


def save_params(params, path) -> None:
  flat = flax.traverse_util.flatten_dict(jax.device_get(params), sep="/")
  np.savez(path, **{k: np.asarray(v) for k, v in flat.items()})


def load_params(path=WEIGHTS):
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(
        f"MNIST classifier weights {path} are missing; recreate them with "
        "python experiments/train_mnist_classifier.py")
  try:
    with np.load(path, allow_pickle=False) as f:
      return flax.traverse_util.unflatten_dict({k: f[k] for k in f.files}, sep="/")
  except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
    raise ValueError(
        f"MNIST classifier weights {path} are corrupt or not an .npz of arrays "
        f"({type(e).__name__}); reinstall jaxgen, or recreate them with python "
        f"experiments/train_mnist_classifier.py") from None


def check_digits(images) -> np.ndarray:
  """Float32 images in [0, 1] of shape (N, 28, 28, 1), or a ValueError saying why not.

  uint8 images are divided by 255; float images must already lie in [0, 1].
  """
  images = np.asarray(images)
  if images.ndim == 3:
    images = images[..., None]
  if images.ndim != 4 or images.shape[1:] != (28, 28, 1):
    raise ValueError(
        f"The MNIST classifier takes 28x28 grey images (N, 28, 28, 1), got shape "
        f"{images.shape}; use the Inception feature network for other images.")
  if images.dtype == np.uint8:
    return images.astype(np.float32) / 255.0
  if not np.issubdtype(images.dtype, np.floating):
    raise ValueError(f"Images must be uint8 or float in [0, 1], got dtype {images.dtype}.")
  low, high = float(images.min()), float(images.max())
  if low < -1e-3 or high > 1 + 1e-3:
    raise ValueError(
        f"Float images must lie in [0, 1], got values in [{low:.3g}, {high:.3g}]; map "
        "[-1, 1] images with (x + 1) / 2 first.")
  return np.clip(images, 0.0, 1.0).astype(np.float32)
