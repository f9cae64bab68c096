r"""The quality table of issue 29 section 5, and the lecture's trilemma, from finished
runs.

  python experiments/quality_table.py --out=DIR [--trilemma] [--batch=64] \
      [--repeats=5] [--budget_s=600] [--no_ceiling] NAME=WORKDIR [NAME=WORKDIR ...]
  python experiments/quality_table.py --out=DIR --trilemma    # redraw from DIR's json

For each finished run (any image family), one row:
  * the sample and reconstruction metrics its ``eval.json`` holds (the loop's
    evaluation, or ``--mode=eval``'s): FID, IS, precision, recall, effective classes
    (``class_coverage``'s, or ``digit_classes``'), class accuracy (conditional
    families), PSNR, SSIM and the reconstructions' class accuracy (autoencoders);
    blank where the run's ``config.eval.metrics`` did not ask for one;
  * the sampling time per image: the run's latest checkpoint restored as
    ``--mode=sample`` restores it, the family's ``generate`` compiled once as the
    evaluators compile it, then timed on ``--batch`` images (block_until_ready),
    ``--repeats`` times (fewer once ``--budget_s`` is spent, never fewer than 2), the
    median over the repeats divided by the batch, with the load averages at the time.
    A family whose ``generate`` reads inputs (``trainer.conditioning_keys``: labels,
    captions, source images) gets those of ``--batch`` eval examples, as the
    evaluators condition their samples, and the row says so; a family that cannot
    generate (CLIP) gets a note instead of a number;
  * the training's wall time: the loop's seconds summed from ``metrics.jsonl`` (each
    log line's steps over its ``steps_per_sec``; compilation and pictures included,
    the final evaluation not; a resumed run counts the segments its log kept), blank
    with a note where the file is missing;
  * the command that trained it: the config of ``configs/`` (its default or its
    ``tiny`` variant) whose resolved fields differ least from the run's
    ``config.json``, plus a ``--config.FIELD=VALUE`` for each field that differs
    (the frozen stages' paths among them);
  * its last sample grid (``samples/step_N.png``), copied to ``DIR/samples_NAME.png``.

Beside the runs, the real data's row (``jaxgen.evaluators.ceiling``): the same
evaluators with the real test images in place of samples, once for each group of
runs that evaluate alike (dataset, split, sample count, feature network, seed), and
binarised as the runs' ``config.data.binarize`` binarises their training images where
a family models binary pixels (the ceiling command's images are grey; the FID
reference stays the grey training split, as for the runs' samples). PSNR and SSIM
have no such row: a real image against itself is infinitely sharp.

Written: ``DIR/quality_table.md`` (the table: each group's real row, then its runs;
the notes below it) and ``DIR/quality_table.json`` (every number). ``--trilemma``
draws ``DIR/trilemma.png`` (matplotlib) from the table: one scatter, sampling time per
image on a log x axis, FID on a log y axis inverted so that up is better, recall as
the points' colour on a fixed 0..1 scale, each point labelled with its run and family;
a dashed line marks the real data's FID. One scatter rather than three panels:
speed and quality are the two axes on which the slide's claims differ most (GANs and
VAEs fast, diffusion slow; diffusion and GANs sharp), each family is one point read
once instead of three points matched across panels, and colour on a fixed scale reads
recall well enough for a dozen points. Runs without FID or a time are left out (the
json lists them under ``trilemma_left_out``).

A workdir without ``eval.json`` (or ``config.json``) is refused before any work, as
one ``error:`` line (exit status 2) that names it and the fix.
"""
from __future__ import annotations

import argparse
import functools
import glob
import json
import os
import re
import shlex
import shutil
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import jax  # noqa: E402
import ml_collections  # noqa: E402

from jaxgen import (benchmarking, build, config_file, errors, evaluators,  # noqa: E402
                    precision, sharding, stages, train, xla_options)
from jaxgen.errors import UserError  # noqa: E402
from jaxgen.evaluators import ceiling as ceiling_cli  # noqa: E402
from jaxgen.evaluators.features import real_data  # noqa: E402

