"""A small MNIST digit classifier: the feature network for FID and IS on 28x28 digits.

Inception features say little about 28x28 grey digits, so sample quality on MNIST-5k
is measured with this network's penultimate activations (128-d, "FID (MNIST
classifier)") and its logits (a classifier-based Inception Score, at most 10). Its
weights are trained by ``train`` below, run on the MNIST-5k train split with a fixed
seed by ``python -m jaxgen.train_mnist_classifier``, and shipped with the package;
numbers computed with them are comparable only with numbers computed with the same
file, which its SHA-256 (printed by that command) identifies.
"""
from __future__ import annotations

import pathlib
import zipfile
from typing import Callable

import flax
import flax.linen as nn
import jax
import numpy as np
import optax

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
        "python -m jaxgen.train_mnist_classifier (jaxgen/train_mnist_classifier.py)")
  try:
    with np.load(path, allow_pickle=False) as f:
      return flax.traverse_util.unflatten_dict({k: f[k] for k in f.files}, sep="/")
  except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
    raise ValueError(
        f"MNIST classifier weights {path} are corrupt or not an .npz of arrays "
        f"({type(e).__name__}); reinstall jaxgen, or recreate them with python -m "
        f"jaxgen.train_mnist_classifier (jaxgen/train_mnist_classifier.py)") from None


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


# --- training -------------------------------------------------------------------------
def shift(images, rng: np.random.Generator, max_shift: int = 2) -> np.ndarray:
  """Each image translated by a random integer offset of up to ``max_shift`` pixels
  each way, zero-filled."""
  n, h, w, _ = images.shape
  padded = np.pad(images, ((0, 0), (max_shift,) * 2, (max_shift,) * 2, (0, 0)))
  dy, dx = rng.integers(0, 2 * max_shift + 1, size=(2, n))
  return np.stack([p[y:y + h, x:x + w] for p, y, x in zip(padded, dy, dx)])


def train(images, labels, *, steps: int, batch_size: int, seed: int,
          log: Callable[[int, float], None] | None = None, log_every: int = 200):
  """The classifier's parameters trained on ``images`` (as ``check_digits`` takes
  them) and their integer ``labels``: Adam with a cosine decay from 1e-3 to 5e-5 over
  ``steps`` steps of softmax cross-entropy, on batches of ``batch_size`` digits drawn
  with replacement and shifted by ``shift``. ``seed`` fixes the initialisation, the
  batches and the shifts; the same inputs give the same parameters on the same
  software stack. ``log(step, loss)`` is called every ``log_every`` steps."""
  x = check_digits(images)
  labels = np.asarray(labels)
  model = MNISTClassifier()
  params = model.init(jax.random.key(seed), x[:1])["params"]
  tx = optax.adam(optax.cosine_decay_schedule(1e-3, steps, alpha=0.05))
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, x, y):
    def loss_fn(p):
      _, logits = model.apply({"params": p}, x)
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  rng = np.random.default_rng(seed)
  for i in range(steps):
    idx = rng.integers(0, len(x), batch_size)
    params, opt_state, loss = step(params, opt_state, shift(x[idx], rng), labels[idx])
    if log and (i + 1) % log_every == 0:
      log(i + 1, float(loss))
  return params


def accuracy(params, images, labels) -> float:
  """The share of ``images`` (as ``check_digits`` takes them) classified as ``labels``."""
  _, logits = jax.jit(MNISTClassifier().apply)({"params": params}, check_digits(images))
  return float(np.mean(np.argmax(logits, -1) == np.asarray(labels)))
