r"""What ``precision.accumulate_in_float32`` costs: the bfloat16 DDPM CIFAR-10 paper
U-Net train step compiled three ways and timed in alternating rounds in one process:
sums and products widened to float32, sums only (the loop's choice on a backend whose
dots and convolutions already accumulate in float32), and no rewrite.

  python experiments/accumulate_cost.py --rounds=5 --batch_size=8

Prints each way's compile time, median step time, images/s and its rounds.
experiments/accelerator_check.sh runs it at the paper's batch of 128 on a lent device.
"""
import argparse
import functools
import os
import statistics
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import jax.numpy as jnp  # noqa: E402

from jaxgen import benchmarking, precision, xla_options  # noqa: E402


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--rounds", type=int, default=5)
  p.add_argument("--iters", type=int, default=2, help="steps a round")
  p.add_argument("--batch_size", type=int, default=8)
  p.add_argument("--config", default="configs/ddpm_cifar10.py:paper")
  args = p.parse_args(argv)
  xla_options.configure_cpu()  # before JAX creates its CPU client
  ways = {"sums+products": lambda fn: precision.accumulate_in_float32(
              fn, products={jnp.bfloat16}),
          "sums only": lambda fn: precision.accumulate_in_float32(fn, products=()),
          "no rewrite": lambda fn: fn}
  runs, compile_s = {}, {}
  for name, wrap in ways.items():
    run, info = benchmarking.train_step(args.config, args.batch_size,
                                        compute_dtype="bfloat16", wrap=wrap, root=REPO)
    run(1)  # warm-up
    runs[name], compile_s[name] = run, info["compile_s"]
  rounds = benchmarking.alternating_rounds(
      {name: functools.partial(benchmarking.timed, run, args.iters)
       for name, run in runs.items()}, args.rounds)
  times = {name: [s / args.iters for s in seconds] for name, seconds in rounds.items()}
  for name in runs:
    m = statistics.median(times[name])
    print(f"{name:14s} compile {compile_s[name]:5.1f} s  step {m:.3f} s  "
          f"{args.batch_size / m:.2f} img/s  rounds {[round(t, 2) for t in times[name]]}")


if __name__ == "__main__":
  main()
