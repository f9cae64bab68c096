import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Weights and reference statistics that tests cache never touch the user's cache.
os.environ.setdefault("JAXGEN_CACHE", tempfile.mkdtemp(prefix="jaxgen_test_cache_"))
# XLA's persistent compilation cache, fresh for each session and shared by the
# subprocesses the tests start: a program that several tests compile (the same tiny
# train step in a run and in its resumption) compiles once.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      tempfile.mkdtemp(prefix="jaxgen_test_xla_cache_"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
# The tests compile far more than they compute: XLA's CPU backend without LLVM's
# optimisation passes compiles a tiny run's programs faster (CONTRIBUTING.md), and
# convolutions and matmuls still run in their libraries.
# Only the tests set this, and every comparison in them is made under the same flags.
TEST_XLA_FLAGS = "--xla_backend_optimization_level=0"
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()
# The XLA CPU options of jaxgen's entry points, so that tests compute as runs do.
from jaxgen import xla_options  # noqa: E402

xla_options.configure_cpu()


def fake_devices(n: int) -> dict:
  """The environment of a subprocess that sees ``n`` CPU devices."""
  return {"JAX_PLATFORMS": "cpu", "XLA_FLAGS":
          f"{os.environ['XLA_FLAGS']} --xla_force_host_platform_device_count={n}"}


def load_config(name: str, arg: str | None = None):
  """configs/<name>.py's get_config(arg), as the CLI would build it."""
  from jaxgen import config_file
  return config_file.load(f"configs/{name}.py:{arg or ''}", root=REPO)


def run_main(*args, env=None, timeout=1800, check=True):
  """Run ``python -m jaxgen.main ARGS`` from the repository root (the timeout only
  catches a hang: a tiny pipeline run takes 15 min of wall time on 2 loaded cores)."""
  full_env = {**os.environ, "JAX_PLATFORMS": "cpu", **(env or {})}
  proc = subprocess.run([sys.executable, "-m", "jaxgen.main", *args], cwd=REPO,
                        env=full_env, capture_output=True, text=True, timeout=timeout)
  if check and proc.returncode != 0:
    raise AssertionError(f"jaxgen.main {' '.join(args)} failed ({proc.returncode}):\n"
                         f"{proc.stderr[-4000:]}")
  return proc


def run_cli_in_process(main, *args):
  """``main(argv)`` of a command-line module (jaxgen.score, ...) in this process, as
  a ``subprocess.run`` result (returncode, stdout, stderr). In-process, the compiled
  feature networks are shared with the other tests; each module's own
  ``python -m`` entry is tested once as a real command."""
  import contextlib
  import io
  import types
  out, err = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    try:
      code = main([str(a) for a in args])
    except SystemExit as e:  # argparse's usage errors
      code = e.code
  return types.SimpleNamespace(returncode=code, stdout=out.getvalue(),
                               stderr=err.getvalue())


def load_module(relpath: str):
  """A script of the repository (experiments/, tests/fixtures/) as a module."""
  import importlib.util
  name = os.path.splitext(os.path.basename(relpath))[0]
  spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, relpath))
  module = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = module  # dataclasses resolve annotations through it
  spec.loader.exec_module(module)
  return module


@pytest.fixture
def tiny_vae():
  return load_config("vae_mnist", "tiny")


def restore_run(workdir, step):
  """The state saved at ``step`` in ``workdir``, as host arrays."""
  import jax
  from jaxgen import checkpoint, sharding, stages
  config = stages.run_config(workdir)
  mesh = sharding.make_mesh()
  trainer = build.make_trainer(config, mesh)
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"), read_only=True)
  try:
    state, meta = ckpt.restore(build.abstract_state(trainer, config, mesh), step=step)
  finally:
    ckpt.close()
  return jax.device_get(state), meta


def resume_from_the_middle(tiny_runs, name: str, workdir: str, *extra_flags) -> str:
  """The shared tiny run of config ``name``, copied to ``workdir`` as if it had died
  after its middle checkpoint, resumed there through ``python -m jaxgen.main`` (with
  ``extra_flags``), and checked bitwise against the straight run (``check_resume``).
  Returns the straight run's workdir."""
  straight = tiny_runs(name)
  check_resume(straight, tiny_runs.flags(name), int(load_config(name, "tiny").train.num_steps),
               workdir, *extra_flags)
  return straight


def check_resume(straight: str, flags: list, num_steps: int, workdir: str, *extra_flags,
                 env=None):
  """The finished run ``straight`` (trained with ``flags``), copied to ``workdir`` as
  if it had died after its middle checkpoint, resumed there through ``python -m
  jaxgen.main`` and compared with the straight run, bitwise: the final state, its
  metadata and the metric lines."""
  import jax
  import numpy as np
  shutil.copytree(straight, workdir, ignore=shutil.ignore_patterns(".lock"))
  shutil.rmtree(os.path.join(workdir, "checkpoints", str(num_steps)))
  os.remove(os.path.join(workdir, "eval.json"))
  run_main(flags[0], f"--workdir={workdir}", *flags[1:], *extra_flags, env=env)
  a, meta_a = restore_run(straight, num_steps)
  b, meta_b = restore_run(workdir, num_steps)
  assert meta_a == meta_b
  leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
  assert jax.tree.structure(a) == jax.tree.structure(b) and leaves_a
  for x, y in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(x, y)
  assert metric_lines(workdir) == metric_lines(straight)


