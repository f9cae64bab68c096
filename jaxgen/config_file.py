"""Load an experiment config from ``path/to/config.py[:variant]`` outside the CLI.

The CLI goes through ml_collections' config_flags; scripts and tests use this, which
calls the file's ``get_config(variant)`` the same way.
"""
from __future__ import annotations

import importlib.util
import os


def _module(path: str):
  module_spec = importlib.util.spec_from_file_location(
      os.path.splitext(os.path.basename(path))[0], path)
  if module_spec is None or not os.path.exists(path):
    raise FileNotFoundError(f"No config file {path}.")
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module


def load(spec: str, root: str | None = None):
  """The ConfigDict of ``spec`` = 'configs/x.py[:variant]', relative to ``root``."""
  path, _, variant = spec.partition(":")
  path = os.path.join(root, path) if root else path
  return _module(path).get_config(variant or None)


def module_beside(config_path: str, name: str):
  """The module ``name``.py beside ``config_path`` (for configs/common.py)."""
  return _module(os.path.join(os.path.dirname(config_path), f"{name}.py"))


def sibling(config_path: str, name: str, variant: str | None = None):
  """The config ``name``.py beside ``config_path`` (a config's ``__file__``), for
  configs that are another config plus changes."""
  return module_beside(config_path, name).get_config(variant)
