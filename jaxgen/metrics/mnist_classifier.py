"""A small MNIST digit classifier: the feature network for FID and IS on digits.

Inception features say little about 28x28 grey digits, so sample quality on MNIST-5k
is measured with this network's penultimate activations (128-d, "FID (MNIST
classifier)") and its logits (a classifier-based Inception Score, at most 10). Its
weights are trained by ``train`` below, run on the MNIST-5k train split with a fixed
seed by ``python -m jaxgen.train_mnist_classifier``, and shipped with the package;
numbers computed with them are comparable only with numbers computed with the same
file, which its SHA-256 (printed by that command) identifies.

The feature network (``prepare`` then ``features_and_logits``) also reads canvases
with digits drawn on them (``mnist5k_captions``: one digit on 32 x 32;
``mnist5k_captions2``: two on 32 x 64, one per 32 x 32 half). A grey image that is not
28 x 28, of height H and width k * H, is k square H x H pieces side by side, one digit
each; each piece reaches the classifier as MNIST's digits were made (``to_mnist``:
the ink's box scaled into 20 x 20, centred by mass in 28 x 28). The image's features
are its pieces' features joined left to right (k * 128); its logits are those of the
joint label (the pieces' digits, left to right, 10 ** k classes): the sum of the
pieces' log-probabilities (for one piece, its logits). 28 x 28 images go in as they
are.

The same network, trained on other digits, is another digit reader (``READERS``):
``styles_classifier`` reads mnist5k_styles' restyled digits (RGB, 28 x 28 x 3:
coloured strokes on textured light or dark backgrounds), the domain-B reader of the
CycleGAN ``styles`` evaluator. Each reader has its shipped weights file, made by
``python -m jaxgen.train_mnist_classifier --dataset=NAME``.
"""
from __future__ import annotations

import dataclasses
import pathlib
import zipfile
from typing import Callable

import flax
import flax.linen as nn
import jax
import numpy as np
import optax

ASSETS = pathlib.Path(__file__).parent / "assets"
WEIGHTS = ASSETS / "mnist_classifier.npz"
NAME = "mnist-classifier"
FEATURE_DIM = 128
NUM_CLASSES = 10
MNIST_SIZE, MNIST_BOX = 28, 20  # MNIST: a 20 x 20 box, centred by mass in 28 x 28
INK = 127  # a pixel of a uint8 image is ink when its grey level exceeds this


@dataclasses.dataclass(frozen=True)
class Reader:
  """One trained copy of ``MNISTClassifier``: ``name`` (what the numbers made with it
  carry), its shipped ``weights``, the ``channels`` of the 28 x 28 digits it reads,
  the ``dataset`` its training command reads (``--dataset``) and ``pad``, how that
  training fills what a random shift uncovers (``shift``'s ``mode``: zeros beside
  plain digits; ``wrap`` for restyled ones, whose textures are periodic, so that a
  shifted digit keeps its background); a reader of colour digits is also trained on
  their channels in random order (``permute_channels``), so that it reads the shape
  of the digit rather than the palette's colours."""
  name: str
  weights: pathlib.Path
  channels: int
  dataset: str
  pad: str

  def inputs(self, images) -> np.ndarray:
    """The network's input (host numpy) for ``images``: ``prepare`` for grey digits
    and canvases, ``check_digits`` for colour digits."""
    if self.channels == 1:
      return prepare(images)
    return check_digits(images, self.channels)


READERS = {
    "mnist_classifier": Reader(NAME, WEIGHTS, 1, "mnist5k", "constant"),
    "styles_classifier": Reader("styles-classifier", ASSETS / "styles_classifier.npz",
                                3, "mnist5k_styles", "wrap"),
}


def retrain_command(path) -> str:
  """The command that makes the weights file ``path`` (a reader's shipped file, or
  another file of the MNIST classifier's)."""
  reader = next((r for r in READERS.values()
                 if pathlib.Path(path).resolve() == r.weights.resolve()),
                READERS["mnist_classifier"])
  flag = "" if reader.dataset == "mnist5k" else f" --dataset={reader.dataset}"
  return (f"python -m jaxgen.train_mnist_classifier{flag} "
          f"(jaxgen/train_mnist_classifier.py)")


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
    return features, nn.Dense(NUM_CLASSES)(features)


def features_and_logits(params, images) -> dict[str, jax.Array]:
  """The penultimate ``features`` and the ``logits`` of a ``prepare`` batch: of
  digits (N, 28, 28, 1), 128 features and 10 logits each; of canvases of k digits
  (N, k, 28, 28, 1), the pieces' features joined (N, k * 128) and the logits of the
  joint label (N, 10 ** k), digit of the first piece most significant: the sum of the
  pieces' log-probabilities (for k = 1 the piece's own logits)."""
  if images.ndim == 4:
    features, logits = MNISTClassifier().apply({"params": params}, images)
    return {"features": features, "logits": logits}
  n, k = images.shape[:2]
  features, logits = MNISTClassifier().apply({"params": params},
                                             images.reshape(n * k, *images.shape[2:]))
  features, logits = features.reshape(n, k * FEATURE_DIM), logits.reshape(n, k, -1)
  if k == 1:
    return {"features": features, "logits": logits[:, 0]}
  log_p = jax.nn.log_softmax(logits, -1)
  joint = log_p[:, 0]
  for i in range(1, k):
    joint = (joint[:, :, None] + log_p[:, i, None, :]).reshape(n, -1)
  return {"features": features, "logits": joint}


