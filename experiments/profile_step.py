r"""Where a train step's time goes, jaxgen against its PyTorch peer, op class by op class.

  python experiments/profile_step.py --peer_python=/tmp/peervenv/bin/python
  python experiments/profile_step.py --rows=dcgan_train --iters=5

For each row of experiments/compare_peers.py that trains (ddpm_unet_train,
dcgan_train), both sides build the same model as there and warm up; then jaxgen's
step runs under ``jax.profiler.trace`` and the peer's under ``torch.profiler``. The
jaxgen trace holds one event per XLA thunk (a convolution, a fusion, a copy) on the
thread that ran it; each is classed by what the compiled HLO says it computes
(a fusion by the ops inside it). The peer's operators are classed by their ATen
names, by self time (children excluded). Printed per class: milliseconds per step
on each side and their ratio, then each side's wall time per step and busy time
(the sum over threads, jaxgen's thunks may overlap on the two cores), and one JSON
line. Run it on a quiet machine: the load averages are printed.
"""
import argparse
import collections
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import compare_peers  # noqa: E402 (the peer side of the rows, and their batch sizes)

ROWS = ("ddpm_unet_train", "dcgan_train")
SPECS = {"ddpm_unet_train": ("configs/ddpm_cifar10.py:paper", compare_peers.DDPM_BATCH),
         "dcgan_train": ("configs/dcgan_celeba.py:paper", compare_peers.DCGAN_BATCH)}
CLASSES = ("convolution", "matmul", "normalisation", "elementwise/reduce", "copy/layout",
           "optimizer", "other")

# ATen operator -> class (by self time: a convolution's own kernels, not its children).
_TORCH = (("convolution", r"conv|mkldnn_convolution|slow_conv"),
          ("matmul", r"::(mm|addmm|bmm|baddbmm|matmul|linear|_scaled_dot_product|"
                     r"scaled_dot_product)"),
          ("normalisation", r"norm"),
          ("optimizer", r"_foreach|adam|lerp"),
          ("copy/layout", r"copy_|contiguous|clone|cat|permute|transpose|to_copy|"
                          r"empty|zero_|fill_|view|reshape|as_strided|index|stack|pad"),
          ("elementwise/reduce", r"."))


def torch_class(name: str) -> str:
  for cls, pattern in _TORCH:
    if re.search(pattern, name, re.IGNORECASE):
      return cls
  return "other"


def hlo_classes(hlo_text: str) -> dict:
  """thunk name -> class, from the compiled module's text: an instruction of the
  entry computation by its opcode, a fusion by the ops of the computation it calls."""
  computations, current = {}, None
  for line in hlo_text.splitlines():
    head = re.match(r"^(ENTRY )?%?([\w.\-]+) .*\{\s*$", line)
    if head and not line.startswith(" "):
      current = computations.setdefault(head.group(2), [])
      continue
    inst = re.match(r"^\s*(ROOT )?%?([\w.\-]+) = .*?\b([a-z][\w\-]*)\((.*)$", line)
    if inst and current is not None:
      calls = re.search(r"calls=%?([\w.\-]+)", line)
      current.append((inst.group(2), inst.group(3), calls.group(1) if calls else None))

  def ops_of(computation, seen=()):
    out = set()
    for _, opcode, calls in computations.get(computation, ()):
      out.add(opcode)
      if calls and calls not in seen:
        out |= ops_of(calls, (*seen, calls))
    return out

  classes = {}
  for insts in computations.values():
    for name, opcode, calls in insts:
      ops = ops_of(calls) | {opcode} if calls else {opcode}
      if "convolution" in ops:
        cls = "convolution"
      elif "dot" in ops:
        cls = "matmul"
      elif ops <= {"copy", "transpose", "bitcast", "reshape", "broadcast", "slice",
                   "concatenate", "pad", "dynamic-slice", "dynamic-update-slice",
                   "parameter", "tuple", "get-tuple-element", "constant", "fusion"}:
        cls = "copy/layout"
      elif ops & {"rng-bit-generator", "custom-call", "sort", "while", "call",
                  "conditional"}:
        cls = "other"
      else:
        cls = "elementwise/reduce"
      classes[name] = cls
  return classes


def _benchmarking():
  """jaxgen.benchmarking. jaxgen is imported here, not at the top of the file: this
  file also runs as the peer child (``--peer_child``), in a python that has torch and
  the peers but need not have jaxgen or JAX."""
  if REPO not in sys.path:
    sys.path.insert(0, REPO)
  from jaxgen import benchmarking
  return benchmarking


def jaxgen_profile(row: str, iters: int) -> dict:
  spec, batch = SPECS[row]
  run, info = _benchmarking().train_step(spec, batch, root=REPO)
  run(2)  # warm-up
  return profile_compiled(run, info["compiled"], iters)


