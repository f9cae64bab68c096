r"""The ceiling of the sample metrics: what each evaluator of ``config.eval.metrics``
reports when the "samples" are the real images of ``config.eval.split``.

  python -m jaxgen.evaluators.ceiling --config=configs/clip_mnist.py \
      --config.eval.metrics=fid,kid,caption_accuracy [--out=ceiling.json]
  python -m jaxgen.evaluators.ceiling --config=configs/clip_mnist.py:captions2 \
      --config.eval.metrics=clip_score,clip_r_precision --config.eval.clip_stage=W

The evaluators run as ``evaluators.compute`` runs them after training, on the same
eval examples in the same order, with one change: each example's own real image (as
the metrics see real images: ``features.real_data``, in [0, 1]) stands in for the
sample generated from it, so each is scored against its own caption (or label, or
target). ``eval.num_samples`` examples (cycling through the split as ``compute`` does)
or, where the config sets none (or 0), every example of the split once, in batches of
``eval.sample_batch_size`` (default ``eval.batch_size``). FID's and KID's ceiling is
thus the split (test) against ``eval.reference_split`` (train): the distance that
sampling noise and the split's own difference leave. Evaluator options that the
config lacks (``eval.clip_stage``, ``eval.feature_net``, ...) may be given on the
command line as ``--config.eval.NAME=VALUE``; ``--config.eval.metrics`` takes
``fid,kid`` (or ``"('fid', 'kid')"``). ``--config.eval.shuffled_baseline=True`` adds
the floor: each real image scored against another example's caption (``*_shuffled``),
what a model that draws from the data but ignores its conditioning would get.

The result (printed as the last line, and written atomically to ``--out``) is
``compute``'s, with ``ceiling`` naming the images it was computed from. Wrong input (an
unknown metric or field, a dataset without what a metric reads, a missing CLIP stage)
ends as one ``error:`` line with exit status 2.
"""
from __future__ import annotations

import json

import jax
from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

from jaxgen import (config_file, data, errors, evaluators, precision, sharding, stages,
                    train, xla_options)
from jaxgen.checkpoint import CheckpointError
from jaxgen.errors import ConfigError
from jaxgen.evaluators.features import real_data

FLAGS = flags.FLAGS


def define_flags():
  """The command line's flags, defined by ``run`` alone: the evaluator registry
  imports every module of this package, and absl flags are global (``jaxgen.main``
  has its own ``--config``)."""
  # Unlocked, taking new fields: the evaluators' options (eval.clip_stage, ...) are
  # absent from most configs. ``check_new_fields`` refuses any other new field.
  config_flags.DEFINE_config_file(
      "config", None, "Experiment config: path/to/config.py[:variant].",
      lock_config=False, accept_new_attributes=True)
  flags.DEFINE_string("out", None, "Also write the result JSON to this file.")
  flags.mark_flags_as_required(["config"])


# eval fields a config may lack that the ceiling (and compute) read
OWN_FIELDS = ("metrics", "num_samples", "sample_batch_size", "shuffled_baseline")


class RealImages(stages.Autoencoder):
  """Stands in for a trainer in ``evaluators.compute``: conditioned on the eval
  examples' ``image``, it "generates" those images; as an autoencoder, each image is
  its own reconstruction (the ceiling of ``class_accuracy_recon`` is the classifier's
  accuracy on the real images)."""
  conditioning_keys = ("image",)
  stages: dict = {}

  def generate(self, state, rng, num, inputs=None, frozen=None):
    return inputs["image"]

  def stage_params(self, state):
    return None

  def encode(self, params, images):
    return images

  def decode(self, params, latents):
    return latents

  def compiled(self, fn, **jit_options):
    return jax.jit(fn, **jit_options)


def metric_names(metrics) -> tuple:
  """``eval.metrics`` as names: entries may hold several, comma-separated."""
  if isinstance(metrics, str):
    metrics = (metrics,)
  return tuple(n.strip() for m in metrics for n in str(m).split(",") if n.strip())


