r"""Throughput of jaxgen: training steps/s, sampling and feature extraction images/s,
compile times, peak memory.

  python experiments/benchmark.py                        # the default list below
  python experiments/benchmark.py --configs=configs/vae_mnist.py:paper --steps=200
  python experiments/benchmark.py --configs=configs/ddpm_mnist.py \
      --samplers=ancestral:1000,ddim:50 --sample_batch_size=8
  python experiments/benchmark.py --configs= --features=inception,clip --num_images=10000

Each row runs in its own process (so peak memory is its own). Training: the step is
compiled (timed separately), then run for --steps steps on batches from the config's
data loader including host-to-device transfer (random batches of the right shape
where the dataset is not prepared on this machine; the row says which). Sampling: one
jit-compiled call of the family's ``generate`` per sampler. Features: --num_images
images streamed through the feature network in batches (random weights of the real
architecture where the weights file is absent). Prints a table, then the rows as one
JSON list on the last line.
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


def _memory(jax) -> dict:
  stats = jax.devices()[0].memory_stats() or {}
  return {"peak_host_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
          "peak_device_mb": stats.get("peak_bytes_in_use", 0) / 2 ** 20 or None}


def _device(jax) -> str:
  return f"{jax.device_count()}x {jax.devices()[0].device_kind}"


def _loader(config):
  """The config's training batches, or random ones of the same shapes where its
  dataset is not available here; and the name of what it is."""
  import numpy as np
  from jaxgen import data
  try:
    return data.Loader(data.get_source(config.data, "train"), config.data,
                       config.train.batch_size, config.seed), config.data.name
  except (FileNotFoundError, ValueError):  # a tfds dataset not prepared here
    rng = np.random.default_rng(0)
    low = -1.0 if config.data.get("scale") == "symmetric" else 0.0
    batch = {}
    for key, spec in data.example_spec(config.data).items():
      shape = (config.train.batch_size, *spec.shape)
      batch[key] = (rng.uniform(low, 1.0, shape).astype(spec.dtype)
                    if np.issubdtype(spec.dtype, np.floating) else
                    rng.integers(0, 10, shape).astype(spec.dtype))
    return iter(lambda: batch, None), "random"


def bench_one(spec: str, steps: int, batch_size: int | None) -> dict:
  import jax
  sys.path.insert(0, REPO)
  from jaxgen import config_file, sharding, train
  config = config_file.load(spec, root=REPO)
  if batch_size:
    config.train.batch_size = batch_size
  trainer, mesh = train.make_trainer(config), sharding.make_mesh()
  repl, bsh = sharding.replicated(mesh), sharding.batch_sharding(mesh)
  state = jax.jit(trainer.init_state, out_shardings=repl)(jax.random.key(0))
  loader, data_name = _loader(config)
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
  return {"config": spec, "what": f"train ({data_name} data)", "device": _device(jax),
          "batch_size": config.train.batch_size, "steps": steps,
          "steps_per_sec": steps / dt,
          "images_per_sec": steps * config.train.batch_size / dt,
          "compile_s": compile_s, **_memory(jax)}


def bench_sample(spec: str, sampler: str, batch_size: int) -> dict:
  """One call of ``generate`` with ``sampler`` = NAME:STEPS (ancestral uses the
  config's T)."""
  import jax
  sys.path.insert(0, REPO)
  from jaxgen import config_file, sharding, train
  config = config_file.load(spec, root=REPO)
  name, num_steps = sampler.split(":")
  config.sample.update(sampler=name, num_steps=int(num_steps))
  if name == "ancestral":
    config.diffusion.num_steps = int(num_steps)
  trainer, mesh = train.make_trainer(config), sharding.make_mesh()
  repl = sharding.replicated(mesh)
  state = jax.jit(trainer.init_state, out_shardings=repl)(jax.random.key(0))
  gen = jax.jit(trainer.generate, static_argnums=2)
  t = time.perf_counter()
  compiled = gen.lower(state, jax.random.key(1), batch_size).compile()
  compile_s = time.perf_counter() - t
  t = time.perf_counter()
  jax.block_until_ready(compiled(state, jax.random.key(2)))
  dt = time.perf_counter() - t
  return {"config": spec, "what": f"sample {name} {num_steps} steps",
          "device": _device(jax), "batch_size": batch_size, "steps": int(num_steps),
          "steps_per_sec": int(num_steps) / dt, "images_per_sec": batch_size / dt,
          "compile_s": compile_s, **_memory(jax)}


def _feature_net(name: str, batch_size: int):
  """(FeatureNet, input size): with the real weights where present, else with random
  weights of the same architecture (the speed is the same)."""
  import jax
  import jax.numpy as jnp
  from jaxgen.metrics import features, inception, weights
  from jaxgen.models import clip
  if name == "mnist_classifier":
    return features.get(name, batch_size=batch_size), 28
  if name == "inception":
    try:
      return features.get(name, batch_size=batch_size,
                          weights=weights.resolve("inception", download=False)), 299
    except weights.WeightsError:
      variables = jax.jit(inception.InceptionV3().init)(
          jax.random.key(0), jnp.zeros((1, 299, 299, 3)))
      return features.inception_net(variables, batch_size=batch_size), 299
  if name == "clip":
    try:
      variables = clip.load_hf_checkpoint(weights.resolve("clip_vit_b32", download=False))
    except weights.WeightsError:
      variables = jax.jit(clip.CLIP(clip.VIT_B_32).init)(
          jax.random.key(0), jnp.zeros((1, 224, 224, 3)), jnp.zeros((1, 77), jnp.int32))
    return features.clip_image_net(variables, batch_size=batch_size), 224
  raise ValueError(f"unknown feature network {name!r}")


def bench_features(name: str, num_images: int, batch_size: int) -> dict:
  """Feature extraction over ``num_images`` random uint8 images, streamed."""
  import jax
  import numpy as np
  sys.path.insert(0, REPO)
  net, size = _feature_net(name, batch_size)
  rng = np.random.default_rng(0)
  batch = rng.integers(0, 256, (batch_size, size, size, 3 if name != "mnist_classifier"
                                else 1), dtype=np.uint8)
  t = time.perf_counter()
  net(batch, progress=False)  # compiles
  compile_s = time.perf_counter() - t
  batches = (batch for _ in range(-(-num_images // batch_size)))
  t = time.perf_counter()
  out = net(batches, total=num_images, progress=False)
  dt = time.perf_counter() - t
  n = len(out["features"])
  return {"config": name, "what": f"features {size}x{size}, {n} images",
          "device": _device(jax), "batch_size": batch_size, "steps": n // batch_size,
          "steps_per_sec": n / batch_size / dt, "images_per_sec": n / dt,
          "compile_s": compile_s, **_memory(jax)}


def _has_sampler(spec: str) -> bool:
  sys.path.insert(0, REPO)
  from jaxgen import config_file
  return "sample" in config_file.load(spec, root=REPO)


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--configs", default=",".join(DEFAULT),
                 help="comma-separated path.py[:variant] (variants use '+' for ',')")
  p.add_argument("--steps", type=int, default=100)
  p.add_argument("--batch_size", type=int, default=0)
  p.add_argument("--samplers", default="",
                 help="also time sampling: comma-separated NAME:STEPS, e.g. "
                      "ancestral:1000,ddim:50 (families with config.sample)")
  p.add_argument("--sample_batch_size", type=int, default=8)
  p.add_argument("--no_train", action="store_true", help="skip the training rows")
  p.add_argument("--features", default="",
                 help="comma-separated feature networks: inception, clip, "
                      "mnist_classifier")
  p.add_argument("--num_images", type=int, default=1000)
  p.add_argument("--feature_batch_size", type=int, default=50)
  p.add_argument("--one", help=argparse.SUPPRESS)
  a = p.parse_args()
  if a.one:
    kind, arg, spec = a.one.split("|")
    row = {"train": lambda: bench_one(spec, a.steps, a.batch_size),
           "sample": lambda: bench_sample(spec, arg, a.sample_batch_size),
           "features": lambda: bench_features(spec, a.num_images,
                                              a.feature_batch_size)}[kind]()
    print(json.dumps(row))
    return
  jobs = []
  for spec in filter(None, a.configs.split(",")):
    spec = spec.replace("+", ",")
    if not a.no_train:
      jobs.append(f"train||{spec}")
    if _has_sampler(spec):
      jobs += [f"sample|{s}|{spec}" for s in filter(None, a.samplers.split(","))]
  jobs += [f"features||{name}" for name in filter(None, a.features.split(","))]
  rows = []
  for job in jobs:
    out = subprocess.run([sys.executable, __file__, f"--one={job}", f"--steps={a.steps}",
                          f"--batch_size={a.batch_size}",
                          f"--sample_batch_size={a.sample_batch_size}",
                          f"--num_images={a.num_images}",
                          f"--feature_batch_size={a.feature_batch_size}"],
                         capture_output=True, text=True)
    if out.returncode:
      print(f"{job}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
      continue
    rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"row: {json.dumps(rows[-1])}", file=sys.stderr, flush=True)
  if not rows:
    sys.exit("Nothing could be benchmarked.")
  cols = ["config", "what", "device", "batch_size", "steps_per_sec", "images_per_sec",
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
