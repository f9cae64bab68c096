r"""The StyleGAN2 ablation of issue 29 section 2: one lever at a time from the default
(configs/stylegan2_mnist.py), a few seeds per arm, with the coverage read every
``--eval_every`` steps.

  python experiments/stylegan2_ablation.py --out=/tmp/sg2_ablation \
      [--arms=baseline,r1r2_g1,...] [--seeds=0,1,2] [--budget_s=2700] \
      [--eval_every=250] [--arm='NAME=--config.a=1 --config.b=2'] [--dry_run]

The training loop has no periodic evaluation, and it resumes from its checkpoints bit
for bit, so each run (one arm, one seed, in ``OUT/ARM/seedS``) trains in segments:
``python -m jaxgen.main ... --config.train.num_steps=K`` for K = 250, 500, ... on one
workdir. Each segment ends in the loop's own evaluation of the config's
``eval.metrics`` (the default's: FID and IS in the MNIST classifier's features,
class_coverage, precision_recall) on the test digits, kept as
``evals/step_K.json``. Then ``--mode=eval`` on 1,000 training digits without sample
metrics gives D's mean real sign there (``evals/step_K_train.json``): the gap to the
test digits' is ADA's overfitting signal. The runs go one at a time; the programs
compile once for all of them (XLA's persistent cache in ``OUT/xla_cache``).

From ``metrics.jsonl`` (a line every ``train.log_every`` steps, the mean of its
steps), for each segment: D's real and fake signs and ADA's p of its last line, and
the R1, R2 and path-length penalties as means over the steps where they ran. (A line
averages in the steps where a lazy penalty did not run as 0; the steps where it ran
are counted from the run's intervals.)

``--budget_s`` caps each run's training time (the loop's own seconds, summed from its
log lines, compilation included): the next segment ends early where the measured
rate says the budget runs out, and none starts past it or for less than a tenth of
``--eval_every`` steps. ``--max_wall_s``
(default twice the budget) stops a segment outright (SIGTERM: the loop saves a
checkpoint), whose checkpoint is then evaluated. A segment that fails (a loss that
stops being finite, say) ends its run; the failure is recorded, and the next run goes
on. Rerunning the same command skips the segments already evaluated (and a failed
run: remove its folder to run it again).

Printed: one row per run (arm, seed, steps, effective classes, smallest class share,
recall, precision, FID, wall seconds, training seconds, the mean 1-minute load
average), then one per arm (means and spread over the seeds); written, with every
evaluation and segment, to ``OUT/ablation.json`` after each run.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = "configs/stylegan2_mnist.py"

_G = "--config.stylegan2."


def _penalties(gamma: float, interval: int | None = None) -> list:
  out = [f"{_G}r1_gamma={gamma}", f"{_G}r2_gamma={gamma}"]
  return out + ([f"{_G}r1_interval={interval}"] if interval else [])


# Each arm: the --config overrides that make it from the default.
ARMS = {
    "baseline": [],
    # R2 beside R1, one gamma for both (R3GAN's pairing), on the default's schedule.
    "r1r2_g0.1": _penalties(0.1),
    "r1r2_g1": _penalties(1.0),
    "r1r2_g10": _penalties(10.0),
    # The D regularisation every 4 steps instead of 16: R1 alone, and with R2.
    "reg_every4": [f"{_G}r1_interval=4"],
    "r1r2_g1_every4": _penalties(1.0, 4),
    # 128/128/64/32 channels at 4/8/16/32 px instead of 32 everywhere.
    "channel_max128": ["--config.model.channel_max=128"],
    # Digit-safe augmentation: at a fixed p, and adapted by ADA (ada_kimg 100).
    "aug_digits_p0.25": [f"{_G}augment=digits", f"{_G}augment_p=0.25",
                         f"{_G}ada_target=0.0"],
    "ada_digits": [f"{_G}augment=digits"],
    "d_lr_half": ["--config.optim.discriminator.learning_rate=0.00125"],
    "map_lr0.1": ["--config.model.mapping_lr_multiplier=0.1"],
}

# The table: (column, width, format) of each run's row.
COLUMNS = (("arm", 18, "s"), ("seed", 4, "d"), ("steps", 5, "d"),
           ("effective_classes", 9, ".2f"), ("smallest_share", 8, ".3f"),
           ("recall", 6, ".3f"), ("precision", 9, ".3f"), ("fid", 8, ".1f"),
           ("wall_s", 7, ".0f"), ("train_s", 7, ".0f"), ("load", 5, ".2f"))
# The table of the arms: the means over the seeds, and the spread of the readouts.
ARM_COLUMNS = (("arm", 18, "s"), ("seeds", 5, "d"), ("steps", 5, ".0f"),
               ("effective_classes", 9, ".2f"), ("effective_classes_std", 9, ".2f"),
               ("smallest_share", 8, ".3f"), ("recall", 6, ".3f"),
               ("recall_std", 10, ".3f"), ("precision", 9, ".3f"), ("fid", 8, ".1f"),
               ("fid_std", 7, ".1f"), ("wall_s", 7, ".0f"), ("train_s", 7, ".0f"),
               ("load", 5, ".2f"))
# What each evaluation keeps of eval.json, under the name it gets here.
EVAL_FIELDS = {"effective_classes": "class_coverage_effective",
               "smallest_share": "class_coverage_smallest_share",
               "diversity": "class_coverage_diversity",
               "counts": "class_coverage_counts", "recall": "recall",
               "precision": "precision", "fid": "fid",
               "inception_score": "inception_score", "d_real_sign": "d_real_sign",
               "d_fake_sign": "d_fake_sign", "ada_p": "ada_p"}
# The penalties logged by the train step, and the interval field each runs on.
PENALTIES = {"r1_penalty": "r1_interval", "r2_penalty": "r1_interval",
             "pl_penalty": "pl_interval"}


def parse_arm(text: str) -> tuple:
  """'NAME=--config.a=1 --config.b=2' -> (NAME, [overrides])."""
  name, sep, rest = text.partition("=")
  overrides = shlex.split(rest)
  if not sep or not name or any(not o.startswith("--config.") for o in overrides):
    raise SystemExit(f"--arm={text!r}: write NAME=--config.FIELD=VALUE ... (the "
                     f"overrides separated by spaces).")
  return name, overrides


def segment_ends(done: int, num_steps: int, eval_every: int) -> list:
  """The steps where segments end after ``done``: multiples of ``eval_every``, and
  ``num_steps``."""
  ends = list(range((done // eval_every + 1) * eval_every, num_steps, eval_every))
  return [e for e in ends if e > done] + ([num_steps] if num_steps > done else [])


def read_jsonl(path: str) -> list:
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def firing_steps(start: int, end: int, interval: int) -> int:
  """How many of the 0-based steps t in [start, end) have t % interval == 0."""
  return max(0, (end - 1) // interval - (start - 1) // interval) if end > start else 0


def segment_summary(lines: list, start: int, end: int, intervals: dict) -> dict:
  """D's signs and ADA's p of the last log line in (start, end], the penalties' means
  over the steps where each ran, and the loop's seconds of those lines."""
  out, sums, counts, seconds, prev = {}, {}, {}, 0.0, None
  for line in lines:
    step = line["step"]
    lo = prev if prev is not None else 0
    prev = step
    if not start < step <= end:
      continue
    lo = max(lo, start)
    seconds += (step - lo) / max(line.get("steps_per_sec", 0.0), 1e-12)
    for name, field in PENALTIES.items():
      if name in line and field in intervals:
        n = firing_steps(lo, step, intervals[field])
        sums[name] = sums.get(name, 0.0) + line[name] * (step - lo)
        counts[name] = counts.get(name, 0) + n
    for name in ("real_sign", "fake_sign", "g_fake_sign", "ada_p", "d_loss", "g_loss"):
      if name in line:
        out[name] = line[name]
  for name in sums:
    out[name] = sums[name] / counts[name] if counts[name] else None
  out["train_s"] = seconds
  return out