# The table's metric columns: (heading, the eval.json keys that give it, first found
# wins, the evaluators of config.eval.metrics whose real-data row gives it).
METRICS = (
    ("FID", ("fid",), ("fid",)),
    ("IS", ("inception_score",), ("is",)),
    ("precision", ("precision",), ("precision_recall",)),
    ("recall", ("recall",), ("precision_recall",)),
    ("effective classes", ("class_coverage_effective", "digit_classes_effective"),
     ("class_coverage", "digit_classes")),
    ("class accuracy", ("class_accuracy",), ("class_accuracy",)),
    ("PSNR", ("psnr",), ()),
    ("SSIM", ("ssim",), ()),
    ("recon. class accuracy", ("class_accuracy_recon",), ("class_accuracy_recon",)),
)
CEILING_EVALUATORS = tuple(dict.fromkeys(e for *_, evs in METRICS for e in evs))
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
MIN_REPEATS = 2


# --- reading a run ----------------------------------------------------------------
def parse_runs(specs) -> list[tuple[str, str]]:
  """``NAME=WORKDIR`` arguments as (name, absolute workdir), each checked: a usable
  name, a folder holding a finished run's ``config.json`` and ``eval.json``."""
  runs, seen = [], set()
  for spec in specs:
    name, sep, workdir = spec.partition("=")
    if not sep or not workdir:
      raise UserError(f"{spec!r}: give each run as NAME=WORKDIR (e.g. "
                      f"vae=/runs/vae_mnist).")
    if not NAME.match(name):
      raise UserError(f"{spec!r}: the name {name!r} must be letters, digits, '_', '.' "
                      f"or '-' (it names the run's row and its sample grid's file).")
    if name in seen:
      raise UserError(f"{spec!r}: the name {name!r} is given twice; name each run "
                      f"once.")
    seen.add(name)
    workdir = os.path.abspath(os.path.expanduser(workdir))
    if not os.path.isfile(os.path.join(workdir, "config.json")):
      raise UserError(f"{name}={workdir} is not a jaxgen run (no config.json): train "
                      f"it first with python -m jaxgen.main --config=... "
                      f"--workdir={workdir}, or point {name}= at the run's workdir.")
    if not os.path.isfile(os.path.join(workdir, "eval.json")):
      raise UserError(f"{name}={workdir} has no eval.json (the run is unfinished, or "
                      f"was stopped before its evaluation): finish it by rerunning its "
                      f"training command, or evaluate its latest checkpoint with "
                      f"python -m jaxgen.main --config=<its config> "
                      f"--workdir={workdir} --mode=eval.")
    runs.append((name, workdir))
  return runs


def read_json(path: str) -> dict:
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError) as e:
    raise UserError(f"{path} cannot be read ({type(e).__name__}: {e}): it is cut "
                    f"short or not a jaxgen run's; rerun that run's evaluation "
                    f"(--mode=eval).") from e


def pick_metrics(result: dict) -> dict:
  """The table's metrics that ``result`` (an eval.json, or a ceiling) holds:
  eval.json key -> value, the first key of each column found."""
  picked = {}
  for _, keys, _ in METRICS:
    key = next((k for k in keys if isinstance(result.get(k), (int, float))), None)
    if key is not None:
      picked[key] = result[key]
  return picked


def guidance_note(result: dict, picked: dict) -> str:
  """A note where eval.json holds a column's numbers only per guidance scale (or
  re-ranking count): the table shows no number then."""
  found = sorted({k for _, keys, _ in METRICS for k in keys if k not in picked
                  for r in result if r.startswith(f"{k}_guidance_")
                  or r.startswith(f"{k}_rerank_")})
  return (f"eval.json holds {', '.join(found)} per guidance scale or candidate count "
          f"only (config.eval.guidance_scales / rerank_candidates): not shown"
          if found else "")


def train_seconds(workdir: str) -> tuple[float | None, str]:
  """The training loop's seconds from ``metrics.jsonl``: each line's steps since the
  previous line over its ``steps_per_sec``; (None, why) where it cannot be read."""
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.isfile(path):
    return None, "no metrics.jsonl: wall time not recorded"
  total, previous = 0.0, 0
  with open(path) as f:
    for line in f:
      try:
        entry = json.loads(line)
        step, rate = int(entry["step"]), float(entry["steps_per_sec"])
      except (ValueError, KeyError, TypeError):
        return None, f"{path} has a line without step and steps_per_sec: wall time unread"
      if rate <= 0:
        return None, f"{path}: steps_per_sec {rate} at step {step}: wall time unread"
      total += (step - previous) / rate
      previous = step
  if not previous:
    return None, f"{path} is empty: wall time not recorded"
  return total, ""


