r"""unCLIP's image manipulations for image files, with a trained decoder run (configs/
unclip_mnist.py): each image CLIP-embedded by the run's CLIP stage, then decoded.

  python -m jaxgen.families.unclip.edit --workdir=/tmp/unclip --images=a.png,b.png \
      --out=/tmp/edits                                   # variations of each image
  python -m jaxgen.families.unclip.edit --workdir=/tmp/unclip --images=a.png,b.png \
      --mode=interpolation --out=/tmp/edits
  python -m jaxgen.families.unclip.edit --workdir=/tmp/unclip --images=a.png \
      --mode=text_diff --source_caption="a 3" --target_caption="a thick 3" --out=/tmp/edits

``--mode``:
  variations     ``STEM_variations.png`` per image: the image, ``--seeds`` decodings of
                 its CLIP embedding, then ``--seeds`` bipartite variations (its x_T by
                 DDIM inversion, decoded with eta > 0) at each eta of the run's
                 ``sample.bipartite_etas``;
  interpolation  ``interpolation.png`` of two images: the first, slerp between their
                 embeddings at ``--steps`` angles from 0 to 1 with the decoder's noise
                 fixed, the second;
  text_diff      ``STEM_text_diff.png`` per image: the image, then its embedding moved
                 toward normalise(z_t(target caption) - z_t(source caption)) by
                 ``--steps`` angles from 0 to 0.5 (unCLIP section 3.3), the noise fixed.

Each file is read at its depth (transparency composited on black, the digits'
background), resized (bilinear) to the run's image size and preprocessed as the run's
test data (``data.preprocess.read_files``); it must be square and at least half that
size.
Everything is checked before anything is computed or written: the workdir (an unclip
decoder run with a checkpoint), the images, the captions (every word in the run's
caption vocabulary) and ``--out`` (a writable folder); any wrong input is one
``error:`` line (exit status 2) and no file.
"""
from __future__ import annotations

import argparse
import os

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen import (build, checkpoint, data, errors, sharding, stages, train, viz,
                    xla_options)
from jaxgen.data import preprocess, text
from jaxgen.errors import UserError

MODES = ("variations", "interpolation", "text_diff")


def decoder_config(workdir: str):
  """The config of the unclip decoder run in ``workdir``; a UserError otherwise."""
  if not os.path.isfile(os.path.join(workdir, "config.json")):
    raise UserError(f"--workdir={workdir} is not a jaxgen run (no config.json): give "
                    f"the workdir of a trained unclip decoder run (configs/"
                    f"unclip_mnist.py).")
  config = stages.run_config(workdir)
  role = config.get("model", {}).get("role") if config.get("family") == "unclip" else None
  if role != "decoder":
    what = (f"an unclip {role} run" if role else
            f"a run of family {config.get('family')!r}")
    raise UserError(f"--workdir={workdir} is {what}, not an unclip decoder run: edits "
                    f"decode CLIP image embeddings, which the decoder does (configs/"
                    f"unclip_mnist.py).")
  return config


def check_images(paths, side: int, channels: int) -> None:
  """Each file readable, square and at least ``side`` / 2 pixels a side (so that the
  resize to ``side`` neither distorts the digit nor invents its strokes)."""
  if not paths:
    raise UserError("No image files given: --images=a.png,b.png")
  for p in paths:
    h, w = viz.read_image(p, channels).shape[:2]
    if h != w or min(h, w) < side / 2:
      why = ("is not square: resizing it would distort the drawing; crop it to a "
             "square" if h != w else f"is smaller than half that: enlarging it "
             f"would invent the strokes; give an image of at least {side // 2} pixels")
      raise UserError(f"{p} is {w}x{h} pixels, and the run's images are {side}x{side}: "
                      f"it {why}.")
  stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
  twice = sorted({s for s in stems if stems.count(s) > 1})
  if twice:
    raise UserError(f"Two images are named {twice[0]!r} (--images): their outputs would "
                    f"overwrite each other; rename one.")


def caption_tokens(tokenizer, caption: str, length: int, flag: str):
  """Token ids (1, length) of ``caption``; a UserError names a word outside the run's
  caption vocabulary (``<unk>`` would silently stand in for it) or a caption too long."""
  if not caption.strip():
    raise UserError(f"{flag} is empty: --mode=text_diff needs --source_caption and "
                    f"--target_caption, e.g. \"a 3\" and \"a thick 3\".")
  unknown = tokenizer.unknown_words(caption)
  if unknown:
    known = tokenizer.vocab[len(text.SPECIALS):]
    raise UserError(f"{flag}={caption!r} has the word {unknown[0]!r}, which is not in "
                    f"the run's caption vocabulary ({len(known)} words, e.g. "
                    f"{', '.join(sorted(known)[:6])}): use the words of the captions "
                    f"the model was trained on.")
  try:
    return jnp.asarray(tokenizer.encode([caption], length))
  except ValueError as e:
    raise UserError(f"{flag}={caption!r}: {e}") from None


