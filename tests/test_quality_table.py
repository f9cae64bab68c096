"""experiments/quality_table.py on the session's tiny runs of three families: a VAE
(unconditional, binarised digits), a class-conditional GAN and CLIP (no generator).
The table's numbers are each run's eval.json's (read here on their own), its sampling
times are positive where the family samples and a note where it cannot, the wall
time is the log's, the command is the one the run was trained with, the grey real
row is the ceiling command's, and a workdir without eval.json is one error line."""
import json
import os
import shlex
import shutil
import statistics

import pytest

from conftest import load_module, run_cli_in_process
from jaxgen import precision, stages
from jaxgen.evaluators import ceiling as ceiling_cli

qt = load_module("experiments/quality_table.py")

RUNS = {"vae": "vae_mnist", "cgan": "cgan_mnist", "clip": "clip_mnist"}
KEYS = ("fid", "inception_score", "precision", "recall", "class_coverage_effective",
        "digit_classes_effective", "class_accuracy", "psnr", "ssim",
        "class_accuracy_recon")
BATCH = 64


def has_matplotlib() -> bool:
  try:
    import matplotlib  # noqa: F401
    return True
  except ImportError:
    return False


@pytest.fixture(scope="module")
def table(tiny_runs, tmp_path_factory):
  workdirs = {name: tiny_runs(config) for name, config in RUNS.items()}
  out = str(tmp_path_factory.mktemp("quality"))
  proc = run_cli_in_process(qt.main, *[f"{n}={w}" for n, w in workdirs.items()],
                            f"--out={out}", "--repeats=2", f"--batch={BATCH}",
                            *(["--trilemma"] if has_matplotlib() else []))
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(os.path.join(out, "quality_table.json")) as f:
    result = json.load(f)
  with open(os.path.join(out, "quality_table.md")) as f:
    md = f.read()
  return workdirs, out, {r["name"]: r for r in result["runs"]}, result, md


def eval_json(workdir):
  with open(os.path.join(workdir, "eval.json")) as f:
    return json.load(f)


def md_row(md, name):
  rows = [l for l in md.splitlines() if l.startswith(f"| {name}")]
  assert len(rows) == 1, md
  return rows[0]


def test_the_metrics_are_each_runs_eval_json(table):
  workdirs, _, rows, _, md = table
  for name, workdir in workdirs.items():
    ev = eval_json(workdir)
    expected = {k: ev[k] for k in KEYS if k in ev}
    assert rows[name]["metrics"] == expected, name
    assert rows[name]["step"] == ev["step"]
  # what each family's tiny eval asks for: FID and IS; class accuracy where conditional
  assert {"fid", "inception_score"} <= set(rows["vae"]["metrics"])
  assert "class_accuracy" in rows["cgan"]["metrics"]
  assert rows["clip"]["metrics"] == {}
  fid = eval_json(workdirs["vae"])["fid"]
  assert f" {fid:.0f} " in md_row(md, "vae")  # FIDs of 100 and more: whole numbers


def test_sampling_time_where_the_family_samples_and_a_note_where_not(table):
  _, _, rows, _, md = table
  for name in ("vae", "cgan"):
    s = rows[name]["sampling"]
    assert s["seconds_per_image"] > 0 and s["repeats"] == 2 and len(s["seconds"]) == 2
    assert s["seconds_per_image"] == pytest.approx(statistics.median(s["seconds"]) / BATCH)
    assert s["sample_shape"] == [BATCH, 28, 28, 1]
    assert len(s["load_1_5_15"]) == 3
  assert rows["vae"]["sampling"]["conditioned_on"] == []
  assert rows["cgan"]["sampling"]["conditioned_on"] == ["label"]
  assert "label" in rows["cgan"]["sampling"]["note"]
  clip = rows["clip"]["sampling"]
  assert clip["seconds_per_image"] is None
  assert "generates no images" in clip["note"]
  assert "| — |" in md_row(md, "clip") and "generates no images" in md


