"""One contract for every model family in ``jaxgen.trainers.FAMILIES``.

Each family is run through its ``tiny`` config (configs/<family>_mnist.py, or the
first configs/*.py of the family by name that has a ``tiny`` variant; a family without
one fails here). The checks:
training through ``python -m jaxgen.main`` leaves a run (checkpoint, metrics.jsonl,
a sample PNG, config.json, eval.json); resuming from the middle is bitwise the run
trained straight through; ``--mode=eval`` writes finite numbers, the same as
the training run's final evaluation; ``--mode=summary`` ends with its JSON line.
The multi-device checks are in test_conformance_devices.py. The trained runs are
shared with the family tests (``tiny_runs`` in conftest.py).
"""
import json
import math
import os
import shutil

import pytest

from conftest import (BROKEN_TINY, FAMILIES, load_config, metric_lines,
                      resume_from_the_middle, run_main, tiny_config_of)
from jaxgen import stages


def test_every_config_with_a_tiny_variant_loads():
  assert not BROKEN_TINY, BROKEN_TINY


def _finite_numbers(result: dict, where: str):
  numbers = {k: v for k, v in result.items()
             if isinstance(v, (int, float)) and not isinstance(v, bool)}
  assert numbers, f"{where} has no numbers: {result}"
  bad = {k: v for k, v in numbers.items() if not math.isfinite(v)}
  assert not bad, f"{where} has non-finite {bad}"
  return numbers


@pytest.mark.parametrize("family", FAMILIES)
def test_training_through_main_leaves_a_run(family, tiny_runs):
  name = tiny_config_of(family)
  workdir = tiny_runs(name)
  config = load_config(name, "tiny")
  num_steps = int(config.train.num_steps)
  assert num_steps >= 2, "a tiny config must train at least 2 steps (to resume)"
  assert os.path.isdir(os.path.join(workdir, "checkpoints", str(num_steps)))
  lines = metric_lines(workdir)
  assert lines and lines[-1]["step"] == num_steps
  for line in lines:
    _finite_numbers(line, f"metrics.jsonl step {line['step']}")
    assert "loss" in line
  pictures = os.listdir(os.path.join(workdir, "samples"))
  assert f"step_{num_steps}.png" in pictures, pictures
  saved = json.load(open(os.path.join(workdir, "config.json")))
  assert saved["family"] == family and saved["train"]["num_steps"] == num_steps
  result = json.load(open(os.path.join(workdir, "eval.json")))
  assert result["step"] == num_steps
  _finite_numbers(result, "eval.json")


@pytest.mark.parametrize("family", FAMILIES)
def test_resume_from_the_middle_is_bitwise_the_straight_run(family, tiny_runs, tmp_path):
  resume_from_the_middle(tiny_runs, tiny_config_of(family), str(tmp_path / "run"))


@pytest.mark.parametrize("family", FAMILIES)
def test_eval_mode_writes_the_final_evaluation_again(family, tiny_runs, tmp_path):
  name = tiny_config_of(family)
  workdir = str(tmp_path / "run")
  shutil.copytree(tiny_runs(name), workdir, ignore=shutil.ignore_patterns(".lock"))
  from_training = json.load(open(os.path.join(workdir, "eval.json")))
  os.remove(os.path.join(workdir, "eval.json"))
  flags = tiny_runs.flags(name)
  out = run_main(flags[0], f"--workdir={workdir}", *flags[1:], "--mode=eval")
  result = json.load(open(os.path.join(workdir, "eval.json")))
  assert json.loads(out.stdout.strip().splitlines()[-1]) == result
  numbers = _finite_numbers(result, "eval.json of --mode=eval")
  expected = _finite_numbers(from_training, "eval.json of training")
  assert numbers.keys() == expected.keys()
  for key, value in numbers.items():
    assert value == pytest.approx(expected[key], rel=1e-5, abs=1e-6), key


@pytest.mark.parametrize("family", FAMILIES)
def test_summary_ends_with_the_parameter_counts_as_json(family, tiny_runs, capsys):
  """What --mode=summary prints (jaxgen.main.summary, in this process: the flag itself
  is tested in test_main.py), for the tiny config with its trained stages."""
  from jaxgen import main as cli
  name = tiny_config_of(family)
  config = stages.run_config(tiny_runs(name))
  counts = cli.summary(config)
  out = capsys.readouterr().out.strip().splitlines()
  assert json.loads(out[-1]) == counts
  assert counts and all(isinstance(n, int) and n > 0 for n in counts.values()), counts
  assert out[-2].split()[0] == "total"
  assert int(out[-2].split()[1].replace(",", "")) == sum(counts.values())