def edit_files(workdir: str, paths, out: str, mode: str = "variations", seeds: int = 4,
               steps: int = 0, source_caption: str = "", target_caption: str = "",
               seed: int = 0) -> list:
  """Write the ``mode`` pictures of the image files ``paths`` into the folder ``out``;
  returns the written paths."""
  if mode not in MODES:
    raise UserError(f"--mode={mode!r}; use one of {', '.join(MODES)}.")
  if mode != "text_diff" and (source_caption or target_caption):
    raise UserError(f"--source_caption and --target_caption are for --mode=text_diff, "
                    f"not --mode={mode}.")
  if mode == "interpolation" and len(paths) != 2:
    raise UserError(f"--mode=interpolation goes from one image to another: give two "
                    f"--images, not {len(paths)}.")
  steps = steps or {"interpolation": 6, "text_diff": 5}.get(mode, 0)
  if mode == "variations" and seeds < 1:
    raise UserError(f"--seeds={seeds}: at least 1 variation per image.")
  if mode != "variations" and steps < 2:
    raise UserError(f"--steps={steps}: at least 2 (the two ends).")
  workdir = os.path.abspath(os.path.expanduser(workdir))
  config = decoder_config(workdir)
  h, w, c = data.example_spec(config.data)["image"].shape
  check_images(paths, h, c)
  errors.check_writable(out, "--out", folder=True)
  mesh = sharding.make_mesh()
  trainer = build.make_trainer(config, mesh)
  tokens = None
  if mode == "text_diff":
    tokens = [caption_tokens(trainer.tokenizer, cap, trainer.text_length, flag)
              for cap, flag in ((source_caption, "--source_caption"),
                                (target_caption, "--target_caption"))]
  state, _ = train.restore_latest(trainer, config, workdir, mesh)
  images = jnp.asarray(preprocess.read_files(paths, (h, w, c), config.data))
  real = np.asarray(trainer.to_unit(images))
  params, frozen = state.ema_params, train.frozen(trainer)
  key = jax.random.key(seed)
  stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
  if mode == "variations":
    blocks = [trainer.compiled(trainer.variations, static_argnames="seeds")(
        params, frozen, key, images, seeds=seeds)]
    blocks += [trainer.compiled(trainer.bipartite_variations,
                                static_argnames="seeds")(
        params, frozen, key, images, seeds=seeds, eta=eta)
               for eta in trainer.bipartite_etas]
    rows = np.concatenate([real[:, None], *map(np.asarray, blocks)], 1)
    names = [f"{s}_variations.png" for s in stems]
  elif mode == "interpolation":
    mid = np.asarray(trainer.compiled(trainer.interpolation, static_argnames="steps")(
        params, frozen, key, images[:1], images[1:], steps=steps))
    rows = np.concatenate([real[:1, None], mid, real[1:, None]], 1)
    names = ["interpolation.png"]
  else:
    n = images.shape[0]
    source, target = (jnp.repeat(t, n, 0) for t in tokens)
    moved = np.asarray(trainer.compiled(trainer.text_diffs, static_argnames="steps")(
        params, frozen, key, images, source, target, steps=steps))
    rows = np.concatenate([real[:, None], moved], 1)
    names = [f"{s}_text_diff.png" for s in stems]
  written = []
  for row, name in zip(rows, names):
    strip = viz.grid(viz.to_uint8(np.clip(row, 0, 1)), rows=1)
    written.append(viz.save_png(strip, os.path.join(out, name)))
  return written


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", required=True, help="an unclip decoder run")
  parser.add_argument("--images", required=True, help="image files, comma-separated")
  parser.add_argument("--out", required=True, help="the folder for the PNGs")
  parser.add_argument("--mode", default="variations", choices=MODES)
  parser.add_argument("--seeds", type=int, default=4, help="variations per image")
  parser.add_argument("--steps", type=int, default=0,
                      help="columns of an interpolation or text diff (6, 5)")
  parser.add_argument("--source_caption", default="", help="text_diff: from")
  parser.add_argument("--target_caption", default="", help="text_diff: toward")
  parser.add_argument("--seed", type=int, default=0, help="the decoder noise's seed")
  args = parser.parse_args(argv)
  checkpoint.quiet_logs()
  paths = [p for p in args.images.split(",") if p]
  try:
    written = edit_files(args.workdir, paths, args.out, args.mode, args.seeds,
                         args.steps, args.source_caption, args.target_caption, args.seed)
  except UserError as e:  # a workdir, an image, a caption, a flag
    errors.exit_with(e)
  print(f"wrote {len(written)} images to {args.out}")


if __name__ == "__main__":
  xla_options.configure_cpu()  # before JAX creates its CPU client
  main()