def save_params(params, path) -> None:
  flat = flax.traverse_util.flatten_dict(jax.device_get(params), sep="/")
  np.savez(path, **{k: np.asarray(v) for k, v in flat.items()})


def load_params(path=WEIGHTS):
  """A digit reader's parameters from its weights file ``path`` (the MNIST
  classifier's by default; ``READERS`` names the others')."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(
        f"Digit classifier weights {path} are missing; recreate them with "
        f"{retrain_command(path)}")
  try:
    with np.load(path, allow_pickle=False) as f:
      return flax.traverse_util.unflatten_dict({k: f[k] for k in f.files}, sep="/")
  except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
    raise ValueError(
        f"Digit classifier weights {path} are corrupt or not an .npz of arrays "
        f"({type(e).__name__}); reinstall jaxgen, or recreate them with "
        f"{retrain_command(path)}") from None


def _unit_float(images: np.ndarray) -> np.ndarray:
  """uint8 images / 255, or float images checked to lie in [0, 1], as float32."""
  if images.dtype == np.uint8:
    return images.astype(np.float32) / 255.0
  if not np.issubdtype(images.dtype, np.floating):
    raise ValueError(f"Images must be uint8 or float in [0, 1], got dtype {images.dtype}.")
  if images.size:
    low, high = float(images.min()), float(images.max())
    if low < -1e-3 or high > 1 + 1e-3:
      raise ValueError(
          f"Float images must lie in [0, 1], got values in [{low:.3g}, {high:.3g}]; map "
          "[-1, 1] images with (x + 1) / 2 first.")
  return np.clip(images, 0.0, 1.0).astype(np.float32)


def check_digits(images, channels: int = 1) -> np.ndarray:
  """Float32 images in [0, 1] of shape (N, 28, 28, ``channels``), or a ValueError
  saying why not.

  uint8 images are divided by 255; float images must already lie in [0, 1].
  """
  images = np.asarray(images)
  if images.ndim == 3 and channels == 1:
    images = images[..., None]
  if images.ndim != 4 or images.shape[1:] != (MNIST_SIZE, MNIST_SIZE, channels):
    if channels == 1:
      raise ValueError(
          f"The MNIST classifier takes 28x28 grey images (N, 28, 28, 1), got shape "
          f"{images.shape}; use the Inception feature network for other images.")
    raise ValueError(
        f"This digit classifier takes 28x28 images of {channels} channels "
        f"(N, 28, 28, {channels}), got shape {images.shape}.")
  return _unit_float(images)


def prepare(images) -> np.ndarray:
  """The feature network's input (host numpy): 28 x 28 grey images as
  ``check_digits`` gives them, (N, 28, 28, 1); grey canvases (N, H, k * H[, 1]) of
  another size as (N, k, 28, 28, 1), piece j the H x H square at columns j * H ..
  (j + 1) * H - 1 drawn by ``to_mnist`` (float canvases are first rounded to uint8, as
  the data's canvases are stored). A piece without ink is an empty (all-zero) digit.
  A ValueError says why other images are not taken."""
  images = np.asarray(images)
  if images.ndim == 3:
    images = images[..., None]
  if images.ndim == 4 and images.shape[1:] == (MNIST_SIZE, MNIST_SIZE, 1):
    return check_digits(images)
  if images.ndim != 4 or images.shape[3] != 1 or images.shape[2] % images.shape[1]:
    raise ValueError(
        f"The MNIST classifier takes 28x28 grey digits (N, 28, 28, 1) or grey canvases "
        f"of k digits side by side, each in an H x H square (N, H, k * H, 1); got shape "
        f"{images.shape}. Use the Inception feature network for other images.")
  n, h, w = images.shape[:3]
  k = w // h
  canvases = np.round(_unit_float(images) * 255).astype(np.uint8)
  pieces = canvases[..., 0].reshape(n, h, k, h).transpose(0, 2, 1, 3).reshape(n * k, h, h)
  digits, _ = to_mnist(pieces)
  return digits.reshape(n, k, MNIST_SIZE, MNIST_SIZE, 1)


def _filter(q, n_src, width):
  """Triangle-filter weights (N, S, n_src) of source coordinates q (N, S), half-width
  ``width`` (N,) source pixels (1 to enlarge: bilinear; 1/scale to shrink)."""
  d = np.abs(q[..., None] - np.arange(n_src, dtype=np.float32)) / width[:, None, None]
  return np.maximum(0, 1 - d) / width[:, None, None]


def to_mnist(canvases) -> tuple:
  """uint8 canvases (N, H, W[, 1]) of one digit each -> (float32 (N, 28, 28, 1) in
  [0, 1], bool (N,) has ink): each digit as MNIST's were made. Its ink box (rows and
  columns with grey > INK) is scaled so that its longer side is 20 pixels, and the
  grey-weighted centre of mass of the box moved to the field's centre; resampled with
  a triangle filter (bilinear, widened when shrinking). The image is drawn as the
  matrix product rows (N, 28, H) @ canvas @ columns (N, W, 28). A canvas without ink
  gives an all-zero digit."""
  x = np.asarray(canvases)
  x = x[..., 0] if x.ndim == 4 else x
  n, h, w = x.shape
  ink = x > INK
  rows, cols = ink.any(2), ink.any(1)
  has_ink = rows.any(1)
  top, bottom = rows.argmax(1), h - 1 - rows[:, ::-1].argmax(1)
  left, right = cols.argmax(1), w - 1 - cols[:, ::-1].argmax(1)
  extent = np.maximum(bottom - top, right - left) + 1
  scale = np.where(has_ink, MNIST_BOX / np.maximum(extent, 1), 1.0).astype(np.float32)
  g = x.astype(np.float32) / 255
  r, c = np.arange(h)[None, :, None], np.arange(w)[None, None, :]
  box = ((r >= top[:, None, None]) & (r <= bottom[:, None, None])
         & (c >= left[:, None, None]) & (c <= right[:, None, None]))
  gb = g * box
  mass = np.maximum(gb.sum((1, 2)), 1e-6)
  cy, cx = (gb * r).sum((1, 2)) / mass, (gb * c).sum((1, 2)) / mass
  grid = np.arange(MNIST_SIZE, dtype=np.float32) - (MNIST_SIZE - 1) / 2
  width = np.maximum(1.0, 1 / scale)
  wr = _filter(cy[:, None] + grid / scale[:, None], h, width)
  wc = _filter(cx[:, None] + grid / scale[:, None], w, width)
  out = np.clip(wr @ g @ wc.transpose(0, 2, 1), 0, 1)
  out[~has_ink] = 0
  return out[..., None].astype(np.float32), has_ink


# --- training -------------------------------------------------------------------------
def shift(images, rng: np.random.Generator, max_shift: int = 2,
          mode: str = "constant") -> np.ndarray:
  """Each image translated by a random integer offset of up to ``max_shift`` pixels
  each way; what it uncovers is filled by ``np.pad``'s ``mode`` (``constant``: zeros;
  ``wrap``: the image's opposite edge)."""
  n, h, w, _ = images.shape
  padded = np.pad(images, ((0, 0), (max_shift,) * 2, (max_shift,) * 2, (0, 0)),
                  mode=mode)
  dy, dx = rng.integers(0, 2 * max_shift + 1, size=(2, n))
  return np.stack([p[y:y + h, x:x + w] for p, y, x in zip(padded, dy, dx)])


