r"""The sampling cost per image of the autoregressive models (issues 12 and 30).

  python experiments/pixelcnn_sampling.py                      # the default configs
  python experiments/pixelcnn_sampling.py --configs=pixelcnnpp_mnist --rounds=3
  python experiments/pixelcnn_sampling.py --configs=pixelcnn_mnist:tiny --batch=8
  python experiments/pixelcnn_sampling.py --configs=pixelcnn_prior_mnist \
      --stage=/tmp/vqvae_mnist                                  # the prior needs a stage

For each config it builds the trainer, initialises parameters (the cost does not
depend on their values), compiles ``generate`` for one batch and times ``--repeats``
further batches. It prints one line per config: network evaluations per sample,
compile seconds, and seconds per batch and per image, with the machine's device list.

For PixelCNN++ it then times the two samplers of ``PixelCNNTrainer.sample_levels``
on the same keys: ``full`` (``cached=False``: one ``lax.fori_loop`` over the pixels,
the whole network on the canvas at each) and ``cached`` (the default,
jaxgen/families/pixelcnn/fast_sampling.py), in ``--rounds`` alternating rounds (full,
cached, full, cached, ...), so that a change in the machine's load hits both; it
prints each round's seconds per image and ratio, the median ratio, whether the two
gave the same levels, and the load average before and after. Numbers on a shared CPU
depend on its load: report ``uptime`` with them.
"""
from __future__ import annotations

import argparse
import functools
import os
import statistics
import time

import jax
import numpy as np

from jaxgen import build, config_file, stages, xla_options

DEFAULTS = ("pixelcnn_mnist", "gated_pixelcnn_mnist", "pixelcnnpp_mnist")


def _setup(name: str, stage: str = ""):
  path, _, variant = name.partition(":")
  config = config_file.load(f"configs/{path}.py:{variant}")
  if stage and "stages" in config:
    config.stages.autoencoder = stage
  trainer = build.make_trainer(config)
  state = jax.jit(trainer.init_state)(jax.random.key(0))
  return trainer, state


def _timed(fn, *args):
  t0 = time.perf_counter()
  out = jax.block_until_ready(fn(*args))
  return time.perf_counter() - t0, out


def measure(name: str, batch: int, repeats: int, stage: str = "") -> dict:
  trainer, state = _setup(name, stage)
  frozen = stages.frozen_params(trainer.stages)
  inputs = ({"label": jax.numpy.arange(batch) % trainer.num_classes}
            if trainer.num_classes else None)
  gen = jax.jit(trainer.generate, static_argnums=2)
  compile_s, _ = _timed(gen, state, jax.random.key(1), batch, inputs, frozen)
  t0 = time.perf_counter()
  for i in range(repeats):
    jax.block_until_ready(gen(state, jax.random.key(2 + i), batch, inputs, frozen))
  per_batch = (time.perf_counter() - t0) / repeats
  h, w, c = trainer.shape
  evals = h * w if trainer.likelihood == "logistic_mixture" else h * w * c
  return {"config": name, "network_evals_per_sample": evals, "batch": batch,
          "compile_s": compile_s, "s_per_batch": per_batch,
          "s_per_image": per_batch / batch, "devices": str(jax.devices())}


def compare(name: str, batch: int, rounds: int) -> dict:
  """The full and the cached PixelCNN++ samplers in alternating rounds."""
  trainer, state = _setup(name)
  labels = (jax.numpy.arange(batch) % trainer.num_classes
            if trainer.num_classes else None)
  samplers = {kind: jax.jit(functools.partial(trainer.sample_levels, num=batch,
                                              labels=labels, cached=kind == "cached"))
              for kind in ("full", "cached")}
  params = state.ema_params
  load_before = os.getloadavg()
  first_s, same = {}, True
  for kind, fn in samplers.items():
    first_s[kind], _ = _timed(fn, params, jax.random.key(1))
  times = {"full": [], "cached": []}
  for r in range(rounds):
    got = {}
    for kind, fn in samplers.items():
      seconds, got[kind] = _timed(fn, params, jax.random.key(2 + r))
      times[kind].append(seconds / batch)
    same = same and bool(np.array_equal(np.asarray(got["full"]),
                                        np.asarray(got["cached"])))
  ratios = [f / c for f, c in zip(times["full"], times["cached"])]
  return {"config": name, "batch": batch, "first_call_s": first_s, "times": times,
          "ratios": ratios, "median_ratio": statistics.median(ratios),
          "same_levels": same, "load_before": load_before,
          "load_after": os.getloadavg(), "devices": str(jax.devices())}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--configs", default=",".join(DEFAULTS),
                      help="comma-separated config[:variant] names under configs/")
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--repeats", type=int, default=1)
  parser.add_argument("--rounds", type=int, default=3,
                      help="alternating full / cached rounds for PixelCNN++ "
                           "(0: skip the comparison)")
  parser.add_argument("--stage", default="", help="VQ-VAE workdir for the prior")
  args = parser.parse_args()
  xla_options.configure_cpu()  # before JAX creates its CPU client
  load = lambda la: "/".join(f"{v:.2f}" for v in la)
  for name in args.configs.split(","):
    r = measure(name, args.batch, args.repeats, args.stage)
    print(f"{r['config']:<28} {r['network_evals_per_sample']:>5} evals/sample  "
          f"compile {r['compile_s']:7.1f} s  {r['s_per_batch']:8.2f} s/batch of "
          f"{r['batch']}  {r['s_per_image']:.4f} s/image  on {r['devices']}",
          flush=True)
    path = name.partition(":")[0]
    if args.rounds and config_file.load(f"configs/{path}.py").model.arch == "pixelcnnpp":
      c = compare(name, args.batch, args.rounds)
      first = c["first_call_s"]
      print(f"  full vs cached, batch {c['batch']}, first call (compile and one "
            f"batch) {first['full']:.1f} / {first['cached']:.1f} s; "
            f"load average {load(c['load_before'])} -> {load(c['load_after'])}")
      for k, (f, s, q) in enumerate(zip(c["times"]["full"], c["times"]["cached"],
                                        c["ratios"])):
        print(f"  round {k}: full {f:.4f} s/image  cached {s:.4f} s/image  "
              f"ratio {q:.1f}x")
      print(f"  median ratio {c['median_ratio']:.1f}x; same levels from both: "
            f"{c['same_levels']}", flush=True)


if __name__ == "__main__":
  main()
