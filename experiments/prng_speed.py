r"""The training step's speed under each random-number implementation
(config.compute.prng_impl), in one process, in alternating rounds.

  python experiments/prng_speed.py
  python experiments/prng_speed.py --config=configs/ddpm_mnist.py --batch_size=128

The step's randomness (timesteps, noise, dropout masks) all derives from the key
passed in, so a key of another implementation runs the same step with that
implementation's generator. Prints the median images/s of each and its ratio to
threefry2x32, then one JSON line.
"""
import argparse
import functools
import json
import os
import statistics
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import jax  # noqa: E402

from jaxgen import benchmarking, build, config_file, precision, xla_options  # noqa: E402


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--config", default="configs/ddpm_cifar10.py:paper")
  p.add_argument("--batch_size", type=int, default=8)
  p.add_argument("--rounds", type=int, default=3)
  p.add_argument("--iters", type=int, default=3)
  args = p.parse_args(argv)
  xla_options.configure_cpu()  # before JAX creates its CPU client
  config = config_file.load(args.config, root=REPO)
  config.train.batch_size = args.batch_size
  trainer = build.make_trainer(config)
  batch = benchmarking.random_images(config)
  runs = {}
  for impl in precision.PRNG_IMPLS:
    key = jax.random.key(1, impl=impl)
    state = jax.jit(trainer.init_state)(jax.random.key(0))
    step = jax.jit(trainer.train_step, donate_argnums=0).lower(state, batch, key).compile()
    box = {"state": state}

    def run(n, step=step, box=box, key=key):
      m = None
      for i in range(n):
        box["state"], m = step(box["state"], batch, jax.random.fold_in(key, i))
      jax.block_until_ready(m)

    run(1)
    runs[impl] = functools.partial(benchmarking.timed, run, args.iters)
  seconds = benchmarking.alternating_rounds(runs, args.rounds)
  ips = {impl: [args.iters * args.batch_size / s for s in v] for impl, v in seconds.items()}
  base = statistics.median(ips["threefry2x32"])
  result = {impl: {"images_per_sec": statistics.median(v), "vs_threefry":
                   statistics.median(v) / base, "rounds": v}
            for impl, v in ips.items()}
  for impl, r in result.items():
    print(f"{args.config} batch {args.batch_size}: {impl:13s} "
          f"{r['images_per_sec']:8.2f} img/s  x{r['vs_threefry']:.3f}")
  print(json.dumps({"config": args.config, "batch_size": args.batch_size,
                    "load": os.getloadavg(), "result": result}))


if __name__ == "__main__":
  main()
