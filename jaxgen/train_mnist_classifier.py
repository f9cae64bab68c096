r"""Train a digit reader that jaxgen ships: the MNIST classifier (the feature network
for digits), or the same network on another set of digits.

  python -m jaxgen.train_mnist_classifier [--dataset=mnist5k] [--out=PATH]
  python -m jaxgen.train_mnist_classifier --dataset=mnist5k_styles

Trains ``jaxgen.metrics.mnist_classifier``'s network with its ``train`` on the
dataset's train split (4,500 digits; random shifts of up to 2 pixels, fixed seed) and
writes the weights, by default over the dataset's shipped reader
(``mnist_classifier.READERS``): ``mnist5k`` (the plain digits) ->
jaxgen/metrics/assets/mnist_classifier.npz; ``mnist5k_styles`` (domain B of that set,
the restyled digits with their labels, derived seed 0) ->
jaxgen/metrics/assets/styles_classifier.npz, the CycleGAN ``styles`` evaluator's
reader. Prints the accuracy on the train split and on the 500 held-out test digits
(for the restyled digits also on those of light and of dark backgrounds: the
reader's ceiling), and the file's SHA-256. Re-running it reproduces the same weights
on the same software stack; any new file changes every number made with it (the
MNIST classifier's: every "FID (MNIST classifier)"), so compare only numbers made with
one file.

This command lives here, not in jaxgen.metrics: it reads the digits through
jaxgen.data, which the metrics (the numerical core) never import.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from jaxgen import weights, xla_options
from jaxgen.data import mnist5k_derived, sources
from jaxgen.metrics import mnist_classifier

# --dataset -> the reader it trains (mnist_classifier.READERS)
DATASETS = {"mnist5k": "mnist_classifier", "mnist5k_styles": "styles_classifier"}


def digits(dataset: str, split: str) -> dict:
  """The split's ``image`` (uint8 (N, 28, 28, C)) and ``label`` of ``dataset``; for
  mnist5k_styles domain B (each restyled digit with its own label, derived seed 0)
  and ``dark_background``."""
  if dataset == "mnist5k":
    return sources.mnist5k_arrays(split)
  gt = mnist5k_derived.styles_ground_truth(split, 0)
  return {"image": gt["domain_b"], "label": gt["label"],
          "dark_background": gt["dark_background"]}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--dataset", default="mnist5k", choices=tuple(DATASETS))
  parser.add_argument("--steps", type=int, default=1200)
  parser.add_argument("--batch_size", type=int, default=128)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--out", default=None,
                      help="the weights file (default: the dataset's shipped reader)")
  args = parser.parse_args(argv)
  xla_options.configure_cpu()  # before JAX creates its CPU client
  reader = mnist_classifier.READERS[DATASETS[args.dataset]]
  out = args.out or str(reader.weights)

  train, test = digits(args.dataset, "train"), digits(args.dataset, "test")
  start = time.time()

  def log(step, loss):
    print(f"step {step}: loss {loss:.4f} ({time.time() - start:.0f} s)", flush=True)

  params = mnist_classifier.train(train["image"], train["label"], steps=args.steps,
                                  batch_size=args.batch_size, seed=args.seed, log=log,
                                  reader=reader)
  mnist_classifier.save_params(params, out)
  accuracy = lambda d, keep=slice(None): mnist_classifier.accuracy(
      params, d["image"][keep], d["label"][keep], reader.channels)
  print(f"train accuracy {accuracy(train):.4f}")
  print(f"test accuracy {accuracy(test):.4f} ({len(test['label'])} held-out digits)")
  if "dark_background" in test:
    for name, keep in (("light", ~test["dark_background"]),
                       ("dark", test["dark_background"])):
      print(f"test accuracy on {name} backgrounds {accuracy(test, keep):.4f} "
            f"({int(np.sum(keep))} digits)")
  print(f"wrote {out}, SHA-256 {weights.sha256(out)}")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