def profile_compiled(run, compiled, iters: int) -> dict:
  """``run(iters)`` of the jax-compiled ``compiled`` under the profiler: its wall time
  and thunk time per class, per iteration."""
  import jax
  classes = hlo_classes(compiled.as_text())
  directory = tempfile.mkdtemp(prefix="jaxgen_profile_")
  with jax.profiler.trace(directory):
    start = time.perf_counter()
    run(iters)
    wall = time.perf_counter() - start
  path = glob.glob(os.path.join(directory, "**", "*.xplane.pb"), recursive=True)[0]
  data = jax.profiler.ProfileData.from_file(path)
  per_class, unknown = collections.Counter(), collections.Counter()
  for plane in data.planes:
    if plane.name != "/host:CPU":
      continue
    for line in plane.lines:
      if line.name == "python":
        continue
      for event in line.events:
        name = event.name
        if name.startswith("end: ") or "::" in name:
          continue  # the runtime's own events (the executor, waits), around thunks
        if name.startswith("$"):
          continue  # Python frames of other threads (the Python tracer's "$file:line")
        cls = classes.get(name)
        if cls is None:
          unknown[name] += event.duration_ns
          cls = "other"
        per_class[cls] += event.duration_ns
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return {"wall_ms": 1e3 * wall / iters,
          "ms": {c: per_class[c] / 1e6 / iters for c in CLASSES},
          "unclassified": [n for n, _ in unknown.most_common(5)],
          "gflop_per_step": float(cost.get("flops", 0.0)) / 1e9}


def peer_profile(row: str, iters: int, threads: int) -> dict:
  import torch
  from torch.profiler import ProfilerActivity, profile
  torch.set_num_threads(threads)
  torch.manual_seed(0)
  run, _ = compare_peers.PEER[row]({})
  run(2)  # warm-up
  with profile(activities=[ProfilerActivity.CPU]) as prof:
    start = time.perf_counter()
    run(iters)
    wall = time.perf_counter() - start
  per_class = collections.Counter()
  top = collections.Counter()
  for event in prof.key_averages():
    per_class[torch_class(event.key)] += event.self_cpu_time_total
    top[event.key] += event.self_cpu_time_total
  return {"wall_ms": 1e3 * wall / iters,
          "ms": {c: per_class[c] / 1e3 / iters for c in CLASSES},
          "top": [(k, round(v / 1e3 / iters, 2)) for k, v in top.most_common(8)]}


def format_row(row: str, mine: dict, peer: dict | None) -> str:
  lines = [f"{row}: ms per step by class (jaxgen: thunk time summed over threads; "
           f"peer: ATen self time)",
           f"  {'class':<20} {'jaxgen':>9} {'peer':>9} {'ratio':>7}"]
  for cls in CLASSES:
    a, b = mine["ms"][cls], (peer["ms"][cls] if peer else float("nan"))
    if a < 0.05 and (not peer or b < 0.05):
      continue
    ratio = f"{a / b:7.2f}" if peer and b > 0.05 else "      -"
    lines.append(f"  {cls:<20} {a:9.1f} {b:9.1f} {ratio}")
  busy = sum(mine["ms"].values())
  rest = [sum(v for c, v in side["ms"].items() if c not in ("convolution", "matmul"))
          for side in (mine, peer) if side]
  lines.append(f"  {'all but conv/matmul':<20} {rest[0]:9.1f} "
               f"{rest[1] if peer else float('nan'):9.1f}")
  lines.append(f"  {'busy (sum)':<20} {busy:9.1f} "
               f"{sum(peer['ms'].values()) if peer else float('nan'):9.1f}")
  lines.append(f"  {'wall':<20} {mine['wall_ms']:9.1f} "
               f"{peer['wall_ms'] if peer else float('nan'):9.1f}")
  lines.append(f"  jaxgen: {mine['gflop_per_step']:.1f} GFLOP per step (XLA's cost analysis), "
               f"{mine['gflop_per_step'] / mine['wall_ms'] * 1e3:.0f} GFLOP/s; thunks in flight "
               f"{busy / mine['wall_ms']:.2f} on average (each may use every core inside)")
  return "\n".join(lines)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--rows", default=",".join(ROWS))
  p.add_argument("--iters", type=int, default=3)
  p.add_argument("--threads", type=int, default=os.cpu_count())
  p.add_argument("--peer_python", default="",
                 help="the python of a venv with torch and the peer packages; "
                      "without it only jaxgen is profiled")
  p.add_argument("--peer_child", default="", help=argparse.SUPPRESS)
  a = p.parse_args(argv)
  if a.peer_child:
    print(json.dumps(peer_profile(a.peer_child, a.iters, a.threads)))
    return 0
  rows = [r for r in a.rows.split(",") if r]
  bad = sorted(set(rows) - set(ROWS))
  if bad:
    p.error(f"unknown rows {bad}; the rows are {', '.join(ROWS)}")
  bm = _benchmarking()  # jaxgen and JAX in this process only, not in the peer child
  from jaxgen import xla_options
  xla_options.configure_cpu()  # before JAX creates its CPU client
  print(f"load averages at start: {bm.load_averages()}")
  results = {}
  for row in rows:
    peer = None
    if a.peer_python:
      proc = subprocess.run([a.peer_python, os.path.abspath(__file__),
                             f"--peer_child={row}", f"--iters={a.iters}",
                             f"--threads={a.threads}"], capture_output=True, text=True)
      if proc.returncode != 0:
        print(f"{row}: the peer failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
      else:
        peer = json.loads(proc.stdout.strip().splitlines()[-1])
    mine = jaxgen_profile(row, a.iters)
    results[row] = {"jaxgen": mine, "peer": peer}
    print(format_row(row, mine, peer))
    if peer:
      print("  peer's top operators (ms/step):", peer["top"])
  print(f"load averages at end: {bm.load_averages()}")
  print(json.dumps(results))
  return 0


if __name__ == "__main__":
  sys.exit(main())