def main_command(config: str, workdir: str, seed: int, overrides: list) -> list:
  """``python -m jaxgen.main`` of one run (arm overrides, seed, workdir)."""
  return [sys.executable, "-m", "jaxgen.main", f"--config={config}",
          f"--workdir={workdir}", f"--config.seed={seed}", *overrides]


def train_split_eval(base: list, num_examples: int) -> list:
  """``base``'s --mode=eval of D's signs on ``num_examples`` training digits."""
  return [*base, "--mode=eval", "--config.eval.split=train", "--config.eval.metrics=()",
          f"--config.eval.num_examples={num_examples}"]


def run_command(cmd: list, log_path: str, deadline: float | None, env: dict) -> tuple:
  """Run ``cmd`` (output appended to ``log_path``); SIGTERM it at ``deadline``
  (time.time()). Returns (return code, whether the deadline stopped it)."""
  with open(log_path, "a") as log:
    log.write("$ " + shlex.join(cmd) + "\n")
    log.flush()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                            env=env)
    stopped = False
    while True:
      try:
        timeout = None if deadline is None else max(deadline - time.time(), 0.1)
        return proc.wait(timeout=timeout), stopped
      except subprocess.TimeoutExpired:
        if stopped:  # the loop saves and exits on SIGTERM; give it a few minutes
          proc.kill()
          return proc.wait(), stopped
        proc.send_signal(signal.SIGTERM)
        stopped, deadline = True, time.time() + 300


