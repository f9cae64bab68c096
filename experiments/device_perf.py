r"""The accelerator measurements of issue 16, as one prepared run for a lent device.

  python experiments/device_perf.py --json_out=$OUT/device_perf.json     # on the device
  python experiments/device_perf.py --tiny                                # a CPU smoke run

Rows (random data of the real shapes, the configs' own batch sizes):
  ddpm_train_float32 / ddpm_train_bfloat16  the DDPM CIFAR-10 paper step (35.7M U-Net,
      batch 128) with config.compute.dtype float32 and bfloat16;
  ddim50_sampling                           DDIM with 50 steps, batch 256;
  dcgan_train_float32 / dcgan_train_bfloat16  the DCGAN paper step (64x64, batch 128).
(What the bfloat16 rows' float32 accumulation costs: experiments/accumulate_cost.py.)
Each row: compile time, the step's time (median of rounds after warm-up), images/s,
the FLOPs of one step from XLA's cost analysis, the achieved FLOP/s and its fraction of
the device's dense peak for the row's dtype (from the table below; none for unknown
devices), and for the training rows the projected wall time of the paper's schedule
(DDPM 800k steps, DCGAN the config's num_steps). First, whether the device sums
bfloat16 in float32 (``precision.bias_gradient_error``: a bias's gradient in bfloat16),
and the same through ``precision.accumulate_in_float32`` as the training rows compile.
"""
import argparse
import json
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import jax  # noqa: E402

from jaxgen import benchmarking, build, config_file, precision, xla_options  # noqa: E402

# Dense peak FLOP/s by device kind: (float32 as XLA runs it by default, bfloat16).
# float32 matmuls use TF32 tensor cores at the default matmul precision on NVIDIA GPUs.
PEAKS = {"H200": (494e12, 989e12), "H100": (494e12, 989e12), "A100": (156e12, 312e12),
         "TPU v4": (275e12, 275e12), "TPU v5": (197e12, 197e12)}


def peak(device_kind: str, dtype: str):
  for name, (f32, bf16) in PEAKS.items():
    if name.lower() in device_kind.lower():
      return bf16 if dtype == "bfloat16" else f32
  return None


def _flops(compiled) -> float | None:
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost.get("flops", 0.0)) or None if cost else None


def _time(run, warmup: int, rounds: int, iters: int) -> float:
  """Median seconds per call."""
  run(warmup)
  return statistics.median([benchmarking.timed(run, iters) / iters
                           for _ in range(rounds)])


def train_row(spec: str, dtype: str, args) -> dict:
  # the same compiled train step as the loop's and the peer comparison's
  run, info = benchmarking.train_step(spec, args.batch_size or None, compute_dtype=dtype,
                                      root=REPO)
  seconds = _time(run, args.warmup, args.rounds, args.iters)
  config = info["config"]
  return _row(info["compiled"], info["compile_s"], seconds, config.train.batch_size,
              dtype, total_steps=config.train.num_steps)


def sampling_row(args) -> dict:
  config = config_file.load("configs/ddpm_cifar10.py" + (":tiny" if args.tiny else
                                                         ":paper"), root=REPO)
  config.sample.update(sampler="ddim", num_steps=5 if args.tiny else 50)
  trainer = build.make_trainer(config)
  state = jax.jit(trainer.init_state)(jax.random.key(0))
  num = 8 if args.tiny else 256
  gen = jax.jit(lambda s, k: trainer.generate(s, k, num))
  t = time.perf_counter()
  compiled = gen.lower(state, jax.random.key(1)).compile()
  compile_s = time.perf_counter() - t
  run = lambda n: [jax.block_until_ready(compiled(state, jax.random.key(i)))
                   for i in range(n)]
  seconds = _time(run, 1, args.rounds, 1)
  return _row(compiled, compile_s, seconds, num, trainer.policy.compute_dtype.__name__)


def _row(compiled, compile_s, seconds, images, dtype, total_steps=None) -> dict:
  kind = jax.devices()[0].device_kind
  flops = _flops(compiled)
  achieved = flops / seconds if flops else None
  p = peak(kind, dtype)
  row = {"device": kind, "dtype": dtype, "compile_s": compile_s,
         "seconds_per_call": seconds, "images_per_sec": images / seconds,
         "flops_per_call": flops, "achieved_flops_per_sec": achieved,
         "peak_flops_per_sec": p,
         "fraction_of_peak": achieved / p if achieved and p else None}
  if total_steps:
    row["projected_hours"] = total_steps * seconds / 3600
    row["projected_steps"] = total_steps
  return row


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--tiny", action="store_true", help="the tiny configs (a smoke run)")
  p.add_argument("--rows", default="ddpm_train_float32,ddpm_train_bfloat16,"
                                   "ddim50_sampling,dcgan_train_float32,"
                                   "dcgan_train_bfloat16")
  p.add_argument("--warmup", type=int, default=2)
  p.add_argument("--rounds", type=int, default=5)
  p.add_argument("--iters", type=int, default=10)
  p.add_argument("--batch_size", type=int, default=0,
                 help="the training rows' batch (default: the configs' own)")
  p.add_argument("--json_out", default="")
  args = p.parse_args(argv)
  xla_options.configure_cpu()  # before JAX creates its CPU client
  if args.tiny:
    args.warmup, args.rounds, args.iters = 1, 2, 1
  variant = ":tiny" if args.tiny else ":paper"
  builders = {
      "ddpm_train_float32": lambda: train_row("configs/ddpm_cifar10.py" + variant,
                                              "float32", args),
      "ddpm_train_bfloat16": lambda: train_row("configs/ddpm_cifar10.py" + variant,
                                               "bfloat16", args),
      "ddim50_sampling": lambda: sampling_row(args),
      "dcgan_train_float32": lambda: train_row("configs/dcgan_celeba.py" + variant,
                                               "float32", args),
      "dcgan_train_bfloat16": lambda: train_row("configs/dcgan_celeba.py" + variant,
                                                "bfloat16", args),
  }
  unknown = [name for name in args.rows.split(",") if name not in builders]
  if unknown:
    p.error(f"unknown rows {unknown}; choose from {', '.join(builders)}")
  # Does this backend sum bfloat16 in float32? (XLA's CPU backend does not: 96% off.)
  # The training loop's step accumulates in float32 (precision.accumulate_in_float32).
  results = {"bias_gradient_error_bfloat16": precision.bias_gradient_error("bfloat16"),
             "bias_gradient_error_bfloat16_accumulated":
                 precision.bias_gradient_error("bfloat16", accumulated=True),
             "device_kind": jax.devices()[0].device_kind}
  print(f"bfloat16 bias-gradient error on {results['device_kind']}: "
        f"{results['bias_gradient_error_bfloat16']:.2%}, as the training step "
        f"accumulates it: {results['bias_gradient_error_bfloat16_accumulated']:.2%}",
        flush=True)
  for name in args.rows.split(","):
    results[name] = builders[name]()
    r = results[name]
    frac = r["fraction_of_peak"]
    print(f"{name:22s} {r['images_per_sec']:10.1f} img/s  "
          f"{(r['achieved_flops_per_sec'] or 0) / 1e12:7.2f} TFLOP/s  "
          f"peak fraction {frac if frac is None else round(frac, 3)}  "
          + (f"projected {r['projected_hours']:.1f} h for {r['projected_steps']} steps"
             if "projected_hours" in r else ""), flush=True)
    _write(results, args.json_out)  # after each row: a timeout keeps the rows done
  print(json.dumps(results))


def _write(results: dict, path: str):
  if path:
    with open(path + ".tmp", "w") as f:
      f.write(json.dumps(results))
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
  main()
