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

import numpy as np

from jaxgen import xla_options
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


def _load_array(path) -> np.ndarray:
  try:
    loaded = np.load(path, allow_pickle=False)
  except (OSError, EOFError, ValueError) as e:
    raise ValueError(f"{path} is not a readable .npy/.npz file of arrays ({e}).") from None
  if isinstance(loaded, np.lib.npyio.NpzFile):
    with loaded as f:
      if "images" in f.files:
        array = f["images"]
      elif len(f.files) == 1:
        array = f[f.files[0]]
      else:
        raise ValueError(f"{path} has arrays {sorted(f.files)}; put the images under "
                         "the key 'images' (or store a single array).")
  else:
    array = loaded
  if array.ndim not in (3, 4):
    raise ValueError(f"{path} holds an array of shape {array.shape}; images are "
                     f"(N, H, W) or (N, H, W, C).")
  return array


def _is_statistics(path) -> bool:
  p = pathlib.Path(path)
  if p.suffix != ".npz" or not p.is_file():
    return False
  with np.load(p) as f:
    return "mu" in f.files and "sigma" in f.files


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


def score(args) -> dict:
  wanted = {"fid": 2, "kid": 2, "ssim": 2, "ms_ssim": 2, "is": 1, "clip": 1}[args.metric]
  if len(args.paths) != wanted:
    raise ValueError(f"--metric {args.metric} takes {wanted} path(s), got "
                     f"{len(args.paths)}.")
  if args.metric in ("ssim", "ms_ssim"):
    return _ssim(args)
  if args.metric == "clip":
    return _clip(args)
  if args.metric == "is" and args.feature_net == "clip":
    raise ValueError("--metric is needs class logits, and the clip feature network has "
                     "none; use --feature_net inception or mnist_classifier.")
  # Read every input before loading a network, so that bad paths fail fast.
  sets = [None if args.metric == "fid" and _is_statistics(p) else ImageSet(p)
          for p in args.paths]
  net = None

  def net_():
    nonlocal net
    if net is None:
      net = features.get(args.feature_net, weights=args.weights, mode=args.mode,
                         batch_size=args.batch_size)
      net.progress = not args.no_progress
    return net

  result = {"metric": args.metric}
  if args.metric == "fid":
    stats, counts = [], []
    for path, images in zip(args.paths, sets):
      if images is None:
        stats.append(fid.load_statistics(path))
        counts.append(None)
      else:
        out, n = _features(net_(), images, args.mode)
        stats.append(fid.feature_statistics(out["features"]))
        counts.append(n)
    if args.save_stats:
      fid.save_statistics(args.save_stats, *stats[0])
    result["value"] = fid.frechet_distance(*stats[0], *stats[1])
    result["num_samples"] = counts
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
  return result


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
    result = score(args)
  except (ValueError, FileNotFoundError, RuntimeError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  value = result["value"]
  extra = f" +- {result['std']:.4f}" if "std" in result else ""
  net = f" [{result['feature_net']}]" if "feature_net" in result else ""
  print(f"{args.metric}: {value:.4f}{extra}{net} (samples: {result['num_samples']})")
  print(json.dumps(result))
  return 0


if __name__ == "__main__":
  xla_options.configure_cpu()  # before JAX creates its CPU client
  sys.exit(main())
