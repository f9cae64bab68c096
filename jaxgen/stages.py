"""Frozen stages: finished runs (or weights files) that a later run builds on.

A config names its stages in ``config.stages``, for example
``config.stages.autoencoder = "/path/to/vae_workdir"``; ``jaxgen.build`` rebuilds
each (the stage family's trainer from the run's ``config.json`` and its
``stage_params``, the EMA parameters by default, from the latest checkpoint, read
only, replicated over the mesh), or reads a weights file through a reader of
``jaxgen.weights``. This module holds what a stage is and the checks around it: the
names a family needs (``check_named``), the record a later run keeps and checks on
resume (``record``, ``check_record``, ``digest``). The loop passes the parameters to the compiled steps
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

from jaxgen import registry, sharding, weights
from jaxgen.errors import StageError

log = logging.getLogger("jaxgen")


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


# --- the protocols a stage provides: a family (or a weights-file reader) that can
# serve in a stage role mixes one in; ``params`` is the stage's ``stage_params``.
class Autoencoder:
  """The stage protocol of autoencoders (VAE, VQ-VAE, dVAE): images are in [0, 1] as
  the stage's data config preprocesses them. A discrete autoencoder's latents are
  integer code ids below ``num_codes``; a continuous one's ``num_codes`` is 0."""
  latent_spec: Any  # jax.ShapeDtypeStruct of one latent (or token-id grid)
  num_codes: int = 0

  def encode(self, params, images):
    """Images (N, H, W, C) -> latents (N, *latent_spec.shape) or token ids."""
    raise NotImplementedError

  def decode(self, params, latents):
    """Latents (or token ids) -> images in [0, 1], (N, H, W, C)."""
    raise NotImplementedError

  def encode_latents(self, params, images):
    """Continuous latents for a latent diffusion: a continuous autoencoder's
    ``encode``. A discrete one that has vectors before quantisation (LDM's VQ first
    stages) overrides this and ``decode_latents``; the others have none."""
    if self.num_codes:
      raise StageError(f"{type(self).__name__} gives integer codes, not continuous "
                       f"latents.")
    return self.encode(params, images)

  def decode_latents(self, params, latents):
    """Images in [0, 1] from ``encode_latents``' latents."""
    if self.num_codes:
      raise StageError(f"{type(self).__name__} decodes integer codes, not continuous "
                       f"latents.")
    return self.decode(params, latents)


class CodeAutoencoder(Autoencoder):
  """An ``Autoencoder`` whose ``encode`` gives integer code ids (dVAE, VQ-VAE, OpenAI's
  dVAE): the stage of the families that model codes (DALL-E, the PixelCNN prior)."""


class VectorAutoencoder(Autoencoder):
  """An ``Autoencoder`` with continuous ``encode_latents`` (VAE, the KL autoencoder, and
  VQ-VAE's vectors before quantisation): the stage of latent diffusion."""


class ConditioningEncoder:
  """The stage protocol of conditioning encoders (CLIP): pooled, L2-normalised
  embeddings of images and of token ids in one space, and the per-token text states
  that cross-attention (latent diffusion) and the unCLIP prior read."""

  def embed_image(self, params, images):
    """Images (N, H, W, C) in [0, 1] -> (N, D)."""
    raise NotImplementedError

  def embed_text(self, params, tokens):
    """Token ids (N, L) -> (N, D)."""
    raise NotImplementedError

  def text_states(self, params, tokens):
    """Token ids (N, L) -> (per-token states (N, L, W), mask (N, L) of real tokens)."""
    raise NotImplementedError


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
  try:
    with open(path) as f:
      return ml_collections.ConfigDict(json.load(f))
  except (OSError, ValueError) as e:  # json.JSONDecodeError is a ValueError
    raise StageError(f"The run {workdir} has an unreadable config.json ({path}: "
                     f"{type(e).__name__}: {e}): it is cut short or not a jaxgen "
                     f"run's; train that stage again or point at another "
                     f"workdir.") from e


def check_named(config, roles: dict) -> dict:
  """The stage paths ``config.stages`` names, checked against ``roles`` (stage name
  -> the protocol class the family needs): none missing, none unknown."""
  named = dict(config.get("stages") or {})
  missing = [n for n in roles if not named.get(n)]
  if missing:
    raise StageError(
        f"config.family={config.family!r} builds on frozen stage(s) "
        f"{', '.join(missing)}: set --config.stages.{missing[0]}=WORKDIR to a finished "
        f"run of {providers(roles[missing[0]])} (train it first).")
  unknown = sorted(set(n for n, p in named.items() if p) - set(roles))
  if unknown:
    raise StageError(f"config.stages.{unknown[0]} is not a stage of family "
                     f"{config.family!r} (it takes: {', '.join(roles) or 'none'}).")
  return {name: named[name] for name in roles}


