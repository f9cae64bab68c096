r"""The sampling cost per image of the autoregressive models (issue 12).

  python experiments/pixelcnn_sampling.py                      # the default configs
  python experiments/pixelcnn_sampling.py --configs=pixelcnn_mnist:tiny --batch=8
  python experiments/pixelcnn_sampling.py --configs=pixelcnn_prior_mnist \
      --stage=/tmp/vqvae_mnist                                  # the prior needs a stage

For each config it builds the trainer, initialises parameters (the cost does not
depend on their values), compiles ``generate`` for one batch (one ``lax.fori_loop``
over the sub-pixels: H*W*C network evaluations, H*W for the mixture) and times
``--repeats`` further batches. It prints one line per config: network evaluations per
sample, compile seconds, and seconds per batch and per image, with the machine's
device list. Numbers on a shared CPU depend on its load: report ``uptime`` with them.
"""
from __future__ import annotations

import argparse
import time

import jax

from jaxgen import build, config_file, stages, xla_options

DEFAULTS = ("pixelcnn_mnist", "gated_pixelcnn_mnist", "pixelcnnpp_mnist")


def measure(name: str, batch: int, repeats: int, stage: str = "") -> dict:
  path, _, variant = name.partition(":")
  config = config_file.load(f"configs/{path}.py:{variant}")
  if stage and "stages" in config:
    config.stages.autoencoder = stage
  trainer = build.make_trainer(config)
  state = jax.jit(trainer.init_state)(jax.random.key(0))
  frozen = stages.frozen_params(trainer.stages)
  inputs = ({"label": jax.numpy.arange(batch) % trainer.num_classes}
            if trainer.num_classes else None)
  gen = jax.jit(trainer.generate, static_argnums=2)
  t0 = time.perf_counter()
  jax.block_until_ready(gen(state, jax.random.key(1), batch, inputs, frozen))
  compile_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  for i in range(repeats):
    jax.block_until_ready(gen(state, jax.random.key(2 + i), batch, inputs, frozen))
  per_batch = (time.perf_counter() - t0) / repeats
  h, w, c = trainer.shape
  evals = h * w if trainer.likelihood == "logistic_mixture" else h * w * c
  return {"config": name, "network_evals_per_sample": evals, "batch": batch,
          "compile_s": compile_s, "s_per_batch": per_batch,
          "s_per_image": per_batch / batch, "devices": str(jax.devices())}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--configs", default=",".join(DEFAULTS),
                      help="comma-separated config[:variant] names under configs/")
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=1)
  parser.add_argument("--stage", default="", help="VQ-VAE workdir for the prior")
  args = parser.parse_args()
  xla_options.configure_cpu()  # before JAX creates its CPU client
  for name in args.configs.split(","):
    r = measure(name, args.batch, args.repeats, args.stage)
    print(f"{r['config']:<28} {r['network_evals_per_sample']:>5} evals/sample  "
          f"compile {r['compile_s']:7.1f} s  {r['s_per_batch']:8.2f} s/batch of "
          f"{r['batch']}  {r['s_per_image']:.4f} s/image  on {r['devices']}")


if __name__ == "__main__":
  main()
