import os
import subprocess
import sys
import tempfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Weights and reference statistics that tests cache never touch the user's cache.
os.environ.setdefault("JAXGEN_CACHE", tempfile.mkdtemp(prefix="jaxgen_test_cache_"))


def load_config(name: str, arg: str | None = None):
  """configs/<name>.py's get_config(arg), as the CLI would build it."""
  from jaxgen import config_file
  return config_file.load(f"configs/{name}.py:{arg or ''}", root=REPO)


def run_main(*args, env=None, timeout=600, check=True):
  """Run ``python -m jaxgen.main ARGS`` from the repository root."""
  full_env = {**os.environ, "JAX_PLATFORMS": "cpu", **(env or {})}
  proc = subprocess.run([sys.executable, "-m", "jaxgen.main", *args], cwd=REPO,
                        env=full_env, capture_output=True, text=True, timeout=timeout)
  if check and proc.returncode != 0:
    raise AssertionError(f"jaxgen.main {' '.join(args)} failed ({proc.returncode}):\n"
                         f"{proc.stderr[-4000:]}")
  return proc


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
