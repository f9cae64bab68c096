"""Pix2Pix's paired datasets (facades, cityscapes, maps, edges2shoes, ...) from the
folders junyanz/pytorch-CycleGAN-and-pix2pix distributes: ``<folder>/<split>/*.jpg``,
each file one pair drawn side by side, A | B.

Registered as the prefix ``pix2pix/``: names are
``pix2pix/<set>``; ``config.data.folder`` holds the extracted archive
``http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/<set>.tar.gz``;
``config.data.direction`` ``AtoB`` makes A the ``source`` and B the ``target``, ``BtoA``
the reverse (facades: labels -> photos is BtoA); ``config.data.half_size`` is the size
(H, W) each half is read at (facades: 256 x 256, the files' own), so the spec is known
before any file is read. Splits: train, val, test (those the folder has).
"""
from __future__ import annotations

import functools
import os

import numpy as np

from jaxgen.errors import ConfigError, MissingInput
from jaxgen.data.sources import ArraySource, Dataset, image_spec, register

URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/{name}.tar.gz"
SUFFIXES = (".jpg", ".jpeg", ".png")


def how_to_get(name: str, folder: str) -> str:
  return (f"Download {URL.format(name=name)} where the internet is reachable, extract "
          f"it (it holds {name}/train, {name}/val, {name}/test) and point "
          f"--config.data.folder at the extracted {name} folder"
          + (f" (now {folder!r})." if folder else "."))


@functools.cache
def _read(folder: str, split: str, half: tuple) -> tuple:
  from PIL import Image
  directory = os.path.join(folder, split)
  names = sorted(n for n in os.listdir(directory) if n.lower().endswith(SUFFIXES))
  a, b = [], []
  for n in names:
    img = np.asarray(Image.open(os.path.join(directory, n)).convert("RGB"))
    w = img.shape[1] // 2
    for side, out in ((img[:, :w], a), (img[:, w:2 * w], b)):
      pil = Image.fromarray(side)
      if pil.size != (half[1], half[0]):
        pil = pil.resize((half[1], half[0]), Image.BICUBIC)
      out.append(np.asarray(pil))
  a, b = np.stack(a), np.stack(b)
  a.setflags(write=False)
  b.setflags(write=False)
  return a, b


@register("pix2pix/", prefix=True)
class PairedFolder(Dataset):
  """A pix2pix A | B folder as a paired dataset (``source``, ``target``)."""
  paired = True
  splits = ("train", "val", "test")

  @property
  def set_name(self) -> str:
    return self.cfg.name.split("/", 1)[1]

  def spec(self):
    h, w = tuple(self.cfg.half_size)
    return {"source": image_spec((h, w, 3)), "target": image_spec((h, w, 3))}

  def split(self, split):
    self.check_split(split)
    folder = os.path.expanduser(self.cfg.folder or "")
    if not folder or not os.path.isdir(os.path.join(folder, split)):
      raise MissingInput(f"The pix2pix dataset {self.set_name!r} has no {split} "
                         f"folder here. " + how_to_get(self.set_name, folder))
    if self.cfg.direction not in ("AtoB", "BtoA"):
      raise ConfigError(f"config.data.direction={self.cfg.direction!r}; use AtoB or BtoA.")
    a, b = _read(folder, split, tuple(self.cfg.half_size))
    source, target = (a, b) if self.cfg.direction == "AtoB" else (b, a)
    return ArraySource({"source": source, "target": target})