def sample_grid(workdir: str, name: str, out: str) -> str | None:
  """The run's last sample grid (samples/step_N.png, N largest) copied to
  ``out/samples_NAME.png``; its file name, or None where the run saved none."""
  grids = glob.glob(os.path.join(workdir, "samples", "step_*.png"))
  steps = {int(m.group(1)): p for p in grids
           if (m := re.match(r"step_(\d+)\.png$", os.path.basename(p)))}
  if not steps:
    return None
  fname = f"samples_{name}.png"
  shutil.copyfile(steps[max(steps)], os.path.join(out, fname))
  return fname


# --- the command that trained a run -------------------------------------------------
def flatten(tree, prefix: str = "") -> dict:
  out = {}
  for key, value in tree.items():
    path = f"{prefix}{key}"
    if isinstance(value, dict) and value:
      out.update(flatten(value, path + "."))
    else:
      out[path] = value
  return out


def override(field: str, value) -> str:
  """``--config.FIELD=VALUE`` as the command line reads it (tuples as Python tuples)."""
  if isinstance(value, list):
    value = repr(tuple(value))
  elif isinstance(value, dict):
    value = repr(value)
  return shlex.quote(f"--config.{field}={value}")


@functools.lru_cache(maxsize=1)
def known_configs() -> tuple:
  """(spec, family, resolved fields as a run's config.json records them) of each
  configs/NAME.py, its default and its ``tiny`` variant (where it has one)."""
  found = []
  for path in sorted(glob.glob(os.path.join(REPO, "configs", "*.py"))):
    name = os.path.basename(path)[:-3]
    if name == "common" or name.endswith("_base"):
      continue
    for variant in ("", "tiny"):
      spec = f"configs/{name}.py" + (f":{variant}" if variant else "")
      try:
        config = config_file.load(spec, root=REPO)
      except Exception:  # an unknown variant, or a config that fails to build
        continue
      found.append((spec, config.get("family"),
                    flatten(json.loads(config.to_json_best_effort()))))
  return tuple(found)


def candidate_configs(family: str) -> dict:
  """The ``known_configs`` of ``family``: spec -> resolved fields."""
  return {spec: fields for spec, fam, fields in known_configs() if fam == family}


def training_command(config_json: dict, workdir: str) -> tuple[str, str]:
  """(the command that trains a run with this config.json, a note): the closest
  config of configs/ and the overrides that make it the run's."""
  run = flatten(config_json)
  best = None
  for spec, fields in candidate_configs(config_json.get("family")).items():
    unsettable = sorted(set(run) ^ set(fields))
    differ = sorted(k for k in set(run) & set(fields) if run[k] != fields[k])
    score = (len(unsettable), len(differ))
    if best is None or score < best[0]:
      best = (score, spec, unsettable, differ)
  if best is None:
    return "", (f"no config of configs/ has family {config_json.get('family')!r}: "
                f"command not recovered")
  _, spec, unsettable, differ = best
  command = " ".join(["python -m jaxgen.main", f"--config={spec}",
                      f"--workdir={shlex.quote(workdir)}",
                      *(override(k, run[k]) for k in differ)])
  note = (f"config.json has fields that {spec} lacks, or lacks some of its, "
          f"({', '.join(unsettable[:4])}{', ...' if len(unsettable) > 4 else ''}): "
          f"the command is the closest config's, not the run's" if unsettable else "")
  return command, note


