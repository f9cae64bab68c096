"""Fake prepared tfds datasets (jaxgen/data/fake_prepared.py) read back through
jaxgen's unchanged data path, and the loader-only rows of experiments/benchmark.py."""
import os
import sys

import numpy as np
import pytest

from conftest import REPO, load_config
from jaxgen import data
from jaxgen.data import fake_prepared

sys.path.insert(0, os.path.join(REPO, "experiments"))
import benchmark  # noqa: E402  (experiments/benchmark.py)


def _features(name, data_dir):
  from jaxgen.data import sources
  return sources.tfds_builder(name, str(data_dir)).info.features


def test_fake_cifar10_reads_back_exactly_through_get_source(tmp_path):
  fake_prepared.write("cifar10", str(tmp_path), {"train": 7, "test": 3}, seed=5,
                      num_shards=2)  # two shards: examples cross a file boundary
  cfg = load_config("ddpm_cifar10").data
  cfg.tfds_data_dir = str(tmp_path)
  assert data.example_spec(cfg)["image"].shape == (32, 32, 3)
  features = _features("cifar10", tmp_path)
  for split, n in (("train", 7), ("test", 3)):
    source = data.get_source(cfg, split)
    assert len(source) == n
    order = np.arange(n)[::-1]  # any order, as the loader's permutations ask
    got = source[order]
    want = [fake_prepared.example(features, split, int(i), seed=5) for i in order]
    assert got["image"].dtype == np.uint8 and got["image"].shape == (n, 32, 32, 3)
    np.testing.assert_array_equal(got["image"], np.stack([w["image"] for w in want]))
    np.testing.assert_array_equal(got["label"], [w["label"] for w in want])
    assert got["image"].std() > 20  # not a constant picture
  # the examples differ from one another and from split to split
  train0 = data.get_source(cfg, "train")[[0, 1]]["image"]
  test0 = data.get_source(cfg, "test")[[0]]["image"]
  assert np.abs(train0[0].astype(int) - train0[1]).mean() > 20
  assert np.abs(train0[0].astype(int) - test0[0]).mean() > 20


def test_fake_celeb_a_jpegs_read_back_through_get_source(tmp_path):
  sizes = {"train": 3, "validation": 1, "test": 1}  # celeb_a's three splits
  fake_prepared.write("celeb_a", str(tmp_path), sizes)
  cfg = load_config("dcgan_celeba").data
  cfg.tfds_data_dir = str(tmp_path)
  source = data.get_source(cfg, "train")
  got = source[[2, 0, 1]]["image"]
  assert got.shape == (3, 218, 178, 3) and got.dtype == np.uint8
  features = _features("celeb_a", tmp_path)
  want = np.stack([fake_prepared.example(features, "train", i)["image"]
                   for i in (2, 0, 1)])
  # JPEG (CelebA's format) is lossy: within a few grey levels of what was encoded,
  # against ~70 between two different examples.
  err = np.abs(got.astype(int) - want).mean(axis=(1, 2, 3))
  assert (err < 4).all(), err
  assert np.abs(got[0].astype(int) - want[1]).mean() > 30
  assert len(data.get_source(cfg, "test")) == 1
  # the preprocessed training batch: 64x64 in [-1, 1]
  batch = next(data.Loader(source, cfg, 2, seed=0))
  assert batch["image"].shape == (2, 64, 64, 3)
  assert -1 <= batch["image"].min() < batch["image"].max() <= 1


def test_write_refuses_a_prepared_folder(tmp_path):
  fake_prepared.write("cifar10", str(tmp_path), 2)
  with pytest.raises(FileExistsError, match="another data_dir"):
    fake_prepared.write("cifar10", str(tmp_path), 2)


def test_split_sizes_keep_the_real_proportions():
  assert fake_prepared.split_sizes("cifar10", 500) == {"train": 500, "test": 100}
  assert set(fake_prepared.split_sizes("celeb_a", 10)) == {"train", "validation",
                                                            "test"}


@pytest.mark.parametrize("name", ["cifar10", "celeba64"])
def test_loader_row_reports_a_positive_rate(tmp_path, name):
  row = benchmark.bench_loader(name, batches=3, batch_size=4, num_examples=10,
                               data_dir=str(tmp_path))
  assert row["what"].startswith(f"loader {name} (fake prepared, 10 examples")
  assert row["images_per_sec"] > 0 and row["steps"] == 3 and row["batch_size"] == 4
  assert row["images_per_cpu_sec"] > 0
  assert row["read_ms_per_batch"] > 0 and row["preprocess_ms_per_batch"] > 0
  # a second row reads the copy in the same folder (not 50,000 or 5,000 new ones)
  again = benchmark.bench_loader(name, batches=1, batch_size=4, data_dir=str(tmp_path))
  assert "(fake prepared, 10 examples" in again["what"]


def test_loader_row_over_worker_processes(tmp_path):
  # the real Loader(workers=2): grain worker processes, their CPU time counted
  row = benchmark.bench_loader("cifar10", batches=4, batch_size=4, num_examples=10,
                               data_dir=str(tmp_path), workers=2)
  assert row["workers"] == 2 and row["device"].startswith("host: 2 workers")
  assert row["images_per_sec"] > 0 and row["images_per_cpu_sec"] > 0
  assert row["read_ms_per_batch"] is None  # reading happens in the workers
  assert "(fake prepared, 10 examples" in row["what"]
