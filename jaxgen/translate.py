r"""Translate a folder of images with a generator of junyanz/pytorch-CycleGAN-and-pix2pix.

  python -m jaxgen.translate --weights=FILE_OR_NAME --arch=unet_256 --input=DIR --output=DIR
  python -m jaxgen.translate --weights=cyclegan_horse2zebra --arch=resnet_9blocks \
      --input=horses/ --output=zebras/

The generator file is read by jaxgen/weights/junyanz.py (the released files are
registered in jaxgen/weights/__init__.py: ``pix2pix_facades_label2photo``,
``cyclegan_horse2zebra``, ...). Each image is resized to ``--size`` (bilinear), scaled
to [-1, 1], translated, and written as PNG under the same name. U-Net generators
(Pix2Pix) run, by default, as the reference's test.py without --eval runs them, and as
the paper: dropout on, each image normalised with its own statistics
(``--norm=test``); ``--norm=running`` uses the file's running statistics with dropout
off (the reference's --eval).
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import errors, viz, xla_options
from jaxgen import weights as weights_lib
from jaxgen.errors import MissingInput, UserError
from jaxgen.models import image_to_image as nets
from jaxgen.weights import junyanz

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def apply_generator(module, variables, images, rng=None, norm: str = "test"):
  """G(images) for images (N, H, W, C) in [-1, 1]. ``norm='test'`` (U-Net): dropout
  on and each image normalised by its own statistics, as the reference's test.py;
  ``'running'``: the running statistics, dropout off."""
  if norm not in ("test", "running"):
    raise ValueError(f"norm={norm!r}; use test or running.")
  if not isinstance(module, nets.UNetGenerator) or norm == "running":
    return module.apply(variables, images, train=False)
  rng = jax.random.key(0) if rng is None else rng

  def one(x, key):
    out, _ = module.apply(variables, x[None], train=True, dropout=True,
                          rngs={"dropout": key}, mutable=["batch_stats"])
    return out[0]
  return jax.vmap(one)(images, jax.random.split(rng, images.shape[0]))


def translate_folder(weights, arch: str, input_dir: str, output_dir: str,
                     size: int = 256, norm: str = "test", seed: int = 0) -> list:
  """Every image of ``input_dir`` translated into ``output_dir`` (PNG, same stem);
  returns the written paths. ``weights`` is a file or a registered name.

  Everything is checked before the first image is written: ``size``, that
  ``output_dir`` can be written, the weights, and every input image (read at its
  depth; transparency composited on white, the background of the released sets'
  drawings). An unreadable image refuses the whole folder, naming each such file, so
  that no partial output is left to tell apart from a finished one."""
  if size < 1:
    raise UserError(f"--size={size}: the images are resized to --size x --size "
                    f"pixels; give a positive size (256 for the released generators).")
  if not os.path.isdir(input_dir):
    raise MissingInput(f"--input={input_dir} is not a folder of images.")
  names = sorted(n for n in os.listdir(input_dir) if n.lower().endswith(IMAGE_SUFFIXES))
  if not names:
    raise MissingInput(f"No images ({', '.join(IMAGE_SUFFIXES)}) in {input_dir}.")
  errors.check_writable(output_dir, "--output", folder=True)
  path = (weights_lib.resolve(weights) if weights in weights_lib.KNOWN else weights)
  if not os.path.isfile(path):
    raise MissingInput(f"--weights={weights!r} is neither a file nor a registered "
                       f"name ({', '.join(n for n in weights_lib.KNOWN)}).")
  module, variables = junyanz.load_generator(path, arch)
  in_nc = junyanz.input_channels(variables)
  if isinstance(module, nets.UNetGenerator):
    try:
      nets.check_unet_size(module.num_downs, size, size, f"--arch={arch}")
    except ValueError as e:
      raise UserError(f"--size={size}: {e}") from None

  def read(name):
    return viz.read_image(os.path.join(input_dir, name), in_nc, (size, size),
                          background=1.0)

  unreadable = []
  for name in names:
    try:
      read(name)
    except UserError as e:
      unreadable.append(str(e))
  if unreadable:
    more = f" (and {len(unreadable) - 3} more)" if len(unreadable) > 3 else ""
    raise UserError(f"{len(unreadable)} of the {len(names)} images in {input_dir} "
                    f"cannot be translated, and nothing was written: "
                    f"{' '.join(unreadable[:3])}{more}")
  run = jax.jit(lambda x, key: apply_generator(module, variables, x, key, norm))
  written = []
  for i, name in enumerate(names):
    x = read(name) * 2 - 1
    y = np.asarray(run(jnp.asarray(x[None]), jax.random.fold_in(jax.random.key(seed),
                                                                 i)))[0]
    target = os.path.join(output_dir, os.path.splitext(name)[0] + ".png")
    written.append(viz.save_png(viz.to_uint8(y, "symmetric"), target, min_size=1))
  return written


def main(argv=None):
  import argparse
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--weights", required=True,
                      help="a generator .pth file, or a registered name")
  parser.add_argument("--arch", required=True, choices=junyanz.ARCHS)
  parser.add_argument("--input", required=True, help="folder of images")
  parser.add_argument("--output", required=True, help="folder for the outputs")
  parser.add_argument("--size", type=int, default=256, help="images are resized to it")
  parser.add_argument("--norm", default="test", choices=("test", "running"))
  parser.add_argument("--seed", type=int, default=0, help="the dropout noise's seed")
  args = parser.parse_args(argv)
  try:
    written = translate_folder(args.weights, args.arch, args.input, args.output,
                               args.size, args.norm, args.seed)
  except UserError as e:  # a weights file or name, a folder, an image, a flag
    errors.exit_with(e)
  print(f"wrote {len(written)} images to {args.output}")


if __name__ == "__main__":
  xla_options.configure_cpu()  # before JAX creates its CPU client
  main()