# --- sampling time ------------------------------------------------------------------
def sampling_time(workdir: str, config, batch: int, repeats: int, budget_s: float,
                  mesh) -> dict:
  """The run's ``generate`` on ``batch`` images, compiled once, then timed
  ``repeats`` times (fewer once ``budget_s`` seconds are spent, at least
  ``MIN_REPEATS``): ``seconds_per_image`` (median over the repeats / batch), the
  repeats' seconds, the first call's (compilation included), the load averages after
  the timing, what the samples were conditioned on, and a ``note``. Where the family
  cannot generate, ``seconds_per_image`` is None and the note says why."""
  out = {"seconds_per_image": None, "batch": batch, "conditioned_on": [], "note": ""}
  with precision.matmul_context(precision.resolve(config)):
    try:
      trainer = build.make_trainer(config, mesh)
      state, meta = train.restore_latest(trainer, config, workdir, mesh)
    except UserError as e:
      out["note"] = f"not sampled: the run does not load ({e})"
      return out
    out["checkpoint_step"] = int(meta["step"])
    keys = tuple(trainer.conditioning_keys)
    inputs = None
    if keys:
      try:
        examples = evaluators.conditioning(trainer, config, batch, ())(0, batch)
      except ValueError as e:  # the dataset lacks a key generate reads
        out["note"] = (f"not sampled: the family samples from inputs "
                       f"({', '.join(keys)}) that its eval split cannot give ({e})")
        return out
      inputs = sharding.put_global({k: examples[k] for k in keys},
                                   sharding.batch_sharding(mesh))
      out["conditioned_on"] = list(keys)
      out["note"] = (f"conditioned on the {', '.join(keys)} of {batch} "
                     f"{config.eval.split} examples, as the evaluators condition "
                     f"their samples")
    sharding.check_batch_size(batch, mesh, "--batch")
    gen = trainer.compiled(trainer.generate, static_argnums=2,
                           out_shardings=sharding.batch_sharding(mesh))
    frozen = stages.frozen_params(trainer.stages)
    rngs = [jax.random.fold_in(build.run_keys(config)["sample"], i)
            for i in range(repeats + 1)]
    out["load_before_1_5_15"] = list(os.getloadavg())
    start = time.perf_counter()
    try:
      first = jax.block_until_ready(gen(state, rngs[0], batch, inputs, frozen))
    except (UserError, NotImplementedError) as e:
      out["note"] = (f"no sampling time: the {config.family} family does not generate "
                     f"images unconditionally or from eval inputs "
                     f"({type(e).__name__}: {e})")
      return out
    out["first_call_s"] = time.perf_counter() - start
    out["sample_shape"] = list(first.shape)
    seconds = []
    for rng in rngs[1:]:
      seconds.append(benchmarking.timed(
          lambda _: jax.block_until_ready(gen(state, rng, batch, inputs, frozen)), 1))
      if len(seconds) >= MIN_REPEATS and sum(seconds) > budget_s:
        break
  out.update(seconds_per_image=statistics.median(seconds) / batch, seconds=seconds,
             repeats=len(seconds), load_1_5_15=list(os.getloadavg()))
  return out


# --- the real data's rows -----------------------------------------------------------
def ceiling_config(config):
  """The run's config for its real-data row: its evaluators that have one, and the
  data as the metrics see real images, binarised as the run's training images."""
  names = ceiling_cli.metric_names(config.eval.get("metrics", ()))
  cfg = ml_collections.ConfigDict(config.to_dict())
  cfg.eval.metrics = tuple(n for n in names if n in CEILING_EVALUATORS)
  for sweep in ("guidance_scales", "rerank_candidates", "shuffled_baseline"):
    if sweep in cfg.eval:
      cfg.eval[sweep] = False if sweep == "shuffled_baseline" else ()
  data = real_data(config.data)
  data.binarize = config.data.get("binarize") or ""
  cfg.data = data
  return cfg


def ceiling_key(cfg) -> str:
  """What makes two runs' real-data rows the same (all but their metrics)."""
  e = cfg.eval
  fields = {"data": {k: v for k, v in cfg.data.to_dict().items()
                     if k not in ("workers", "tfds_data_dir")},
            "seed": cfg.get("seed", 0),
            **{k: e.get(k) for k in ("split", "num_samples", "sample_batch_size",
                                     "reference_split", "feature_net", "weights",
                                     "inception_mode", "precision_recall_k",
                                     "digit_classes_min_share")}}
  return json.dumps(fields, sort_keys=True, default=str)


def real_row(cfg, mesh) -> dict:
  """The evaluators of ``cfg.eval.metrics`` on the real images of ``cfg.eval.split``
  (``ceiling.ceiling``), binarised where ``cfg.data.binarize`` says."""
  return ceiling_cli.ceiling(cfg, mesh, binarize=cfg.data.binarize)


