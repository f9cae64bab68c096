r"""The cost of StyleGAN2's lazily regularised train steps against plain ones.

  python experiments/stylegan2_step_cost.py [--config=configs/stylegan2_mnist.py] [--repeats=5]

The one compiled train step (jaxgen/families/stylegan2/trainer.py) runs the path-length
regulariser when step % pl_interval == 0 and R1 when step % r1_interval == 0, through
``lax.cond``. This compiles the step once, then times it with the step counter set to a
plain step, a path-length step (not R1), and a step with both, and prints the mean
seconds of each and the ratios to the plain step, and the amortised cost per step
over one cycle of lcm(pl_interval, r1_interval) steps.
"""
import argparse
import math
import sys
import time

import jax
import numpy as np

from jaxgen import build, config_file, data, xla_options


def main(argv=None):
  parser = argparse.ArgumentParser()
  parser.add_argument("--config", default="configs/stylegan2_mnist.py")
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args(argv)
  xla_options.configure_cpu()  # before JAX creates its CPU client
  config = config_file.load(args.config)
  trainer = build.make_trainer(config)
  s = config.stylegan2
  state = jax.jit(trainer.init_state)(jax.random.key(0))
  loader = data.Loader(data.get_source(config.data, "train"), config.data,
                       config.train.batch_size, 0)
  batch = jax.device_put(next(loader))
  step = jax.jit(trainer.train_step)
  t0 = time.perf_counter()
  jax.block_until_ready(step(state, batch, jax.random.key(0)))
  print(f"compile + first step: {time.perf_counter() - t0:.1f} s")
  lcm = s.pl_interval * s.r1_interval // math.gcd(s.pl_interval, s.r1_interval)
  kinds = {"plain": 1, "path_length": s.pl_interval, "r1+path_length": 0}
  if s.r1_interval % s.pl_interval:  # an R1-only step exists
    kinds["r1"] = s.r1_interval
  times = {}
  for name, at in kinds.items():
    st = state.replace(step=jax.numpy.asarray(at, jax.numpy.int32))
    jax.block_until_ready(step(st, batch, jax.random.key(1)))  # warm
    runs = []
    for i in range(args.repeats):
      t0 = time.perf_counter()
      jax.block_until_ready(step(st, batch, jax.random.key(2 + i)))
      runs.append(time.perf_counter() - t0)
    times[name] = float(np.median(runs))
  for name, t in times.items():
    print(f"{name:>16}: {t * 1000:8.1f} ms  ({t / times['plain']:.2f}x plain)")
  cycle = sum(times["r1+path_length"] if k == 0 else
              times["path_length"] if k % s.pl_interval == 0 and k % s.r1_interval else
              times.get("r1", times["plain"]) if k % s.r1_interval == 0 else
              times["plain"] for k in range(lcm))
  print(f"amortised over {lcm} steps: {cycle / lcm * 1000:.1f} ms/step "
        f"({cycle / lcm / times['plain']:.2f}x plain)")


if __name__ == "__main__":
  sys.exit(main())
