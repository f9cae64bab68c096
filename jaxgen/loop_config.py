"""The config fields the generic loop reads, each with its check.

``check(config, mesh)`` runs before any work (no data read, nothing compiled, nothing
written) and raises ``ConfigError`` naming every missing or bad field, one line each
with the fix. The fields have no defaults here: each default lives in the config.
"""
from __future__ import annotations

import numbers

from jaxgen import evaluators, precision, registry
from jaxgen.errors import ConfigError


def _int(minimum):
  def check(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
      return f"must be an integer, got {value!r} ({type(value).__name__})"
    if value < minimum:
      return f"must be at least {minimum}, got {value}"
    return None
  return check


POSITIVE, NON_NEGATIVE = _int(1), _int(0)
EVERY = "(0 means only at the end)"

# section -> field -> (check, what the field means)
TRAIN = {
    "batch_size": (POSITIVE, "the global batch, split over the devices"),
    "num_steps": (POSITIVE, "training steps"),
    "log_every": (NON_NEGATIVE, f"steps between metric lines {EVERY}"),
    "checkpoint_every": (NON_NEGATIVE, f"steps between checkpoints {EVERY}"),
    "sample_every": (NON_NEGATIVE, f"steps between sample pictures {EVERY}"),
    "keep_checkpoints": (POSITIVE, "checkpoints kept"),
}
EVAL = {
    "batch_size": (POSITIVE, "the eval batch, split over the devices"),
    "num_examples": (NON_NEGATIVE, "eval examples (0 means the whole split)"),
}
SAMPLE_METRICS = {
    "num_samples": (POSITIVE, "samples for the sample metrics"),
    "sample_batch_size": (POSITIVE, "samples generated per batch, split over the devices"),
}


def _field(config, section, name):
  block = config.get(section)
  return block.get(name) if block is not None and name in block else _MISSING


_MISSING = object()


def check(config, mesh=None) -> None:
  """Every field the loop reads, checked; ``mesh`` adds the divisibility checks."""
  problems = []

  def need(section, name, checker, what):
    value = _field(config, section, name)
    if value is _MISSING:
      problems.append(f"config.{section}.{name} is missing ({what}): set it in the "
                      f"config file.")
      return None
    why = checker(value)
    if why:
      problems.append(f"config.{section}.{name} {why} ({what}).")
      return None
    return value

  if isinstance(config.get("seed"), bool) or not isinstance(config.get("seed"),
                                                            numbers.Integral):
    problems.append(f"config.seed must be an integer, got {config.get('seed')!r}.")
  if config.get("compute") is not None:
    problems += precision.check_block(dict(config.compute))
  if _field(config, "data", "workers") is not _MISSING:
    why = NON_NEGATIVE(config.data.workers)
    if why:
      problems.append(f"config.data.workers {why} (data-loader worker processes; 0 "
                      f"loads in the training process): set e.g. "
                      f"--config.data.workers=0.")
  values = {("train", n): need("train", n, *spec) for n, spec in TRAIN.items()}
  values.update({("eval", n): need("eval", n, *spec) for n, spec in EVAL.items()})
  split = _field(config, "eval", "split")
  if split is _MISSING or not isinstance(split, str) or not split:
    problems.append("config.eval.split must name a split of the dataset (e.g. 'test').")
  metrics = _field(config, "eval", "metrics")
  if metrics is _MISSING:
    problems.append("config.eval.metrics is missing (the sample metrics, e.g. "
                    "('fid', 'is'), or () for none): set it in the config file.")
  elif metrics:
    unknown = sorted(n for n in metrics if evaluators.EVALUATORS.find(n) is None)
    if unknown:
      problems.append(f"config.eval.metrics has unknown {unknown}; use any of "
                      f"{', '.join(evaluators.EVALUATORS.names())}.")
    values.update({("eval", n): need("eval", n, *spec)
                   for n, spec in SAMPLE_METRICS.items()})
    try:  # metrics that score reconstructions need an autoencoder
      recon = evaluators.reconstruction_metrics(metrics)
      if recon:
        evaluators.check_autoencoder(registry.family_class(config.get("family")),
                                     config, recon)
    except ConfigError as e:
      problems.append(str(e))
  if mesh is not None:
    n = mesh.devices.size
    for (section, name) in (("train", "batch_size"), ("eval", "batch_size"),
                            ("eval", "sample_batch_size")):
      value = values.get((section, name))
      if value and value % n:
        problems.append(
            f"config.{section}.{name}={value} is not divisible by the number of "
            f"devices ({n}): every device must get the same share. Choose a "
            f"multiple of {n}, e.g. --config.{section}.{name}={max(n, value // n * n)}.")
  if problems:
    raise ConfigError(" ".join(problems) if len(problems) == 1 else
                      f"{len(problems)} bad config fields: " + " ".join(problems))
