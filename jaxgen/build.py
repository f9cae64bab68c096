"""A run rebuilt from its config: the family's trainer with its frozen stages loaded
(``make_trainer``), the run's random streams (``run_keys``) and its state's shape,
unbuilt (``abstract_state``).

A stage that is another run is rebuilt the same way from that run's ``config.json``
(recursively: a stage's trainer may have stages of its own) and its parameters are
restored from its latest checkpoint, read only; a stage that is a file goes through
``stages.load_file``.
"""
from __future__ import annotations

import os

import jax

from jaxgen import checkpoint, data, precision, registry, sharding, stages
from jaxgen.errors import ConfigError, StageError


def make_trainer(config, mesh=None):
  """The family's trainer for ``config``, with the frozen stages it names loaded
  (read only) onto ``mesh``."""
  family = registry.family_class(config.get("family"))
  spec = data.example_spec(config.data)
  loaded = {}
  roles = family.roles(config)
  if roles or config.get("stages"):
    mesh = mesh or sharding.make_mesh()
    named = stages.check_named(config, roles)
    loaded = {name: load_stage(name, path, mesh, roles[name], spec)
              for name, path in named.items()}
  try:
    return family(config, spec, loaded)
  except AttributeError as e:  # ConfigDict's missing field: AttributeError(KeyError)
    if not (e.args and isinstance(e.args[0], KeyError)):
      raise
    raise ConfigError(
        f"config.family={config.family!r} reads the field {e.args[0]}, which this "
        f"config does not set: add it to the config file (the configs hold every "
        f"default; see another {config.family} config for the field).") from e


def run_keys(config):
  """Each use of randomness has its own stream, derived from the seed alone (and
  config.compute.prng_impl)."""
  root = precision.resolve(config).key(config.seed)
  init, step, eval_, sample = jax.random.split(root, 4)
  return {"init": init, "step": step, "eval": eval_, "sample": sample}


def abstract_state(trainer, config, mesh):
  """The state's structure, shapes, dtypes and (replicated) shardings, unbuilt."""
  shapes = jax.eval_shape(trainer.init_state, run_keys(config)["init"])
  repl = sharding.replicated(mesh)
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=repl),
                      shapes)


def load_stage(name: str, path: str, mesh, role=None, spec=None) -> stages.Stage:
  """The finished run in ``path`` (or the weights file ``path``) as the stage
  ``name``, read only; its family must provide ``role`` (a protocol class of
  jaxgen/families/base.py). ``spec`` is the example spec of the run that uses it."""
  path = os.path.abspath(os.path.expanduser(path))
  if os.path.isfile(path):
    return stages.load_file(name, path, mesh, role, spec or {})
  if not os.path.isdir(path):
    raise StageError(
        f"config.stages.{name}={path}: no such directory. Train that stage first "
        f"(python -m jaxgen.main --config=... --workdir={path}) or point "
        f"config.stages.{name} at its workdir.")
  config = stages.run_config(path)
  stages.check_role(name, path, config, registry.family_class(config.family), role)
  trainer = make_trainer(config, mesh)
  ckpt = checkpoint.Checkpointer(os.path.join(path, "checkpoints"), read_only=True)
  try:
    last = ckpt.latest_step()
    stages.check_finished(name, path, last, int(config.train.num_steps))
    state, _ = ckpt.restore(abstract_state(trainer, config, mesh))
  finally:
    ckpt.close()
  params = sharding.replicate(trainer.stage_params(state), mesh)
  return stages.Stage(name, path, trainer, params, int(last), stages.digest(params),
                      data.load_tokenizer(path))
