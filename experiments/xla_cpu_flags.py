r"""XLA's CPU backend options against the defaults, on compare_peers.py's jaxgen rows.

  python experiments/xla_cpu_flags.py                       # every set, two rows
  python experiments/xla_cpu_flags.py --rows=dcgan_train --sets=default,xnnpack

Each flag set runs in its own process (XLA_FLAGS is read once, at start-up), which
builds and compiles the row's jaxgen model as experiments/compare_peers.py does; the
rounds then alternate between the processes, so that a change of load hits every set
alike. Prints the median images/s of each set and its ratio to ``default``, then one
JSON line. The sets are the options of the installed XLA that may speed up these
steps without changing what is computed: the XNNPACK and oneDNN library paths, the
YNNPACK fusions, the concurrency-optimised scheduler and the fast-runtime preset.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
import compare_peers  # noqa: E402 (the rows' jaxgen builders and their protocol)
from jaxgen import benchmarking, xla_options  # noqa: E402

SETS = {
    "default": "",
    "xnnpack": "--xla_cpu_use_xnnpack=true",
    "xnn_graph": "--xla_cpu_use_xnnpack=true "
                 "--xla_cpu_experimental_xnn_graph_fusion_mode=XNN_GRAPH_FUSION_MODE_GREEDY",
    "onednn": "--xla_cpu_use_onednn=true",
    "ynn": "--xla_cpu_experimental_ynn_fusion_type=dot,eltwise,reduce",
    "ynn_dot": "--xla_cpu_experimental_ynn_fusion_type=dot",
    "concurrency": "--xla_cpu_scheduler_type=CPU_SCHEDULER_TYPE_CONCURRENCY_OPTIMIZED",
    "fast_runtime": "--xla_cpu_opt_preset=CPU_OPT_PRESET_FAST_RUNTIME",
}


def child():
  """Answers compare_peers' requests (setup, round, free), one JSON line each."""
  xla_options.configure_cpu()  # before JAX creates its CPU client (a no-op here:
  # JAXGEN_YNN_FUSION=0 leaves each set's XLA_FLAGS as they are)
  channel = os.fdopen(os.dup(1), "w", buffering=1)
  os.dup2(2, 1)
  side = compare_peers.Side(compare_peers.JAXGEN)
  for line in sys.stdin:
    channel.write(json.dumps(side.request(json.loads(line))) + "\n")


class Process:
  def __init__(self, flags: str):
    env = {**os.environ, "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} {flags}".strip(),
           "JAX_PLATFORMS": "cpu", "JAXGEN_YNN_FUSION": "0"}  # XLA's own defaults
    self.proc = subprocess.Popen([sys.executable, __file__, "--child"], env=env,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 text=True, bufsize=1)

  def request(self, request: dict) -> dict:
    self.proc.stdin.write(json.dumps(request) + "\n")
    line = self.proc.stdout.readline()
    if not line:
      return {"ok": False, "error": f"the process ended (status {self.proc.wait()})"}
    return json.loads(line)

  def close(self):
    self.proc.stdin.close()
    self.proc.wait(timeout=60)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--rows", default="dcgan_train,ddpm_unet_train")
  p.add_argument("--sets", default=",".join(SETS))
  p.add_argument("--rounds", type=int, default=3)
  p.add_argument("--iters", type=int, default=3)
  p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  if args.child:
    return child()
  # No xla_options.configure_cpu() here: this process computes nothing, and its
  # XLA_FLAGS would reach every set's process (``default`` is XLA's own defaults).
  names = args.sets.split(",")
  unknown = sorted(set(names) - set(SETS))
  if unknown:
    p.error(f"unknown --sets {unknown}; choose from {', '.join(SETS)}")
  print(f"load averages at start: {benchmarking.load_averages()}")
  results = []
  for row in args.rows.split(","):
    procs = {n: Process(SETS[n]) for n in names}
    try:
      ready = []
      for n, proc in procs.items():
        reply = proc.request({"op": "setup", "row": row, "warmup": 1})
        if reply.get("ok"):
          ready.append(n)
        else:
          print(f"{row} {n}: {reply.get('error')}")

      def measure(proc):
        def one_round():
          reply = proc.request({"op": "round", "iters": args.iters})
          if not reply.get("ok"):
            raise RuntimeError(f"{row}: {reply.get('error')}")
          return reply["seconds"]
        return one_round

      seconds = benchmarking.alternating_rounds({n: measure(procs[n]) for n in ready},
                                                args.rounds)
      per_iter = args.iters * compare_peers.IMAGES_PER_ITER[row]
      ok = {n: [per_iter / s for s in times] for n, times in seconds.items()}
    finally:
      for proc in procs.values():
        proc.close()
    base = statistics.median(ok["default"]) if ok.get("default") else None
    for n, ips in ok.items():
      med = statistics.median(ips)
      results.append({"row": row, "set": n, "flags": SETS[n], "images_per_sec": med,
                      "vs_default": med / base if base else None, "rounds": ips})
      print(f"{row:18s} {n:13s} {med:8.2f} img/s  x{med / base if base else 0:.3f}")
  print(f"load averages at end: {benchmarking.load_averages()}")
  print(json.dumps(results))


if __name__ == "__main__":
  main()