def check_role(name: str, workdir: str, config, family, role):
  """A run of ``family`` can serve as the stage ``name`` only if it provides ``role``."""
  if role is not None and not issubclass(family, role):
    raise StageError(
        f"config.stages.{name}={workdir} is a {config.family!r} run, but the {name} "
        f"stage needs the {role.__name__} protocol ({providers(role)}).")


def check_finished(name: str, workdir: str, last_step, total: int):
  if last_step is None or last_step < total:
    raise StageError(
        f"config.stages.{name}={workdir} is not a finished run (checkpoint step "
        f"{last_step if last_step is not None else 'none'} of {total}): finish it first "
        f"by rerunning its training command, python -m jaxgen.main "
        f"--config=<its config> --workdir={workdir}.")


def load_file(name: str, path: str, mesh, role, spec: dict) -> Stage:
  """A weights file as the stage ``name``: the first reader of ``jaxgen.weights``
  that provides ``role`` and accepts the file (OpenAI's dVAE, CLIP's Hugging Face
  file, ...). ``spec`` is the later run's example spec (a reader sizes its stage to
  the images the run will give it)."""
  readers = weights.readers_for(role)
  if not readers:
    raise StageError(
        f"config.stages.{name}={path} is a file, but no weights-file reader provides "
        f"the {getattr(role, '__name__', role)} protocol the {name} stage needs; point "
        f"config.stages.{name} at the workdir of a finished run.")
  reader = next((r for r in readers if r.accepts(path)), None)
  if reader is None:
    raise StageError(
        f"config.stages.{name}={path}: no weights-file reader for the {name} stage "
        f"takes this file; they take: "
        f"{'; '.join(f'{r.name}: {r.what}' for r in readers)}.")
  stage, variables = reader.load(path, spec)
  params = sharding.replicate(variables, mesh)
  return Stage(name, path, stage, params, 0, digest(params))


def check_tokenizer(stage: Stage, tokenizer, who: str):
  """A run that feeds token ids to a stage must tokenize its captions as the stage's
  run did (``stage.tokenizer``, saved with that run); a StageError otherwise. ``who``
  names the stage's user in the message. A stage without a tokenizer (a weights file)
  reads text its own way and is not checked here."""
  if stage.tokenizer is None or stage.tokenizer == tokenizer:
    return
  mine, theirs = set(stage.tokenizer.vocab), set(getattr(tokenizer, "vocab", ()))
  raise StageError(
      f"{who} reads captions with another tokenizer ({stage.tokenizer.vocab_size} ids) "
      f"than its dataset ({getattr(tokenizer, 'vocab_size', '?')} ids; words only in "
      f"the stage's: {sorted(mine - theirs)[:5]}, only in the dataset's: "
      f"{sorted(theirs - mine)[:5]}, or the same words numbered differently): its "
      f"token ids mean other words; train the {stage.name} stage on the same captions.")


def check_same_data(mine, stage, path, fields=("name", "scale", "binarize", "resize",
                                              "center_crop")):
  """A model over a stage's latents must see the images as the stage's run did: the
  data ``fields`` of ``mine`` (the later run's config.data) and ``stage`` (the stage
  run's) must agree."""
  norm = lambda v: tuple(v) if isinstance(v, (list, tuple)) else v
  diff = [f for f in fields if norm(mine.get(f)) != norm(stage.get(f))]
  if diff:
    f = diff[0]
    raise StageError(
        f"config.data.{f}={norm(mine.get(f))!r}, but the autoencoder stage {path} was "
        f"trained with {norm(stage.get(f))!r}: the latent model must see the images as "
        f"the stage did. Set --config.data.{f}={norm(stage.get(f))!r}.")


def providers(role) -> str:
  """The families (and weights-file readers) that provide ``role``, for messages."""
  names = []
  for family in registry.family_names():
    try:
      if issubclass(registry.family_class(family), role):
        names.append(family)
    except ImportError:
      continue
  files = [r.name for r in weights.readers_for(role)]
  found = (f"family {' or '.join(names)}" if names else role.__name__) + (
      f", or a weights file ({', '.join(files)})" if files else "")
  return found


def record(stages: dict, ignore: tuple = ()) -> dict:
  """What a checkpoint keeps of each stage but those named in ``ignore`` (the
  trainer's ``sampling_stages``)."""
  return {name: s.record() for name, s in stages.items() if name not in ignore}


def check_record(stages: dict, recorded: dict | None, workdir: str,
                 ignore: tuple = ()):
  """Refuse to resume a run in ``workdir`` whose stages differ from those its
  checkpoint was trained with; the stages named in ``ignore`` (read only when
  sampling) may differ, or be added or left out."""
  stages = {k: v for k, v in stages.items() if k not in ignore}
  recorded = {k: v for k, v in (recorded or {}).items() if k not in ignore}
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
