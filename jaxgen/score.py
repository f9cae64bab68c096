r"""Score image sets from the command line: FID, IS, KID, SSIM, MS-SSIM, CLIP score.

  python -m jaxgen.score --metric fid A B     # A, B: image folders, .npz/.npy of
  python -m jaxgen.score --metric is A        #   images, or (FID) statistics .npz
  python -m jaxgen.score --metric kid A B
  python -m jaxgen.score --metric ssim A B    # paired images, in the same order
  python -m jaxgen.score --metric clip A --captions captions.txt

Images are uint8 (folders of PNG/JPEG, or arrays) or float arrays in [0, 1], shaped
(N, H, W, C) or (N, H, W). ``--feature_net`` picks the network (``inception``, the FID
Inception-v3, needs pytorch-fid's weights file; ``mnist_classifier`` is shipped, for
28x28 digits; ``clip``, CLIP ViT-B/32 image embeddings, for FID and KID), ``--mode`` the Inception input convention (``tf``, what papers report, or
``pytorch-fid``). The last line printed is a JSON object with the value(s), the metric,
the feature network and convention, and the number of samples.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import zipfile
import zlib

import numpy as np

from jaxgen import errors, xla_options
from jaxgen.errors import UserError
from jaxgen.data.clip_tokenizer import CLIPTokenizer
from jaxgen.metrics import clip_score, features, fid, inception_score, kid, ssim

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
METRICS = ("fid", "is", "kid", "ssim", "ms_ssim", "clip")


class ImageSet:
  """Images from a folder or an array file, read in batches (a folder lazily)."""

  def __init__(self, path: str):
    self.path = pathlib.Path(path)
    self.files, self.array = None, None
    if self.path.is_dir():
      self.files = sorted(p for p in self.path.iterdir()
                          if p.suffix.lower() in IMAGE_SUFFIXES)
      if not self.files:
        raise ValueError(f"{path} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
    elif self.path.suffix in (".npz", ".npy") and self.path.is_file():
      self.array = _load_array(self.path)
      if self.array.dtype.kind == "f" and not np.all(np.isfinite(self.array)):
        bad = int((~np.isfinite(self.array)).reshape(len(self.array), -1).any(1).sum())
        raise ValueError(f"{path}: the images contain NaN or infinite values ({bad} of "
                         f"{len(self.array)} images): score only finite images.")
    else:
      raise ValueError(f"{path} is neither a folder of images nor an .npz/.npy file.")

  def __len__(self):
    return len(self.files) if self.files is not None else len(self.array)

  def batches(self, size: int = 100):
    if self.array is not None:
      for start in range(0, len(self.array), size):
        yield self.array[start:start + size]
      return
    from PIL import Image
    first = None
    for start in range(0, len(self.files), size):
      batch = []
      for f in self.files[start:start + size]:
        try:
          img = np.asarray(Image.open(f))
        except (OSError, ValueError) as e:  # PIL.UnidentifiedImageError is an OSError
          raise ValueError(f"{f} is not a readable image ({type(e).__name__}): remove "
                           f"it from the folder or replace it.") from None
        if first is None:
          first = img.shape
        if img.shape != first:
          raise ValueError(f"{f} has shape {img.shape}, but {self.files[0].name} has "
                           f"{first}: all images of a set must have one size and mode.")
        batch.append(img)
      yield np.stack(batch)

  def all(self) -> np.ndarray:
    return np.concatenate(list(self.batches(1000)))


def read_numpy(path, read):
  """``read(loaded)`` of the .npy array or the open .npz file ``path``, never
  unpickling; any failure to read (a file cut short, not numpy's format, Python
  objects) is one ``UserError`` naming the file."""
  try:
    loaded = np.load(path, allow_pickle=False)
    if isinstance(loaded, np.lib.npyio.NpzFile):
      with loaded as f:
        return read(f)
    return read(loaded)
  except UserError:
    raise
  except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error) as e:
    if "Object arrays" in str(e):
      why = "it holds Python objects, not numbers"
    elif "pickle" in str(e):  # numpy's advice to unpickle it: never taken here
      why = "it is not in numpy's .npy/.npz format"
    else:
      why = f"{type(e).__name__}: {e}"
    raise UserError(f"{path} is not a readable .npy/.npz file of arrays ({why}); it "
                    f"may be cut short: write it again with numpy.save or "
                    f"numpy.savez.") from None


def _load_array(path) -> np.ndarray:
  def images(loaded):
    if not isinstance(loaded, np.lib.npyio.NpzFile):
      return loaded
    if "images" in loaded.files:
      return loaded["images"]
    if len(loaded.files) == 1:
      return loaded[loaded.files[0]]
    raise UserError(f"{path} has arrays {sorted(loaded.files)}; put the images under "
                    "the key 'images' (or store a single array).")
  array = read_numpy(path, images)
  if array.ndim not in (3, 4):
    raise ValueError(f"{path} holds an array of shape {array.shape}; images are "
                     f"(N, H, W) or (N, H, W, C).")
  return array


def _statistics(path):
  """(mu, sigma) of a pytorch-fid statistics .npz, or None for any other input."""
  p = pathlib.Path(path)
  if p.suffix != ".npz" or not p.is_file():
    return None
  found = read_numpy(p, lambda f: (f["mu"], f["sigma"])
                     if isinstance(f, np.lib.npyio.NpzFile)
                     and {"mu", "sigma"} <= set(f.files) else None)
  return found and fid.check_statistics(*found, f" in {path}")


def _features(net, images: ImageSet, mode: str = "tf"):
  """The network's outputs over a set. In pytorch-fid's convention the network takes
  float images in [0, 1]: uint8 images (PNG folders, as pytorch-fid users pass them)
  are converted here as pytorch-fid's loader does (x / 255)."""
  batches = images.batches(net.batch_size)
  if mode == "pytorch-fid":
    batches = (b.astype(np.float32) / 255 if b.dtype == np.uint8 else b for b in batches)
  return net(batches, total=len(images)), len(images)