def permute_channels(images, rng: np.random.Generator) -> np.ndarray:
  """Each image with its channels in a random order of its own."""
  order = np.argsort(rng.uniform(size=(images.shape[0], images.shape[-1])), -1)
  return np.take_along_axis(images, order[:, None, None, :], -1)


def train(images, labels, *, steps: int, batch_size: int, seed: int,
          log: Callable[[int, float], None] | None = None, log_every: int = 200,
          reader: Reader = READERS["mnist_classifier"]):
  """The classifier's parameters trained on ``images`` (as ``check_digits`` takes
  them, with ``reader.channels``) and their integer ``labels``: Adam with a cosine
  decay from 1e-3 to 5e-5 over ``steps`` steps of softmax cross-entropy, on batches of
  ``batch_size`` digits drawn with replacement and shifted by ``shift`` (filled as
  ``reader.pad`` says; colour digits also with their channels permuted,
  ``permute_channels``). ``seed`` fixes the initialisation, the batches and the
  augmentation; the same inputs give the same parameters on the same software stack.
  ``log(step, loss)`` is called every ``log_every`` steps."""
  x = check_digits(images, reader.channels)
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
    batch = shift(x[idx], rng, mode=reader.pad)
    if reader.channels > 1:
      batch = permute_channels(batch, rng)
    params, opt_state, loss = step(params, opt_state, batch, labels[idx])
    if log and (i + 1) % log_every == 0:
      log(i + 1, float(loss))
  return params


def accuracy(params, images, labels, channels: int = 1) -> float:
  """The share of ``images`` (as ``check_digits`` takes them, of ``channels``)
  classified as ``labels``."""
  _, logits = jax.jit(MNISTClassifier().apply)({"params": params},
                                               check_digits(images, channels))
  return float(np.mean(np.argmax(logits, -1) == np.asarray(labels)))
