"""One contract for every model family of jaxgen/families/ (tests/conformance.py).

Each family is run through its ``tiny`` config (configs/<family>_mnist.py, or the
first configs/*.py of the family by name that has a ``tiny`` variant; a family without
one fails here). The checks: training through ``python -m jaxgen.main`` leaves a run
(checkpoint, metrics.jsonl, a sample PNG, config.json, eval.json); resuming from the
middle is bitwise the run trained straight through; ``--mode=eval`` writes finite
numbers, the same as the training run's final evaluation; ``--mode=summary`` ends with
its JSON line. The multi-device checks are in test_conformance_devices.py. The
trained runs are shared with the family tests (``tiny_runs`` in conftest.py).
"""
import pytest

import conformance
from conftest import BROKEN_TINY, FAMILIES, load_config, tiny_config_of
from jaxgen import stages


def test_every_config_with_a_tiny_variant_loads():
  assert not BROKEN_TINY, BROKEN_TINY


@pytest.mark.parametrize("family", FAMILIES)
def test_training_through_main_leaves_a_run(family, tiny_runs):
  name = tiny_config_of(family)
  conformance.check_run(tiny_runs(name), load_config(name, "tiny"), family)


@pytest.mark.parametrize("family", FAMILIES)
def test_resume_from_the_middle_is_bitwise_the_straight_run(family, tiny_runs, tmp_path):
  name = tiny_config_of(family)
  conformance.check_resume_from_the_middle(tiny_runs(name), tiny_runs.flags(name),
                                           load_config(name, "tiny"), str(tmp_path / "run"))


@pytest.mark.parametrize("family", FAMILIES)
def test_eval_mode_writes_the_final_evaluation_again(family, tiny_runs, tmp_path):
  name = tiny_config_of(family)
  conformance.check_eval_mode(tiny_runs(name), tiny_runs.flags(name),
                              str(tmp_path / "run"))


@pytest.mark.parametrize("family", FAMILIES)
def test_summary_ends_with_the_parameter_counts_as_json(family, tiny_runs, capsys):
  """For the tiny config with its trained stages (the flag itself is tested in
  test_main.py)."""
  conformance.check_summary(stages.run_config(tiny_runs(tiny_config_of(family))), capsys)