def _parser():
  p = argparse.ArgumentParser(prog="python -m jaxgen.score",
                              description=__doc__.splitlines()[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog="\n".join(__doc__.splitlines()[1:]))
  p.add_argument("paths", nargs="+", help="image folder, .npz/.npy images, or (FID) "
                 "an .npz of statistics (mu, sigma)")
  p.add_argument("--metric", required=True, choices=METRICS)
  p.add_argument("--feature_net", default="inception",
                 choices=("inception", "mnist_classifier", "clip"))
  p.add_argument("--mode", default="tf", choices=("tf", "pytorch-fid"),
                 help="Inception input convention (default: tf, as papers report)")
  p.add_argument("--weights", default=None,
                 help="weights file of the feature network (or of CLIP)")
  p.add_argument("--batch_size", type=int, default=50)
  p.add_argument("--save_stats", default=None,
                 help="FID: also write the statistics of the first set to this .npz")
  p.add_argument("--splits", type=int, default=10, help="IS: number of splits")
  p.add_argument("--kid_subsets", type=int, default=100)
  p.add_argument("--kid_subset_size", type=int, default=1000)
  p.add_argument("--captions", default=None,
                 help="CLIP: a text file with one caption per image, in image order")
  p.add_argument("--clip_variant", default="clipscore",
                 choices=("clipscore", "torchmetrics"))
  p.add_argument("--no_progress", action="store_true")
  return p


def score(args) -> tuple[dict, tuple | None]:
  """(the result, and for FID the statistics (mu, sigma) of the first set, which
  ``--save_stats`` writes once the result is printed; else None)."""
  wanted = {"fid": 2, "kid": 2, "ssim": 2, "ms_ssim": 2, "is": 1, "clip": 1}[args.metric]
  if len(args.paths) != wanted:
    raise ValueError(f"--metric {args.metric} takes {wanted} path(s), got "
                     f"{len(args.paths)}.")
  if args.metric in ("ssim", "ms_ssim"):
    return _ssim(args), None
  if args.metric == "clip":
    return _clip(args), None
  if args.metric == "is" and args.feature_net == "clip":
    raise ValueError("--metric is needs class logits, and the clip feature network has "
                     "none; use --feature_net inception or mnist_classifier.")
  if args.metric == "is" and args.splits < 1:
    raise ValueError(f"--splits={args.splits}: the Inception Score's splits must be at "
                     f"least 1 (10, as papers report).")
  if args.metric == "fid" and args.save_stats:
    errors.check_writable(args.save_stats, "--save_stats")
  # Read every input before loading a network, so that bad paths fail fast.
  statistics = [_statistics(p) if args.metric == "fid" else None for p in args.paths]
  sets = [ImageSet(p) if s is None else None for p, s in zip(args.paths, statistics)]
  net = None

  def net_():
    nonlocal net
    if net is None:
      net = features.get(args.feature_net, weights=args.weights, mode=args.mode,
                         batch_size=args.batch_size)
      net.progress = not args.no_progress
    return net

  result, first = {"metric": args.metric}, None
  if args.metric == "fid":
    stats, counts = [], []
    for given, images in zip(statistics, sets):
      if images is None:
        stats.append(given)
        counts.append(None)
      else:
        out, n = _features(net_(), images, args.mode)
        stats.append(fid.feature_statistics(out["features"]))
        counts.append(n)
    result["value"] = fid.frechet_distance(*stats[0], *stats[1])
    result["num_samples"] = counts
    first = stats[0]
  elif args.metric == "kid":
    (a, na), (b, nb) = (_features(net_(), images, args.mode) for images in sets)
    size = min(args.kid_subset_size, na, nb)
    result["value"], result["std"] = kid.kernel_inception_distance(
        a["features"], b["features"], args.kid_subsets, size)
    result["num_samples"], result["subset_size"] = [na, nb], size
  else:  # is
    out, n = _features(net_(), sets[0], args.mode)
    result["value"], result["std"] = inception_score.inception_score(out["logits"],
                                                                     args.splits)
    result["num_samples"] = n
  if net is not None:
    result["feature_net"] = net.name
  return result, first


def _ssim(args) -> dict:
  a, b = (ImageSet(p).all() for p in args.paths)
  if a.ndim == 3 and b.ndim == 3:  # (N, H, W) grey images
    a, b = a[..., None], b[..., None]
  if a.shape != b.shape:
    raise ValueError(f"SSIM compares paired images: the sets have shapes {a.shape} and "
                     f"{b.shape}.")
  if a.dtype != b.dtype:
    raise ValueError(f"The two sets have different dtypes ({a.dtype}, {b.dtype}); give "
                     "both as uint8, or both as float in [0, 1].")
  if a.dtype == np.uint8:
    max_val = 255.0
  else:
    low, high = min(a.min(), b.min()), max(a.max(), b.max())
    if low < 0 or high > 1:
      raise ValueError(f"Float images must lie in [0, 1], got values in [{low:.3g}, "
                       f"{high:.3g}]; map [-1, 1] images with (x + 1) / 2 first.")
    max_val = 1.0
  if args.metric == "ssim":
    values = ssim.ssim_streamed(a, b, max_val, progress=not args.no_progress)
  else:
    values = np.concatenate([np.asarray(ssim.ms_ssim(a[i:i + 256].astype(np.float32),
                                                     b[i:i + 256].astype(np.float32),
                                                     max_val))
                             for i in range(0, len(a), 256)])
  return {"metric": args.metric, "value": float(values.mean()),
          "std": float(values.std()), "num_samples": len(a), "data_range": max_val}


def _clip(args) -> dict:
  if not args.captions:
    raise ValueError("--metric clip needs --captions FILE (one caption per image).")
  captions = pathlib.Path(args.captions).read_text().splitlines()
  images = ImageSet(args.paths[0])
  if len(captions) != len(images):
    raise ValueError(f"{args.captions} has {len(captions)} captions for {len(images)} "
                     "images; give one caption per line, in the images' order.")
  tokenizer = CLIPTokenizer.from_openai_bpe(clip_score.bpe_file())
  embedder = features.clip_embedder(tokenizer, weights=args.weights,
                                    batch_size=args.batch_size,
                                    progress=not args.no_progress)
  out = clip_score.compute_clip_score(embedder, images.batches(args.batch_size), captions,
                                      args.clip_variant, total=len(images))
  return {"metric": "clip", "value": out.value, "std": float(out.per_sample.std()),
          "variant": out.variant, "feature_net": clip_score.NAME,
          "num_samples": len(images)}


def main(argv=None) -> int:
  args = _parser().parse_args(argv)
  try:
    result, first = score(args)
  except (ValueError, FileNotFoundError, RuntimeError) as e:  # UserError among them
    errors.exit_with(e)
  value = result["value"]
  extra = f" +- {result['std']:.4f}" if "std" in result else ""
  net = f" [{result['feature_net']}]" if "feature_net" in result else ""
  print(f"{args.metric}: {value:.4f}{extra}{net} (samples: {result['num_samples']})")
  print(json.dumps(result), flush=True)
  if args.save_stats and args.metric == "fid":  # after the result: it is never lost
    try:
      fid.save_statistics(args.save_stats, *first)
    except OSError as e:
      errors.exit_with(f"--save_stats={args.save_stats} could not be written "
                       f"({e.strerror or e}); the result above stands.")
  return 0


if __name__ == "__main__":
  xla_options.configure_cpu()  # before JAX creates its CPU client
  sys.exit(main())