def ceiling(config, mesh=None, binarize: str = "") -> dict:
  """The metrics of ``config.eval.metrics`` with the real images of
  ``config.eval.split`` in place of samples (see the module's docstring); binarised
  as ``config.data.binarize`` modes binarise when ``binarize`` names one (the row of
  a family that models binary pixels)."""
  mesh = sharding.make_mesh() if mesh is None else mesh
  config = config.copy_and_resolve_references()
  config.unlock()
  e = config.eval
  e.metrics = metric_names(e.get("metrics", ()))
  if not e.metrics:
    raise ConfigError("config.eval.metrics names no metric: give the ones to compute "
                      "the ceiling of, e.g. --config.eval.metrics=fid,caption_accuracy.")
  config.data = real_data(config.data)
  config.data.binarize = binarize
  split = e.split
  e.num_samples = int(e.get("num_samples") or 0) or len(data.get_source(config.data,
                                                                         split))
  e.sample_batch_size = int(e.get("sample_batch_size") or e.batch_size)
  for sweep in ("guidance_scales", "rerank_candidates"):
    if sweep in e:
      e[sweep] = ()  # real images have no guidance, no candidates
  result = evaluators.compute(RealImages(), None, config, mesh,
                              jax.random.key(int(config.get("seed", 0))))
  what = f", binarised ({binarize})" if binarize else ""
  return {"ceiling": f"real images of {config.data.name}/{split}{what}", **result}


def check_new_fields(config, spec: str):
  """A ConfigError naming a field that the command line added to the config file's
  and that is none of ``config.eval``'s evaluator options or OWN_FIELDS (a typo)."""
  base = config_file.load(spec)

  def paths(c, prefix=""):
    for k, v in c.items():
      yield prefix + k
      if hasattr(v, "items"):
        yield from paths(v, f"{prefix}{k}.")

  known = set(paths(base))
  allowed = set(OWN_FIELDS)
  for _, evaluator in evaluators.EVALUATORS.items():
    allowed.update(evaluator.options)
  new = [p for p in paths(config) if p not in known
         and not (p.startswith("eval.") and p[len("eval."):] in allowed)]
  if new:
    raise ConfigError(f"--config.{new[0]}: {spec.partition(':')[0]} has no such field, "
                      f"and the ceiling adds only config.eval's evaluator options and "
                      f"{', '.join(OWN_FIELDS)} ({', '.join(sorted(allowed))}).")


def metrics_flags(argv) -> list:
  """``--config.eval.metrics=fid,kid`` as ml_collections reads a tuple field's items,
  one flag each (``--config.eval.metrics=fid --config.eval.metrics=kid``); a value
  written as a Python tuple or list is left as it is."""
  flag = "--config.eval.metrics="
  out = []
  for a in argv:
    value = a[len(flag):] if a.startswith(flag) else None
    if value is not None and "," in value and value.strip()[:1] not in "([\"'":
      out += [flag + v.strip() for v in value.split(",") if v.strip()]
    else:
      out.append(a)
  return out


def parse_flags(argv):
  """absl's flag parsing; a config file that fails to build, or an override of the
  wrong type, is one ``error:`` line (exit status 2)."""
  try:
    rest = FLAGS(metrics_flags(argv))
    FLAGS.config.keys()  # the config file is read here
    return rest
  except flags.Error as e:
    lines = [l for l in str(e).splitlines() if l.strip()]
    errors.exit_with(lines[-1] if lines else str(e))
  except (OSError, AttributeError, KeyError, TypeError, ValueError) as e:
    msg = str(e).strip("'\"").replace("\\n", " ").replace("\\'", "'")
    errors.exit_with(f"bad --config: {type(e).__name__}: {msg}")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  absl_logging.set_verbosity(absl_logging.WARNING)
  config = FLAGS.config
  try:
    check_new_fields(config, config_flags.get_config_filename(FLAGS["config"]))
    with precision.matmul_context(precision.resolve(config)):
      result = ceiling(config)
  except (ValueError, FileNotFoundError, CheckpointError) as e:  # ConfigError, StageError
    errors.exit_with(str(e))
  if FLAGS.out:
    train.write_json(FLAGS.out, result)
  print(json.dumps(result))


def run():
  xla_options.configure_cpu()  # before JAX creates its CPU client
  define_flags()
  app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
  run()
