"""Runs rebuilt from their configs, and frozen stages: finished runs (or weights files)
that a later run builds on.

``make_trainer(config)`` builds a family's trainer with the stages its config names
(recursively: a stage's own trainer may have stages); ``run_keys`` are a run's random
streams, derived from its seed; ``abstract_state`` is its state's shape, unbuilt.

A config names its stages in ``config.stages``, for example
``config.stages.autoencoder = "/path/to/vae_workdir"``. ``load(config, mesh)`` rebuilds
each: the stage family's trainer from the run's ``config.json`` and its
``stage_params`` (the EMA parameters, by default) from the latest checkpoint, read
only, replicated over the mesh. The loop passes the parameters to the compiled steps
as their own argument (``frozen``); they are never donated, never captured as
constants and never copied into the later run's checkpoints, which record each stage's
path, step and parameter digest instead (``record``), so that a resume with a stage
that changed is refused (``check_record``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from typing import Any

import jax
import ml_collections
import numpy as np

from jaxgen import checkpoint, config_file, data, sharding, trainers

log = logging.getLogger("jaxgen")


def make_trainer(config, mesh=None):
  """The family's trainer for ``config``, with the frozen stages it names loaded
  (read only) onto ``mesh``."""
  family = trainers.family_class(config)
  loaded = (load(config, mesh or sharding.make_mesh(), family.stage_roles)
            if family.stage_roles or config.get("stages") else {})
  try:
    return family(config, data.example_spec(config.data), loaded)
  except AttributeError as e:  # ConfigDict's missing field: AttributeError(KeyError)
    if not (e.args and isinstance(e.args[0], KeyError)):
      raise
    raise config_file.ConfigError(
        f"config.family={config.family!r} reads the field {e.args[0]}, which this "
        f"config does not set: add it to the config file (the configs hold every "
        f"default; see another {config.family} config for the field).") from e


def run_keys(config):
  # Each use of randomness has its own stream, derived from the seed alone.
  from jaxgen import precision
  root = precision.resolve(config).key(config.seed)  # config.compute.prng_impl
  init, step, eval_, sample = jax.random.split(root, 4)
  return {"init": init, "step": step, "eval": eval_, "sample": sample}


def abstract_state(trainer, config, mesh):
  """The state's structure, shapes, dtypes and (replicated) shardings, unbuilt."""
  shapes = jax.eval_shape(trainer.init_state, run_keys(config)["init"])
  repl = sharding.replicated(mesh)
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=repl),
                      shapes)


class StageError(ValueError):
  """A stage is missing, unfinished, of the wrong family, or changed."""


@dataclasses.dataclass
class Stage:
  name: str
  path: str
  trainer: Any  # the stage family's Trainer: its encode/decode/embed_* functions
  params: Any  # its stage_params, replicated on the mesh
  step: int
  digest: str
  tokenizer: Any = None  # the run's caption tokenizer (tokenizer.json), if it has one

  def record(self) -> dict:
    return {"path": self.path, "step": self.step, "digest": self.digest}


def digest(tree) -> str:
  """SHA-256 of a pytree's leaves (their bytes, shapes and dtypes), in tree order."""
  h = hashlib.sha256()
  for leaf in jax.tree.leaves(jax.device_get(tree)):
    leaf = np.asarray(leaf)
    h.update(f"{leaf.dtype}{leaf.shape}".encode())
    h.update(np.ascontiguousarray(leaf).tobytes())
  return h.hexdigest()


def run_config(workdir: str) -> ml_collections.ConfigDict:
  """The resolved config a run recorded in its ``config.json``."""
  path = os.path.join(workdir, "config.json")
  if not os.path.isfile(path):
    raise StageError(f"{workdir} is not a jaxgen run (no config.json): train the stage "
                     f"first with python -m jaxgen.main --config=... --workdir={workdir}")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def load_run(name: str, workdir: str, mesh, role=None) -> Stage:
  """Rebuild the finished run in ``workdir`` as the stage ``name`` (read only); its
  family must provide ``role`` (a protocol class of jaxgen/trainers/base.py)."""
  workdir = os.path.abspath(os.path.expanduser(workdir))
  if os.path.isfile(workdir):
    return load_file(name, workdir, mesh, role)
  if not os.path.isdir(workdir):
    raise StageError(f"config.stages.{name}={workdir}: no such directory. Train that "
                     f"stage first (python -m jaxgen.main --config=... "
                     f"--workdir={workdir}) or point config.stages.{name} at its "
                     f"workdir.")
  config = run_config(workdir)
  family = trainers.family_class(config)
  if role is not None and not issubclass(family, role):
    raise StageError(
        f"config.stages.{name}={workdir} is a {config.family!r} run, but the {name} "
        f"stage needs the {role.__name__} protocol ({_families(role)}).")
  trainer = make_trainer(config, mesh)
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"), read_only=True)
  try:
    last = ckpt.latest_step()
    total = int(config.train.num_steps)
    if last is None or last < total:
      raise StageError(
          f"config.stages.{name}={workdir} is not a finished run (checkpoint step "
          f"{last if last is not None else 'none'} of {total}): finish it first by "
          f"rerunning its training command, python -m jaxgen.main "
          f"--config=<its config> --workdir={workdir}.")
    state, _ = ckpt.restore(abstract_state(trainer, config, mesh))
  finally:
    ckpt.close()
  params = sharding.replicate(trainer.stage_params(state), mesh)
  return Stage(name, workdir, trainer, params, int(last), digest(params),
               data.load_tokenizer(workdir))


