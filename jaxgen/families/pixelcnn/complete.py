r"""Complete occluded images with a trained autoregressive model (family pixelcnn or
pixelcnn_prior): the lecture's figure of occluded inputs, sampled completions and
originals, for image files.

  python -m jaxgen.families.pixelcnn.complete --config=configs/pixelcnn_mnist.py --workdir=/tmp/pixelcnn_mnist \
      --images=a.png,b.png --mask=top_half --num_completions=4 --out=/tmp/completion.png

Each image file is read with PIL, converted to the model's channels (L or RGB),
resized to its resolution (bilinear) and preprocessed as the config's data
(binarised by threshold at 0.5 for a Bernoulli model; grey levels otherwise).
``--mask`` names the VISIBLE part: top_half, left_half, rows:K, pixels:P (default:
``config.complete.mask``). Class-conditional models take ``--labels`` (one per image,
comma-separated). A mask that occludes nothing or everything is an error.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from absl import app, flags
from ml_collections import config_flags

from jaxgen import build, checkpoint, errors, sharding, train, viz, xla_options
from jaxgen.data import preprocess
from jaxgen.errors import ConfigError, UserError
from jaxgen.families.pixelcnn.trainer import PixelCNNTrainer, parse_mask

FLAGS = flags.FLAGS


def define_flags():
  """The command line's flags (defined only when run as a program, so that importing
  this module next to jaxgen.main defines no flag twice)."""
  config_flags.DEFINE_config_file("config", None, "The model's config.py[:variant].",
                                  lock_config=True)
  flags.DEFINE_string("workdir", None, "The trained run's workdir.")
  flags.DEFINE_list("images", None, "Image files to complete (comma-separated).")
  flags.DEFINE_string("mask", "", "The visible part: top_half, left_half, rows:K, "
                      "pixels:P (default config.complete.mask).")
  flags.DEFINE_list("labels", [], "Class labels, one per image (class-conditional "
                    "models).")
  flags.DEFINE_integer("num_completions", 0, "Completions per image (default "
                       "config.complete.num_completions).")
  flags.DEFINE_integer("seed", 0, "Sampling seed.")
  flags.DEFINE_string("out", "completion.png", "Where to write the picture.")
  flags.mark_flags_as_required(["config", "workdir", "images"])


def complete_files(config, workdir, paths, mask="", labels=(), num_completions=0,
                   seed=0, out="completion.png") -> str:
  """Write the completion picture of the image files ``paths``; returns ``out``."""
  mesh = sharding.make_mesh()
  trainer = build.make_trainer(config, mesh)
  if not isinstance(trainer, PixelCNNTrainer):
    raise ConfigError(f"config.family={config.family!r} is not autoregressive: "
                      f"completion needs a pixelcnn or pixelcnn_prior run.")
  if not paths:
    raise ConfigError("No image files given: --images=a.png,b.png")
  num_completions = num_completions or config.complete.num_completions
  if num_completions < 1:
    raise ConfigError(f"--num_completions={num_completions} (or "
                      f"config.complete.num_completions): at least 1 per image.")
  label_array = check_labels(labels, len(paths), trainer.num_classes)
  visible = parse_mask(mask or config.complete.mask, *trainer.shape[:2])
  errors.check_writable(out, "--out")
  viz.image_format(out)
  h, w = trainer.example_shape[:2]
  images = preprocess.read_files(paths, (h, w, trainer.example_shape[2]), config.data)
  state, _ = train.restore_latest(trainer, config, workdir, mesh)
  picture = trainer.completion_picture(
      state, jax.random.key(seed), images, visible, num_completions, label_array,
      train.frozen(trainer))
  return viz.save_png(picture, out)


def check_labels(labels, num_images: int, num_classes: int):
  """``--labels`` as an int32 array (None for an unconditional model): one class in
  [0, num_classes) per image for a class-conditional model, none otherwise."""
  if not num_classes:
    if labels:
      raise ConfigError(f"--labels={','.join(map(str, labels))}: this model is "
                        f"unconditional (config.model.num_classes=0); drop --labels.")
    return None
  if len(labels) != num_images:
    raise ConfigError(f"This model is class-conditional: give one label per image "
                      f"(--labels, {num_images} values), got {len(labels)}.")
  try:
    values = [int(v) for v in labels]
  except ValueError:
    values = None
  if values is None or any(not 0 <= v < num_classes for v in values):
    raise ConfigError(f"--labels={','.join(map(str, labels))}: each label is a class "
                      f"of this model, an integer in [0, {num_classes}).")
  return jnp.asarray(values, jnp.int32)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  checkpoint.quiet_logs()
  try:
    path = complete_files(FLAGS.config, FLAGS.workdir, FLAGS.images, FLAGS.mask,
                          FLAGS.labels, FLAGS.num_completions, FLAGS.seed, FLAGS.out)
  except UserError as e:
    errors.exit_with(e)
  print(f"wrote {path}")


if __name__ == "__main__":
  xla_options.configure_cpu()  # before JAX creates its CPU client
  define_flags()
  app.run(main)
