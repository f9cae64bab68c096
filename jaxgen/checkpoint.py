"""Checkpoints: the only module that imports orbax.

A checkpoint holds the training state pytree and a small JSON record (the data
loader position and anything else a run must restore to continue exactly).
"""
from __future__ import annotations

import errno
import glob
import os
import shutil

import jax
import orbax.checkpoint as ocp

from jaxgen.errors import UserError


class CheckpointError(UserError, RuntimeError):
  """A checkpoint exists but cannot be read into the expected state."""


class CheckpointRemoved(CheckpointError):
  """The checkpoint being read was deleted meanwhile: a training run in the same
  workdir rotated it out (it keeps the last ``keep``). Nothing is wrong with it."""


def quiet_logs() -> None:
  """Orbax logs each save and restore through absl at INFO (about 30 lines a
  restore): a command line shows them only when asked with --verbosity (or -v)."""
  from absl import flags, logging as absl_logging
  verbosity = flags.FLAGS["verbosity"] if "verbosity" in flags.FLAGS else None
  if verbosity is None or not verbosity.present:
    absl_logging.set_verbosity(absl_logging.WARNING)


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
            # The partial ``N.orbax-checkpoint-tmp-*`` of a save that was killed: a
            # writer holds the workdir's lock, so the temporaries are its own.
            cleanup_tmp_directories=not read_only,
            enable_async_checkpointing=False))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def reload(self) -> None:
    """Read the directory's steps again (a training run may have saved or rotated
    checkpoints since this reader listed them)."""
    self._manager.reload()

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def save(self, step: int, state, meta: dict) -> None:
    if step in self._manager.all_steps():
      return
    try:
      self._manager.save(step, args=ocp.args.Composite(
          state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))
      self._manager.wait_until_finished()
    except Exception as e:
      cause = _os_error(e)
      if cause is None:
        raise
      # The step's partial directory goes; the finished checkpoints stay as they were.
      pattern = os.path.join(self.directory, f"{step}.orbax-checkpoint-tmp*")
      for partial in glob.glob(pattern):
        shutil.rmtree(partial, ignore_errors=True)
      done = self.all_steps()
      resume = (f"rerun to resume from step {done[-1]}" if done else
                "rerun to start again")
      hint = (" (free space on that filesystem, or use a --workdir on another)"
              if cause.errno in (errno.ENOSPC, errno.EDQUOT) else "")
      raise CheckpointError(
          f"Saving the checkpoint at step {step} in {self.directory} failed: "
          f"{cause.strerror or cause}{hint}. Its partial files were removed and the "
          f"earlier checkpoints are intact: {resume}.") from e

  def restore_meta(self, step: int | None = None) -> dict:
    """The JSON record of the checkpoint at ``step`` (default: the latest), without
    reading its state: what a resume checks before it restores anything."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise CheckpointError(f"No checkpoint in {self.directory}.")
    try:
      out = self._manager.restore(step, args=ocp.args.Composite(
          meta=ocp.args.JsonRestore()))
    except Exception as e:  # orbax raises many types for unreadable files
      self._check_still_there(step, e)
      raise CheckpointError(
          f"The record of the checkpoint at step {step} in {self.directory} cannot be "
          f"read ({type(e).__name__}: {_short(e)}). Nothing was deleted: "
          f"{self._fallback(step)}, or use another --workdir.") from e
    return dict(out.meta)

  def _check_still_there(self, step: int, error: Exception):
    """A read of ``step`` failed: ``CheckpointRemoved`` if its directory is gone (a
    training run rotated it out meanwhile), not the advice for a corrupt one."""
    if not os.path.isdir(self.step_dir(step)):
      raise CheckpointRemoved(
          f"The checkpoint at step {step} in {self.directory} was deleted while it was "
          f"read: a training run in this workdir keeps only its last checkpoints "
          f"(train.keep_checkpoints). Nothing is corrupt: rerun to read the newest "
          f"one.") from error

  def _fallback(self, step: int) -> str:
    older = [s for s in self.all_steps() if s < step]
    return (f"move {self.step_dir(step)} away to resume from step {older[-1]}"
            if older else f"move {self.step_dir(step)} away to start afresh")

  def restore(self, abstract_state, step: int | None = None):
    """Restore (state, meta) at ``step`` (default: the latest) into the abstract
    state's structure, shapes, dtypes and shardings."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise CheckpointError(f"No checkpoint in {self.directory}.")
    # Shapes first, from the checkpoint's metadata: a mismatch is named leaf by leaf,
    # and no restore is started that would fail (and leave orbax's reads pending).
    _check_shapes(abstract_state, self._state_metadata(step), self.step_dir(step))
    try:
      out = self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state),
          meta=ocp.args.JsonRestore()))
    except Exception as e:  # orbax raises many types for unreadable files
      self._check_still_there(step, e)
      raise CheckpointError(
          f"The checkpoint at step {step} in {self.directory} cannot be restored "
          f"({type(e).__name__}: {_short(e)}). It is corrupt, incomplete, or was "
          f"written for a different config (model or optimiser shapes). Nothing "
          f"was deleted: {self._fallback(step)}, or use another --workdir.") from e
    _check_structure(abstract_state, out.state, self.step_dir(step))
    return out.state, dict(out.meta)

  def _state_metadata(self, step: int):
    """{path: shape} of the saved state's arrays, or None where it cannot be read
    (then the restore itself reports what is wrong)."""
    try:
      from etils import epath
      tree = ocp.StandardCheckpointHandler().metadata(
          epath.Path(self.step_dir(step)) / "state").tree
    except Exception:  # noqa: BLE001 (an unreadable record: restore() reports it)
      return None
    leaves = jax.tree_util.tree_flatten_with_path(
        tree, is_leaf=lambda x: hasattr(x, "shape"))[0]
    return {_path(p): tuple(x.shape) for p, x in leaves if hasattr(x, "shape")}

  def step_dir(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  def close(self):
    self._manager.close()


def _check_structure(expected, restored, where):
  if jax.tree.structure(expected) != jax.tree.structure(restored):
    raise CheckpointError(f"The checkpoint {where} holds a different state "
                          f"structure than this config builds.")


def _path(keypath) -> str:
  return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k))))
                  for k in keypath)