# protocol class name -> "module:function" that loads a weights file as that stage:
# path -> (stage object providing the protocol, parameters).
FILE_LOADERS = {
    "ConditioningEncoder": "jaxgen.trainers.clip_encoder:CLIPEncoder.from_file",
}


def load_file(name: str, path: str, mesh, role) -> Stage:
  """A weights file as the stage ``name`` (for example CLIP's Hugging Face file)."""
  import importlib
  entry = FILE_LOADERS.get(getattr(role, "__name__", ""))
  if entry is None:
    raise StageError(
        f"config.stages.{name}={path} is a file, but a weights file can stand in only "
        f"for {', '.join(FILE_LOADERS)} stages; the {name} stage needs the workdir of "
        f"a finished run.")
  module, attr = entry.split(":")
  obj = importlib.import_module(module)
  for part in attr.split("."):
    obj = getattr(obj, part)
  encoder, variables = obj(path)
  params = sharding.replicate(variables, mesh)
  return Stage(name, path, encoder, params, 0, digest(params))


def load(config, mesh, roles: dict) -> dict:
  """The stages that ``config.stages`` names, checked against ``roles`` (stage name
  -> protocol class the family needs), as name -> Stage."""
  named = dict(config.get("stages") or {})
  missing = [n for n in roles if not named.get(n)]
  if missing:
    raise StageError(
        f"config.family={config.family!r} builds on frozen stage(s) "
        f"{', '.join(missing)}: set --config.stages.{missing[0]}=WORKDIR to a finished "
        f"run of {_families(roles[missing[0]])} (train it first).")
  unknown = sorted(set(n for n, p in named.items() if p) - set(roles))
  if unknown:
    raise StageError(f"config.stages.{unknown[0]} is not a stage of family "
                     f"{config.family!r} (it takes: {', '.join(roles) or 'none'}).")
  out = {}
  for name, role in roles.items():
    out[name] = load_run(name, named[name], mesh, role)
  return out


def _families(role) -> str:
  """The registered families whose trainers provide ``role``, for messages."""
  import importlib
  names = []
  for family, entry in trainers.FAMILIES.items():
    module, cls = entry.split(":")
    try:
      if issubclass(getattr(importlib.import_module(module), cls), role):
        names.append(family)
    except ImportError:
      continue
  return f"family {' or '.join(names)}" if names else role.__name__


def record(stages: dict) -> dict:
  return {name: s.record() for name, s in stages.items()}


def check_record(stages: dict, recorded: dict | None, workdir: str):
  """Refuse to resume a run in ``workdir`` whose stages differ from those its
  checkpoint was trained with."""
  recorded = recorded or {}
  if set(recorded) != set(stages):
    raise StageError(
        f"The checkpoints in {workdir} were trained with stages "
        f"{sorted(recorded) or 'none'}, this config names {sorted(stages) or 'none'}.")
  for name, stage in stages.items():
    rec = recorded[name]
    if rec["digest"] != stage.digest:
      raise StageError(
          f"The {name} stage changed since {workdir} was trained on it: "
          f"{rec['path']} (step {rec['step']}, digest {rec['digest'][:12]}) then, "
          f"{stage.path} (step {stage.step}, digest {stage.digest[:12]}) now. Point "
          f"config.stages.{name} back at the original run, or use another --workdir.")
    if rec["path"] != stage.path:
      log.warning("The %s stage moved from %s to %s (same parameters).", name,
                  rec["path"], stage.path)


def frozen_params(stages: dict) -> dict:
  return {name: s.params for name, s in stages.items()}
