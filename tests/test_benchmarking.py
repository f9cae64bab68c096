"""jaxgen/benchmarking.py, which the benchmarks in experiments/ share: the order of
alternating rounds, and a config's train step compiled as the loop compiles it."""
import itertools

import jax
import numpy as np
import pytest

from conftest import REPO
from jaxgen import benchmarking


def test_alternating_rounds_reverse_the_order_every_round():
  calls, clock = [], itertools.count(1)

  def side(name):
    def one_round():
      calls.append(name)
      return float(next(clock))
    return one_round

  seen = []
  times = benchmarking.alternating_rounds({n: side(n) for n in "abc"}, rounds=3,
                                          after_round=lambda r, t: seen.append(
                                              (r, {k: list(v) for k, v in t.items()})))
  assert calls == list("abc" "cba" "abc")
  # each side's seconds in round order: a ran 1st, 6th and 7th
  assert times == {"a": [1.0, 6.0, 7.0], "b": [2.0, 5.0, 8.0], "c": [3.0, 4.0, 9.0]}
  assert [r for r, _ in seen] == [0, 1, 2] and seen[0][1] == {"a": [1.0], "b": [2.0],
                                                              "c": [3.0]}

  def broken():
    raise RuntimeError("side failed")
  with pytest.raises(RuntimeError, match="side failed"):
    benchmarking.alternating_rounds({"a": side("a"), "b": broken}, rounds=2)


def test_timed_measures_the_run():
  ran = []
  seconds = benchmarking.timed(lambda n: ran.append(n), 3)
  assert ran == [3] and 0 <= seconds < 1


def test_train_step_of_a_tiny_config():
  run, info = benchmarking.train_step("configs/vae_mnist.py:tiny", batch_size=4,
                                      root=REPO)
  config = info["config"]
  assert config.train.batch_size == 4 and info["compile_s"] > 0
  batch = benchmarking.random_images(config)
  assert batch["image"].shape == (4, 28, 28, 1)
  assert -1 <= batch["image"].min() < batch["image"].max() <= 1
  assert benchmarking.count_params(info["params"]) == sum(
      int(np.prod(x.shape)) for x in jax.tree.leaves(info["params"]))
  start = int(info["box"]["state"].step)
  run(2)
  assert int(info["box"]["state"].step) == start + 2  # two steps, the state carried
  assert "load average" not in benchmarking.load_averages()  # just the numbers