def _check_shapes(expected, saved: dict | None, where):
  if saved is None:
    return
  wanted = {_path(p): tuple(x.shape)
            for p, x in jax.tree_util.tree_flatten_with_path(expected)[0]}
  if set(wanted) != set(saved):
    # Another model, or another family: a good checkpoint, for another config.
    def some(paths):
      return f"{len(paths)}: {', '.join(paths[:2])}{', ...' if len(paths) > 2 else ''}"
    raise CheckpointError(
        f"The checkpoint {where} was written for a different config: it holds arrays "
        f"this config does not build ({some(sorted(set(saved) - set(wanted)))}) and "
        f"lacks arrays it builds ({some(sorted(set(wanted) - set(saved)))}). Nothing "
        f"was deleted: resume it with the config it was trained with (its "
        f"config.json), or use another --workdir.")
  wrong = [f"{k}: saved {saved[k]}, this config {v}" for k, v in wanted.items()
           if saved[k] != v]
  if wrong:
    more = f" (and {len(wrong) - 3} more)" if len(wrong) > 3 else ""
    raise CheckpointError(
        f"The checkpoint {where} was written for a different config: "
        f"{'; '.join(wrong[:3])}{more}. Nothing was deleted: resume it with the "
        f"config it was trained with (its config.json), or use another --workdir.")


def _os_error(e: BaseException) -> OSError | None:
  """The OSError under an exception (orbax re-raises write errors from its threads
  as other types, "Event loop is closed" among them), or None."""
  seen = set()
  while e is not None and id(e) not in seen:
    if isinstance(e, OSError) and e.errno:
      return e
    seen.add(id(e))
    e = e.__cause__ or e.__context__
  return None


def _short(e, n=300):
  s = str(e).strip().splitlines()
  return (s[0] if s else "")[:n]
