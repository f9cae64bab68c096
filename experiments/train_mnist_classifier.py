r"""Train the MNIST classifier that jaxgen ships as the feature network for digits.

  python experiments/train_mnist_classifier.py

Trains on the MNIST-5k train split (4,500 digits) with random shifts of up to 2
pixels, fixed seed, and writes jaxgen/metrics/assets/mnist_classifier.npz; prints the
accuracy on the 500 held-out test digits and the SHA-256 of the file. Re-running it
reproduces the same weights on the same software stack; any new file changes every
"FID (MNIST classifier)" number, so compare only numbers made with one file.
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgen.data import sources
from jaxgen.metrics import mnist_classifier as mc
from jaxgen import weights


def shift(images, rng, max_shift=2):
  """Each image translated by a random integer offset, zero-filled."""
  n, h, w, _ = images.shape
  padded = np.pad(images, ((0, 0), (max_shift,) * 2, (max_shift,) * 2, (0, 0)))
  dy, dx = rng.integers(0, 2 * max_shift + 1, size=(2, n))
  return np.stack([p[y:y + h, x:x + w] for p, y, x in zip(padded, dy, dx)])


def accuracy(params, images, labels):
  _, logits = jax.jit(mc.MNISTClassifier().apply)({"params": params}, images)
  return float(np.mean(np.argmax(logits, -1) == labels))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=1200)
  parser.add_argument("--batch_size", type=int, default=128)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--out", default=str(mc.WEIGHTS))
  args = parser.parse_args()

  train, test = sources.mnist5k_arrays("train"), sources.mnist5k_arrays("test")
  x_train = train["image"].astype(np.float32) / 255.0
  x_test = test["image"].astype(np.float32) / 255.0
  model = mc.MNISTClassifier()
  params = model.init(jax.random.key(args.seed), x_train[:1])["params"]
  tx = optax.adam(optax.cosine_decay_schedule(1e-3, args.steps, alpha=0.05))
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, x, y):
    def loss_fn(p):
      _, logits = model.apply({"params": p}, x)
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  rng = np.random.default_rng(args.seed)
  start = time.time()
  for i in range(args.steps):
    idx = rng.integers(0, len(x_train), args.batch_size)
    params, opt_state, loss = step(params, opt_state, shift(x_train[idx], rng),
                                   train["label"][idx])
    if (i + 1) % 200 == 0:
      print(f"step {i + 1}: loss {float(loss):.4f} ({time.time() - start:.0f} s)", flush=True)
  mc.save_params(params, args.out)
  print(f"train accuracy {accuracy(params, x_train, train['label']):.4f}")
  print(f"test accuracy {accuracy(params, x_test, test['label']):.4f} "
        f"(500 held-out digits)")
  print(f"wrote {args.out}, SHA-256 {weights.sha256(args.out)}")


if __name__ == "__main__":
  main()