def _tail(path: str, n: int = 5) -> str:
  with open(path) as f:
    return "".join(f.readlines()[-n:]).strip()


def _evaluation(workdir: str, step: int) -> dict:
  with open(os.path.join(workdir, "evals", f"step_{step}.json")) as f:
    result = json.load(f)
  out = {"step": result["step"]}
  out.update({k: result.get(v) for k, v in EVAL_FIELDS.items()})
  path = os.path.join(workdir, "evals", f"step_{step}_train.json")
  if os.path.exists(path):
    with open(path) as f:
      out["d_real_sign_train"] = json.load(f).get("d_real_sign")
  return out


def train_run(args, arm: str, overrides: list, seed: int, env: dict) -> dict:
  """One arm at one seed, segment by segment; its record (also in the workdir)."""
  workdir = os.path.join(args.out, arm, f"seed{seed}")
  evals_dir = os.path.join(workdir, "evals")
  os.makedirs(evals_dir, exist_ok=True)
  log_path = os.path.join(workdir, "ablation.log")
  record_path = os.path.join(workdir, "ablation_run.json")
  record = {"arm": arm, "seed": seed, "overrides": overrides, "segments": []}
  if os.path.exists(record_path):
    with open(record_path) as f:
      record = json.load(f)
  base = main_command(args.config, workdir, seed, [*overrides, *args.set])
  done = max([s["step"] for s in record["segments"]] or [0])
  t0 = time.time() - sum(s["wall_s"] for s in record["segments"])
  deadline = t0 + (args.max_wall_s or 2 * args.budget_s)
  while not record.get("failed"):
    intervals, lines = _intervals(workdir), read_jsonl(os.path.join(workdir,
                                                                    "metrics.jsonl"))
    train_s = segment_summary(lines, 0, done, intervals)["train_s"]
    ends = segment_ends(done, args.num_steps, args.eval_every)
    if not ends or train_s >= args.budget_s or time.time() >= deadline:
      break
    end = ends[0]
    if done and train_s > 0:  # the rate so far says where the budget runs out
      left = int((args.budget_s - train_s) * done / train_s)
      if left < max(1, args.eval_every // 10):  # not worth a segment's start-up
        break
      end = min(end, done + left)
    start_wall = time.time()
    rc, stopped = run_command([*base, f"--config.train.num_steps={end}"], log_path,
                              deadline, env)
    if rc and not stopped:
      record["failed"] = f"segment to step {end}: exit {rc}: {_tail(log_path)}"
      break
    if stopped:  # evaluate the checkpoint the SIGTERM left
      rc, _ = run_command([*base, "--mode=eval"], log_path, None, env)
      if rc:
        record["failed"] = f"eval after the wall cap: exit {rc}: {_tail(log_path)}"
        break
    with open(os.path.join(workdir, "eval.json")) as f:
      result = json.load(f)
    step = int(result["step"])
    with open(os.path.join(evals_dir, f"step_{step}.json"), "w") as f:
      json.dump(result, f, indent=1)
    train_eval_rc = None
    if args.train_examples:
      rc, _ = run_command(train_split_eval(base, args.train_examples), log_path, None,
                          env)
      train_eval_rc = rc
      if not rc:
        os.replace(os.path.join(workdir, "eval.json"),
                   os.path.join(evals_dir, f"step_{step}_train.json"))
      with open(os.path.join(workdir, "eval.json"), "w") as f:  # the test split's again
        json.dump(result, f, indent=2, sort_keys=True)
    lines = read_jsonl(os.path.join(workdir, "metrics.jsonl"))
    record["segments"].append({
        "step": step, "wall_s": time.time() - start_wall, "load": os.getloadavg()[0],
        "train_eval_rc": train_eval_rc,
        **segment_summary(lines, done, step, _intervals(workdir)),
        **_evaluation(workdir, step)})
    done = step
    with open(record_path, "w") as f:
      json.dump(record, f, indent=1)
    if stopped:
      break
  with open(record_path, "w") as f:
    json.dump(record, f, indent=1)
  return record


def _intervals(workdir: str) -> dict:
  """The run's lazy intervals, from the config.json the loop writes."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    s = json.load(f).get("stylegan2", {})
  return {k: s[k] for k in ("r1_interval", "pl_interval") if k in s}


def row(record: dict) -> dict:
  """A run's table row: its last evaluation, its time and its mean load."""
  segs = record["segments"]
  last = segs[-1] if segs else {}
  out = {"arm": record["arm"], "seed": record["seed"], "steps": last.get("step", 0)}
  for name in ("effective_classes", "smallest_share", "recall", "precision", "fid"):
    out[name] = last.get(name)
  out["wall_s"] = sum(s["wall_s"] for s in segs)
  out["train_s"] = sum(s["train_s"] for s in segs)
  out["load"] = float(np.mean([s["load"] for s in segs])) if segs else None
  if record.get("failed"):
    out["failed"] = record["failed"]
  return out


def arm_rows(rows: list) -> list:
  """Per arm: the mean over its seeds of each numeric column, and its std."""
  out = []
  for arm in dict.fromkeys(r["arm"] for r in rows):
    mine = [r for r in rows if r["arm"] == arm]
    agg = {"arm": arm, "seeds": len(mine)}
    for name, _, fmt in COLUMNS[2:]:
      vals = [r[name] for r in mine if r.get(name) is not None]
      agg[name] = float(np.mean(vals)) if vals else None
      agg[name + "_std"] = float(np.std(vals)) if len(vals) > 1 else None
    out.append(agg)
  return out


def format_table(rows: list, columns=COLUMNS) -> str:
  def cell(value, width, fmt):
    if value is None or (isinstance(value, float) and math.isnan(value)):
      return "-".rjust(width)
    return format(value, fmt).rjust(width) if fmt != "s" else str(value).ljust(width)
  head = " ".join(n[:w].rjust(w) if f != "s" else n[:w].ljust(w) for n, w, f in columns)
  body = [" ".join(cell(r.get(n), w, f) for n, w, f in columns) +
          (f"  FAILED: {r['failed'][:80]}" if r.get("failed") else "") for r in rows]
  return "\n".join([head, *body])


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--out", required=True, help="a folder for the runs and ablation.json")
  p.add_argument("--config", default=DEFAULT_CONFIG)
  p.add_argument("--arms", default=",".join(ARMS),
                 help=f"comma-separated, of {', '.join(ARMS)} and the --arm names")
  p.add_argument("--arm", action="append", default=[],
                 help="another arm: 'NAME=--config.a=1 --config.b=2' (repeatable)")
  p.add_argument("--seeds", default="0,1", help="comma-separated config.seed values")
  p.add_argument("--set", action="append", default=[],
                 help="an override for every run: --set=--config.eval.num_samples=500")
  p.add_argument("--num_steps", type=int, default=None,
                 help="the last step (default: the config's train.num_steps)")
  p.add_argument("--eval_every", type=int, default=250)
  p.add_argument("--budget_s", type=float, default=2700.0,
                 help="each run's training seconds (the loop's, from its log lines)")
  p.add_argument("--max_wall_s", type=float, default=None,
                 help="each run's wall seconds, evaluations included (default: "
                      "twice --budget_s)")
  p.add_argument("--train_examples", type=int, default=1000,
                 help="training digits for D's real sign after each segment (0: off)")
  p.add_argument("--dry_run", action="store_true", help="print the commands only")
  args = p.parse_args(argv)
  custom = dict(parse_arm(a) for a in args.arm)
  arms = {**ARMS, **custom}
  names = [a for a in args.arms.split(",") if a] + [n for n in custom
                                                     if n not in args.arms.split(",")]
  unknown = [a for a in names if a not in arms]
  if unknown:
    raise SystemExit(f"--arms: unknown {unknown}; known: {', '.join(arms)}.")
  args.arm_overrides = {a: arms[a] for a in names}
  args.seed_list = [int(s) for s in args.seeds.split(",") if s]
  if args.eval_every < 1 or args.budget_s <= 0:
    raise SystemExit("--eval_every must be at least 1 and --budget_s positive.")
  return args


def config_num_steps(config: str, overrides: list) -> int:
  """train.num_steps of ``config`` (with a --config.train.num_steps override)."""
  for o in reversed(overrides):
    if o.startswith("--config.train.num_steps="):
      return int(o.split("=", 1)[1])
  from jaxgen import config_file
  return int(config_file.load(config, root=REPO).train.num_steps)


def main(argv=None):
  args = parse_args(argv)
  args.num_steps = args.num_steps or config_num_steps(args.config, args.set)
  if args.dry_run:
    for arm, overrides in args.arm_overrides.items():
      for seed in args.seed_list:
        workdir = os.path.join(args.out, arm, f"seed{seed}")
        base = main_command(args.config, workdir, seed, [*overrides, *args.set])
        ends = segment_ends(0, args.num_steps, args.eval_every)
        print(f"# {arm} seed {seed}: segments to steps {ends[0]}, ..., {ends[-1]} "
              f"({len(ends)}), each then:")
        print(shlex.join([*base, f"--config.train.num_steps={ends[0]}"]))
        if args.train_examples:
          print(shlex.join(train_split_eval(base, args.train_examples)))
    return
  os.makedirs(args.out, exist_ok=True)
  env = dict(os.environ)
  env.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(args.out, "xla_cache"))
  records = []
  for arm, overrides in args.arm_overrides.items():
    for seed in args.seed_list:
      records.append(train_run(args, arm, overrides, seed, env))
      rows = [row(r) for r in records]
      with open(os.path.join(args.out, "ablation.json"), "w") as f:
        json.dump({"config": args.config, "set": args.set, "num_steps": args.num_steps,
                   "eval_every": args.eval_every, "budget_s": args.budget_s,
                   "arms": args.arm_overrides, "rows": rows, "by_arm": arm_rows(rows),
                   "runs": records}, f, indent=1)
      print(format_table(rows[-1:]), flush=True)
  rows = [row(r) for r in records]
  print("\n" + format_table(rows))
  by_arm = arm_rows(rows)
  print("\nmeans over the seeds (_std: their standard deviation):")
  print(format_table(by_arm, ARM_COLUMNS))
  print(f"\nwritten: {os.path.join(args.out, 'ablation.json')}")


if __name__ == "__main__":
  main()