def metric_lines(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    lines = [json.loads(line) for line in f]
  for line in lines:
    line.pop("steps_per_sec")  # wall time and the share of it spent waiting for
    line.pop("input_wait")     # input: the only things a resume may change
  return lines


def config_names() -> list[str]:
  """Every experiment config in configs/ (not configs/common.py)."""
  return sorted(os.path.splitext(os.path.basename(p))[0]
                for p in glob.glob(os.path.join(REPO, "configs", "*.py"))
                if not p.endswith(("common.py", "_base.py")))


def stage_configs(name: str) -> dict:
  """``STAGE_CONFIGS`` of configs/<name>.py: stage name -> the config that trains it
  (``name`` or ``name:variant``)."""
  return dict(getattr(load_module(f"configs/{name}.py"), "STAGE_CONFIGS", {}))


from jaxgen import build, registry  # noqa: E402  (after the environment above)


def _tiny_configs() -> tuple[dict, dict]:
  """(family -> the configs of that family that have a ``tiny`` variant,
  config -> the error that loading its ``tiny`` variant raised)."""
  found, broken = {}, {}
  for name in config_names():
    try:
      config = load_config(name, "tiny")
    except Exception as e:  # reported by test_conformance.py, not at collection
      if "Unknown variant" not in str(e):
        broken[name] = f"{type(e).__name__}: {e}"
      continue
    found.setdefault(config.family, []).append(name)
  return found, broken


TINY_CONFIGS, BROKEN_TINY = _tiny_configs()
FAMILIES = registry.family_names()


def tiny_config_of(family: str) -> str:
  """The family's config that the conformance suite runs: <family>_mnist if it has a
  ``tiny`` variant, else the first by name."""
  if family not in TINY_CONFIGS:
    pytest.fail(f"family {family!r} is in jaxgen/families/ but no "
                f"configs/*.py of that family has a 'tiny' variant")
  preferred = f"{family}_mnist"
  found = TINY_CONFIGS[family]
  return preferred if preferred in found else found[0]


class TinyRuns:
  """Finished ``tiny`` runs of configs, trained through ``python -m jaxgen.main`` once
  per test session and shared by every test that only reads them (copy a run before
  writing to it). A config's frozen stages are trained first, from the configs its
  ``STAGE_CONFIGS`` names. Each run logs every step and checkpoints halfway as well
  as at the end, so that a test can resume it from the middle."""

  def __init__(self, root):
    self.root = root
    self._runs = {}

  def flags(self, name: str, variant: str = "tiny") -> list[str]:
    """The command-line flags (after ``--workdir``) the run was trained with."""
    num_steps = int(load_config(name, variant).train.num_steps)
    flags = [f"--config=configs/{name}.py:{variant}",
             f"--config.train.checkpoint_every={max(1, num_steps // 2)}",
             "--config.train.log_every=1"]
    for stage, stage_config in sorted(stage_configs(name).items()):
      # "name:variant" (dvae_mnist:captions) trains that variant's tiny form
      stage_name, _, stage_variant = stage_config.partition(":")
      stage_variant = ",".join(filter(None, (stage_variant, "tiny")))
      flags.append(f"--config.stages.{stage}={self(stage_name, stage_variant)}")
    return flags

  def __call__(self, name: str, variant: str = "tiny") -> str:
    """The workdir of the finished run of configs/<name>.py:<variant>. Under
    pytest-xdist the workers share the runs: the first to need one trains it while
    holding a lock on it, and the others wait for it and reuse it."""
    import fcntl
    key = (name, variant)
    if key not in self._runs:
      workdir = os.path.join(self.root, f"{name}-{variant.replace(',', '-')}")
      with open(f"{workdir}.training", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(f"{workdir}.done"):
          shutil.rmtree(workdir, ignore_errors=True)  # a run that failed part-way
          run_main(*self.flags(name, variant)[:1], f"--workdir={workdir}",
                   *self.flags(name, variant)[1:])
          open(f"{workdir}.done", "w").close()
      self._runs[key] = workdir
    return self._runs[key]


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
  root = tmp_path_factory.getbasetemp()
  if os.environ.get("PYTEST_XDIST_WORKER"):
    root = root.parent  # the workers' base temps are siblings: share their parent
  root = os.path.join(str(root), "tiny_runs")
  os.makedirs(root, exist_ok=True)
  return TinyRuns(root)
