r"""Throughput of jaxgen: training steps/s, sampling and feature extraction images/s,
compile times, peak memory.

  python experiments/benchmark.py                        # the default list below
  python experiments/benchmark.py --configs=configs/vae_mnist.py:paper --steps=200
  python experiments/benchmark.py --configs=configs/ddpm_mnist.py \
      --samplers=ancestral:1000,ddim:50 --sample_batch_size=8
  python experiments/benchmark.py --configs= --features=inception,clip --num_images=10000
  python experiments/benchmark.py --configs= --loaders=cifar10,celeba64 \
      --loader_workers=0,1,2

Each row runs in its own process (so peak memory is its own). Training: the step is
compiled as the training loop compiles it (``jaxgen.benchmarking``; timed separately),
then run for --steps steps on batches from the config's
data loader including host-to-device transfer (random batches of the right shape
where the dataset is not prepared on this machine; the row says which). Sampling: one
jit-compiled call of the family's ``generate`` per sampler. Features: --num_images
images streamed through the feature network in batches (random weights of the real
architecture where the weights file is absent). Loaders: the training input
pipeline alone, no model: ``jaxgen.data.Loader`` over ``get_source(config.data,
"train")`` (tfds array_record files, decoded, then preprocessed as the config says),
--loader_batches batches after two of warm-up; ``cifar10`` is configs/ddpm_cifar10.py's
data (random flips), ``celeba64`` configs/dcgan_celeba.py's (CelebA's 218x178 faces
resized to cover 64x64 and centre-cropped); any config path also works. Where the
dataset is not prepared here, the row first writes a prepared-looking copy of random
images of the real shapes (jaxgen/data/fake_prepared.py) into --loader_data_dir (a
temporary folder by default) and reads that through the same, unchanged path; the row
says which. Per batch it splits the time into reading (array_record, tf.Example
parsing, PNG/JPEG decoding) and preprocessing, and gives images per CPU-second (one
core's rate, which other jobs on the machine disturb less than the wall-clock
images/s; with workers, the CPU time of the loader's grain worker processes counts
too). ``--loader_workers=0,1,2`` gives a row per worker count:
``Loader(workers=N)``, the batches made in N grain worker processes (0: in the
benchmark's own process); with workers the read/preprocess split is not measured (it
happens in the workers). Prints a table, then the rows as one JSON list on the last
line.
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from jaxgen import (benchmarking, build, config_file, data, sharding, weights,  # noqa: E402
                    xla_options)
from jaxgen.data import fake_prepared, sources  # noqa: E402
from jaxgen.metrics import features, inception  # noqa: E402
from jaxgen.models import clip  # noqa: E402
from jaxgen.weights import clip as clip_weights  # noqa: E402

DEFAULT = ["configs/vae_mnist.py", "configs/vae_mnist.py:paper",
           "configs/vae_mnist.py:logistic"]
# Loader rows: name -> the config whose data block they read.
LOADERS = {"cifar10": "configs/ddpm_cifar10.py", "celeba64": "configs/dcgan_celeba.py"}
# Training examples of a fake prepared copy, by tfds name, unless --loader_examples.
LOADER_EXAMPLES = {"cifar10": 50_000, "celeb_a": 5_000}
WARMUP_BATCHES = 2


def _memory(jax) -> dict:
  stats = jax.devices()[0].memory_stats() or {}
  return {"peak_host_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
          "peak_device_mb": stats.get("peak_bytes_in_use", 0) / 2 ** 20 or None}


def _device(jax) -> str:
  return f"{jax.device_count()}x {jax.devices()[0].device_kind}"


def _loader(config):
  """The config's training batches, or random ones of the same shapes where its
  dataset is not available here; and the name of what it is."""
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
  config = config_file.load(spec, root=REPO)
  if batch_size:
    config.train.batch_size = batch_size
  mesh = sharding.make_mesh()
  trainer = build.make_trainer(config, mesh)
  state = benchmarking.init_state(trainer, mesh)
  loader, data_name = _loader(config)
  batch = sharding.put_batch(next(loader), mesh)
  # the step as the training loop compiles it (the dtype policy's float32 sums)
  compiled, compile_s = benchmarking.compile_train_step(trainer, mesh, state, batch)
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
  config = config_file.load(spec, root=REPO)
  name, num_steps = sampler.split(":")
  config.sample.update(sampler=name, num_steps=int(num_steps))
  if name == "ancestral":
    config.diffusion.num_steps = int(num_steps)
  mesh = sharding.make_mesh()
  trainer = build.make_trainer(config, mesh)
  state = benchmarking.init_state(trainer, mesh)
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
      variables = clip_weights.load_hf_checkpoint(weights.resolve("clip_vit_b32", download=False))
    except weights.WeightsError:
      variables = jax.jit(clip.CLIP(clip.VIT_B_32).init)(
          jax.random.key(0), jnp.zeros((1, 224, 224, 3)), jnp.zeros((1, 77), jnp.int32))
    return features.clip_image_net(variables, batch_size=batch_size), 224
  raise ValueError(f"unknown feature network {name!r}")


def bench_features(name: str, num_images: int, batch_size: int) -> dict:
  """Feature extraction over ``num_images`` random uint8 images, streamed."""
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


class _TimedSource:
  """A split that adds the seconds spent in its ``__getitem__`` to ``seconds``."""

  def __init__(self, source):
    self.source, self.seconds = source, 0.0

  def __len__(self):
    return len(self.source)

  def __getitem__(self, indices):
    t = time.perf_counter()
    out = self.source[indices]
    self.seconds += time.perf_counter() - t
    return out


def _loader_config(name: str):
  return config_file.load(LOADERS.get(name, name), root=REPO)


def _transforms(cfg) -> str:
  parts = []
  if cfg.get("resize"):
    parts.append("resize to " + "x".join(map(str, cfg.resize))
                 + (" centre crop" if cfg.get("center_crop") else ""))
  if cfg.get("random_flip"):
    parts.append("random flip")
  if cfg.get("dequantize"):
    parts.append("dequantize")
  if cfg.get("binarize"):
    parts.append(f"binarize {cfg.binarize}")
  parts.append(f"scale {cfg.get('scale', 'unit')}")
  return ", ".join(parts)


def loader_source(config, num_examples: int, data_dir: str) -> tuple:
  """The config's training split, and what it is: the prepared dataset where there is
  one here, else a fake prepared copy in ``data_dir`` (written now unless one is
  there already; ``config.data.tfds_data_dir`` then points at it). Also the seconds
  spent writing."""
  name = config.data.name
  try:
    source = data.get_source(config.data, "train")
  except FileNotFoundError:  # a tfds dataset not prepared here
    source = None
  if source is not None:
    if name in sources.offline():
      return source, "offline", 0.0
    builder = sources.tfds_builder(name, config.data.get("tfds_data_dir") or None)
    return source, ("fake prepared" if fake_prepared.is_fake(builder)
                    else "prepared"), 0.0
  t = time.perf_counter()
  if not sources.tfds_builder(name, data_dir).is_prepared():
    fake_prepared.write(name, data_dir,
                        num_examples or LOADER_EXAMPLES.get(name, 10_000))
  write_s = time.perf_counter() - t
  config.data.tfds_data_dir = data_dir
  return data.get_source(config.data, "train"), "fake prepared", write_s


def _children_cpu_s() -> float:
  """CPU seconds of this process's live child processes (the loader's workers)."""
  total = 0.0
  tick = os.sysconf("SC_CLK_TCK")
  for pid in _children():
    try:
      with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
      total += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    except (OSError, IndexError, ValueError):
      continue
  return total


def _children() -> list:
  """Child process ids of all this process's threads (grain starts its workers from
  threads), from /proc (Linux; none elsewhere)."""
  pids = []
  try:
    tasks = os.listdir(f"/proc/{os.getpid()}/task")
  except OSError:
    return []
  for task in tasks:
    try:
      with open(f"/proc/{os.getpid()}/task/{task}/children") as f:
        pids += [int(p) for p in f.read().split()]
    except OSError:
      continue
  return pids


def _loader_batches(config, source, batch_size: int, batches: int,
                    workers: int) -> dict:
  """Time ``batches`` batches of a Loader over ``source`` (after warm-up batches):
  wall time, CPU time (with the workers'), and the part spent reading (in-process
  only)."""
  timed = _TimedSource(source) if not workers else None
  with data.Loader(timed or source, config.data, batch_size, config.seed,
                   workers=workers) as loader:
    for _ in range(WARMUP_BATCHES + workers):  # starts the workers, opens the files
      next(loader)
    if timed:
      timed.seconds = 0.0
    start, cpu = time.perf_counter(), time.process_time()
    child = _children_cpu_s()
    for _ in range(batches):
      batch = next(loader)
    end = time.perf_counter()
    cpu = time.process_time() - cpu + _children_cpu_s() - child
  assert len(next(iter(batch.values()))) == batch_size
  return {"wall_s": end - start, "cpu_s": cpu,
          "read_s": timed.seconds if timed else None}


def bench_loader(name: str, batches: int, batch_size: int | None = None,
                 num_examples: int = 0, data_dir: str = "", workers: int = 0) -> dict:
  """Images/s of the training input pipeline alone: ``batches`` batches of the
  config's Loader, made in this process (``workers=0``) or in ``workers`` grain
  worker processes."""
  config = _loader_config(name)
  batch_size = batch_size or config.train.batch_size
  own_dir = not data_dir
  data_dir = data_dir or tempfile.mkdtemp(prefix="jaxgen_fake_tfds_")
  try:
    source, kind, write_s = loader_source(config, num_examples, data_dir)
    run = _loader_batches(config, source, batch_size, batches, workers)
  finally:
    if own_dir:
      shutil.rmtree(data_dir, ignore_errors=True)
  wall, read = run["wall_s"], run["read_s"]
  return {"config": LOADERS.get(name, name),
          "what": f"loader {name} ({kind}, {len(source)} examples; "
                  f"{_transforms(config.data)})",
          "device": f"host: {workers} worker{'s' if workers != 1 else ''}, "
                    f"{os.cpu_count()} cpus",
          "batch_size": batch_size, "steps": batches, "steps_per_sec": batches / wall,
          "images_per_sec": batches * batch_size / wall, "compile_s": None,
          "workers": workers,
          # per CPU-second of the loader and its workers: what one core gives, even
          # on a machine that other jobs share (wall-clock rates drop there, this less)
          "images_per_cpu_sec": batches * batch_size / max(run["cpu_s"], 1e-9),
          "read_ms_per_batch": None if read is None else 1e3 * read / batches,
          "preprocess_ms_per_batch": None if read is None else
                                     1e3 * (wall - read) / batches,
          "write_fake_s": write_s, **_memory(jax)}


def _has_sampler(spec: str) -> bool:
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
  p.add_argument("--loaders", default="",
                 help="comma-separated loader-only rows: cifar10 (configs/"
                      "ddpm_cifar10.py's data), celeba64 (configs/dcgan_celeba.py's), "
                      "or config paths; the batch is --batch_size or the config's")
  p.add_argument("--loader_batches", type=int, default=50)
  p.add_argument("--loader_examples", type=int, default=0,
                 help="training examples of a fake prepared copy (default: "
                      + ", ".join(f"{k} {v}" for k, v in LOADER_EXAMPLES.items()) + ")")
  p.add_argument("--loader_data_dir", default="",
                 help="where fake prepared copies are written and reused (default: "
                      "a temporary folder, removed afterwards)")
  p.add_argument("--loader_workers", default="0",
                 help="comma-separated Loader worker counts (config.data.workers), "
                      "one row each; 0 loads in the benchmark's process")
  p.add_argument("--one", help=argparse.SUPPRESS)
  a = p.parse_args()
  xla_options.configure_cpu()  # before JAX creates its CPU client (each row's too)
  if a.one:
    kind, arg, spec = a.one.split("|")
    row = {"train": lambda: bench_one(spec, a.steps, a.batch_size),
           "sample": lambda: bench_sample(spec, arg, a.sample_batch_size),
           "features": lambda: bench_features(spec, a.num_images,
                                              a.feature_batch_size),
           "loader": lambda: bench_loader(spec, a.loader_batches, a.batch_size,
                                          a.loader_examples, a.loader_data_dir,
                                          int(arg))}[kind]()
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
  workers = [int(w) for w in a.loader_workers.split(",")]
  jobs += [f"loader|{w}|{name}" for name in filter(None, a.loaders.split(","))
           for w in workers]
  # The loader rows share one folder of fake prepared copies (written once).
  loader_dir = a.loader_data_dir or (
      tempfile.mkdtemp(prefix="jaxgen_fake_tfds_") if a.loaders else "")
  rows = []
  for job in jobs:
    out = subprocess.run([sys.executable, __file__, f"--one={job}", f"--steps={a.steps}",
                          f"--batch_size={a.batch_size}",
                          f"--sample_batch_size={a.sample_batch_size}",
                          f"--num_images={a.num_images}",
                          f"--feature_batch_size={a.feature_batch_size}",
                          f"--loader_batches={a.loader_batches}",
                          f"--loader_examples={a.loader_examples}",
                          f"--loader_data_dir={loader_dir}"],
                         capture_output=True, text=True)
    if out.returncode:
      print(f"{job}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
      continue
    rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"row: {json.dumps(rows[-1])}", file=sys.stderr, flush=True)
  if loader_dir and not a.loader_data_dir:
    shutil.rmtree(loader_dir, ignore_errors=True)
  if not rows:
    sys.exit("Nothing could be benchmarked.")
  cols = ["config", "what", "device", "batch_size", "steps_per_sec", "images_per_sec",
          "compile_s", "peak_host_rss_mb", "peak_device_mb"]
  cols += [c for c in ("images_per_cpu_sec", "read_ms_per_batch",
                       "preprocess_ms_per_batch")
           if any(c in r for r in rows)]
  fmt = lambda v: (f"{v:.1f}" if isinstance(v, float) else
                   "-" if v is None else str(v))
  table = [[fmt(r.get(c)) for c in cols] for r in rows]
  widths = [max([len(c)] + [len(t[i]) for t in table]) for i, c in enumerate(cols)]
  print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
  for t in table:
    print("  ".join(v.ljust(w) for v, w in zip(t, widths)))
  print(json.dumps(rows))


if __name__ == "__main__":
  main()
