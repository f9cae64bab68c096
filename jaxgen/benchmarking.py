"""What jaxgen's benchmarks in experiments/ share: a config's train step compiled as
the training loop compiles it (on a fixed random batch, or on batches the caller
gives), parameter counts, and timing several variants in alternating rounds next to
the machine's load averages.
Callers configure XLA first (``xla_options.configure_cpu()``, as every entry point
does); nothing here computes on import.
"""
from __future__ import annotations

import os
import subprocess
import time
from typing import Callable

import jax
import numpy as np

from jaxgen import build, config_file, data, sharding


# --- the train step -----------------------------------------------------------------
def random_images(config) -> dict:
  """A batch ``{"image": ...}`` of the config's batch size and image shape, uniform in
  [-1, 1] (seed 0): the data of a step whose speed does not depend on the pixels."""
  shape = (config.train.batch_size, *data.example_spec(config.data)["image"].shape)
  return {"image": np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)}


def count_params(tree) -> int:
  """The number of scalars in a tree of arrays."""
  return int(sum(x.size for x in jax.tree.leaves(tree)))


def init_state(trainer, mesh):
  """The trainer's initial state (key 0), replicated over ``mesh``."""
  return jax.jit(trainer.init_state,
                 out_shardings=sharding.replicated(mesh))(jax.random.key(0))


def compile_train_step(trainer, mesh, state, batch, wrap=None):
  """``trainer.train_step`` (with key 1) jit-compiled for ``state`` and ``batch`` (on
  ``mesh``) as jaxgen/train.py compiles it: through ``wrap`` (fn -> fn, by default
  ``trainer.policy.accumulate``), the state donated. Returns (compiled, seconds to
  compile); ``compiled(state, batch)`` returns (state, metrics)."""
  repl, bsh = sharding.replicated(mesh), sharding.batch_sharding(mesh)
  wrap = wrap or trainer.policy.accumulate
  step = jax.jit(wrap(lambda s, b: trainer.train_step(s, b, jax.random.key(1))),
                 in_shardings=(repl, bsh), out_shardings=(repl, repl), donate_argnums=0)
  start = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  return compiled, time.perf_counter() - start


def train_step(spec: str, batch_size: int | None = None, make_batch=random_images,
               compute_dtype: str | None = None, wrap=None, root: str | None = None):
  """The train step of config ``spec`` ('configs/x.py[:variant]', relative to
  ``root``) at ``batch_size`` and ``compute_dtype`` (default: the config's), compiled
  by ``compile_train_step`` on the fixed batch ``make_batch(config)``.

  Returns (run, info): ``run(iters)`` runs that many steps and returns when their
  results are computed; ``info`` holds ``compile_s``, ``config``, ``trainer``,
  ``compiled``, ``params`` (the initial ones) and ``box`` (``box["state"]``, the
  state after the steps run so far)."""
  config = config_file.load(spec, root=root)
  if batch_size:
    config.train.batch_size = batch_size
  if compute_dtype:
    config.compute.dtype = compute_dtype
  mesh = sharding.make_mesh()
  trainer = build.make_trainer(config, mesh)
  box = {"state": init_state(trainer, mesh)}
  params = box["state"].params
  batch = sharding.put_batch(make_batch(config), mesh)
  compiled, compile_s = compile_train_step(trainer, mesh, box["state"], batch, wrap)

  def run(iters: int):
    metrics = None
    for _ in range(iters):
      box["state"], metrics = compiled(box["state"], batch)
    jax.block_until_ready(metrics)

  return run, {"compile_s": compile_s, "config": config, "trainer": trainer,
               "compiled": compiled, "params": params, "box": box}


# --- timing -------------------------------------------------------------------------
def timed(run: Callable[[int], object], iters: int) -> float:
  """Seconds that ``run(iters)`` takes (``run`` returns when its work is done)."""
  start = time.perf_counter()
  run(iters)
  return time.perf_counter() - start


def alternating_rounds(sides: dict, rounds: int, after_round=None) -> dict:
  """Each of ``sides`` (name -> a function that runs one round and returns its
  seconds) once a round, for ``rounds`` rounds, in an order that reverses every
  round, so that a change of the machine's load falls on every side alike. Returns
  name -> the seconds of each round; ``after_round(r, times)`` is called after round r
  with what was measured so far. An exception from a side ends the rounds."""
  times = {name: [] for name in sides}
  order = list(sides)
  for r in range(rounds):
    for name in (order if r % 2 == 0 else order[::-1]):
      times[name].append(sides[name]())
    if after_round:
      after_round(r, times)
  return times


def load_averages() -> str:
  """``uptime``'s load averages (1, 5, 15 min), or os.getloadavg()'s without uptime."""
  try:
    out = subprocess.run(["uptime"], capture_output=True, text=True, timeout=10).stdout
    if "load average" in out:
      return out.split("load average")[-1].lstrip("s:").strip()
  except (OSError, subprocess.SubprocessError):
    pass
  return ", ".join(f"{v:.2f}" for v in os.getloadavg())