def real_rows(configs: dict, mesh) -> tuple[dict, dict]:
  """(group id -> its real-data row, run name -> its group id) for the runs'
  configs; a group whose evaluation fails has ``error`` in place of numbers."""
  groups, of_run = {}, {}
  for name, config in configs.items():
    cfg = ceiling_config(config)
    if not cfg.eval.metrics:
      continue
    key = ceiling_key(cfg)
    group = groups.setdefault(key, {"config": cfg, "metrics": [], "runs": []})
    group["metrics"] += [m for m in cfg.eval.metrics if m not in group["metrics"]]
    group["runs"].append(name)
  rows = {}
  for i, group in enumerate(groups.values()):
    cfg = group["config"]
    cfg.eval.metrics = tuple(group["metrics"])
    gid = f"real{i + 1}"
    binarize = cfg.data.binarize
    label = (f"real {cfg.data.name}/{cfg.eval.split}"
             + (f", binarised ({binarize})" if binarize else ""))
    row = {"id": gid, "label": label, "runs": group["runs"],
           "evaluators": list(cfg.eval.metrics), "binarize": binarize,
           "num_samples": cfg.eval.get("num_samples")}
    with precision.matmul_context(precision.resolve(cfg)):
      try:
        result = real_row(cfg, mesh)
        row.update(metrics=pick_metrics(result), ceiling=result.get("ceiling"),
                   reference=result.get("reference"))
      except (ValueError, FileNotFoundError) as e:  # UserError and the evaluators'
        row.update(metrics={}, error=f"{type(e).__name__}: {e}")
    rows[gid] = row
    for name in group["runs"]:
      of_run[name] = gid
  return rows, of_run


# --- the table ----------------------------------------------------------------------
def fmt(value) -> str:
  if value is None:
    return ""
  if isinstance(value, int) or (abs(value) >= 100):
    return f"{value:.0f}"
  if abs(value) >= 10:
    return f"{value:.1f}"
  return f"{value:.3g}"


def fmt_seconds(s) -> str:
  if s is None:
    return ""
  if s < 1e-3:
    return f"{s * 1e6:.3g} µs"
  if s < 1:
    return f"{s * 1e3:.3g} ms"
  if s < 120:
    return f"{s:.3g} s"
  if s < 7200:
    return f"{s / 60:.3g} min"
  return f"{s / 3600:.3g} h"


def metric_value(metrics: dict, keys) -> float | None:
  return next((metrics[k] for k in keys if k in metrics), None)


