"""Checkpoints: the only module that imports orbax.

A checkpoint holds the training state pytree and a small JSON record (the data
loader position and anything else a run must restore to continue exactly).
"""
from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
  """A checkpoint exists but cannot be read into the expected state."""


class Checkpointer:
  """Saves and restores (state, meta) under ``directory``, keeping the last ``keep``."""

  def __init__(self, directory: str, keep: int = 3, read_only: bool = False):
    self.directory = os.path.abspath(directory)
    if read_only and not os.path.isdir(self.directory):
      raise CheckpointError(f"No checkpoints in {self.directory}: train that run first "
                            f"(python -m jaxgen.main --config=... "
                            f"--workdir={os.path.dirname(self.directory)}).")
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=None if read_only else keep, create=not read_only,
            read_only=read_only, save_interval_steps=0 if read_only else 1,
            enable_async_checkpointing=False))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def save(self, step: int, state, meta: dict) -> None:
    if step in self._manager.all_steps():
      return
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))
    self._manager.wait_until_finished()

  def restore(self, abstract_state, step: int | None = None):
    """Restore (state, meta) at ``step`` (default: the latest) into the abstract
    state's structure, shapes, dtypes and shardings."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise CheckpointError(f"No checkpoint in {self.directory}.")
    try:
      out = self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state),
          meta=ocp.args.JsonRestore()))
    except Exception as e:  # orbax raises many types for unreadable files
      older = [s for s in self.all_steps() if s < step]
      fallback = (f"move {self.step_dir(step)} away to resume from step {older[-1]}"
                  if older else f"move {self.step_dir(step)} away to start afresh")
      raise CheckpointError(
          f"The checkpoint at step {step} in {self.directory} cannot be restored "
          f"({type(e).__name__}: {_short(e)}). It is corrupt, incomplete, or was "
          f"written for a different config (model or optimiser shapes). Nothing "
          f"was deleted: {fallback}, or use another --workdir.") from e
    _check_structure(abstract_state, out.state, self.step_dir(step))
    return out.state, dict(out.meta)

  def step_dir(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  def close(self):
    self._manager.close()


def _check_structure(expected, restored, where):
  if jax.tree.structure(expected) != jax.tree.structure(restored):
    raise CheckpointError(f"The checkpoint {where} holds a different state "
                          f"structure than this config builds.")


def _short(e, n=300):
  s = str(e).strip().splitlines()
  return (s[0] if s else "")[:n]
