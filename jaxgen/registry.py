"""Plug-ins by name: families, evaluators, datasets and weights-file readers.

A family is found by module path: ``config.family = "vae"`` is the package
``jaxgen.families.vae``, whose ``trainer`` module names its ``Trainer`` class; a
dotted name (``"my_lab.my_family"``) is a module outside jaxgen with a ``Trainer``
attribute. Evaluators, datasets and readers, several to a file, register with a
decorator (``@EVALUATORS.register("fid")``) in their own module; a ``Registry`` finds
them by importing the modules of its folders the first time a name is not yet
registered. Adding any of them adds a file and edits none.
"""
from __future__ import annotations

import importlib
import os
import pkgutil
from typing import Callable, Iterable

from jaxgen.errors import ConfigError

FAMILIES_PACKAGE = "jaxgen.families"
_FAMILIES_DIR = os.path.join(os.path.dirname(__file__), "families")


def family_names() -> list[str]:
  """The families in ``jaxgen/families/``: each folder with a ``trainer.py``."""
  return sorted(name for name in os.listdir(_FAMILIES_DIR)
                if os.path.isfile(os.path.join(_FAMILIES_DIR, name, "trainer.py")))


def family_class(name: str):
  """The ``Trainer`` class of the family ``name`` (``config.family``)."""
  if not isinstance(name, str) or not name:
    raise UnknownName(f"config.family={name!r} names no family; available: "
                      f"{', '.join(family_names())}.")
  module = name if "." in name else f"{FAMILIES_PACKAGE}.{name}.trainer"
  if "." not in name and name not in family_names():
    raise UnknownName(f"Unknown config.family {name!r}; available: "
                      f"{', '.join(family_names())} (or a module path with a Trainer).")
  try:
    found = importlib.import_module(module)
  except ModuleNotFoundError as e:
    if e.name and module.startswith(e.name):  # the module itself, not one it imports
      raise UnknownName(f"config.family={name!r}: no module {module} (families: "
                        f"{', '.join(family_names())}).") from e
    raise
  trainer = getattr(found, "Trainer", None)
  if trainer is None:
    raise UnknownName(f"config.family={name!r}: {module} defines no Trainer class.")
  return trainer


def family_modules(filename: str) -> list[str]:
  """``jaxgen.families.<name>.<filename>`` for every family that has that file (its
  own evaluators or datasets, for the registries below)."""
  return [f"{FAMILIES_PACKAGE}.{name}.{filename}" for name in family_names()
          if os.path.isfile(os.path.join(_FAMILIES_DIR, name, f"{filename}.py"))]


def package_modules(package: str) -> list[str]:
  """Every module of ``package`` (not its subpackages)."""
  path = importlib.import_module(package).__path__
  return [f"{package}.{m.name}" for m in pkgutil.iter_modules(path) if not m.ispkg]


class UnknownName(ConfigError):
  """A name that no family, evaluator, dataset or reader registers."""


class Registry:
  """Names -> objects that register themselves with ``register(name)``; ``modules``
  returns the module names to import to find them all."""

  def __init__(self, kind: str, modules: Callable[[], Iterable[str]]):
    self.kind = kind
    self._modules = modules
    self._entries: dict[str, object] = {}
    self._prefixes: dict[str, object] = {}
    self._scanned = False

  def register(self, name: str, *, prefix: bool = False):
    """Decorator: register the object as ``name`` (with ``prefix``, every name that
    starts with ``name``)."""
    table = self._prefixes if prefix else self._entries

    def add(obj):
      if name in table and table[name] is not obj:
        raise ValueError(f"Two {self.kind}s are registered as {name!r}: "
                         f"{table[name]!r} and {obj!r}.")
      table[name] = obj
      return obj
    return add

  def scan(self):
    if not self._scanned:
      for module in self._modules():
        importlib.import_module(module)
      self._scanned = True

  def find(self, name: str):
    """The object registered as ``name`` (or under a prefix of it), or None."""
    if name not in self._entries:
      self.scan()
    if name in self._entries:
      return self._entries[name]
    return next((v for k, v in self._prefixes.items() if name.startswith(k)), None)

  def get(self, name: str):
    found = self.find(name)
    if found is None:
      raise UnknownName(f"Unknown {self.kind} {name!r}; available: "
                        f"{', '.join(self.names())}.")
    return found

  def names(self) -> list[str]:
    self.scan()
    return sorted(self._entries) + sorted(f"{p}*" for p in self._prefixes)

  def items(self):
    self.scan()
    return list(self._entries.items()) + list(self._prefixes.items())