def markdown(table: dict) -> str:
  rows, reals = table["runs"], table["real_rows"]
  columns = [(head, keys) for head, keys, _ in METRICS
             if any(metric_value(r["metrics"], keys) is not None
                    for r in [*rows, *reals.values()])]
  batch = table["batch"]
  heads = ["run", "family", *[h for h, _ in columns],
           f"sampling / image (batch {batch})", "load (1 min)", "training wall time",
           "samples", "command"]
  lines = [f"Sample metrics from each run's eval.json; sampling timed on "
           f"{table['machine']}, load averages {table['load_before']} before and "
           f"{table['load_after']} after."
           + (" Each real row holds the same evaluators on the real test images; the "
              "runs below it compare with it." if reals else ""), "",
           "| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
  notes = []

  def note(text):
    notes.append(text)
    return f"[{len(notes)}]"

  groups = [*reals] + [None]
  for gid in groups:
    members = [r for r in rows if r.get("real_row") == gid]
    if gid is not None:
      real = reals[gid]
      cells = [f"**{real['label']}**", "", *[
          fmt(metric_value(real["metrics"], keys)) for _, keys in columns],
          "", "", "", "", ""]
      if real.get("error"):
        cells[1] = note(f"{real['label']}: not computed: {real['error']}")
      lines.append("| " + " | ".join(cells) + " |")
    for r in members:
      s = r["sampling"]
      marks = "".join(note(f"{r['name']}: {t}") for t in (
          s["note"], r.get("metrics_note"), r.get("wall_time_note"),
          r.get("command_note")) if t)
      load = s.get("load_1_5_15")
      cells = [f"{r['name']}{marks}", r["family"],
               *[fmt(metric_value(r["metrics"], keys)) for _, keys in columns],
               fmt_seconds(s["seconds_per_image"]) if s["seconds_per_image"] is not None
               else "—", f"{load[0]:.2f}" if load else "",
               fmt_seconds(r.get("wall_time_s")),
               f"[grid]({r['samples_png']})" if r.get("samples_png") else "",
               f"`{r['command']}`" if r.get("command") else ""]
      lines.append("| " + " | ".join(cells) + " |")
  lines += ["", "Notes:", ""] + [f"{i}. {t}" for i, t in enumerate(notes, 1)] \
      if notes else []
  lines += ["", "PSNR and SSIM have no real row (a real image against itself: "
                "infinite PSNR, SSIM 1). Sampling time: the median of "
                "the repeats of one compiled generate call on the batch, divided by "
                "the batch (quality_table.json has every repeat). Training wall time: "
                "the loop's seconds from metrics.jsonl (compilation and pictures "
                "included, the final evaluation not)."]
  return "\n".join(lines) + "\n"


def build_table(runs, out: str, batch: int, repeats: int, budget_s: float,
                with_ceiling: bool) -> dict:
  mesh = sharding.make_mesh()
  load_before = benchmarking.load_averages()
  configs, rows = {}, []
  for name, workdir in runs:
    config = stages.run_config(workdir)
    configs[name] = config
    result = read_json(os.path.join(workdir, "eval.json"))
    picked = pick_metrics(result)
    command, command_note = training_command(read_json(
        os.path.join(workdir, "config.json")), workdir)
    wall, wall_note = train_seconds(workdir)
    print(f"{name}: timing generate ({config.family}, batch {batch}) ...", flush=True)
    sampling = sampling_time(workdir, config, batch, repeats, budget_s, mesh)
    step = sampling.get("checkpoint_step")
    if step is not None and step != result.get("step"):
      sampling["note"] = "; ".join(filter(None, (sampling["note"], (
          f"timed at checkpoint {step}, and eval.json is of step {result.get('step')}: "
          f"rerun --mode=eval for numbers of the same checkpoint"))))
    rows.append({"name": name, "workdir": workdir, "family": config.family,
                 "step": result.get("step"), "metrics": picked,
                 "metrics_note": guidance_note(result, picked),
                 "eval_metrics": list(config.eval.get("metrics", ())),
                 "sampling": sampling, "wall_time_s": wall, "wall_time_note": wall_note,
                 "command": command, "command_note": command_note,
                 "samples_png": sample_grid(workdir, name, out)})
    print(f"{name}: {json.dumps({**picked, 'seconds_per_image': sampling['seconds_per_image']})}",
          flush=True)
  reals = {}
  if with_ceiling:
    print("real-data rows ...", flush=True)
    reals, of_run = real_rows(configs, mesh)
    for r in rows:
      r["real_row"] = of_run.get(r["name"])
  return {"batch": batch, "repeats": repeats, "machine": machine(),
          "load_before": load_before, "load_after": benchmarking.load_averages(),
          "time": time.strftime("%Y-%m-%d %H:%M:%S"), "runs": rows, "real_rows": reals}


def machine() -> str:
  device = jax.devices()[0]
  return (f"{jax.device_count()} x {device.device_kind} ({device.platform}), "
          f"{os.cpu_count()} CPU cores")


# --- the trilemma -------------------------------------------------------------------
def check_matplotlib():
  try:
    import matplotlib  # noqa: F401
  except ImportError:
    raise UserError("--trilemma draws with matplotlib, which is not installed: pip "
                    "install matplotlib, or leave --trilemma out.") from None


def trilemma_points(table: dict) -> tuple[list, list]:
  """(points (name, family, seconds per image, FID, recall or None), the names left
  out for want of a FID or a sampling time)."""
  points, left_out = [], []
  for r in table["runs"]:
    fid_value = r["metrics"].get("fid")
    seconds = r["sampling"]["seconds_per_image"]
    if fid_value is None or seconds is None or fid_value <= 0:
      left_out.append(r["name"])
      continue
    points.append((r["name"], r["family"], seconds, fid_value, r["metrics"].get("recall")))
  return points, left_out


def draw_trilemma(table: dict, path: str) -> list:
  """``path``: the trilemma scatter (see the module's docstring); returns its points."""
  import matplotlib
  from matplotlib import cm, colors
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  points, _ = trilemma_points(table)
  fig = Figure(figsize=(7.5, 5.5), dpi=110)
  FigureCanvasAgg(fig)
  ax = fig.add_subplot()
  norm = colors.Normalize(0.0, 1.0)
  cmap = matplotlib.colormaps["viridis"]
  for name, family, seconds, fid_value, recall in points:
    if recall is None:
      ax.scatter(seconds, fid_value, s=70, facecolors="none", edgecolors="grey")
    else:
      ax.scatter(seconds, fid_value, s=70, color=cmap(norm(recall)), edgecolors="black",
                 linewidths=0.5)
    label = name if name == family else f"{name} ({family})"
    ax.annotate(label, (seconds, fid_value), textcoords="offset points", xytext=(6, 4),
                fontsize=8)
  reals = sorted({(row["label"], row["metrics"]["fid"])
                  for row in table["real_rows"].values() if "fid" in row["metrics"]})
  styles = ("--", ":", "-.", (0, (5, 1, 1, 1)))
  for i, (label, value) in enumerate(r for r in reals if r[1] > 0):
    ax.axhline(value, linestyle=styles[i % len(styles)], color="grey", linewidth=0.9,
               label=f"{label}: FID {fmt(value)}")
  if reals:
    ax.legend(fontsize=7, loc="lower right")
  ax.set_xscale("log")
  ax.set_yscale("log")
  ax.invert_yaxis()
  ax.set(xlabel=f"sampling time per image (s, batch {table['batch']}, log scale): "
                f"right is slower",
         ylabel="FID (log scale, inverted): up is higher quality",
         title="The generative learning trilemma, measured")
  mappable = cm.ScalarMappable(norm=norm, cmap=cmap)
  fig.colorbar(mappable, ax=ax, label="recall (diversity); hollow: not measured")
  ax.grid(alpha=0.3, which="both")
  fig.tight_layout()
  fig.savefig(path)
  return points


# --- the command line ---------------------------------------------------------------
def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("runs", nargs="*", metavar="NAME=WORKDIR",
                 help="finished runs; none with --trilemma: redraw from OUT's json")
  p.add_argument("--out", required=True, help="folder for the table, grids, figure")
  p.add_argument("--trilemma", action="store_true", help="also draw OUT/trilemma.png")
  p.add_argument("--batch", type=int, default=64, help="images per timed generate call")
  p.add_argument("--repeats", type=int, default=5, help="timed calls per run")
  p.add_argument("--budget_s", type=float, default=600.0,
                 help="stop repeating once a run's timed calls take this long")
  p.add_argument("--no_ceiling", action="store_true", help="leave out the real rows")
  args = p.parse_args(argv)
  try:
    return run(args)
  except UserError as e:
    errors.exit_with(e)


def run(args) -> int:
  if args.batch < 1 or args.repeats < MIN_REPEATS:
    raise UserError(f"--batch={args.batch} must be positive and --repeats="
                    f"{args.repeats} at least {MIN_REPEATS} (a median needs them).")
  if args.trilemma:
    check_matplotlib()
  out = os.path.abspath(args.out)
  json_path = os.path.join(out, "quality_table.json")
  if not args.runs:
    if not args.trilemma:
      raise UserError("No runs: give NAME=WORKDIR for each finished run (or only "
                      "--trilemma, to redraw the figure from --out's json).")
    if not os.path.isfile(json_path):
      raise UserError(f"--trilemma without runs redraws from {json_path}, which does "
                      f"not exist: give the runs as NAME=WORKDIR.")
    table = read_json(json_path)
  else:
    runs = parse_runs(args.runs)
    errors.check_writable(out, "--out", folder=True)
    os.makedirs(out, exist_ok=True)
    table = build_table(runs, out, args.batch, args.repeats, args.budget_s,
                        not args.no_ceiling)
  if args.trilemma:
    draw_trilemma(table, os.path.join(out, "trilemma.png"))
    table["trilemma_left_out"] = trilemma_points(table)[1]
  train.write_json(json_path, table)
  with open(os.path.join(out, "quality_table.md"), "w") as f:
    f.write(markdown(table))
  print(f"wrote {os.path.join(out, 'quality_table.md')} and {json_path}"
        + (f" and {os.path.join(out, 'trilemma.png')}" if args.trilemma else ""))
  return 0


if __name__ == "__main__":
  xla_options.configure_cpu()  # before JAX creates its CPU client
  sys.exit(main())