def test_wall_time_is_the_logs_and_the_grid_is_copied(table):
  workdirs, out, rows, _, _ = table
  with open(os.path.join(workdirs["vae"], "metrics.jsonl")) as f:
    lines = [json.loads(l) for l in f]
  # the tiny runs log every step: the loop's seconds are the sum of 1 / steps_per_sec
  assert [l["step"] for l in lines] == list(range(1, len(lines) + 1))
  assert rows["vae"]["wall_time_s"] == pytest.approx(sum(1 / l["steps_per_sec"]
                                                        for l in lines))
  last = max(int(f[5:-4]) for f in os.listdir(os.path.join(workdirs["vae"], "samples"))
             if f.startswith("step_"))
  with open(os.path.join(workdirs["vae"], "samples", f"step_{last}.png"), "rb") as a, \
      open(os.path.join(out, rows["vae"]["samples_png"]), "rb") as b:
    assert a.read() == b.read()


def test_the_command_is_the_one_that_trained_the_run(table, tiny_runs):
  workdirs, _, rows, _, _ = table
  for name in ("vae", "cgan"):
    args = shlex.split(rows[name]["command"])
    assert args[:3] == ["python", "-m", "jaxgen.main"]
    flags = tiny_runs.flags(RUNS[name])
    assert args[3] == flags[0] and args[4] == f"--workdir={workdirs[name]}"
    # every override it adds is one the run was trained with
    assert set(args[5:]) <= set(flags[1:]), (args, flags)
    assert not rows[name]["command_note"]


def test_real_rows_grey_as_the_ceiling_command_and_binarised_for_the_vae(table):
  workdirs, _, rows, result, md = table
  reals = result["real_rows"]
  cgan_real = reals[rows["cgan"]["real_row"]]
  vae_real = reals[rows["vae"]["real_row"]]
  assert cgan_real["binarize"] == "" and vae_real["binarize"] == "dynamic"
  assert "**real mnist5k/test, binarised (dynamic)**" in md
  # the grey row: what python -m jaxgen.evaluators.ceiling computes for the cgan's config
  config = stages.run_config(workdirs["cgan"])
  config.eval.metrics = ("fid", "is", "class_accuracy")
  with precision.matmul_context(precision.resolve(config)):  # as the command does
    expected = ceiling_cli.ceiling(config)
  assert cgan_real["metrics"] == {
      "fid": pytest.approx(expected["fid"], rel=1e-6),
      "inception_score": pytest.approx(expected["inception_score"], rel=1e-6),
      "class_accuracy": expected["class_accuracy"]}
  assert cgan_real["metrics"]["class_accuracy"] > 0.9  # the classifier reads real digits
  # the binarised row is not the grey one of the same 200 test digits
  config = stages.run_config(workdirs["vae"])
  config.eval.metrics = ("fid", "is")
  with precision.matmul_context(precision.resolve(config)):
    grey = ceiling_cli.ceiling(config)
  assert vae_real["num_samples"] == grey["num_samples"] == 200
  assert vae_real["metrics"]["fid"] != pytest.approx(grey["fid"], rel=1e-3)


@pytest.mark.skipif(not has_matplotlib(), reason="--trilemma draws with matplotlib")
def test_trilemma_figure_and_its_redraw(table):
  _, out, _, result, _ = table
  from PIL import Image
  path = os.path.join(out, "trilemma.png")
  with Image.open(path) as im:
    assert im.size[0] > 400 and im.size[1] > 300
  assert [p[0] for p in qt.trilemma_points(result)[0]] == ["vae", "cgan"]
  assert result["trilemma_left_out"] == ["clip"]
  os.remove(path)
  proc = run_cli_in_process(qt.main, f"--out={out}", "--trilemma")  # no runs: redraw
  assert proc.returncode == 0, proc.stderr
  assert os.path.isfile(path)


def test_a_workdir_without_eval_json_is_one_error_line(tiny_runs, tmp_path):
  workdir = tmp_path / "unfinished"
  shutil.copytree(tiny_runs("vae_mnist"), workdir,
                  ignore=shutil.ignore_patterns(".lock", "eval.json"))
  out = tmp_path / "table"
  proc = run_cli_in_process(qt.main, f"ok={tiny_runs('vae_mnist')}",
                            f"unfinished={workdir}", f"--out={out}")
  assert proc.returncode == 2
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
  assert f"unfinished={workdir} has no eval.json" in lines[0]
  assert "--mode=eval" in lines[0] and str(workdir) in lines[0]
  assert not out.exists()  # refused before any work
