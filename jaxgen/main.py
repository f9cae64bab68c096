"""jaxgen's command line: train, evaluate, sample or summarise a config.

  python -m jaxgen.main --config=configs/vae_mnist.py --workdir=/tmp/vae_mnist
  python -m jaxgen.main --config=configs/vae_mnist.py:paper --mode=summary
  python -m jaxgen.main --config=configs/vae_mnist.py --workdir=DIR --mode=eval

Config fields are overridden with --config.FIELD=VALUE (e.g.
--config.train.num_steps=100); an unknown field or a wrong type is an error before
any work starts. Rerunning a training command resumes from the latest checkpoint.
"""
from __future__ import annotations

import json
import logging
import os
import sys

from absl import app, flags
from ml_collections import config_flags

from jaxgen import (build, checkpoint, errors, loop_config, precision, sharding, train,
                    xla_options)
from jaxgen.errors import UserError
from jaxgen.families.base import count_params

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", None, "Experiment config: path/to/config.py[:variant].",
    lock_config=True)
flags.DEFINE_string("workdir", None, "Run directory (checkpoints, metrics, samples).")
flags.DEFINE_enum("mode", "train", ["train", "eval", "sample", "summary"],
                  "train (resumes automatically), eval (latest checkpoint -> "
                  "eval.json), sample (latest checkpoint -> samples/*.png), summary "
                  "(parameter counts of every network, no data, no training).")
flags.DEFINE_bool("distributed", False,
                  "Several processes (hosts): call jax.distributed.initialize() first. "
                  "SLURM, Open MPI and TPU pod slices are detected; elsewhere give "
                  "--coordinator_address (or JAX_COORDINATOR_ADDRESS), --num_processes "
                  "and --process_id.")
flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (--distributed).")
flags.DEFINE_integer("num_processes", None, "Number of processes (--distributed).")
flags.DEFINE_integer("process_id", None, "This process's index (--distributed).")
flags.mark_flags_as_required(["config"])


def summary(config) -> dict:
  """Build every network of the config and count its parameters (shapes only)."""
  trainer = build.make_trainer(config)
  counts = {name: count_params(module, *args, **kwargs)
            for name, (module, args, kwargs) in trainer.networks().items()}
  width = max(len(n) for n in [*counts, "total"])
  print(f"{'network':<{width}}  {'parameters':>14}")
  for name, n in counts.items():
    print(f"{name:<{width}}  {n:>14,}")
  print(f"{'total':<{width}}  {sum(counts.values()):>14,}")
  print(json.dumps(counts))
  return counts


def main(argv):
  """The mode's work; the user's errors (a bad config field, a missing or changed
  stage, an unreadable checkpoint, a locked workdir: ``errors.UserError``) end as one
  line on stderr with exit status 2; any other exception keeps its traceback."""
  try:
    _main(argv)
  except UserError as e:
    errors.exit_with(e)
  except KeyboardInterrupt:  # a second Ctrl-C (the first one saves and stops)
    where = f" in {FLAGS.workdir}" if FLAGS.workdir else ""
    print(f"interrupted: the checkpoints written so far{where} are intact; rerun the "
          f"same command to resume.", file=sys.stderr)
    sys.exit(130)


def _main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  checkpoint.quiet_logs()
  logging.getLogger("jaxgen").setLevel(logging.INFO)
  config = FLAGS.config
  if FLAGS.distributed:
    sharding.initialize_distributed(FLAGS.coordinator_address, FLAGS.num_processes,
                                    FLAGS.process_id)
  if FLAGS.mode == "summary":
    summary(config)
    return
  if not FLAGS.workdir:
    raise app.UsageError(f"--workdir is required for --mode={FLAGS.mode}.")
  workdir = FLAGS.workdir
  if FLAGS.mode == "train":
    train.train(config, workdir)
    return
  mesh = sharding.make_mesh()
  loop_config.check(config, mesh)
  with precision.matmul_context(precision.resolve(config)):
    _read_only_mode(config, workdir, mesh)


def _read_only_mode(config, workdir, mesh):
  """--mode=eval or sample: the latest checkpoint's evaluation or pictures. Where they
  go is checked first; the evaluation is printed before it is saved."""
  trainer = build.make_trainer(config, mesh)
  if FLAGS.mode == "eval":
    errors.check_writable(os.path.join(workdir, "eval.json"), "--workdir")
  else:
    errors.check_writable(os.path.join(workdir, "samples"), "--workdir", folder=True)
  state, meta = train.restore_latest(trainer, config, workdir, mesh)
  step = int(meta["step"])
  if FLAGS.mode == "eval":
    result = {"step": step, **train.evaluate(trainer, state, config, mesh)}
    print(json.dumps(result), flush=True)
    train.write_json(os.path.join(workdir, "eval.json"), result)
  else:
    train.save_pictures(trainer, state, config, workdir, step)
    print(f"wrote pictures for step {step} to {os.path.join(workdir, 'samples')}")


def parse_flags(argv):
  """absl's flag parsing, with config overrides that name no field (or give a
  value of the wrong type) reported as one clear line instead of a traceback."""
  try:
    rest = FLAGS(argv)
    FLAGS.config.keys()  # the config file is read here
    return rest
  except flags.Error as e:
    # A config file that fails to build: the last line of its error says why.
    lines = [l for l in str(e).splitlines() if l.strip()]
    why = lines[-1] if "Error whilst parsing config file" in str(e) else str(e)
    errors.exit_with(f"{argv_config(argv)}: {why}" if why != str(e) else
                     f"Flags parsing error: {e}")
  except OSError as e:
    why = str(e.__cause__ or e).strip().splitlines()[-1].strip()
    errors.exit_with(f"--config={argv_config(argv)}: the config file cannot be read "
                     f"({why}); the configs are in configs/ (for example "
                     f"configs/vae_mnist.py).")
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    msg = str(e).strip("'\"").replace("\\n", " ").replace("\\'", "'")
    errors.exit_with(f"bad --config override: {type(e).__name__}: {msg}. The config "
                     f"fields are listed in {argv_config(argv)}.")


def argv_config(argv):
  for a in argv:
    if a.startswith("--config="):
      return a.split("=", 1)[1].split(":")[0]
  return "the config file"


def run():
  xla_options.configure_cpu()  # before JAX creates its CPU client
  app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
  run()
