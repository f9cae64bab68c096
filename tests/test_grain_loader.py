"""The Loader's grain worker processes (``workers=N``): the same batches as in-process
loading, bitwise, from any position; errors in a worker reach the caller."""
import time

import jax
import numpy as np
import pytest
from ml_collections import ConfigDict

from conftest import config_names, load_config, resume_from_the_middle
from jaxgen import data, errors, loop_config
from jaxgen.data import sources


def _cfg(**kw):
  base = dict(name="mnist5k", scale="symmetric", binarize="", dequantize=True,
              resize=(), random_flip=True, tfds_data_dir="", workers=0)
  return ConfigDict({**base, **kw})


@pytest.fixture(scope="module")
def mnist():
  return data.get_source(_cfg(), "train")


def _assert_same(a, b):
  assert a.keys() == b.keys()
  for k in a:
    assert type(a[k]) is type(b[k]) is np.ndarray
    assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape
    np.testing.assert_array_equal(a[k], b[k])


def test_workers_give_the_in_process_batches_bitwise_from_any_position(mnist):
  cfg = _cfg()
  for start in (0, 68):  # 68 x 64 crosses the first epoch's end (4,500 examples)
    plain = data.Loader(mnist, cfg, 64, seed=3, position=start)
    with data.Loader(mnist, cfg, 64, seed=3, position=start, workers=2) as pooled:
      for n in range(1, 7):
        _assert_same(next(pooled), next(plain))
        assert pooled.position == plain.position == start + n
      pooled.position = 2  # a new position restarts the workers there
      _assert_same(next(pooled), data.Loader(mnist, cfg, 64, seed=3, position=2)
                   .__next__())
      assert pooled.position == 3


class _Broken(sources.ArraySource):
  """A split whose reads fail: stands for a corrupt file in a worker."""

  def __getitem__(self, indices):
    raise OSError("corrupt record (test)")


def test_an_error_in_a_worker_reaches_the_caller():
  src = _Broken({"image": np.zeros((8, 4, 4, 1), np.uint8)})
  loader = data.Loader(src, _cfg(), 4, seed=0, workers=2)
  t = time.perf_counter()
  with pytest.raises(data.LoaderError, match="batch 0 failed in a data-loader "
                     "worker.*corrupt record.*workers=0") as info:
    next(loader)
  assert isinstance(info.value.__cause__, OSError)
  assert time.perf_counter() - t < 60
  assert loader.position == 0
  loader.close()


def test_each_process_loads_its_own_rows_in_the_workers(mnist, monkeypatch):
  fixed = _cfg(dequantize=False, random_flip=False)  # no randomness: rows comparable
  whole = data.Loader(mnist, fixed, 8, seed=1, position=5)
  want = [next(whole) for _ in range(3)]
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  for p in (0, 1):
    monkeypatch.setattr(jax, "process_index", lambda p=p: p)
    for cfg in (fixed, _cfg()):  # _cfg(): flips and dequantisation from (seed, i, p)
      plain = data.Loader(mnist, cfg, 8, seed=1, position=5)
      with data.Loader(mnist, cfg, 8, seed=1, position=5, workers=2) as pooled:
        for w in want:
          got = next(pooled)
          _assert_same(got, next(plain))
          rows = slice(4 * p, 4 * p + 4)
          np.testing.assert_array_equal(got["label"], w["label"][rows])
          if cfg is fixed:
            _assert_same(got, {k: v[rows] for k, v in w.items()})


def test_a_negative_worker_count_is_refused(mnist):
  with pytest.raises(ValueError, match=r"config.data.workers=-1 .*--config.data.workers=0"):
    data.Loader(mnist, _cfg(), 4, seed=0, workers=-1)
  config = ConfigDict({"data": _cfg(workers=-2)})
  with pytest.raises(errors.ConfigError, match=r"config.data.workers must be at "
                     r"least 0.*--config.data.workers=0"):
    loop_config.check(config)


@pytest.mark.parametrize("name", config_names())
def test_every_config_can_set_its_loader_workers(name):
  """``--config.data.workers=N`` works on every config: its data section has the key
  (ml_collections refuses an override of a key that is not there)."""
  try:
    config = load_config(name)
  except ValueError:  # a paper-only config (ddpm_celebahq) needs its variant named
    config = load_config(name, "paper")
  workers = config.data.get("workers")
  assert isinstance(workers, int) and workers >= 0, (name, sorted(config.data))


def test_a_run_resumed_on_workers_is_bitwise_the_in_process_run(tiny_runs, tmp_path):
  """The shared VAE tiny run (in-process loading), resumed from its middle checkpoint
  through ``python -m jaxgen.main`` with two loader workers, ends in the same state
  and metrics: the workers start from the checkpointed position."""
  import json
  import os
  workdir = str(tmp_path / "run")
  resume_from_the_middle(tiny_runs, "vae_mnist", workdir, "--config.data.workers=2")
  assert json.load(open(os.path.join(workdir, "config.json")))["data"]["workers"] == 2
