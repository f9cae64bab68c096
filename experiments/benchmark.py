r"""Training throughput of jaxgen configs: steps/s, images/s, compile time, peak memory.

  python experiments/benchmark.py                        # the default list below
  python experiments/benchmark.py --configs=configs/vae_mnist.py:paper --steps=200

Each config runs in its own process (so peak memory is its own): the train step is
compiled (timed separately), then run for --steps steps on real batches from the
config's data loader, including host-to-device transfer. Prints a table, then the
rows as one JSON list on the last line.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT = ["configs/vae_mnist.py", "configs/vae_mnist.py:paper",
           "configs/vae_mnist.py:logistic"]


def bench_one(spec: str, steps: int, batch_size: int | None) -> dict:
  import jax
  sys.path.insert(0, REPO)
  from jaxgen import config_file, data, sharding, train
  config = config_file.load(spec, root=REPO)
  if batch_size:
    config.train.batch_size = batch_size
  trainer, mesh = train.make_trainer(config), sharding.make_mesh()
  repl, bsh = sharding.replicated(mesh), sharding.batch_sharding(mesh)
  state = jax.jit(trainer.init_state, out_shardings=repl)(jax.random.key(0))
  loader = data.Loader(data.get_source(config.data, "train"), config.data,
                       config.train.batch_size, config.seed)
  step = jax.jit(lambda s, b: trainer.train_step(s, b, jax.random.key(1)),
                 in_shardings=(repl, bsh), out_shardings=(repl, repl),
                 donate_argnums=0)
  batch = sharding.put_batch(next(loader), mesh)
  t = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  compile_s = time.perf_counter() - t
  state, m = compiled(state, batch)  # warm-up
  jax.block_until_ready(m)
  t = time.perf_counter()
  for _ in range(steps):
    state, m = compiled(state, sharding.put_batch(next(loader), mesh))
  jax.block_until_ready(m)
  dt = time.perf_counter() - t
  dev = jax.devices()[0]
  stats = dev.memory_stats() or {}
  return {"config": spec, "device": f"{jax.device_count()}x {dev.device_kind}",
          "batch_size": config.train.batch_size, "steps": steps,
          "steps_per_sec": steps / dt,
          "images_per_sec": steps * config.train.batch_size / dt,
          "compile_s": compile_s,
          "peak_host_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
          "peak_device_mb": stats.get("peak_bytes_in_use", 0) / 2 ** 20 or None}


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--configs", default=",".join(DEFAULT),
                 help="comma-separated path.py[:variant] (variants use '+' for ',')")
  p.add_argument("--steps", type=int, default=100)
  p.add_argument("--batch_size", type=int, default=0)
  p.add_argument("--one", help=argparse.SUPPRESS)
  a = p.parse_args()
  if a.one:
    print(json.dumps(bench_one(a.one, a.steps, a.batch_size)))
    return
  rows = []
  for spec in a.configs.split(","):
    spec = spec.replace("+", ",")
    out = subprocess.run([sys.executable, __file__, f"--one={spec}", f"--steps={a.steps}",
                          f"--batch_size={a.batch_size}"], capture_output=True, text=True)
    if out.returncode:
      print(f"{spec}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
      continue
    rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
  if not rows:
    sys.exit("No config could be benchmarked.")
  cols = ["config", "device", "batch_size", "steps_per_sec", "images_per_sec",
          "compile_s", "peak_host_rss_mb", "peak_device_mb"]
  fmt = lambda v: f"{v:.1f}" if isinstance(v, float) else str(v)
  table = [[fmt(r[c]) for c in cols] for r in rows]
  widths = [max([len(c)] + [len(t[i]) for t in table]) for i, c in enumerate(cols)]
  print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
  for t in table:
    print("  ".join(v.ljust(w) for v, w in zip(t, widths)))
  print(json.dumps(rows))


if __name__ == "__main__":
  main()
