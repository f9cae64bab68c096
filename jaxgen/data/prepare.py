"""Prepare a tensorflow-datasets dataset for jaxgen (needs the internet, once).

  python -m jaxgen.data.prepare cifar10 [--data_dir=~/tensorflow_datasets]

Writes array_record files, which training then reads without TensorFlow or network.
"""
from absl import app, flags

from jaxgen import errors
from jaxgen.data import sources
from jaxgen.data.paired_folder import how_to_get



def define_flags():
  """The command's flags, defined when it runs (importing the module defines none)."""
  flags.DEFINE_string("data_dir", None, "tfds data directory (default: tfds's own).")


def main(argv):
  if len(argv) != 2:
    raise app.UsageError("Usage: python -m jaxgen.data.prepare NAME [--data_dir=DIR]")
  name = argv[1]
  if name.startswith("pix2pix/"):  # Pix2Pix's paired folders are not in tfds
    errors.exit_with(f"{name} is not a tensorflow-datasets set. "
                     + how_to_get(name.split("/", 1)[1], ""))
  try:
    builder = sources.prepare(name, flags.FLAGS.data_dir)
  except (RuntimeError, ValueError) as e:  # UserError, and tfds' download errors
    errors.exit_with(e)
  print(f"{argv[1]} is prepared in {builder.data_dir}")


if __name__ == "__main__":
  define_flags()
  app.run(main)
