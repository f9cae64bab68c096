"""The errors that mean "the user's input is wrong": every command line prints each as
one ``error:`` line (exit status 2) instead of a traceback; any other exception keeps
its traceback (``exit_with``); ``check_writable`` refuses a destination before the
work whose result it would receive."""
from __future__ import annotations

import os
import sys
import tempfile
from typing import NoReturn


class UserError(ValueError):
  """The user's input (a config, a flag, a file, a workdir) is wrong, in a way the
  message says how to fix. The other error types here, and those of the checkpoints,
  the workdir lock and the weights readers, are kinds of it."""


class ConfigError(UserError):
  """One or more config fields are missing or have a bad value (raised by
  ``jaxgen.loop_config.check`` and by trainers built from a config that lacks a field
  they read)."""


class StageError(UserError):
  """A frozen stage is missing, unfinished, of the wrong family, or changed."""


class MissingInput(UserError, FileNotFoundError):
  """A file or folder the input names (a dataset not prepared, a weights file, an
  image) is not there; the message says how to get it."""


def exit_with(message) -> NoReturn:
  """End a command line on the user's error: one ``error:`` line on stderr (the
  message's line breaks folded into spaces), exit status 2."""
  print(f"error: {' '.join(str(message).split())}", file=sys.stderr)
  sys.exit(2)


def check_writable(path: str, what: str, folder: bool = False) -> None:
  """Refuse (``UserError``) a destination that cannot be written, before any work:
  the file ``path`` (or the folder, with ``folder``), or the folders that would be
  made for it. Tried by writing a temporary file, so that read-only mounts, ACLs and
  permissions all count."""
  path = os.path.abspath(os.path.expanduser(path))
  if not folder and os.path.isdir(path):
    raise UserError(f"{what}={path} is a folder: name a file.")
  if folder and os.path.exists(path) and not os.path.isdir(path):
    raise UserError(f"{what}={path} is a file, not a folder.")
  existing = path if folder else os.path.dirname(path)
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    raise UserError(f"{what}={path} cannot be written: {existing} is a file, not a "
                    f"folder.")
  try:
    with tempfile.TemporaryFile(dir=existing):
      pass
  except OSError as e:
    raise UserError(f"{what}={path} cannot be written ({e.strerror or e} in "
                    f"{existing}): choose a writable place, or fix its "
                    f"permissions.") from e
