r"""Train the MNIST classifier that jaxgen ships as the feature network for digits.

  python -m jaxgen.train_mnist_classifier [--out=PATH]

Trains ``jaxgen.metrics.mnist_classifier``'s network with its ``train`` on the
MNIST-5k train split (4,500 digits; random shifts of up to 2 pixels, fixed seed) and
writes the weights, by default over the shipped jaxgen/metrics/assets/mnist_classifier.npz;
prints the accuracy on the train split and on the 500 held-out test digits, and the
file's SHA-256. Re-running it reproduces the same weights on the same software stack;
any new file changes every "FID (MNIST classifier)" number, so compare only numbers
made with one file.

This command lives here, not in jaxgen.metrics: it reads MNIST-5k through jaxgen.data,
which the metrics (the numerical core) never import.
"""
from __future__ import annotations

import argparse
import time

from jaxgen import weights, xla_options
from jaxgen.data import sources
from jaxgen.metrics import mnist_classifier


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=1200)
  parser.add_argument("--batch_size", type=int, default=128)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--out", default=str(mnist_classifier.WEIGHTS))
  args = parser.parse_args(argv)
  xla_options.configure_cpu()  # before JAX creates its CPU client

  train, test = sources.mnist5k_arrays("train"), sources.mnist5k_arrays("test")
  start = time.time()

  def log(step, loss):
    print(f"step {step}: loss {loss:.4f} ({time.time() - start:.0f} s)", flush=True)

  params = mnist_classifier.train(train["image"], train["label"], steps=args.steps,
                                  batch_size=args.batch_size, seed=args.seed, log=log)
  mnist_classifier.save_params(params, args.out)
  print(f"train accuracy "
        f"{mnist_classifier.accuracy(params, train['image'], train['label']):.4f}")
  print(f"test accuracy "
        f"{mnist_classifier.accuracy(params, test['image'], test['label']):.4f} "
        f"(500 held-out digits)")
  print(f"wrote {args.out}, SHA-256 {weights.sha256(args.out)}")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
